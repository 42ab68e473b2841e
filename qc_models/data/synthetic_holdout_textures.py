"""Hold-out textures: glazed ceramic tiles with grout and speckle, and grained leather.

Each category is ``<name>_sample(rng, size) -> params`` and ``<name>_scene(params, size)
-> Scene`` (see :mod:`qc_models.data.synthetic_holdout_render`), plus defect edits
``(scene, params, rng, size) -> Scene``. None of the defect kinds occurs in the demo
categories, so they measure generalisation rather than memory.
"""

from __future__ import annotations

import cv2
import numpy as np

from qc_models.data.synthetic_common import (
    Generator,
    blob_alpha,
    cut_alpha,
    fractal_noise,
    grid,
    jitter_colour,
    polyline_alpha,
    px,
    random_center,
    random_curve,
    tapered_alpha,
)
from qc_models.data.synthetic_holdout_render import (
    Scene,
    bump,
    line_distance,
    mix,
    point_where,
    sample_look,
    smoothstep,
    speckle,
    worley,
)

# ---------------------------------------------------------------- tile (glazed ceramic mosaic)

_TILE_GLAZES = ((0.86, 0.84, 0.79), (0.56, 0.60, 0.63), (0.74, 0.45, 0.32), (0.78, 0.85, 0.88), (0.35, 0.42, 0.38))


def tile_sample(rng: Generator, size: int) -> dict:
    """Random tile pitch, angle, phase, glaze, grout and fleck density of one tiled patch."""
    pitch = size / rng.uniform(2.2, 3.4)
    return {
        "pitch": pitch,
        "theta": rng.uniform(-0.05, 0.05),
        "phase": rng.uniform(0, pitch, 2),
        "grout_w": px(size, rng.uniform(5.0, 9.0)),
        "bevel": px(size, rng.uniform(2.0, 4.0)),
        "depth": px(size, rng.uniform(1.5, 2.5)),
        "glaze": jitter_colour(rng, _TILE_GLAZES[rng.integers(len(_TILE_GLAZES))], 0.05),
        "grout": jitter_colour(rng, (0.52, 0.5, 0.47), 0.1),
        "flecks": rng.uniform(0.006, 0.022),
        "fleck_r": px(size, rng.uniform(1.0, 2.2)),
        "gloss": rng.uniform(0.5, 0.9),
        "look": sample_look(rng, size, shininess=(30.0, 80.0), specular=(0.3, 0.8)),
        "seed": int(rng.integers(2**32)),
    }


def _tile_edge(p: dict, size: int) -> np.ndarray:
    """Distance in pixels from each pixel to the centre line of the nearest grout joint."""
    yy, xx = grid(size)
    c, s = float(np.cos(p["theta"])), float(np.sin(p["theta"]))
    a = (xx * c + yy * s + float(p["phase"][0])) / p["pitch"]
    b = (-xx * s + yy * c + float(p["phase"][1])) / p["pitch"]
    fa, fb = a - np.floor(a), b - np.floor(b)
    return np.minimum(np.minimum(fa, 1 - fa), np.minimum(fb, 1 - fb)) * np.float32(p["pitch"])


