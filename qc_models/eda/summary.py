"""How many images of each kind a category has, and how unbalanced the classes are.

Counts come from the file listing alone (no decoding), so this is the cheap first
answer to "is there enough data, and which defect types are rare?".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from qc_models.data.layout import GOOD, Sample


@dataclass(frozen=True)
class CountSummary:
    """Image counts per split and defect type, totals and class-imbalance ratios."""

    table: pd.DataFrame  # columns: split, defect_type, images, masks
    totals: dict[str, int]
    imbalance: dict[str, float | str | None]


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def summarise_counts(samples: Sequence[Sample], defect_types: Sequence[str] = ()) -> CountSummary:
    """Count ``samples`` per (split, defect type); ``defect_types`` adds empty folders as zero rows."""
    images = Counter((s.split, s.defect_type) for s in samples)
    masks = Counter((s.split, s.defect_type) for s in samples if s.mask_path is not None)
    types = sorted(set(defect_types) | {dt for sp, dt in images if sp == "test" and dt != GOOD})
    keys = [("train", GOOD), ("test", GOOD)] + [("test", dt) for dt in types]
    table = pd.DataFrame(
        [(sp, dt, images[(sp, dt)], masks[(sp, dt)]) for sp, dt in keys],
        columns=["split", "defect_type", "images", "masks"],
    )
    per_type = {dt: images[("test", dt)] for dt in types}
    test_defective = sum(per_type.values())
    totals = {
        "train_good": images[("train", GOOD)],
        "test_good": images[("test", GOOD)],
        "test_defective": test_defective,
        "test": images[("test", GOOD)] + test_defective,
        "images": len(samples),
        "masks": sum(masks.values()),
        "defect_types": len(types),
    }
    largest = max(per_type, key=lambda k: (per_type[k], k)) if per_type else None
    smallest = min(per_type, key=lambda k: (per_type[k], k)) if per_type else None
    imbalance: dict[str, float | str | None] = {
        "test_good_to_defective": _ratio(totals["test_good"], test_defective),
        "test_defective_fraction": _ratio(test_defective, totals["test"]),
        "train_good_to_test_good": _ratio(totals["train_good"], totals["test_good"]),
        "largest_defect_type": largest,
        "smallest_defect_type": smallest,
        "defect_type_max_to_min": _ratio(per_type[largest], per_type[smallest]) if per_type else None,
    }
    return CountSummary(table, totals, imbalance)
