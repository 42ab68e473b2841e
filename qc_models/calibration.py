"""Thresholds and score normalisation, fitted on held-out good images only.

Raw detector scores have arbitrary units, so every model is calibrated on a
calibration hold-out of good training images that the detector never saw while
fitting (no leakage; the test set is never used either). Training adds the
images the networks only stopped early on (:func:`qc_models.training.split_held_out`).

Threshold rule (``target_false_reject_rate`` = alpha). With few calibration
images an empirical 99% quantile is just the sample maximum, which rejects about
1/(n+1) of good parts on average (8% for n = 12). The threshold is therefore the
larger of:

* the conformal order statistic ``s_(k)``, ``k = ceil((n + 1)(1 - alpha))``
  (the sample maximum when ``k > n``), which has false-reject rate <= alpha in
  expectation when ``k <= n``;
* a robust parametric prediction bound ``median + t_{n-1}(1 - alpha) *
  sqrt(1 + 1/n) * sigma``, the Student-t upper prediction limit for one new
  score. ``sigma`` is the larger of the MAD spread and the upper semi-spread
  (84th percentile minus median), because the right tail is what causes false
  rejects and detector scores are usually right-skewed. The same bound is also
  taken after log transforms (right-skewed, log-normal-like scores);
* when the target quantile lies beyond the sample maximum (``alpha (n+1) < 1``),
  an exponential-tail extrapolation from the top quarter of the scores, which
  catches heavy or bimodal tails (a few good images that score high).

The bounds (not the order statistic) are capped at ``max + ln(1/(alpha (n+1)))
* (max - median)``: log bounds explode for scores spanning decades near zero
(e.g. U-Net probabilities from 0.001 to 0.9).

Bounded scores (``score_upper_bound``, e.g. 1.0 for probabilities): a bound at or
beyond the highest attainable score would make a model that never rejects
anything, which is what happened to U-Nets whose calibration set held one good
image scored 0.98-0.9999999. The threshold then falls back to the order statistic
(the sample maximum when ``k > n``), and ``stats["beyond_score_range"]`` records
that the target could not be honoured: expect a false-reject rate of about
``1 / (n + 1)`` instead. The same fallback applies below ``anomaly_max``, the highest
score known anomalies reached (``fit(..., anomaly_max=)``; the ensemble passes its
synthetic anomalies' maximum): a bound above every one of them extrapolated the good
images' tail past anything the model has been seen to give a defect. On the ensemble,
whose compressed scores grow only logarithmically, the bound rejected none of 90
synthetic anomalies on wood and leather (recall 0.00 on real defects; 0.97 and 0.51 with
the fallback, docs/results.md).

A ``threshold_cap`` (``fit(..., threshold_cap=)``) lowers a threshold above it to the cap, though
never below the order statistic. The ensemble passes the combined score of a part that every
member scores exactly at its own threshold: the ensemble should not demand more than all its
members together. Without it, a member whose scores saturate (a U-Net whose good images reach
probabilities of 0.80-0.86 while defects stop at 1.0) left the good images' tail extrapolated
above most defects (wood, 2026-12-07: recall 0.30; 0.93 with the cap, docs/results.md).

On simulated normal, gamma and log-normal scores with 12-40 calibration images
the mean false-reject rate on new good images is 0.1-0.9% at a 1% target; the
price is a somewhat higher threshold (fewer defects caught) with few images.

Normalisation is ``logistic((s - threshold) / scale)`` with ``scale =
(threshold - median) / ln 9``: 0.5 exactly at the threshold and 0.1 at the
median calibration score, for every model, which makes normalised scores and
maps comparable across models. Maps get the same treatment with a pixel-level
threshold: the same rule applied to the per-image maxima of the calibration
maps (a good image shows no pixel above 0.5 with probability ~1 - alpha), and
the median calibration pixel maps to 0.1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

#: Default share of good training images held out for calibration, and the minimum count.
CALIBRATION_FRACTION = 0.15
MIN_CALIBRATION_IMAGES = 5
#: Share of the remaining images held out to stop the networks' training early. No detector fits
#: on them either (PatchCore leaves them out of its memory bank), so they join the calibration
#: images: 18 held-out images see a 1 % tail poorly (docs/results.md, 2026-12-07, session 13).
EARLY_STOPPING_FRACTION = 0.15
_LN9 = math.log(9.0)
_MAX_PIXELS_FOR_MEDIAN = 1_000_000


class CalibrationError(ValueError):
    """Calibration cannot be fitted or a serialised calibration is invalid."""


def split_calibration(
    n_images: int,
    fraction: float = CALIBRATION_FRACTION,
    min_count: int = MIN_CALIBRATION_IMAGES,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (fit_indices, calibration_indices) split of ``n_images`` good images.

    At least ``min_count`` images are held out and at least one is left to fit on.
    """
    if not 0.0 < fraction < 1.0:
        raise CalibrationError(f"calibration fraction must be in (0, 1), got {fraction}")
    n_cal = max(int(min_count), int(round(fraction * n_images)))
    if n_images - n_cal < 1:
        raise CalibrationError(
            f"need at least {n_cal + 1} good training images ({n_cal} are held out for calibration), "
            f"got {n_images}"
        )
    perm = np.random.default_rng(seed).permutation(n_images)
    return np.sort(perm[n_cal:]), np.sort(perm[:n_cal])


