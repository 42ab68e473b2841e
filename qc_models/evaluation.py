"""Evaluation of a category's models on its test split: image, pixel and per-defect-type metrics.

The test split is only ever *scored* here; thresholds and normalisation come from
the calibration stored with each model. Pixel metrics use normalised maps
resized to :data:`qc_models.metrics.PIXEL_METRIC_SIZE` (the pixel threshold is
0.5 on normalised maps); images of a defect type without masks are left out of
pixel metrics. Results are written into each model version's ``model.json``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qc_models import metrics as M
from qc_models.data import ImageLoadError, load_mask, load_rgb, open_category
from qc_models.detectors.base import ProgressCallback, no_progress
from qc_models.model_set import ENSEMBLE, ModelSet
from qc_models.registry import load_model_set, update_metrics
from qc_models.runtime import configure_torch

log = logging.getLogger(__name__)

EVAL_BATCH = 16


@dataclass
class Evaluation:
    """Metrics keyed by model name, plus one record per (image, model) for charts."""

    category: str
    metrics: dict[str, dict[str, Any]]
    scores: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    untrained_backbone: bool = False

    def scores_frame(self) -> Any:
        """Per-image scores as a pandas DataFrame (columns: path, defect_type, label, model, raw, normalised, is_defective)."""
        import pandas as pd

        return pd.DataFrame(self.scores)


def _model_metrics(
    labels: np.ndarray,
    types: list[str],
    raw: np.ndarray,
    threshold: float,
    pixel_maps: list[np.ndarray],
    pixel_masks: list[np.ndarray],
) -> dict[str, Any]:
    out: dict[str, Any] = M.image_metrics(labels, raw, threshold)
    if pixel_maps and any(m.any() for m in pixel_masks):
        out.update(M.pixel_metrics(np.stack(pixel_masks), np.stack(pixel_maps), 0.5))
    else:
        out.update({"pixel_auroc": None, "aupro": None, "iou": None, "dice": None})
    out["per_defect_type"] = M.per_defect_type(types, raw, threshold)
    out["threshold"] = float(threshold)
    out["n_images"] = int(labels.size)
    return out


def run_evaluation(
    root: str | Path,
    category: str,
    models_dir: str | Path,
    models: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
    store: bool = True,
    model_set: ModelSet | None = None,
) -> Evaluation:
    """Score ``category``'s test split with the newest models and compute every metric."""
    configure_torch()
    progress = progress or no_progress
    layout = open_category(root, category)
    samples = layout.samples("test")
    if not samples:
        raise ValueError(f"{layout.path / 'test'}: no test images to evaluate on")
    # The ensemble needs all its members, so asking for it loads every model.
    load_names = None if models is None or ENSEMBLE in models else list(models)
    mset = model_set or load_model_set(models_dir, category, load_names)
    names = [n for n in mset.names if models is None or n in models]
    if not names:
        raise ValueError(f"none of the models {list(models or [])} is available (found: {mset.names})")
    labels, types, paths = [], [], []
    raw: dict[str, list[float]] = {n: [] for n in names}
    norm: dict[str, list[float]] = {n: [] for n in names}
    dec: dict[str, list[bool]] = {n: [] for n in names}
    pix_maps: dict[str, list[np.ndarray]] = {n: [] for n in names}
    pix_masks: list[np.ndarray] = []
    skipped: list[dict[str, str]] = []
    for start in range(0, len(samples), EVAL_BATCH):
        batch, images, masks = [], [], []
        for s in samples[start : start + EVAL_BATCH]:
            try:
                img = load_rgb(s.path)
                mask = load_mask(s.mask_path) if s.mask_path is not None else None
            except ImageLoadError as exc:
                skipped.append({"path": str(s.path), "kind": exc.kind, "reason": exc.reason})
                continue
            if mask is not None and mask.shape != img.shape[:2]:
                skipped.append({"path": str(s.path), "kind": "mask_size_mismatch",
                                "reason": f"mask {mask.shape} does not match image {img.shape[:2]}"})
                continue
            batch.append(s)
            images.append(img)
            masks.append(mask)
        if not images:
            continue
        results = mset.score(images, batch_size=EVAL_BATCH)
        for s, mask, r in zip(batch, masks, results):
            labels.append(s.label)
            types.append(s.defect_type)
            paths.append(str(s.path))
            has_mask = mask is not None or not s.is_defective
            if has_mask:
                m_small = None
                for n in names:
                    pm, pk = M.resize_for_metrics([r.maps[n]], [mask])
                    pix_maps[n].append(pm[0])
                    m_small = pk[0]
                pix_masks.append(m_small)
            for n in names:
                raw[n].append(r.raw[n])
                norm[n].append(r.normalised[n])
                dec[n].append(r.is_defective[n])
        done = min(start + EVAL_BATCH, len(samples))
        progress(f"{category}: scored {done}/{len(samples)} test images", 0.9 * done / len(samples))
    y = np.asarray(labels, dtype=int)
    metrics: dict[str, dict[str, Any]] = {}
    for n in names:
        model = mset.ensemble if n == ENSEMBLE else mset.members[n]
        threshold = model.calibrator.threshold  # type: ignore[union-attr]
        metrics[n] = _model_metrics(y, types, np.asarray(raw[n]), threshold, pix_maps[n], pix_masks)
        metrics[n]["version"] = model.version  # type: ignore[union-attr]
        if store:
            update_metrics(model.path, metrics[n])  # type: ignore[union-attr]
    records = [
        {"path": p, "defect_type": t, "label": int(lab), "model": n, "raw": raw[n][i],
         "normalised": norm[n][i], "is_defective": bool(dec[n][i])}
        for n in names
        for i, (p, t, lab) in enumerate(zip(paths, types, labels))
    ]
    progress(f"{category}: evaluated", 1.0)
    return Evaluation(mset.category, metrics, records, skipped, mset.untrained_backbone)


def evaluate_category(
    root: str | Path,
    category: str,
    models_dir: str | Path,
    models: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, dict[str, Any]]:
    """Metrics of every model (and the ensemble) keyed by model name; also stored in model.json."""
    return run_evaluation(root, category, models_dir, models, progress).metrics
