"""Synthetic object categories: a bottle seen from above and a four-tab metal nut.

Same contract as :mod:`qc_models.data.synthetic_textures`. Objects vary in
position, rotation, colour and lighting; geometric defects (broken rim, bent tab,
flipped part) re-render the part with changed parameters, surface defects are
composited and clipped to the part's silhouette.
"""

from __future__ import annotations

import numpy as np

from qc_models.data.synthetic_common import (
    Generator,
    blob_alpha,
    blur,
    composite,
    cut_alpha,
    fractal_noise,
    grid,
    jitter_colour,
    polyline_alpha,
    px,
    random_curve,
    textured,
)


def _offsets(size: int, cy: float, cx: float) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = grid(size)
    return yy - np.float32(cy), xx - np.float32(cx)


def _polar(size: int, cy: float, cx: float) -> tuple[np.ndarray, np.ndarray]:
    dy, dx = _offsets(size, cy, cx)
    return np.sqrt(dy * dy + dx * dx), np.arctan2(dy, dx)


def _angular_noise(rng: Generator, phi: np.ndarray, cells: int) -> np.ndarray:
    """Periodic 1-D noise around the circle, evaluated at every pixel's angle."""
    values = rng.standard_normal(cells).astype(np.float32)
    t = (phi / (2 * np.pi) % 1.0) * cells
    i0 = np.floor(t).astype(np.int64) % cells
    f = (t - np.floor(t)).astype(np.float32)
    return values[i0] * (1 - f) + values[(i0 + 1) % cells] * f


def _point_on(rng: Generator, inside: np.ndarray) -> tuple[float, float]:
    """A random ``(y, x)`` pixel where ``inside`` is true."""
    ys, xs = np.nonzero(inside)
    k = rng.integers(len(ys))
    return float(ys[k]), float(xs[k])


# ---------------------------------------------------------------- bottle (from above)


def bottle_sample(rng: Generator, size: int) -> dict:
    """Random position, size, rotation, glass tint and highlight of one bottle."""
    return {
        "cy": size / 2 + rng.uniform(-0.03, 0.03) * size,
        "cx": size / 2 + rng.uniform(-0.03, 0.03) * size,
        "radius": rng.uniform(0.40, 0.44) * size,
        "rot": rng.uniform(0, 2 * np.pi),
        "glass": jitter_colour(rng, (120.0, 112.0, 78.0), 0.08),
        "background": jitter_colour(rng, (18.0, 18.0, 20.0), 0.2),
        "highlight": rng.uniform(-2.6, -2.0),
        "blur": rng.uniform(0.0, px(size, 0.6)),
        "seed": int(rng.integers(2**32)),
    }


_BOTTLE_R = np.array([0.0, 0.28, 0.33, 0.37, 0.45, 0.62, 0.84, 0.88, 0.93, 0.97, 1.0], np.float32)
_BOTTLE_V = np.array([0.06, 0.10, 0.55, 0.25, 0.42, 0.36, 0.30, 0.72, 0.95, 0.70, 0.45], np.float32)


def bottle_render(p: dict, size: int) -> np.ndarray:
    """Radial profile (opening, neck ring, body, rim) with angular streaks and a specular glint."""
    rng = np.random.default_rng(p["seed"])
    r, phi = _polar(size, p["cy"], p["cx"])
    rn = r / p["radius"]
    value = np.interp(rn, _BOTTLE_R, _BOTTLE_V).astype(np.float32)
    streak = _angular_noise(rng, phi + p["rot"], 48) * np.clip(rn - 0.4, 0, 0.5)
    dphi = (phi - np.float32(p["highlight"]) + np.pi) % np.float32(2 * np.pi) - np.pi
    glint = np.exp(-(dphi**2) / 0.18 - ((rn - 0.92) / 0.04) ** 2)
    mottle = fractal_noise(rng, (size, size), 4.0, octaves=2)
    value = value * (1.0 + 0.12 * streak + 0.04 * mottle) + 0.5 * glint
    bottle = p["glass"] * value[..., None] * 2.0
    inside = np.clip(p["radius"] - r + 0.5, 0.0, 1.0)[..., None]
    background = p["background"] * (1.0 + 0.1 * mottle[..., None])
    img = background * (1.0 - inside) + bottle * inside
    return blur(img.astype(np.float32), p["blur"])