def robust_spread(values: np.ndarray) -> float:
    """Spread of the upper tail: max(1.4826 * MAD, q84 - median), with fallbacks for ties."""
    values = np.asarray(values, dtype=np.float64)
    med = float(np.median(values))
    mad = 1.4826 * float(np.median(np.abs(values - med)))
    upper = float(np.quantile(values, 0.8413)) - med
    sigma = max(mad, upper)
    if not sigma > 0:
        sigma = float(np.std(values))
    return sigma


def _prediction_bound(values: np.ndarray, alpha: float) -> float:
    """Student-t upper prediction limit for one new value: median + t * sqrt(1 + 1/n) * sigma."""
    n = values.size
    t_quant = float(stats.t.ppf(1.0 - alpha, df=max(n - 1, 1)))
    return float(np.median(values)) + t_quant * math.sqrt(1.0 + 1.0 / n) * robust_spread(values)


def _tail_bound(s: np.ndarray, alpha: float) -> float:
    """Exponential-tail extrapolation beyond the sample maximum (peaks over threshold).

    When ``alpha * (n + 1) < 1`` the target quantile lies beyond the largest score. The
    mean excess of the top ``k`` scores over the next one estimates the tail's scale, and
    an exponential tail puts the quantile ``scale * ln(1 / (alpha * (n + 1)))`` above the
    maximum. Catches heavy or bimodal tails (a few good images scoring high) that a fit
    to the bulk misses.
    """
    n = s.size
    beyond = alpha * (n + 1)
    if beyond >= 1.0 or n < 4:
        return -math.inf
    k = min(max(3, math.ceil(0.25 * n)), n - 1)
    scale = float(np.mean(s[-k:]) - s[-k - 1])
    return float(s[-1]) + scale * math.log(1.0 / beyond)


def order_statistic(scores: np.ndarray, alpha: float) -> float:
    """The conformal order statistic ``s_(k)``, ``k = ceil((n + 1)(1 - alpha))``; the sample maximum when ``k > n``."""
    s = np.sort(np.asarray(scores, dtype=np.float64))
    n = s.size
    k = math.ceil((n + 1) * (1.0 - alpha))
    return float(s[min(k, n) - 1])


def conservative_threshold(scores: np.ndarray, alpha: float, upper_bound: float | None = None) -> float:
    """Threshold with false-reject rate about ``alpha`` on future good scores (see module doc).

    With ``upper_bound`` (the highest attainable score) a threshold that would reach it
    falls back to the order statistic.
    """
    s = np.sort(np.asarray(scores, dtype=np.float64))
    order_stat = order_statistic(s, alpha)
    threshold = _bound_threshold(s, alpha, order_stat)
    if upper_bound is not None and threshold >= upper_bound:
        return order_stat
    return threshold


def _bound_threshold(s: np.ndarray, alpha: float, order_stat: float) -> float:
    """The order statistic raised to the parametric/tail bounds, capped (see module doc); ``s`` sorted."""
    n = s.size
    bound = _prediction_bound(s, alpha)
    # Same bound after a log transform that is invariant to shifting and scaling the scores,
    # which follows right-skewed (log-normal / gamma-like) score distributions.
    med = float(np.median(s))
    lo, d = float(s[0]), med - float(s[0])
    if d > 0:
        z = np.log1p((s - lo) / d)
        bound = max(bound, lo + d * math.expm1(_prediction_bound(z, alpha)))
    if lo > 0:  # scores with a natural zero (distances, errors): plain log-normal bound too
        bound = max(bound, math.exp(_prediction_bound(np.log(s), alpha)))
    bound = max(bound, _tail_bound(s, alpha))
    # Log bounds explode when scores span decades (probabilities near 0): cap them at an
    # exponential tail whose scale is the whole median-to-maximum range.
    beyond = max(math.log(1.0 / (alpha * (n + 1))), 0.0)
    cap = float(s[-1]) + beyond * (float(s[-1]) - med)
    return max(order_stat, min(bound, cap))


