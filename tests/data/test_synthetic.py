"""The synthetic generator: deterministic bytes, exact masks, expected layout, realistic variety."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from qc_models.data.layout import DatasetError
from qc_models.data.synthetic import (
    CATEGORIES,
    DEMO_CATEGORIES,
    defect_types,
    generate_dataset,
    render_sample,
)
from tests.data.generated_checks import check_files_match_render, check_layout_and_counts
from tests.fixtures_data import TINY_DATASET_ARGS

ALL_CASES = [(c, d) for c in DEMO_CATEGORIES for d in ["good", *defect_types(c)]]


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.png"))
    }


def test_demo_categories_cover_textures_and_objects() -> None:
    kinds = [CATEGORIES[c].kind for c in DEMO_CATEGORIES]
    assert kinds.count("texture") >= 2 and kinds.count("object") >= 2
    assert all(len(defect_types(c)) >= 3 for c in DEMO_CATEGORIES)


@pytest.mark.parametrize(("category", "defect_type"), ALL_CASES)
@pytest.mark.parametrize("size", [32, 96])
def test_mask_is_exactly_the_changed_pixels(category: str, defect_type: str, size: int) -> None:
    for seed in range(3):
        s = render_sample(category, defect_type, size, seed)
        assert s.image.shape == (size, size, 3) and s.image.dtype == np.uint8
        assert s.mask.shape == (size, size) and s.mask.dtype == bool
        np.testing.assert_array_equal(s.mask, (s.image != s.clean).any(axis=2))
        if defect_type == "good":
            assert not s.mask.any() and s.image is s.clean
        else:
            assert 0 < s.mask.mean() < 0.9, "a defect covers part of the image, not none or all of it"


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    args = {"categories": ["wood", "metal_nut"], "size": 40, "n_train": 2, "n_test_good": 1, "n_per_defect": 1}
    a = _digest(generate_dataset(tmp_path / "a", seed=7, **args))
    b = _digest(generate_dataset(tmp_path / "b", seed=7, workers=3, **args))  # threads change speed, not bytes
    c = _digest(generate_dataset(tmp_path / "c", seed=8, **args))
    assert a == b and len(a) == 2 * (2 + 1) + 4 * 2 + 4 * 2
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a), "every file depends on the seed"


def test_files_do_not_depend_on_which_categories_are_generated(tmp_path: Path, tiny_dataset: Path) -> None:
    args = {k: v for k, v in TINY_DATASET_ARGS.items()}
    alone = generate_dataset(tmp_path / "alone", categories=["bottle"], **args)
    one = _digest(alone / "bottle")
    assert one == _digest(tiny_dataset / "bottle")


def test_layout_and_counts_of_the_tiny_dataset(tiny_dataset: Path) -> None:
    check_layout_and_counts(tiny_dataset, DEMO_CATEGORIES, TINY_DATASET_ARGS)
    for category in DEMO_CATEGORIES:
        assert (tiny_dataset / category / "train" / "good" / "000.png").is_file()


def test_saved_files_match_the_debug_render(tiny_dataset: Path) -> None:
    check_files_match_render(tiny_dataset, DEMO_CATEGORIES, TINY_DATASET_ARGS["seed"], TINY_DATASET_ARGS["size"], 2)


def test_good_parts_vary_in_lighting_and_position() -> None:
    for category in DEMO_CATEGORIES:
        imgs = np.stack([render_sample(category, "good", 64, s).image.astype(np.float32) for s in range(6)])
        means = imgs.mean(axis=(1, 2, 3))
        assert means.max() - means.min() > 2.0, f"{category}: lighting should vary"
        diff = np.abs(imgs[0] - imgs[1]).mean()
        assert diff > 5.0, f"{category}: two good parts should not be near-identical"


def test_defect_contrast_ranges_from_subtle_to_strong() -> None:
    contrasts = []
    for category in DEMO_CATEGORIES:
        for dt in defect_types(category):
            for seed in range(4):
                s = render_sample(category, dt, 64, seed)
                delta = np.abs(s.image.astype(np.float32) - s.clean.astype(np.float32)).max(axis=2)
                contrasts.append(float(delta[s.mask].mean()))
    assert min(contrasts) < 20 and max(contrasts) > 60


def test_progress_reaches_one_and_rerun_replaces_generated_files(tmp_path: Path) -> None:
    seen: list[float] = []
    out = generate_dataset(tmp_path, categories=["carpet"], size=32, n_train=3, n_test_good=1, n_per_defect=1,
                           progress=lambda m, f: seen.append(f))
    assert seen[-1] == 1.0 and seen == sorted(seen) and all(0 < f <= 1 for f in seen)
    generate_dataset(out, categories=["carpet"], size=32, n_train=1, n_test_good=1, n_per_defect=1)
    assert len(list((out / "carpet" / "train" / "good").iterdir())) == 1


def test_refuses_to_overwrite_foreign_folders_and_bad_arguments(tmp_path: Path) -> None:
    (tmp_path / "wood").mkdir()
    (tmp_path / "wood" / "precious.png").write_bytes(b"x")
    with pytest.raises(DatasetError, match="refusing"):
        generate_dataset(tmp_path, categories=["wood"], size=32, n_train=1)
    assert (tmp_path / "wood" / "precious.png").exists()
    with pytest.raises(ValueError, match="unknown synthetic category"):
        generate_dataset(tmp_path / "x", categories=["spaceship"])
    with pytest.raises(ValueError, match="size"):
        generate_dataset(tmp_path / "x", size=8)
    with pytest.raises(ValueError, match="seed"):
        generate_dataset(tmp_path / "x", seed=-1)
    assert not (tmp_path / "x").exists(), "arguments are checked before anything is written"
    with pytest.raises(ValueError, match="unknown defect type"):
        render_sample("wood", "bent")
