"""Colour histograms: one image's 3x256 counts, and running sums per class.

Class histograms are summed as integer counts while streaming, so memory is
constant in the number of images and the result is exact; normalising happens
only when a caller asks for comparable distributions.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Above this many pixels float32 counts from cv2.calcHist are no longer exact.
_CALCHIST_EXACT = 2**24


def channel_histogram(channel: np.ndarray) -> np.ndarray:
    """256-bin count histogram of one uint8 channel (any shape), as int64."""
    if channel.dtype != np.uint8:
        raise ValueError(f"expected uint8 data, got {channel.dtype}")
    if channel.size < _CALCHIST_EXACT:
        flat = np.ascontiguousarray(channel).reshape(-1, 1)
        return cv2.calcHist([flat], [0], None, [256], [0, 256]).ravel().astype(np.int64)
    return np.bincount(channel.ravel(), minlength=256).astype(np.int64)


def image_histogram(rgb: np.ndarray) -> np.ndarray:
    """``(3, 256)`` int64 counts of an ``(H, W, 3)`` uint8 RGB image (rows R, G, B)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {rgb.shape} {rgb.dtype}")
    return np.stack([channel_histogram(rgb[..., c]) for c in range(3)])


def normalise_histogram(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its total, so classes of different sizes compare; zero rows stay zero."""
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=-1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


class HistogramAccumulator:
    """Running ``(3, 256)`` count sums per class key (e.g. ``"test/crack"``)."""

    def __init__(self) -> None:
        self._counts: dict[str, np.ndarray] = {}
        self._images: dict[str, int] = {}

    def add(self, key: str, histogram: np.ndarray) -> None:
        """Add one image's ``(3, 256)`` counts to class ``key``."""
        if histogram.shape != (3, 256):
            raise ValueError(f"expected a (3, 256) histogram, got {histogram.shape}")
        if key not in self._counts:
            self._counts[key] = np.zeros((3, 256), dtype=np.int64)
            self._images[key] = 0
        self._counts[key] += histogram
        self._images[key] += 1

    def keys(self) -> list[str]:
        return sorted(self._counts)

    def counts(self, key: str) -> np.ndarray:
        """Summed pixel counts of class ``key`` (a copy)."""
        return self._counts[key].copy()

    def images(self, key: str) -> int:
        return self._images[key]

    def normalised(self, key: str) -> np.ndarray:
        """Per-channel pixel distribution of class ``key`` (each row sums to 1)."""
        return normalise_histogram(self._counts[key])
