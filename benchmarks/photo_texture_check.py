"""PatchCore's random-init embeddings on real texture photographs, not on the project's own generator.

Every random-init default in :mod:`qc_models.detectors.patchcore_defaults` was chosen on the
synthetic categories, which the issue warns against tuning to. This check uses three real
photographs that ship with scikit-image (``brick``, ``grass``, ``gravel``: 512 x 512 grayscale,
public domain): good images are native-resolution 256-px crops (randomly flipped) from the left
half of a photo, test images crops from the right half, and the defects are four generic edits
written here, not drawn by :mod:`qc_models.detectors.synthetic_anomalies`: a thin curved scratch,
foreign material (a patch of ``camera.png``), a smudge (local blur) and a stain (local gain).
Each embedding is fitted on the same 100 crops and scored on 60 good + 60 defective crops; two
draws (``--seeds``) per photo.

    pip install scikit-image      # only for the photographs; not a dependency of the product
    .venv/bin/python benchmarks/photo_texture_check.py [--photos DIR] [--seeds 0 1]

Prints JSON: per photo and draw, image / pixel AUROC and per-defect image AUROC of each
embedding, then each embedding's means. ``--write-dataset DIR`` instead writes the photos as an
MVTec-layout dataset, so that every detector can be measured on them with the detector benchmark. ``--photos`` is a folder holding ``brick.png``,
``grass.png``, ``gravel.png`` and ``camera.png`` (default: scikit-image's data folder).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image
from sklearn.metrics import roc_auc_score

SIZE = 256
TEXTURES = ("brick", "grass", "gravel")
DEFECTS = ("scratch", "foreign", "smudge", "stain")
PLAIN = {"border_padding": 0, "colour_weight": 0.0, "self_match_radius": 0, "fine_weight": 0.0}
#: Embeddings compared (PatchCore keyword arguments on top of ``weights="none"``).
EMBEDDINGS: dict[str, dict[str, Any]] = {
    "default (layer1+2, colour, padding, own-image matching, thin lines)": {},
    "default without the thin-line channels": {"fine_weight": 0.0},
    "layer1+2, nothing added": dict(PLAIN),
    "layer1+2+3, other defaults": {"layers": ("layer1", "layer2", "layer3")},
    "layer1+2+3, nothing added": {"layers": ("layer1", "layer2", "layer3"), **PLAIN},
    "paper (layer2+3, nothing added)": {"layers": ("layer2", "layer3"), **PLAIN},
}


def photos_folder(given: str | None) -> Path:
    """``given``, or scikit-image's data folder; a clear error when neither is there."""
    if given:
        folder = Path(given)
    else:
        try:
            import skimage.data  # noqa: PLC0415 - optional, only for this benchmark
        except ImportError as exc:
            raise SystemExit("error: pass --photos DIR, or `pip install scikit-image` for its sample photographs") from exc
        folder = Path(skimage.data.__file__).parent
    missing = [n for n in (*TEXTURES, "camera") if not (folder / f"{n}.png").is_file()]
    if missing:
        raise SystemExit(f"error: {folder} lacks {', '.join(m + '.png' for m in missing)}")
    return folder


