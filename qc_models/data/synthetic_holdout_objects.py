"""Hold-out objects: a screw lying at any rotation (monochrome camera) and a printed capsule.

Same contract as :mod:`qc_models.data.synthetic_holdout_textures`. Shapes are
analytic in the part's own ``(u, v)`` frame (``u`` along the axis), so geometric
defects re-build the scene from changed parameters; every such change uses a
compact bump, so the pixels outside the damaged region stay bit-identical.
"""

from __future__ import annotations

import cv2
import numpy as np

from qc_models.data.synthetic_common import Generator, blob_alpha, fractal_noise, grid, jitter_colour, px
from qc_models.data.synthetic_holdout_render import Scene, bump, mix, point_where, sample_look, smoothstep


def _frame(p: dict, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates in the part frame: ``u`` along its axis, ``v`` across, origin at its centre."""
    yy, xx = grid(size)
    dy, dx = yy - np.float32(p["cy"]), xx - np.float32(p["cx"])
    c, s = np.float32(np.cos(p["rot"])), np.float32(np.sin(p["rot"]))
    return dx * c + dy * s, dy * c - dx * s


def _axis_noise(rng: Generator, u: np.ndarray, size: int, cells: float) -> np.ndarray:
    """1-D noise along the part axis (machining marks, belt weave), read at every pixel."""
    line = fractal_noise(rng, (1, 4 * size), cells, octaves=2)[0]
    return line[np.clip(np.rint(u * 2 + 2 * size), 0, 4 * size - 1).astype(np.int64)]


# ---------------------------------------------------------------- screw (side view, lying on a plate)


def screw_sample(rng: Generator, size: int) -> dict:
    """Random position, rotation (any angle), proportions, thread pitch and finish of one screw."""
    length = rng.uniform(0.55, 0.64) * size
    return {
        "cy": size / 2 + rng.uniform(-0.05, 0.05) * size,
        "cx": size / 2 + rng.uniform(-0.05, 0.05) * size,
        "rot": rng.uniform(0, 2 * np.pi),
        "length": length,
        "head_len": rng.uniform(0.1, 0.13) * length,
        "head_r": rng.uniform(0.095, 0.115) * length,
        "core_r": rng.uniform(0.038, 0.046) * length,
        "thread_d": rng.uniform(0.25, 0.35),
        "pitch": rng.uniform(0.045, 0.058) * length,
        "thread_from": rng.uniform(0.3, 0.45),
        "slant": rng.uniform(0.15, 0.3),
        "tip_len": rng.uniform(0.07, 0.1) * length,
        "metal": rng.uniform(0.5, 0.68),
        "plate": rng.uniform(0.7, 0.86),
        "tip_cut": 0.0,
        "crush": None,
        "nick": None,
        "look": sample_look(rng, size, mono=True, shininess=(20.0, 60.0), specular=(0.4, 0.9)),
        "seed": int(rng.integers(2**32)),
    }


def _screw_radius(p: dict, u: np.ndarray, v: np.ndarray, rng: Generator, size: int) -> np.ndarray:
    """Silhouette half-width at every pixel: rounded head, plain neck, slanted thread, tapered tip."""
    length, core_r = p["length"], p["core_r"]
    u0 = -length / 2
    u_head, u_thread, u_tip = u0 + p["head_len"], u0 + p["thread_from"] * length, length / 2 - p["tip_len"]
    depth = p["thread_d"] * core_r
    phase = (u + np.float32(p["slant"]) * v) / np.float32(p["pitch"])
    tri = 2.0 * np.abs(phase - np.floor(phase) - 0.5)
    fade_in = smoothstep(u_thread, u_thread + p["pitch"], u)
    tip = np.clip((u - u_tip) / np.float32(p["tip_len"]), 0.0, 1.0)
    thread = depth * tri * fade_in * (1.0 - 0.7 * tip)
    crush = p["crush"]
    marks = _axis_noise(rng, u, size, length / 3.0)
    if crush is not None:  # (centre u, half length, side, strength)
        zone = bump((u - crush[0]) / np.float32(crush[1])) * smoothstep(0.0, 0.4 * core_r, crush[2] * v)
        thread = thread * (1.0 - crush[3] * zone) + zone * depth * 0.25 * (1.0 + 0.5 * marks)
    shank = core_r * (1.0 - 0.75 * tip) + depth * (1.0 - fade_in) + thread
    if crush is not None:  # the crushed side is also pressed in (by at least ~half a pixel on tiny images)
        shank = shank - zone * max(0.15 * core_r, 0.6)
    head = p["head_r"] * np.sqrt(np.clip((u - u0) / np.float32(0.3 * p["head_len"]), 0.0, 1.0))
    radius = np.where(u < u_head, head, shank)
    nick = p["nick"]
    if nick is not None:  # (centre u, side, half length, depth)
        side = smoothstep(0.0, 0.5 * p["head_r"], nick[1] * v)
        radius = radius - nick[3] * bump((u - nick[0]) / np.float32(nick[2])) * side
    return radius.astype(np.float32)


def screw_scene(p: dict, size: int) -> Scene:
    """A steel screw on a matt plate, seen from above; the round shank gives a long axial highlight."""
    rng = np.random.default_rng(p["seed"])
    u, v = _frame(p, size)
    radius = _screw_radius(p, u, v, rng, size)
    u_end = p["length"] / 2 - p["tip_cut"]
    ends = np.clip(u + np.float32(p["length"] / 2 + 0.5), 0.0, 1.0) * np.clip(np.float32(u_end + 0.5) - u, 0.0, 1.0)
    cover = (np.clip(radius - np.abs(v) + 0.5, 0.0, 1.0) * ends).astype(np.float32)
    height = np.sqrt(np.clip(radius * radius - v * v, 0.0, None)) * ends
    marks = _axis_noise(rng, u, size, size / 4.0)
    metal = np.float32(p["metal"]) * (1.0 + 0.06 * marks)
    grain = fractal_noise(rng, (size, size), size / 3.0, octaves=1)
    blotch = fractal_noise(rng, (size, size), 3.0, octaves=2)
    plate = np.float32(p["plate"]) * (1.0 + 0.02 * grain + 0.03 * blotch)
    albedo = np.repeat(mix(plate, metal, cover)[..., None], 3, axis=2)
    return Scene(height.astype(np.float32), albedo, (0.05 + 0.85 * cover).astype(np.float32), cover)


def screw_damaged_tip(scene: Scene, p: dict, rng: Generator, size: int) -> Scene:
    """The tip is sheared off: the screw is shorter and ends blunt."""
    cut = rng.uniform(0.3, 1.0) * p["tip_len"]
    cut += rng.uniform(0, 0.04) * p["length"]
    return screw_scene({**p, "tip_cut": cut}, size)


def screw_thread_crush(scene: Scene, p: dict, rng: Generator, size: int) -> Scene:
    """A few thread turns crushed flat on one side (from a clamp or a drop)."""
    start = -p["length"] / 2 + p["thread_from"] * p["length"] + p["pitch"]
    end = p["length"] / 2 - p["tip_len"]
    centre, half = rng.uniform(start, end), max(1.5, rng.uniform(1.2, 3.0) * p["pitch"])
    crush = (centre, half, rng.choice([-1.0, 1.0]), rng.uniform(0.6, 1.0))
    return screw_scene({**p, "crush": crush}, size)


def screw_head_nick(scene: Scene, p: dict, rng: Generator, size: int) -> Scene:
    """A notch knocked out of the head's rim."""
    u0 = -p["length"] / 2
    nick = (
        u0 + rng.uniform(0.3, 0.9) * p["head_len"],
        rng.choice([-1.0, 1.0]),
        max(1.5, rng.uniform(0.2, 0.45) * p["head_len"]),  # at least a few pixels on tiny images
        max(1.0, rng.uniform(0.15, 0.45) * p["head_r"]),
    )
    return screw_scene({**p, "nick": nick}, size)


# ---------------------------------------------------------------- capsule (two-tone gelatin capsule with imprint)

_CAPSULE_COLOURS = (
    ((0.72, 0.1, 0.1), (0.92, 0.9, 0.85)),
    ((0.1, 0.25, 0.6), (0.95, 0.8, 0.2)),
    ((0.1, 0.45, 0.25), (0.9, 0.88, 0.75)),
    ((0.45, 0.1, 0.3), (0.95, 0.55, 0.15)),
    ((0.9, 0.88, 0.82), (0.9, 0.88, 0.82)),
)
_IMPRINTS = ("500", "A12", "QC 5", "250", "K7")


def capsule_sample(rng: Generator, size: int) -> dict:
    """Random position, near-horizontal rotation (either way round), colours and imprint of one capsule."""
    half = rng.uniform(0.2, 0.24) * size
    cap, body = _CAPSULE_COLOURS[rng.integers(len(_CAPSULE_COLOURS))]
    return {
        "cy": size / 2 + rng.uniform(-0.04, 0.04) * size,
        "cx": size / 2 + rng.uniform(-0.04, 0.04) * size,
        "rot": rng.uniform(-0.3, 0.3) + (np.pi if rng.random() < 0.5 else 0.0),
        "half": half,
        "radius": rng.uniform(0.11, 0.13) * size,
        "seam": rng.uniform(-0.15, 0.0) * half,
        "cap": jitter_colour(rng, cap, 0.06),
        "body": jitter_colour(rng, body, 0.04),
        "text": _IMPRINTS[rng.integers(len(_IMPRINTS))],
        "ink": jitter_colour(rng, (0.1, 0.09, 0.1), 0.2),
        "belt": jitter_colour(rng, (0.5, 0.56, 0.55), 0.1),
        "squeeze": None,
        "misprint": None,
        "look": sample_look(rng, size, shininess=(40.0, 90.0), specular=(0.5, 1.0)),
        "seed": int(rng.integers(2**32)),
    }


def _imprint(p: dict, u: np.ndarray, v: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Ink alpha of the imprint, wrapped around the capsule body (arc length across, ``u`` along)."""
    r = float(p["radius"])
    width, height = int(2 * (p["half"] + r)) + 8, int(2 * r) + 8
    canvas = np.zeros((height, width), np.uint8)
    font, thick = cv2.FONT_HERSHEY_SIMPLEX, max(1, int(round(r / 14)))
    (tw, th), _ = cv2.getTextSize(p["text"], font, 1.0, thick)
    scale = min(0.7 * r / th, 0.85 * (p["half"] - p["seam"]) / tw)
    (tw, th), _ = cv2.getTextSize(p["text"], font, scale, thick)
    origin = (int(width / 2 - tw / 2), int(height / 2 + th / 2))
    cv2.putText(canvas, p["text"], origin, font, scale, 255, thick, cv2.LINE_AA)
    misprint = p["misprint"]
    if misprint is not None:  # (kind, a, b): part erased, smeared, or no print at all
        kind, a, b = misprint
        x0, x1 = int(width / 2 - tw / 2), int(width / 2 + tw / 2)
        if kind == "erase":
            lo = x0 + int(a * (x1 - x0))
            canvas[:, lo : lo + max(2, int(b * (x1 - x0)))] = 0
        elif kind == "smear":
            shifted = np.roll(canvas, (int(round(a * 3 * thick)) + 1, int(round(b * 6 * thick)) + 1), axis=(0, 1))
            canvas = cv2.GaussianBlur(np.maximum(canvas, (shifted * 0.7).astype(np.uint8)), (0, 0), 0.8)
        else:
            canvas[:] = 0
    centre = (p["seam"] + p["half"]) / 2 + r / 2
    s = np.float32(r) * np.arcsin(np.clip(v / np.maximum(radius, 1.0), -1.0, 1.0))
    mapx = (u - np.float32(centre) + np.float32(width / 2)).astype(np.float32)
    mapy = (s + np.float32(height / 2)).astype(np.float32)
    ink = cv2.remap(canvas, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return ink.astype(np.float32) / 255.0 * (1.0 - smoothstep(0.75, 0.95, np.abs(v) / np.maximum(radius, 1.0)))


def capsule_scene(p: dict, size: int) -> Scene:
    """A glossy two-tone capsule on a woven belt; the cap shell overlaps the body at the seam."""
    rng = np.random.default_rng(p["seed"])
    u, v = _frame(p, size)
    r = np.float32(p["radius"])
    radius = np.where(u < p["seam"], r * 1.03, r).astype(np.float32)
    squeeze = p["squeeze"]
    if squeeze is not None:  # (centre u, half length, strength, side)
        pinch = bump((u - squeeze[0]) / np.float32(squeeze[1])) * smoothstep(-0.3 * r, 0.6 * r, squeeze[3] * v)
        radius = radius * (1.0 - squeeze[2] * np.maximum(pinch - 0.05, 0.0) / 0.95)  # no faint tail: a clear footprint
    du = u - np.clip(u, -p["half"], p["half"])
    d = np.sqrt(du * du + v * v)
    cover = np.clip(radius - d + 0.5, 0.0, 1.0).astype(np.float32)
    height = np.sqrt(np.clip(radius * radius - d * d, 0.0, None))
    cap = np.broadcast_to(np.float32(p["cap"]), (size, size, 3))
    shell = mix(cap, np.float32(p["body"]), np.clip(u - np.float32(p["seam"]) + 0.5, 0.0, 1.0))
    shell = mix(shell, np.float32(p["ink"]), 0.9 * _imprint(p, u, v, radius) * cover)
    weave = fractal_noise(rng, (size, size), size / 3.0, 1, (1.0, 0.12))
    belt = np.float32(p["belt"]) * (1.0 + 0.05 * weave + 0.03 * fractal_noise(rng, (size, size), 3.0, 2))[..., None]
    albedo = mix(belt, shell, cover)
    return Scene(height.astype(np.float32), albedo, (0.04 + 0.9 * cover).astype(np.float32), cover)


def capsule_faulty_imprint(scene: Scene, p: dict, rng: Generator, size: int) -> Scene:
    """The imprint is partly missing, smeared (double, blurred) or absent."""
    kind = ("erase", "erase", "smear", "smear", "missing")[rng.integers(5)]
    return capsule_scene({**p, "misprint": (kind, rng.uniform(0.0, 0.6), rng.uniform(0.2, 0.5))}, size)


def capsule_squeeze(scene: Scene, p: dict, rng: Generator, size: int) -> Scene:
    """The shell is pinched in from one side, from barely to clearly."""
    centre, half = rng.uniform(-0.8, 0.8) * p["half"], rng.uniform(0.3, 0.8) * p["half"]
    squeeze = (centre, half, rng.uniform(0.06, 0.25), rng.choice([-1.0, 1.0]))
    return capsule_scene({**p, "squeeze": squeeze}, size)


def capsule_dent(scene: Scene, p: dict, rng: Generator, size: int) -> Scene:
    """One or two small dents pressed into the shell: only the highlight and shading betray them."""
    u, v = _frame(p, size)
    du = u - np.clip(u, -p["half"], p["half"])
    inner = np.sqrt(du * du + v * v) < 0.7 * p["radius"]
    height = scene.height
    for _ in range(rng.integers(1, 3)):
        r = px(size, rng.uniform(3.0, 9.0))
        alpha = blob_alpha(rng, size, point_where(rng, inner), r, 0.25, r * 0.6)
        height = np.where(alpha > 0, height - np.float32(r * rng.uniform(0.3, 0.8)) * alpha * alpha, height)
    return scene.with_(height=height.astype(np.float32))