def tile_scene(p: dict, size: int) -> Scene:
    """Bevelled glazed tiles with per-tile shade and terrazzo flecks, sunk grout joints between."""
    rng = np.random.default_rng(p["seed"])
    yy, xx = grid(size)
    c, s = float(np.cos(p["theta"])), float(np.sin(p["theta"]))
    ia = np.floor((xx * c + yy * s + float(p["phase"][0])) / p["pitch"]).astype(np.int64) % 8
    ib = np.floor((-xx * s + yy * c + float(p["phase"][1])) / p["pitch"]).astype(np.int64) % 8
    shade = rng.uniform(0.94, 1.06, (8, 8)).astype(np.float32)[ia, ib]
    top = smoothstep(p["grout_w"] / 2, p["grout_w"] / 2 + p["bevel"], _tile_edge(p, size))
    wave = fractal_noise(rng, (size, size), 2.5, octaves=2)
    sand = fractal_noise(rng, (size, size), size / 2.5, octaves=1)
    glaze = np.asarray(p["glaze"], np.float32) * (shade * (1.0 + 0.025 * wave))[..., None]
    flecks_dark = speckle(rng, size, p["flecks"], p["fleck_r"])
    flecks_rust = speckle(rng, size, p["flecks"] * 0.4, p["fleck_r"] * 0.8)
    glaze = mix(glaze, glaze * 0.35, flecks_dark)
    glaze = mix(glaze, np.float32([0.55, 0.33, 0.2]), flecks_rust * 0.8)
    grout = np.asarray(p["grout"], np.float32) * (1.0 + 0.12 * sand)[..., None]
    height = -np.float32(p["depth"]) * (1.0 - top) + px(size, 0.15) * wave + px(size, 0.1) * sand * (1.0 - top)
    gloss = (0.04 + (p["gloss"] - 0.04) * top).astype(np.float32)
    return Scene(height.astype(np.float32), mix(grout, glaze, top), gloss)


def tile_chip(scene: Scene, p: dict, rng: Generator, size: int) -> Scene:
    """A piece broken off a tile edge or corner: rough, matt, unglazed clay body shows."""
    edge = _tile_edge(p, size)
    band = (edge > p["grout_w"] / 2 + p["bevel"]) & (edge < p["grout_w"] / 2 + p["bevel"] + px(size, 6))
    center = point_where(rng, band)
    radius = px(size, rng.uniform(5.0, 14.0))
    alpha = blob_alpha(rng, size, center, radius, 0.5, px(size, 1.0), rng.uniform(1.0, 1.8))
    alpha = cut_alpha(alpha * smoothstep(p["grout_w"] / 2, p["grout_w"] / 2 + 1.0, edge))
    rough = fractal_noise(rng, (size, size), size / 4.0, octaves=2)
    body = jitter_colour(rng, (0.8, 0.66, 0.52), 0.08) * (1.0 + 0.1 * rough)[..., None]
    height = mix(scene.height, -p["depth"] * rng.uniform(0.5, 0.9) + px(size, 0.6) * rough, alpha)
    return scene.with_(height=height, albedo=mix(scene.albedo, body, alpha), gloss=mix(scene.gloss, 0.02, alpha))


def tile_glue_strip(scene: Scene, p: dict, rng: Generator, size: int) -> Scene:
    """Dried transparent adhesive: a shiny, slightly yellow, raised strip (often faint)."""
    y, x = random_center(rng, size, 0.1)
    curve = random_curve(rng, (x, y), rng.uniform(0, 2 * np.pi), rng.uniform(0.2, 0.5) * size, 0.08)
    alpha = polyline_alpha(size, [curve], px(size, rng.uniform(5.0, 14.0)))
    swell = cut_alpha(cv2.GaussianBlur(alpha, (0, 0), px(size, 1.5)))
    strength = rng.uniform(0.35, 0.9)
    height = scene.height + px(size, rng.uniform(0.8, 1.8)) * swell
    yellowed = scene.albedo * np.float32([0.97, 0.93, 0.78])
    return scene.with_(
        height=np.where(swell > 0, height, scene.height).astype(np.float32),
        albedo=mix(scene.albedo, yellowed, swell * strength),
        gloss=mix(scene.gloss, 1.0, swell),
    )


def tile_gray_stroke(scene: Scene, p: dict, rng: Generator, size: int) -> Scene:
    """Grey marks (pencil, rubber or tool abrasion) drawn across the glaze, light to dark."""
    curves = []
    y, x = random_center(rng, size, 0.15)
    for _ in range(rng.integers(1, 4)):
        curves.append(random_curve(rng, (x, y), rng.uniform(0, 2 * np.pi), rng.uniform(0.1, 0.3) * size, 0.15))
        x, y = curves[-1][-1]
    alpha = polyline_alpha(size, curves, px(size, rng.uniform(1.5, 4.0)))
    grey = np.float32(rng.uniform(0.2, 0.5)) * (1.0 + 0.15 * fractal_noise(rng, (size, size), size / 6.0, 1))
    return scene.with_(albedo=mix(scene.albedo, grey[..., None], alpha * rng.uniform(0.45, 0.95)))


