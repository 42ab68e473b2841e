"""`qc train`, `qc evaluate`, `qc score`, `qc calibrate`, `qc models`: the model commands (argument parsing only).

``train`` prints one artifact path per line on stdout (progress and warnings on
stderr); ``evaluate --json`` prints the metrics keyed by model name; ``score``
reports per-model and ensemble decisions for any images, listing unreadable
files with their reason instead of stopping. Exit codes: 0 success, 1 some
files could not be scored, 2 bad usage or input (e.g. ImageNet weights offline).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qc_models.cli import CliError
from qc_models.config import Settings

MODEL_CHOICES = ("cae", "unet", "patchcore")
UNTRAINED_WARNING = (
    "WARNING: untrained backbone (random init): PatchCore features are not ImageNet-pretrained, so results "
    "are for demonstration only; use --weights imagenet or --weights /path/to/resnet18.pth for production"
)
SCORE_BATCH = 16


def _progress(stream: Any = None, min_interval_s: float = 2.0) -> Callable[[str, float], None]:
    """Throttled progress lines on stderr (rewritten in place on a terminal)."""
    stream = stream or sys.stderr
    tty = bool(getattr(stream, "isatty", lambda: False)())
    last = {"t": 0.0}

    def progress(message: str, fraction: float) -> None:
        now = time.monotonic()
        if fraction < 1.0 and now - last["t"] < (0.25 if tty else min_interval_s):
            return
        last["t"] = now
        text = f"[{fraction * 100:5.1f}%] {message}"
        stream.write(("\r" + text[:100].ljust(100)) if tty else text + "\n")
        if tty and fraction >= 1.0:
            stream.write("\n")
        stream.flush()

    return progress


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input or a bad model file (reported as one line), not a bug."""
    from qc_models.calibration import CalibrationError
    from qc_models.data import DatasetError, ImageLoadError
    from qc_models.detectors.backbone import BackboneWeightsError
    from qc_models.detectors.ensemble import EnsembleError
    from qc_models.registry import ModelError

    return (BackboneWeightsError, DatasetError, ImageLoadError, CalibrationError, ModelError, EnsembleError, ValueError)


def _setup_logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="WARNING: %(message)s", stream=sys.stderr)


def _models_dir(value: str | None) -> Path:
    return Path(value) if value else Settings.from_env().models_dir


# ---------------------------------------------------------------- train


def cmd_train(args: argparse.Namespace) -> int:
    from qc_models.data import list_categories
    from qc_models.training import train_category

    _setup_logging()
    models = MODEL_CHOICES if args.model == "all" else (args.model,)
    out = _models_dir(args.out)
    overrides = _patchcore_overrides(args, models)
    if args.weights == "none":
        print(UNTRAINED_WARNING, file=sys.stderr, flush=True)
    try:
        categories = list_categories(args.root) if args.category == "all" else [args.category]
        for category in categories:
            paths = train_category(
                args.root, category, models=models, out=out, weights=args.weights, backbone=args.backbone,
                size=args.size, epochs=args.epochs, seed=args.seed, target_false_reject_rate=args.target_frr,
                validation_dir=args.validation, defects_dir=args.defects, profile=args.profile, progress=_progress(),
                align=args.align, detector_overrides=overrides,
            )
            for path in paths.values():
                print(path, flush=True)
    except user_errors() as exc:
        raise CliError(str(exc)) from None
    return 0


def _patchcore_overrides(args: argparse.Namespace, models: Sequence[str]) -> dict[str, dict[str, Any]] | None:
    """PatchCore's ``--coreset-ratio`` / ``--reweight`` / ``--layers``, checked before any minutes of training."""
    from qc_models.training import patchcore_overrides

    try:
        chosen = patchcore_overrides(args.coreset_ratio, args.reweight)
    except ValueError as exc:
        raise CliError(f"--coreset-ratio: {exc}") from None
    try:
        chosen.update(patchcore_overrides(layers=args.layers))
    except ValueError as exc:
        raise CliError(f"--layers: {exc}") from None
    if not chosen:
        return None
    if "patchcore" not in models:
        flags = " and ".join(f"--{k.replace('_', '-')}" for k in chosen)
        raise CliError(f"{flags} set PatchCore, which --model {args.model} does not train")
    return {"patchcore": chosen}


# ---------------------------------------------------------------- evaluate


def _fmt(v: Any) -> str:
    if isinstance(v, (list, tuple)):  # a confidence interval
        return "-" if len(v) != 2 else f"{v[0]:.3f}-{v[1]:.3f}"
    return "-" if v is None else f"{v:.3f}"