def _bottle_break(img: np.ndarray, p: dict, rng: Generator, size: int, scale: tuple[float, float]) -> np.ndarray:
    """A chip broken out of the rim: background shows through, fracture edges glint."""
    angle = rng.uniform(0, 2 * np.pi)
    at = p["radius"] * rng.uniform(0.9, 1.0)
    center = (p["cy"] + at * np.sin(angle), p["cx"] + at * np.cos(angle))
    chip = blob_alpha(rng, size, center, p["radius"] * rng.uniform(*scale), 0.45, px(size, 1.0), rng.uniform(1.0, 1.6))
    r, _ = _polar(size, p["cy"], p["cx"])
    chip = cut_alpha(chip * np.clip(p["radius"] - r + 0.5, 0.0, 1.0))
    edge = 4.0 * chip * (1.0 - chip)
    content = p["background"] + (p["glass"] * 1.6) * edge[..., None]
    return composite(img, chip, content)


def bottle_broken_large(img: np.ndarray, p: dict, rng: Generator, size: int) -> np.ndarray:
    """A large chip of the rim missing."""
    return _bottle_break(img, p, rng, size, (0.14, 0.26))


def bottle_broken_small(img: np.ndarray, p: dict, rng: Generator, size: int) -> np.ndarray:
    """A small chip of the rim missing (hard to see at low resolution)."""
    return _bottle_break(img, p, rng, size, (0.05, 0.11))


def bottle_contamination(img: np.ndarray, p: dict, rng: Generator, size: int) -> np.ndarray:
    """Particles or a fibre inside the bottle, dark or whitish, of varying opacity."""
    r, _ = _polar(size, p["cy"], p["cx"])
    body = r < 0.8 * p["radius"]
    out = img
    if rng.random() < 0.25:
        y, x = _point_on(rng, body)
        fibre = random_curve(rng, (x, y), rng.uniform(0, 2 * np.pi), rng.uniform(0.1, 0.3) * size, 0.25)
        alpha = polyline_alpha(size, [fibre], px(size, 1.5)) * body
        out = composite(out, alpha * rng.uniform(0.5, 0.9), jitter_colour(rng, (25.0, 22.0, 20.0), 0.3))
    for _ in range(rng.integers(1, 4)):
        center = _point_on(rng, body)
        alpha = blob_alpha(rng, size, center, p["radius"] * rng.uniform(0.03, 0.11), 0.5, px(size, 1.2))
        colour = jitter_colour(rng, [(20, 18, 15), (200, 195, 180), (90, 60, 30)][rng.integers(3)], 0.15)
        out = composite(out, alpha * rng.uniform(0.45, 0.95), textured(rng, size, colour, 0.3))
    return out


# ---------------------------------------------------------------- metal nut (four tabs, from above)


def nut_sample(rng: Generator, size: int) -> dict:
    """Random position, rotation, tab geometry, metal tint and light direction of one nut."""
    return {
        "cy": size / 2 + rng.uniform(-0.04, 0.04) * size,
        "cx": size / 2 + rng.uniform(-0.04, 0.04) * size,
        "rot": rng.uniform(0, 2 * np.pi),
        "body": rng.uniform(0.27, 0.29) * size,
        "tab_len": np.full(4, rng.uniform(0.40, 0.42) * size),
        "tab_offset": rng.normal(0.0, 0.01, 4),
        "tab_half": rng.uniform(0.075, 0.085) * size,
        "hole": rng.uniform(0.11, 0.12) * size,
        "metal": jitter_colour(rng, (168.0, 170.0, 178.0), 0.07),
        "background": jitter_colour(rng, (22.0, 22.0, 24.0), 0.2),
        "light": rng.uniform(-2.6, -1.8),
        "flipped": False,
        "blur": rng.uniform(0.0, px(size, 0.5)),
        "seed": int(rng.integers(2**32)),
    }


