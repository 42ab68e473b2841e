"""Image, pixel and per-defect-type metrics for anomaly detection.

Small functions on plain arrays so that evaluation, benchmarks and the dashboard
compute every number the same way. Ranking metrics come from scikit-learn,
connected components from OpenCV. Undefined values (e.g. AUROC with one class)
are ``None`` so the results stay JSON-serialisable.

Pixel metrics are computed at a reduced resolution (:data:`PIXEL_METRIC_SIZE`,
maps resized with area averaging, masks with nearest neighbour) to bound memory
and time: a test set of 100 images at 1024 px would otherwise be 10^8 pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

#: Side length used for pixel-level metrics (maps and masks are resized to it).
PIXEL_METRIC_SIZE = 128
#: Upper false-positive-rate limit of AUPRO (the MVTec AD convention).
AUPRO_FPR_LIMIT = 0.3


def _two_classes(labels: np.ndarray) -> bool:
    return labels.size > 0 and labels.min() != labels.max()


def auroc(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float | None:
    """Area under the ROC curve (1 = defective is the positive class); None with one class."""
    y = np.asarray(labels).astype(int).ravel()
    if not _two_classes(y):
        return None
    return float(roc_auc_score(y, np.asarray(scores, dtype=np.float64).ravel()))


def auroc_confidence_interval(
    labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray, level: float = 0.95
) -> list[float] | None:
    """DeLong's confidence interval ``[low, high]`` of the AUROC; None with one class.

    Test sets are small (tens of defects), so an AUROC of 0.93 may well be 0.85 or
    0.99 on the next batch; the interval says how far a single number can be
    trusted. DeLong et al. (1988) via placement values, O(n log n): each positive's
    share of negatives scored below it (ties count half) and vice versa; the AUROC's
    variance is ``var(pos placements) / n_pos + var(neg placements) / n_neg``. The
    normal interval is clipped to [0, 1]; it collapses to a point when the classes
    are perfectly separated.
    """
    from scipy.stats import norm

    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    y = np.asarray(labels).astype(int).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.size} vs {s.size}")
    if not _two_classes(y):
        return None
    pos, neg = np.sort(s[y == 1]), np.sort(s[y == 0])
    # placement of each positive among the negatives (and of each negative among the positives)
    v_pos = (np.searchsorted(neg, pos, "left") + np.searchsorted(neg, pos, "right")) / (2.0 * neg.size)
    v_neg = 1.0 - (np.searchsorted(pos, neg, "left") + np.searchsorted(pos, neg, "right")) / (2.0 * pos.size)
    auc = float(v_pos.mean())
    var_pos = v_pos.var(ddof=1) if pos.size > 1 else 0.0
    var_neg = v_neg.var(ddof=1) if neg.size > 1 else 0.0
    var = var_pos / pos.size + var_neg / neg.size
    half = float(norm.ppf(0.5 + level / 2.0)) * float(np.sqrt(var))
    return [max(0.0, auc - half), min(1.0, auc + half)]


def average_precision(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float | None:
    """Average precision (area under the precision-recall curve); None without positives."""
    y = np.asarray(labels).astype(int).ravel()
    if y.sum() == 0:
        return None
    return float(average_precision_score(y, np.asarray(scores, dtype=np.float64).ravel()))


def threshold_metrics(labels: Sequence[int] | np.ndarray, decisions: Sequence[bool] | np.ndarray) -> dict[str, Any]:
    """Accuracy, precision, recall, F1, false-reject rate and the confusion matrix of decisions.

    ``confusion_matrix`` is ``[[TN, FP], [FN, TP]]`` (rows = truth good/defective,
    columns = decided OK/NG). The false-reject rate is rejected good / all good.
    """
    y = np.asarray(labels).astype(bool).ravel()
    d = np.asarray(decisions).astype(bool).ravel()
    if y.shape != d.shape:
        raise ValueError(f"labels and decisions differ in length: {y.size} vs {d.size}")
    tp = int(np.sum(y & d))
    fp = int(np.sum(~y & d))
    fn = int(np.sum(y & ~d))
    tn = int(np.sum(~y & ~d))
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    if precision is None or recall is None:
        f1 = None
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {
        "accuracy": (tp + tn) / y.size if y.size else None,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "false_reject_rate": fp / (fp + tn) if fp + tn else None,
        "confusion_matrix": [[tn, fp], [fn, tp]],
    }


def image_metrics(
    labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray, threshold: float
) -> dict[str, Any]:
    """All image-level metrics; NG when ``score > threshold``."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    out = {
        "image_auroc": auroc(labels, s),
        "image_auroc_ci95": auroc_confidence_interval(labels, s),
        "average_precision": average_precision(labels, s),
    }
    out.update(threshold_metrics(labels, s > threshold))
    return out


