"""Height-field rendering and a camera model for the hold-out synthetic categories.

The demo categories paint brightness profiles directly. The hold-out ones are
built another way on purpose, so that a detector tuned on the demo data meets
unfamiliar image statistics: each part is a *scene* (surface height, albedo,
gloss and object coverage), lit by a directional light with Lambert and
Blinn-Phong terms, a soft cast shadow and lens vignetting, then *developed* by a
camera with gamma encoding, optional monochrome sensor, signal-dependent
(shot + read) noise and row banding.

Every step is pointwise or has compact support (gradients: 1 px, shadow: a
finite blur, quantised so its faint tail is exactly 0), so a defect that edits
the scene changes only pixels near its footprint, and the generator's mask
(pixels that changed) stays tight. Defects are scene edits: see
:func:`as_render` and :func:`as_defect`, which turn ``scene`` functions into the
``render``/``defect`` callables of :class:`qc_models.data.synthetic.SyntheticCategory`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache

import cv2
import numpy as np

from qc_models.data.synthetic_common import Generator, grid, px

#: Steepest slope the shader sees; silhouettes of round parts are otherwise vertical.
MAX_SLOPE = 3.0
#: Changes smaller than this (grey levels) are dropped: the generator would round each up to a full
#: level, sprinkling the mask with invisible pixels around smooth deformations.
SNAP = 1.0
#: The cast shadow is quantised to this many levels, so its blurred tail ends exactly.
SHADOW_LEVELS = 48.0


@dataclass(frozen=True)
class Scene:
    """Everything the light sees: heights in pixels, albedo in [0, 1], gloss in [0, 1]."""

    height: np.ndarray  # (H, W) float32
    albedo: np.ndarray  # (H, W, 3) float32
    gloss: np.ndarray  # (H, W) float32
    cover: np.ndarray | None = None  # (H, W) float32 object coverage, casts the shadow

    def with_(self, **changes: np.ndarray) -> Scene:
        """A copy with some fields replaced (scenes are never edited in place)."""
        return replace(self, **changes)


SceneFn = Callable[[dict, int], Scene]
SceneDefect = Callable[[Scene, dict, Generator, int], Scene]


def sample_look(
    rng: Generator,
    size: int,
    mono: bool = False,
    elevation: tuple[float, float] = (0.55, 1.05),
    shininess: tuple[float, float] = (12.0, 40.0),
    specular: tuple[float, float] = (0.2, 0.6),
) -> dict:
    """Random light, lens and camera of one shot; stored in the params as ``look``."""
    warm = rng.uniform(0.0, 1.0)
    tint = np.array([1.0 + 0.08 * warm, 1.0, 1.06 - 0.16 * warm], np.float32)
    return {
        "azimuth": rng.uniform(0, 2 * np.pi),
        "elevation": rng.uniform(*elevation),
        "light": (tint * rng.uniform(0.9, 1.05)).astype(np.float32),
        "ambient": rng.uniform(0.22, 0.4),
        "specular": rng.uniform(*specular),
        "shininess": rng.uniform(*shininess),
        "vignette": rng.uniform(0.12, 0.35),
        "vcenter": rng.uniform(0.35, 0.65, 2) * size,
        "shadow": rng.uniform(0.25, 0.5),
        "shadow_blur": px(size, rng.uniform(2.0, 4.0)),
        "gamma": rng.uniform(1.9, 2.3),
        "mono": mono,
        "shot": rng.uniform(0.03, 0.2),
        "read": rng.uniform(0.5, 2.5),
        "banding": rng.uniform(0.0, 1.2),
        "noise_seed": int(rng.integers(2**32)),
    }


def _normals(height: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gy, gx = np.gradient(height)
    slope = np.sqrt(gx * gx + gy * gy)
    scale = np.minimum(1.0, MAX_SLOPE / np.maximum(slope, 1e-6)).astype(np.float32)
    gx, gy = gx * scale, gy * scale
    nz = 1.0 / np.sqrt(1.0 + gx * gx + gy * gy)
    return -gx * nz, -gy * nz, nz


def _shadow(cover: np.ndarray, look: dict) -> np.ndarray:
    """Soft shadow cast away from the light; 1 = lit. Quantised so it ends exactly."""
    size = cover.shape[0]
    reach = look["shadow_blur"] * 1.5 / np.tan(look["elevation"])
    shift = np.float32([[1, 0, -np.cos(look["azimuth"]) * reach], [0, 1, -np.sin(look["azimuth"]) * reach]])
    cast = cv2.warpAffine(cover, shift, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)
    cast = cv2.GaussianBlur(cast, (0, 0), look["shadow_blur"])
    cast = np.floor(cast * SHADOW_LEVELS) / SHADOW_LEVELS
    return 1.0 - look["shadow"] * cast * (1.0 - cover)


def develop(scene: Scene, look: dict) -> np.ndarray:
    """Light the scene and take the picture: float32 ``(H, W, 3)`` in the 0-255 range."""
    size = scene.height.shape[0]
    nx, ny, nz = _normals(scene.height)
    az, el = look["azimuth"], look["elevation"]
    lx, ly, lz = np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)
    diffuse = np.maximum(nx * np.float32(lx) + ny * np.float32(ly) + nz * np.float32(lz), 0.0) / np.float32(lz)
    hvec = np.array([lx, ly, lz + 1.0]) / np.linalg.norm([lx, ly, lz + 1.0])
    ndh = np.clip(nx * np.float32(hvec[0]) + ny * np.float32(hvec[1]) + nz * np.float32(hvec[2]), 0.0, 1.0)
    spec = (ndh ** np.float32(look["shininess"])) * scene.gloss * np.float32(look["specular"])
    shade = np.float32(look["ambient"]) + np.float32(1 - look["ambient"]) * diffuse
    if scene.cover is not None:
        shade = shade * _shadow(scene.cover, look)
    yy, xx = grid(size)
    cy, cx = (float(c) for c in look["vcenter"])
    vignette = 1.0 - np.float32(look["vignette"]) * (((yy - cy) ** 2 + (xx - cx) ** 2) / np.float32(size * size / 2))
    radiance = (scene.albedo * shade[..., None] + spec[..., None]) * (look["light"] * vignette[..., None])
    if look["mono"]:
        radiance = np.repeat(radiance @ np.float32([0.3, 0.59, 0.11])[:, None], 3, axis=2)
    encoded = 255.0 * np.clip(radiance, 0.0, 1.5) ** np.float32(1.0 / look["gamma"])
    field, bands = _sensor_fields(size, look["noise_seed"], 1 if look["mono"] else 3)
    encoded = encoded + np.sqrt(np.float32(look["shot"]) * encoded + np.float32(look["read"]) ** 2) * field
    return (encoded + bands * np.float32(look["banding"])).astype(np.float32)


@lru_cache(maxsize=16)
def _sensor_fields(size: int, seed: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit Gaussian pixel noise and row offsets of one shot (shared by its clean and defective render)."""
    rng = np.random.default_rng(seed)
    field = rng.standard_normal((size, size, channels), dtype=np.float32)
    bands = rng.standard_normal((size, 1, 1), dtype=np.float32)
    field.setflags(write=False)
    bands.setflags(write=False)
    return field, bands


