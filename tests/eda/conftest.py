"""A hand-made 4x4-pixel dataset whose every statistic can be computed by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_rgb(path: Path, rgb: tuple[int, int, int], shape: tuple[int, int] = (4, 4)) -> np.ndarray:
    """Write a uniform RGB PNG and return its pixels."""
    arr = np.empty((*shape, 3), dtype=np.uint8)
    arr[:] = rgb
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return arr


def write_mask(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)


def block_mask() -> np.ndarray:
    m = np.zeros((4, 4), dtype=bool)
    m[:2, :2] = True
    return m


def pixel_mask() -> np.ndarray:
    m = np.zeros((4, 4), dtype=bool)
    m[3, 3] = True
    return m


@pytest.fixture(scope="module")
def hand_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Category ``widget``:

    - train/good 000-004: uniform gray 100..104 (RGB); 005: grayscale ("L") 105
    - test/good 000: 102; 001: 250 (intensity outlier); 002: 103 but 4x8 (abnormal dimensions)
    - test/scratch 000, 001: (90, 100, 110), masks: top-left 2x2 block; pixel (3, 3)
    - test/dent 000: (104, 104, 104), mask all ones; 001.png: not an image (unreadable)
    """
    root = tmp_path_factory.mktemp("hand") / "data"
    cat = root / "widget"
    for i in range(5):
        write_rgb(cat / "train" / "good" / f"{i:03d}.png", (100 + i,) * 3)
    Image.fromarray(np.full((4, 4), 105, dtype=np.uint8)).save(cat / "train" / "good" / "005.png")
    write_rgb(cat / "test" / "good" / "000.png", (102,) * 3)
    write_rgb(cat / "test" / "good" / "001.png", (250,) * 3)
    write_rgb(cat / "test" / "good" / "002.png", (103,) * 3, shape=(4, 8))
    write_rgb(cat / "test" / "scratch" / "000.png", (90, 100, 110))
    write_rgb(cat / "test" / "scratch" / "001.png", (90, 100, 110))
    write_mask(cat / "ground_truth" / "scratch" / "000_mask.png", block_mask())
    write_mask(cat / "ground_truth" / "scratch" / "001_mask.png", pixel_mask())
    write_rgb(cat / "test" / "dent" / "000.png", (104,) * 3)
    write_mask(cat / "ground_truth" / "dent" / "000_mask.png", np.ones((4, 4), dtype=bool))
    (cat / "test" / "dent" / "001.png").write_bytes(b"this is not a png")
    return root
