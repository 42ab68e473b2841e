"""The PDF report: title, filters, KPIs, Pareto, p-chart and trend charts, then the tables.

Built with reportlab's flowables; charts are the shared Altair charts rendered
to PNG by vl-convert, so nothing needs a browser or the network.
"""

from __future__ import annotations

import io
import math

import pandas as pd
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.platypus import Image, PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from qc_models.reports import charts
from qc_models.reports.data import FREQUENCY_BY, ReportData
from qc_models.reports.writers import runs_table

PAGE_WIDTH = A4[0] - 3 * cm
MAX_TABLE_ROWS = 40


def _fmt(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, pd.Timestamp):
        return f"{value:%Y-%m-%d %H:%M}"
    return str(value)


def _table(df: pd.DataFrame, note: str | None = None) -> list:
    """A styled table of at most MAX_TABLE_ROWS rows (plus a note when cut)."""
    styles = getSampleStyleSheet()
    shown = df.head(MAX_TABLE_ROWS)
    data = [[str(c).replace("_", " ") for c in shown.columns]]
    data += [[_fmt(v) for v in row] for row in shown.itertuples(index=False)]
    table = Table(data, repeatRows=1, hAlign="LEFT")
    table.setStyle(TableStyle([
        ("FONTSIZE", (0, 0), (-1, -1), 7),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde5f2")),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]))
    out: list = [table]
    if len(df) > MAX_TABLE_ROWS:
        out.append(Paragraph(f"First {MAX_TABLE_ROWS} of {len(df)} rows; the XLSX export has all of them.",
                             styles["Italic"]))
    if note:
        out.append(Paragraph(note, styles["Italic"]))
    return out


def _chart(chart, width: float = PAGE_WIDTH) -> Image:  # type: ignore[no-untyped-def]
    from PIL import Image as PILImage

    png = charts.to_png(chart.properties(width=600))
    w, h = PILImage.open(io.BytesIO(png)).size
    return Image(io.BytesIO(png), width=width, height=width * h / w)


def to_pdf_bytes(report: ReportData) -> bytes:
    """Render the report as an A4 PDF."""
    styles = getSampleStyleSheet()
    story: list = [Paragraph(report.title, styles["Title"])]
    if report.simulated_note:  # the first thing a reader sees, in red
        story.append(Paragraph(f'<font color="#b00020"><b>{report.simulated_note}</b></font>', styles["Normal"]))
    story += [Paragraph("Filters", styles["Heading2"]), *_table(report.filter_table())]
    story += [Paragraph("Key figures", styles["Heading2"]), *_table(report.kpi_table())]
    for note in report.notes:
        if note == report.simulated_note:
            continue
        story.append(Paragraph(note, styles["Italic"]))
    if not report.is_empty:
        story += [PageBreak(), Paragraph("Pareto of defect types", styles["Heading2"])]
        story.append(_chart(charts.pareto_chart(report.pareto)) if len(report.pareto) else
                     Paragraph("No defective images.", styles["Normal"]))
        story += [Paragraph(f"p-chart by {report.subgroup}", styles["Heading2"]),
                  _chart(charts.p_chart(report.p_chart, title=f"p-chart by {report.subgroup}"))]
        story += [Paragraph("Defect rate over time", styles["Heading2"]), _chart(charts.trend_chart(report.trend))]
        story += [PageBreak(), Paragraph("Pareto table", styles["Heading2"]), *_table(report.pareto)]
        flagged = report.p_chart[report.p_chart["out_of_control"]]
        story += [Paragraph(f"Out-of-control points ({len(flagged)})", styles["Heading2"])]
        story += _table(flagged[["subgroup", "n", "x", "p", "lcl", "ucl", "rule"]]) if len(flagged) else [
            Paragraph("All subgroups within limits; no run of 8.", styles["Normal"])]
        summary = report.frequency.groupby(list(FREQUENCY_BY), dropna=False, as_index=False)[
            ["n_inspected", "n_defective"]].sum()
        summary["defect_rate"] = summary["n_defective"] / summary["n_inspected"]
        story += [Paragraph("Defect frequency by category, line and shift", styles["Heading2"]), *_table(summary)]
        story += [Paragraph("Detection rate per known defect type", styles["Heading2"])]
        story += _table(report.detection, "The 'good' row is the false-reject rate.") if len(report.detection) else [
            Paragraph("No images with a known defect type.", styles["Normal"])]
        story += [Paragraph("Model agreement", styles["Heading2"]), *_table(report.agreement)]
    story += [Spacer(1, 0.4 * cm), Paragraph("Inspection runs", styles["Heading2"]), *_table(runs_table(report)[
        ["id", "started_at", "status", "category", "line", "shift", "lot", "n_scored", "n_defective", "defect_rate"]
    ] if len(report.runs) else pd.DataFrame({"runs": ["none"]}))]
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=1.5 * cm, rightMargin=1.5 * cm,
                            topMargin=1.5 * cm, bottomMargin=1.5 * cm, title=report.title,
                            author="qc report")
    doc.build(story, onFirstPage=_footer, onLaterPages=_footer)
    return buffer.getvalue()


def _footer(canvas, doc) -> None:  # type: ignore[no-untyped-def]
    canvas.saveState()
    canvas.setFont("Helvetica", 7)
    canvas.drawRightString(A4[0] - 1.5 * cm, 0.8 * cm, f"page {doc.page}")
    canvas.restoreState()
