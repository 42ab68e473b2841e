"""Reports written in each format and read back: CSV/XLSX with pandas, PDF with pypdf."""

from __future__ import annotations

import io
from datetime import date

import pandas as pd
import pytest
from pypdf import PdfReader

from db.filters import Filters
from db.session import get_engine
from qc_models.cli import main
from qc_models.reports import build_report, report_bytes, to_csv_bytes, to_xlsx_bytes, write_report
from qc_models.reports.charts import location_heatmap, p_chart, pareto_chart, to_png, trend_chart
from tests.fixtures_db import POPULATED_END

SHEETS = ["KPIs", "Filters", "Frequency", "Pareto", "p-chart", "Trend", "Detection", "Agreement", "Runs"]


@pytest.fixture(scope="module")
def report(populated_db: str):  # type: ignore[no-untyped-def]
    return build_report(get_engine(populated_db), Filters(categories=("bottle", "metal_nut")))


def test_csv_is_the_frequency_table(report) -> None:  # type: ignore[no-untyped-def]
    df = pd.read_csv(io.BytesIO(to_csv_bytes(report)))
    assert list(df.columns) == ["category", "line", "shift", "day", "n_inspected", "n_defective", "defect_rate"]
    assert set(df["category"]) == {"bottle", "metal_nut"}
    assert df["n_inspected"].sum() == report.kpis["inspections"]
    assert df["n_defective"].sum() == report.kpis["defective"]
    assert (df["defect_rate"] - df["n_defective"] / df["n_inspected"]).abs().max() < 1e-9


def test_xlsx_has_one_sheet_per_table(report) -> None:  # type: ignore[no-untyped-def]
    sheets = pd.read_excel(io.BytesIO(to_xlsx_bytes(report)), sheet_name=None)
    assert list(sheets) == SHEETS
    pareto = sheets["Pareto"]
    assert pareto["cumulative_percent"].iloc[-1] == pytest.approx(100.0)
    assert pareto["count"].is_monotonic_decreasing
    kpis = dict(zip(sheets["KPIs"]["metric"], sheets["KPIs"]["value"]))
    assert kpis["Images inspected"] == f"{int(report.kpis['inspections']):,}"
    assert len(sheets["Runs"]) == len(report.runs) == 200  # of 14 x 3 x 3 x 2 = 252 runs
    assert report.notes[1:] == ["Runs table limited to the 200 most recent runs."]
    assert report.simulated_runs == report.kpis["runs"] == 252 and report.notes[0].startswith("SIMULATED DATA: 252")
    assert kpis["SIMULATED runs (not real inspections)"] == "252"
    assert set(sheets["p-chart"].columns) >= {"p", "ucl", "lcl", "out_of_control", "rule"}


def test_pdf_has_title_kpis_charts_and_tables(report) -> None:  # type: ignore[no-untyped-def]
    reader = PdfReader(io.BytesIO(report_bytes(report, "pdf")))
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert len(reader.pages) >= 3
    for needle in ("Visual inspection quality report", "Key figures", "Pareto of defect types", "p-chart by day",
                   "Defect rate over time", "Detection rate per known defect type", "Inspection runs", "bottle, metal_nut", "SIMULATED DATA",
                   f"{int(report.kpis['inspections']):,}"):
        assert needle in text, needle
    assert sum(len(page.images) for page in reader.pages) == 3  # Pareto, p-chart, trend


def test_empty_selection_still_gives_a_report(populated_db: str, tmp_path) -> None:
    empty = build_report(get_engine(populated_db), Filters(categories="no-such-category"))
    assert empty.is_empty and empty.notes == ["No scored images match these filters."]
    pdf = write_report(empty, "pdf", tmp_path / "empty.pdf")
    assert "No scored images match these filters." in PdfReader(pdf).pages[0].extract_text()
    assert pd.read_csv(write_report(empty, "csv", tmp_path / "empty.csv")).empty
    with pytest.raises(ValueError, match="unknown report format 'doc'"):
        report_bytes(empty, "doc")


def test_charts_build_and_render(report) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    for chart in (pareto_chart(report.pareto), p_chart(report.p_chart), trend_chart(report.trend),
                  location_heatmap(np.eye(4))):
        spec = chart.to_dict()
        assert "$schema" in spec
    png = to_png(pareto_chart(report.pareto), scale=1)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_qc_report_cli_writes_each_format(populated_db: str, tmp_path, capsys) -> None:
    args = ["report", "--db", populated_db, "--from", "2024-03-08", "--to", str(POPULATED_END.date()),
            "--category", "bottle", "--line", "L3"]
    assert main([*args, "--out", str(tmp_path / "r.csv")]) == 0
    csv = pd.read_csv(tmp_path / "r.csv")
    assert set(csv["category"]) == {"bottle"} and set(csv["line"]) == {"L3"}
    assert csv["day"].min() == "2024-03-08" and csv["day"].max() == "2024-03-14"  # the demo ends 03-15 00:00
    assert main([*args, "--format", "xlsx", "--opportunities", "defect_types", "--out", str(tmp_path / "r.bin")]) == 0
    kpis = pd.read_excel(tmp_path / "r.bin", sheet_name="KPIs").set_index("metric")["value"]
    assert kpis["Opportunities per unit (DPMO)"] == "3"  # bottle's three synthetic defect types
    captured = capsys.readouterr()
    assert "wrote" in captured.out and "images inspected" in captured.out
    assert "note: SIMULATED DATA" in captured.err


def test_qc_report_cli_errors_are_clear(tmp_path, capsys) -> None:
    missing = tmp_path / "none.db"
    assert main(["report", "--db", f"sqlite:///{missing}", "--out", str(tmp_path / "x.csv")]) == 2
    assert f"database {missing} does not exist" in capsys.readouterr().err
    empty_db = tmp_path / "empty.db"
    empty_db.write_bytes(b"")
    assert main(["report", "--db", f"sqlite:///{empty_db}", "--out", str(tmp_path / "x.csv")]) == 2
    assert "qc db upgrade" in capsys.readouterr().err
    assert main(["report", "--db", f"sqlite:///{empty_db}", "--out", str(tmp_path / "x.txt")]) == 2
    assert "cannot tell the report format" in capsys.readouterr().err


def test_qc_db_commands(tmp_path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["db", "current", "--db", url]) == 1
    assert main(["db", "upgrade", "--db", url]) == 0
    assert main(["db", "current", "--db", url]) == 0
    assert main(["db", "demo", "--db", url, "--days", "1", "--images-per-run", "5"]) == 0
    out = capsys.readouterr().out
    assert "revision (empty)" in out and "(head)" in out and "added 36 SIMULATED runs" in out and "lots SIM-*" in out
    assert main(["report", "--db", url, "--from", str(date(2099, 1, 1)), "--out", str(tmp_path / "r.xlsx")]) == 0
    assert "No scored images" in capsys.readouterr().err
