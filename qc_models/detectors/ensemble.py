"""Ensemble of calibrated detectors, weighted by how well each separates good from anomalous.

Members' image scores are combined as robust z-scores against their own calibration good
images (``Calibrator.standardise``) and their maps as normalised maps (0.5 = the member's
pixel threshold). A plain average would let a weak member drag a strong one down, so each
member is weighted by its separation of the calibration good images from synthetic
anomalies made out of those same images (the generator the U-Net trains on; on parts they
are kept on the part):

    w_m  proportional to  ((AUROC_m - 0.5)+ / 0.5) ** WEIGHT_POWER

The AUROC is the mean over all synthetic anomalies and over their subtler half, where
members differ. z-scores beyond :data:`KNEE_Z` are compressed logarithmically, so a member
whose good images barely vary cannot outvote the others by scale alone, while the range
where decisions are made stays linear. That holds only while each member's own threshold lies
well below the knee: a member whose held-out good images include one far-out score has a
threshold tens of spreads out, and the knee then squeezes its defects against that image (wood,
2026-12-07: ensemble recall .17 at AUROC .994). Each member's z-scores are therefore scaled so
that its threshold sits at most at :data:`THRESHOLD_Z_CAP` (:func:`member_scales`). How far the
held-out images settle the weights is measured by resampling them and the anomalies
(:func:`weight_spread`) and shown beside them.
The combined score is calibrated like any model,
except that its threshold may not lie above every synthetic anomaly (``anomaly_max``), nor
above the combined score of a part that every member scores at its own threshold
(:func:`unanimous_score`): a member whose scores saturate (a U-Net whose good images reach
probabilities of 0.8-0.86 while defects stop at 1.0) otherwise leaves the good tail extrapolated
above most defects (wood, 2026-12-07: recall .30 at AUROC .994; .93 with the cap).
Anomalies are drawn at the members' working resolution (:func:`working_copies`).
Everything stored is JSON. The measurements behind each choice are in
``docs/detector_design.md``; members' AUROCs on a labelled validation folder, when given,
are recorded beside the weights (:func:`fit_ensemble`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol

import cv2
import numpy as np

from qc_models.calibration import Calibrator
from qc_models.detectors.alignment import part_mask, shows_objects
from qc_models.detectors.base import Prediction, ProgressCallback, no_progress
from qc_models.metrics import auroc

#: Exponent of the separation-based weights (see module docstring).
WEIGHT_POWER = 8.0
#: Synthetic anomalies per calibration good image when weighting members.
ANOMALIES_PER_IMAGE = 5
#: How members' z-scores are compressed before they are combined (see :func:`transform_scores`).
SCORE_TRANSFORMS = ("linear", "signed_log1p", "knee_log")
SCORE_TRANSFORM = "knee_log"
#: Robust z beyond which ``knee_log`` compresses: decisions are made well below it.
KNEE_Z = 20.0
#: Highest robust z a member's own threshold may take in the ensemble: half the knee, so that the
#: range where that member decides stays linear (:func:`member_scales`).
THRESHOLD_Z_CAP = KNEE_Z / 2
#: Added to the training seed for the synthetic anomalies, so they differ from the U-Net's training ones.
SYNTHETIC_SEED_OFFSET = 7919
#: Pixels the part's mask is grown by before synthetic defects are confined to it (edges count).
PART_GROWTH = 3
#: Tries at drawing a defect that touches the part with at least PART_MIN_PIXELS pixels (then cut to the part).
PART_TRIES = 10
PART_MIN_PIXELS = 16
#: Resamples of the calibration images and synthetic anomalies behind :func:`weight_spread`.
WEIGHT_RESAMPLES = 200
#: Below this share of resamples keeping the same most-trusted member, the weights are called unsettled.
SETTLED_SHARE = 0.8


class EnsembleError(ValueError):
    """The ensemble cannot be fitted, applied or rebuilt from JSON."""


class CalibratedMember(Protocol):
    """What the ensemble needs of a member: a fitted detector and its calibrator."""

    detector: Any
    calibrator: Calibrator


def weights_from_auroc(aurocs: Mapping[str, float | None], power: float = WEIGHT_POWER) -> dict[str, float]:
    """Normalised weights ``((AUROC - 0.5)+ / 0.5) ** power``; equal weights if no member separates."""
    if not aurocs:
        raise EnsembleError("an ensemble needs at least one member")
    raw = {k: max((a or 0.5) - 0.5, 0.0) / 0.5 for k, a in aurocs.items()}
    raw = {k: v**power for k, v in raw.items()}
    total = sum(raw.values())
    if total <= 0:
        return {k: 1.0 / len(raw) for k in raw}
    return {k: v / total for k, v in raw.items()}


def transform_scores(z: np.ndarray, transform: str) -> np.ndarray:
    """Compress members' z-scores so that the weights, not each member's scale, decide its influence.

    A member whose good images barely vary (a U-Net that outputs ~0 on every good image)
    gives z-scores in the hundreds, and linearly one such image would outvote a member with
    several times its weight. ``knee_log`` keeps z up to :data:`KNEE_Z` and continues
    logarithmically, sign(z) * (K + log(1 + |z| - K)); ``signed_log1p`` (ensembles fitted
    on 2026-11-29 only) compressed every z, sign(z) * log(1 + |z|).
    """
    z = np.asarray(z, dtype=np.float64)
    if transform == "linear":
        return z
    if transform == "signed_log1p":
        return np.sign(z) * np.log1p(np.abs(z))
    if transform == "knee_log":
        a = np.abs(z)
        return np.where(a <= KNEE_Z, z, np.sign(z) * (KNEE_Z + np.log1p(np.maximum(a - KNEE_Z, 0.0))))
    raise EnsembleError(f"unknown score transform {transform!r}; choose from {list(SCORE_TRANSFORMS)}")


class Ensemble:
    """Weighted mean of members' (rescaled, compressed) standardised scores and normalised maps (weights sum to 1)."""

    name: ClassVar[str] = "ensemble"

    def __init__(
        self,
        weights: Mapping[str, float],
        member_versions: Mapping[str, str] | None = None,
        details: Mapping[str, Any] | None = None,
        score_transform: str = SCORE_TRANSFORM,
        member_scales: Mapping[str, float] | None = None,
    ) -> None:
        if not weights:
            raise EnsembleError("an ensemble needs at least one member weight")
        w = {str(k): float(v) for k, v in weights.items()}
        if any(not np.isfinite(v) or v < 0 for v in w.values()) or sum(w.values()) <= 0:
            raise EnsembleError(f"ensemble weights must be finite, >= 0 and not all zero, got {w}")
        total = sum(w.values())
        self.weights = {k: v / total for k, v in w.items()}
        self.member_versions = dict(member_versions or {})
        self.details = dict(details or {})
        transform_scores(np.zeros(1), score_transform)  # refuse an unknown transform now, not when scoring
        self.score_transform = score_transform
        scales = {str(k): float(v) for k, v in (member_scales or {}).items()}
        if any(not (0.0 < v <= 1.0) for v in scales.values()):
            raise EnsembleError(f"ensemble member scales must lie in (0, 1], got {scales}")
        self.member_scales = scales  # absent member = 1 (ensembles saved before 2026-12-07 have none)

    @property
    def members(self) -> list[str]:
        return list(self.weights)

    def _check_members(self, available: Sequence[str]) -> None:
        missing = [m for m in self.weights if m not in available]
        if missing:
            raise EnsembleError(f"ensemble member(s) {missing} missing (available: {list(available)})")

    def combine_scores(self, standardised: Mapping[str, np.ndarray]) -> np.ndarray:
        """Weighted mean of members' standardised image scores (``Calibrator.standardise``), each
        multiplied by its :attr:`member_scales` and passed through :attr:`score_transform` first, ``(N,)``."""
        self._check_members(list(standardised))
        return sum(w * transform_scores(self.member_scales.get(m, 1.0) * np.asarray(standardised[m], dtype=np.float64),
                                        self.score_transform)
                   for m, w in self.weights.items())

    def combine_maps(self, maps: Mapping[str, Sequence[np.ndarray]]) -> list[np.ndarray]:
        """Weighted mean of members' normalised anomaly maps (each image at its own size)."""
        self._check_members(list(maps))
        n = {len(v) for v in maps.values()}
        if len(n) != 1:
            raise EnsembleError(f"members returned different numbers of maps: {sorted(n)}")
        out = []
        for i in range(n.pop()):
            acc = None
            for m, w in self.weights.items():
                term = np.float32(w) * np.asarray(maps[m][i], dtype=np.float32)
                acc = term if acc is None else acc + term
            out.append(acc.astype(np.float32, copy=False))
        return out

    def weight_table(self) -> list[dict[str, Any]]:
        """One row per member: its weight and the separation (AUROC) evidence behind it."""
        synthetic = self.details.get("synthetic_auroc") or {}
        validation = self.details.get("validation_auroc") or {}
        spread = self.details.get("weight_spread")
        rows = []
        for m, w in self.weights.items():
            low, high = weight_interval(spread, m) or (None, None)
            rows.append({"member": m, "weight": w, "weight_p10": low, "weight_p90": high,
                         "synthetic_auroc": synthetic.get(m), "validation_auroc": validation.get(m)})
        return rows

    def unsettled_note(self) -> str | None:
        """Why these weights should not be trusted far (:func:`unsettled_note`), or None."""
        return unsettled_note(self.details.get("weight_spread"))

    def to_dict(self) -> dict[str, Any]:
        return {"weights": dict(self.weights), "member_versions": dict(self.member_versions), "details": self.details,
                "score_transform": self.score_transform, "member_scales": dict(self.member_scales)}

    @classmethod
    def from_dict(cls, data: Any) -> "Ensemble":
        if not isinstance(data, dict) or not isinstance(data.get("weights"), dict):
            raise EnsembleError("ensemble must be an object with a 'weights' object")
        weights = data["weights"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in weights.values()):
            raise EnsembleError("ensemble weights must be numbers")
        versions = data.get("member_versions") or {}
        if not isinstance(versions, dict) or not all(isinstance(v, str) for v in versions.values()):
            raise EnsembleError("ensemble 'member_versions' must map member names to version strings")
        details = data.get("details") or {}
        # Ensembles saved before the transform existed combined z-scores linearly; their thresholds assume it.
        transform = data.get("score_transform", "linear")
        if transform not in SCORE_TRANSFORMS:
            raise EnsembleError(f"unknown ensemble 'score_transform' {transform!r}; choose from {list(SCORE_TRANSFORMS)}")
        scales = data.get("member_scales") or {}
        if not isinstance(scales, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                   for v in scales.values()):
            raise EnsembleError("ensemble 'member_scales' must map member names to numbers")
        return cls(weights, versions, details if isinstance(details, dict) else {}, score_transform=transform,
                   member_scales=scales)


