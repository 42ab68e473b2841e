"""The content of a quality report: every table gathered once, then written as CSV, XLSX or PDF.

The dashboard calls :func:`build_report` and hands the result to the same writers
for its download buttons, so a downloaded file always matches the ``qc report`` output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
from sqlalchemy import Engine

from db import queries, run_queries
from db.demo import SIMULATED_LOT_PREFIX, SIMULATED_OPERATOR, simulated_run_count
from db.filters import Filters
from db.schema import utcnow
from db.session import describe_url

#: Grouping of the report's frequency table (and of its CSV export).
FREQUENCY_BY = ("category", "line", "shift")

#: Labels and formats of the KPI table, in display order: (key, label, kind).
KPI_ROWS = (
    ("inspections", "Images inspected", "int"),
    ("defective", "Defective images", "int"),
    ("defect_rate", "Defect rate", "pct"),
    ("yield", "Yield", "pct"),
    ("first_pass_yield", "First-pass yield", "pct"),
    ("dpu", "Defects per unit (DPU)", "float"),
    ("dpmo", "DPMO", "int"),
    ("opportunities_per_unit", "Opportunities per unit (DPMO)", "float"),
    ("errors", "Unreadable images (not counted)", "int"),
    ("runs", "Inspection runs", "int"),
    ("out_of_control", "Out-of-control p-chart points", "int"),
    ("simulated_runs", "SIMULATED runs (not real inspections)", "int"),  # shown only when > 0
)


@dataclass
class ReportData:
    """All tables of one report; the writers only format them."""

    title: str
    generated_at: datetime
    database: str
    filters: Filters
    kpis: dict[str, float]
    frequency: pd.DataFrame
    pareto: pd.DataFrame
    p_chart: pd.DataFrame
    trend: pd.DataFrame
    detection: pd.DataFrame
    agreement: pd.DataFrame
    runs: pd.DataFrame
    subgroup: str = "day"
    notes: list[str] = field(default_factory=list)
    simulated_runs: int = 0  # runs in the selection written by db.demo, not by a real inspection

    @property
    def simulated_note(self) -> str | None:
        """The warning every format shows when the selection holds simulated runs."""
        if not self.simulated_runs:
            return None
        return (f"SIMULATED DATA: {self.simulated_runs:,} of the runs in this selection are simulated "
                f"(lots {SIMULATED_LOT_PREFIX}*, operator '{SIMULATED_OPERATOR}'), not real inspections.")

    @property
    def is_empty(self) -> bool:
        """True when no scored image matched the filters."""
        return not self.kpis.get("inspections")

    def kpi_table(self) -> pd.DataFrame:
        """KPIs as ``metric``/``value`` rows with readable formatting."""
        rows = []
        for key, label, kind in KPI_ROWS:
            if key == "simulated_runs":
                if self.simulated_runs:
                    rows.append((label, f"{self.simulated_runs:,}"))
                continue
            value = self.kpis.get(key, float("nan"))
            if pd.isna(value):
                text = "n/a"
            elif kind == "pct":
                text = f"{100 * value:.2f} %"
            elif kind == "int":
                text = f"{value:,.0f}"
            else:
                text = f"{value:.4g}"
            rows.append((label, text))
        return pd.DataFrame(rows, columns=["metric", "value"])

    def filter_table(self) -> pd.DataFrame:
        """The filters as ``filter``/``value`` rows, plus the database and generation time."""
        rows = list(self.filters.describe().items())
        rows += [("p-chart subgroup", self.subgroup), ("database", self.database),
                 ("generated (UTC)", f"{self.generated_at:%Y-%m-%d %H:%M}")]
        return pd.DataFrame(rows, columns=["filter", "value"])


def build_report(
    engine: Engine,
    filters: Filters = Filters(),
    *,
    subgroup: str = "day",
    trend_bucket: str = "day",
    runs_limit: int = 200,
    opportunities_per_unit: float | str = 1.0,
    title: str = "Visual inspection quality report",
) -> ReportData:
    """Run every report query for ``filters`` (each is a fast SQL aggregate) and collect the tables."""
    kpis = queries.kpi_summary(engine, filters, subgroup=subgroup, opportunities_per_unit=opportunities_per_unit)
    report = ReportData(
        title=title,
        generated_at=utcnow(),
        database=describe_url(engine),
        filters=filters,
        kpis=kpis,
        frequency=queries.defect_frequency(engine, filters, by=FREQUENCY_BY, bucket="day"),
        pareto=queries.pareto_table(engine, filters),
        p_chart=queries.p_chart_table(engine, filters, subgroup=subgroup),
        trend=queries.defect_frequency(engine, filters, by=("category",), bucket=trend_bucket),
        detection=queries.detection_rates(engine, filters),
        agreement=queries.model_agreement(engine, filters),
        runs=run_queries.latest_runs(engine, filters, limit=runs_limit),
        subgroup=subgroup,
        simulated_runs=simulated_run_count(engine, filters),
    )
    if report.simulated_note:
        report.notes.append(report.simulated_note)
    if report.is_empty:
        report.notes.append("No scored images match these filters.")
    if len(report.runs) == runs_limit:
        report.notes.append(f"Runs table limited to the {runs_limit} most recent runs.")
    return report
