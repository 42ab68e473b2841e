"""Altair chart builders for the engineering pages (EDA and model evaluation).

The analytics and report charts (Pareto, p-chart, ...) come from
``qc_models.reports.charts`` so the PDF and the dashboard draw the same picture;
the charts here only exist on screen. Each builder takes plain arrays or
DataFrames produced by ``qc_models`` and returns an ``alt.Chart``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import altair as alt
import numpy as np
import pandas as pd

CHANNEL_COLOURS = {"R": "#d62728", "G": "#2ca02c", "B": "#1f77b4"}
GOOD_COLOUR = "#2ca02c"


def stacked_counts(table: pd.DataFrame, x: str, y: str, colour: str, title: str = "") -> alt.Chart:
    """Stacked bars of ``y`` per ``x`` split by ``colour`` (class imbalance at a glance); ``good`` is green."""
    groups = sorted(table[colour].astype(str).unique(), key=lambda g: (g != "good", g))
    scale = alt.Scale(domain=groups, range=[GOOD_COLOUR, *_palette(len(groups) - 1)] if "good" in groups
                      else list(_palette(len(groups))))
    return (
        alt.Chart(table, title=title)
        .mark_bar()
        .encode(
            x=alt.X(f"{x}:N", title=x.replace("_", " ")),
            y=alt.Y(f"sum({y}):Q", title=y.replace("_", " ")),
            color=alt.Color(f"{colour}:N", title=colour.replace("_", " "), scale=scale, sort=groups),
            order=alt.Order(f"{colour}:N", sort="descending"),
            tooltip=[x, colour, y],
        )
    )


def rgb_histograms(histograms: Mapping[str, np.ndarray], bins: int = 64) -> alt.Chart:
    """Per-channel pixel distributions (each ``(3, 256)``), one line style per group.

    Bins are merged to ``bins`` so the browser draws a few hundred points, not thousands.
    """
    frames = []
    width = 256 // bins
    for group, hist in histograms.items():
        h = np.asarray(hist, dtype=np.float64).reshape(3, bins, width).sum(axis=2)
        totals = h.sum(axis=1, keepdims=True)
        h = np.divide(h, totals, out=np.zeros_like(h), where=totals > 0)
        for c, name in enumerate("RGB"):
            frames.append(pd.DataFrame({"intensity": np.arange(bins) * width, "fraction": h[c], "channel": name,
                                        "group": group}))
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["intensity", "fraction"])
    return (
        alt.Chart(df)
        .mark_line(interpolate="step-after")
        .encode(
            x=alt.X("intensity:Q", title="intensity", scale=alt.Scale(domain=[0, 255])),
            y=alt.Y("fraction:Q", title="fraction of pixels"),
            color=alt.Color("channel:N", scale=alt.Scale(domain=list(CHANNEL_COLOURS),
                                                          range=list(CHANNEL_COLOURS.values())), legend=None),
            strokeDash=alt.StrokeDash("group:N", title=""),
            tooltip=["group", "channel", "intensity", alt.Tooltip("fraction:Q", format=".4f")],
        )
        .properties(height=220)
    )


def area_boxplot(mask_table: pd.DataFrame) -> alt.Chart:
    """Defect area (fraction of the image) per defect type."""
    df = mask_table.assign(area_pct=100.0 * mask_table["area_fraction"])
    return (
        alt.Chart(df, title="Defect area")
        .mark_boxplot(extent="min-max")
        .encode(x=alt.X("defect_type:N", title="defect type"), y=alt.Y("area_pct:Q", title="area (% of image)"),
                color=alt.Color("defect_type:N", legend=None))
        .properties(height=260)
    )


def centroid_scatter(centroids: pd.DataFrame) -> alt.Chart:
    """Where defect components sit in the image frame (normalised x/y, image orientation)."""
    return (
        alt.Chart(centroids, title="Defect locations (component centroids)")
        .mark_circle(opacity=0.6)
        .encode(
            x=alt.X("x:Q", scale=alt.Scale(domain=[0, 1]), title="x (fraction of width)"),
            y=alt.Y("y:Q", scale=alt.Scale(domain=[1, 0]), title="y (fraction of height)"),
            color=alt.Color("defect_type:N", title="defect type"),
            size=alt.Size("area_fraction:Q", legend=None),
            tooltip=["defect_type", "path", alt.Tooltip("area_fraction:Q", format=".4f")],
        )
        .properties(height=260)
    )


def roc_curves(curves: pd.DataFrame) -> alt.Chart:
    """ROC curves: ``curves`` has columns model, fpr, tpr (one row per point), AUROC in the legend label."""
    diagonal = alt.Chart(pd.DataFrame({"fpr": [0, 1], "tpr": [0, 1]})).mark_line(
        color="#bbbbbb", strokeDash=[4, 4]).encode(x="fpr:Q", y="tpr:Q")
    lines = (
        alt.Chart(curves)
        .mark_line(interpolate="step-after")
        .encode(
            x=alt.X("fpr:Q", title="false positive rate", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("tpr:Q", title="true positive rate", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("model:N", title=""),
            tooltip=["model", alt.Tooltip("fpr:Q", format=".3f"), alt.Tooltip("tpr:Q", format=".3f")],
        )
    )
    return (diagonal + lines).properties(height=300, title="ROC (image level)")


def score_distribution(scores: pd.DataFrame, threshold: float, title: str = "") -> alt.Chart:
    """Score histogram of good vs each defect type (``scores``: score, group) with the threshold rule."""
    lo = float(min(scores["score"].min(), threshold)) if len(scores) else 0.0
    hi = float(max(scores["score"].max(), threshold)) if len(scores) else 1.0
    step = (hi - lo) / 30 if hi > lo else 1.0
    groups = sorted(scores["group"].unique(), key=lambda g: (g != "good", g)) if len(scores) else []
    bars = (
        alt.Chart(scores)
        .mark_bar(opacity=0.55, binSpacing=0)
        .encode(
            x=alt.X("score:Q", bin=alt.Bin(extent=[lo, hi + step], step=step), title="score"),
            y=alt.Y("count():Q", stack=None, title="images"),
            color=alt.Color("group:N", sort=groups, title="",
                            scale=alt.Scale(domain=groups, range=[GOOD_COLOUR, *_palette(len(groups) - 1)])),
        )
    )
    rule = alt.Chart(pd.DataFrame({"threshold": [threshold]})).mark_rule(color="black", strokeWidth=2).encode(
        x="threshold:Q", tooltip=[alt.Tooltip("threshold:Q", format=".4f")]
    )
    return (bars + rule).properties(height=240, title=title)


#: Pixels per row of the confusion matrix.
CELL_STEP = 56


def confusion_matrix(tn: int, fp: int, fn: int, tp: int, title: str = "Confusion matrix") -> alt.Chart:
    """2x2 matrix of image decisions with counts written in the cells."""
    df = pd.DataFrame({
        "actual": ["good", "good", "defective", "defective"],
        "predicted": ["OK", "NG", "OK", "NG"],
        "images": [tn, fp, fn, tp],
    })
    base = alt.Chart(df, title=title).encode(
        x=alt.X("predicted:N", sort=["OK", "NG"], title="decision", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("actual:N", sort=["good", "defective"], title="actual"),
    )
    cells = base.mark_rect().encode(color=alt.Color("images:Q", scale=alt.Scale(scheme="blues"), legend=None))
    dark = max(tn, fp, fn, tp) / 2  # white counts on the darker cells
    text = base.mark_text(fontSize=16).encode(
        text="images:Q", color=alt.condition(alt.datum.images > dark, alt.value("white"), alt.value("black")))
    # Rows of a fixed step: a fixed total height is squeezed by Streamlit's fitted sizing (see rate_bars).
    return (cells + text).properties(height=alt.Step(CELL_STEP), width=220)


def _palette(n: int) -> Sequence[str]:
    base = ["#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
    return [base[i % len(base)] for i in range(max(n, 0))]


def roc_points(scores: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """ROC points per model from ``Evaluation.scores_frame()`` (columns model, label, raw), AUROC in the name."""
    from sklearn.metrics import roc_auc_score, roc_curve

    frames = []
    for model in models:
        sub = scores[scores["model"] == model]
        if sub["label"].nunique() < 2:
            continue
        fpr, tpr, _ = roc_curve(sub["label"], sub["raw"])
        auc = roc_auc_score(sub["label"], sub["raw"])
        frames.append(pd.DataFrame({"model": f"{model} (AUROC {auc:.3f})", "fpr": fpr, "tpr": tpr}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["model", "fpr", "tpr"])


# ---------------------------------------------------------------- analytics extras (Pareto, p-chart, trend: qc_models.reports.charts)


#: Pixels per bar of the horizontal bar charts.
BAR_STEP = 28


def rate_bars(table: pd.DataFrame, by: str, rate: str = "defect_rate", title: str = "",
              interval: tuple[str, str] | None = None) -> alt.Chart | alt.LayerChart:
    """Horizontal bars of a rate per group; ``interval`` names two columns drawn as a range line over each bar."""
    tooltip = [by, alt.Tooltip(f"{rate}:Q", format=".2%")]
    if interval is not None:
        tooltip += [alt.Tooltip(f"{c}:Q", format=".2%") for c in interval]
    y = alt.Y(f"{by}:N", sort="-x", title=by.replace("_", " "))
    bars = alt.Chart(table, title=title).mark_bar().encode(
        y=y, x=alt.X(f"{rate}:Q", title=rate.replace("_", " "), axis=alt.Axis(format="%")), tooltip=tooltip)
    # A step per bar, not a fixed height: Streamlit fits charts with autosize 'fit' (height includes the
    # title and axes), and at a fixed 120 px its theme left the bars no room at all (collapsed to a line).
    if interval is None:
        return bars.properties(height=alt.Step(BAR_STEP))
    rule = alt.Chart(table).mark_rule(strokeWidth=2, color="#333").encode(
        y=y, x=f"{interval[0]}:Q", x2=f"{interval[1]}:Q", tooltip=tooltip)
    return alt.layer(bars, rule).properties(height=alt.Step(BAR_STEP))
