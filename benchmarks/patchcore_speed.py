"""PatchCore speed and quality versus coreset ratio, projection dimension and bank cap.

For every category of a synthetic (or given) MVTec-layout dataset and every
(coreset_ratio, projection_dim, max_bank_size) combination: fit on the good training images (timed, split into
feature extraction and coreset selection), then score the test images end to end (decode,
backbone, nearest neighbours, anomaly map; timed as images/s) and compute image AUROC and
pixel AUROC. Prints one JSON object; numbers measured on a shared CPU are pessimistic.

    QC_TORCH_THREADS=2 .venv/bin/python benchmarks/patchcore_speed.py --ratios 0.01 0.025 0.05 0.1

CPU seconds (``fit_cpu_seconds``, ``scoring_cpu_ms_per_image``) are reported beside wall time:
with ``QC_TORCH_THREADS=1`` they show the compute cost even when other processes share the CPU.
    .venv/bin/python benchmarks/patchcore_speed.py --root data/demo --categories carpet --ratios 0.1

MVTec-sized training sets (the bank cap keeps scoring speed; 0 = no cap):
    .venv/bin/python benchmarks/patchcore_speed.py --categories carpet wood bottle --n-train 400 \
        --n-test-good 40 --n-per-defect 12 --ratios 0.05 --projection-dims 32 --max-bank-sizes 0 10000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sklearn.metrics import roc_auc_score  # noqa: E402

from qc_models.data.images import load_mask, load_rgb  # noqa: E402
from qc_models.data.layout import list_categories, open_category  # noqa: E402
from qc_models.detectors.patchcore import PatchCore  # noqa: E402
from qc_models.detectors.patchcore_defaults import MAX_BANK_SIZE  # noqa: E402
from qc_models.runtime import configure_torch, machine_description  # noqa: E402

TARGETS = {"fit_seconds": 30.0, "images_per_second": 10.0, "image_auroc": 0.95, "pixel_auroc": 0.98}


def _timed_fit(model: PatchCore, train: list[np.ndarray]) -> dict[str, float]:
    """Fit and split the wall time into feature extraction and coreset selection via progress."""
    marks: dict[str, float] = {}

    def progress(message: str, fraction: float) -> None:
        marks.setdefault(message, time.perf_counter())

    start, cpu_start = time.perf_counter(), time.process_time()
    model.fit(train, progress)
    end, cpu_end = time.perf_counter(), time.process_time()
    coreset_start = marks.get("selecting coreset", end)
    return {
        "fit_seconds": end - start,
        "feature_seconds": coreset_start - start,
        "coreset_seconds": end - coreset_start,
        "fit_cpu_seconds": cpu_end - cpu_start,
    }


def _timed_scoring(model: PatchCore, samples: list[Any]) -> tuple[np.ndarray, list[np.ndarray], float, float]:
    """Score test images as the inspection does: decode a batch, predict, repeat.

    Returns scores, maps, wall seconds and process CPU seconds (all threads).
    """
    scores: list[np.ndarray] = []
    maps: list[np.ndarray] = []
    start, cpu_start = time.perf_counter(), time.process_time()
    for i in range(0, len(samples), model.batch_size):
        batch = [load_rgb(s.path) for s in samples[i : i + model.batch_size]]
        pred = model.predict(batch)
        scores.append(pred.image_scores)
        maps.extend(pred.anomaly_maps)
    return np.concatenate(scores), maps, time.perf_counter() - start, time.process_time() - cpu_start


def evaluate(
    root: Path, category: str, ratio: float, projection_dim: int | None, args: argparse.Namespace,
    max_bank_size: int | None = None,
) -> dict[str, Any]:
    layout = open_category(root, category)
    train = [load_rgb(s.path) for s in layout.samples("train")]
    test = layout.samples("test")
    model = PatchCore(
        backbone=args.backbone,
        weights=args.weights,
        image_size=args.image_size,
        coreset_ratio=ratio,
        max_bank_size=max_bank_size,
        projection_dim=projection_dim,
        reweight=args.reweight,
        layers=args.layers,
        seed=args.seed,
        batch_size=args.batch_size,
    )
    row: dict[str, Any] = {"category": category, "coreset_ratio": ratio, "projection_dim": projection_dim,
                           "max_bank_size": max_bank_size}
    row["layers"] = list(model.layers)
    row.update(_timed_fit(model, train))
    scores, maps, seconds, cpu_seconds = _timed_scoring(model, test)
    labels = np.array([s.label for s in test])
    masks = [
        load_mask(s.mask_path) if s.mask_path is not None else np.zeros(m.shape, dtype=bool)
        for s, m in zip(test, maps)
    ]
    row.update(
        {
            "n_train": len(train),
            "n_test": len(test),
            "memory_bank_size": int(model.memory_bank_.shape[0]),
            "images_per_second": len(test) / seconds,
            "scoring_cpu_ms_per_image": 1000.0 * cpu_seconds / len(test),
            "image_auroc": float(roc_auc_score(labels, scores)) if 0 < labels.sum() < len(labels) else None,
            "pixel_auroc": float(
                roc_auc_score(np.concatenate([m.ravel() for m in masks]), np.concatenate([m.ravel() for m in maps]))
            ),
        }
    )
    return row


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (ratio, projection_dim, bank cap): worst-category quality, slowest fit and scoring, and the checks."""
    out = []

    def key_of(r: dict[str, Any]) -> tuple[float, int, int]:
        return r["coreset_ratio"], r["projection_dim"] or 0, r.get("max_bank_size") or 0

    for key in sorted({key_of(r) for r in rows}):
        group = [r for r in rows if key_of(r) == key]
        worst = {
            "fit_seconds": max(r["fit_seconds"] for r in group),
            "coreset_seconds": max(r["coreset_seconds"] for r in group),
            "images_per_second": min(r["images_per_second"] for r in group),
            "image_auroc": min(r["image_auroc"] for r in group if r["image_auroc"] is not None),
            "pixel_auroc": min(r["pixel_auroc"] for r in group),
        }
        checks = {
            "fit_seconds": worst["fit_seconds"] <= TARGETS["fit_seconds"],
            "images_per_second": worst["images_per_second"] >= TARGETS["images_per_second"],
            "image_auroc": worst["image_auroc"] >= TARGETS["image_auroc"],
            "pixel_auroc": worst["pixel_auroc"] >= TARGETS["pixel_auroc"],
        }
        out.append({"coreset_ratio": key[0], "projection_dim": key[1] or None, "max_bank_size": key[2] or None,
                    "worst": worst, "checks": checks})
    return out