def tile_rough(scene: Scene, p: dict, rng: Generator, size: int) -> Scene:
    """Worn or badly fired glaze: a matt, pitted patch that changes the highlight more than the colour."""
    radius = px(size, rng.uniform(14.0, 36.0))
    alpha = blob_alpha(rng, size, random_center(rng, size), radius, 0.4, radius * 0.3, rng.uniform(1.0, 1.8))
    pits = fractal_noise(rng, (size, size), size / 3.0, octaves=1)
    height = scene.height + px(size, rng.uniform(0.4, 1.0)) * pits * alpha
    return scene.with_(
        height=np.where(alpha > 0, height, scene.height).astype(np.float32),
        albedo=mix(scene.albedo, scene.albedo * rng.uniform(0.8, 0.95), alpha),
        gloss=mix(scene.gloss, 0.03, alpha),
    )


# ---------------------------------------------------------------- leather (pebble-grain hide)

_LEATHER_DYES = ((0.09, 0.08, 0.08), (0.36, 0.09, 0.08), (0.62, 0.40, 0.22), (0.11, 0.14, 0.26), (0.40, 0.38, 0.24))


def leather_sample(rng: Generator, size: int) -> dict:
    """Random grain size and depth, dye, wrinkles and sheen of one leather patch."""
    return {
        "cell": px(size, rng.uniform(6.0, 10.0)),
        "depth": px(size, rng.uniform(1.0, 1.8)),
        "warp": rng.uniform(0.3, 0.7),
        "wrinkle": px(size, rng.uniform(1.0, 3.0)),
        "dye": jitter_colour(rng, _LEATHER_DYES[rng.integers(len(_LEATHER_DYES))], 0.08),
        "sheen": rng.uniform(0.15, 0.4),
        "look": sample_look(rng, size, elevation=(0.45, 0.9), shininess=(6.0, 16.0), specular=(0.15, 0.45)),
        "seed": int(rng.integers(2**32)),
    }


def leather_scene(p: dict, size: int) -> Scene:
    """Cellular pebble grain with dye pooling in the creases, pores and broad wrinkles."""
    rng = np.random.default_rng(p["seed"])
    yy, xx = grid(size)
    cell = p["cell"]
    wy = yy + np.float32(cell * p["warp"]) * fractal_noise(rng, (size, size), size / (cell * 3), octaves=2)
    wx = xx + np.float32(cell * p["warp"]) * fractal_noise(rng, (size, size), size / (cell * 3), octaves=2)
    f1, f2 = worley(rng, wy, wx, cell)
    crease = np.exp(-(((f2 - f1) / np.float32(0.22 * cell)) ** 2))
    pebble = 1.0 - np.clip(f1 / np.float32(cell), 0.0, 1.0) ** 2
    pores = speckle(rng, size, 0.01, px(size, 0.7))
    wrinkle = fractal_noise(rng, (size, size), 3.0, octaves=3, aspect=(1.0, 0.4))
    mottle = fractal_noise(rng, (size, size), 4.0, octaves=2)
    height = p["depth"] * (0.5 * pebble - crease - 0.6 * pores) + p["wrinkle"] * wrinkle
    albedo = np.asarray(p["dye"], np.float32) * ((1.0 - 0.3 * crease - 0.3 * pores) * (1.0 + 0.07 * mottle))[..., None]
    gloss = np.float32(p["sheen"]) * (1.0 - crease)
    return Scene(height.astype(np.float32), albedo.astype(np.float32), gloss.astype(np.float32))


