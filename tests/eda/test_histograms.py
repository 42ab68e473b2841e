"""Histogram counts, normalisation and running class sums."""

from __future__ import annotations

import numpy as np
import pytest

from qc_models.eda.histograms import HistogramAccumulator, channel_histogram, image_histogram, normalise_histogram


def _image() -> np.ndarray:
    img = np.zeros((4, 4, 3), dtype=np.uint8)
    img[..., 0] = 7
    img[:2, :, 1] = 255  # 8 pixels 255, 8 pixels 0
    img[..., 2] = np.arange(16).reshape(4, 4)
    return img


def test_image_histogram_counts() -> None:
    h = image_histogram(_image())
    assert h.shape == (3, 256) and h.dtype == np.int64
    assert h[0, 7] == 16 and h[0].sum() == 16
    assert h[1, 0] == 8 and h[1, 255] == 8
    assert h[2, :16].tolist() == [1] * 16 and h[2, 16:].sum() == 0


def test_channel_histogram_large_input_uses_exact_counts() -> None:
    big = np.zeros(2**24 + 5, dtype=np.uint8)  # beyond float32-exact calcHist counts
    big[:3] = 9
    h = channel_histogram(big)
    assert h[9] == 3 and h[0] == 2**24 + 2


def test_image_histogram_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="uint8 RGB"):
        image_histogram(np.zeros((4, 4, 3), dtype=np.float32))


def test_normalise_rows_sum_to_one_and_zero_rows_stay_zero() -> None:
    counts = np.zeros((3, 256))
    counts[0, 1] = 3
    counts[0, 2] = 1
    n = normalise_histogram(counts)
    assert n[0, 1] == 0.75 and n[0, 2] == 0.25
    assert n[1].sum() == 0.0


def test_accumulator_sums_per_class() -> None:
    acc = HistogramAccumulator()
    img = _image()
    acc.add("test/good", image_histogram(img))
    acc.add("test/good", image_histogram(img))
    acc.add("test/crack", image_histogram(np.full((2, 2, 3), 200, dtype=np.uint8)))
    assert acc.keys() == ["test/crack", "test/good"]
    assert acc.images("test/good") == 2
    assert acc.counts("test/good")[0, 7] == 32
    assert acc.normalised("test/crack")[2, 200] == 1.0
    np.testing.assert_allclose(acc.normalised("test/good").sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="256"):
        acc.add("x", np.zeros((3, 10)))
