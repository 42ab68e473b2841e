"""Overview: the state of quality at a glance, and what to set up when there is nothing yet."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from dashboard import state, widgets
from db.filters import Filters
from qc_models.reports import charts as report_charts

st.title("Overview")
cfg = state.settings()

# ---------------------------------------------------------------- setup banners
categories = state.categories(str(cfg.data_dir))
versions = state.model_versions(str(cfg.models_dir), state.generation())
has_db = state.database_exists(cfg.db_url)

if not categories:
    widgets.fix_banner(f"No dataset found at `{cfg.data_dir}`. Generate the synthetic demo dataset (or point "
                       "QC_DATA_DIR at a dataset in the MVTec AD layout):", "qc demo-setup")
if versions.empty:
    widgets.fix_banner(f"No trained models in `{cfg.models_dir}`. Train the demo models "
                       "(or use the Models page):", "qc demo-setup")
elif "untrained_backbone" in versions and versions["untrained_backbone"].fillna(False).astype(bool).any():
    widgets.fix_banner("Some models use an untrained (random-init) backbone: their scores are for demonstration "
                       "only. With ImageNet weights in the torch cache, retrain with:",
                       f"qc train {cfg.data_dir} --category <category> --model all --out {cfg.models_dir} "
                       "--weights imagenet")
if not has_db:
    widgets.fix_banner("No inspection results yet. Run a batch inspection (Batch inspection page) or fill the "
                       "database with demo runs:", "qc demo-setup", kind="info")
    st.stop()

# ---------------------------------------------------------------- KPIs over a window ending at the newest result
first, last = state.query("result_time_span", cfg.db_url, Filters())
if last is None:
    widgets.fix_banner("The database holds no inspection results yet. Start one on the Batch inspection page, or "
                       "fill it with demo runs:", "qc demo-setup", kind="info")
    st.stop()

window = st.segmented_control("Period", ["Last 7 days", "Last 30 days", "All"], default="Last 30 days",
                              key="overview_window") or "Last 30 days"
days = {"Last 7 days": 7, "Last 30 days": 30}.get(window)
start = (last - timedelta(days=days - 1)).date() if days else first.date()
period = Filters(start=start, end=last.date())
st.caption(f"Results from {period.start:%Y-%m-%d} to {last:%Y-%m-%d %H:%M} (UTC), ensemble decisions.")

kpi = state.query("kpi_summary", cfg.db_url, period)
simulated = state.query("simulated_run_count", cfg.db_url, period)
if simulated:
    st.info(f"{simulated:,} of the runs in this period are simulated demo data (lots SIM-*), not real inspections.",
            icon=":material/science:")
c = st.columns(5)
c[0].metric("Images inspected", f"{int(kpi['inspections']):,}", border=True)
c[1].metric("Defect rate", widgets.percent(kpi["defect_rate"], 2), border=True)
c[2].metric("Yield", widgets.percent(kpi["yield"], 2), border=True)
c[3].metric("First-pass yield", widgets.percent(kpi["first_pass_yield"], 2), border=True)
c[4].metric("SPC signals", int(kpi["out_of_control"]), border=True,
            help="Out-of-control days of the daily p-chart in this period (see Defect analytics).")
if kpi.get("errors"):
    st.caption(f"{int(kpi['errors']):,} unreadable images in this period are not counted in the rates.")

left, right = st.columns([3, 2])
with left:
    st.subheader("Defect rate trend")
    trend = state.query("defect_frequency", cfg.db_url, period, by=("category",), bucket="day")
    if trend.empty:
        st.caption("No scored images in this period.")
    else:
        st.altair_chart(report_charts.trend_chart(trend, "category", title=""), width="stretch")
        if trend["bucket"].nunique() == 1:
            st.caption("Every result in this period is from one day, so the trend is one point per category; it "
                       "grows with each day of inspections. To try the charts now, `qc db demo` adds clearly "
                       "labelled simulated runs (lots SIM-*).")
with right:
    st.subheader("Top defect types")
    pareto = state.query("pareto_table", cfg.db_url, period)
    top = pareto.iloc[:8, [0, 1, 2]].set_axis(["defect type", "NG images", "share"], axis=1) if len(pareto) else pareto
    widgets.show_dataframe(top, "No defective images in this period.",
                           column_config={"share": st.column_config.ProgressColumn(format="%.1f %%", min_value=0,
                                                                                   max_value=100)})
    st.caption("`good` = good parts rejected (false rejects).")

st.subheader("Latest runs")
runs = state.query("latest_runs", cfg.db_url, Filters(), limit=10)
widgets.show_dataframe(
    runs[["id", "started_at", "status", "category", "line", "shift", "lot", "n_images", "n_defective", "n_errors",
          "defect_rate"]] if not runs.empty else runs,
    "No runs yet.",
    column_config={"defect_rate": st.column_config.ProgressColumn("defect rate", format="percent", min_value=0,
                                                                   max_value=1)},
)
