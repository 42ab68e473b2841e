"""Every chart builder yields a Vega-Lite spec that really renders (vl-convert, offline)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import vl_convert

from dashboard import charts


def _renders(chart) -> str:
    svg = vl_convert.vegalite_to_svg(chart.to_dict())
    assert svg.startswith("<svg")
    return svg


def test_eda_charts_render() -> None:
    counts = pd.DataFrame({"split": ["train", "test", "test"], "defect_type": ["good", "good", "crack"],
                           "images": [10, 4, 3]})
    _renders(charts.stacked_counts(counts, "split", "images", "defect_type"))
    hist = np.zeros((3, 256), np.int64)
    hist[:, 100] = 5
    _renders(charts.rgb_histograms({"good": hist, "defective": hist * 2}))
    masks = pd.DataFrame({"defect_type": ["a", "a", "b"], "area_fraction": [0.01, 0.02, 0.2]})
    _renders(charts.area_boxplot(masks))
    cents = pd.DataFrame({"path": ["p"] * 2, "defect_type": ["a", "b"], "x": [0.2, 0.8], "y": [0.1, 0.9],
                          "area_fraction": [0.01, 0.03]})
    _renders(charts.centroid_scatter(cents))


def test_rgb_histograms_merge_bins_and_normalise() -> None:
    hist = np.zeros((3, 256), np.int64)
    hist[0, :4] = 1  # four red pixels in the first merged bin
    data = pd.DataFrame(charts.rgb_histograms({"g": hist}, bins=64).data)
    red = data[data["channel"] == "R"]
    assert len(red) == 64 and red["fraction"].iloc[0] == pytest.approx(1.0)


def test_model_charts_render_and_roc_points_are_correct() -> None:
    scores = pd.DataFrame({
        "model": ["cae"] * 4 + ["unet"] * 4,
        "label": [0, 0, 1, 1] * 2,
        "raw": [0.1, 0.2, 0.8, 0.9, 0.5, 0.4, 0.3, 0.6],
        "defect_type": ["good", "good", "hole", "cut"] * 2,
    })
    points = charts.roc_points(scores, ["cae", "unet"])
    assert set(points["model"]) == {"cae (AUROC 1.000)", "unet (AUROC 0.500)"}
    _renders(charts.roc_curves(points))
    _renders(charts.confusion_matrix(5, 1, 2, 7))
    dist = scores.assign(score=scores["raw"], group=scores["defect_type"])
    _renders(charts.score_distribution(dist, 0.5, "scores"))
    _renders(charts.rate_bars(pd.DataFrame({"line": ["L1", "L2"], "defect_rate": [0.02, 0.05]}), "line"))
    one_class = scores.assign(label=0)
    assert charts.roc_points(one_class, ["cae"]).empty  # no ROC without both classes


def test_bar_charts_and_confusion_matrix_get_a_step_per_row_not_a_fixed_height() -> None:
    """Streamlit sizes charts with autosize 'fit': a fixed height must also hold the title and axes, and at
    120 px its theme collapsed the bars to a line (the Models page's ensemble weights, seen in Chromium)."""
    for n in (1, 3, 12):
        table = pd.DataFrame({"line": [f"L{i}" for i in range(n)], "defect_rate": np.linspace(0.01, 0.2, n)})
        chart = charts.rate_bars(table, "line")
        assert chart.to_dict()["height"] == {"step": charts.BAR_STEP}
        heights = [float(h) for h in re.findall(r'aria-roledescription="bar" d="M[^h]+h[^v]+v([0-9.]+)', _renders(chart))]
        assert len(heights) == n and min(heights) >= 0.7 * charts.BAR_STEP
    # The ensemble weights' resampling range: one range line per bar, drawn over the same rows.
    weights = pd.DataFrame({"member": ["cae", "unet"], "weight": [0.2, 0.8], "lo": [0.1, 0.5], "hi": [0.4, 0.9]})
    layered = charts.rate_bars(weights, "member", "weight", interval=("lo", "hi"))
    spec = layered.to_dict()
    assert spec["height"] == {"step": charts.BAR_STEP}
    rule = next(layer for layer in spec["layer"] if layer["mark"]["type"] == "rule")
    assert rule["encoding"]["x"]["field"] == "lo" and rule["encoding"]["x2"]["field"] == "hi"
    assert len(re.findall(r'aria-roledescription="rule mark"', _renders(layered))) == 2
    matrix = charts.confusion_matrix(5, 1, 2, 7).to_dict()
    assert matrix["height"] == {"step": charts.CELL_STEP}
