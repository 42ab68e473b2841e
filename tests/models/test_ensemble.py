"""Ensemble: separation-based weights, a weak member cannot drag a strong one down, JSON round trip."""

from __future__ import annotations

import numpy as np
import pytest

from qc_models.calibration import Calibrator, order_statistic
from qc_models.detectors.ensemble import (
    Ensemble,
    EnsembleError,
    THRESHOLD_Z_CAP,
    fit_ensemble,
    member_scales,
    unanimous_score,
    unsettled_note,
    weight_spread,
    weights_from_auroc,
    working_copies,
)
from qc_models.metrics import auroc
from tests.models.standin import MeanDistance, defective_image, good_image, standin_class


class Member:
    def __init__(self, detector, calibrator: Calibrator) -> None:
        self.detector, self.calibrator = detector, calibrator


def _member(noise: float, rng: np.random.Generator) -> Member:
    det = standin_class("m", noise=noise)(image_size=32).fit([good_image(rng) for _ in range(20)])
    pred = det.predict([good_image(rng) for _ in range(8)])
    return Member(det, Calibrator().fit(pred.image_scores, pred.anomaly_maps))


def test_weights_favour_separation_and_ignore_chance() -> None:
    w = weights_from_auroc({"strong": 1.0, "weak": 0.75, "chance": 0.5, "worse": 0.3}, power=4)
    assert w["strong"] == pytest.approx(16 / 17) and w["weak"] == pytest.approx(1 / 17)
    assert weights_from_auroc({"strong": 1.0, "weak": 0.75})["weak"] == pytest.approx(1 / 257)  # default power 8
    assert w["chance"] == 0.0 and w["worse"] == 0.0
    assert weights_from_auroc({"a": 0.5, "b": None}) == {"a": 0.5, "b": 0.5}


def test_weak_member_does_not_drag_the_strong_one_down() -> None:
    rng = np.random.default_rng(0)
    members = {"strong": _member(0.0, rng), "weak": _member(1000.0, rng)}
    cal_images = [good_image(rng) for _ in range(10)]
    ens, cal = fit_ensemble(members, cal_images, {"strong": "v1", "weak": "v2"}, seed=0)
    assert ens.weights["strong"] > 0.8 > ens.weights["weak"]
    assert ens.member_versions == {"strong": "v1", "weak": "v2"}
    # Held-out test images: the ensemble ranks them (almost) as well as the best member.
    test = [good_image(rng) for _ in range(30)] + [defective_image(rng)[0] for _ in range(30)]
    y = np.r_[np.zeros(30), np.ones(30)]
    z = {k: m.calibrator.standardise(m.detector.predict(test).image_scores) for k, m in members.items()}
    best = max(auroc(y, s) for s in z.values())
    assert auroc(y, ens.combine_scores(z)) >= best - 0.01
    # The ensemble's own calibration: 0.5 at its threshold, good calibration images accepted.
    assert cal.normalise(cal.threshold) == 0.5
    good_z = {k: m.calibrator.standardise(m.detector.predict(cal_images).image_scores) for k, m in members.items()}
    assert not cal.decide(ens.combine_scores(good_z)).any()
    # The threshold never passes every synthetic anomaly (unless the calibration maximum does).
    assert cal.stats_["anomaly_max"] > cal.stats_["max"]
    assert cal.threshold < cal.stats_["anomaly_max"]
    assert 0.0 < ens.details["synthetic_detection_rate"] <= 1.0
    # Nor above a part at every member's own threshold (unless the calibration maximum is).
    assert cal.stats_["threshold_cap"] == ens.details["unanimous_score"] == unanimous_score(ens, members)
    assert cal.threshold <= max(ens.details["unanimous_score"], cal.stats_["max"])
    # One member separates and the other does not: every resample agrees, and the ensemble says nothing.
    spread = ens.details["weight_spread"]
    assert spread["top_member"] == "strong" and spread["top_share"] == 1.0 and spread["interval"]["strong"][0] > 0.8
    assert ens.unsettled_note() is None


def test_combine_maps_and_json_round_trip() -> None:
    ens = Ensemble({"a": 3.0, "b": 1.0}, {"a": "v1"}, {"note": 1})
    assert ens.weights == {"a": 0.75, "b": 0.25}
    maps = {"a": [np.ones((4, 5), np.float32)], "b": [np.zeros((4, 5), np.float32)]}
    [m] = ens.combine_maps(maps)
    assert m.shape == (4, 5) and m.dtype == np.float32 and np.allclose(m, 0.75)
    back = Ensemble.from_dict(ens.to_dict())
    assert back.weights == ens.weights and back.member_versions == {"a": "v1"}
    with pytest.raises(EnsembleError, match="missing"):
        ens.combine_scores({"a": np.ones(2)})
    with pytest.raises(EnsembleError, match="weights"):
        Ensemble.from_dict({"weights": {"a": "x"}})
    with pytest.raises(EnsembleError, match="not all zero"):
        Ensemble({"a": 0.0})


