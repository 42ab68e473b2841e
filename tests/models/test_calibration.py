"""Calibration: hold-out split, false-reject target, normalisation, maps, persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qc_models.calibration import (
    CalibrationError,
    Calibrator,
    conservative_threshold,
    f1_optimal_threshold,
    order_statistic,
    split_calibration,
)
from qc_models.calibration_outliers import calibration_outliers


def test_split_is_deterministic_disjoint_and_at_least_five() -> None:
    fit, cal = split_calibration(100, seed=3)
    fit2, cal2 = split_calibration(100, seed=3)
    assert np.array_equal(cal, cal2) and np.array_equal(fit, fit2)
    assert len(cal) == 15 and len(fit) == 85
    assert not set(fit) & set(cal) and set(fit) | set(cal) == set(range(100))
    _, cal_small = split_calibration(12, seed=0)
    assert len(cal_small) == 5
    assert not np.array_equal(split_calibration(100, seed=4)[1], cal)


def test_split_refuses_too_few_images() -> None:
    with pytest.raises(CalibrationError, match="at least 6 good training images"):
        split_calibration(5)


@pytest.mark.parametrize("n", [10, 150, 400])
def test_false_reject_rate_on_calibration_set_meets_target(n: int) -> None:
    scores = np.random.default_rng(n).gamma(2.0, 1.0, size=n)
    cal = Calibrator(0.01).fit(scores)
    assert np.mean(cal.decide(scores)) <= 0.01
    assert cal.stats_["calibration_false_reject_rate"] <= 0.01


@pytest.mark.parametrize("draw", ["normal", "gamma", "lognormal"])
def test_false_reject_rate_on_fresh_good_scores_stays_low(draw: str) -> None:
    # 15 calibration images, as with 100 training images; average over 100 repetitions.
    frr = []
    for rep in range(100):
        rng = np.random.default_rng(rep)
        sample = {
            "normal": lambda k: rng.normal(5.0, 1.0, k),
            "gamma": lambda k: rng.gamma(2.0, 1.0, k),
            "lognormal": lambda k: rng.lognormal(0.0, 0.6, k),
        }[draw]
        cal = Calibrator(0.01).fit(sample(15))
        frr.append(np.mean(cal.decide(sample(2000))))
    assert np.mean(frr) <= 0.02
    assert np.median(frr) <= 0.01


@pytest.mark.parametrize("draw", ["normal", "gamma", "lognormal"])
def test_an_image_scoring_like_a_defect_is_flagged_and_good_tails_rarely_are(draw: str) -> None:
    flagged_clean = 0
    for rep in range(100):
        rng = np.random.default_rng(rep)
        scores = {"normal": lambda: rng.normal(5.0, 1.0, 18), "gamma": lambda: rng.gamma(2.0, 1.0, 18),
                  "lognormal": lambda: rng.lognormal(0.0, 0.6, 18)}[draw]()
        flagged_clean += bool(calibration_outliers(scores, 0.01))
        planted, rest = scores.copy(), np.delete(scores, 7)
        planted[7] = rest.max() + 5.0 * (rest.max() - np.median(rest))  # far beyond every good score
        found = calibration_outliers(planted, 0.01)
        assert [f["index"] for f in found] == [7]
        assert found[0]["threshold_without"] == conservative_threshold(np.delete(planted, 7), 0.01)
    assert flagged_clean <= 5  # of 100 clean calibration sets of 18


def test_bounded_scores_must_reach_half_the_bound_to_be_flagged() -> None:
    """A U-Net whose good images score ~1e-6 is not 'scoring like a defect' at 7.5e-5."""
    rng = np.random.default_rng(0)
    tiny = rng.lognormal(np.log(4.5e-6), 0.5, 18)
    tiny[3] = 7.5e-5
    assert [f["index"] for f in calibration_outliers(tiny, 0.01)] == [3]  # unbounded: far out
    assert calibration_outliers(tiny, 0.01, upper_bound=1.0) == []  # as a probability: nowhere near a defect
    fires = rng.uniform(0.001, 0.05, 18)
    fires[5] = 0.98  # the U-Net segments a defect in a 'good' image
    assert [f["index"] for f in calibration_outliers(fires, 0.01, upper_bound=1.0)] == [5]
    # The demo bottle U-Net: one image at the bound, one at 0.68. t + (t - median) from the others lies beyond 1,
    # so only a margin capped at half the way to the bound can name the image that stops the model rejecting.
    bottle = np.r_[np.geomspace(7e-4, 0.1, 16), 0.68, 0.99999988]
    assert [f["index"] for f in calibration_outliers(bottle, 0.01, upper_bound=1.0)] == [17]
    assert calibration_outliers(np.r_[np.geomspace(0.01, 0.5, 15), 0.72, 0.87, 0.93], 0.01, upper_bound=1.0) == []


def test_heavy_tail_is_extrapolated_beyond_the_maximum() -> None:
    # Real U-Net calibration scores: most good images near 0.04, two of 18 fire strongly.
    s = np.r_[np.linspace(0.032, 0.075, 16), 0.47, 0.83]
    t = conservative_threshold(s, 0.01)
    top = np.sort(s)[-5:].mean() - np.sort(s)[-6]  # mean excess of the top quarter (k = 5)
    assert t == pytest.approx(0.83 + top * np.log(1 / (0.01 * 19)))
    assert t > 0.88  # the test-set good images at 0.86 and 0.88 are accepted


def test_scores_spanning_decades_do_not_explode_the_threshold() -> None:
    # U-Net probabilities of good images from 0.0007 to 0.9: a log-normal fit alone would say ~900.
    s = np.r_[np.geomspace(7e-4, 0.03, 15), 0.2, 0.5, 0.9]
    t = conservative_threshold(s, 0.01)
    assert 0.9 < t <= 0.9 + np.log(1 / (0.01 * 19)) * (0.9 - np.median(s)) + 1e-12


def test_bounded_scores_never_get_a_threshold_they_cannot_reach() -> None:
    """U-Net probabilities: one good image at 0.9 must not push the threshold past 1.0 (a model that passes all)."""
    s = np.r_[np.geomspace(7e-4, 0.03, 17), 0.9]
    assert conservative_threshold(s, 0.01) > 1.0  # unbounded rule: nothing could ever be rejected
    assert conservative_threshold(s, 0.01, upper_bound=1.0) == 0.9  # k > n: the sample maximum
    maps = [np.full((4, 4), v, np.float32) for v in s]
    cal = Calibrator(0.01, score_upper_bound=1.0).fit(s, maps)
    assert cal.threshold == 0.9 and cal.pixel_threshold_ == pytest.approx(0.9)
    assert cal.stats_["beyond_score_range"] is True
    assert cal.decide([0.95, 0.5]).tolist() == [True, False]
    back = Calibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert back.score_upper_bound == 1.0 and back.threshold == 0.9


def test_bound_changes_nothing_when_the_threshold_stays_inside_it() -> None:
    s = np.linspace(0.001, 0.003, 18)
    cal = Calibrator(0.01, score_upper_bound=1.0).fit(s)
    assert cal.threshold == conservative_threshold(s, 0.01) < 1.0
    assert cal.stats_["beyond_score_range"] is False
    assert "beyond_score_range" not in Calibrator(0.01).fit(s).stats_


def test_a_threshold_above_every_known_anomaly_falls_back_to_the_order_statistic() -> None:
    """Wood's ensemble: two of 18 good images far out in the tail pushed the bound past all 90 anomalies."""
    s = np.r_[np.linspace(-0.3, 1.5, 16), 19.0, 19.3]
    unbounded = conservative_threshold(s, 0.01)
    assert unbounded > 25.0  # the tail extrapolation
    cal = Calibrator(0.01).fit(s, anomaly_max=22.0)
    assert cal.threshold == 19.3  # k > n: the sample maximum
    assert cal.stats_["beyond_score_range"] is True and cal.stats_["anomaly_max"] == 22.0
    note = cal.fallback_note()
    assert note is not None and "above every synthetic anomaly" in note and "22" in note and "5.3 %" in note
    back = Calibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert back.threshold == 19.3 and back.stats_["anomaly_max"] == 22.0 and back.fallback_note() == note
    # Anomalies that reach beyond the bound change nothing; the lower of two ceilings applies.
    far = Calibrator(0.01).fit(s, anomaly_max=1000.0)
    assert far.threshold == unbounded and far.stats_["beyond_score_range"] is False and far.fallback_note() is None
    p = np.r_[np.geomspace(7e-4, 0.03, 17), 0.9]
    assert Calibrator(0.01, score_upper_bound=1.0).fit(p, anomaly_max=5.0).threshold == 0.9
    assert "highest score this model can give" in Calibrator(0.01, score_upper_bound=1.0).fit(p).fallback_note()
    # A held-out image at the bound itself (the demo bottle U-Net's 0.99999988): the model can reject nothing.
    at_bound = Calibrator(0.01, score_upper_bound=1.0).fit(np.r_[np.geomspace(7e-4, 0.1, 16), 0.68, 0.99999988])
    assert at_bound.threshold == pytest.approx(0.99999988)
    assert "rejects almost nothing" in at_bound.fallback_note() and "expect about" not in at_bound.fallback_note()
    with pytest.raises(CalibrationError, match="anomaly_max"):
        Calibrator(0.01).fit(s, anomaly_max=float("inf"))


