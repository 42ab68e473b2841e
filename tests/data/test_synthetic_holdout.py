"""Hold-out synthetic categories: kept apart from the demo, deterministic, exact masks, MVTec layout."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from qc_models.data.integrity import check_dataset
from qc_models.data.synthetic import (
    CATEGORIES,
    DEMO_CATEGORIES,
    defect_types,
    generate_dataset,
    render_sample,
)
from qc_models.data.synthetic_holdout import HOLDOUT, HOLDOUT_CATEGORIES, register
from tests.data.generated_checks import check_files_match_render, check_layout_and_counts

CASES = [(c, d) for c in HOLDOUT_CATEGORIES for d in ["good", *defect_types(c)]]
SMALL = {"size": 48, "n_train": 3, "n_test_good": 2, "n_per_defect": 2, "seed": 5}


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.png"))}


@pytest.fixture(scope="module")
def holdout_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("holdout") / "data", categories=HOLDOUT_CATEGORIES, **SMALL)


def test_holdout_is_separate_from_the_demo() -> None:
    assert DEMO_CATEGORIES == ("carpet", "wood", "bottle", "metal_nut"), "the demo set must not change"
    assert not set(HOLDOUT_CATEGORIES) & set(DEMO_CATEGORIES)
    kinds = [HOLDOUT[c].kind for c in HOLDOUT_CATEGORIES]
    assert kinds.count("texture") >= 2 and kinds.count("object") >= 2
    demo_defects = {d for c in DEMO_CATEGORIES for d in defect_types(c)}
    for c in HOLDOUT_CATEGORIES:
        assert len(defect_types(c)) >= 3
        assert not set(defect_types(c)) & demo_defects, f"{c}: defect kinds must be new"
        assert CATEGORIES[c] is HOLDOUT[c], "registered with the generator"


def test_register_is_idempotent_and_never_replaces_another_category() -> None:
    known = dict(CATEGORIES)
    register(known)
    assert known == CATEGORIES
    clash = {"tile": CATEGORIES["wood"]}
    with pytest.raises(ValueError, match="tile"):
        register(clash)
    assert clash["tile"] is CATEGORIES["wood"]


@pytest.mark.parametrize(("category", "defect_type"), CASES)
@pytest.mark.parametrize("size", [32, 80])
def test_mask_is_exactly_the_changed_pixels(category: str, defect_type: str, size: int) -> None:
    for seed in range(2):
        s = render_sample(category, defect_type, size, seed)
        assert s.image.shape == (size, size, 3) and s.image.dtype == np.uint8
        np.testing.assert_array_equal(s.mask, (s.image != s.clean).any(axis=2))
        if defect_type == "good":
            assert not s.mask.any()
        else:
            assert 0 < s.mask.mean() < 0.5, "a defect covers part of the image"
            m = np.pad(s.mask, 1).astype(np.int8)
            neighbours = sum(np.roll(np.roll(m, dy, 0), dx, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)) - m
            isolated = (m == 1) & (neighbours == 0)
            assert isolated.sum() <= max(2, 0.05 * s.mask.sum()), "a footprint, not faint pixels sprinkled around"


def test_render_is_deterministic_and_seed_dependent() -> None:
    for category in HOLDOUT_CATEGORIES:
        dt = defect_types(category)[-1]
        a, b = render_sample(category, dt, 40, 11), render_sample(category, dt, 40, 11)
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.mask, b.mask)
        assert (render_sample(category, dt, 40, 12).image != a.image).any()


def test_same_seed_same_bytes_whatever_the_workers(tmp_path: Path) -> None:
    args = {"categories": ["leather", "screw"], "size": 40, "n_train": 2, "n_test_good": 1, "n_per_defect": 1}
    a = _digest(generate_dataset(tmp_path / "a", seed=3, **args))
    b = _digest(generate_dataset(tmp_path / "b", seed=3, workers=3, **args))
    c = _digest(generate_dataset(tmp_path / "c", seed=4, **args))
    assert a == b and len(a) == 2 * (2 + 1) + 2 * (4 + 3)
    assert a.keys() == c.keys() and all(a[k] != c[k] for k in a)


def test_layout_counts_and_integrity(holdout_dataset: Path) -> None:
    check_layout_and_counts(holdout_dataset, HOLDOUT_CATEGORIES, SMALL)
    assert check_dataset(holdout_dataset) == []


def test_saved_files_match_the_debug_render(holdout_dataset: Path) -> None:
    check_files_match_render(holdout_dataset, HOLDOUT_CATEGORIES, SMALL["seed"], SMALL["size"], 1)


def test_not_generated_by_default(tmp_path: Path) -> None:
    out = generate_dataset(tmp_path, size=16, n_train=1, n_test_good=0, n_per_defect=0)
    assert sorted(p.name for p in out.iterdir()) == sorted(DEMO_CATEGORIES)


def test_good_parts_vary_and_defects_range_from_subtle_to_strong() -> None:
    for category in HOLDOUT_CATEGORIES:
        imgs = np.stack([render_sample(category, "good", 64, s).image.astype(np.float32) for s in range(5)])
        means = imgs.mean(axis=(1, 2, 3))
        assert means.max() - means.min() > 2.0, f"{category}: lighting should vary"
        assert np.abs(imgs[0] - imgs[1]).mean() > 5.0, f"{category}: two good parts should differ"
    contrasts = []
    for category, dt in CASES:
        if dt != "good":
            for seed in range(3):
                s = render_sample(category, dt, 64, seed)
                delta = np.abs(s.image.astype(np.float32) - s.clean.astype(np.float32)).max(axis=2)
                contrasts.append(float(delta[s.mask].mean()))
    assert min(contrasts) < 15 and max(contrasts) > 40