def test_compressed_scores_let_the_weights_decide_and_old_artifacts_stay_linear() -> None:
    # Member "tiny" has a near-constant good score, so one odd good image reaches z = 500;
    # member "main" (3x the weight) ranks that image as plainly good and a defect as z = 12.
    z = {"main": np.array([0.0, 12.0]), "tiny": np.array([500.0, 2.0])}  # [odd good image, defect]
    ens = Ensemble({"main": 0.75, "tiny": 0.25})
    assert ens.score_transform == "knee_log"
    good, defect = ens.combine_scores(z)
    assert defect > good  # linearly: 0.25 * 500 = 125 > 0.75 * 12 + 0.25 * 2 = 9.5
    assert good == pytest.approx(0.25 * (20.0 + np.log1p(480.0)))
    assert defect == pytest.approx(9.5)  # below the knee nothing changes: decisions keep their margins
    assert ens.combine_scores({"main": np.array([-30.0]), "tiny": np.array([0.0])})[0] == pytest.approx(-0.75 * (20 + np.log1p(10.0)))
    assert Ensemble.from_dict(ens.to_dict()).score_transform == "knee_log"
    # An ensemble saved before the transform existed was calibrated on linear sums: keep them.
    legacy = {"weights": {"main": 0.75, "tiny": 0.25}}
    old = Ensemble.from_dict(legacy)
    assert old.score_transform == "linear"
    assert old.combine_scores(z)[0] == pytest.approx(125.0)
    logged = Ensemble.from_dict({**legacy, "score_transform": "signed_log1p"})
    assert logged.combine_scores(z)[1] == pytest.approx(0.75 * np.log1p(12.0) + 0.25 * np.log1p(2.0))
    with pytest.raises(EnsembleError, match="score_transform"):
        Ensemble.from_dict({**legacy, "score_transform": "cube"})
    with pytest.raises(EnsembleError, match="unknown score transform"):
        Ensemble({"a": 1.0}, score_transform="cube")


def test_a_member_with_one_far_out_good_image_keeps_its_defects_apart_from_it() -> None:
    # Wood, 2026-12-07: the U-Net scores 32 held-out good images ~0 (spread 0.01) and one 0.64, so its
    # threshold is ~60 spreads out; beyond the knee, a defect at 0.9 came out barely above that image.
    rng = np.random.default_rng(1)
    tail_scores = np.r_[np.abs(rng.normal(0.0, 0.01, 32)), 0.64]
    tail = Member(None, Calibrator(score_upper_bound=1.0).fit(tail_scores))
    plain = Member(None, Calibrator().fit(rng.normal(0.0, 1.0, 33)))
    scales = member_scales({"tail": tail, "plain": plain})
    z_threshold = float(tail.calibrator.standardise(tail.calibrator.threshold))
    assert z_threshold > 3 * THRESHOLD_Z_CAP  # the case this guards against
    assert scales["tail"] == pytest.approx(THRESHOLD_Z_CAP / z_threshold)
    assert scales["plain"] == 1.0  # its threshold is a few spreads out: left alone
    # [the far-out good image, a defect]: the tail member sees 0.64 and 0.9, the plain one z = 2 and 1.
    z = {"tail": tail.calibrator.standardise(np.array([0.64, 0.9])), "plain": np.array([2.0, 1.0])}
    weights = {"tail": 0.8, "plain": 0.2}
    unscaled_good, unscaled_defect = Ensemble(weights).combine_scores(z)
    good, defect = Ensemble(weights, member_scales=scales).combine_scores(z)
    assert unscaled_defect - unscaled_good < 0.5  # squeezed together by the knee
    assert defect - good > 2.0  # apart by the tail member's own units again
    assert good == pytest.approx(0.8 * THRESHOLD_Z_CAP * (0.64 - tail.calibrator.location_)
                                 / (tail.calibrator.threshold - tail.calibrator.location_) + 0.2 * 2.0)
    # Saved and loaded with the scales; an ensemble saved before them has none (every member 1).
    back = Ensemble.from_dict(Ensemble(weights, member_scales=scales).to_dict())
    assert back.member_scales == scales
    assert Ensemble.from_dict({"weights": weights, "score_transform": "knee_log"}).member_scales == {}
    with pytest.raises(EnsembleError, match="member scales"):
        Ensemble(weights, member_scales={"tail": 0.0})
    with pytest.raises(EnsembleError, match="member_scales"):
        Ensemble.from_dict({"weights": weights, "member_scales": {"tail": "x"}})


