"""Listing the registry: versions newest first, categories, and the newest model set of a category.

Reads only ``model.json`` files for listings (fast, for the dashboard and the
database); loading a model set goes through :func:`load_model`, with all its checks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qc_models.model_set import MODEL_ORDER, ModelSet
from qc_models.registry.artifacts import ModelError, TrainedModel, load_model, read_metadata, uses_untrained_backbone


#: Stored metrics that hold only at the image threshold they were measured at.
DECISION_METRICS = ("f1", "precision", "recall", "accuracy", "false_reject_rate", "confusion_matrix")


def current_metrics(metrics: dict[str, Any], threshold: float) -> tuple[dict[str, Any], float | None]:
    """``metrics`` as they hold at ``threshold``, and the threshold they were measured at when that differs.

    A threshold changed in place (Threshold tab, ``qc calibrate --exclude``) leaves the last
    evaluation's recall, false-reject rate, F1 ... describing the old threshold; those are left
    out (per defect type: the detection rate) until the next evaluation. AUROC, average precision
    and the pixel metrics do not depend on the image threshold and stay.
    """
    measured = metrics.get("threshold")
    if not isinstance(measured, (int, float)) or math.isclose(float(measured), threshold, rel_tol=1e-9, abs_tol=1e-12):
        return metrics, None
    kept = {k: v for k, v in metrics.items() if k not in DECISION_METRICS and k != "threshold"}
    per_type = metrics.get("per_defect_type")
    if isinstance(per_type, dict):
        kept["per_defect_type"] = {t: {k: v for k, v in row.items() if k != "detection_rate"} if isinstance(row, dict)
                                   else row for t, row in per_type.items()}
    return kept, float(measured)


@dataclass(frozen=True)
class VersionInfo:
    """One version directory as listed (model.json read, tensors not loaded)."""

    category: str
    model: str
    version: str
    path: Path
    created: str | None = None
    threshold: float | None = None
    #: The last evaluation's metrics as they hold at ``threshold`` (see :func:`current_metrics`).
    metrics: dict[str, Any] = field(default_factory=dict)
    #: The threshold the last evaluation's decision metrics were measured at, when it was another one.
    metrics_threshold: float | None = None
    weights: dict[str, Any] = field(default_factory=dict)
    untrained_backbone: bool = False
    #: Whether the detector turns parts to the training pose first (None: not a detector, or saved before).
    pose_aligned: bool | None = None
    #: An ensemble's member weights and their resampling spread (None for detectors).
    ensemble_weights: dict[str, float] | None = None
    weight_spread: dict[str, Any] | None = None
    error: str | None = None


def _subdirs(path: Path) -> list[Path]:
    if not path.is_dir():
        return []
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def registry_categories(models_dir: str | Path) -> list[str]:
    """Categories with at least one model version."""
    return [c.name for c in _subdirs(Path(models_dir)) if any(_subdirs(m) for m in _subdirs(c))]


def _ensemble_part(meta: dict[str, Any], *keys: str) -> Any:
    """``meta["ensemble"][keys...]`` when every level is an object, else None (detectors; hand-edited files)."""
    node: Any = meta.get("ensemble")
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def list_versions(models_dir: str | Path, category: str | None = None, model: str | None = None) -> list[VersionInfo]:
    """All versions (optionally of one category/model), newest first; broken ones carry ``error``."""
    out: list[VersionInfo] = []
    for cat_dir in _subdirs(Path(models_dir)):
        if category is not None and cat_dir.name != category:
            continue
        for model_dir in _subdirs(cat_dir):
            if model is not None and model_dir.name != model:
                continue
            for vdir in _subdirs(model_dir):
                try:
                    meta = read_metadata(vdir)
                except ModelError as exc:
                    out.append(VersionInfo(cat_dir.name, model_dir.name, vdir.name, vdir, error=str(exc)))
                    continue
                threshold = float(meta["threshold"])
                metrics, measured_at = current_metrics(meta.get("metrics") or {}, threshold)
                out.append(
                    VersionInfo(
                        category=cat_dir.name,
                        model=model_dir.name,
                        version=vdir.name,
                        path=vdir,
                        created=meta.get("created"),
                        threshold=threshold,
                        metrics=metrics,
                        metrics_threshold=measured_at,
                        weights=meta.get("weights") or {},
                        untrained_backbone=uses_untrained_backbone(meta.get("weights")),
                        pose_aligned=(meta.get("config") or {}).get("align"),
                        ensemble_weights=_ensemble_part(meta, "weights"),
                        weight_spread=_ensemble_part(meta, "details", "weight_spread"),
                    )
                )
    out.sort(key=lambda v: (v.version, v.category, v.model), reverse=True)
    return out


def version_rows(versions: Sequence[VersionInfo]) -> list[dict[str, Any]]:
    """One flat row per version for listings (``qc models``): what it is, whether it is in use, how it scored.

    ``in_use`` marks the newest version of each category/model, the one every command loads (a
    broken one too: commands then stop with its ``error``); ``backbone`` is ``"resnet18 (none)"``
    style for PatchCore and None for models without one; the metrics are those of the last
    ``qc evaluate`` (None before any); an ensemble also carries its member weights and their spread.
    """
    newest: dict[tuple[str, str], str] = {}
    for v in versions:
        if v.version > newest.get((v.category, v.model), ""):
            newest[(v.category, v.model)] = v.version
    rows = []
    for v in versions:
        backbone = v.weights.get("backbone")
        rows.append({
            "category": v.category,
            "model": v.model,
            "version": v.version,
            "in_use": newest.get((v.category, v.model)) == v.version,
            "created": v.created,
            "backbone": f"{backbone} ({v.weights.get('weights', '?')})" if backbone else None,
            "untrained_backbone": v.untrained_backbone,
            "pose_aligned": v.pose_aligned,
            "threshold": v.threshold,
            **{k: v.metrics.get(k) for k in ("image_auroc", "pixel_auroc", "recall", "false_reject_rate")},
            "metrics_threshold": v.metrics_threshold,
            "ensemble_weights": v.ensemble_weights,
            "weight_spread": v.weight_spread,
            "path": str(v.path),
            "error": v.error,
        })
    return rows


def latest_version(models_dir: str | Path, category: str, model: str) -> VersionInfo | None:
    """The newest version of ``category``/``model``, or None when there is none."""
    versions = list_versions(models_dir, category, model)
    return versions[0] if versions else None


def resolve_category(models_dir: str | Path, category: str | None) -> str:
    """``category`` checked against the registry, or inferred when the registry holds only one."""
    cats = registry_categories(models_dir)
    if not cats:
        raise ModelError(models_dir, "no trained models found (train some with: qc train ROOT --category C --out DIR)")
    if category is None:
        if len(cats) > 1:
            raise ModelError(models_dir, f"several categories have models ({', '.join(cats)}); choose one with --category")
        return cats[0]
    if category not in cats:
        raise ModelError(models_dir, f"no models for category '{category}' (found: {', '.join(cats)})")
    return category


def load_model_set(
    models_dir: str | Path, category: str | None = None, models: Sequence[str] | None = None
) -> ModelSet:
    """The newest version of each model of a category (optionally only ``models``), ready to score."""
    category = resolve_category(models_dir, category)
    cat_dir = Path(models_dir) / category
    names = [d.name for d in _subdirs(cat_dir) if _subdirs(d)]
    if models is not None:
        unknown = sorted(set(models) - set(names))
        if unknown:
            raise ModelError(cat_dir, f"no trained model(s) {unknown} (found: {', '.join(names)})")
        names = [n for n in names if n in models]
    loaded: dict[str, TrainedModel] = {}
    for name in sorted(names, key=lambda n: (MODEL_ORDER.index(n) if n in MODEL_ORDER else 99, n)):
        newest = _subdirs(cat_dir / name)[-1]  # version names sort by time
        loaded[name] = load_model(newest)
    return ModelSet.from_models(category, loaded)