def test_a_threshold_cap_lowers_the_threshold_but_not_below_the_order_statistic() -> None:
    s = np.r_[np.linspace(-0.3, 1.5, 16), 19.0, 19.3]
    free = Calibrator(0.01).fit(s)
    cal = Calibrator(0.01).fit(s, threshold_cap=21.0)
    assert free.threshold > 25.0 and cal.threshold == 21.0
    assert cal.stats_["threshold_cap"] == 21.0 and cal.stats_["uncapped_threshold"] == free.threshold
    assert cal.stats_["calibration_false_reject_rate"] == 0.0
    note = cal.fallback_note()
    assert note is not None and "21" in note and "may exceed 1 %" in note
    back = Calibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert back.threshold == 21.0 and back.fallback_note() == note
    assert Calibrator(0.01).fit(s, threshold_cap=5.0).threshold == 19.3  # the sample maximum (k > n)
    assert Calibrator(0.01).fit(s, threshold_cap=100.0).fallback_note() is None
    # The order statistic itself when k <= n: with 300 scores and a 1 % target, the 298th.
    many = np.arange(300, dtype=float)
    assert Calibrator(0.01).fit(many, threshold_cap=0.0).threshold == order_statistic(many, 0.01) == 297.0
    with pytest.raises(CalibrationError, match="threshold_cap"):
        Calibrator(0.01).fit(s, threshold_cap=float("nan"))


