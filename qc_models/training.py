"""Training pipeline: good images -> fitted, calibrated, versioned models (+ ensemble).

For one category: load ``train/good`` (unreadable files are skipped and recorded),
hold out a seeded calibration split and an early-stopping split that no detector
ever fits on (:func:`split_held_out`), fit each detector (the networks stop early on
the second), calibrate it on both (optionally record an F1 threshold on a
separate labelled validation folder, never the test set; optionally let the
U-Net also learn from a labelled defect folder, never the test set nor the
validation folder), save a registry
version, then fit the ensemble on the newest versions of every detector of the
category, using only images held out from all of them.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qc_models.alignment_check import decide_alignment
from qc_models.calibration import (
    CALIBRATION_FRACTION,
    EARLY_STOPPING_FRACTION,
    MIN_CALIBRATION_IMAGES,
    Calibrator,
    split_calibration,
)
from qc_models.calibration_outliers import calibration_outliers
from qc_models.config import Settings
from qc_models.data import (
    GOOD,
    DatasetError,
    ImageLoadError,
    is_image_file,
    load_mask,
    load_rgb,
    open_category,
    paired_mask_path,
)
from qc_models.detectors.backbone import FEATURE_LAYERS, check_layers
from qc_models.detectors.base import Detector, ProgressCallback, no_progress
from qc_models.detectors.ensemble import fit_ensemble
from qc_models.detectors.torch_training import split_train_val
from qc_models.registry import (
    DETECTOR_TYPES,
    ENSEMBLE,
    ModelError,
    TrainedModel,
    data_fingerprint,
    detector_class,
    latest_version,
    load_model,
    save_ensemble,
    save_model,
)
from qc_models.runtime import configure_torch, seed_everything

log = logging.getLogger(__name__)

MODELS = ("cae", "unet", "patchcore")
PROFILES = ("default", "demo")

#: Per-profile overrides of detector parameters (only those a detector accepts are passed).
#: "demo" trades some accuracy for speed: 4 categories x 3 models in a few minutes on 2 cores.
PROFILE_PARAMS: dict[str, dict[str, dict[str, Any]]] = {
    # Learned detectors stop after 4 min of training (early stopping usually ends them sooner);
    # the check runs between epochs, so the 5 min target keeps an epoch of headroom.
    "default": {"cae": {"max_train_seconds": 240.0}, "unet": {"max_train_seconds": 240.0}, "patchcore": {}},
    # ~2 min per category for all three: the demo trains 4 categories in under ~10 min. The epochs are
    # the budget (30 and 60 take about 30 s and 45 s on two idle cores); the clock is only a safety net
    # at 3x that, so that a fresh clone trains the same demo models on a slower or busier machine
    # (with 30 s / 45 s limits, 4 of the 8 demo networks stopped 1-10 epochs short here).
    "demo": {
        "cae": {"epochs": 30, "max_train_seconds": 90.0},
        "unet": {"epochs": 60, "max_train_seconds": 135.0},
        "patchcore": {"coreset_ratio": 0.05},
    },
}
PREDICT_BATCH = 16
#: Largest working size of the learned detectors (cae, unet); ``size`` applies fully to patchcore.
LEARNED_MAX_SIZE = 128


def detector_kwargs(
    model: str,
    profile: str = "default",
    size: int = 256,
    epochs: int | None = None,
    weights: str = "imagenet",
    backbone: str = "resnet18",
    seed: int = 0,
) -> dict[str, Any]:
    """Constructor arguments for ``model``: profile settings, then explicit arguments; unknown ones dropped."""
    if profile not in PROFILE_PARAMS:
        raise ValueError(f"unknown profile '{profile}' (choose from {', '.join(PROFILES)})")
    cls = detector_class(model)
    wanted: dict[str, Any] = dict(PROFILE_PARAMS[profile].get(model, {}))
    # The learned detectors work at most at LEARNED_MAX_SIZE px (4x less compute than 256 px);
    # their maps are resized back to each image's resolution anyway.
    work_size = int(size) if model == "patchcore" else min(int(size), LEARNED_MAX_SIZE)
    wanted.update({"image_size": work_size, "seed": int(seed), "weights": weights, "backbone": backbone})
    if epochs is not None:
        wanted["epochs"] = int(epochs)
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return wanted
    return {k: v for k, v in wanted.items() if k in params}


def patchcore_overrides(
    coreset_ratio: float | None = None, reweight: bool = False, layers: str | Sequence[str] | None = None
) -> dict[str, Any]:
    """The PatchCore settings a user chose (``qc train`` flags, the dashboard's Train tab); {} for none.

    ``layers`` are the backbone stages to take features from (``"layer2,layer3"`` or a sequence):
    the random-init default (layer1+layer2) was chosen on the synthetic categories, and real texture
    photographs preferred deeper stages (``benchmarks/photo_texture_check.py``), so users with their
    own images can choose. Checked here, before minutes of training other detectors: ValueError when
    the ratio is out of range or a layer is unknown or repeated.
    """
    chosen: dict[str, Any] = {}
    if coreset_ratio is not None:
        if not 0.0 < coreset_ratio <= 1.0:
            raise ValueError(f"coreset ratio must be in (0, 1], got {coreset_ratio}")
        chosen["coreset_ratio"] = float(coreset_ratio)
    if reweight:
        chosen["reweight"] = True
    if layers is not None:
        names = [n.strip() for n in layers.split(",")] if isinstance(layers, str) else [str(n) for n in layers]
        chosen["layers"] = tuple(sorted(check_layers(names), key=FEATURE_LAYERS.index))
    return chosen


def _accepts(cls: type, parameter: str) -> bool:
    return parameter in inspect.signature(cls.__init__).parameters


def _fit_accepts(detector: Detector, parameter: str) -> bool:
    return parameter in inspect.signature(detector.fit).parameters


def split_held_out(n_images: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fit, calibration, early-stopping) indices of ``n_images`` good training images, seeded.

    The calibration split is the issue's hold-out (:func:`split_calibration`); the networks stop
    early on a further :data:`EARLY_STOPPING_FRACTION` of the rest. Every detector fits on the
    first part only (PatchCore included, whether or not the networks are trained in the same run),
    so the other two are unseen by all of them and every threshold, and the ensemble's weights,
    are fitted on both: 33 images instead of 18 of 120. Choosing the epoch left no measurable trace
    in those images' scores: ranked among 300 fresh good images, the U-Nets' early-stopping images
    sat at 0.51 on average and their calibration images at 0.48 (8 demo networks; the CAEs' at 0.46
    and 0.50 while their per-pixel error statistics still included them, which they no longer do;
    docs/results.md).
    """
    fit_idx, cal_idx = split_calibration(n_images, CALIBRATION_FRACTION, MIN_CALIBRATION_IMAGES, seed)
    train, stop = split_train_val(len(fit_idx), EARLY_STOPPING_FRACTION, seed)
    return fit_idx[train], cal_idx, fit_idx[stop]


def load_readable_images(paths: Sequence[Path]) -> tuple[list[np.ndarray], list[Path], list[dict[str, str]]]:
    """(images, their paths, skipped): an unreadable image is logged and recorded, not fatal to a training run."""
    images, ok, skipped = [], [], []
    for p in paths:
        try:
            images.append(load_rgb(p))
            ok.append(p)
        except ImageLoadError as exc:
            log.warning("skipping unreadable training image %s", exc)
            skipped.append({"path": str(p), "kind": exc.kind, "reason": exc.reason})
    return images, ok, skipped


def predict_in_batches(detector: Any, images: Sequence[np.ndarray], batch_size: int = PREDICT_BATCH) -> tuple[np.ndarray, list[np.ndarray]]:
    """Raw scores and maps of ``images``, one ``predict`` call per batch."""
    scores, maps = [], []
    for start in range(0, len(images), batch_size):
        pred = detector.predict(list(images[start : start + batch_size]))
        scores.append(np.asarray(pred.image_scores, dtype=np.float64))
        maps.extend(pred.anomaly_maps)
    return np.concatenate(scores), maps


def _same_or_inside(folder: Path, other: Path | None) -> bool:
    if other is None or not other.exists():
        return False
    a, b = folder.resolve(), other.resolve()
    return a == b or a.is_relative_to(b)


def load_validation_folder(folder: str | Path, test_dir: Path | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """Images and labels (1 = defective) of a labelled folder ``<folder>/<good|defect_type>/*``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: validation folder does not exist")
    if _same_or_inside(folder, test_dir):
        raise DatasetError(f"{folder}: this is the test set; thresholds are never fitted on it (give a separate folder)")
    paths, labels = [], []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and p.name != "ground_truth"):
        files = sorted(f for f in sub.iterdir() if f.is_file() and is_image_file(f))
        paths += files
        labels += [0 if sub.name == GOOD else 1] * len(files)
    images, ok, _ = load_readable_images(paths)
    keep = {p: lab for p, lab in zip(paths, labels)}
    y = np.array([keep[p] for p in ok], dtype=int)
    if y.size == 0 or y.min() == y.max():
        raise DatasetError(f"{folder}: a validation folder needs readable images in 'good/' and in defect folders")
    return images, y


def load_defect_folder(
    folder: str | Path, test_dir: Path | None = None, validation_dir: str | Path | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Labelled defects ``(image, bool mask)`` for the U-Net, from a folder in the MVTec test layout.

    ``<folder>/<defect_type>/<name>.png`` with masks ``<folder>/ground_truth/<defect_type>/<name>_mask.png``
    (``good/`` is ignored). Labelled defects are scarce and every one is trusted as training
    data, so an unreadable image, a missing mask, an empty mask or a size mismatch is an error
    naming the file rather than a silent skip. The test set and the validation folder are
    refused: training on them would inflate exactly the numbers that are meant to judge the model.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: labelled defect folder does not exist")
    if _same_or_inside(folder, test_dir):
        raise DatasetError(f"{folder}: this is the test set; training on it would leak it into the model "
                           "(give a separate folder of labelled defects)")
    if validation_dir is not None and (_same_or_inside(folder, Path(validation_dir))
                                       or _same_or_inside(Path(validation_dir), folder)):
        raise DatasetError(f"{folder}: overlaps the validation folder {validation_dir}; the F1 threshold would be "
                           "fitted on training data (use two separate folders)")
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    types = sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in (GOOD, "ground_truth"))
    for sub in types:
        for path in sorted(f for f in sub.iterdir() if f.is_file() and is_image_file(f)):
            mask_path = paired_mask_path(folder / "ground_truth" / sub.name, path)
            if mask_path is None:
                raise DatasetError(f"{path}: no mask at {folder / 'ground_truth' / sub.name / (path.stem + '_mask.png')}")
            image, mask = load_rgb(path), load_mask(mask_path)  # ImageLoadError names the file
            if mask.shape != image.shape[:2]:
                raise DatasetError(f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} px but its image {path.name} "
                                   f"is {image.shape[1]}x{image.shape[0]} px")
            if not mask.any():
                raise DatasetError(f"{mask_path}: empty mask (a labelled defect needs its defect pixels marked)")
            pairs.append((image, mask))
    if not pairs:
        raise DatasetError(f"{folder}: no labelled defects found (expected <folder>/<defect_type>/*.png with masks "
                           "in <folder>/ground_truth/<defect_type>/<name>_mask.png)")
    return pairs


def _scaled(progress: ProgressCallback, lo: float, hi: float, prefix: str) -> ProgressCallback:
    return lambda msg, frac: progress(f"{prefix}{msg}", lo + (hi - lo) * min(max(frac, 0.0), 1.0))


def train_category(
    root: str | Path,
    category: str,
    models: Sequence[str] = MODELS,
    out: str | Path | None = None,
    weights: str = "imagenet",
    backbone: str = "resnet18",
    size: int = 256,
    epochs: int | None = None,
    seed: int = 0,
    target_false_reject_rate: float = 0.01,
    validation_dir: str | Path | None = None,
    profile: str = "default",
    progress: ProgressCallback | None = None,
    detector_overrides: dict[str, dict[str, Any]] | None = None,
    defects_dir: str | Path | None = None,
    align: str = "auto",
) -> dict[str, Path]:
    """Fit, calibrate and save ``models`` for ``category``; returns {model name: version dir}.

    ``align`` ("auto", "on", "off"): whether every detector turns and centres parts to the
    training pose first; "auto" decides on held-out data (:func:`qc_models.alignment_check.decide_alignment`).

    ``defects_dir`` is a labelled defect folder (:func:`load_defect_folder`) the U-Net learns
    from besides its synthetic anomalies; the other detectors only ever see good images.
    ``detector_overrides`` (model -> kwargs) are applied last, e.g. a small coreset in tests.
    The ensemble is refitted whenever the category then has more than one detector.
    """
    configure_torch()
    progress = progress or no_progress
    out = Path(out) if out is not None else Settings.from_env().models_dir
    unknown = [m for m in models if m not in DETECTOR_TYPES and m != ENSEMBLE]
    if unknown or not models:
        raise ValueError(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    layout = open_category(root, category)
    detectors = [m for m in models if m != ENSEMBLE]
    if "patchcore" in detectors and weights != "none":
        # Fail before minutes of training other models when the weights are unavailable.
        from qc_models.detectors.backbone import load_backbone

        load_backbone(backbone, weights)
    paths = [s.path for s in layout.samples("train")]
    if not paths:
        raise DatasetError(f"{layout.path / 'train' / GOOD}: no good training images")
    images, paths, skipped = load_readable_images(paths)
    fit_idx, cal_idx, stop_idx = split_held_out(len(images), seed)
    fit_images = [images[i] for i in fit_idx]
    stop_images = [images[i] for i in stop_idx]
    held_out_idx = np.concatenate([cal_idx, stop_idx])
    held_out = [images[i] for i in held_out_idx]  # what every threshold is fitted on
    validation = None
    if validation_dir is not None:
        validation = load_validation_folder(validation_dir, layout.path / "test")
    labelled_defects = None
    if defects_dir is not None:
        labelled_defects = load_defect_folder(defects_dir, layout.path / "test", validation_dir)
        if not any(_accepts(detector_class(m), "extra_defects") for m in detectors):
            log.warning("%s: only the U-Net learns from labelled defects; %s is not used by %s",
                        category, defects_dir, ", ".join(detectors))
    training = {
        "dataset_root": str(Path(root).resolve()),
        "fingerprint": data_fingerprint(paths),
        "n_train_images": len(images),
        "fit_files": [paths[i].name for i in fit_idx],
        "calibration_files": [paths[i].name for i in held_out_idx],
        "early_stopping_files": [paths[i].name for i in stop_idx],
        "skipped_files": skipped,
        "seed": seed,
        "profile": profile,
        "validation_dir": None if validation_dir is None else str(validation_dir),
    }
    defects_info = {"defects_dir": str(defects_dir), "n_labelled_defects": len(labelled_defects or [])}
    decision = decide_alignment(fit_images, align, _scaled(progress, 0.0, 0.02, f"{category}/alignment: "))
    log.info("%s: pose alignment %s (%s)", category, "on" if decision.align else "off", decision.reason)
    training["alignment"] = decision.to_dict()
    result: dict[str, Path] = {}
    fresh: dict[str, TrainedModel] = {}
    share = 0.88 / max(len(detectors), 1)
    for k, name in enumerate(detectors):
        step = _scaled(progress, 0.02 + k * share, 0.02 + (k + 1) * share, f"{category}/{name}: ")
        kwargs = detector_kwargs(name, profile, size, epochs, weights, backbone, seed)
        if _accepts(detector_class(name), "align"):
            kwargs["align"] = decision.align
        uses_defects = bool(labelled_defects) and _accepts(detector_class(name), "extra_defects")
        if uses_defects:
            kwargs["extra_defects"] = labelled_defects
        kwargs.update((detector_overrides or {}).get(name, {}))
        seed_everything(seed)
        detector: Detector = detector_class(name)(**kwargs)
        fit_kwargs = {"validation_images": stop_images} if _fit_accepts(detector, "validation_images") else {}
        t0 = time.perf_counter()
        detector.fit(fit_images, progress=_scaled(step, 0.0, 0.85, "fit: "), **fit_kwargs)
        fit_seconds = time.perf_counter() - t0
        step("calibrating", 0.9)
        cal_scores, cal_maps = predict_in_batches(detector, held_out)
        calibrator = Calibrator(target_false_reject_rate, detector.score_upper_bound).fit(cal_scores, cal_maps)
        note = calibrator.fallback_note()
        if note:
            log.warning("%s/%s: %s", category, name, note)
        suspects = suspect_calibration_images(cal_scores, training["calibration_files"], calibrator, f"{category}/{name}")
        if validation is not None:
            val_scores, _ = predict_in_batches(detector, validation[0])
            calibrator.fit_validation(val_scores, validation[1])
        info = dict(training, fit_seconds=round(fit_seconds, 3), n_fit=len(fit_images), n_calibration=len(held_out),
                    suspect_calibration_images=suspects)
        if uses_defects:
            info.update(defects_info)
        path = save_model(out, category, detector, calibrator, training=info)
        result[name] = path
        fresh[name] = TrainedModel(name, detector, calibrator, {"version": path.name, "training": info}, path)
        step(f"saved {path}", 1.0)
    ens = fit_category_ensemble(root, category, out, fresh, seed, target_false_reject_rate,
                                _scaled(progress, 0.9, 1.0, f"{category}/ensemble: "), validation)
    if ens is not None:
        result[ENSEMBLE] = ens
    progress(f"{category}: done", 1.0)
    return result


def suspect_calibration_images(scores: np.ndarray, files: Sequence[str], calibrator: Calibrator,
                                label: str) -> list[dict[str, Any]]:
    """Held-out good images scoring like defects (:func:`calibration_outliers`), logged so someone looks at them."""
    found = calibration_outliers(scores, calibrator.target_false_reject_rate, calibrator.score_upper_bound)
    suspects = [{"file": files[f["index"]], "score": round(f["score"], 6),
                 "threshold_without": round(f["threshold_without"], 6)} for f in found]
    for x in suspects:
        log.warning("%s: %s", label, suspect_image_note(x))
    return suspects


def calibration_files(metadata: dict[str, Any]) -> list[str]:
    """The calibration images a saved model's threshold rests on: those held out when it was trained,
    minus any left out since (:func:`qc_models.calibration_exclusion.exclude_calibration_images`)."""
    training = metadata.get("training") or {}
    excluded = set(training.get("calibration_excluded") or [])
    return [f for f in training.get("calibration_files") or [] if f not in excluded]


def suspect_image_note(entry: dict[str, Any]) -> str:
    """What to tell someone about one ``suspect_calibration_images`` entry of a model's training record."""
    return (f"held-out good image {entry['file']} scores {entry['score']:.4g}, like a defect (the other held-out images "
            f"give a threshold of {entry['threshold_without']:.4g}, so it raised this model's threshold). If it is "
            f"defective, leave it out of calibration (qc calibrate ROOT --category C --exclude {entry['file']}, or "
            "the Models page's Threshold tab: no retraining needed) and move it out of train/good; if it is good, "
            "this model finds parts like it unusual, and more good images like it help.")


def fit_category_ensemble(
    root: str | Path,
    category: str,
    models_dir: str | Path,
    fresh: dict[str, TrainedModel] | None = None,
    seed: int = 0,
    target_false_reject_rate: float = 0.01,
    progress: ProgressCallback | None = None,
    validation: tuple[list[np.ndarray], np.ndarray] | None = None,
) -> Path | None:
    """Fit and save the ensemble over the newest version of each detector; None if < 2 usable.

    Only calibration images held out from *every* member are used (intersection of
    their recorded calibration files), so no member is scored on its own training data.
    ``validation`` (images, labels) from :func:`load_validation_folder` adds each member's AUROC on
    it to the record and the ensemble's F1 threshold (:func:`qc_models.detectors.ensemble.fit_ensemble`).
    """
    progress = progress or no_progress
    members: dict[str, TrainedModel] = {}
    for name in MODELS:
        newest = latest_version(models_dir, category, name)
        if fresh and name in fresh and (newest is None or newest.version == fresh[name].version):
            members[name] = fresh[name]
        elif newest is not None:
            try:
                members[name] = load_model(newest.path)
            except ModelError as exc:
                log.warning("ensemble: skipping %s (%s)", name, exc)
    if len(members) < 2:
        return None
    cal_sets = [set(calibration_files(m.metadata)) for m in members.values()]
    fingerprints = {m.metadata.get("training", {}).get("fingerprint") for m in members.values()}
    if len(fingerprints) > 1:
        log.warning("ensemble: members of %s were trained on different data; using shared held-out images only", category)
    names = sorted(set.intersection(*cal_sets))
    folder = Path(root) / category / "train" / GOOD
    images, ok, _ = load_readable_images([folder / n for n in names if (folder / n).is_file()])
    if len(images) < MIN_CALIBRATION_IMAGES:
        log.warning("ensemble: only %d images are held out from all members of %s; ensemble not built", len(images), category)
        return None
    versions = {k: v.version for k, v in members.items()}
    ensemble, calibrator = fit_ensemble(members, images, versions, seed, target_false_reject_rate, progress,
                                        validation)
    for note in (calibrator.fallback_note(), ensemble.unsettled_note()):
        if note:
            log.warning("%s/ensemble: %s", category, note)
    training = {"calibration_files": [p.name for p in ok], "member_versions": versions, "seed": seed,
                "fingerprint": sorted(f for f in fingerprints if f)[0] if any(fingerprints) else None}
    return save_ensemble(models_dir, category, ensemble, calibrator, training=training)
