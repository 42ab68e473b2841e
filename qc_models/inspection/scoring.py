"""What the runner needs from a model set: scores per image and which versions were used.

The runner takes any object with ``score(images) -> list[ImageScore-like]``
(``qc_models.registry.ModelSet`` by default, a small stand-in in tests), so
batch inspection is tested without training. This module turns one image's
scores into the columns of an ``image_results`` row and describes the model
versions for ``model_versions`` / ``inspection_runs.models``.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from qc_models.inspection.regions import MAP_THRESHOLD, region_stats
from qc_models.inspection.store import ModelInfo

#: Models with their own columns in ``image_results``.
MEMBER_MODELS = ("cae", "unet", "patchcore")
ENSEMBLE = "ensemble"


class Scorer(Protocol):
    """Anything that scores a batch of RGB uint8 images like ``registry.ModelSet``."""

    def score(self, images: list[np.ndarray]) -> Sequence[Any]: ...


def load_scorer(models_dir: str | Path | None, category: str | None) -> Scorer:
    """The newest model set of ``category`` from the registry (``QC_MODELS_DIR`` when None)."""
    from qc_models.config import Settings
    from qc_models.registry import load_model_set
    from qc_models.runtime import configure_torch

    configure_torch()
    return load_model_set(Path(models_dir) if models_dir else Settings.from_env().models_dir, category=category)


def load_recorded_scorer(category: str, models: Sequence[dict[str, Any]]) -> Scorer:
    """Exactly the model versions a run recorded (resume after retraining still uses them)."""
    from qc_models.model_set import ModelSet
    from qc_models.registry import load_model
    from qc_models.runtime import configure_torch

    configure_torch()
    loaded = {str(m["model"]): load_model(m["path"]) for m in models}
    return ModelSet.from_models(category, loaded)


def _as_float(value: Any) -> float | None:
    if value is None:
        return None
    f = float(value)
    return f if np.isfinite(f) else None


def _backbone_facts(weights_meta: Any) -> tuple[str | None, bool]:
    """``(weights, pretrained)`` of the first backbone described in model.json's ``weights`` facts."""
    if isinstance(weights_meta, dict):
        if "pretrained" in weights_meta:
            w = weights_meta.get("weights")
            return (None if w is None else str(w)), bool(weights_meta["pretrained"])
        for value in weights_meta.values():
            found = _backbone_facts(value)
            if found != (None, False):
                return found
    return None, False


def describe_models(scorer: Scorer, category: str | None) -> list[ModelInfo]:
    """The model versions behind ``scorer``: a registry ``ModelSet`` or anything with ``model_infos()``."""
    if hasattr(scorer, "model_infos"):
        return list(scorer.model_infos())
    trained = dict(getattr(scorer, "members", {}) or {})
    if getattr(scorer, "ensemble", None) is not None:
        trained[ENSEMBLE] = scorer.ensemble  # type: ignore[attr-defined]
    out: list[ModelInfo] = []
    for name, model in trained.items():
        meta = dict(getattr(model, "metadata", {}) or {})
        weights, pretrained = _backbone_facts(meta.get("weights"))
        path = getattr(model, "path", None)
        calibrator = getattr(model, "calibrator", None)
        out.append(
            ModelInfo(
                model=str(name),
                version=str(meta.get("version") or (Path(path).name if path else "")),
                path=str(Path(path).resolve()) if path else "",
                threshold=_as_float(getattr(calibrator, "threshold", meta.get("threshold"))),
                category=str(meta.get("category") or category or "") or None,
                backbone_weights=weights,
                pretrained=pretrained,
                metrics=meta.get("metrics") or None,
            )
        )
    return out


def model_warnings(scorer: Scorer) -> list[str]:
    """Caveats to show with results: random-init backbones, stale ensembles."""
    out = list(getattr(scorer, "warnings", []) or [])
    if getattr(scorer, "untrained_backbone", False):
        out.append("models use an untrained (random-init) backbone: results are for demonstration, not production")
    return out


def score_batch(scorer: Scorer, images: list[np.ndarray]) -> list[Any]:
    """Score all ``images`` in one call (one backbone batch when the scorer takes ``batch_size``)."""
    try:
        takes_batch = "batch_size" in inspect.signature(scorer.score).parameters
    except (TypeError, ValueError):
        takes_batch = False
    out = scorer.score(images, batch_size=len(images)) if takes_batch else scorer.score(images)  # type: ignore[call-arg]
    return list(out)


def _ensemble(score: Any) -> tuple[float | None, bool | None, np.ndarray | None]:
    """The ensemble's normalised score, decision and map; combined from members when absent."""
    normalised = dict(getattr(score, "normalised", {}) or {})
    decisions = dict(getattr(score, "is_defective", {}) or {})
    maps = dict(getattr(score, "maps", {}) or {})
    if ENSEMBLE in normalised:
        s, d = _as_float(normalised[ENSEMBLE]), decisions.get(ENSEMBLE)
    else:
        members = [k for k in MEMBER_MODELS if k in normalised]
        s = max((_as_float(normalised[k]) or 0.0 for k in members), default=None)
        d = s >= MAP_THRESHOLD if s is not None else None
    if d is None and s is not None:
        d = s >= MAP_THRESHOLD
    if ENSEMBLE in maps:
        m = maps[ENSEMBLE]
    else:
        present = [np.asarray(maps[k], dtype=np.float32) for k in MEMBER_MODELS if k in maps]
        m = np.maximum.reduce(present) if present else None
    return s, (None if d is None else bool(d)), m


def result_columns(score: Any, image_shape: tuple[int, ...]) -> dict[str, Any]:
    """``image_results`` columns for one scored image (per-model, ensemble, region facts)."""
    raw = dict(getattr(score, "raw", {}) or {})
    normalised = dict(getattr(score, "normalised", {}) or {})
    decisions = dict(getattr(score, "is_defective", {}) or {})
    cols: dict[str, Any] = {}
    for name in MEMBER_MODELS:
        if name in normalised or name in raw:
            cols[f"{name}_raw"] = _as_float(raw.get(name))
            cols[f"{name}_score"] = _as_float(normalised.get(name))
            d = decisions.get(name)
            cols[f"{name}_defective"] = None if d is None else bool(d)
    s, d, m = _ensemble(score)
    cols["ensemble_score"] = s
    cols["is_defective"] = d
    if m is not None:
        m = np.asarray(m, dtype=np.float32)
        h, w = image_shape[:2]
        if m.shape != (h, w):
            m = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
        stats = region_stats(m)
        cols["anomaly_area_fraction"] = stats.area_fraction
        if stats.bbox is not None:
            cols["bbox_x"], cols["bbox_y"], cols["bbox_w"], cols["bbox_h"] = stats.bbox
        cols["anomaly_grid"] = stats.grid
    return cols