def member_scales(members: Mapping[str, CalibratedMember], cap: float = THRESHOLD_Z_CAP) -> dict[str, float]:
    """Per member, the factor that brings its own threshold's robust z down to ``cap`` (1 when already below).

    Equivalent to widening that member's spread to ``(threshold - median) / cap``: a threshold far out
    says its good images have a long tail the median and spread do not see, and in that tail's units a
    defect must be far out too before it counts.
    """
    out = {}
    for name, member in members.items():
        z_threshold = float(member.calibrator.standardise(member.calibrator.threshold))
        out[name] = min(1.0, cap / z_threshold) if z_threshold > 0 else 1.0
    return out


def unanimous_score(ensemble: Ensemble, members: Mapping[str, CalibratedMember]) -> float:
    """The combined score of a part that every member scores exactly at its own threshold.

    The ensemble's threshold is capped here, so that a part every member rejects is rejected.
    """
    at_threshold = {m: members[m].calibrator.standardise(np.array([members[m].calibrator.threshold]))
                    for m in ensemble.members}
    return float(ensemble.combine_scores(at_threshold)[0])


def member_outputs(member: CalibratedMember, images: Sequence[np.ndarray], batch_size: int = 16) -> tuple[np.ndarray, list[np.ndarray]]:
    """Standardised scores and normalised maps of one member, predicted in batches."""
    scores, maps = [], []
    for start in range(0, len(images), batch_size):
        pred: Prediction = member.detector.predict(list(images[start : start + batch_size]))
        scores.append(member.calibrator.standardise(pred.image_scores))
        maps.extend(member.calibrator.normalise_map(m) for m in pred.anomaly_maps)
    return np.concatenate(scores), maps


