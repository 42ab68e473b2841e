"""Counts and class-imbalance ratios from a file listing."""

from __future__ import annotations

from pathlib import Path

import pytest

from qc_models.data.layout import Sample
from qc_models.eda.summary import summarise_counts


def _samples() -> list[Sample]:
    out = [Sample(Path(f"t{i}.png"), "c", "train", "good") for i in range(8)]
    out += [Sample(Path(f"g{i}.png"), "c", "test", "good") for i in range(4)]
    out += [Sample(Path(f"a{i}.png"), "c", "test", "crack", Path(f"a{i}_mask.png")) for i in range(6)]
    out += [Sample(Path(f"b{i}.png"), "c", "test", "hole", Path(f"b{i}_mask.png") if i else None) for i in range(2)]
    return out


def test_counts_totals_and_imbalance() -> None:
    s = summarise_counts(_samples(), defect_types=["crack", "hole", "stain"])
    rows = {(r.split, r.defect_type): (r.images, r.masks) for r in s.table.itertuples()}
    assert rows == {
        ("train", "good"): (8, 0),
        ("test", "good"): (4, 0),
        ("test", "crack"): (6, 6),
        ("test", "hole"): (2, 1),
        ("test", "stain"): (0, 0),  # empty folder still listed
    }
    assert s.totals == {
        "train_good": 8, "test_good": 4, "test_defective": 8, "test": 12, "images": 20, "masks": 7, "defect_types": 3
    }
    assert s.imbalance["test_good_to_defective"] == 0.5
    assert s.imbalance["test_defective_fraction"] == pytest.approx(8 / 12)
    assert s.imbalance["train_good_to_test_good"] == 2.0
    assert s.imbalance["largest_defect_type"] == "crack" and s.imbalance["smallest_defect_type"] == "stain"
    assert s.imbalance["defect_type_max_to_min"] is None  # smallest type has no images


def test_ratio_between_defect_types() -> None:
    s = summarise_counts(_samples())
    assert s.imbalance["defect_type_max_to_min"] == 3.0 and s.imbalance["smallest_defect_type"] == "hole"


def test_empty_listing() -> None:
    s = summarise_counts([])
    assert s.totals["images"] == 0 and s.imbalance["test_good_to_defective"] is None
    assert s.imbalance["largest_defect_type"] is None