def dataset_root(args: argparse.Namespace, tmp: Path, default_categories: list[str] | None = None) -> Path:
    """``args.root``, or a synthetic dataset generated under ``tmp`` with the benchmark's size and counts."""
    if args.root is not None:
        return args.root
    from qc_models.data.synthetic import generate_dataset

    return generate_dataset(
        tmp / "data",
        categories=args.categories or default_categories,
        size=args.image_size,
        seed=args.seed,
        n_train=args.n_train,
        n_test_good=args.n_test_good,
        n_per_defect=args.n_per_defect,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, help="dataset root (MVTec layout); default: generate synthetic data")
    p.add_argument("--categories", nargs="+", help="default: all categories of the dataset")
    p.add_argument("--ratios", nargs="+", type=float, default=[0.01, 0.025, 0.05, 0.1])
    p.add_argument("--projection-dims", nargs="+", type=int, default=[128], help="0 = no projection")
    p.add_argument("--max-bank-sizes", nargs="+", type=int, default=[MAX_BANK_SIZE],
                   help=f"memory bank caps (default {MAX_BANK_SIZE}, the detector's; 0 = no cap)")
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--n-train", type=int, default=120)
    p.add_argument("--n-test-good", type=int, default=20)
    p.add_argument("--n-per-defect", type=int, default=10)
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--weights", default="none")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--reweight", action="store_true")
    p.add_argument("--layers", nargs="+", help="feature layers, e.g. layer2 layer3; default depends on --weights")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    configure_torch()

    with tempfile.TemporaryDirectory(prefix="patchcore_bench_") as tmp:
        root = dataset_root(args, Path(tmp))
        categories = args.categories or list_categories(root)
        rows = []
        for category in categories:
            for dim in args.projection_dims:
                for ratio in args.ratios:
                    for cap in args.max_bank_sizes:
                        row = evaluate(root, category, ratio, dim or None, args, cap or None)
                        rows.append(row)
                        print(json.dumps(row), file=sys.stderr, flush=True)
    result = {
        "benchmark": "patchcore_speed",
        "environment": {
            **machine_description(),
            "load_average_at_end": os.getloadavg(),
            "note": "shared CPU: timings are pessimistic when other work runs",
        },
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "targets": TARGETS,
        "results": rows,
        "summary": summarise(rows),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
