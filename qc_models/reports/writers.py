"""CSV and XLSX bytes of a report, and writing any format to a file.

Bytes, not paths, so the dashboard can offer the same files as downloads.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import pandas as pd

from qc_models.reports.data import ReportData

FORMATS = ("csv", "xlsx", "pdf")

#: Runs columns worth a spreadsheet column (the rest are internal).
RUN_COLUMNS = ("id", "started_at", "finished_at", "status", "category", "line", "shift", "lot", "operator",
               "source_folder", "n_images", "n_scored", "n_errors", "n_defective", "defect_rate", "seconds")


def to_csv_bytes(report: ReportData) -> bytes:
    """The defect frequency table (per day, category, line and shift) as UTF-8 CSV."""
    df = report.frequency.copy()
    if "bucket" in df.columns:
        df = df.rename(columns={"bucket": "day"})
        df["day"] = pd.to_datetime(df["day"]).dt.strftime("%Y-%m-%d")
    return df.to_csv(index=False).encode("utf-8")


def runs_table(report: ReportData) -> pd.DataFrame:
    """The runs table restricted to the columns a reader needs."""
    return report.runs[[c for c in RUN_COLUMNS if c in report.runs.columns]]


def to_xlsx_bytes(report: ReportData) -> bytes:
    """One sheet per table: KPIs, filters, frequency, Pareto, p-chart, trend, detection, agreement, runs."""
    sheets = {
        "KPIs": report.kpi_table(),
        "Filters": report.filter_table(),
        "Frequency": report.frequency.rename(columns={"bucket": "day"}),
        "Pareto": report.pareto,
        "p-chart": report.p_chart,
        "Trend": report.trend.rename(columns={"bucket": "time"}),
        "Detection": report.detection,
        "Agreement": report.agreement,
        "Runs": runs_table(report),
    }
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        for name, df in sheets.items():
            df.to_excel(writer, sheet_name=name, index=False)
            sheet = writer.sheets[name]
            for i, column in enumerate(df.columns):
                width = max([len(str(column)), *(len(str(v)) for v in df[column].head(200))]) + 2
                sheet.column_dimensions[sheet.cell(row=1, column=i + 1).column_letter].width = min(width, 60)
            sheet.freeze_panes = "A2"
    return buffer.getvalue()


def report_bytes(report: ReportData, fmt: str) -> bytes:
    """The report in ``fmt`` (``csv``, ``xlsx`` or ``pdf``)."""
    if fmt == "csv":
        return to_csv_bytes(report)
    if fmt == "xlsx":
        return to_xlsx_bytes(report)
    if fmt == "pdf":
        from qc_models.reports.pdf import to_pdf_bytes

        return to_pdf_bytes(report)
    raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}")


def write_report(report: ReportData, fmt: str, out: str | Path) -> Path:
    """Write the report to ``out`` atomically (a reader never sees half a file); returns the path."""
    data = report_bytes(report, fmt)
    out = Path(out).expanduser()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, out)
    except OSError as exc:
        raise OSError(f"{out}: cannot write the report ({exc.strerror or exc})") from exc
    return out
