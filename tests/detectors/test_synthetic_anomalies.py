"""Synthetic anomalies: exact masks, visible changes, determinism, generality."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from qc_models.detectors.synthetic_anomalies import (
    DEFAULT_MIN_CONTRAST,
    KINDS,
    add_synthetic_anomalies,
    add_synthetic_anomaly,
    add_synthetic_anomaly_on,
    perlin_mask,
    perlin_noise,
)


def _texture(rng: np.random.Generator, h: int = 64, w: int = 64) -> np.ndarray:
    base = rng.integers(60, 200, size=(h // 4, w // 4, 3)).astype(np.uint8)
    return cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC)


def _object(h: int = 64, w: int = 64) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)  # black background: shifts must go upwards
    cv2.circle(img, (w // 2, h // 2), min(h, w) // 3, (255, 255, 255), -1)  # saturated foreground
    return img


@pytest.mark.parametrize("kind", list(KINDS))
def test_mask_is_exactly_where_pixels_changed(kind: str) -> None:
    rng = np.random.default_rng(1)
    for i in range(12):
        img = _texture(rng, 48, 80) if i % 2 else _object(64, 56)
        source = _texture(rng, 32, 32) if i % 3 == 0 else None  # other size: resized inside
        out, mask = add_synthetic_anomaly(img, rng, source=source, kinds=[kind])
        assert out.shape == img.shape and out.dtype == np.uint8
        assert mask.shape == img.shape[:2] and mask.dtype == bool
        assert mask.any(), "mask must never be empty"
        np.testing.assert_array_equal(mask, (out != img).any(axis=2))


def test_every_changed_pixel_is_visibly_changed() -> None:
    rng = np.random.default_rng(2)
    for _ in range(20):
        img = _object()
        out, mask = add_synthetic_anomaly(img, rng)
        diff = np.abs(out.astype(int) - img.astype(int)).max(axis=2)
        assert diff[mask].min() >= DEFAULT_MIN_CONTRAST


def test_input_image_is_not_modified() -> None:
    rng = np.random.default_rng(3)
    img = _texture(rng)
    before = img.copy()
    add_synthetic_anomaly(img, rng, source=_object())
    np.testing.assert_array_equal(img, before)


def test_deterministic_for_a_seed_and_varies_across_seeds() -> None:
    img, src = _texture(np.random.default_rng(0)), _object()
    a1, m1 = add_synthetic_anomaly(img, np.random.default_rng(42), source=src)
    a2, m2 = add_synthetic_anomaly(img, np.random.default_rng(42), source=src)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(m1, m2)
    masks = {add_synthetic_anomaly(img, np.random.default_rng(s), source=src)[1].tobytes() for s in range(6)}
    assert len(masks) == 6


def test_mask_areas_stay_plausible() -> None:
    """Defects cover a small part of the image, not nothing and not most of it."""
    rng = np.random.default_rng(4)
    fractions = [add_synthetic_anomaly(_texture(rng), rng)[1].mean() for _ in range(40)]
    assert max(fractions) < 0.5
    assert np.median(fractions) > 0.002


def test_batch_helper_probability_and_sources() -> None:
    rng = np.random.default_rng(5)
    images = [_texture(rng) for _ in range(4)]
    same, empty = add_synthetic_anomalies(images, rng, probability=0.0)
    assert all(a is b for a, b in zip(same, images))
    assert not any(m.any() for m in empty)
    out, masks = add_synthetic_anomalies(images, rng, probability=1.0)
    assert len(out) == len(masks) == 4
    for img, a, m in zip(images, out, masks):
        assert m.any()
        np.testing.assert_array_equal(m, (a != img).any(axis=2))
    single, single_masks = add_synthetic_anomalies(images[:1], rng)  # no other image to borrow from
    assert single_masks[0].any()


def test_perlin_noise_and_mask_shapes() -> None:
    rng = np.random.default_rng(6)
    noise = perlin_noise((37, 53), (3, 5), rng)  # not divisible by the lattice
    assert noise.shape == (37, 53) and np.isfinite(noise).all()
    assert noise.std() > 0.05 and np.abs(noise).max() <= 1.5
    mask = perlin_mask((40, 60), rng, area_range=(0.1, 0.1))
    assert mask.shape == (40, 60)
    assert abs(mask.mean() - 0.1) < 0.02


def test_bad_input_is_refused_clearly() -> None:
    rng = np.random.default_rng(7)
    with pytest.raises(ValueError, match="uint8"):
        add_synthetic_anomaly(np.zeros((32, 32, 3), np.float32), rng)
    with pytest.raises(ValueError, match="too small"):
        add_synthetic_anomaly(np.zeros((4, 32, 3), np.uint8), rng)
    with pytest.raises(ValueError, match="unknown anomaly kinds"):
        add_synthetic_anomaly(np.zeros((32, 32, 3), np.uint8), rng, kinds=["rust"])
    with pytest.raises(ValueError, match="source"):
        add_synthetic_anomaly(np.zeros((32, 32, 3), np.uint8), rng, source=np.zeros((32, 32), np.uint8))


def test_anomaly_on_a_region_stays_inside_it() -> None:
    rng = np.random.default_rng(5)
    image, source = _texture(rng), _texture(rng)
    yy, xx = np.mgrid[:64, :64]
    region = (yy - 32) ** 2 + (xx - 32) ** 2 <= 14**2  # a disc covering a seventh of the image
    anywhere_outside = missed = 0
    for seed in range(20):
        out, mask = add_synthetic_anomaly_on(image, np.random.default_rng(seed), region, source=source, min_pixels=6)
        assert np.array_equal(mask, (out != image).any(axis=2))
        if (mask & region).sum() < 6:  # every draw missed the region: the last one is kept as it is
            missed += 1
            continue
        assert not (mask & ~region).any()
        assert np.array_equal(out[~region], image[~region])  # nothing changed off the region
        _, free = add_synthetic_anomaly(image, np.random.default_rng(seed), source=source)
        anywhere_outside += int((free & ~region).any())
    assert missed <= 2  # 10 draws rarely all miss a seventh of the image
    assert anywhere_outside >= 10  # unconfined, most defects reach beyond the disc
    with pytest.raises(ValueError, match="region shape"):
        add_synthetic_anomaly_on(image, rng, region[:32])
