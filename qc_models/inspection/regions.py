"""Where an image is anomalous: area, largest region and a small location grid.

The ensemble anomaly map is normalised so that 0.5 is the decision threshold.
From it each image result keeps three compact facts that analytics can
aggregate over millions of rows without storing full maps: the anomalous area
fraction, the bounding box of the largest connected anomalous region (so an
operator can zoom to it) and a 32x32 uint8 grid (for defect-location heatmaps).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: Normalised anomaly maps put the decision threshold at 0.5.
MAP_THRESHOLD = 0.5
#: Side of the stored location grid (matches ``db.schema.GRID_SIZE``).
GRID_SIZE = 32


@dataclass(frozen=True)
class RegionStats:
    """Compact location facts for one anomaly map (pixel units of the image)."""

    area_fraction: float
    bbox: tuple[int, int, int, int] | None  # x, y, w, h of the largest region; None when nothing is anomalous
    grid: bytes  # GRID_SIZE * GRID_SIZE uint8, row-major; value / 255 = normalised score clipped to [0, 1]


def largest_region(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box ``(x, y, w, h)`` of the largest 8-connected True region, or None."""
    if not mask.any():
        return None
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return None
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in stats[best, :4])
    return x, y, w, h


def encode_grid(anomaly_map: np.ndarray, size: int = GRID_SIZE) -> bytes:
    """Downsample a normalised map to ``size x size`` uint8 bytes (area averaging)."""
    m = np.nan_to_num(np.asarray(anomaly_map, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    small = cv2.resize(m, (size, size), interpolation=cv2.INTER_AREA)
    return (np.clip(small, 0.0, 1.0) * 255.0).round().astype(np.uint8).tobytes()


def decode_grid(blob: bytes, size: int = GRID_SIZE) -> np.ndarray:
    """The stored grid back as a ``(size, size)`` float32 map in [0, 1] (0.5 = threshold)."""
    arr = np.frombuffer(blob, dtype=np.uint8)
    if arr.size != size * size:
        raise ValueError(f"anomaly grid has {arr.size} bytes, expected {size * size}")
    return arr.reshape(size, size).astype(np.float32) / 255.0


def region_stats(anomaly_map: np.ndarray, threshold: float = MAP_THRESHOLD) -> RegionStats:
    """Area fraction, largest-region box and location grid of one normalised map."""
    m = np.asarray(anomaly_map, dtype=np.float32)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"anomaly map must be a non-empty 2-D array, got shape {m.shape}")
    mask = m >= threshold
    return RegionStats(area_fraction=float(mask.mean()), bbox=largest_region(mask), grid=encode_grid(m))
