"""Checks every generated dataset (demo or hold-out) must pass, shared by both generators' tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from qc_models.data.images import load_mask, load_rgb
from qc_models.data.layout import list_categories, open_category
from qc_models.data.synthetic import defect_types, render_sample, sample_seed


def check_layout_and_counts(root: Path, categories: Sequence[str], args: Mapping[str, int]) -> None:
    """MVTec layout, the requested counts per split, and every defect image paired with its mask."""
    assert list_categories(root) == sorted(categories)
    for category in categories:
        layout = open_category(root, category)
        assert layout.defect_types() == defect_types(category)
        train, test = layout.samples("train"), layout.samples("test")
        assert len(train) == args["n_train"] and all(s.label == 0 for s in train)
        bad = [s for s in test if s.label == 1]
        assert len(test) - len(bad) == args["n_test_good"]
        assert len(bad) == args["n_per_defect"] * len(defect_types(category))
        assert all(s.mask_path is not None and s.mask_path.name == f"{s.path.stem}_mask.png" for s in bad)


def check_files_match_render(root: Path, categories: Sequence[str], seed: int, size: int, index: int) -> None:
    """Saved image ``index`` of each category's first defect type equals the debug render; masks are 0/255."""
    for category in categories:
        dt = defect_types(category)[0]
        s = render_sample(category, dt, size, np.random.default_rng(sample_seed(seed, category, "test", dt, index)))
        np.testing.assert_array_equal(load_rgb(root / category / "test" / dt / f"{index:03d}.png"), s.image)
        mask_file = root / category / "ground_truth" / dt / f"{index:03d}_mask.png"
        np.testing.assert_array_equal(load_mask(mask_file), s.mask)
        assert set(np.unique(np.asarray(Image.open(mask_file)))) <= {0, 255}
