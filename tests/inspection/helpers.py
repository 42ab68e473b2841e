"""Stand-in scorer and tiny image folders for the inspection tests (no training needed)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from qc_models.inspection import ModelInfo

SIZE = 32


@dataclass
class FakeScore:
    """Same shape as ``registry.ImageScore``: per-model dicts keyed by model name."""

    raw: dict[str, float]
    normalised: dict[str, float]
    is_defective: dict[str, bool]
    maps: dict[str, np.ndarray]


@dataclass
class FakeScorer:
    """Anomaly map = brightness / 255, so a white square on a dark image is the defect.

    ``fail_after`` raises on the call after that many batches (a simulated crash);
    ``delay`` sleeps per batch so a subprocess can be killed mid-run.
    """

    category: str = "widget"
    models: tuple[str, ...] = ("cae", "patchcore")
    version: str = "v1"
    fail_after: int | None = None
    delay: float = 0.0
    calls: int = 0
    batch_sizes: list[int] = field(default_factory=list)

    def score(self, images: list[np.ndarray]) -> list[FakeScore]:
        self.calls += 1
        self.batch_sizes.append(len(images))
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("simulated crash in the scorer")
        if self.delay:
            time.sleep(self.delay)
        out = []
        for img in images:
            m = img.max(axis=2).astype(np.float32) / 255.0
            s = float(m.max())
            names = (*self.models, "ensemble")
            out.append(
                FakeScore(
                    raw={n: s * 10 for n in names},
                    normalised={n: s for n in names},
                    is_defective={n: s >= 0.5 for n in names},
                    maps={n: m for n in names},
                )
            )
        return out

    def model_infos(self) -> list[ModelInfo]:
        return [
            ModelInfo(n, self.version, f"/registry/{self.category}/{n}/{self.version}", 0.5, self.category, "none")
            for n in (*self.models, "ensemble")
        ]


def write_image(path: Path, defect: tuple[int, int, int] | None = None, seed: int = 0) -> None:
    """A dark noisy image; ``defect=(x, y, side)`` paints a white square there."""
    rng = np.random.default_rng(seed)
    img = rng.integers(20, 60, size=(SIZE, SIZE, 3), dtype=np.uint8)
    if defect is not None:
        x, y, side = defect
        img[y : y + side, x : x + side] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def make_test_folder(root: Path, n_good: int = 4, defects: dict[str, int] | None = None) -> Path:
    """``<root>/widget/{train/good,test/good,test/<defect>}`` with defects at (8, 10) side 6."""
    defects = {"scratch": 3, "hole": 2} if defects is None else defects
    cat = root / "widget"
    write_image(cat / "train" / "good" / "000.png")
    for i in range(n_good):
        write_image(cat / "test" / "good" / f"{i:03d}.png", seed=i)
    for d, n in defects.items():
        for i in range(n):
            write_image(cat / "test" / d / f"{i:03d}.png", defect=(8, 10, 6), seed=100 + i)
    return cat / "test"


def make_flat_folder(folder: Path, n: int, every_defective: int = 3) -> Path:
    """``n`` unlabelled images in one folder; every ``every_defective``-th has a defect."""
    for i in range(n):
        write_image(folder / f"img_{i:04d}.png", defect=(4, 4, 5) if i % every_defective == 0 else None, seed=i)
    return folder
