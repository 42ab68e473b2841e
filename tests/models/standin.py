"""A tiny, fast stand-in detector and dataset writer for the models-area unit tests.

The stand-in scores each pixel by its squared z-score against the per-pixel mean
and spread of the good images, which is enough to exercise calibration, the
registry, the ensemble and the pipelines in milliseconds.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from qc_models.detectors.base import Detector, NotFittedError, Prediction, images_to_tensor, maps_to_input_sizes


class MeanDistance(Detector):
    """Per-pixel z-score against the good images' mean; score = mean of the top 2% of the map."""

    name = "standin"

    def __init__(self, image_size: int = 32, seed: int = 0, noise: float = 0.0) -> None:
        self.image_size = int(image_size)
        self.seed = int(seed)
        self.noise = float(noise)  # random score noise, to make a deliberately weak member
        self.mean_: torch.Tensor | None = None
        self.std_: torch.Tensor | None = None

    def fit(self, images, progress=None):
        x = images_to_tensor(images, self.image_size, normalize=False)
        self.mean_ = x.mean(0)
        self.std_ = x.std(0) + 0.02
        if progress:
            progress("fitted", 1.0)
        return self

    def predict(self, images: Sequence[np.ndarray]) -> Prediction:
        if self.mean_ is None:
            raise NotFittedError("not fitted")
        x = images_to_tensor(images, self.image_size, normalize=False)
        maps = (((x - self.mean_) / self.std_) ** 2).mean(1)
        k = max(1, int(0.02 * maps[0].numel()))
        scores = maps.flatten(1).topk(k, dim=1).values.mean(1).double().numpy()
        if self.noise:  # seeded by the image bytes: the same image always gets the same noise
            seeds = [zlib.crc32(np.ascontiguousarray(img).tobytes()) for img in images]
            scores = scores + np.array([np.random.default_rng([self.seed, s]).normal(0, self.noise) for s in seeds])
        return Prediction(scores, maps_to_input_sizes(maps, images))

    def get_config(self) -> dict[str, Any]:
        return {"image_size": self.image_size, "seed": self.seed, "noise": self.noise}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        if self.mean_ is None or self.std_ is None:
            raise NotFittedError("not fitted")
        return {"mean": self.mean_, "std": self.std_}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> "MeanDistance":
        self.mean_, self.std_ = tensors["mean"].clone(), tensors["std"].clone()
        return self

    def describe(self) -> dict[str, Any]:
        return {"backbone": "none", "pretrained": False}


def standin_class(name: str, noise: float = 0.0) -> type[MeanDistance]:
    """A MeanDistance subclass registered under ``name`` (e.g. 'cae'), optionally noisy."""

    class Named(MeanDistance):
        pass

    Named.name = name  # type: ignore[misc]
    if noise:
        orig = Named.__init__

        def init(self, image_size: int = 32, seed: int = 0, noise: float = noise) -> None:  # noqa: ANN001
            orig(self, image_size, seed, noise)

        Named.__init__ = init  # type: ignore[method-assign]
    return Named


def good_image(rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """A smooth grey-blue texture with mild noise."""
    base = np.array([90, 110, 140], dtype=np.float32)
    noise = rng.normal(0, 6, size=(size, size, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def defective_image(rng: np.random.Generator, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """A good image with a bright square blob; returns (image, mask)."""
    img = good_image(rng, size)
    mask = np.zeros((size, size), dtype=bool)
    s = int(rng.integers(size // 8, size // 4))
    y, x = rng.integers(0, size - s, size=2)
    mask[y : y + s, x : x + s] = True
    img[mask] = np.clip(img[mask].astype(int) + 70, 0, 255).astype(np.uint8)
    return img, mask


def write_dataset(root: Path, category: str = "widget", n_train: int = 24, n_test_good: int = 8,
                  n_per_defect: int = 4, size: int = 32, seed: int = 0) -> Path:
    """A tiny MVTec-layout dataset with defect types 'blob' and 'spot' and their masks."""
    rng = np.random.default_rng(seed)
    cat = root / category

    def save(path: Path, arr: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), arr[..., ::-1] if arr.ndim == 3 else arr)

    for i in range(n_train):
        save(cat / "train" / "good" / f"{i:03d}.png", good_image(rng, size))
    for i in range(n_test_good):
        save(cat / "test" / "good" / f"{i:03d}.png", good_image(rng, size))
    for dt in ("blob", "spot"):
        for i in range(n_per_defect):
            img, mask = defective_image(rng, size)
            save(cat / "test" / dt / f"{i:03d}.png", img)
            save(cat / "ground_truth" / dt / f"{i:03d}_mask.png", mask.astype(np.uint8) * 255)
    return root
