"""Synthetic texture categories: a woven carpet and a wood board, with their defects.

Each category is a ``sample(rng, size) -> params`` function (everything random
about one good part), a ``render(params, size)`` function (deterministic given the
params) and defect functions ``(img, params, rng, size) -> img`` that only change
the pixels of the defect. Textures vary in phase, angle, scale, colour and blur.
"""

from __future__ import annotations

import numpy as np

from qc_models.data.synthetic_common import (
    Generator,
    blob_alpha,
    blur,
    composite,
    crack_alpha,
    fractal_noise,
    grid,
    jitter_colour,
    polyline_alpha,
    px,
    random_center,
    random_curve,
    textured,
)

# ---------------------------------------------------------------- carpet (plain-weave fabric)


def carpet_sample(rng: Generator, size: int) -> dict:
    """Random weave period, angle, phase, colour and focus of one carpet patch."""
    period = size / rng.uniform(13.0, 17.0)
    return {
        "period": period,
        "theta": rng.uniform(-0.07, 0.07),
        "phase": rng.uniform(0, 2 * period, 2),
        "colour": jitter_colour(rng, (150.0, 100.0, 72.0), 0.06),
        "blur": rng.uniform(0.0, px(size, 0.7)),
        "seed": int(rng.integers(2**32)),
    }


def carpet_render(p: dict, size: int) -> np.ndarray:
    """Plain weave: warp and weft threads alternate on top cell by cell, with fibre noise."""
    rng = np.random.default_rng(p["seed"])
    yy, xx = grid(size)
    c, s = float(np.cos(p["theta"])), float(np.sin(p["theta"]))
    a = (xx * c + yy * s + float(p["phase"][0])) / p["period"]
    b = (-xx * s + yy * c + float(p["phase"][1])) / p["period"]
    fa, fb = a - np.floor(a), b - np.floor(b)
    top = ((np.floor(a) + np.floor(b)) % 2) == 0
    sin_a, sin_b = np.sin(np.pi * fa), np.sin(np.pi * fb)
    tube_a, tube_b = np.sqrt(sin_a), np.sqrt(sin_b)
    shade = np.where(top, tube_a * (0.7 + 0.3 * sin_b), tube_b * (0.7 + 0.3 * sin_a))
    fibre = 0.10 * fractal_noise(rng, (size, size), size / 3.0, octaves=2)
    mottle = 0.05 * fractal_noise(rng, (size, size), 3.0, octaves=2)
    img = p["colour"] * ((0.42 + 0.58 * shade) * (1.0 + fibre + mottle))[..., None]
    return blur(img.astype(np.float32), p["blur"])


def carpet_hole(img: np.ndarray, p: dict, rng: Generator, size: int) -> np.ndarray:
    """Torn-out threads: a dark opening showing the backing, with a frayed lighter rim."""
    center = random_center(rng, size)
    radius = rng.uniform(px(size, 6), px(size, 24))
    rim = blob_alpha(rng, size, center, radius * 1.25, 0.4, px(size, 2.0))
    hole = blob_alpha(rng, size, center, radius, 0.45, px(size, 1.0))
    frayed = img * (1.0 + rng.uniform(0.1, 0.3) * (rim - hole).clip(0, 1))[..., None]
    backing = img * rng.uniform(0.15, 0.4) * (0.6 + 0.4 * hole[..., None] ** 2)  # shadowed under the rim
    out = composite(img, rim, frayed)
    return composite(out, hole, backing)


def carpet_stain(img: np.ndarray, p: dict, rng: Generator, size: int) -> np.ndarray:
    """A soaked-in stain of varying strength (some barely visible) and tint."""
    tint = np.asarray([(70, 45, 28), (85, 85, 88), (75, 95, 55), (40, 40, 48)][rng.integers(4)], np.float32)
    radius = rng.uniform(px(size, 8), px(size, 36))
    alpha = blob_alpha(rng, size, random_center(rng, size), radius, 0.5, radius * 0.35, rng.uniform(1, 1.8))
    strength = rng.uniform(0.12, 0.6)
    return composite(img, alpha * strength, img * (tint / p["colour"].mean()))


def carpet_thread(img: np.ndarray, p: dict, rng: Generator, size: int) -> np.ndarray:
    """A stray thread of another colour lying on the surface."""
    y, x = random_center(rng, size, 0.05)
    curve = random_curve(rng, (x, y), rng.uniform(0, 2 * np.pi), rng.uniform(0.2, 0.6) * size, 0.12)
    alpha = polyline_alpha(size, [curve], rng.uniform(px(size, 1.2), px(size, 3.0)))
    colour = jitter_colour(rng, [(220, 210, 190), (45, 40, 38), (60, 80, 140), (170, 60, 50)][rng.integers(4)], 0.1)
    return composite(img, alpha, colour * (0.85 + 0.15 * img / (img.max() + 1e-6)))


def carpet_color(img: np.ndarray, p: dict, rng: Generator, size: int) -> np.ndarray:
    """A dye fault: a patch with shifted hue and brightness, often subtle."""
    radius = rng.uniform(px(size, 12), px(size, 40))
    alpha = blob_alpha(rng, size, random_center(rng, size), radius, 0.3, radius * 0.3, rng.uniform(1, 2.2))
    shift = rng.uniform(-0.3, 0.3, 3).astype(np.float32)
    shift[rng.integers(3)] = rng.choice([-1, 1]) * rng.uniform(0.15, 0.35)
    return composite(img, alpha, img * (1.0 + shift))