def cmd_evaluate(args: argparse.Namespace) -> int:
    from qc_models.evaluation import run_evaluation
    from qc_models.registry import resolve_category

    _setup_logging()
    models_dir = _models_dir(args.models)
    try:
        category = resolve_category(models_dir, args.category)
        ev = run_evaluation(args.root, category, models_dir, models=args.model, progress=_progress())
    except user_errors() as exc:
        raise CliError(str(exc)) from None
    if ev.untrained_backbone:
        print(UNTRAINED_WARNING, file=sys.stderr)
    for s in ev.skipped:
        print(f"skipped {s['path']}: {s['reason']}", file=sys.stderr)
    if args.json:
        print(json.dumps(ev.metrics, indent=2, sort_keys=True))
        return 0
    cols = ("image_auroc", "image_auroc_ci95", "pixel_auroc", "aupro", "f1", "recall", "false_reject_rate")
    print(f"category {category}: {ev.metrics[next(iter(ev.metrics))]['n_images']} test images")
    print(f"{'model':<10}" + "".join(f"{c:>19}" for c in cols))
    for name, m in ev.metrics.items():
        print(f"{name:<10}" + "".join(f"{_fmt(m.get(c)):>19}" for c in cols))
    return 0


# ---------------------------------------------------------------- score


def _collect(target: Path) -> list[Path]:
    if target.is_file():
        return [target]
    if target.is_dir():
        return sorted(p for p in target.rglob("*") if p.is_file() and not any(x.startswith(".") for x in p.parts[-1:]))
    raise CliError(f"{target}: no such file or directory")


