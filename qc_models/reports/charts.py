"""Altair charts of the analytics tables, shared by the dashboard and the PDF report.

Each builder takes the DataFrame a ``db.queries`` function returns and gives an
Altair chart, so the screen and the printed report draw the same picture;
``to_png`` renders any of them offline with vl-convert.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

BLUE, RED, GREEN, GREY = "#1f5fbf", "#d62728", "#2ca02c", "#888888"


def _label(name: str) -> str:
    return name.replace("_", " ")


def pareto_chart(table: pd.DataFrame, by: str | None = None, title: str = "Pareto of defect types") -> alt.LayerChart:
    """Bars of defective counts (descending) with the cumulative-percent line on a second axis.

    ``table`` is ``db.queries.pareto_table`` (or ``analytics.pareto``) output; ``by``
    defaults to its first column.
    """
    by = by or str(table.columns[0])
    order = table[by].astype(str).tolist()
    df = table.assign(**{by: table[by].astype(str)})
    base = alt.Chart(df).encode(x=alt.X(f"{by}:N", sort=order, title=_label(by), axis=alt.Axis(labelAngle=-40)))
    bars = base.mark_bar(color=BLUE).encode(
        y=alt.Y("count:Q", title="defective images"),
        tooltip=[by, "count", alt.Tooltip("percent:Q", format=".1f")],
    )
    line = base.mark_line(color=RED, point=True).encode(
        y=alt.Y("cumulative_percent:Q", title="cumulative %", scale=alt.Scale(domain=[0, 100])),
        tooltip=[by, alt.Tooltip("cumulative_percent:Q", format=".1f")],
    )
    return alt.layer(bars, line).resolve_scale(y="independent").properties(height=280, title=title)


def p_chart(table: pd.DataFrame, x: str = "subgroup", title: str = "p-chart") -> alt.LayerChart:
    """Proportion defective per subgroup: centre line, stepped 3-sigma limits, out-of-control points in red.

    ``table`` is ``db.queries.p_chart_table`` / ``analytics.p_chart`` output.
    """
    df = table.assign(status=np.where(table["out_of_control"], "out of control", "in control"))
    temporal = np.issubdtype(df[x].dtype, np.datetime64)
    base = alt.Chart(df).encode(x=alt.X(f"{x}:{'T' if temporal else 'O'}", title=_label(x)))
    limits = alt.layer(
        base.mark_line(interpolate="step-after", color=GREY, strokeDash=[4, 3]).encode(y="ucl:Q"),
        base.mark_line(interpolate="step-after", color=GREY, strokeDash=[4, 3]).encode(y="lcl:Q"),
        base.mark_line(color=GREEN).encode(y="center:Q"),
    )
    points = base.mark_line(point=alt.OverlayMarkDef(size=40), color=BLUE).encode(
        y=alt.Y("p:Q", title="proportion defective", axis=alt.Axis(format="%")),
        tooltip=[x, "n", "x", alt.Tooltip("p:Q", format=".2%"), alt.Tooltip("ucl:Q", format=".2%")],
    )
    flags = (
        base.mark_point(size=110, filled=True, color=RED)
        .encode(y="p:Q", tooltip=[x, "n", "x", alt.Tooltip("p:Q", format=".2%"), "rule"])
        .transform_filter(alt.datum.status == "out of control")
    )
    return alt.layer(limits, points, flags).properties(height=280, title=title)


def trend_chart(table: pd.DataFrame, colour: str | None = "category", title: str = "Defect rate over time") -> alt.Chart:
    """Defect rate per time bucket (``defect_frequency(..., bucket=...)`` output), one line per ``colour`` group."""
    encodings = {
        "x": alt.X("bucket:T", title="time"),
        "y": alt.Y("defect_rate:Q", title="defect rate", axis=alt.Axis(format="%")),
        "tooltip": ["bucket:T", "n_inspected", "n_defective", alt.Tooltip("defect_rate:Q", format=".2%")],
    }
    df = table
    if colour and colour in table.columns:
        df = table.assign(**{colour: table[colour].astype(str)})
        encodings["color"] = alt.Color(f"{colour}:N", title=_label(colour))
        encodings["tooltip"] = [colour, *encodings["tooltip"]]
    return alt.Chart(df).mark_line(point=True).encode(**encodings).properties(height=260, title=title)


def location_heatmap(grid: np.ndarray, title: str = "Mean anomaly location") -> alt.Chart:
    """The mean anomaly grid (``run_queries.anomaly_heatmap``) as a heatmap, row 0 at the top."""
    rows, cols = grid.shape
    yy, xx = np.mgrid[0:rows, 0:cols]
    df = pd.DataFrame({"x": xx.ravel(), "y": yy.ravel(), "value": np.asarray(grid, dtype=float).ravel()})
    return (
        alt.Chart(df)
        .mark_rect()
        .encode(
            x=alt.X("x:O", axis=None),
            y=alt.Y("y:O", axis=None),
            color=alt.Color("value:Q", title="mean", scale=alt.Scale(scheme="inferno")),
            tooltip=["x", "y", alt.Tooltip("value:Q", format=".2f")],
        )
        .properties(width=260, height=260, title=title)
    )


def to_png(chart: alt.TopLevelMixin, scale: float = 2.0) -> bytes:
    """Render a chart to PNG offline (vl-convert; no browser, no network)."""
    import vl_convert

    return vl_convert.vegalite_to_png(chart.to_dict(), scale=scale)