# ---------------------------------------------------------------- wood (planed board)


def wood_sample(rng: Generator, size: int) -> dict:
    """Random grain angle, ring spacing and warp, colour, and an optional (normal) knot."""
    knot = None
    if rng.random() < 0.3:
        knot = (*random_center(rng, size, 0.2), rng.uniform(px(size, 8), px(size, 20)))
    return {
        "theta": rng.uniform(-0.08, 0.08),
        "ring": size / rng.uniform(7.0, 12.0),
        "warp": rng.uniform(0.3, 0.9),
        "sharp": rng.uniform(2.0, 4.0),
        "light": jitter_colour(rng, (205.0, 155.0, 105.0), 0.06),
        "dark": jitter_colour(rng, (140.0, 88.0, 52.0), 0.08),
        "knot": knot,
        "blur": rng.uniform(0.0, px(size, 0.6)),
        "seed": int(rng.integers(2**32)),
    }


def wood_render(p: dict, size: int) -> np.ndarray:
    """Growth rings (warped cosine bands) along the board plus fibre streaks and mottling."""
    rng = np.random.default_rng(p["seed"])
    yy, xx = grid(size)
    c, s = float(np.cos(p["theta"])), float(np.sin(p["theta"]))
    across = xx * c + yy * s
    v = across / p["ring"] + p["warp"] * fractal_noise(rng, (size, size), 2.0, octaves=2, aspect=(0.5, 2.0))
    if p["knot"] is not None:
        ky, kx, kr = p["knot"]
        d2 = ((yy - ky) ** 2 + (xx - kx) ** 2) / (kr * kr)
        v = v + 1.5 * np.exp(-d2) + 0.6 * np.sqrt(d2) * np.exp(-d2 / 2)
    rings = (0.5 + 0.5 * np.cos(2 * np.pi * v)) ** p["sharp"]
    streak = fractal_noise(rng, (size, size), size / 10.0, octaves=2, aspect=(0.04, 1.0))
    mottle = fractal_noise(rng, (size, size), 3.0, octaves=2)
    t = np.clip(0.75 * rings + 0.12 * streak + 0.05 * mottle + 0.1, 0.0, 1.0)[..., None]
    img = p["light"] * (1.0 - t) + p["dark"] * t
    return blur(img.astype(np.float32), p["blur"])


def wood_scratch(img: np.ndarray, p: dict, rng: Generator, size: int) -> np.ndarray:
    """One to three fine, nearly straight scratches exposing lighter wood."""
    curves = []
    for _ in range(rng.integers(1, 4)):
        y, x = random_center(rng, size, 0.1)
        curves.append(random_curve(rng, (x, y), rng.uniform(0, 2 * np.pi), rng.uniform(0.15, 0.6) * size, 0.02))
    alpha = polyline_alpha(size, curves, rng.uniform(px(size, 1.0), px(size, 2.2)))
    strength = rng.uniform(0.25, 0.9)
    return composite(img, alpha * strength, textured(rng, size, jitter_colour(rng, (235.0, 205.0, 165.0), 0.05), 0.1))


def wood_crack(img: np.ndarray, p: dict, rng: Generator, size: int) -> np.ndarray:
    """A dark, jagged split running roughly along the grain, sometimes branching."""
    y, x = random_center(rng, size, 0.15)
    along = np.pi / 2 + p["theta"] + rng.uniform(-0.3, 0.3) + (np.pi if rng.random() < 0.5 else 0)
    length, width = rng.uniform(0.2, 0.55) * size, rng.uniform(px(size, 1.2), px(size, 3.5))
    alpha = crack_alpha(rng, size, (x, y), along, length, width, int(rng.integers(0, 3)), 0.18)
    return composite(img, alpha * rng.uniform(0.55, 0.95), textured(rng, size, jitter_colour(rng, (38.0, 24.0, 14.0), 0.2), 0.3))


def wood_hole(img: np.ndarray, p: dict, rng: Generator, size: int) -> np.ndarray:
    """Small worm or nail holes: a dark core with a darkened ring around it."""
    out = img
    for _ in range(rng.integers(1, 4)):
        center = random_center(rng, size)
        radius = rng.uniform(px(size, 2.0), px(size, 7.0))
        ring = blob_alpha(rng, size, center, radius * 1.6, 0.2, px(size, 1.5))
        core = blob_alpha(rng, size, center, radius, 0.15, px(size, 0.8))
        out = composite(out, ring * 0.35, out * 0.55)
        out = composite(out, core, textured(rng, size, jitter_colour(rng, (30.0, 20.0, 12.0), 0.3), 0.35))
    return out


def wood_color(img: np.ndarray, p: dict, rng: Generator, size: int) -> np.ndarray:
    """Discolouration (water, mould or bleach) over a soft-edged patch; often subtle."""
    radius = rng.uniform(px(size, 12), px(size, 42))
    alpha = blob_alpha(rng, size, random_center(rng, size), radius, 0.4, radius * 0.4, rng.uniform(1, 2))
    factor = np.asarray([(0.7, 0.72, 0.8), (1.2, 1.15, 1.1), (0.85, 0.95, 0.8), (1.0, 0.8, 0.75)][rng.integers(4)])
    strength = rng.uniform(0.4, 1.0)
    return composite(img, alpha * strength, img * factor.astype(np.float32))