def save_overlay(image: np.ndarray, anomaly_map: np.ndarray, out: Path) -> None:
    """Heatmap of a normalised map blended over the image, with the 0.5 threshold contour in white."""
    import cv2

    heat = cv2.applyColorMap(np.clip(anomaly_map * 255.0, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    blend = cv2.addWeighted(bgr, 0.55, heat, 0.45, 0.0)
    contours, _ = cv2.findContours((anomaly_map > 0.5).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(blend, contours, -1, (255, 255, 255), 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), blend):
        raise OSError(f"{out}: could not write the overlay")


def _map_name(path: Path, base: Path, model: str) -> str:
    rel = path.relative_to(base) if base.is_dir() else Path(path.name)
    return "__".join(rel.with_suffix("").parts) + f"_{model}.png"


def cmd_score(args: argparse.Namespace) -> int:
    from qc_models.data import ImageLoadError, is_image_file, load_rgb
    from qc_models.registry import load_model_set
    from qc_models.runtime import configure_torch

    _setup_logging()
    configure_torch()
    target = Path(args.target)
    files = _collect(target)
    try:
        mset = load_model_set(_models_dir(args.models), args.category)
    except user_errors() as exc:
        raise CliError(str(exc)) from None
    if mset.untrained_backbone:
        print(UNTRAINED_WARNING, file=sys.stderr)
    for w in mset.warnings:
        print(f"WARNING: {w}", file=sys.stderr)
    save_maps = Path(args.save_maps) if args.save_maps else None
    results: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    for start in range(0, len(files), SCORE_BATCH):
        paths, images = [], []
        for f in files[start : start + SCORE_BATCH]:
            if not is_image_file(f):
                errors.append({"path": str(f), "kind": "not_an_image", "reason": "not an image file extension"})
                continue
            try:
                images.append(load_rgb(f))
                paths.append(f)
            except ImageLoadError as exc:
                errors.append({"path": str(f), "kind": exc.kind, "reason": exc.reason})
        if not images:
            continue
        for f, img, r in zip(paths, images, mset.score(images, with_maps=save_maps is not None)):
            final = r.decision_model
            entry = {"path": str(f), "decision": "NG" if r.is_defective[final] else "OK", "decided_by": final,
                     **r.to_dict()}
            if save_maps is not None:
                entry["maps"] = {}
                for name, m in r.maps.items():
                    out = save_maps / _map_name(f, target, name)
                    save_overlay(img, m, out)
                    entry["maps"][name] = str(out)
            results.append(entry)
    if args.json:
        print(json.dumps({"category": mset.category, "models": mset.versions, "thresholds": mset.thresholds,
                          "untrained_backbone": mset.untrained_backbone, "results": results, "errors": errors},
                         indent=2))
    else:
        names = mset.names
        print(f"{'decision':<9}" + "".join(f"{n:>11}" for n in names) + "  path")
        for e in results:
            print(f"{e['decision']:<9}" + "".join(f"{e['normalised'][n]:>11.3f}" for n in names) + f"  {e['path']}")
        for e in errors:
            print(f"error: {e['path']}: {e['reason']}", file=sys.stderr)
    if not results and not errors:
        raise CliError(f"{target}: no images found")
    return 1 if errors else 0


# ---------------------------------------------------------------- calibrate


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Refit the thresholds of a category's models without some calibration images (no retraining)."""
    from qc_models.calibration_exclusion import exclude_calibration_images
    from qc_models.registry import resolve_category

    _setup_logging()
    models_dir = _models_dir(args.models)
    try:
        category = resolve_category(models_dir, args.category)
        done, ensemble = exclude_calibration_images(args.root, category, models_dir, args.exclude, progress=_progress())
    except user_errors() as exc:
        raise CliError(str(exc)) from None
    for r in done:
        print(f"{category}/{r.model}: threshold {r.old_threshold:.6g} -> {r.new_threshold:.6g} "
              f"({r.n_calibration} calibration images)  {r.path}")
    if ensemble is not None:
        print(f"{category}/ensemble: rebuilt on the recalibrated members  {ensemble}")
    return 0


# ---------------------------------------------------------------- models


def _weights_text(weights: dict[str, float], spread: dict[str, Any] | None) -> str:
    """``cae 0.05 (0.00-0.18), ...``: each member's weight and, when recorded, its 10th-90th percentile."""
    from qc_models.detectors.ensemble import weight_interval

    def one(m: str, w: Any) -> str:
        band = weight_interval(spread, m)
        text = f"{m} {w:.2f}" if isinstance(w, (int, float)) else f"{m} {w!r}"
        return text + (f" ({band[0]:.2f}-{band[1]:.2f})" if band else "")

    return ", ".join(one(m, w) for m, w in weights.items())


def cmd_models(args: argparse.Namespace) -> int:
    """List the registry's versions, newest first; exit 1 when a version cannot be read."""
    from qc_models.detectors.ensemble import unsettled_note
    from qc_models.model_set import MODEL_ORDER
    from qc_models.registry import list_versions, version_rows

    models_dir = _models_dir(args.models_dir)
    if not models_dir.is_dir():
        raise CliError(f"{models_dir}: no such model registry folder")
    rows = sorted(version_rows(list_versions(models_dir, args.category, args.model)),  # stable: newest first within
                  key=lambda r: (r["category"], MODEL_ORDER.index(r["model"]) if r["model"] in MODEL_ORDER else 99))
    if args.json:
        print(json.dumps({"models_dir": str(models_dir), "versions": rows}, indent=2))
    elif rows:
        cols = ("category", "model", "version", "use", "backbone", "threshold", "image_auroc", "pixel_auroc",
                "recall", "false_reject_rate")
        widths = {c: max(len(c), *(len(_cell(r, c)) for r in rows)) for c in cols}
        print("  ".join(c.ljust(widths[c]) for c in cols).rstrip())
        for r in rows:
            print("  ".join(_cell(r, c).ljust(widths[c]) for c in cols).rstrip())
        print("use: * = the newest version, which every command loads; metrics are from the last qc evaluate")
        for r in rows:
            if r["in_use"] and r["metrics_threshold"] is not None:
                print(f"{r['category']}/{r['model']}: threshold changed after the last qc evaluate (which measured at "
                      f"{r['metrics_threshold']:.4g}); recall and false-reject rate return with the next one")
        for r in rows:
            if r["in_use"] and r["ensemble_weights"]:
                print(f"{r['category']} ensemble weights: {_weights_text(r['ensemble_weights'], r['weight_spread'])}")
    for r in rows:
        if r["error"]:
            print(f"error: {r['path']}: {r['error']}", file=sys.stderr)
    for r in rows:
        if r["in_use"] and (note := unsettled_note(r["weight_spread"])):
            print(f"warning: {r['category']}/ensemble: {note}", file=sys.stderr)
    if any(r["untrained_backbone"] and r["in_use"] for r in rows):
        print(UNTRAINED_WARNING, file=sys.stderr)
    if not rows:
        chosen = " ".join(f"{k} {v}" for k, v in (("category", args.category), ("model", args.model)) if v)
        raise CliError(f"{models_dir}: no trained models{' for ' + chosen if chosen else ''} "
                       "(train some with: qc train ROOT --category C --out DIR)")
    return 1 if any(r["error"] for r in rows) else 0


def _cell(row: dict[str, Any], col: str) -> str:
    if col == "use":
        return "*" if row["in_use"] else ""
    value = row.get(col)
    if row.get("error") and col not in ("category", "model", "version"):
        return "unreadable" if col == "backbone" else "-"
    if value is None:
        return "-"
    if col == "threshold":
        short = f"{value:.4g}"  # but 0.99999988 (a probability threshold at its bound) is not "1"
        return f"{value:.8g}" if float(short) != value and float(short).is_integer() else short
    return f"{value:.3f}" if isinstance(value, float) else str(value)


# ---------------------------------------------------------------- registration


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train, calibrate and save detectors (and the ensemble)")
    p.add_argument("root", help="dataset root in the MVTec AD layout")
    p.add_argument("--category", required=True, help="category to train, or 'all'")
    p.add_argument("--model", choices=(*MODEL_CHOICES, "all"), default="all", help="detector to train (default all)")
    p.add_argument("--out", help="model registry folder (default: QC_MODELS_DIR)")
    p.add_argument("--weights", default="imagenet",
                   help="PatchCore backbone weights: imagenet (default; torch cache or download), "
                        "none (random init, demonstration only) or a local .pth path")
    p.add_argument("--backbone", default="resnet18", help="feature backbone (default resnet18)")
    p.add_argument("--size", type=int, default=256, help="working image size in pixels (default 256)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs of the learned detectors")
    p.add_argument("--seed", type=int, default=0, help="random seed (calibration split, init)")
    p.add_argument("--target-frr", type=float, default=0.01, help="target false-reject rate (default 0.01)")
    p.add_argument("--coreset-ratio", type=float, default=None,
                   help="PatchCore: share of the training patches kept in its memory bank (default 0.05, at most "
                        "10,000 patches); larger is slower to fit and to score")
    p.add_argument("--reweight", action="store_true",
                   help="PatchCore: the paper's re-weighted image score (Eq. 7) instead of the largest patch distance")
    p.add_argument("--layers", default=None, metavar="LAYER,LAYER",
                   help="PatchCore: backbone stages to take patch features from, e.g. layer2,layer3 (default: "
                        "layer2,layer3 with trained weights, layer1,layer2 with --weights none, which was chosen on "
                        "synthetic data; real texture photographs did better with deeper stages, see docs/results.md)")
    p.add_argument("--profile", choices=("default", "demo"), default="default", help="demo = faster settings")
    p.add_argument("--validation", help="labelled validation folder (<dir>/good, <dir>/<defect>), never the test set")
    p.add_argument("--align", choices=("auto", "on", "off"), default="auto",
                   help="turn and centre parts to the training pose before scoring; auto (default) decides on "
                        "held-out good images whether it helps (parts at random angles, not textures)")
    p.add_argument("--defects",
                   help="labelled defect folder for the U-Net (<dir>/<defect>/*.png, masks in "
                        "<dir>/ground_truth/<defect>/<name>_mask.png); not the test set, not --validation")
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser("evaluate", help="metrics of the newest models on a category's test split")
    p.add_argument("root", help="dataset root in the MVTec AD layout")
    p.add_argument("--category", help="category (default: the registry's only one)")
    p.add_argument("--models", help="model registry folder (default: QC_MODELS_DIR)")
    p.add_argument("--model", nargs="+", choices=(*MODEL_CHOICES, "ensemble"), help="only these models")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON keyed by model name")
    p.set_defaults(func=cmd_evaluate)

    p = subparsers.add_parser("score", help="score images with every model and the ensemble")
    p.add_argument("target", metavar="IMAGE_OR_DIR", help="an image file or a folder (searched recursively)")
    p.add_argument("--models", help="model registry folder (default: QC_MODELS_DIR)")
    p.add_argument("--category", help="category (default: the registry's only one)")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.add_argument("--save-maps", metavar="DIR", help="write heatmap overlays (PNG) per image and model")
    p.set_defaults(func=cmd_score)

    p = subparsers.add_parser("calibrate", help="leave held-out good images out of a category's calibration "
                                               "(e.g. a defective part filed as good) and refit the thresholds")
    p.add_argument("root", help="dataset root in the MVTec AD layout (the one the models were trained on)")
    p.add_argument("--category", help="category (default: the registry's only one)")
    p.add_argument("--models", help="model registry folder (default: QC_MODELS_DIR)")
    p.add_argument("--exclude", nargs="+", required=True, metavar="FILE",
                   help="calibration image name(s) in train/good to leave out (named by qc train when suspect)")
    p.set_defaults(func=cmd_calibrate)

    p = subparsers.add_parser("models", help="list the model registry: versions, which are in use, their metrics")
    p.add_argument("models_dir", nargs="?", metavar="MODELS_DIR", help="model registry folder (default: QC_MODELS_DIR)")
    p.add_argument("--category", help="only this category")
    p.add_argument("--model", choices=(*MODEL_CHOICES, "ensemble"), help="only this model")
    p.add_argument("--json", action="store_true", help="print the versions as JSON")
    p.set_defaults(func=cmd_models)