def test_a_saturating_member_cannot_lift_the_threshold_above_a_part_every_member_rejects() -> None:
    # Wood, 2026-12-07: a U-Net scoring 3 of 33 held-out good images 0.80-0.86 while defects stop at 1.0 left
    # the combined good tail extrapolated above most defects (recall .30 at AUROC .994).
    rng = np.random.default_rng(0)
    sat_good = np.r_[np.abs(rng.normal(0.0, 0.02, 30)), 0.80, 0.83, 0.86]
    plain_good = rng.normal(0.0, 1.0, 33)
    members = {"sat": Member(None, Calibrator(score_upper_bound=1.0).fit(sat_good)),
               "plain": Member(None, Calibrator().fit(plain_good))}
    ens = Ensemble({"sat": 0.85, "plain": 0.15}, member_scales=member_scales(members))

    def combined(sat: np.ndarray, plain: np.ndarray) -> np.ndarray:
        return ens.combine_scores({"sat": members["sat"].calibrator.standardise(sat),
                                   "plain": members["plain"].calibrator.standardise(plain)})

    good = combined(sat_good, plain_good)
    cap = unanimous_score(ens, members)
    assert cap == pytest.approx(float(combined(np.array([members["sat"].calibrator.threshold]),
                                               np.array([members["plain"].calibrator.threshold]))[0]))
    # A defect: the saturating member at 1.0, the other exactly at its own threshold.
    defect = float(combined(np.array([1.0]), np.array([members["plain"].calibrator.threshold]))[0])
    uncapped = Calibrator().fit(good, anomaly_max=100.0)
    capped = Calibrator().fit(good, anomaly_max=100.0, threshold_cap=cap)
    assert uncapped.threshold > defect  # the failure: every member rejects it, the ensemble does not
    assert capped.threshold == pytest.approx(cap) and capped.threshold < defect
    assert capped.stats_["uncapped_threshold"] == pytest.approx(uncapped.threshold)
    assert "every member scores at its own threshold" in capped.fallback_note()
    # Never below the order statistic: a cap under the good images' maximum stops there.
    low = Calibrator().fit(good, anomaly_max=100.0, threshold_cap=0.0)
    assert low.threshold == order_statistic(good, 0.01) == float(good.max())
    # A cap above the threshold changes nothing and says nothing.
    high = Calibrator().fit(good, anomaly_max=100.0, threshold_cap=1e6)
    assert high.threshold == uncapped.threshold and high.fallback_note() is None


class ChannelDetector:
    """Scores an image by how far one colour channel strays from grey: blind to defects in the others."""

    def __init__(self, channel: int) -> None:
        self.channel = channel

    def predict(self, images):
        from qc_models.detectors.base import Prediction

        maps = [np.abs(np.asarray(img, np.float32)[..., self.channel] - 128.0) for img in images]
        return Prediction(np.array([float(np.percentile(m, 99)) for m in maps]), maps)


def _grey(rng: np.random.Generator) -> np.ndarray:
    return np.clip(rng.normal(128, 5, size=(32, 32, 3)), 0, 255).astype(np.uint8)


def _red_defect(rng: np.random.Generator) -> np.ndarray:
    img = _grey(rng)
    y, x = rng.integers(0, 24, size=2)
    img[y : y + 8, x : x + 8, 0] = 250  # only the red channel changes
    return img


def test_a_labelled_validation_folder_is_recorded_but_the_weights_stay_synthetic() -> None:
    rng = np.random.default_rng(0)
    members = {}
    for name, channel in (("red", 0), ("blue", 2)):
        det = ChannelDetector(channel)
        pred = det.predict([_grey(rng) for _ in range(10)])
        members[name] = Member(det, Calibrator().fit(pred.image_scores, pred.anomaly_maps))
    cal_images = [_grey(rng) for _ in range(10)]
    val_images = [_grey(rng) for _ in range(6)] + [_red_defect(rng) for _ in range(6)]
    val_labels = np.r_[np.zeros(6), np.ones(6)]

    ens, cal = fit_ensemble(members, cal_images, validation=(val_images, val_labels))
    assert ens.details["validation_auroc"]["red"] == 1.0 and ens.details["validation_auroc"]["blue"] < 0.8
    assert ens.details["n_validation_good"] == 6 and ens.details["n_validation_defective"] == 6
    assert cal.validation_ is not None and cal.validation_["f1"] == 1.0  # the combined score's F1 threshold
    synthetic_only = fit_ensemble(members, cal_images)[0]
    assert ens.weights == synthetic_only.weights  # 12 labelled images do not override the synthetic evidence
    assert ens.weights["blue"] > 0.1  # synthetic anomalies show in every channel: both members count
    rows = {r["member"]: r for r in ens.weight_table()}
    assert rows["red"]["validation_auroc"] == 1.0 and rows["red"]["weight"] == ens.weights["red"]
    assert synthetic_only.weight_table()[0]["validation_auroc"] is None


