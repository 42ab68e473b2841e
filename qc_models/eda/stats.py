"""Per-image statistics and the streaming/robust aggregates built from them.

Each image becomes one small row of numbers (channel means and stds, brightness,
contrast, histogram entropy, edge density), computed with vectorised OpenCV calls.
Dataset-level channel statistics are pooled exactly from those rows, so nothing
but the rows is kept; outliers use median/MAD so a few bad images cannot hide
themselves by inflating the spread.
"""

from __future__ import annotations

import cv2
import numpy as np

from qc_models.eda.histograms import channel_histogram

#: Numeric per-image features compared between groups (normal vs defective, train vs test).
FEATURES = (
    "mean_r",
    "mean_g",
    "mean_b",
    "std_r",
    "std_g",
    "std_b",
    "brightness",
    "contrast",
    "entropy",
    "edge_density",
    "aspect_ratio",
)

#: ITU-R BT.601 luma weights, the same as OpenCV's RGB2GRAY.
LUMA = (0.299, 0.587, 0.114)

#: |robust z| above this flags an intensity outlier (Iglewicz and Hoaglin).
OUTLIER_Z = 3.5

CANNY_THRESHOLDS = (50, 150)


def image_features(rgb: np.ndarray) -> dict[str, float]:
    """Features of one ``(H, W, 3)`` uint8 RGB image.

    Stds are population stds (ddof=0). ``brightness`` is the luma of the channel
    means; ``contrast`` and ``entropy`` (bits) are taken on the 8-bit gray image;
    ``edge_density`` is the fraction of Canny edge pixels.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {rgb.shape} {rgb.dtype}")
    h, w = rgb.shape[:2]
    mean, std = cv2.meanStdDev(rgb)
    mean, std = mean.ravel(), std.ravel()
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    _, gray_std = cv2.meanStdDev(gray)
    p = channel_histogram(gray).astype(np.float64) / gray.size
    p = p[p > 0]
    edges = cv2.Canny(gray, *CANNY_THRESHOLDS)
    return {
        "mean_r": float(mean[0]),
        "mean_g": float(mean[1]),
        "mean_b": float(mean[2]),
        "std_r": float(std[0]),
        "std_g": float(std[1]),
        "std_b": float(std[2]),
        "brightness": float(np.dot(LUMA, mean)),
        "contrast": float(gray_std.ravel()[0]),
        "entropy": float(-(p * np.log2(p)).sum()) + 0.0,
        "edge_density": float(np.count_nonzero(edges)) / edges.size,
        "aspect_ratio": w / h,
    }


class ChannelAccumulator:
    """Pooled per-channel mean and std over all pixels, from per-image means/stds.

    Uses sums of ``n*mean`` and ``n*(std**2 + mean**2)``, which is exact for
    8-bit data in float64 and needs O(1) memory.
    """

    def __init__(self) -> None:
        self.pixels = 0
        self._sum = np.zeros(3)
        self._sumsq = np.zeros(3)

    def add(self, mean: np.ndarray, std: np.ndarray, pixels: int) -> None:
        mean = np.asarray(mean, dtype=np.float64)
        std = np.asarray(std, dtype=np.float64)
        self.pixels += int(pixels)
        self._sum += mean * pixels
        self._sumsq += (std**2 + mean**2) * pixels

    @property
    def mean(self) -> np.ndarray:
        if self.pixels == 0:
            return np.full(3, np.nan)
        return self._sum / self.pixels

    @property
    def std(self) -> np.ndarray:
        if self.pixels == 0:
            return np.full(3, np.nan)
        return np.sqrt(np.maximum(self._sumsq / self.pixels - self.mean**2, 0.0))


def robust_zscores(values: np.ndarray) -> np.ndarray:
    """Modified z-scores ``0.6745 * (x - median) / MAD``.

    When more than half the values are equal (MAD = 0) the mean absolute
    deviation scaled by 1.253314 is used instead; all zeros when that is 0 too.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return x.copy()
    dev = x - np.median(x)
    mad = np.median(np.abs(dev))
    if mad > 0:
        return 0.6745 * dev / mad
    mean_ad = np.mean(np.abs(dev))
    if mean_ad > 0:
        return dev / (1.253314 * mean_ad)
    return np.zeros_like(x)


def modal_size(heights: np.ndarray, widths: np.ndarray) -> tuple[int, int] | None:
    """The most common ``(height, width)``; ties go to the smallest; None when empty."""
    if len(heights) == 0:
        return None
    pairs = np.stack([np.asarray(heights, dtype=np.int64), np.asarray(widths, dtype=np.int64)], axis=1)
    uniq, counts = np.unique(pairs, axis=0, return_counts=True)
    h, w = uniq[int(np.argmax(counts))]
    return int(h), int(w)


def abnormal_dimensions(heights: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """True for images whose size differs from the category's most common size."""
    mode = modal_size(heights, widths)
    if mode is None:
        return np.zeros(0, dtype=bool)
    return (np.asarray(heights) != mode[0]) | (np.asarray(widths) != mode[1])