def _logistic(z: np.ndarray) -> np.ndarray:
    # Clip keeps exp finite; the output stays strictly inside (0, 1) for |z| < 36.
    return 1.0 / (1.0 + np.exp(-np.clip(z, -36.0, 36.0)))


def _scale(threshold: float, location: float) -> float:
    scale = (threshold - location) / _LN9
    if not scale > 0:
        scale = max(abs(threshold) * 1e-6, 1e-12)
    return float(scale)


def f1_optimal_threshold(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The threshold maximising F1 on labelled scores (1 = defective), with its precision/recall."""
    from sklearn.metrics import precision_recall_curve

    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(int)
    if labels.min(initial=1) == labels.max(initial=0):
        raise CalibrationError("validation set needs both good and defective images for an F1 threshold")
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    best = int(np.argmax(f1[:-1]))
    # sklearn flags score >= cut; decisions here are score > threshold, so take the
    # midpoint between the cut and the next lower score.
    cut = float(thresholds[best])
    below = scores[scores < cut]
    threshold = 0.5 * (cut + float(below.max())) if below.size else cut - max(abs(cut) * 1e-9, 1e-12)
    return {
        "threshold": threshold,
        "f1": float(f1[best]),
        "precision": float(precision[best]),
        "recall": float(recall[best]),
        "n_good": int((labels == 0).sum()),
        "n_defective": int((labels == 1).sum()),
    }


class Calibrator:
    """Threshold + normalisation of one model's raw scores and anomaly maps.

    ``fit`` on calibration good scores (and maps); ``normalise`` maps raw scores to
    (0, 1) with 0.5 at the threshold; ``decide`` returns True for NG.
    """

    def __init__(self, target_false_reject_rate: float = 0.01, score_upper_bound: float | None = None) -> None:
        if not 0.0 < target_false_reject_rate < 0.5:
            raise CalibrationError(f"target_false_reject_rate must be in (0, 0.5), got {target_false_reject_rate}")
        if score_upper_bound is not None and not math.isfinite(score_upper_bound):
            raise CalibrationError(f"score_upper_bound must be finite or None, got {score_upper_bound}")
        self.target_false_reject_rate = float(target_false_reject_rate)
        self.score_upper_bound = None if score_upper_bound is None else float(score_upper_bound)
        self.threshold_: float | None = None
        self.location_: float | None = None
        self.scale_: float | None = None
        self.pixel_threshold_: float | None = None
        self.pixel_location_: float | None = None
        self.pixel_scale_: float | None = None
        self.stats_: dict[str, float] = {}
        self.validation_: dict[str, float] | None = None
        self.threshold_source = "calibration"

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        good_scores: Sequence[float] | np.ndarray,
        good_maps: Sequence[np.ndarray] | None = None,
        anomaly_max: float | None = None,
        threshold_cap: float | None = None,
    ) -> "Calibrator":
        """Fit threshold and normalisation on held-out good images' raw scores (and maps).

        ``anomaly_max``: the highest raw score known anomalies reached; a threshold at or
        beyond it falls back to the order statistic, like one beyond ``score_upper_bound``.
        ``threshold_cap``: a threshold above it is lowered to it, but not below the order
        statistic (see the module doc).
        """
        s = np.asarray(good_scores, dtype=np.float64).ravel()
        if s.size < 2 or not np.all(np.isfinite(s)):
            raise CalibrationError(f"need at least 2 finite calibration scores, got {s.size} values")
        if anomaly_max is not None and not math.isfinite(anomaly_max):
            raise CalibrationError(f"anomaly_max must be finite or None, got {anomaly_max}")
        if threshold_cap is not None and not math.isfinite(threshold_cap):
            raise CalibrationError(f"threshold_cap must be finite or None, got {threshold_cap}")
        alpha = self.target_false_reject_rate
        ceilings = [c for c in (self.score_upper_bound, anomaly_max) if c is not None]
        ceiling = min(ceilings) if ceilings else None
        threshold = conservative_threshold(s, alpha, ceiling)
        uncapped = threshold
        if threshold_cap is not None and threshold > threshold_cap:
            threshold = max(order_statistic(s, alpha), float(threshold_cap))
        self.threshold_ = threshold
        self.location_ = float(np.median(s))
        self.scale_ = _scale(self.threshold_, self.location_)
        self.stats_ = {
            "n": int(s.size),
            "median": self.location_,
            "spread": robust_spread(s),
            "min": float(s.min()),
            "max": float(s.max()),
            "calibration_false_reject_rate": float(np.mean(s > self.threshold_)),
        }
        if ceiling is not None:
            self.stats_["beyond_score_range"] = bool(conservative_threshold(s, alpha) >= ceiling)
        if anomaly_max is not None:
            self.stats_["anomaly_max"] = float(anomaly_max)
        if threshold_cap is not None:
            self.stats_["threshold_cap"] = float(threshold_cap)
            self.stats_["uncapped_threshold"] = float(uncapped)
        if good_maps is not None and len(good_maps) > 0:
            self._fit_pixels(good_maps)
        self.threshold_source = "calibration"
        return self

    def fallback_note(self) -> str | None:
        """Why the false-reject target could not be honoured, for logs and the dashboard; None when it was."""
        if not self.stats_.get("beyond_score_range"):
            uncapped = self.stats_.get("uncapped_threshold")
            if isinstance(uncapped, (int, float)) and self.threshold_ is not None and uncapped > self.threshold_:
                return (f"the good images' tail put the threshold at {uncapped:.4g}, above the combined score of a part "
                        f"that every member scores at its own threshold; it is {self.threshold_:.4g} instead, so such a "
                        f"part is rejected, and false rejects may exceed {100 * self.target_false_reject_rate:g} %.")
            return None
        n = int(self.stats_.get("n", 0))
        expected = 100.0 * max(self.target_false_reject_rate, 1.0 / (n + 1)) if n else float("nan")
        anomaly_max = self.stats_.get("anomaly_max")
        if anomaly_max is not None and (self.score_upper_bound is None or anomaly_max < self.score_upper_bound):
            limit = f"above every synthetic anomaly (the highest scored {anomaly_max:.4g})"
        else:
            top = self.stats_.get("max", float("nan"))
            if self.score_upper_bound is not None and self.threshold_ >= self.score_upper_bound * (1.0 - 1e-6):
                return (f"a held-out good image scored {top:.4g}, the highest score this model can give, so its "
                        "threshold sits there and it rejects almost nothing, good or defective. Look at the "
                        "held-out images that score that high; more good training images usually help.")
            limit = f"beyond the highest score this model can give (a held-out good image scored {top:.4g})"
        return (f"a false-reject rate of {100 * self.target_false_reject_rate:g} % needs a threshold {limit}; the "
                f"threshold is the empirical {self.threshold_:.4g} instead, so expect about {expected:.1f} % false "
                "rejects. More good training images usually help.")

    def _fit_pixels(self, maps: Sequence[np.ndarray]) -> None:
        maxima = np.array([float(np.max(m)) for m in maps], dtype=np.float64)
        if not np.all(np.isfinite(maxima)):
            raise CalibrationError("calibration anomaly maps contain non-finite values")
        flat = np.concatenate([np.asarray(m, dtype=np.float32).ravel() for m in maps])
        if flat.size > _MAX_PIXELS_FOR_MEDIAN:
            flat = flat[:: flat.size // _MAX_PIXELS_FOR_MEDIAN + 1]
        self.pixel_threshold_ = conservative_threshold(maxima, self.target_false_reject_rate, self.score_upper_bound)
        self.pixel_location_ = float(np.median(flat))
        self.pixel_scale_ = _scale(self.pixel_threshold_, self.pixel_location_)

    def fit_validation(self, scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> dict[str, float]:
        """Record the F1-optimal threshold on a labelled validation folder (not the test set)."""
        self.validation_ = f1_optimal_threshold(np.asarray(scores), np.asarray(labels))
        return self.validation_

    def use_threshold(self, source: str) -> "Calibrator":
        """Choose the active threshold: ``"calibration"`` (false-reject target) or ``"validation_f1"``."""
        if source == "validation_f1" and self.validation_ is None:
            raise CalibrationError("no validation F1 threshold fitted (fit_validation first)")
        if source not in ("calibration", "validation_f1"):
            raise CalibrationError(f"unknown threshold source {source!r}")
        self.threshold_source = source
        return self

    # ------------------------------------------------------------------ applying
    def _check(self) -> None:
        if self.threshold_ is None:
            raise CalibrationError("calibrator is not fitted")

    @property
    def threshold(self) -> float:
        """The active raw-score threshold."""
        self._check()
        if self.threshold_source == "validation_f1" and self.validation_ is not None:
            return float(self.validation_["threshold"])
        return float(self.threshold_)  # type: ignore[arg-type]

    @property
    def has_pixel_calibration(self) -> bool:
        return self.pixel_threshold_ is not None

    def normalise(self, scores: Sequence[float] | np.ndarray | float) -> np.ndarray:
        """Raw scores to (0, 1); exactly 0.5 at the threshold, monotone increasing."""
        self._check()
        s = np.asarray(scores, dtype=np.float64)
        return _logistic((s - self.threshold) / self.scale_)

    def standardise(self, scores: Sequence[float] | np.ndarray | float) -> np.ndarray:
        """Robust z-scores ``(s - median) / spread`` of the calibration good scores.

        Unlike :meth:`normalise` this does not flatten the bulk of the scores when a
        heavy tail pushed the threshold far out, so the ensemble combines members here.
        """
        self._check()
        spread = float(self.stats_.get("spread") or 0.0)
        if not spread > 0:
            spread = float(self.scale_)  # type: ignore[arg-type]
        return (np.asarray(scores, dtype=np.float64) - self.location_) / spread

    def decide(self, scores: Sequence[float] | np.ndarray | float) -> np.ndarray:
        """True = NG (raw score strictly above the threshold)."""
        self._check()
        return np.asarray(scores, dtype=np.float64) > self.threshold

    def normalise_map(self, anomaly_map: np.ndarray) -> np.ndarray:
        """A raw anomaly map to float32 in (0, 1), 0.5 at the pixel threshold."""
        self._check()
        if self.pixel_threshold_ is None:
            # No pixel calibration: fall back to the image-level transform.
            t, scale = self.threshold, self.scale_
        else:
            t, scale = self.pixel_threshold_, self.pixel_scale_
        m = np.asarray(anomaly_map, dtype=np.float32)
        return _logistic((m - np.float32(t)) / np.float32(scale)).astype(np.float32, copy=False)

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """JSON-able state (floats and strings only)."""
        self._check()
        return {
            "target_false_reject_rate": self.target_false_reject_rate,
            "score_upper_bound": self.score_upper_bound,
            "threshold": self.threshold_,
            "location": self.location_,
            "scale": self.scale_,
            "pixel_threshold": self.pixel_threshold_,
            "pixel_location": self.pixel_location_,
            "pixel_scale": self.pixel_scale_,
            "stats": dict(self.stats_),
            "validation": None if self.validation_ is None else dict(self.validation_),
            "threshold_source": self.threshold_source,
        }

    @classmethod
    def from_dict(cls, data: Any) -> "Calibrator":
        """Rebuild from :meth:`to_dict`; raises :class:`CalibrationError` naming the bad field."""
        if not isinstance(data, dict):
            raise CalibrationError(f"calibration must be an object, got {type(data).__name__}")

        def num(key: str, optional: bool = False) -> float | None:
            v = data.get(key)
            if v is None and optional:
                return None
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise CalibrationError(f"calibration field '{key}' must be a finite number, got {v!r}")
            return float(v)

        cal = cls(num("target_false_reject_rate"), num("score_upper_bound", optional=True))  # type: ignore[arg-type]
        cal.threshold_ = num("threshold")
        cal.location_ = num("location")
        cal.scale_ = num("scale")
        if not cal.scale_ > 0:  # type: ignore[operator]
            raise CalibrationError("calibration field 'scale' must be positive")
        cal.pixel_threshold_ = num("pixel_threshold", optional=True)
        cal.pixel_location_ = num("pixel_location", optional=True)
        cal.pixel_scale_ = num("pixel_scale", optional=True)
        if cal.pixel_threshold_ is not None and not (cal.pixel_scale_ or 0) > 0:
            raise CalibrationError("calibration field 'pixel_scale' must be positive")
        st = data.get("stats", {})
        cal.stats_ = dict(st) if isinstance(st, dict) else {}
        spread = cal.stats_.get("spread")
        if spread is not None and (isinstance(spread, bool) or not isinstance(spread, (int, float))):
            raise CalibrationError(f"calibration field 'stats.spread' must be a number, got {spread!r}")
        val = data.get("validation")
        if val is not None:
            if not isinstance(val, dict) or not isinstance(val.get("threshold"), (int, float)):
                raise CalibrationError("calibration field 'validation' must hold a numeric 'threshold'")
            cal.validation_ = dict(val)
        source = data.get("threshold_source", "calibration")
        cal.use_threshold(source if isinstance(source, str) else "?")
        return cal
