"""Synthetic defects pasted onto good images, with their exact masks.

Labelled defects are rare and the test set must not leak into training, so the
U-Net learns from anomalies made out of good images, in the spirit of DRAEM
(Zavrtanik et al. 2021) and CutPaste (Li et al. 2021). The ensemble uses the
same anomalies to measure how well each detector separates good from bad.
The kinds are deliberately generic (no knowledge of any generator or product):

* ``texture``: a Perlin-noise-shaped region filled, with a random opacity, from
  another texture source: another good image (shifted, rotated, colour-jittered),
  the image itself moved, or procedural noise texture;
* ``blob``: a small Perlin-shaped spot of one colour (hole, stain, contamination);
* ``cutpaste``: a rectangle or a thin rotated "scar" copied from elsewhere;
* ``scratch``: thin dark or bright curved strokes;
* ``warp``: a local geometric distortion (dent, bend) inside a Perlin region.

Every changed pixel differs by at least ``min_contrast`` grey levels in some
channel, and the returned mask is True exactly where pixels changed.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

#: Kinds of anomaly and their default sampling weights.
KINDS: dict[str, float] = {"texture": 0.3, "blob": 0.2, "cutpaste": 0.2, "scratch": 0.17, "warp": 0.13}

#: Smallest change (grey levels, in the most changed channel) of an anomalous pixel.
DEFAULT_MIN_CONTRAST = 10


# ------------------------------------------------------------------ noise


def _fade(t: np.ndarray) -> np.ndarray:
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


def perlin_noise(shape: tuple[int, int], res: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """2-D gradient (Perlin) noise of ``shape`` with ``res`` cells per axis, values about in [-1, 1].

    Fully vectorised: one random gradient per lattice corner, quintic interpolation.
    """
    h, w = shape
    ry, rx = max(1, int(res[0])), max(1, int(res[1]))
    angles = rng.uniform(0.0, 2.0 * np.pi, size=(ry + 1, rx + 1))
    grads = np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    y = np.arange(h, dtype=np.float64) * (ry / h)
    x = np.arange(w, dtype=np.float64) * (rx / w)
    yi = np.minimum(y.astype(np.int64), ry - 1)
    xi = np.minimum(x.astype(np.int64), rx - 1)
    yf = (y - yi)[:, None]
    xf = (x - xi)[None, :]
    g00 = grads[yi[:, None], xi[None, :]]
    g10 = grads[yi[:, None] + 1, xi[None, :]]
    g01 = grads[yi[:, None], xi[None, :] + 1]
    g11 = grads[yi[:, None] + 1, xi[None, :] + 1]
    n00 = g00[..., 0] * yf + g00[..., 1] * xf
    n10 = g10[..., 0] * (yf - 1) + g10[..., 1] * xf
    n01 = g01[..., 0] * yf + g01[..., 1] * (xf - 1)
    n11 = g11[..., 0] * (yf - 1) + g11[..., 1] * (xf - 1)
    u, v = _fade(yf), _fade(xf)
    n0 = n00 * (1 - v) + n01 * v
    n1 = n10 * (1 - v) + n11 * v
    return (np.sqrt(2.0) * (n0 * (1 - u) + n1 * u)).astype(np.float32)


def fractal_noise(
    shape: tuple[int, int], rng: np.random.Generator, base_res: int = 2, octaves: int = 3
) -> np.ndarray:
    """Sum of Perlin octaves (each twice the frequency, half the amplitude), scaled to [0, 1]."""
    out = np.zeros(shape, dtype=np.float32)
    amp = 1.0
    for o in range(octaves):
        r = base_res * (2**o)
        out += amp * perlin_noise(shape, (r, r), rng)
        amp *= 0.5
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / (hi - lo + 1e-8)


def perlin_mask(
    shape: tuple[int, int],
    rng: np.random.Generator,
    area_range: tuple[float, float] = (0.005, 0.12),
    max_cells: int = 8,
) -> np.ndarray:
    """A blob-shaped bool mask: rotated Perlin noise thresholded at a quantile.

    Thresholding at a quantile (rather than a fixed level) fixes the area to a
    log-uniform fraction of the image, so the mask is never empty.
    """
    h, w = shape
    top = int(np.log2(max(1, max_cells))) + 1
    res = (int(2 ** rng.integers(0, top)), int(2 ** rng.integers(0, top)))
    side = int(np.ceil(np.hypot(h, w)))  # rotate a larger field so corners stay defined
    noise = perlin_noise((side, side), res, rng)
    rot = cv2.getRotationMatrix2D((side / 2, side / 2), float(rng.uniform(-90, 90)), 1.0)
    noise = cv2.warpAffine(noise, rot, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    y0, x0 = (side - h) // 2, (side - w) // 2
    noise = noise[y0 : y0 + h, x0 : x0 + w]
    area = float(np.exp(rng.uniform(np.log(area_range[0]), np.log(area_range[1]))))
    k = max(1, int(round(area * h * w)))
    thresh = np.partition(noise.ravel(), h * w - k)[h * w - k]
    return noise >= thresh


# ------------------------------------------------------------------ texture sources


def _colour_jitter(img: np.ndarray, rng: np.random.Generator, strength: float = 0.35) -> np.ndarray:
    """Random per-channel gain, brightness shift and contrast change (float32 out)."""
    out = img.astype(np.float32)
    gain = rng.uniform(1 - strength, 1 + strength, size=3).astype(np.float32)
    shift = rng.uniform(-60 * strength, 60 * strength)
    contrast = rng.uniform(1 - strength, 1 + strength)
    mean = out.mean(axis=(0, 1), keepdims=True)
    return (out - mean) * contrast * gain + mean + shift


def _affine_copy(img: np.ndarray, rng: np.random.Generator, max_shift: float = 0.5) -> np.ndarray:
    """``img`` rotated, scaled and shifted (reflect border), same shape."""
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(-180, 180)), float(rng.uniform(0.7, 1.4)))
    m[0, 2] += rng.uniform(-max_shift, max_shift) * w
    m[1, 2] += rng.uniform(-max_shift, max_shift) * h
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def procedural_texture(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random colourful texture (noise, stripes or speckle) as float32 ``(H, W, 3)``."""
    h, w = shape
    c1, c2 = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
    style = rng.integers(0, 3)
    if style == 0:  # cloudy noise
        t = fractal_noise(shape, rng, base_res=int(rng.integers(2, 9)), octaves=3)
    elif style == 1:  # wavy stripes
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        ang = rng.uniform(0, np.pi)
        freq = rng.uniform(4, 20) * 2 * np.pi / max(h, w)
        warp = 6.0 * perlin_noise(shape, (2, 2), rng)
        t = 0.5 + 0.5 * np.sin(freq * (np.cos(ang) * xx + np.sin(ang) * yy) + warp)
    else:  # speckle
        t = (rng.random(shape) < rng.uniform(0.05, 0.5)).astype(np.float32)
        t = cv2.GaussianBlur(t, (0, 0), rng.uniform(0.5, 1.5))
        t = t / (t.max() + 1e-8)
    return c1[None, None, :] * (1 - t[..., None]) + c2[None, None, :] * t[..., None]


