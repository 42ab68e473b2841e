"""Thin-line channels of PatchCore: where they fire, what they add, how they are saved and restored."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from qc_models.detectors.base import images_to_tensor
from qc_models.detectors.fine_structure import FINE_CHANNELS, line_strength
from qc_models.detectors.patchcore import PatchCore


def _flat(value: int = 128, size: int = 64) -> np.ndarray:
    return np.full((size, size, 3), value, np.uint8)


def test_line_strength_fires_on_the_patches_a_thin_line_crosses() -> None:
    bright, dark = _flat(), _flat()
    bright[:, 37] = 200  # a 1-px vertical line in patch column 4 (8-px patches)
    dark[20, :] = 60  # a 1-px horizontal line in patch row 2
    lines = line_strength(images_to_tensor([bright, dark], 64), (8, 8), sigma=2.0, neighbourhood=1)
    assert lines.shape == (2, 8, 8, FINE_CHANNELS)
    b, d = lines[0].numpy(), lines[1].numpy()
    assert b[:, 4, 0].min() > 0.5 and np.delete(b[..., 0], 4, axis=1).max() < 0.05  # bright channel, its column only
    assert b[..., 1].max() < 0.25 * b[..., 0].max()  # ... and hardly the dark channel
    assert d[2, :, 1].min() > 0.5 and np.delete(d[..., 1], 2, axis=0).max() < 0.05
    spread = line_strength(images_to_tensor([bright], 64), (8, 8), sigma=2.0, neighbourhood=3)[0].numpy()
    assert spread[:, 3:6, 0].min() > 0.5  # the neighbourhood carries it to the adjacent patches


def _texture(seed: int, size: int = 64) -> np.ndarray:
    """Broad, smooth blotches plus faint sensor noise: no thin lines anywhere."""
    rng = np.random.default_rng(seed)
    blotches = cv2.resize(rng.normal(0, 1, (size // 8, size // 8, 3)), (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(128 + 25 * blotches + rng.normal(0, 2, (size, size, 3)), 0, 255).astype(np.uint8)


def _scratched(seed: int) -> np.ndarray:
    img = _texture(seed).astype(np.int16)
    rows = np.arange(20, 44)
    img[rows, rows // 2 + 10] += 22  # a faint 1-px diagonal scratch
    return np.clip(img, 0, 255).astype(np.uint8)


def test_fine_structure_separates_a_faint_scratch_better_and_round_trips() -> None:
    train = [_texture(s) for s in range(12)]
    goods, bads = [_texture(s) for s in range(100, 106)], [_scratched(s) for s in range(100, 106)]

    def margin(weight: float) -> tuple[float, PatchCore]:
        model = PatchCore(weights="none", image_size=64, coreset_ratio=0.5, fine_weight=weight).fit(train)
        s = model.predict(goods + bads).image_scores
        return float(s[6:].min() / s[:6].max()), model

    without, _ = margin(0.0)
    with_lines, model = margin(1.0)
    assert with_lines > without  # every scratched image further above the worst good one
    assert with_lines > 1.0  # and all of them above it
    assert model.memory_bank_.shape[1] == model.feature_dim == 64 + 128 + 3 + FINE_CHANNELS
    assert model.describe()["fine_structure"] is True

    tensors = model.state_tensors()
    assert tuple(tensors["fine_transform"].shape) == (2, 2)
    again = PatchCore(**model.get_config()).load_state_tensors(tensors)
    np.testing.assert_allclose(again.predict(bads).image_scores, model.predict(bads).image_scores, rtol=1e-5)
    with pytest.raises(ValueError, match="fine_transform"):
        PatchCore(**model.get_config()).load_state_tensors({k: v for k, v in tensors.items() if k != "fine_transform"})
    with pytest.raises(ValueError, match="fine_transform"):
        PatchCore(**model.get_config()).load_state_tensors(dict(tensors, fine_transform=torch.eye(3)))
    with pytest.raises(ValueError, match="fine-structure features are off"):
        PatchCore(**dict(model.get_config(), fine_weight=0.0)).load_state_tensors(tensors)


def test_models_saved_before_the_fine_structure_channels_load_without_them() -> None:
    train = [_texture(s) for s in range(8)]
    plain = PatchCore(weights="none", image_size=64, coreset_ratio=0.5, fine_weight=0.0).fit(train)
    legacy_config = {k: v for k, v in plain.get_config().items() if k != "fine_weight"}
    assert PatchCore(**legacy_config).fine_weight > 0  # on by default for random init...
    legacy = PatchCore(**legacy_config).load_state_tensors(plain.state_tensors())
    assert legacy.fine_weight == 0.0 and not legacy.describe()["fine_structure"]  # ...off for the old bank
    np.testing.assert_allclose(legacy.predict(train[:2]).image_scores, plain.predict(train[:2]).image_scores, rtol=1e-6)
    assert PatchCore(weights="imagenet").fine_weight == 0.0  # trained weights keep the paper's embedding
