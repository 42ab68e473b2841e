"""Region facts from a normalised anomaly map: area, largest region, location grid."""

import numpy as np
import pytest

from qc_models.inspection import GRID_SIZE, decode_grid, encode_grid, region_stats


def test_largest_region_wins_and_area_counts_all_regions():
    m = np.zeros((40, 60), np.float32)
    m[5:8, 5:8] = 0.9  # 9 px
    m[20:30, 30:45] = 0.6  # 150 px, the largest
    m[0, 59] = 0.49  # below threshold
    stats = region_stats(m)
    assert stats.bbox == (30, 20, 15, 10)
    assert stats.area_fraction == pytest.approx(159 / (40 * 60))


def test_no_anomaly_gives_no_box_and_a_low_grid():
    stats = region_stats(np.full((16, 16), 0.2, np.float32))
    assert stats.bbox is None
    assert stats.area_fraction == 0.0
    grid = decode_grid(stats.grid)
    assert grid.shape == (GRID_SIZE, GRID_SIZE)
    assert np.allclose(grid, 0.2, atol=1 / 255)


def test_grid_keeps_location_and_clips():
    m = np.zeros((64, 64), np.float32)
    m[:32, 32:] = 3.0  # top-right quadrant, above 1 -> clipped
    grid = decode_grid(encode_grid(m))
    assert grid[:16, 16:].min() == 1.0
    assert grid[16:, :16].max() == 0.0


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="2-D"):
        region_stats(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="expected 1024"):
        decode_grid(b"\x00" * 10)