def _nut_shape(p: dict, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Signed distance (pixels, > 0 inside) of the nut, plus polar coords and tab-side field."""
    dy, dx = _offsets(size, p["cy"], p["cx"])
    r, phi = np.sqrt(dy * dy + dx * dx), np.arctan2(dy, dx)
    angles = p["rot"] + np.arange(4) * (np.pi / 2) + np.asarray(p["tab_offset"])
    cos, sin = np.cos(angles).astype(np.float32)[:, None, None], np.sin(angles).astype(np.float32)[:, None, None]
    along, perp = dx[None] * cos + dy[None] * sin, dy[None] * cos - dx[None] * sin
    d_tabs = np.minimum(p["tab_half"] - np.abs(perp), np.asarray(p["tab_len"], np.float32)[:, None, None] - along)
    d_tabs = np.minimum(d_tabs, along)
    best = d_tabs.argmax(axis=0)
    d = np.maximum(p["body"] - r, d_tabs.max(axis=0))
    d = np.minimum(d, r - p["hole"])
    side = np.take_along_axis(perp, best[None], axis=0)[0] / p["tab_half"]
    return d.astype(np.float32), r, phi, side.astype(np.float32)


def nut_render(p: dict, size: int) -> np.ndarray:
    """Brushed metal with a bevel lit from one side, a face groove and chamfered tabs.

    A flipped nut shows its plain back: no groove, matte finish, mirrored chamfers.
    """
    rng = np.random.default_rng(p["seed"])
    d, r, phi, side = _nut_shape(p, size)
    radial = fractal_noise(rng, (1, size * 2), size / 6.0, octaves=2)[0]
    brushed = radial[np.clip(r * 2, 0, size * 2 - 1).astype(np.int64)]
    bevel_w = px(size, 6.0)
    bevel = np.clip(1.0 - d / bevel_w, 0.0, 1.0) * np.cos(phi - p["light"])
    flip = -1.0 if p["flipped"] else 1.0
    chamfer = np.where(r > p["body"], flip * 0.18 * side, 0.0)
    value = 0.78 + 0.08 * brushed + 0.3 * bevel + chamfer
    if p["flipped"]:
        value = 0.85 * value - 0.05 * brushed
    else:
        groove = np.exp(-(((r - 0.72 * p["body"]) / px(size, 2.5)) ** 2))
        value = value - 0.35 * groove
    mottle = fractal_noise(rng, (size, size), 5.0, octaves=2)
    metal = p["metal"] * (value * (1.0 + 0.04 * mottle))[..., None]
    inside = np.clip(d + 0.5, 0.0, 1.0)[..., None]
    background = p["background"] * (1.0 + 0.1 * mottle[..., None])
    img = background * (1.0 - inside) + metal * inside
    return blur(img.astype(np.float32), p["blur"])


def _nut_inside(p: dict, size: int) -> np.ndarray:
    return np.clip(_nut_shape(p, size)[0] + 0.5, 0.0, 1.0)


def nut_bent(img: np.ndarray, p: dict, rng: Generator, size: int) -> np.ndarray:
    """One tab bent sideways and foreshortened (re-rendered geometry)."""
    q = dict(p)
    k = int(rng.integers(4))
    q["tab_offset"] = np.array(p["tab_offset"], dtype=np.float64)
    q["tab_offset"][k] += rng.choice([-1, 1]) * rng.uniform(0.12, 0.3)
    q["tab_len"] = np.array(p["tab_len"], dtype=np.float64)
    q["tab_len"][k] *= rng.uniform(0.86, 0.97)
    return nut_render(q, size)


def nut_flip(img: np.ndarray, p: dict, rng: Generator, size: int) -> np.ndarray:
    """The nut lies upside down: the whole part looks different."""
    return nut_render({**p, "flipped": True}, size)


def nut_scratch(img: np.ndarray, p: dict, rng: Generator, size: int) -> np.ndarray:
    """Bright or dark scratches on the metal surface, clipped to the part."""
    inside = _nut_inside(p, size)
    curves = []
    for _ in range(rng.integers(1, 3)):
        y, x = _point_on(rng, inside > 0.99)
        curves.append(random_curve(rng, (x, y), rng.uniform(0, 2 * np.pi), rng.uniform(0.08, 0.3) * size, 0.05))
    alpha = cut_alpha(polyline_alpha(size, curves, rng.uniform(px(size, 1.0), px(size, 2.5))) * inside)
    colour = jitter_colour(rng, (245.0, 245.0, 250.0) if rng.random() < 0.5 else (70.0, 70.0, 75.0), 0.05)
    return composite(img, alpha * rng.uniform(0.35, 0.9), textured(rng, size, colour, 0.15))


def nut_color(img: np.ndarray, p: dict, rng: Generator, size: int) -> np.ndarray:
    """Heat tint or corrosion: a coloured patch on the metal, from faint to strong."""
    inside = _nut_inside(p, size)
    center = _point_on(rng, inside > 0.99)
    radius = rng.uniform(0.05, 0.14) * size
    alpha = cut_alpha(blob_alpha(rng, size, center, radius, 0.4, radius * 0.3) * inside)
    factor = np.asarray([(0.75, 0.8, 1.25), (1.2, 0.75, 0.55), (1.15, 0.95, 0.6), (0.8, 0.6, 0.9)][rng.integers(4)])
    return composite(img, alpha * rng.uniform(0.3, 1.0), img * factor.astype(np.float32))
