"""Queries about individual runs and images: run tables, result lists, worst images, heatmaps.

Where ``db.queries`` aggregates, these return rows a person looks at (the latest
runs, one run's results, its errors, the most anomalous images) plus the mean
anomaly-location grid of a selection. Result lists never include the
``anomaly_grid`` blobs; the heatmap reads them in bounded batches.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, func, select

from db.filters import Filters, decision_column, read_frame, where_conditions
from db.schema import GRID_SIZE, ImageResult, InspectionRun
from db.session import describe_url, translate_errors

R, Run = ImageResult, InspectionRun

#: Columns of ``image_results`` shown in result tables (everything but the blob).
RESULT_COLUMNS = tuple(c.name for c in ImageResult.__table__.columns if c.name != "anomaly_grid")
RUN_COLUMNS = tuple(c.name for c in InspectionRun.__table__.columns)


class RunNotFoundError(LookupError):
    """No inspection run with that id in the database."""

    def __init__(self, database: str, run_id: int) -> None:
        super().__init__(f"database {database}: no inspection run with id {run_id}")
        self.run_id = run_id


def filter_options(engine: Engine) -> dict[str, Any]:
    """Values for filter widgets: categories, lines, shifts, lots, runs' date span and result count.

    Read from the (small) runs table, so it is instant even with millions of results.
    """
    out: dict[str, Any] = {}
    with translate_errors(describe_url(engine)), engine.connect() as conn:
        for name, column in (("categories", Run.category), ("lines", Run.line), ("shifts", Run.shift), ("lots", Run.lot)):
            rows = conn.execute(select(column).where(column.is_not(None)).distinct().order_by(column)).scalars()
            out[name] = list(rows)
        first, last, n = conn.execute(
            select(func.min(Run.started_at), func.max(func.coalesce(Run.finished_at, Run.started_at)), func.count())
        ).one()
    out["first_run"], out["last_run"], out["n_runs"] = first, last, int(n)
    return out


def _run_filters(filters: Filters) -> list:
    conds = []
    if filters.start is not None:
        conds.append(Run.started_at >= filters.start)
    if filters.end is not None:
        conds.append(Run.started_at < filters.end)
    for column, values in ((Run.category, filters.categories), (Run.line, filters.lines),
                           (Run.shift, filters.shifts), (Run.lot, filters.lots), (Run.id, filters.run_ids)):
        if values:
            conds.append(column.in_(values))
    return conds


def latest_runs(engine: Engine, filters: Filters = Filters(), limit: int = 50) -> pd.DataFrame:
    """Most recent inspection runs first, with their counters and defect rate (``defective / scored``)."""
    stmt = select(*[Run.__table__.c[c] for c in RUN_COLUMNS]).where(*_run_filters(filters))
    stmt = stmt.order_by(Run.started_at.desc(), Run.id.desc()).limit(limit)
    df = read_frame(engine, stmt)
    scored = df["n_scored"].where(df["n_scored"] > 0)
    df["defect_rate"] = (df["n_defective"] / scored).astype(float)
    for column in ("started_at", "finished_at"):
        df[column] = pd.to_datetime(df[column])
    return df


def run_summary(engine: Engine, run_id: int) -> dict[str, Any]:
    """One run's row as a dict; :class:`RunNotFoundError` names the database when it does not exist."""
    stmt = select(*[Run.__table__.c[c] for c in RUN_COLUMNS]).where(Run.id == run_id)
    with translate_errors(describe_url(engine)), engine.connect() as conn:
        row = conn.execute(stmt).one_or_none()
    if row is None:
        raise RunNotFoundError(describe_url(engine), run_id)
    return dict(row._mapping)


