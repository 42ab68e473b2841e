"""Thin-line channels of PatchCore: where they fire, what they add, how they are saved and restored;
for aligned parts, the excess over the good parts' line envelope."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from qc_models.detectors.base import images_to_tensor
from qc_models.detectors.fine_structure import FINE_CHANNELS, LineEnvelope, line_excess, line_strength
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


def _lined(seed: int, column: int = 37, row: int | None = None) -> torch.Tensor:
    """A flat image with a bright 1-px line at ``column`` (every good part has it) and, if ``row``, a dark one."""
    img = _flat().astype(np.int16) + np.random.default_rng(seed).normal(0, 1, (64, 64, 3)).round().astype(np.int16)
    img[:, column] += 70
    if row is not None:
        img[row, 8:40] -= 60
    return images_to_tensor([np.clip(img, 0, 255).astype(np.uint8)], 64)


def test_line_envelope_passes_the_lines_every_good_part_has_and_fires_on_a_new_one() -> None:
    goods = [_lined(s, column=37 + s % 2) for s in range(6)]  # the part's own line, jittering by a pixel
    envelope = LineEnvelope(sigma=2.0, radius=1).fit(iter(goods))
    assert envelope.envelope_ is not None and tuple(envelope.envelope_.shape) == (1, 2, 64, 64)
    for x in goods:  # every training image lies inside the envelope
        assert float(line_excess(x, envelope.envelope_, (8, 8), 2.0, 1).abs().max()) == 0.0
    shifted = line_excess(_lined(50, column=39), envelope.envelope_, (8, 8), 2.0, 1)[0].numpy()
    scratched = line_excess(_lined(51, row=20), envelope.envelope_, (8, 8), 2.0, 1)[0].numpy()
    plain = line_strength(_lined(51, row=20), (8, 8), 2.0, 1)[0].numpy()
    assert shifted.max() < 0.05  # the good line one pixel further on is within the tolerance
    assert plain[:, 4, 0].min() > 0.5  # plain strength fires on the good line all along...
    assert np.delete(scratched[:, 4, 0], 2).max() < 0.02  # ...the excess not (row 2: the new line's halo)
    assert scratched[2, 1:5, 1].min() > 0.05 and np.delete(scratched[..., 1], 2, axis=0).max() < 0.02  # the new line
    held_out = envelope.held_out_excess(lambda: iter(goods), (8, 8), 3)
    assert tuple(held_out.shape) == (6 * 64, FINE_CHANNELS) and float(held_out.min()) >= 0.0
    assert tuple(LineEnvelope(2.0, 1).fit(iter(goods[:1])).held_out_excess(lambda: iter(goods[:1]), (8, 8), 3).shape) == (0, 2)
    with pytest.raises(ValueError, match="line envelope is"):
        line_excess(images_to_tensor([_flat(size=32)], 32), envelope.envelope_, (4, 4), 2.0, 1)


_BAR = np.array([[-34, -5], [22, -5], [22, -13], [36, -13], [36, 13], [22, 13], [22, 5], [-34, 5]], float)


def _grooved_part(angle: float, seed: int, scratch: bool = False, size: int = 128) -> np.ndarray:
    """A turned part with two bright machined grooves along its bar; ``scratch``: a thin dark line across its head."""
    rng = np.random.default_rng(seed)
    img = np.clip(200 + rng.normal(0, 4, (size, size, 3)), 0, 255)
    a = np.deg2rad(angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])

    def line(points: list[list[float]], colour: tuple[int, int, int]) -> None:
        p, q = (np.asarray(points) @ rot.T + size / 2).round().astype(int)
        cv2.line(img, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), colour, 1)

    cv2.fillPoly(img, [(_BAR @ rot.T + size / 2).round().astype(np.int32)], (70, 75, 80))
    for y in (-2.0, 2.0):
        line([[-30, y], [18, y]], (115, 120, 125))
    if scratch:
        line([[25, -10], [33, 9]], (45, 45, 50))
    return np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)


def test_aligned_parts_find_a_scratch_among_their_own_grooves_and_round_trip() -> None:
    rng = np.random.default_rng(0)
    train = [_grooved_part(a, i) for i, a in enumerate(rng.uniform(0, 360, 12))]
    goods = [_grooved_part(a, 50 + i) for i, a in enumerate((20, 110, 200, 290))]
    bads = [_grooved_part(a, 60 + i, scratch=True) for i, a in enumerate((65, 155, 245, 335))]

    def margin(weight: float | None) -> tuple[float, PatchCore]:
        model = PatchCore(weights="none", image_size=128, coreset_ratio=0.5, align=True, fine_weight=weight).fit(train)
        s = model.predict(goods + bads).image_scores
        return float(s[4:].min() / s[:4].max()), model

    without, _ = margin(0.0)
    with_envelope, model = margin(None)
    assert model.fine_weight == 0.01 and model.describe()["fine_envelope"] is True  # the aligned default
    assert without < 1.0 < with_envelope  # measured: 0.47 and 2.09

    tensors = model.state_tensors()
    assert tuple(tensors["fine_envelope"].shape) == (1, 2, 128, 128)
    again = PatchCore(**model.get_config()).load_state_tensors(tensors)
    np.testing.assert_allclose(again.predict(bads).image_scores, model.predict(bads).image_scores, rtol=1e-5)
    with pytest.raises(ValueError, match="fine_envelope"):
        PatchCore(**model.get_config()).load_state_tensors(dict(tensors, fine_envelope=torch.zeros(1, 2, 64, 64)))
    with pytest.raises(ValueError, match="fine_envelope"):
        PatchCore(**model.get_config()).load_state_tensors(
            {k: v for k, v in tensors.items() if k != "fine_transform"} | {"memory_bank": tensors["memory_bank"][:, :-2]})
    legacy = PatchCore(**model.get_config()).load_state_tensors({k: v for k, v in tensors.items() if k != "fine_envelope"})
    assert legacy.describe()["fine_envelope"] is False  # saved before the envelope: plain line strength
