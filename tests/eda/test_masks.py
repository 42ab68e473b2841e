"""Heatmaps, area fractions and centroids of known masks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qc_models.eda.masks import ALL, MaskAccumulator, area_summary, describe_mask


def _two_blobs() -> np.ndarray:
    m = np.zeros((8, 8), dtype=bool)
    m[0:2, 0:2] = True  # 4 pixels, centre pixel coords (0.5, 0.5)
    m[7, 7] = True
    return m


def test_describe_mask_area_components_centroid() -> None:
    s = describe_mask(_two_blobs(), size=4)
    assert s.area_fraction == pytest.approx(5 / 64)
    comps = sorted(map(tuple, s.components))
    assert comps[0] == pytest.approx((1.0 / 8, 1.0 / 8, 4 / 64))  # (0.5 + 0.5) / 8
    assert comps[1] == pytest.approx((7.5 / 8, 7.5 / 8, 1 / 64))
    # whole-mask centre of mass: x = (0 + 1 + 0 + 1 + 7) / 5 = 1.8
    assert s.centroid == pytest.approx(((1.8 + 0.5) / 8, (1.8 + 0.5) / 8))
    expected = np.zeros((4, 4))
    expected[0, 0] = 1.0
    expected[3, 3] = 0.25
    np.testing.assert_allclose(s.grid, expected)


def test_empty_mask() -> None:
    s = describe_mask(np.zeros((4, 6), dtype=bool), size=2)
    assert s.area_fraction == 0.0 and len(s.components) == 0
    assert math.isnan(s.centroid[0])
    assert s.grid.sum() == 0


def test_non_square_mask_is_normalised_per_axis() -> None:
    m = np.zeros((2, 4), dtype=bool)
    m[1, 3] = True
    s = describe_mask(m, size=2)
    assert tuple(s.components[0]) == pytest.approx((3.5 / 4, 1.5 / 2, 1 / 8))


def test_describe_mask_rejects_bad_shape() -> None:
    with pytest.raises(ValueError, match="mask"):
        describe_mask(np.zeros((2, 2, 3), dtype=bool))


def test_accumulator_mean_heatmaps_and_tables() -> None:
    acc = MaskAccumulator(size=4)
    full = np.ones((8, 8), dtype=bool)
    acc.add(describe_mask(_two_blobs(), 4), "crack", "a_mask.png")
    acc.add(describe_mask(np.zeros((8, 8), dtype=bool), 4), "crack", "b_mask.png")
    acc.add(describe_mask(full, 4), "hole", "c_mask.png")
    assert acc.counts() == {"crack": 2, "hole": 1, ALL: 3}
    maps = acc.heatmaps()
    assert maps["crack"][0, 0] == pytest.approx(0.5) and maps["crack"][3, 3] == pytest.approx(0.125)
    assert maps["hole"].min() == 1.0
    assert maps[ALL][0, 0] == pytest.approx(2 / 3) and maps[ALL][1, 1] == pytest.approx(1 / 3)
    masks = acc.mask_table()
    assert masks["area_fraction"].tolist() == pytest.approx([5 / 64, 0.0, 1.0])
    assert masks["components"].tolist() == [2, 0, 1]
    cents = acc.centroid_table()
    assert len(cents) == 3 and set(cents["defect_type"]) == {"crack", "hole"}
    assert cents.loc[cents["defect_type"] == "hole", ["x", "y"]].iloc[0].tolist() == pytest.approx([0.5, 0.5])
    with pytest.raises(ValueError, match="grid"):
        acc.add(describe_mask(full, 2), "hole", "d_mask.png")


def test_empty_accumulator_heatmap_is_zero() -> None:
    acc = MaskAccumulator(size=3)
    assert acc.heatmaps()[ALL].shape == (3, 3) and acc.counts()[ALL] == 0
    with pytest.raises(ValueError):
        MaskAccumulator(size=0)


def test_area_summary() -> None:
    s = area_summary(np.array([0.1, 0.2, 0.6]))
    assert s["count"] == 3 and s["mean"] == pytest.approx(0.3) and s["median"] == pytest.approx(0.2)
    assert s["std"] == pytest.approx(np.std([0.1, 0.2, 0.6]))
    assert area_summary(np.array([]))["mean"] is None
