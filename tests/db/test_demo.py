"""The demo generator: consistent counters, an excursion the p-chart catches, re-inspections."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import func, select

from db import queries as q
from db.demo import populate_demo_results
from db.filters import Filters
from db.schema import ImageResult, InspectionRun
from db.session import get_engine, session_scope


def test_run_counters_match_their_results(populated_db: str) -> None:
    with session_scope(populated_db) as session:
        runs = session.execute(select(InspectionRun.id, InspectionRun.n_images, InspectionRun.n_errors,
                                      InspectionRun.n_defective)).all()
        counted = dict(session.execute(select(ImageResult.run_id, func.count()).group_by(ImageResult.run_id)).all())
        errors = dict(session.execute(select(ImageResult.run_id, func.count()).where(ImageResult.status == "error")
                                      .group_by(ImageResult.run_id)).all())
    assert len(runs) == 14 * 3 * 3 * 4
    assert all(counted[r.id] == r.n_images and errors.get(r.id, 0) == r.n_errors for r in runs)


def test_excursion_on_the_last_line_is_out_of_control(populated_db: str) -> None:
    engine = get_engine(populated_db)
    chart = q.p_chart_table(engine, Filters(lines="L3"), "day")
    flagged = set(chart.loc[chart["out_of_control"] & (chart["p"] > chart["center"]), "subgroup"].dt.day)
    assert {5, 6, 7} <= flagged  # the demo's three bad days: 2024-03-05..07
    kpi = q.kpi_summary(engine)
    assert kpi["first_pass_yield"] != kpi["yield"] and kpi["units"] < kpi["inspections"]


def test_demo_is_deterministic_per_seed(sqlite_url: str) -> None:
    engine = get_engine(sqlite_url)
    summary = populate_demo_results(engine, days=1, end=datetime(2024, 1, 2), images_per_run=5, seed=3,
                                    categories=("bottle",), lines=("L1",), shifts=("A", "B"))
    assert summary.n_runs == 2 and summary.start == datetime(2024, 1, 1)
    first = q.yield_counts(engine)
    assert first["inspections"] + first["errors"] == summary.n_results
    with pytest.raises(ValueError, match="days and images_per_run"):
        populate_demo_results(engine, days=0)
