"""The set of newest models of one category, scoring images with every member and the ensemble.

Built by :func:`qc_models.registry.load_model_set`. Every detector predicts a whole
batch at once (one ``predict`` per model per batch); calibrators turn raw scores and
maps into normalised ones (0.5 = threshold) and decisions; the ensemble combines the
members' standardised scores and normalised maps. Results are plain dicts keyed by model name.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from qc_models.detectors.base import ProgressCallback, no_progress

if TYPE_CHECKING:
    from qc_models.registry import TrainedModel

log = logging.getLogger(__name__)

#: Display order of model names; "ensemble" is always last.
MODEL_ORDER = ("cae", "unet", "patchcore", "ensemble")
ENSEMBLE = "ensemble"


@dataclass
class ImageScore:
    """Scores of one image by every model of the set (keys: model names, incl. 'ensemble')."""

    raw: dict[str, float] = field(default_factory=dict)
    normalised: dict[str, float] = field(default_factory=dict)
    is_defective: dict[str, bool] = field(default_factory=dict)
    maps: dict[str, np.ndarray] = field(default_factory=dict)  # normalised, float32, image resolution

    @property
    def decision_model(self) -> str:
        """The model whose decision is final: the ensemble when present, else the only/last model."""
        return ENSEMBLE if ENSEMBLE in self.is_defective else list(self.is_defective)[-1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able scores and decisions (maps left out)."""
        return {"raw": dict(self.raw), "normalised": dict(self.normalised), "is_defective": dict(self.is_defective)}


@dataclass
class ModelSet:
    """Loaded models of one category; ``ensemble`` may be None."""

    category: str
    members: dict[str, "TrainedModel"]
    ensemble: "TrainedModel | None" = None
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_models(cls, category: str, models: Mapping[str, "TrainedModel"]) -> "ModelSet":
        """Split detectors from the ensemble; drop an ensemble whose members are not the loaded versions."""
        members = {k: v for k, v in models.items() if k != ENSEMBLE}
        ensemble = models.get(ENSEMBLE)
        warnings: list[str] = []
        if ensemble is not None:
            wanted = ensemble.detector.member_versions  # type: ignore[union-attr]
            weights = ensemble.detector.weights  # type: ignore[union-attr]
            stale = [m for m in weights if m not in members or (wanted.get(m) and wanted[m] != members[m].version)]
            if stale:
                warnings.append(
                    f"ensemble {ensemble.version} was built on other versions of {', '.join(stale)}; "
                    "it is not used (retrain to rebuild it)"
                )
                ensemble = None
        if not members:
            raise ValueError(f"category '{category}': no detector models to score with")
        for w in warnings:
            log.warning(w)
        return cls(category, members, ensemble, warnings)

    @property
    def names(self) -> list[str]:
        """Model names in display order, 'ensemble' last when present."""
        return list(self.members) + ([ENSEMBLE] if self.ensemble is not None else [])

    @property
    def versions(self) -> dict[str, str]:
        out = {k: v.version for k, v in self.members.items()}
        if self.ensemble is not None:
            out[ENSEMBLE] = self.ensemble.version
        return out

    @property
    def thresholds(self) -> dict[str, float]:
        """Active raw-score threshold of every model."""
        models = dict(self.members)
        if self.ensemble is not None:
            models[ENSEMBLE] = self.ensemble
        return {k: v.calibrator.threshold for k, v in models.items()}

    @property
    def untrained_backbone(self) -> bool:
        """True when any member used random-init backbone weights (results are not production grade)."""
        return any(m.untrained_backbone for m in self.members.values())

    def score(
        self,
        images: Sequence[np.ndarray],
        batch_size: int = 16,
        with_maps: bool = True,
        progress: ProgressCallback | None = None,
    ) -> list[ImageScore]:
        """Score ``(H, W, 3)`` uint8 RGB images with every model; one predict per model per batch."""
        progress = progress or no_progress
        out: list[ImageScore] = []
        n = len(images)
        for start in range(0, n, batch_size):
            batch = list(images[start : start + batch_size])
            out.extend(self._score_batch(batch, with_maps))
            progress(f"scored {min(start + batch_size, n)}/{n} images", min(start + batch_size, n) / max(n, 1))
        return out

    def _score_batch(self, batch: list[np.ndarray], with_maps: bool) -> list[ImageScore]:
        results = [ImageScore() for _ in batch]
        z_scores: dict[str, np.ndarray] = {}
        norm_maps: dict[str, list[np.ndarray]] = {}
        for name, model in self.members.items():
            pred = model.detector.predict(batch)  # type: ignore[union-attr]
            raw = np.asarray(pred.image_scores, dtype=np.float64)
            norm = model.calibrator.normalise(raw)
            dec = model.calibrator.decide(raw)
            z_scores[name] = model.calibrator.standardise(raw)
            norm_maps[name] = [model.calibrator.normalise_map(m) for m in pred.anomaly_maps] if with_maps else []
            for i, r in enumerate(results):
                r.raw[name] = float(raw[i])
                r.normalised[name] = float(norm[i])
                r.is_defective[name] = bool(dec[i])
                if with_maps:
                    r.maps[name] = norm_maps[name][i]
        if self.ensemble is not None:
            ens, cal = self.ensemble.detector, self.ensemble.calibrator
            raw = ens.combine_scores(z_scores)  # type: ignore[union-attr]
            norm, dec = cal.normalise(raw), cal.decide(raw)
            maps = ens.combine_maps(norm_maps) if with_maps else []  # type: ignore[union-attr]
            for i, r in enumerate(results):
                r.raw[ENSEMBLE] = float(raw[i])
                r.normalised[ENSEMBLE] = float(norm[i])
                r.is_defective[ENSEMBLE] = bool(dec[i])
                if with_maps:
                    r.maps[ENSEMBLE] = cal.normalise_map(maps[i])
        return results
