"""Per-image features, pooled channel stats, robust z-scores and dimension outliers, by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qc_models.eda.stats import ChannelAccumulator, abnormal_dimensions, image_features, modal_size, robust_zscores


def test_image_features_match_hand_computed_values() -> None:
    img = np.zeros((4, 4, 3), dtype=np.uint8)
    img[..., 0] = 10  # constant
    img[:, 2:, 1] = 100  # half 0, half 100
    img[..., 2] = np.arange(16).reshape(4, 4)  # 0..15
    f = image_features(img)
    assert f["mean_r"] == pytest.approx(10) and f["std_r"] == pytest.approx(0)
    assert f["mean_g"] == pytest.approx(50) and f["std_g"] == pytest.approx(50)
    assert f["mean_b"] == pytest.approx(7.5) and f["std_b"] == pytest.approx(math.sqrt(255 / 12))
    assert f["brightness"] == pytest.approx(0.299 * 10 + 0.587 * 50 + 0.114 * 7.5)
    assert f["aspect_ratio"] == 1.0


def test_gray_features_entropy_contrast_edges() -> None:
    flat = np.full((8, 16, 3), 77, dtype=np.uint8)
    f = image_features(flat)
    assert f["entropy"] == 0.0 and f["contrast"] == 0.0 and f["edge_density"] == 0.0
    assert f["aspect_ratio"] == 2.0
    half = flat.copy()
    half[:, :8] = 0
    half[:, 8:] = 255
    g = image_features(half)
    assert g["entropy"] == pytest.approx(1.0)  # two equally likely gray levels = 1 bit
    assert g["contrast"] == pytest.approx(127.5)
    assert 0 < g["edge_density"] < 0.5  # only the pixels along the step are edges


def test_image_features_rejects_non_rgb() -> None:
    with pytest.raises(ValueError, match="uint8 RGB"):
        image_features(np.zeros((4, 4), dtype=np.uint8))


def test_channel_accumulator_pools_exactly() -> None:
    a = np.zeros((4, 4, 3), dtype=np.uint8)
    b = np.full((2, 2, 3), 100, dtype=np.uint8)
    b[..., 2] = [[0, 50], [100, 150]]
    acc = ChannelAccumulator()
    for img in (a, b):
        px = img.reshape(-1, 3).astype(np.float64)
        acc.add(px.mean(axis=0), px.std(axis=0), len(px))
    assert acc.pixels == 20
    # R: 16 zeros and 4 x 100 -> mean 20, var 2000 - 400 = 1600
    assert acc.mean[0] == pytest.approx(20) and acc.std[0] == pytest.approx(40)
    everything = np.concatenate([a.reshape(-1, 3), b.reshape(-1, 3)]).astype(np.float64)
    np.testing.assert_allclose(acc.mean, everything.mean(axis=0))
    np.testing.assert_allclose(acc.std, everything.std(axis=0))


def test_empty_channel_accumulator_is_nan() -> None:
    assert np.isnan(ChannelAccumulator().mean).all()


def test_robust_zscores_flag_only_the_outlier() -> None:
    z = robust_zscores(np.array([10, 11, 12, 13, 14, 100.0]))
    # median 12.5, MAD 1.5
    assert z[-1] == pytest.approx(0.6745 * 87.5 / 1.5)
    assert z[0] == pytest.approx(0.6745 * -2.5 / 1.5)
    assert (np.abs(z) > 3.5).tolist() == [False] * 5 + [True]


def test_robust_zscores_zero_mad_falls_back_to_mean_absolute_deviation() -> None:
    z = robust_zscores(np.array([5, 5, 5, 5, 9.0]))
    assert z[-1] == pytest.approx(4 / (1.253314 * 0.8))
    assert z[0] == 0.0
    assert robust_zscores(np.array([3.0, 3.0])).tolist() == [0.0, 0.0]
    assert robust_zscores(np.array([])).size == 0


def test_abnormal_dimensions_against_the_modal_size() -> None:
    h = np.array([4, 4, 8, 4])
    w = np.array([4, 4, 4, 6])
    assert modal_size(h, w) == (4, 4)
    assert abnormal_dimensions(h, w).tolist() == [False, False, True, True]
    assert modal_size(np.array([]), np.array([])) is None
