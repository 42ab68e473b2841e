"""Our PatchCore against anomalib's, on the same images: is a missed target the data or the code?

The issue's PatchCore targets (image AUROC >= 0.95, pixel AUROC >= 0.98) quote
anomalib 2.7's PatchCore with a random-init resnet18 on another texture. This
script runs anomalib's own torch model (``PatchcoreModel``: timm resnet18,
layer2+layer3, 3x3 pooling, k-center-greedy coreset, 9-neighbour re-weighted
score, anomaly map with Gaussian blur) and our :class:`PatchCore` with its
defaults for ``--weights none`` on the same fit images and test images, scoring
both end to end (decode, model, map) and prints one JSON object.

anomalib is *not* a dependency of this project; install it in a separate
environment first (it pulls in lightning, timm and more):

    python -m venv /tmp/av && /tmp/av/bin/pip install torch==2.14.1 torchvision==0.29.1 anomalib==2.7.0
    /tmp/av/bin/pip install -e .   # or set PYTHONPATH to the repository root
    QC_TORCH_THREADS=2 /tmp/av/bin/python benchmarks/anomalib_reference.py --anomalib-ratio 1.0

``--anomalib-ratio 1.0`` keeps anomalib's whole memory bank (no coreset: its best
quality, and minutes instead of ~1,000 s of greedy selection per category at 120
images); the default 0.1 is anomalib's own default. Preprocessing follows
anomalib 2.7's PatchCore pre-processor: resize to 256x256 (antialiased) and
ImageNet normalisation, no crop.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from sklearn.metrics import roc_auc_score  # noqa: E402

import patchcore_speed  # noqa: E402
from qc_models.data.images import load_mask, load_rgb  # noqa: E402
from qc_models.data.layout import list_categories, open_category  # noqa: E402
from qc_models.runtime import configure_torch  # noqa: E402

_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def _anomalib_batch(images: list[np.ndarray], size: int) -> Any:
    """anomalib 2.7's PatchCore pre-processing: antialiased resize to ``size`` and ImageNet normalisation."""
    import torch
    import torch.nn.functional as F

    x = torch.stack([torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1) for im in images]).float() / 255.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def evaluate_anomalib(root: Path, category: str, args: argparse.Namespace) -> dict[str, Any]:
    """Fit anomalib's PatchcoreModel on the category's good images and score its test set end to end."""
    import torch
    import torch.nn.functional as F
    from anomalib.models.image.patchcore.torch_model import PatchcoreModel

    layout = open_category(root, category)
    train = [load_rgb(s.path) for s in layout.samples("train")]
    test = layout.samples("test")
    torch.manual_seed(args.seed)
    model = PatchcoreModel(layers=["layer2", "layer3"], backbone=args.backbone, pre_trained=False)
    start = time.perf_counter()
    model.train()
    for i in range(0, len(train), args.batch_size):
        model(_anomalib_batch(train[i : i + args.batch_size], args.image_size))
    if args.anomalib_ratio < 1.0:
        model.subsample_embedding(args.anomalib_ratio)
    else:
        model.memory_bank = torch.vstack(model.embedding_store)
        model.embedding_store.clear()
    fit_seconds = time.perf_counter() - start
    model.eval()
    scores: list[np.ndarray] = []
    maps: list[np.ndarray] = []
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(test), args.batch_size):
            batch = [load_rgb(s.path) for s in test[i : i + args.batch_size]]
            out = model(_anomalib_batch(batch, args.image_size))
            scores.append(out.pred_score.flatten().numpy())
            for im, amap in zip(batch, out.anomaly_map):
                full = F.interpolate(amap[None], size=im.shape[:2], mode="bilinear", align_corners=False)
                maps.append(full[0, 0].numpy())
    seconds = time.perf_counter() - start
    labels = np.array([s.label for s in test])
    masks = [load_mask(s.mask_path) if s.mask_path is not None else np.zeros(m.shape, bool) for s, m in zip(test, maps)]
    return {
        "category": category,
        "implementation": "anomalib-2.7 PatchcoreModel",
        "coreset_ratio": args.anomalib_ratio,
        "n_train": len(train),
        "n_test": len(test),
        "memory_bank_size": int(model.memory_bank.shape[0]),
        "fit_seconds": fit_seconds,
        "images_per_second": len(test) / seconds,
        "image_auroc": float(roc_auc_score(labels, np.concatenate(scores))),
        "pixel_auroc": float(
            roc_auc_score(np.concatenate([m.ravel() for m in masks]), np.concatenate([m.ravel() for m in maps]))
        ),
    }


def _means(rows: list[dict[str, Any]]) -> dict[str, float]:
    keys = ("image_auroc", "pixel_auroc", "fit_seconds", "images_per_second")
    return {k: float(np.mean([r[k] for r in rows])) for k in keys} | {
        "min_image_auroc": min(r["image_auroc"] for r in rows),
        "min_pixel_auroc": min(r["pixel_auroc"] for r in rows),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, help="dataset root (MVTec layout); default: generate the synthetic categories")
    p.add_argument("--categories", nargs="+", help="default: the 4 demo and the 4 hold-out synthetic categories")
    p.add_argument("--anomalib-ratio", type=float, default=0.1, help="anomalib coreset ratio; 1.0 = whole memory bank")
    p.add_argument("--n-train", type=int, default=120)
    p.add_argument("--n-test-good", type=int, default=20)
    p.add_argument("--n-per-defect", type=int, default=10)
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if importlib.util.find_spec("anomalib") is None:
        print("anomalib is not installed: see this script's docstring for a separate environment", file=sys.stderr)
        return 2
    configure_torch()
    # Our PatchCore with the defaults `qc train --weights none` uses (layers, padding, colour, coreset 0.05).
    ours_args = argparse.Namespace(
        backbone=args.backbone, weights="none", image_size=args.image_size, reweight=False, layers=None,
        seed=args.seed, batch_size=args.batch_size,
    )
    with tempfile.TemporaryDirectory(prefix="anomalib_ref_") as tmp:
        from qc_models.data.synthetic import DEMO_CATEGORIES
        from qc_models.data.synthetic_holdout import HOLDOUT_CATEGORIES

        root = patchcore_speed.dataset_root(args, Path(tmp), list(DEMO_CATEGORIES) + list(HOLDOUT_CATEGORIES))
        categories = args.categories or list_categories(root)
        ours, theirs = [], []
        for category in categories:
            row = patchcore_speed.evaluate(root, category, 0.05, 32, ours_args)
            row["implementation"] = "qc_models PatchCore"
            ours.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
            ref = evaluate_anomalib(root, category, args)
            theirs.append(ref)
            print(json.dumps(ref), file=sys.stderr, flush=True)
    import torch

    result = {
        "benchmark": "anomalib_reference",
        "environment": {"torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                        "load_average_at_end": os.getloadavg()},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "ours": ours,
        "anomalib": theirs,
        "summary": {"ours": _means(ours), "anomalib": _means(theirs)},
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