def test_working_copies_shrink_large_images_to_the_shorter_side_and_never_enlarge() -> None:
    big = np.zeros((768, 1024, 3), np.uint8)
    big[:, 512:] = 200
    small = np.zeros((60, 300, 3), np.uint8)  # shorter side below the working size
    exact = np.zeros((64, 64, 3), np.uint8)
    shrunk, same, same2 = working_copies([big, small, exact], 64)
    assert shrunk.shape == (64, 85, 3)  # aspect kept: 1024 / 768 * 64 = 85.3
    assert shrunk[:, :40].max() == 0 and shrunk[:, 45:].min() == 200  # the same picture, smaller
    assert same is small and same2 is exact  # nothing is enlarged or copied for nothing


class SizeRecorder(MeanDistance):
    """A stand-in member that records the shapes it was asked to score."""

    def __init__(self, image_size: int = 32) -> None:
        super().__init__(image_size=image_size)
        self.seen: list[tuple[int, int]] = []

    def predict(self, images):
        self.seen.extend(img.shape[:2] for img in images)
        return super().predict(images)


def test_synthetic_anomalies_are_drawn_at_the_members_working_size() -> None:
    """A 1024-px original would turn the generator's pixel-sized strokes into sub-pixel ones."""
    rng = np.random.default_rng(3)
    members = {}
    for name in ("a", "b"):
        det = SizeRecorder(image_size=32).fit([good_image(rng, 128) for _ in range(10)])
        pred = det.predict([good_image(rng, 128) for _ in range(8)])
        det.seen.clear()
        members[name] = Member(det, Calibrator().fit(pred.image_scores, pred.anomaly_maps))
    cal_images = [good_image(rng, 128) for _ in range(6)]
    ens, cal = fit_ensemble(members, cal_images, seed=0)
    seen = members["a"].detector.seen
    assert seen.count((128, 128)) == 6  # the calibration images themselves, as inspected: the threshold
    assert seen.count((32, 32)) == 6 + ens.details["n_synthetic"]  # their working copies and every anomaly
    assert ens.details["synthetic_shrunk_to"] == 32 and ens.details["n_synthetic"] == 30
    assert not cal.decide(ens.combine_scores({k: m.calibrator.standardise(m.detector.predict(cal_images).image_scores)
                                              for k, m in members.items()})).any()

    for m in members.values():  # images already at the working size: one pass, nothing shrunk
        m.detector.seen.clear()
    small = [good_image(rng, 32) for _ in range(6)]
    ens_small, _ = fit_ensemble(members, small, seed=0)
    assert ens_small.details["synthetic_shrunk_to"] is None
    assert members["a"].detector.seen.count((32, 32)) == 6 + ens_small.details["n_synthetic"]


def test_weight_spread_tells_settled_from_unsettled_weights() -> None:
    rng = np.random.default_rng(3)
    good = rng.normal(0, 1, 18)
    bad = rng.normal(1.5, 1, 90)
    areas = rng.uniform(0.001, 0.05, 90)
    # Two members scoring the same values on different images separate equally well on the whole set,
    # so which one leads a resample is a coin toss.
    twins = weight_spread({"a": good, "b": rng.permutation(good)}, {"a": bad, "b": rng.permutation(bad)},
                          areas, {"a": 0.5, "b": 0.5}, n=200, seed=0)
    assert 0.2 < twins["top_share"] < 0.8
    lo, hi = twins["interval"]["a"]
    assert hi - lo > 0.3  # the weight moves a lot between resamples
    note = Ensemble({"a": 0.5, "b": 0.5}, details={"weight_spread": twins}).unsettled_note()
    assert note is not None and f"{100 * twins['top_share']:.0f} % of 200 resamples" in note
    # A member far apart from the other: always on top, narrow interval.
    clear = weight_spread({"a": good, "b": good}, {"a": bad + 10, "b": bad}, areas, {"a": 0.9, "b": 0.1}, n=200, seed=0)
    assert clear["top_member"] == "a" and clear["top_share"] == 1.0
    assert clear["interval"]["a"][0] > 0.7
    # Ensembles saved before the spread was measured show no interval and no warning.
    old = Ensemble({"a": 1.0, "b": 1.0})
    assert old.unsettled_note() is None and old.weight_table()[0]["weight_p10"] is None
    # A hand-edited record is read, not trusted: no warning rather than a crash.
    assert unsettled_note("often") is None and unsettled_note({"top_share": "low"}) is None
    for bad in ("wide", {"interval": "wide"}, {"interval": {"a": ["x", 0.5]}}):
        row = Ensemble({"a": 1.0}, details={"weight_spread": bad}).weight_table()[0]
        assert row["weight_p10"] is None and row["weight"] == 1.0
