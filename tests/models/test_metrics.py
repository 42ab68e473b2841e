"""Metrics checked against values computed by hand on tiny arrays."""

from __future__ import annotations

import numpy as np
import pytest

from qc_models import metrics as M


def test_auroc_and_average_precision_by_hand() -> None:
    y, s = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    # Pairs (pos > neg): 0.35>0.1, 0.8>0.1, 0.8>0.4 -> 3 of 4.
    assert M.auroc(y, s) == pytest.approx(0.75)
    # Ranked: 1 (P=1, R=.5), 0, 1 (P=2/3, R=1) -> AP = .5*1 + .5*2/3.
    assert M.average_precision(y, s) == pytest.approx(0.5 + 1 / 3)
    assert M.auroc([0, 0], [0.1, 0.2]) is None
    assert M.average_precision([0, 0], [0.1, 0.2]) is None


def test_threshold_metrics_by_hand() -> None:
    out = M.threshold_metrics([0, 0, 1, 1, 1], [0, 1, 1, 1, 0])
    assert out["confusion_matrix"] == [[1, 1], [1, 2]]
    assert out["precision"] == pytest.approx(2 / 3)
    assert out["recall"] == pytest.approx(2 / 3)
    assert out["f1"] == pytest.approx(2 / 3)
    assert out["accuracy"] == pytest.approx(3 / 5)
    assert out["false_reject_rate"] == pytest.approx(1 / 2)
    none = M.threshold_metrics([0, 0], [0, 0])
    assert none["precision"] is None and none["false_reject_rate"] == 0.0


def test_image_metrics_use_strict_threshold() -> None:
    out = M.image_metrics([0, 1], [0.5, 0.7], threshold=0.5)
    assert out["confusion_matrix"] == [[1, 0], [0, 1]] and out["image_auroc"] == 1.0


def test_per_defect_type_by_hand() -> None:
    types = ["good", "good", "a", "a", "b"]
    out = M.per_defect_type(types, [0.1, 0.3, 0.5, 0.2, 0.9], threshold=0.4)
    ci_a = out["a"].pop("auroc_ci95")
    assert out["a"] == {"detection_rate": 0.5, "auroc": 0.75, "count": 2}
    assert ci_a == pytest.approx([0.75 - 1.959964 * 0.125**0.5, 1.0], abs=1e-5)  # as in the DeLong test below
    assert out["b"].pop("auroc_ci95") == [1.0, 1.0]  # one defect scored above every good image
    assert out["b"] == {"detection_rate": 1.0, "auroc": 1.0, "count": 1}
    assert set(out) == {"a", "b"}