def working_copies(images: Sequence[np.ndarray], size: int) -> list[np.ndarray]:
    """``images`` shrunk (area interpolation, aspect kept) so the shorter side is ``size`` px.

    Images already that small are returned as they are; nothing is ever enlarged.
    """
    out = []
    for img in images:
        h, w = img.shape[:2]
        scale = size / min(h, w)
        if scale >= 1.0:
            out.append(img)
        else:
            out.append(cv2.resize(img, (max(size, round(w * scale)), max(size, round(h * scale))),
                                  interpolation=cv2.INTER_AREA))
    return out


def members_working_size(members: Mapping[str, CalibratedMember]) -> int | None:
    """The largest input size any member works at (``detector.image_size``), None if none says."""
    sizes = [int(s) for m in members.values() if isinstance(s := getattr(m.detector, "image_size", None), int)]
    return max(sizes) if sizes else None


def synthetic_set(
    images: Sequence[np.ndarray], seed: int, per_image: int = ANOMALIES_PER_IMAGE, on_part: bool = False,
    kinds: Sequence[str] | None = None,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Synthetic anomalies made from ``images`` (another image as texture source) and their defect areas.

    With ``on_part`` each defect is cut to the image's segmented part (see the module doc);
    when :data:`PART_TRIES` draws all miss the part, the last one is kept as it is. ``kinds``
    restricts the anomaly kinds (default: all, as the U-Net trains on).
    """
    from qc_models.detectors.synthetic_anomalies import add_synthetic_anomaly, add_synthetic_anomaly_on

    rng = np.random.default_rng(seed)
    parts = [part_mask(img, grow=PART_GROWTH) for img in images] if on_part else None
    out, areas = [], []
    n = len(images)
    for k in range(per_image):
        for i, img in enumerate(images):
            source = images[(i + 1 + k) % n] if n > 1 else None
            if parts is None:
                anomalous, mask = add_synthetic_anomaly(img, rng, source=source, kinds=kinds)
            else:
                anomalous, mask = add_synthetic_anomaly_on(img, rng, parts[i], source=source, tries=PART_TRIES,
                                                           min_pixels=PART_MIN_PIXELS, kinds=kinds)
            out.append(anomalous)
            areas.append(float(mask.mean()))
    return out, np.asarray(areas)


def synthetic_separation(good_scores: np.ndarray, anomalous_scores: np.ndarray, areas: np.ndarray) -> float | None:
    """How well scores separate good images from synthetic anomalies made from them.

    The mean of the AUROC over all anomalies and over the smaller half (by defect area), so
    that subtle defects count as much as gross ones. None when either side is empty.
    """
    good_scores, anomalous_scores = np.asarray(good_scores), np.asarray(anomalous_scores)
    labels = np.r_[np.zeros(len(good_scores)), np.ones(len(anomalous_scores))]
    subtle = np.r_[np.ones(len(good_scores), bool), np.asarray(areas) <= np.median(areas)]
    s = np.r_[good_scores, anomalous_scores]
    full, hard = auroc(labels, s), auroc(labels[subtle], s[subtle])
    return None if full is None else 0.5 * (full + (hard if hard is not None else full))


def weight_spread(
    good_scores: Mapping[str, np.ndarray], anomalous_scores: Mapping[str, np.ndarray], areas: np.ndarray,
    weights: Mapping[str, float], n: int = WEIGHT_RESAMPLES, seed: int = 0, power: float = WEIGHT_POWER,
) -> dict[str, Any]:
    """How much the weights move when the held-out good images and the anomalies are resampled.

    With ~18 held-out images and members of similar strength the weights are mostly noise
    (on the hold-out categories a member's weight varied by up to +-0.39, and the
    resampled ensembles fell 0.015-0.028 below their best member on average; docs/results.md).
    ``weights`` are those fitted on all of them. Returns each member's 10th-90th percentile weight
    (``interval``) and the share of resamples in which the most-weighted member stays the most
    weighted (``top_share``).
    """
    rng = np.random.default_rng(seed)
    names = list(good_scores)
    n_good, n_bad = len(next(iter(good_scores.values()))), len(areas)
    drawn = np.empty((n, len(names)))
    for b in range(n):
        gi, bi = rng.integers(0, n_good, n_good), rng.integers(0, n_bad, n_bad)
        w = weights_from_auroc({m: synthetic_separation(good_scores[m][gi], anomalous_scores[m][bi], areas[bi])
                                for m in names}, power)
        drawn[b] = [w[m] for m in names]
    top = names.index(max(names, key=lambda m: weights[m]))
    lo, hi = np.percentile(drawn, [10, 90], axis=0)
    return {"interval": {m: [float(lo[i]), float(hi[i])] for i, m in enumerate(names)},
            "top_member": names[top], "top_share": float(np.mean(drawn.argmax(axis=1) == top)), "resamples": n}


def weight_interval(spread: Any, member: str) -> tuple[float, float] | None:
    """``member``'s recorded 10th-90th percentile weight from a :func:`weight_spread` record; None when
    absent or malformed (ensembles saved before it, hand-edited files)."""
    interval = spread.get("interval") if isinstance(spread, Mapping) else None
    pair = interval.get(member) if isinstance(interval, Mapping) else None
    if isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(x, (int, float)) for x in pair):
        return float(pair[0]), float(pair[1])
    return None


def unsettled_note(spread: Mapping[str, Any] | None) -> str | None:
    """Why an ensemble's weights should not be trusted far, from its :func:`weight_spread` record; None when
    resampling keeps the same top member (or the ensemble predates the measurement)."""
    share = spread.get("top_share") if isinstance(spread, Mapping) else None
    if not isinstance(share, (int, float)) or share >= SETTLED_SHARE:
        return None
    return (f"the held-out good images do not settle the ensemble's weights: {spread.get('top_member')} is the "
            f"most trusted member in only {100 * share:.0f} % of {spread.get('resamples')} resamples of them and "
            "of the synthetic anomalies, so the ensemble may trail its best member. More good training images "
            "narrow this (a share of them is held out); a labelled validation folder (qc train --validation DIR) "
            "shows each member's AUROC on real defects beside the weights.")


def fit_ensemble(
    members: Mapping[str, CalibratedMember],
    good_images: Sequence[np.ndarray],
    member_versions: Mapping[str, str] | None = None,
    seed: int = 0,
    target_false_reject_rate: float = 0.01,
    progress: ProgressCallback | None = None,
    validation: tuple[Sequence[np.ndarray], np.ndarray] | None = None,
) -> tuple[Ensemble, Calibrator]:
    """Weight members on good-vs-synthetic separation, then calibrate the combined score.

    ``good_images`` must be held out from every member's fitting (the calibration set).
    With a labelled ``validation`` set ``(images, labels)`` (1 = defective; never the test set)
    each member's AUROC on it is recorded beside its synthetic one, and the combined score's
    F1-optimal threshold on it is recorded in the calibrator. The weights stay synthetic:
    weighting on 28-70 labelled validation images instead was measured and lost (mean image
    AUROC over 8 categories 0.767 -> 0.759; wood 0.976 -> 0.929): that few images rank the
    members less reliably than the synthetic anomalies do (docs/results.md).
    Returns the ensemble and its calibrator (fitted on the combined good scores and maps).
    """
    progress = progress or no_progress
    if len(members) < 2:
        raise EnsembleError(f"an ensemble needs at least 2 members, got {list(members)}")
    if len(good_images) < 2:
        raise EnsembleError("an ensemble needs at least 2 calibration good images")
    size = members_working_size(members)
    working = list(good_images) if size is None else working_copies(good_images, size)
    shrunk = any(a is not b for a, b in zip(working, good_images))
    on_part = shows_objects(working)
    anomalous, areas = synthetic_set(working, seed=seed + SYNTHETIC_SEED_OFFSET, per_image=ANOMALIES_PER_IMAGE,
                                     on_part=on_part)
    good_out: dict[str, tuple[np.ndarray, list[np.ndarray]]] = {}
    bad_out: dict[str, np.ndarray] = {}
    working_scores_of: dict[str, np.ndarray] = {}
    aurocs: dict[str, float | None] = {}
    for i, (name, member) in enumerate(members.items()):
        progress(f"ensemble: scoring {name} on synthetic anomalies", i / len(members))
        good_scores, good_maps = member_outputs(member, good_images)  # as inspected: the threshold is fitted on these
        working_scores_of[name] = member_outputs(member, working)[0] if shrunk else good_scores
        bad_out[name] = member_outputs(member, anomalous)[0]
        good_out[name] = (good_scores, good_maps)
        aurocs[name] = synthetic_separation(working_scores_of[name], bad_out[name], areas)
    details: dict[str, Any] = {"synthetic_auroc": aurocs, "n_good": len(good_images), "n_synthetic": len(anomalous),
                               "weight_power": WEIGHT_POWER, "synthetic_on_part": on_part,
                               "synthetic_shrunk_to": size if shrunk else None}
    weights = weights_from_auroc(aurocs, WEIGHT_POWER)
    details["weight_spread"] = weight_spread(working_scores_of, bad_out, areas, weights, seed=seed)
    val_scores: dict[str, np.ndarray] = {}
    if validation is not None:
        val_images, val_labels = validation[0], np.asarray(validation[1]).astype(int)
        for name, member in members.items():
            progress(f"ensemble: scoring {name} on the validation folder", 0.9)
            val_scores[name] = member_outputs(member, val_images)[0]
        details.update(validation_auroc={name: auroc(val_labels, v) for name, v in val_scores.items()},
                       n_validation_good=int((val_labels == 0).sum()),
                       n_validation_defective=int((val_labels == 1).sum()))
    ensemble = Ensemble(weights, member_versions, details=details, member_scales=member_scales(members))
    combined = ensemble.combine_scores({k: v[0] for k, v in good_out.items()})
    combined_maps = ensemble.combine_maps({k: v[1] for k, v in good_out.items()})
    combined_bad = ensemble.combine_scores(bad_out)
    # Compressed scores grow logarithmically, so the good tail's extrapolation can pass every
    # anomaly: the highest synthetic score caps the threshold (see qc_models.calibration), and
    # so does a part at every member's own threshold (a saturating member; module doc).
    unanimous = unanimous_score(ensemble, members)
    ensemble.details["unanimous_score"] = unanimous
    calibrator = Calibrator(target_false_reject_rate).fit(combined, combined_maps,
                                                          anomaly_max=float(combined_bad.max()),
                                                          threshold_cap=unanimous)
    ensemble.details["synthetic_detection_rate"] = float(np.mean(combined_bad > calibrator.threshold))
    if val_scores:
        calibrator.fit_validation(ensemble.combine_scores(val_scores), validation[1])  # type: ignore[index]
    progress("ensemble: calibrated", 1.0)
    return ensemble, calibrator
