"""Where defects are and how big they are: mask heatmaps, area fractions, centroids.

Masks come in any size, so each is resized with ``INTER_AREA`` (cell value =
fraction of the cell covered by defect) to one fixed grid and added to a running
sum per defect type: memory stays constant however many masks there are.
Positions are normalised to [0, 1] so masks of different sizes share one frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd

#: Key of the heatmap over all defect types of a category.
ALL = "all"


@dataclass(frozen=True)
class MaskSummary:
    """What the EDA keeps of one mask.

    ``components`` is ``(k, 3)``: normalised centroid x, y and area fraction of each
    8-connected component. Centroids use pixel centres: ``x = (col + 0.5) / width``.
    """

    grid: np.ndarray  # (S, S) float32, fraction of each cell covered by defect
    height: int
    width: int
    area_fraction: float
    centroid: tuple[float, float]  # whole-mask centre of mass (nan, nan) when empty
    components: np.ndarray


def describe_mask(mask: np.ndarray, size: int = 64) -> MaskSummary:
    """Summarise a ``(H, W)`` bool mask for the running heatmap and the tables."""
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(f"expected a non-empty (H, W) mask, got shape {mask.shape}")
    h, w = mask.shape
    m8 = mask.astype(np.uint8)
    grid = cv2.resize(m8.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    area = int(np.count_nonzero(m8))
    if area == 0:
        return MaskSummary(grid, h, w, 0.0, (float("nan"), float("nan")), np.zeros((0, 3)))
    x0, y0, bw, bh = cv2.boundingRect(m8)  # components only in the defect's bounding box: masks are sparse
    crop = m8[y0 : y0 + bh, x0 : x0 + bw]
    _, _, stats, cents = cv2.connectedComponentsWithStats(crop, connectivity=8)
    comps = np.column_stack(
        [(cents[1:, 0] + x0 + 0.5) / w, (cents[1:, 1] + y0 + 0.5) / h, stats[1:, cv2.CC_STAT_AREA] / (h * w)]
    )
    moments = cv2.moments(crop, binaryImage=True)
    centroid = (
        (moments["m10"] / moments["m00"] + x0 + 0.5) / w,
        (moments["m01"] / moments["m00"] + y0 + 0.5) / h,
    )
    return MaskSummary(grid, h, w, area / (h * w), centroid, comps)


class MaskAccumulator:
    """Running heatmap sums per defect type plus one small row per mask and per component."""

    def __init__(self, size: int = 64) -> None:
        if size < 1:
            raise ValueError(f"heatmap size must be >= 1, got {size}")
        self.size = size
        self._sums: dict[str, np.ndarray] = {}
        self._counts: dict[str, int] = {}
        self._masks: list[tuple] = []
        self._components: list[tuple] = []

    def add(self, summary: MaskSummary, defect_type: str, path: str) -> None:
        if summary.grid.shape != (self.size, self.size):
            raise ValueError(f"{path}: mask grid is {summary.grid.shape}, expected {(self.size, self.size)}")
        if defect_type not in self._sums:
            self._sums[defect_type] = np.zeros((self.size, self.size), dtype=np.float64)
            self._counts[defect_type] = 0
        self._sums[defect_type] += summary.grid
        self._counts[defect_type] += 1
        cx, cy = summary.centroid
        self._masks.append(
            (path, defect_type, summary.height, summary.width, summary.area_fraction, len(summary.components), cx, cy)
        )
        for x, y, a in summary.components:
            self._components.append((path, defect_type, float(x), float(y), float(a)))

    def counts(self) -> dict[str, int]:
        """Masks per defect type and in total (key :data:`ALL`)."""
        out = dict(sorted(self._counts.items()))
        out[ALL] = sum(self._counts.values())
        return out

    def heatmaps(self) -> dict[str, np.ndarray]:
        """Mean defect coverage per grid cell, per defect type and over all (:data:`ALL`)."""
        out = {dt: self._sums[dt] / self._counts[dt] for dt in sorted(self._sums)}
        total = sum(self._counts.values())
        out[ALL] = sum(self._sums.values()) / total if total else np.zeros((self.size, self.size))
        return out

    def mask_table(self) -> pd.DataFrame:
        """One row per mask: size, area fraction, component count, centre of mass."""
        cols = ["path", "defect_type", "height", "width", "area_fraction", "components", "centroid_x", "centroid_y"]
        return pd.DataFrame(self._masks, columns=cols)

    def centroid_table(self) -> pd.DataFrame:
        """One row per connected component: normalised centroid and area fraction."""
        return pd.DataFrame(self._components, columns=["path", "defect_type", "x", "y", "area_fraction"])


def area_summary(areas: pd.Series) -> dict[str, float | int | None]:
    """Count, mean, std (ddof=0), min, median, max of area fractions; None where empty."""
    a = np.asarray(areas, dtype=np.float64)
    if a.size == 0:
        return {"count": 0, "mean": None, "std": None, "min": None, "median": None, "max": None}
    return {
        "count": int(a.size),
        "mean": float(a.mean()),
        "std": float(a.std()),
        "min": float(a.min()),
        "median": float(np.median(a)),
        "max": float(a.max()),
    }