def test_standardise_uses_the_calibration_spread() -> None:
    cal = Calibrator().fit(np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert cal.standardise(3.0) == 0.0
    assert cal.standardise(3.0 + cal.stats_["spread"]) == pytest.approx(1.0)


def test_threshold_is_shift_and_scale_equivariant() -> None:
    s = np.random.default_rng(0).normal(0.0, 1.0, 20)
    t = conservative_threshold(s, 0.01)
    assert conservative_threshold(3.0 * s - 7.0, 0.01) == pytest.approx(3.0 * t - 7.0)


def test_normalise_is_half_at_threshold_monotone_and_in_unit_interval() -> None:
    scores = np.random.default_rng(1).normal(10.0, 2.0, 30)
    cal = Calibrator(0.01).fit(scores)
    assert cal.normalise(cal.threshold) == 0.5
    assert cal.normalise(np.median(scores)) == pytest.approx(0.1)
    grid = np.linspace(-100.0, 200.0, 2001)
    out = cal.normalise(grid)
    assert np.all(np.diff(out) >= 0) and np.all(out > 0) and np.all(out < 1)
    assert np.array_equal(cal.decide(grid), out > 0.5)


def test_maps_are_normalised_with_a_pixel_threshold() -> None:
    rng = np.random.default_rng(2)
    maps = [rng.gamma(2.0, 1.0, size=(16, 16)).astype(np.float32) for _ in range(8)]
    cal = Calibrator(0.01).fit([m.max() for m in maps], maps)
    assert cal.has_pixel_calibration
    assert cal.pixel_threshold_ >= max(m.max() for m in maps)
    m = np.full((5, 7), cal.pixel_threshold_, dtype=np.float32)
    out = cal.normalise_map(m)
    assert out.dtype == np.float32 and out.shape == (5, 7)
    assert np.allclose(out, 0.5, atol=1e-6)
    assert all(np.all(cal.normalise_map(g) < 0.5) for g in maps)


def test_round_trip_through_json_keeps_behaviour() -> None:
    rng = np.random.default_rng(3)
    maps = [rng.random((8, 8)).astype(np.float32) for _ in range(6)]
    cal = Calibrator(0.02).fit(rng.random(6), maps)
    cal.fit_validation([0.1, 0.2, 0.9, 0.8], [0, 0, 1, 1])
    back = Calibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
    x = np.linspace(-1, 2, 50)
    assert np.array_equal(back.normalise(x), cal.normalise(x))
    assert np.array_equal(back.normalise_map(maps[0]), cal.normalise_map(maps[0]))
    assert back.validation_ == cal.validation_


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda d: d.update(threshold="high"), "threshold"),
        (lambda d: d.pop("scale"), "scale"),
        (lambda d: d.update(scale=-1.0), "scale"),
        (lambda d: d.update(threshold_source="magic"), "threshold source"),
    ],
)
def test_from_dict_rejects_bad_fields(mutate, field: str) -> None:
    d = Calibrator().fit(np.arange(10.0)).to_dict()
    mutate(d)
    with pytest.raises(CalibrationError, match=field):
        Calibrator.from_dict(d)


def test_f1_optimal_threshold_on_validation() -> None:
    res = f1_optimal_threshold(np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.25]), np.array([0, 0, 0, 1, 1, 1]))
    # Cutting below 0.25 catches all three defects with one false alarm (F1 = 6/7), better than
    # cutting below 0.6 (F1 = 0.8); the threshold is the midpoint to the next lower score (0.2).
    assert res["threshold"] == pytest.approx(0.225) and res["f1"] == pytest.approx(6 / 7)
    cal = Calibrator().fit(np.arange(10.0))
    cal.fit_validation([0.1, 0.2, 0.3, 0.6, 0.7, 0.25], [0, 0, 0, 1, 1, 1])
    cal.use_threshold("validation_f1")
    assert cal.threshold == pytest.approx(0.225) and cal.normalise(cal.threshold) == 0.5
    assert cal.decide([0.25, 0.2]).tolist() == [True, False]
    with pytest.raises(CalibrationError, match="both good and defective"):
        f1_optimal_threshold(np.array([0.1, 0.2]), np.array([0, 0]))


def test_unfitted_and_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(CalibrationError, match="not fitted"):
        Calibrator().normalise([1.0])
    with pytest.raises(CalibrationError, match="finite"):
        Calibrator().fit([1.0, np.nan])
    with pytest.raises(CalibrationError, match="target_false_reject_rate"):
        Calibrator(0.0)