def run_results(
    engine: Engine,
    filters: Filters = Filters(),
    *,
    status: str | None = None,
    defective: bool | None = None,
    defect_type: str | None = None,
    order: str = "path",
    limit: int | None = 1000,
) -> pd.DataFrame:
    """Image results of a selection (usually ``Filters(run_ids=...)``), without the grid blobs.

    ``status`` ('ok'/'error'), ``defective`` (the decision of ``filters.model``) and
    ``defect_type`` (the known one) narrow it down; ``order`` is ``path``, ``worst``
    (highest ensemble score first) or ``time``.
    """
    orders = {
        "path": (R.run_id, R.rel_path),
        "worst": (R.ensemble_score.desc().nulls_last(), R.id),
        "time": (R.inspected_at, R.id),
    }
    if order not in orders:
        raise ValueError(f"unknown order {order!r}; expected one of {', '.join(orders)}")
    conds = where_conditions(filters, scored=False)
    if status is not None:
        conds.append(R.status == status)
    if order == "worst" and status == "ok":  # scored rows only: a plain DESC walks the score index backwards
        conds.append(R.ensemble_score.is_not(None))
        orders["worst"] = (R.ensemble_score.desc(), R.id)
    if defective is not None:
        conds.append(decision_column(filters.model).is_(defective))
    if defect_type is not None:
        conds.append(R.known_defect_type == defect_type)
    stmt = select(*[R.__table__.c[c] for c in RESULT_COLUMNS]).where(*conds).order_by(*orders[order])
    if limit is not None:
        stmt = stmt.limit(limit)
    df = read_frame(engine, stmt)
    df["inspected_at"] = pd.to_datetime(df["inspected_at"])
    return df


def worst_results(engine: Engine, filters: Filters = Filters(), n: int = 10) -> pd.DataFrame:
    """The ``n`` scored images with the highest ensemble score in the selection."""
    return run_results(engine, filters, status="ok", order="worst", limit=n)


def run_errors(engine: Engine, filters: Filters = Filters(), limit: int | None = 1000) -> pd.DataFrame:
    """Images that could not be inspected (``status = 'error'``) with their error text."""
    df = run_results(engine, filters, status="error", limit=limit)
    return df[["id", "run_id", "rel_path", "path", "error_text", "inspected_at"]]


def anomaly_heatmap(
    engine: Engine,
    filters: Filters = Filters(),
    *,
    only_defective: bool = True,
    max_images: int = 20_000,
    batch_size: int = 2_000,
) -> tuple[np.ndarray, int]:
    """Mean anomaly-location grid (GRID_SIZE x GRID_SIZE float32, 0..1) of the selection and how many images it used.

    By default only images flagged by ``filters.model`` count (good images carry
    no location signal) and at most the ``max_images`` most recent ones, so the
    cost is bounded whatever the selection. Blobs of the wrong size are skipped.
    """
    conds = where_conditions(filters)
    conds.append(R.anomaly_grid.is_not(None))
    if only_defective:
        conds.append(decision_column(filters.model).is_(True))
    stmt = select(R.anomaly_grid).where(*conds).order_by(R.inspected_at.desc()).limit(max_images)
    cells = GRID_SIZE * GRID_SIZE
    total = np.zeros(cells, dtype=np.float64)
    used = 0
    with translate_errors(describe_url(engine)), engine.connect() as conn:
        result = conn.execution_options(yield_per=batch_size).execute(stmt)
        for part in result.scalars().partitions():
            blobs = [bytes(b) for b in part if b is not None and len(b) == cells]
            if blobs:
                grids = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(len(blobs), cells)
                total += grids.sum(axis=0, dtype=np.float64)
                used += len(blobs)
    mean = (total / max(used, 1) / 255.0).astype(np.float32).reshape(GRID_SIZE, GRID_SIZE)
    return mean, used


def result_time_span(engine: Engine, filters: Filters = Filters()) -> tuple[datetime | None, datetime | None]:
    """First and last inspection time in the selection (uses the time index).

    Two scalar subqueries, because SQLite answers a lone ``min()`` or ``max()`` from
    the index but scans every row for both in one SELECT.
    """
    conds = where_conditions(filters, scored=False)
    stmt = select(
        select(func.min(R.inspected_at)).where(*conds).scalar_subquery(),
        select(func.max(R.inspected_at)).where(*conds).scalar_subquery(),
    )
    with translate_errors(describe_url(engine)), engine.connect() as conn:
        first, last = conn.execute(stmt).one()
    return first, last


def count_runs(engine: Engine, filters: Filters = Filters()) -> int:
    """Number of inspection runs matching ``filters`` (by start time, category, line, shift, lot, id)."""
    stmt = select(func.count()).select_from(Run).where(*_run_filters(filters))
    with translate_errors(describe_url(engine)), engine.connect() as conn:
        return int(conn.execute(stmt).scalar() or 0)
