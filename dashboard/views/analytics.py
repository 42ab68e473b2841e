"""Defect analytics: which defects dominate, whether the process is in control, where and when defects occur."""

from __future__ import annotations

import streamlit as st

from dashboard import charts, state, widgets
from qc_models.reports import charts as report_charts

st.title("Defect analytics")
cfg = state.settings()
if not state.database_exists(cfg.db_url):
    widgets.fix_banner("No inspection results yet. Run a batch inspection, or fill the database with demo runs:",
                       "qc demo-setup", kind="info")
    st.stop()
filters = widgets.filters_panel(cfg.db_url)
if filters is None:
    widgets.fix_banner("The database holds no inspection results yet.", "qc demo-setup", kind="info")
    st.stop()

kpi = state.query("kpi_summary", cfg.db_url, filters)
if not kpi["inspections"]:
    st.info("No scored images match these filters: widen the date range or clear a filter.")
    st.stop()
c = st.columns(6)
c[0].metric("Images inspected", f"{int(kpi['inspections']):,}")
c[1].metric("Defect rate", widgets.percent(kpi["defect_rate"], 2))
c[2].metric("Yield", widgets.percent(kpi["yield"], 2))
c[3].metric("First-pass yield", widgets.percent(kpi["first_pass_yield"], 2))
c[4].metric("DPMO", f"{kpi['dpmo']:,.0f}")
c[5].metric("Out-of-control signals", int(kpi["out_of_control"]))

pareto = state.query("pareto_table", cfg.db_url, filters)
if pareto.empty:
    st.caption("No defective images in the selection.")
else:
    st.altair_chart(report_charts.pareto_chart(pareto), width="stretch")
subgroup = st.segmented_control("p-chart subgroup", ["run", "hour", "day", "week"], default="day",
                                key="an_subgroup") or "day"
pchart = state.query("p_chart_table", cfg.db_url, filters, subgroup=subgroup)
if pchart.empty:
    st.caption("No subgroups in the selection.")
else:
    st.altair_chart(report_charts.p_chart(pchart, title=f"p-chart by {subgroup}"), width="stretch")
flagged = pchart[pchart["out_of_control"]] if not pchart.empty else pchart
with st.expander(f"Out-of-control points ({len(flagged)})", icon=":material/crisis_alert:"):
    widgets.show_dataframe(flagged[["subgroup", "time", "n", "x", "p", "ucl", "lcl", "rule"]] if len(flagged) else
                           flagged, "Every subgroup is within its limits and no run rule fired.")

st.subheader("Defect frequency")
f = st.columns([1, 1, 3])
bucket = f[0].segmented_control("Time bucket", ["hour", "day", "week"], default="day", key="an_bucket") or "day"
split_by = f[1].selectbox("Split by", ["line", "category", "shift"], key="an_split")
freq = state.query("defect_frequency", cfg.db_url, filters, by=(split_by,), bucket=bucket)
if freq.empty:
    st.caption("No scored images in the selection.")
else:
    st.altair_chart(report_charts.trend_chart(freq, split_by, title=f"Defect rate by {split_by}"), width="stretch")

left, right = st.columns(2)
with left:
    by_line = state.query("defect_frequency", cfg.db_url, filters, by=("line",))
    st.altair_chart(charts.rate_bars(by_line, "line", title="Defect rate by line"), width="stretch")
    by_shift = state.query("defect_frequency", cfg.db_url, filters, by=("shift",))
    st.altair_chart(charts.rate_bars(by_shift, "shift", title="Defect rate by shift"), width="stretch")
with right:
    st.markdown("**Detection rate per known defect type**")
    rates = state.query("detection_rates", cfg.db_url, filters)
    widgets.show_dataframe(
        rates, "No images with a known defect type (inspect labelled folders to measure detection).",
        column_config={c: st.column_config.NumberColumn(format="percent") for c in rates.columns
                       if c.startswith("rate_") or c == "detection_rate"},
    )
    st.caption("The `good` row's rate is the false-reject rate.")

st.subheader("Where defects are")
heat, used = state.query("anomaly_heatmap", cfg.db_url, filters)
if used == 0:
    st.caption("No defective images with a stored anomaly location in the selection.")
else:
    cols = st.columns([1, 2])
    cols[0].altair_chart(report_charts.location_heatmap(heat, title=f"Mean anomaly map of {used:,} NG images"))
    cols[1].markdown("Bright cells are where the models most often find anomalies, in image coordinates (top left = "
                     "top left of the part). A hot spot that stays in one place across lots usually points at a "
                     "fixture, a tool or the camera rather than at random defects.")
