"""Held-out good images that score like defects, and so raised a threshold.

A defective part filed under ``train/good`` that lands in the calibration split raises the
threshold for every later decision; :func:`calibration_outliers` names such images so that
training can log them and the dashboard can offer to leave them out
(:mod:`qc_models.calibration_exclusion`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qc_models.calibration import MIN_CALIBRATION_IMAGES, conservative_threshold


def calibration_outliers(scores: Sequence[float] | np.ndarray, alpha: float,
                         upper_bound: float | None = None) -> list[dict[str, float]]:
    """Held-out good images that score like defects: ``index``, ``score`` and ``threshold_without`` each.

    A defective part filed under ``train/good`` (or a good one unlike the rest) that lands in the
    calibration split raises the threshold for every later decision. An image is flagged when its
    score lies beyond the threshold the *other* calibration scores give, by more than that
    threshold's own distance from their median (``s > t + (t - median)``): a good image's tail
    rarely reaches that far. Simulated sets of 18 normal, gamma or log-normal scores: 0-1 of 100
    clean sets flag anything; a score more than 5 x (max - median) of the others above their maximum
    is always flagged, one 3 x above in about a third of the sets. On the 36 models of the detector
    benchmark and the demo (18 calibration images each) it flagged 4, among them the held-out images
    behind the leather ensemble's recall of 0.11 (PatchCore 13.2 against 7.0 from the others) and the
    bottle U-Net that never rejects (probability 1.0 against 0.03); plain leave-one-out (``s > t``)
    flagged 17.

    Bounded scores (``upper_bound``: the U-Net's defect probability) must also reach half the bound
    to count as "like a defect": a U-Net whose good images all score near 0 spans decades below
    its bound, and a carpet at probability 7.5e-5 against a median of 4.5e-6 (1024-px images) was
    flagged although no pixel came near being segmented as a defect. Near the bound the margin is
    at most half the way from the others' threshold to the bound, since ``t + (t - median)`` may lie
    beyond any score: the demo bottle U-Net's 1.0 against the others' 0.68 (a threshold that
    makes the model reject nothing) was missed before. 6 of 13 U-Nets (benchmark, hold-out, demo,
    1024-px carpet) now name one image, each scoring 0.82-1.0 while the next scores 0.01-0.68.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    flagged: list[dict[str, float]] = []
    if s.size < MIN_CALIBRATION_IMAGES:
        return flagged
    for i in np.argsort(-s)[: max(1, s.size // 4)]:  # only the top quarter can be this far out
        if upper_bound is not None and s[i] < 0.5 * upper_bound:
            break  # sorted: no lower score reaches half the bound either
        rest = np.delete(s, i)
        threshold = conservative_threshold(rest, alpha, upper_bound)
        margin = threshold - float(np.median(rest))
        if upper_bound is not None:
            margin = min(margin, 0.5 * (upper_bound - threshold))
        if s[i] > threshold + margin:
            flagged.append({"index": int(i), "score": float(s[i]), "threshold_without": threshold})
    return flagged