def per_defect_type(
    defect_types: Sequence[str], scores: Sequence[float] | np.ndarray, threshold: float, good: str = "good"
) -> dict[str, dict[str, Any]]:
    """Per defect type: detection rate at the threshold and AUROC of that type vs the good images."""
    types = np.asarray(defect_types, dtype=object)
    s = np.asarray(scores, dtype=np.float64).ravel()
    is_good = types == good
    out: dict[str, dict[str, Any]] = {}
    for dt in sorted(set(types.tolist()) - {good}):
        sel = types == dt
        both = sel | is_good
        out[dt] = {
            "detection_rate": float(np.mean(s[sel] > threshold)),
            "auroc": auroc(sel[both].astype(int), s[both]),
            "auroc_ci95": auroc_confidence_interval(sel[both].astype(int), s[both]),
            "count": int(sel.sum()),
        }
    return out


# ---------------------------------------------------------------- pixel level


def resize_for_metrics(
    maps: Sequence[np.ndarray], masks: Sequence[np.ndarray | None], size: int | None = PIXEL_METRIC_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Stack maps and masks (None = all good) into ``(N, size, size)`` arrays for pixel metrics."""
    if len(maps) != len(masks):
        raise ValueError(f"{len(maps)} maps but {len(masks)} masks")
    out_maps, out_masks = [], []
    for m, k in zip(maps, masks):
        m = np.asarray(m, dtype=np.float32)
        k = np.zeros(m.shape, dtype=bool) if k is None else np.asarray(k, dtype=bool)
        if size is not None and m.shape != (size, size):
            interp = cv2.INTER_AREA if min(m.shape) > size else cv2.INTER_LINEAR
            m = cv2.resize(m, (size, size), interpolation=interp)
        if k.shape != m.shape:
            k = cv2.resize(k.astype(np.uint8), (m.shape[1], m.shape[0]), interpolation=cv2.INTER_NEAREST) > 0
        out_maps.append(m)
        out_masks.append(k)
    if len({m.shape for m in out_maps}) > 1:
        raise ValueError("maps differ in size; pass size= to resize them")
    return np.stack(out_maps), np.stack(out_masks)


def pixel_auroc(masks: np.ndarray, maps: np.ndarray) -> float | None:
    """AUROC over all pixels of all images (defect pixels positive)."""
    return auroc(np.asarray(masks).ravel(), np.asarray(maps).ravel())


def _region_labels(masks: np.ndarray) -> tuple[np.ndarray, int]:
    """Globally numbered connected defect regions (8-connectivity); 0 = not a defect pixel."""
    labels = np.zeros(masks.shape, dtype=np.int32)
    offset = 0
    for i, m in enumerate(masks):
        if not m.any():
            continue
        n, lab = cv2.connectedComponents(m.astype(np.uint8), connectivity=8)
        labels[i] = np.where(lab > 0, lab + offset, 0)
        offset += n - 1
    return labels, offset


def pro_curve(
    masks: np.ndarray, maps: np.ndarray, fpr_limit: float = AUPRO_FPR_LIMIT, num_thresholds: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, PRO) pairs at thresholds spanning FPR in [0, fpr_limit], FPR ascending.

    PRO = mean over connected defect regions of the fraction of the region above
    the threshold; FPR = fraction of good pixels above it. Vectorised over
    thresholds: every pixel is bucketed once, then per-region counts above each
    threshold are reverse cumulative sums of a (regions x thresholds) histogram.
    """
    masks = np.asarray(masks, dtype=bool)
    maps = np.asarray(maps, dtype=np.float64)
    regions, n_regions = _region_labels(masks)
    normal = maps[~masks]
    if n_regions == 0 or normal.size == 0:
        raise ValueError("PRO needs at least one defect region and one good pixel")
    # Thresholds at good-pixel quantiles so FPR in [0, fpr_limit] is evenly resolved.
    levels = np.linspace(1.0 - fpr_limit, 1.0, num_thresholds)
    thresholds = np.unique(np.quantile(normal, levels))
    thresholds = np.append(thresholds, np.inf)  # FPR = PRO = 0 at +inf
    # bucket b = number of thresholds <= value; value > thresholds[j] <=> bucket > j (side="left").
    n_t = thresholds.size

    def above_counts(values: np.ndarray, groups: np.ndarray | None, n_groups: int) -> np.ndarray:
        b = np.searchsorted(thresholds, values, side="left")  # value > thresholds[j] iff b > j
        idx = b if groups is None else groups * (n_t + 1) + b
        hist = np.bincount(idx, minlength=n_groups * (n_t + 1)).reshape(n_groups, n_t + 1)
        # count with bucket > j, for j = 0..n_t-1
        rev = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1]
        return rev[:, 1:]

    fpr = above_counts(normal, None, 1)[0] / normal.size
    region_ids = regions[masks] - 1
    region_sizes = np.bincount(region_ids, minlength=n_regions)
    per_region = above_counts(maps[masks], region_ids, n_regions) / region_sizes[:, None]
    pro = per_region.mean(axis=0)
    # Descending thresholds = ascending FPR (and PRO), both monotone.
    return fpr[::-1], pro[::-1]


