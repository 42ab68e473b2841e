"""Vectorised drawing primitives shared by the synthetic texture and object renderers.

Everything works on float32 ``(H, W)`` fields or ``(H, W, 3)`` RGB images in the
0-255 range; alphas are exactly 0 outside a shape so that compositing a defect
leaves every other pixel bit-identical (which is what makes the masks exact).
All randomness comes from the caller's ``numpy.random.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

Generator = np.random.Generator

#: Alphas below this are set to exactly 0 so soft edges do not leak over the whole image.
ALPHA_CUTOFF = 0.03


@lru_cache(maxsize=8)
def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Read-only pixel-centre coordinates ``(yy, xx)`` of a ``size`` x ``size`` image."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    yy.setflags(write=False)
    xx.setflags(write=False)
    return yy, xx


def px(size: int, at_256: float) -> float:
    """A length given for a 256 px image, scaled to ``size`` (so every size looks alike)."""
    return at_256 * size / 256.0


def fractal_noise(
    rng: Generator, shape: tuple[int, int], cells: float, octaves: int = 3, aspect: tuple[float, float] = (1.0, 1.0)
) -> np.ndarray:
    """Smooth value noise with unit standard deviation: ``cells`` random values across the field.

    ``aspect`` stretches the cell count per axis (``(1, 0.1)`` gives streaks along x).
    Built from a few small random grids upsampled with bicubic interpolation.
    """
    h, w = shape
    out = np.zeros((h, w), np.float32)
    amp = 1.0
    for octave in range(octaves):
        c = cells * 2.0**octave
        gh = max(2, int(round(c * aspect[0])) + 1)
        gw = max(2, int(round(c * aspect[1])) + 1)
        g = rng.standard_normal((gh, gw)).astype(np.float32)
        out += amp * cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)
        amp *= 0.5
    std = float(out.std())
    return out / std if std > 1e-6 else out


def cut_alpha(alpha: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] and zero the faint tail below :data:`ALPHA_CUTOFF`."""
    alpha = np.clip(alpha, 0.0, 1.0).astype(np.float32)
    alpha[alpha < ALPHA_CUTOFF] = 0.0
    return alpha


def blob_alpha(
    rng: Generator,
    size: int,
    center: tuple[float, float],
    radius: float,
    irregularity: float = 0.35,
    softness: float = 1.0,
    elongation: float = 1.0,
) -> np.ndarray:
    """Alpha of an irregular blob (an ellipse whose edge is warped by noise).

    ``center`` is ``(y, x)`` in pixels; ``softness`` is the edge ramp width in pixels.
    Computed only in the blob's bounding box.
    """
    cy, cx = center
    reach = radius * max(1.0, elongation) * (1.0 + 1.5 * irregularity) + 2.0 * softness + 2.0
    y0, y1 = max(0, int(cy - reach)), min(size, int(cy + reach) + 2)
    x0, x1 = max(0, int(cx - reach)), min(size, int(cx + reach) + 2)
    alpha = np.zeros((size, size), np.float32)
    if y1 <= y0 or x1 <= x0:
        return alpha
    yy, xx = grid(size)
    dy, dx = yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx
    theta = rng.uniform(0, np.pi)
    c, s = float(np.cos(theta)), float(np.sin(theta))
    u = (dx * c + dy * s) / elongation
    v = -dx * s + dy * c
    dist = np.sqrt(u * u + v * v)
    cells = max(2.0, 1.2 * (y1 - y0) / max(radius, 1.0))
    noise = fractal_noise(rng, (y1 - y0, x1 - x0), cells, octaves=2)
    field = radius * (1.0 + irregularity * noise) - dist
    alpha[y0:y1, x0:x1] = cut_alpha(field / max(softness, 1e-3) + 0.5)
    return alpha


def random_curve(
    rng: Generator, start: tuple[float, float], angle: float, length: float, wiggle: float, n_seg: int = 24
) -> np.ndarray:
    """Points ``(N, 2)`` as ``(x, y)`` of a random-walk curve; ``wiggle`` is radians per segment."""
    angles = angle + np.cumsum(rng.normal(0.0, wiggle, n_seg))
    step = length / n_seg
    steps = np.stack([np.cos(angles), np.sin(angles)], axis=1) * step
    return np.vstack([np.asarray(start, np.float64)[None], start + np.cumsum(steps, axis=0)])


def polyline_alpha(size: int, curves: list[np.ndarray], thickness: float) -> np.ndarray:
    """Anti-aliased alpha of polylines (``(x, y)`` points) drawn ``thickness`` pixels wide."""
    canvas = np.zeros((size, size), np.uint8)
    t = max(1, int(round(thickness)))
    pts = [np.round(c * 16.0).astype(np.int32).reshape(-1, 1, 2) for c in curves]
    cv2.polylines(canvas, pts, False, 255, t, cv2.LINE_AA, shift=4)
    return cut_alpha(canvas.astype(np.float32) / 255.0)


def crack_alpha(
    rng: Generator,
    size: int,
    start: tuple[float, float],
    angle: float,
    length: float,
    thickness: float,
    branches: int,
    wiggle: float = 0.3,
) -> np.ndarray:
    """Alpha of a jagged, tapering crack plus ``branches`` thinner offshoots starting on it."""
    main = random_curve(rng, start, angle, length, wiggle, n_seg=32)
    alpha = tapered_alpha(size, main, thickness)
    for _ in range(branches):
        at = main[rng.integers(6, len(main) - 6)]
        side = rng.choice([-1.0, 1.0]) * rng.uniform(0.4, 1.1)
        branch = random_curve(rng, tuple(at), angle + side, length * rng.uniform(0.15, 0.4), wiggle, 12)
        alpha = np.maximum(alpha, tapered_alpha(size, branch, max(1.0, thickness * 0.6)))
    return alpha


