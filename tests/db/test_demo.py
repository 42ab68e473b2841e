"""The simulation: consistent counters, an excursion the p-chart catches, re-inspections, clear labels."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import func, select

from db import queries as q
from db.demo import (
    SIMULATED_LOT_PREFIX,
    SIMULATED_OPERATOR,
    SIMULATED_SCHEME,
    is_simulated,
    populate_demo_results,
    simulated_run_count,
)
from db.filters import Filters
from db.schema import ImageResult, InspectionRun
from db.session import get_engine, session_scope
from qc_models.data.synthetic import DEMO_CATEGORIES, defect_types


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


def test_simulation_uses_the_synthetic_categories_and_defect_types(populated_db: str) -> None:
    with session_scope(populated_db) as session:
        pairs = set(session.execute(select(ImageResult.category, ImageResult.known_defect_type).distinct()).all())
    seen: dict[str, set[str]] = {}
    for category, kind in pairs:
        seen.setdefault(category, set()).add(kind)
    assert set(seen) == set(DEMO_CATEGORIES)
    for category, kinds in seen.items():
        assert kinds - {"good"} == set(defect_types(category)), category


def test_every_simulated_run_and_result_is_labelled(populated_db: str) -> None:
    with session_scope(populated_db) as session:
        runs = session.execute(select(InspectionRun.lot, InspectionRun.source_folder, InspectionRun.operator,
                                      InspectionRun.host, InspectionRun.models)).all()
        unlabelled_results = session.execute(select(func.count()).select_from(ImageResult).where(
            ~ImageResult.lot.startswith(SIMULATED_LOT_PREFIX) | ~ImageResult.path.startswith(SIMULATED_SCHEME)
        )).scalar()
    assert runs and unlabelled_results == 0
    for lot, folder, operator, host, models in runs:
        assert lot.startswith(SIMULATED_LOT_PREFIX) and is_simulated(folder), (lot, folder)
        assert operator == host == SIMULATED_OPERATOR and '"version": "simulated"' in models
    engine = get_engine(populated_db)
    assert simulated_run_count(engine) == len(runs)
    assert simulated_run_count(engine, Filters(categories="bottle", lines="L1")) == 14 * 3


def test_real_runs_are_not_counted_as_simulated(sqlite_url: str) -> None:
    engine = get_engine(sqlite_url)
    populate_demo_results(engine, days=1, end=datetime(2024, 1, 2), images_per_run=3, seed=1,
                          categories=("wood",), lines=("L1",), shifts=("A",))
    with session_scope(engine, write=True) as session:
        run = InspectionRun(source_folder="/plant/line1/lot7", category="wood", lot="LOT7", operator="anna",
                            status="completed", started_at=datetime(2024, 1, 1, 9))
        session.add(run)
        session.flush()
        session.add(ImageResult(run_id=run.id, rel_path="a.png", path="/plant/line1/lot7/a.png", status="ok",
                                is_defective=False, inspected_at=datetime(2024, 1, 1, 9, 5), category="wood"))
    assert q.count_runs(engine) == 2 and simulated_run_count(engine) == 1
    assert not is_simulated("/plant/line1/lot7") and not is_simulated(None)
    with pytest.raises(ValueError, match="unknown synthetic category 'gearbox'"):
        populate_demo_results(engine, days=1, categories=("gearbox",))
    summary = populate_demo_results(engine, days=1, images_per_run=2, categories=("gearbox",), lines=("L1",),
                                    shifts=("A",), defect_types={"gearbox": ("crack",)})
    assert summary.n_runs == 1