def as_render(scene_fn: SceneFn) -> Callable[[dict, int], np.ndarray]:
    """``render(params, size)`` of a hold-out category: build the scene and develop it."""

    def render(p: dict, size: int) -> np.ndarray:
        return develop(scene_fn(p, size), p["look"])

    render.__doc__ = scene_fn.__doc__
    return render


def as_defect(scene_fn: SceneFn, edit: SceneDefect) -> Callable[[np.ndarray, dict, Generator, int], np.ndarray]:
    """``defect(img, params, rng, size)``: edit the clean scene, develop it with the same light and camera."""

    def defect(img: np.ndarray, p: dict, rng: Generator, size: int) -> np.ndarray:
        out = develop(edit(scene_fn(p, size), p, rng, size), p["look"])
        faint = np.abs(out - img).max(axis=2, keepdims=True) < SNAP
        return np.where(faint, img, out)

    defect.__doc__ = edit.__doc__
    return defect


# ---------------------------------------------------------------- noise models (unlike the demo's value noise)


def smoothstep(lo: float, hi: float, x: np.ndarray) -> np.ndarray:
    """0 below ``lo``, 1 above ``hi``, a smooth cubic between."""
    t = np.clip((x - np.float32(lo)) / np.float32(max(hi - lo, 1e-6)), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def bump(x: np.ndarray) -> np.ndarray:
    """Compact bump ``(1 - x^2)^2`` for ``|x| < 1``, exactly 0 outside (edits stay local)."""
    return np.square(np.clip(1.0 - x * x, 0.0, 1.0))


def worley(rng: Generator, yy: np.ndarray, xx: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """Distances to the nearest and second-nearest jittered feature point (cellular noise), in pixels."""
    qy, qx = yy / np.float32(cell), xx / np.float32(cell)
    iy, ix = np.floor(qy).astype(np.int64), np.floor(qx).astype(np.int64)
    oy, ox = int(iy.min()) - 1, int(ix.min()) - 1
    ny, nx = int(iy.max()) - oy + 2, int(ix.max()) - ox + 2
    points = rng.uniform(0.0, 1.0, (ny, nx, 2)).astype(np.float32)
    points += np.stack(np.mgrid[oy : oy + ny, ox : ox + nx], axis=-1).astype(np.float32)  # absolute cell units
    ptsy, ptsx = points[..., 0].ravel(), points[..., 1].ravel()
    f1 = np.full(qy.shape, np.inf, np.float32)
    f2 = np.full(qy.shape, np.inf, np.float32)
    for dy in (-1, 0, 1):  # nine neighbour cells, each a whole-image operation
        for dx in (-1, 0, 1):
            flat = (iy + (dy - oy)) * nx + (ix + (dx - ox))
            d = np.square(ptsy[flat] - qy) + np.square(ptsx[flat] - qx)  # squared: one sqrt at the end
            f2 = np.where(d < f1, f1, np.minimum(f2, d))
            f1 = np.minimum(f1, d)
    return np.sqrt(f1) * np.float32(cell), np.sqrt(f2) * np.float32(cell)


def speckle(rng: Generator, size: int, density: float, radius: float) -> np.ndarray:
    """Irregular round flecks (0-1 alpha): random impulses, blurred and thresholded."""
    count = max(1, int(density * size * size / max(radius * radius, 1.0)))
    canvas = np.zeros((size, size), np.float32)
    canvas[rng.integers(0, size, count), rng.integers(0, size, count)] = rng.uniform(0.6, 1.4, count)
    blurred = cv2.GaussianBlur(canvas, (0, 0), max(radius, 0.5)) * np.float32(2 * np.pi * max(radius, 0.5) ** 2)
    return np.clip((blurred - 0.35) * 3.0, 0.0, 1.0)


def line_distance(size: int, curves: list[np.ndarray]) -> np.ndarray:
    """Euclidean distance in pixels of every pixel to the nearest of the polylines (``(x, y)`` points)."""
    canvas = np.full((size, size), 255, np.uint8)
    pts = [np.round(c * 16.0).astype(np.int32).reshape(-1, 1, 2) for c in curves]
    cv2.polylines(canvas, pts, False, 0, 1, cv2.LINE_8, shift=4)
    return cv2.distanceTransform(canvas, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def point_where(rng: Generator, inside: np.ndarray) -> tuple[float, float]:
    """A random ``(y, x)`` pixel where ``inside`` is true (the image centre if nowhere)."""
    ys, xs = np.nonzero(inside)
    if len(ys) == 0:
        return inside.shape[0] / 2, inside.shape[1] / 2
    k = rng.integers(len(ys))
    return float(ys[k]), float(xs[k])


def mix(a: np.ndarray, b: np.ndarray | float, t: np.ndarray) -> np.ndarray:
    """``a`` where ``t`` is 0 (bit-identical), ``b`` where it is 1; ``t`` broadcasts over channels."""
    if a.ndim == 3 and t.ndim == 2:
        t = t[..., None]
    return np.where(t > 0, a + (np.asarray(b, np.float32) - a) * t, a).astype(np.float32)
