"""Alembic migrations: from empty to head, idempotent, matching the ORM, backfilling the rollup."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from db.schema import Base, ImageResult, InspectionRun, result_counts
from db.session import (
    alembic_config,
    current_revision,
    dispose_engine,
    get_engine,
    head_revision,
    session_scope,
    upgrade,
)

PROJECT = Path(__file__).resolve().parents[2]
TABLES = {"model_versions", "inspection_runs", "run_models", "image_results", "result_counts", "alembic_version"}


def test_upgrade_from_empty_creates_tables_indexes_at_head(db_url: str) -> None:
    engine = get_engine(db_url)
    insp = inspect(engine)
    assert TABLES <= set(insp.get_table_names())
    result_indexes = {ix["name"] for ix in insp.get_indexes("image_results")}
    assert {"ix_image_results_inspected_at", "ix_image_results_content_hash", "ix_image_results_ensemble_score"} <= result_indexes
    run_indexes = {ix["name"] for ix in insp.get_indexes("inspection_runs")}
    assert {"ix_inspection_runs_started_at", "ix_inspection_runs_category_line_shift_lot"} <= run_indexes
    uniques = {tuple(u["column_names"]) for u in insp.get_unique_constraints("image_results")}
    assert ("run_id", "rel_path") in uniques
    assert current_revision(engine) == head_revision() == "0002"


def test_orm_schema_matches_migrations(db_url: str) -> None:
    with get_engine(db_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_upgrade_is_idempotent_and_independent_of_cwd(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # script_location must not depend on the working directory
    url = f"sqlite:///{tmp_path / 'a.db'}"
    assert upgrade(url) == head_revision()
    assert upgrade(url) == head_revision()
    assert current_revision(url) == head_revision()
    dispose_engine(url)


def test_alembic_command_line_reports_head(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    alembic = [sys.executable, "-m", "alembic", "-c", str(PROJECT / "db" / "alembic.ini"), "-x", f"url={url}"]
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    subprocess.run([*alembic, "upgrade", "head"], check=True, capture_output=True, cwd=tmp_path, env=env)
    out = subprocess.run([*alembic, "current"], check=True, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert f"{head_revision()} (head)" in out.stdout


def _rollup_totals(url: str) -> dict[tuple[int, str], tuple[int, int, int]]:
    with session_scope(url) as session:
        rows = session.execute(
            select(result_counts.c.run_id, result_counts.c.defect_type, result_counts.c.n_results,
                   result_counts.c.n_scored_ensemble, result_counts.c.n_defective_ensemble)
        ).all()
    out: dict[tuple[int, str], tuple[int, int, int]] = {}
    for run_id, kind, n, scored, defective in rows:
        a, b, c = out.get((run_id, kind), (0, 0, 0))
        out[(run_id, kind)] = (a + n, b + scored, c + defective)
    return out


def test_upgrade_from_first_revision_backfills_rollup_and_downgrade_works(db_url: str) -> None:
    from alembic import command

    engine = get_engine(db_url)
    with engine.connect() as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
        conn.commit()
    assert current_revision(engine) == "0001"
    assert "result_counts" not in inspect(engine).get_table_names()
    with session_scope(engine, write=True) as session:
        run = InspectionRun(source_folder="/f", category="tile")
        run.results += [
            ImageResult(rel_path="1.png", path="/f/1.png", is_defective=True, known_defect_type="crack"),
            ImageResult(rel_path="2.png", path="/f/2.png", is_defective=False, known_defect_type="crack"),
            ImageResult(rel_path="3.png", path="/f/3.png", status="error"),
        ]
        session.add(run)
    assert upgrade(engine) == "0002"
    assert _rollup_totals(db_url) == {(1, "crack"): (2, 2, 1), (1, ""): (1, 0, 0)}
    with session_scope(engine, write=True) as session:  # triggers are live after the backfill
        run = session.get(InspectionRun, 1)
        run.results.append(ImageResult(rel_path="4.png", path="/f/4.png", is_defective=True, known_defect_type="crack"))
    assert _rollup_totals(db_url)[(1, "crack")] == (3, 3, 2)


@pytest.mark.parametrize("n_processes", [2])
def test_concurrent_upgrades_of_a_new_file_both_succeed(tmp_path, n_processes: int) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    code = "import sys; from db.session import upgrade; print(upgrade(sys.argv[1]))"
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    procs = [subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(n_processes)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * n_processes, outputs
    assert all(out.strip() == head_revision() for out, _ in outputs)