def composite(img: np.ndarray, alpha: np.ndarray, content: np.ndarray | tuple[float, float, float]) -> np.ndarray:
    """``img`` where alpha is 0 (bit-identical), ``content`` where it is 1, blended between."""
    a = alpha[..., None]
    out = img.copy()
    sel = alpha > 0
    content = np.broadcast_to(np.asarray(content, np.float32), img.shape)
    out[sel] = (img * (1.0 - a) + content * a)[sel]
    return out


def textured(rng: Generator, size: int, colour: np.ndarray | tuple[float, float, float], amount: float) -> np.ndarray:
    """A ``(size, size, 3)`` fill of ``colour`` with mottled brightness, so defects are never flat paint."""
    shade = 1.0 + amount * fractal_noise(rng, (size, size), max(3.0, size / 12.0), octaves=2)
    return np.asarray(colour, np.float32) * shade[..., None]


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur (optics / focus); a no-op for tiny sigmas."""
    if sigma < 0.25:
        return img
    return cv2.GaussianBlur(img, (0, 0), sigma)


def random_center(rng: Generator, size: int, margin: float = 0.12) -> tuple[float, float]:
    """A ``(y, x)`` point away from the border by ``margin`` of the image side."""
    lo, hi = margin * size, (1.0 - margin) * size
    return float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi))


def jitter_colour(rng: Generator, rgb: tuple[float, float, float], amount: float) -> np.ndarray:
    """A colour varied by a common brightness factor and a small per-channel tint."""
    base = np.asarray(rgb, np.float32)
    return base * rng.uniform(1 - amount, 1 + amount) * rng.uniform(1 - amount / 3, 1 + amount / 3, 3).astype(np.float32)


def sensor_noise(rng: Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Zero-mean noise of standard deviation ``sigma`` (sum of two uniform bytes: triangular, ~10x faster
    than Gaussian draws, indistinguishable once quantised)."""
    r = rng.integers(0, 256, (2, *shape), dtype=np.uint8)
    noise = r[0].astype(np.float32)
    noise += r[1]
    noise -= 255.0
    noise *= np.float32(sigma / 104.52)  # std of the sum of two uniform 0..255 integers
    return noise


def tapered_alpha(size: int, curve: np.ndarray, thickness: float) -> np.ndarray:
    """Alpha of a polyline whose width swells to ``thickness`` in the middle and tapers to the ends."""
    canvas = np.zeros((size, size), np.uint8)
    pts = np.round(curve * 16.0).astype(np.int32)
    n = len(pts) - 1
    widths = np.maximum(1, np.round(thickness * np.sin(np.pi * (np.arange(n) + 0.5) / n) ** 0.7)).astype(int)
    for i in range(n):  # one call per segment (tens), not per pixel
        cv2.line(canvas, tuple(pts[i]), tuple(pts[i + 1]), 255, int(widths[i]), cv2.LINE_AA, shift=4)
    return cut_alpha(canvas.astype(np.float32) / 255.0)


@dataclass(frozen=True)
class Finished:
    """The quantised clean and defective images and the exact set of changed pixels."""

    clean: np.ndarray
    image: np.ndarray
    mask: np.ndarray


def finish(rng: Generator, clean: np.ndarray, defective: np.ndarray | None) -> Finished:
    """Apply the same lighting and sensor noise to both renders and quantise to uint8.

    Pixels where the two float renders are identical stay identical; pixels the defect
    touched are forced to differ by at least one grey level, so the mask (pixels whose
    value changed) is exactly the defect's footprint.
    """
    size = clean.shape[0]
    yy, xx = grid(size)
    gain = rng.uniform(0.88, 1.12)
    gx, gy = (float(v) for v in rng.uniform(-0.14, 0.14, 2))
    light = (gain * (1.0 + gx * (xx / size - 0.5) + gy * (yy / size - 0.5)))[..., None].astype(np.float32)
    sigma = rng.uniform(0.6, 2.4)
    noise = sensor_noise(rng, (size, size, 3), sigma * 0.35)
    noise += sensor_noise(rng, (size, size, 1), sigma)

    def quantise(img: np.ndarray, lit: np.ndarray, noisy: np.ndarray) -> np.ndarray:
        out = img * lit
        out += noisy
        np.rint(out, out=out)
        return np.clip(out, 0, 255, out=out).astype(np.uint8)

    clean_u8 = quantise(clean, light, noise)
    if defective is None:
        return Finished(clean_u8, clean_u8, np.zeros((size, size), bool))
    region = (defective != clean).any(axis=2)
    image = clean_u8.copy()  # outside the region the inputs are identical, so only the region is re-quantised
    changed = quantise(defective[region], light[region], noise[region])
    same = (changed == clean_u8[region]).all(axis=1)
    if same.any():
        delta = (defective[region] - clean[region])[same]
        rows = np.arange(len(delta))
        ch = np.abs(delta).argmax(axis=1)
        sign = np.where(delta[rows, ch] < 0, -1, 1)
        base = changed[same][rows, ch].astype(np.int16)
        value = base + sign
        value = np.where((value < 0) | (value > 255), base - sign, value)
        fixed = changed[same]
        fixed[rows, ch] = value.astype(np.uint8)
        changed[same] = fixed
    image[region] = changed
    return Finished(clean_u8, image, region)
