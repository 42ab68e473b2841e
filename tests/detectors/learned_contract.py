"""Checks every network detector (CAE, U-Net) must pass, shared so both test files state them once.

Each check takes a detector already fitted on :func:`stripes` plus held-out good images and
``(defective image, mask)`` pairs, and asserts one part of the Detector contract.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Planted = Sequence[tuple[np.ndarray, np.ndarray]]


def stripes(rng: np.random.Generator, n: int, size: int = 48) -> list[np.ndarray]:
    """A simple texture: soft horizontal stripes with a random phase and a little noise."""
    y = np.arange(size, dtype=np.float32)[:, None, None]
    out = []
    for _ in range(n):
        v = 128 + 70 * np.sin(2 * np.pi * y / 12 + rng.uniform(0, 2 * np.pi)) + rng.normal(0, 3, (size, size, 1))
        out.append(np.repeat(v, 3, axis=2).clip(0, 255).astype(np.uint8))
    return out


def fit_on_stripes(
    make: Callable[[], Any], plant: Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]
) -> tuple[Any, list[np.ndarray], list[tuple[np.ndarray, np.ndarray]]]:
    """``make()`` fitted on 24 stripe images, plus 6 good and 6 planted-defect test images."""
    rng = np.random.default_rng(0)
    train = stripes(rng, 24)
    good = stripes(rng, 6)
    bad = [plant(img, rng) for img in stripes(rng, 6)]
    return make().fit(train), good, bad


def check_planted_defects_score_highest(model: Any, good: list[np.ndarray], bad: Planted) -> list[np.ndarray]:
    """Every defective image outscores every good one and its map peaks on (or next to) its defect."""
    pred = model.predict(good + [b for b, _ in bad])
    scores = pred.image_scores
    assert scores[len(good):].min() > scores[: len(good)].max()
    for (_, mask), amap in zip(bad, pred.anomaly_maps[len(good):]):
        y, x = np.unravel_index(amap.argmax(), amap.shape)
        assert np.abs(np.argwhere(mask) - (y, x)).max(axis=1).min() <= 3
    return pred.anomaly_maps


def check_maps_at_input_resolution(model: Any, good: list[np.ndarray]) -> None:
    rng = np.random.default_rng(1)
    images = [good[0], rng.integers(0, 255, (40, 70, 3), dtype=np.uint8), rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)]
    pred = model.predict(images)
    assert pred.image_scores.shape == (3,) and np.isfinite(pred.image_scores).all()
    assert [m.shape for m in pred.anomaly_maps] == [(48, 48), (40, 70), (20, 24)]
    assert all(m.dtype == np.float32 for m in pred.anomaly_maps)


def check_state_round_trip(model: Any, images: list[np.ndarray]) -> None:
    """A clone from the JSON config and the state tensors predicts bit-identically."""
    config = json.loads(json.dumps(model.get_config()))
    clone = type(model)(**config).load_state_tensors(model.state_tensors())
    a, b = model.predict(images), clone.predict(images)
    np.testing.assert_array_equal(a.image_scores, b.image_scores)
    for m1, m2 in zip(a.anomaly_maps, b.anomaly_maps):
        np.testing.assert_array_equal(m1, m2)


def check_training_description(model: Any) -> dict[str, Any]:
    info = model.describe()
    assert info["epochs_run"] >= 1 and info["best_epoch"] <= info["epochs_run"]
    assert np.isfinite(info["best_val_loss"]) and isinstance(info["early_stopped"], bool)
    json.dumps(info)
    return info


def check_validation_images_only_choose_the_epoch(cls: type, config: dict[str, Any]) -> None:
    """Given validation images drive early stopping and nothing else: after one epoch (nothing to choose)
    two different validation sets leave identical learned state, and every training image is trained on."""
    rng = np.random.default_rng(5)
    train, val_a = stripes(rng, 8), stripes(rng, 3)
    val_b = [np.ascontiguousarray(img[::-1, ::-1]) // 2 for img in stripes(rng, 4)]  # darker, other count
    a = cls(**{**config, "epochs": 1}).fit(train, validation_images=val_a)
    b = cls(**{**config, "epochs": 1}).fit(train, validation_images=val_b)
    assert a.training_.monitored == "val" and a.training_.best_val_loss != b.training_.best_val_loss
    sa, sb = a.state_tensors(), b.state_tensors()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert np.array_equal(sa[key].numpy(), sb[key].numpy()), key
    internal = cls(**{**config, "epochs": 1}).fit(train)  # splits its own validation images off instead
    assert any(not np.array_equal(sa[k].numpy(), v.numpy()) for k, v in internal.state_tensors().items())