def test_auroc_confidence_interval_by_hand() -> None:
    # Placements: positives 0.35 -> 1/2 of negatives below, 0.8 -> 2/2; negatives 0.1 -> 1, 0.4 -> 1/2.
    # var = var([.5, 1]) / 2 + var([1, .5]) / 2 = .0625 + .0625 (sample variances), so sd = sqrt(.125).
    ci = M.auroc_confidence_interval([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert ci == pytest.approx([0.75 - 1.959964 * 0.125**0.5, 1.0], abs=1e-5)
    assert M.auroc_confidence_interval([0, 0], [0.1, 0.2]) is None
    assert M.auroc_confidence_interval([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8]) == [1.0, 1.0]
    with pytest.raises(ValueError, match="differ in length"):
        M.auroc_confidence_interval([0, 1], [0.5])


def test_auroc_confidence_interval_matches_pairwise_delong_with_ties() -> None:
    rng = np.random.default_rng(3)
    y = np.r_[np.zeros(30, int), np.ones(45, int)]
    s = np.round(rng.normal(size=75) + 0.8 * y, 1)  # rounding makes ties
    pos, neg = s[y == 1], s[y == 0]
    pair = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    var = pair.mean(1).var(ddof=1) / pos.size + pair.mean(0).var(ddof=1) / neg.size
    auc = M.auroc(y, s)
    lo, hi = M.auroc_confidence_interval(y, s)
    assert (lo + hi) / 2 == pytest.approx(auc)
    assert (hi - lo) / 2 == pytest.approx(1.959964 * var**0.5, rel=1e-5)
    lo90, hi90 = M.auroc_confidence_interval(y, s, level=0.90)
    assert lo < lo90 < auc < hi90 < hi


def test_iou_and_dice_by_hand() -> None:
    mask = np.zeros((1, 4, 4), bool)
    mask[0, 0, :4] = True
    maps = np.zeros((1, 4, 4), np.float32)
    maps[0, 0, 2:] = 1.0
    maps[0, 1, :2] = 1.0
    out = M.iou_dice(mask, maps, 0.5)
    assert out["iou"] == pytest.approx(2 / 6)
    assert out["dice"] == pytest.approx(4 / 8)


def test_pixel_auroc_perfect_and_inverted() -> None:
    mask = np.zeros((2, 4, 4), bool)
    mask[0, 1:3, 1:3] = True
    maps = mask.astype(np.float32)
    assert M.pixel_auroc(mask, maps) == 1.0
    assert M.pixel_auroc(mask, 1.0 - maps) == 0.0


def _normal_and_regions(values_a: list[float], values_b: list[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """100 good pixels scored 0..99 in image 0; defect regions with given scores in image 1 (and 2)."""
    imgs = [np.arange(100, dtype=np.float32).reshape(10, 10)]
    masks = [np.zeros((10, 10), bool)]
    for vals in (values_a, values_b):
        if vals is None:
            continue
        m = np.zeros((10, 10), bool)
        m[0, : len(vals)] = True
        img = np.full((10, 10), -1.0, np.float32)  # good pixels of defective images: lowest scores
        img[0, : len(vals)] = vals
        imgs.append(img)
        masks.append(m)
    return np.stack(masks), np.stack(imgs)


def test_aupro_hand_made_examples() -> None:
    masks, maps = _normal_and_regions([200.0, 200.0])
    assert M.aupro(masks, maps) == pytest.approx(1.0)  # region above every good pixel
    masks, maps = _normal_and_regions([-5.0, -5.0])
    assert M.aupro(masks, maps) == pytest.approx(0.0)  # region below every good pixel
    masks, maps = _normal_and_regions([200.0, 200.0], [-5.0, -5.0])
    assert M.aupro(masks, maps) == pytest.approx(0.5, abs=1e-6)  # one region found, one missed
    # Half of the region (200) is found at any FPR; the other half (79.5) only once the
    # threshold drops below it, i.e. from FPR = share of good pixels above 79.5 onwards.
    masks, maps = _normal_and_regions([200.0, 79.5])
    n_good = int((~masks).sum())
    fpr_step = int((maps[~masks] > 79.5).sum()) / n_good
    expected = (0.5 * fpr_step + 1.0 * (0.3 - fpr_step)) / 0.3
    assert M.aupro(masks, maps, num_thresholds=2000) == pytest.approx(expected, abs=0.005)
    assert M.aupro(np.zeros((1, 4, 4), bool), np.zeros((1, 4, 4))) is None


def _pro_reference(masks: np.ndarray, maps: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Straightforward loop over thresholds and regions (slow, obviously correct)."""
    import cv2

    normal = maps[~masks]
    regions = []
    for m, a in zip(masks, maps):
        n, lab = cv2.connectedComponents(m.astype(np.uint8), connectivity=8)
        regions += [a[lab == k] for k in range(1, n)]
    fpr = np.array([np.mean(normal > t) for t in thresholds])
    pro = np.array([np.mean([np.mean(r > t) for r in regions]) for t in thresholds])
    return fpr[::-1], pro[::-1]


def test_pro_curve_matches_a_loop_reference() -> None:
    rng = np.random.default_rng(0)
    masks = np.zeros((3, 16, 16), bool)
    masks[0, 2:6, 2:6] = True
    masks[0, 10:12, 9:15] = True
    masks[1, 5:9, 5:12] = True
    maps = rng.random((3, 16, 16)) + 0.6 * masks
    fpr, pro = M.pro_curve(masks, maps, num_thresholds=50)
    normal = maps[~masks]
    thresholds = np.append(np.unique(np.quantile(normal, np.linspace(0.7, 1.0, 50))), np.inf)
    ref_fpr, ref_pro = _pro_reference(masks, maps, thresholds)
    assert np.allclose(fpr, ref_fpr) and np.allclose(pro, ref_pro)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(pro) >= 0)


def test_resize_for_metrics_shapes_and_nearest_masks() -> None:
    m = np.zeros((64, 64), np.float32)
    m[:32] = 1.0
    k = np.zeros((64, 64), bool)
    k[:32] = True
    maps, masks = M.resize_for_metrics([m, m], [k, None], size=16)
    assert maps.shape == (2, 16, 16) and masks.dtype == bool
    assert masks[0, :8].all() and not masks[0, 8:].any() and not masks[1].any()
    assert maps[0, :8].min() == 1.0
