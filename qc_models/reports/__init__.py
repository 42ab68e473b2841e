"""Quality reports: gather the analytics once (:func:`build_report`), write CSV, XLSX or PDF.

``charts`` holds the Altair charts shared with the dashboard.
"""

from qc_models.reports.data import ReportData, build_report
from qc_models.reports.writers import FORMATS, report_bytes, to_csv_bytes, to_xlsx_bytes, write_report


def to_pdf_bytes(report: ReportData) -> bytes:
    """The report as PDF bytes (imports reportlab and vl-convert only when called)."""
    from qc_models.reports.pdf import to_pdf_bytes as render

    return render(report)


__all__ = [
    "FORMATS",
    "ReportData",
    "build_report",
    "report_bytes",
    "to_csv_bytes",
    "to_pdf_bytes",
    "to_xlsx_bytes",
    "write_report",
]
