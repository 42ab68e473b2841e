"""Pure display helpers: downsampling, jet overlays, mask tints, badges, formatting."""

from __future__ import annotations

import numpy as np
import pytest

from dashboard.widgets import (
    colorize,
    decision_badge,
    downsample,
    heatmap_image,
    overlay_heatmap,
    overlay_mask,
    percent,
)


def test_downsample_limits_longest_side_and_keeps_small_images() -> None:
    img = np.zeros((1000, 500, 3), np.uint8)
    out = downsample(img, 200)
    assert out.shape == (200, 100, 3) and out.dtype == np.uint8
    small = np.zeros((40, 30, 3), np.uint8)
    assert downsample(small, 200) is small
    mask = np.zeros((400, 400), bool)
    mask[:200] = True
    m = downsample(mask, 100)
    assert m.dtype == bool and m.shape == (100, 100) and m[:40].all() and not m[60:].any()


def test_colorize_is_jet_low_blue_high_red() -> None:
    amap = np.array([[0.0, 1.0]], np.float32)
    rgb = colorize(amap)
    assert rgb.shape == (1, 2, 3) and rgb.dtype == np.uint8
    low, high = rgb[0, 0], rgb[0, 1]
    assert low[2] > low[0]  # blue dominates at the bottom of the range
    assert high[0] > high[2]  # red dominates at the top
    with pytest.raises(ValueError, match="2-D"):
        colorize(np.zeros((2, 2, 2)))


def test_overlay_heatmap_blends_at_display_size() -> None:
    img = np.full((600, 300, 3), 128, np.uint8)
    amap = np.zeros((60, 30), np.float32)
    amap[:30] = 1.0  # top half anomalous
    out = overlay_heatmap(img, amap, alpha=0.5, max_side=120)
    assert out.shape == (120, 60, 3)
    top, bottom = out[10, 30], out[110, 30]
    assert top[0] > bottom[0] and bottom[2] > top[2]  # red on the anomalous half, blue elsewhere


def test_overlay_mask_tints_only_defect_pixels() -> None:
    img = np.zeros((64, 64, 3), np.uint8)
    mask = np.zeros((64, 64), bool)
    mask[20:40, 20:40] = True
    out = overlay_mask(img, mask, color=(255, 0, 0), alpha=0.5)
    assert out[30, 30, 0] > 100 and out[5, 5].sum() == 0
    # masks of another resolution are resized to the image first
    out2 = overlay_mask(img, mask[::2, ::2])
    assert out2[30, 30, 0] > 0


def test_heatmap_image_scales_grid() -> None:
    grid = np.zeros((8, 8), np.float32)
    grid[0, 0] = 5.0
    out = heatmap_image(grid, size=64)
    assert out.shape == (64, 64, 3)
    assert out[0, 0, 0] > out[63, 63, 0]
    assert heatmap_image(np.zeros((4, 4))).shape[2] == 3  # all-zero grid does not divide by zero


def test_badges_and_percent() -> None:
    assert "NG" in decision_badge(True) and "red" in decision_badge(True)
    assert "OK" in decision_badge(False)
    assert "n/a" in decision_badge(None)
    assert percent(0.0312) == "3.1 %"
    assert percent(None) == "—" and percent(float("nan")) == "—"


def test_draw_box_scales_to_display_size() -> None:
    from dashboard.widgets import draw_box

    img = np.zeros((400, 400, 3), np.uint8)
    out = draw_box(img, (100, 100, 100, 100), color=(255, 0, 0), max_side=200)
    assert out.shape == (200, 200, 3)
    assert out[50, 75, 0] == 255 and out[75, 75].sum() == 0  # outline at x=50..100 (scaled), inside stays black
    assert draw_box(img, None, max_side=200).sum() == 0
    assert draw_box(img, (float("nan"), 0, 1, 1), max_side=200).sum() == 0