def _texture_source(image: np.ndarray, rng: np.random.Generator, source: np.ndarray | None) -> np.ndarray:
    """Content for a pasted region: another image, the image itself moved, or procedural noise."""
    h, w = image.shape[:2]
    choice = rng.random()
    if source is not None and choice < 0.5:
        src = source if source.shape[:2] == (h, w) else cv2.resize(source, (w, h), interpolation=cv2.INTER_AREA)
        return _colour_jitter(_affine_copy(src, rng), rng)
    if choice < 0.75:
        return _colour_jitter(_affine_copy(image, rng), rng)
    return procedural_texture((h, w), rng)


# ------------------------------------------------------------------ region shapes


def _rect_mask(shape: tuple[int, int], rng: np.random.Generator, scar: bool) -> np.ndarray:
    """A rotated rectangle (CutPaste) or a thin long rotated bar (CutPaste-scar)."""
    h, w = shape
    s = min(h, w)
    if scar:
        length = rng.uniform(0.1, 0.35) * s
        width = max(1.5, rng.uniform(0.01, 0.04) * s)
    else:
        area = rng.uniform(0.01, 0.08) * h * w
        ratio = np.exp(rng.uniform(np.log(0.3), np.log(3.3)))
        length, width = np.sqrt(area * ratio), np.sqrt(area / ratio)
    centre = (float(rng.uniform(0.1, 0.9) * w), float(rng.uniform(0.1, 0.9) * h))
    box = cv2.boxPoints((centre, (float(length), float(width)), float(rng.uniform(0, 180))))
    mask = np.zeros(shape, dtype=np.uint8)
    cv2.fillPoly(mask, [np.round(box).astype(np.int32)], 1)
    return mask.astype(bool)


