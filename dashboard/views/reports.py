"""Reports: the analytics of a selection as a preview and as CSV, XLSX and PDF downloads."""

from __future__ import annotations

import streamlit as st

from dashboard import state, widgets
from qc_models import reports
from qc_models.reports import charts as report_charts

st.title("Reports")
cfg = state.settings()
if not state.database_exists(cfg.db_url):
    widgets.fix_banner("No inspection results to report on yet. Run a batch inspection, or fill the database with "
                       "demo runs:", "qc demo-setup", kind="info")
    st.stop()
filters = widgets.filters_panel(cfg.db_url)
if filters is None:
    widgets.fix_banner("The database holds no inspection results yet.", "qc demo-setup", kind="info")
    st.stop()

subgroup = st.segmented_control("p-chart subgroup", ["run", "day", "week"], default="day", key="rep_subgroup") or "day"
report = state.report(cfg.db_url, filters, subgroup)
start = f"{filters.start:%Y%m%d}" if filters.start else "all"
end = f"{filters.end:%Y%m%d}" if filters.end else "all"
stem = f"qc_report_{start}_{end}"

st.subheader("Download")
d = st.columns(3)
d[0].download_button("Download CSV", reports.to_csv_bytes(report), file_name=f"{stem}.csv", mime="text/csv",
                     icon=":material/table:", width="stretch", on_click="ignore",
                     help="Defect frequency per day, category, line and shift.")
d[1].download_button("Download XLSX", lambda: reports.to_xlsx_bytes(report), file_name=f"{stem}.xlsx",
                     mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                     icon=":material/grid_on:", width="stretch", on_click="ignore",
                     help="One sheet per table: KPIs, filters, frequency, Pareto, p-chart, trend, detection, runs.")
d[2].download_button("Download PDF", lambda: reports.to_pdf_bytes(report), file_name=f"{stem}.pdf",
                     mime="application/pdf", icon=":material/picture_as_pdf:", width="stretch", on_click="ignore",
                     help="The printable report with charts (rendered when you click).")
for note in report.notes:
    st.info(note)

st.subheader(f"Preview · {report.title}")
left, right = st.columns(2)
left.dataframe(report.kpi_table(), hide_index=True, width="stretch")
right.dataframe(report.filter_table(), hide_index=True, width="stretch")
if report.is_empty:
    st.stop()

left, right = st.columns(2)
if len(report.pareto):
    left.altair_chart(report_charts.pareto_chart(report.pareto), width="stretch")
if len(report.p_chart):
    right.altair_chart(report_charts.p_chart(report.p_chart, title=f"p-chart by {subgroup}"), width="stretch")
if len(report.trend):
    st.altair_chart(report_charts.trend_chart(report.trend, "category"), width="stretch")

with st.expander("Defect frequency (the CSV)", expanded=False, icon=":material/table:"):
    st.dataframe(report.frequency, hide_index=True, width="stretch")
with st.expander("Detection rate per defect type"):
    widgets.show_dataframe(report.detection, "No images with a known defect type.")
with st.expander("Model agreement"):
    widgets.show_dataframe(report.agreement, "No images scored by two models.")
with st.expander(f"Runs ({len(report.runs)})"):
    widgets.show_dataframe(report.runs, "No runs in the selection.")
