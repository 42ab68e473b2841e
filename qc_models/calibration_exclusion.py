"""Leaving held-out good images out of a category's calibration, without retraining.

A calibration image is never used for fitting, so a defective part filed under ``train/good``
that landed in the calibration hold-out (training names it as a suspect:
:func:`qc_models.training.suspect_image_note`) only moved the thresholds. Leaving it out
refits every calibrator that used it on the remaining images, as if it had been absent when
calibrating, and rebuilds the ensemble, whose combined scores rest on its members'
calibration. Nothing is retrained and nothing is lost: each model.json keeps its previous
calibration in ``calibration_history`` and lists the files left out in its training record
(``calibration_excluded``); the previous ensemble stays as an older version.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qc_models.calibration import MIN_CALIBRATION_IMAGES, CalibrationError, Calibrator
from qc_models.data import GOOD, DatasetError
from qc_models.detectors.base import ProgressCallback, no_progress
from qc_models.registry import ModelError, TrainedModel, latest_version, load_model, update_calibration
from qc_models.training import (
    MODELS,
    calibration_files,
    fit_category_ensemble,
    load_readable_images,
    load_validation_folder,
    predict_in_batches,
    suspect_calibration_images,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recalibrated:
    """One model whose threshold was refitted without the excluded images."""

    model: str
    path: Path
    old_threshold: float
    new_threshold: float
    n_calibration: int


def exclude_calibration_images(
    root: str | Path,
    category: str,
    models_dir: str | Path,
    files: Sequence[str],
    progress: ProgressCallback | None = None,
) -> tuple[list[Recalibrated], Path | None]:
    """Refit the newest models of ``category`` without the calibration images ``files`` (names in
    ``train/good``); returns the recalibrated models and the rebuilt ensemble's path (None if none).

    Everything is checked before anything is written: an unknown file name, or one that would
    leave a model fewer than :data:`MIN_CALIBRATION_IMAGES` calibration images, raises a
    ``ValueError`` (``CalibrationError`` for the latter) naming it; a remaining image that is gone
    or unreadable raises ``DatasetError`` naming the file.
    """
    progress = progress or no_progress
    names = sorted({Path(f).name for f in files})
    if not names:
        raise ValueError("no calibration images given to leave out")
    members = _newest_members(models_dir, category)
    used = {name: calibration_files(m.metadata) for name, m in members.items()}
    unknown = [f for f in names if not any(f in u for u in used.values())]
    if unknown:
        known = sorted(set().union(*used.values()))
        raise ValueError(f"{', '.join(unknown)}: not among the calibration images of {category}'s models "
                         f"({len(known)} images: {', '.join(known[:8])}{', ...' if len(known) > 8 else ''})")
    folder = Path(root) / category / "train" / GOOD
    plans: list[tuple[str, TrainedModel, list[str]]] = []
    for name, model in members.items():
        if not set(names) & set(used[name]):
            continue
        keep = [f for f in used[name] if f not in names]
        if len(keep) < MIN_CALIBRATION_IMAGES:
            raise CalibrationError(f"{category}/{name}: leaving out {', '.join(names)} would leave {len(keep)} "
                                   f"calibration images; at least {MIN_CALIBRATION_IMAGES} are needed (retrain instead)")
        missing = [f for f in keep if not (folder / f).is_file()]
        if missing:
            raise DatasetError(f"{folder}: calibration image(s) {', '.join(missing)} of {category}/{name} are gone")
        plans.append((name, model, keep))

    updates = []
    for k, (name, model, keep) in enumerate(plans):
        progress(f"{category}/{name}: scoring {len(keep)} calibration images", k / (len(plans) + 1))
        images, _, skipped = load_readable_images([folder / f for f in keep])
        if skipped:
            raise DatasetError(f"{skipped[0]['path']}: {skipped[0]['reason']}")
        scores, maps = predict_in_batches(model.detector, images)
        old = model.calibrator
        new = Calibrator(old.target_false_reject_rate, old.score_upper_bound).fit(scores, maps)
        if old.validation_ is not None:  # the validation folder's F1 threshold does not depend on these images
            new.validation_ = copy.deepcopy(old.validation_)
            new.use_threshold(old.threshold_source)
        suspects = suspect_calibration_images(scores, keep, new, f"{category}/{name}")
        excluded = sorted(set(model.metadata.get("training", {}).get("calibration_excluded") or []) | set(names))
        updates.append((name, model, new, {"calibration_excluded": excluded, "suspect_calibration_images": suspects},
                        len(keep)))

    done = []
    reason = f"left {', '.join(names)} out of calibration"
    for name, model, new, training_updates, n in updates:
        assert model.path is not None
        update_calibration(model.path, new, reason=reason, training_updates=training_updates)
        done.append(Recalibrated(name, model.path, float(model.calibrator.threshold), float(new.threshold), n))
        log.info("%s/%s: threshold %.4g -> %.4g (%s)", category, name, model.calibrator.threshold, new.threshold, reason)
    ensemble = None
    if done:
        ensemble = _rebuild_ensemble(root, category, models_dir, members,
                                     lambda m, f: progress(m, len(plans) / (len(plans) + 1) + f / (len(plans) + 1)))
    progress(f"{category}: calibration without {', '.join(names)} done", 1.0)
    return done, ensemble


def _newest_members(models_dir: str | Path, category: str) -> dict[str, TrainedModel]:
    members = {}
    for name in MODELS:
        newest = latest_version(models_dir, category, name)
        if newest is not None:
            members[name] = load_model(newest.path)
    if not members:
        raise ModelError(models_dir, f"no trained models for category '{category}'")
    return members


def _rebuild_ensemble(root: str | Path, category: str, models_dir: str | Path, members: dict[str, TrainedModel],
                      progress: ProgressCallback) -> Path | None:
    """A new ensemble version over the recalibrated members, with the previous one's seed and target."""
    previous = latest_version(models_dir, category, "ensemble")
    if previous is None:
        return None
    old = load_model(previous.path)
    training: dict[str, Any] = old.metadata.get("training") or {}
    validation = None
    validation_dirs = {m.metadata.get("training", {}).get("validation_dir") for m in members.values()} - {None}
    if len(validation_dirs) == 1:
        folder = Path(next(iter(validation_dirs)))
        if folder.is_dir():
            validation = load_validation_folder(folder, Path(root) / category / "test")
    return fit_category_ensemble(root, category, models_dir, seed=int(training.get("seed", 0)),
                                 target_false_reject_rate=old.calibrator.target_false_reject_rate,
                                 progress=progress, validation=validation)