def _stroke_mask(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """One to three thin curved strokes (quadratic Bezier curves) like scratches or cracks."""
    h, w = shape
    s = min(h, w)
    mask = np.zeros(shape, dtype=np.uint8)
    t = np.linspace(0.0, 1.0, 48)[:, None]
    for _ in range(int(rng.integers(1, 4))):
        p0 = rng.uniform(0.05, 0.95, size=2) * (w, h)
        ang = rng.uniform(0, 2 * np.pi)
        length = rng.uniform(0.15, 0.6) * s
        p2 = np.clip(p0 + length * np.array([np.cos(ang), np.sin(ang)]), 0, (w - 1, h - 1))
        p1 = (p0 + p2) / 2 + rng.normal(0, 0.15 * length, size=2)
        pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
        thickness = max(1, int(round(rng.uniform(0.005, 0.02) * s)))
        cv2.polylines(mask, [np.round(pts).astype(np.int32)], False, 1, thickness=thickness)
    return mask.astype(bool)


# ------------------------------------------------------------------ anomaly kinds


def _blend(image: np.ndarray, content: np.ndarray, region: np.ndarray, opacity: float) -> np.ndarray:
    out = image.astype(np.float32)
    out[region] = (1.0 - opacity) * out[region] + opacity * content[region]
    return out


def _texture_anomaly(image, rng, source):
    region = perlin_mask(image.shape[:2], rng)
    return _blend(image, _texture_source(image, rng, source), region, float(rng.uniform(0.4, 1.0))), region


def _cutpaste_anomaly(image, rng, source):
    region = _rect_mask(image.shape[:2], rng, scar=bool(rng.random() < 0.4))
    content = _texture_source(image, rng, source) if rng.random() < 0.3 else _colour_jitter(
        _affine_copy(image, rng, max_shift=0.4), rng, strength=0.15
    )
    return _blend(image, content, region, 1.0), region


def _scratch_anomaly(image, rng, source):
    region = _stroke_mask(image.shape[:2], rng)
    lum = float(image.mean())
    level = rng.uniform(0, 60) if (lum > 128) ^ (rng.random() < 0.25) else rng.uniform(195, 255)
    colour = np.clip(level + rng.normal(0, 20, size=3), 0, 255).astype(np.float32)
    content = np.broadcast_to(colour, image.shape)
    return _blend(image, content, region, float(rng.uniform(0.6, 1.0))), region


def _blob_anomaly(image, rng, source):
    region = perlin_mask(image.shape[:2], rng, area_range=(0.001, 0.03))
    local = image[region].astype(np.float32).mean(axis=0)
    style = rng.random()
    if style < 0.4:  # dark: hole, burn, dirt
        colour = rng.uniform(0, 50, size=3)
    elif style < 0.6:  # bright: glare, residue
        colour = rng.uniform(200, 255, size=3)
    else:  # tinted version of the local colour: stain, discolouration
        colour = local * rng.uniform(0.4, 1.6, size=3)
    shading = 1.0 + rng.uniform(0.0, 0.15) * perlin_noise(image.shape[:2], (4, 4), rng)[..., None]
    content = np.clip(colour[None, None, :] * shading, 0, 255)
    return _blend(image, content, region, float(rng.uniform(0.5, 1.0))), region


def _warp_anomaly(image, rng, source):
    h, w = image.shape[:2]
    # A warp only shows where there is structure: of a few candidate regions, keep the edgiest.
    grey = image.astype(np.float32).mean(axis=2)
    edges = np.abs(cv2.Sobel(grey, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    candidates = [perlin_mask((h, w), rng, area_range=(0.01, 0.08), max_cells=2) for _ in range(4)]
    region = max(candidates, key=lambda m: float(edges[m].mean()))
    soft = cv2.GaussianBlur(region.astype(np.float32), (0, 0), max(1.0, 0.02 * min(h, w)))
    amp = rng.uniform(0.02, 0.06) * min(h, w)
    dx = amp * perlin_noise((h, w), (4, 4), rng) * soft
    dy = amp * perlin_noise((h, w), (4, 4), rng) * soft
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    warped = cv2.remap(image, xx + dx, yy + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    out = image.astype(np.float32)
    changed = soft > 0.05
    out[changed] = warped[changed].astype(np.float32) * rng.uniform(0.85, 1.15)
    return out, changed


_MAKERS = {
    "texture": _texture_anomaly,
    "blob": _blob_anomaly,
    "cutpaste": _cutpaste_anomaly,
    "scratch": _scratch_anomaly,
    "warp": _warp_anomaly,
}


def _finalise(image: np.ndarray, out: np.ndarray, region: np.ndarray, min_contrast: int) -> np.ndarray:
    """Round, enforce a visible change on every region pixel, and return uint8 (vectorised).

    Region pixels whose change is below ``min_contrast`` are shifted by
    ``min_contrast`` away from the nearer end of the range, which always changes them.
    """
    out = np.clip(np.round(out), 0, 255)
    base = image.astype(np.float32)
    weak = region & (np.abs(out - base).max(axis=2) < min_contrast)
    if weak.any():
        direction = np.where(base[weak].mean(axis=1, keepdims=True) < 127.5, 1.0, -1.0)
        out[weak] = np.clip(base[weak] + direction * min_contrast, 0, 255)
    out[~region] = base[~region]
    return out.astype(np.uint8)


def add_synthetic_anomaly(
    image: np.ndarray,
    rng: np.random.Generator,
    source: np.ndarray | None = None,
    kinds: Sequence[str] | None = None,
    min_contrast: int = DEFAULT_MIN_CONTRAST,
) -> tuple[np.ndarray, np.ndarray]:
    """Paste one random synthetic defect onto ``image``.

    ``source`` (optional, any size) is another good image used as texture source.
    ``kinds`` restricts the kinds drawn (default: all of :data:`KINDS`).
    Returns a new ``(H, W, 3)`` uint8 image and a non-empty ``(H, W)`` bool mask
    that is True exactly where the image changed. Deterministic for a given ``rng`` state.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    if min(image.shape[:2]) < 8:
        raise ValueError(f"image too small for a synthetic anomaly: {image.shape[:2]} (need at least 8x8)")
    if source is not None and (source.ndim != 3 or source.shape[2] != 3 or source.dtype != np.uint8):
        raise ValueError(f"source: expected an (H, W, 3) uint8 RGB image, got {source.shape} {source.dtype}")
    names = list(KINDS) if kinds is None else list(kinds)
    unknown = [k for k in names if k not in KINDS]
    if unknown or not names:
        raise ValueError(f"unknown anomaly kinds {unknown}; choose from {list(KINDS)}")
    weights = np.array([KINDS[k] for k in names], dtype=np.float64)
    kind = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    out, region = _MAKERS[kind](image, rng, source)
    if not region.any():  # defensive: every maker returns a non-empty region
        region = np.zeros(image.shape[:2], dtype=bool)
        region[image.shape[0] // 2, image.shape[1] // 2] = True
    result = _finalise(image, out, region, min_contrast)
    mask = (result != image).any(axis=2)
    return result, mask


def add_synthetic_anomaly_on(
    image: np.ndarray,
    rng: np.random.Generator,
    region: np.ndarray,
    source: np.ndarray | None = None,
    tries: int = 10,
    min_pixels: int = 16,
    kinds: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic defect cut to ``region`` (an ``(H, W)`` bool mask, e.g. the segmented part).

    Real defects lie on the part, not on the background around it. Draws until a defect
    covers at least ``min_pixels`` of ``region`` (at most ``tries`` draws) and keeps only
    that overlap; when every draw misses, the last one is returned as it is.
    Same contract as :func:`add_synthetic_anomaly` otherwise (``kinds`` included).
    """
    if region.shape != image.shape[:2]:
        raise ValueError(f"region shape {region.shape} does not match image {image.shape[:2]}")
    for _ in range(max(1, int(tries))):
        anomalous, mask = add_synthetic_anomaly(image, rng, source=source, kinds=kinds)
        kept = mask & region
        if kept.sum() >= min_pixels:
            return np.where(kept[..., None], anomalous, image), kept
    return anomalous, mask


def add_synthetic_anomalies(
    images: Sequence[np.ndarray],
    rng: np.random.Generator,
    probability: float = 1.0,
    kinds: Sequence[str] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Batch helper: each image gets an anomaly with ``probability`` (else it is returned unchanged
    with an empty mask); texture sources are drawn from the other images of the batch."""
    out_images: list[np.ndarray] = []
    out_masks: list[np.ndarray] = []
    n = len(images)
    for i, img in enumerate(images):
        if rng.random() >= probability:
            out_images.append(img)
            out_masks.append(np.zeros(img.shape[:2], dtype=bool))
            continue
        source = images[int((i + rng.integers(1, n)) % n)] if n > 1 else None
        a, m = add_synthetic_anomaly(img, rng, source=source, kinds=kinds)
        out_images.append(a)
        out_masks.append(m)
    return out_images, out_masks