def load_gray(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


def crops(photo: np.ndarray, rng: np.random.Generator, n: int, x0: int, x1: int) -> list[np.ndarray]:
    """``n`` native-resolution SIZE-px crops from columns ``x0..x1``, randomly flipped, as RGB."""
    out = []
    for _ in range(n):
        y, x = rng.integers(0, photo.shape[0] - SIZE + 1), rng.integers(x0, x1 - SIZE + 1)
        c = photo[y:y + SIZE, x:x + SIZE]
        c = c[:, ::-1] if rng.random() < 0.5 else c
        c = c[::-1] if rng.random() < 0.5 else c
        out.append(np.repeat(np.ascontiguousarray(c)[..., None], 3, axis=2))
    return out


def _ellipse(rng: np.random.Generator, lo: int, hi: int) -> np.ndarray:
    m = np.zeros((SIZE, SIZE), np.uint8)
    centre = tuple(int(v) for v in rng.integers(40, SIZE - 40, 2))
    axes = tuple(int(v) for v in rng.integers(lo, hi, 2))
    cv2.ellipse(m, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    return m.astype(bool)


def add_defect(img: np.ndarray, kind: str, rng: np.random.Generator, foreign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One generic defect of ``kind`` on ``img``; returns the image and its ground-truth region."""
    out = img.astype(np.float32)
    if kind == "scratch":
        m = np.zeros((SIZE, SIZE), np.uint8)
        start, d = rng.integers(30, SIZE - 30, 2), rng.normal(0, 1, 2)
        t = np.linspace(0, 1, 30)[:, None]
        pts = start + t * rng.uniform(40, 100) * d / np.linalg.norm(d) + 4 * t * (1 - t) * rng.normal(0, 12, 2)
        cv2.polylines(m, [pts.astype(np.int32)], False, 1, thickness=int(rng.integers(2, 4)))
        mask = m.astype(bool)
        out[mask] = np.clip(out[mask].mean() + rng.choice([-1, 1]) * rng.uniform(50, 80), 0, 255)
    elif kind == "foreign":
        mask = _ellipse(rng, 8, 28)
        y, x = rng.integers(0, foreign.shape[0] - SIZE), rng.integers(0, foreign.shape[1] - SIZE)
        patch = np.repeat(foreign[y:y + SIZE, x:x + SIZE].astype(np.float32)[..., None], 3, axis=2)
        out[mask] = 0.2 * out[mask] + 0.8 * patch[mask]
    elif kind == "smudge":
        mask = _ellipse(rng, 14, 34)
        out[mask] = cv2.GaussianBlur(out, (0, 0), 5)[mask]
    elif kind == "stain":
        mask = _ellipse(rng, 8, 28)
        soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 2)[..., None]
        out = out * (1 - soft) + np.clip(out * rng.choice([0.6, 1.45]), 0, 255) * soft
    else:
        raise ValueError(f"unknown defect kind {kind!r}")
    return np.clip(out, 0, 255).astype(np.uint8), mask


def draw(photo: np.ndarray, foreign: np.ndarray, rng: np.random.Generator, n_train: int, n_good: int,
         per_defect: int) -> tuple[list[np.ndarray], list[np.ndarray], dict[str, list[tuple[np.ndarray, np.ndarray]]]]:
    """Training crops (left half), good test crops and ``(image, mask)`` defects per kind (right half)."""
    half, width = photo.shape[1] // 2, photo.shape[1]
    train = crops(photo, rng, n_train, 0, half)
    good = crops(photo, rng, n_good, half, width)
    defects = {kind: [add_defect(img, kind, rng, foreign) for img in crops(photo, rng, per_defect, half, width)]
               for kind in DEFECTS}
    return train, good, defects


def one_draw(photo: np.ndarray, foreign: np.ndarray, seed: int, per_defect: int = 15) -> dict[str, Any]:
    """Fit every embedding on the same crops of one photo and score the same test crops."""
    from qc_models.detectors.patchcore import PatchCore

    train, good, defects = draw(photo, foreign, np.random.default_rng(seed), 100, 60, per_defect)
    bad = [img for kind in DEFECTS for img, _ in defects[kind]]
    kinds = np.array([kind for kind in DEFECTS for _ in defects[kind]])
    labels = np.r_[np.zeros(len(good)), np.ones(len(bad))]
    truth = np.concatenate([np.zeros(len(good) * SIZE * SIZE, bool)] + [m.ravel() for k in DEFECTS for _, m in defects[k]])
    out: dict[str, Any] = {}
    for name, kwargs in EMBEDDINGS.items():
        t0 = time.perf_counter()
        model = PatchCore(weights="none", **kwargs).fit(train)
        fit_s = time.perf_counter() - t0
        pred = model.predict(good + bad)
        s = pred.image_scores
        per_type = {k: float(roc_auc_score(np.r_[np.zeros(len(good)), np.ones(per_defect)],
                                           np.r_[s[:len(good)], s[len(good):][kinds == k]])) for k in DEFECTS}
        out[name] = {"image_auroc": float(roc_auc_score(labels, s)),
                     "pixel_auroc": float(roc_auc_score(truth, np.concatenate([a.ravel() for a in pred.anomaly_maps]))),
                     "per_defect_image_auroc": per_type, "fit_seconds": round(fit_s, 1)}
    return out


def write_dataset(folder: Path, out: Path, seed: int = 0, n_train: int = 120, n_good: int = 60, per_defect: int = 15) -> Path:
    """The photos as an MVTec-layout dataset (one category per photo, grayscale files as photographed), for
    the full detector benchmark: ``benchmarks/detector_benchmark.py --workdir W`` uses ``W/data`` as it is."""
    foreign = load_gray(folder / "camera.png")
    for texture in TEXTURES:
        train, good, defects = draw(load_gray(folder / f"{texture}.png"), foreign, np.random.default_rng(seed),
                                    n_train, n_good, per_defect)
        files = {"train/good": train, "test/good": good, **{f"test/{k}": [img for img, _ in v] for k, v in defects.items()}}
        files.update({f"ground_truth/{k}": [m.astype(np.uint8) * 255 for _, m in v] for k, v in defects.items()})
        for sub, arrays in files.items():
            (out / texture / sub).mkdir(parents=True, exist_ok=True)
            suffix = "_mask" if sub.startswith("ground_truth") else ""
            for i, arr in enumerate(arrays):
                Image.fromarray(arr if arr.ndim == 2 else arr[..., 0]).save(out / texture / sub / f"{i:03d}{suffix}.png")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", help="folder with brick.png, grass.png, gravel.png, camera.png")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--write-dataset", metavar="DIR",
                   help="instead: write the photos as an MVTec-layout dataset to DIR (120 good to train, 60 good + "
                        "15 per defect to test) for benchmarks/detector_benchmark.py --workdir (DIR = WORKDIR/data)")
    args = p.parse_args()
    from qc_models.runtime import configure_torch, machine_description

    configure_torch()
    folder = photos_folder(args.photos)
    if args.write_dataset:
        print(write_dataset(folder, Path(args.write_dataset), seed=args.seeds[0]))
        return
    foreign = load_gray(folder / "camera.png")
    runs = {f"{t}/{s}": one_draw(load_gray(folder / f"{t}.png"), foreign, s) for t in TEXTURES for s in args.seeds}
    means = {name: {key: round(float(np.mean([r[name][key] for r in runs.values()])), 3)
                    for key in ("image_auroc", "pixel_auroc")} for name in EMBEDDINGS}
    print(json.dumps({"machine": machine_description(), "photos": str(folder), "seeds": args.seeds,
                      "runs": runs, "means": means}, indent=1))


if __name__ == "__main__":
    main()