def aupro(
    masks: np.ndarray, maps: np.ndarray, fpr_limit: float = AUPRO_FPR_LIMIT, num_thresholds: int = 200
) -> float | None:
    """Normalised area under the PRO curve up to ``fpr_limit`` (1.0 = perfect); None without defects."""
    masks = np.asarray(masks, dtype=bool)
    if not masks.any() or masks.all():
        return None
    fpr, pro = pro_curve(masks, maps, fpr_limit, num_thresholds)
    # Close the curve exactly at fpr_limit by interpolation, then integrate with trapezoids.
    keep = fpr <= fpr_limit
    f, p = fpr[keep], pro[keep]
    if f[-1] < fpr_limit:
        p_end = float(np.interp(fpr_limit, fpr, pro))
        f, p = np.append(f, fpr_limit), np.append(p, p_end)
    if f[0] > 0:
        f, p = np.insert(f, 0, 0.0), np.insert(p, 0, p[0])
    return float(np.trapezoid(p, f) / fpr_limit)


def iou_dice(masks: np.ndarray, maps: np.ndarray, threshold: float) -> dict[str, float | None]:
    """IoU and Dice of ``maps > threshold`` against the masks, pooled over all pixels."""
    m = np.asarray(masks, dtype=bool)
    pred = np.asarray(maps) > threshold
    inter = int(np.sum(m & pred))
    union = int(np.sum(m | pred))
    total = int(m.sum()) + int(pred.sum())
    return {
        "iou": inter / union if union else None,
        "dice": 2 * inter / total if total else None,
    }


def pixel_metrics(
    masks: np.ndarray, maps: np.ndarray, threshold: float, fpr_limit: float = AUPRO_FPR_LIMIT
) -> dict[str, float | None]:
    """Pixel AUROC, AUPRO, IoU and Dice on stacked ``(N, H, W)`` masks and maps."""
    out: dict[str, float | None] = {"pixel_auroc": pixel_auroc(masks, maps), "aupro": aupro(masks, maps, fpr_limit)}
    out.update(iou_dice(masks, maps, threshold))
    return out