def leather_fold(scene: Scene, p: dict, rng: Generator, size: int) -> Scene:
    """A pressed-in fold: a long crease with raised shoulders that flattens the grain along it."""
    y, x = random_center(rng, size, 0.3)
    angle = rng.uniform(0, np.pi)
    length = rng.uniform(0.5, 1.2) * size
    start = (x - np.cos(angle) * length / 2, y - np.sin(angle) * length / 2)
    curve = random_curve(rng, start, angle, length, 0.03, n_seg=16)
    d = line_distance(size, [curve])
    w = px(size, rng.uniform(2.5, 6.0))
    depth = p["depth"] * rng.uniform(1.0, 3.0)
    profile = -depth * bump(d / w) + 0.4 * depth * bump((d - 1.8 * w) / w)
    flatten = bump(d / (3.0 * w))
    smooth = cv2.GaussianBlur(scene.height, (0, 0), max(w / 2, 1.0))
    height = mix(scene.height, smooth, flatten) + profile
    return scene.with_(
        height=np.where(flatten > 0, height, scene.height).astype(np.float32),
        albedo=mix(scene.albedo, scene.albedo * 0.7, bump(d / w)),
    )


def leather_poke(scene: Scene, p: dict, rng: Generator, size: int) -> Scene:
    """One to three punctures: a dark hole in a pushed-in dimple."""
    height, albedo = scene.height, scene.albedo
    for _ in range(rng.integers(1, 4)):
        center = random_center(rng, size)
        r = px(size, rng.uniform(2.0, 5.0))
        dimple = blob_alpha(rng, size, center, r * 2.5, 0.2, r)
        hole = blob_alpha(rng, size, center, r, 0.3, px(size, 0.7))
        height = np.where((dimple > 0) | (hole > 0), height - p["depth"] * 2.0 * dimple - px(size, 3.0) * hole, height)
        albedo = mix(albedo, np.float32([0.02, 0.02, 0.02]), hole)
    return scene.with_(height=height.astype(np.float32), albedo=albedo)


def leather_cut(scene: Scene, p: dict, rng: Generator, size: int) -> Scene:
    """A knife cut: a straight slit opening onto the lighter, fibrous flesh side."""
    y, x = random_center(rng, size, 0.15)
    curve = random_curve(rng, (x, y), rng.uniform(0, 2 * np.pi), rng.uniform(0.08, 0.3) * size, 0.03, n_seg=12)
    slit = tapered_alpha(size, curve, px(size, rng.uniform(2.0, 5.0)))
    lips = cut_alpha(cv2.GaussianBlur(slit, (0, 0), px(size, 1.5)) * 1.5)
    fibre = fractal_noise(rng, (size, size), size / 3.0, octaves=1)
    flesh = jitter_colour(rng, (0.45, 0.33, 0.24), 0.1) * (1.0 + 0.2 * fibre)[..., None]
    height = scene.height + px(size, 0.6) * lips - px(size, 4.0) * slit
    return scene.with_(
        height=np.where(lips > 0, height, scene.height).astype(np.float32),
        albedo=mix(scene.albedo, flesh * rng.uniform(0.5, 1.1), slit),
        gloss=mix(scene.gloss, 0.0, slit),
    )


def leather_glue(scene: Scene, p: dict, rng: Generator, size: int) -> Scene:
    """A drop of glue: fills the grain, glossy, slightly lighter; sometimes only the sheen changes."""
    radius = px(size, rng.uniform(6.0, 26.0))
    alpha = blob_alpha(rng, size, random_center(rng, size), radius, 0.45, px(size, 2.0), rng.uniform(1.0, 2.0))
    smooth = cv2.GaussianBlur(scene.height, (0, 0), px(size, 3.0)) + px(size, 1.0) * alpha
    fill = alpha * rng.uniform(0.5, 0.95)
    tint = scene.albedo * 0.85 + np.float32([0.1, 0.09, 0.05]) * rng.uniform(0.3, 1.0)
    return scene.with_(
        height=mix(scene.height, smooth, fill),
        albedo=mix(scene.albedo, tint, fill),
        gloss=mix(scene.gloss, 0.9, alpha),
    )
