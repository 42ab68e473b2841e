"""The rows analytics aggregate: the ``result_counts`` rollup, topped up from raw results at partial hours.

``result_counts`` (maintained by triggers, migration 0002) holds per-hour
counters, so it answers exactly any filter whose time bounds fall on whole
hours (dates from the CLI and dashboard). A bound inside an hour (e.g. a
``--from 2024-03-01T10:30`` date-time) is still exact and fast: the whole hours
in between come from the rollup and only the partial edge hours are counted row
by row from ``image_results`` (through its ``inspected_at`` index), joined with
UNION ALL. Both sources expose the same columns (``run_id``, ``t``, the five
grouping strings with '' for NULL, and every counter), so each analytic is
written once and tests can check that the sources agree.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, Integer, Select, case, func, literal, select, union_all
from sqlalchemy.sql import Subquery
from sqlalchemy.sql.elements import ColumnElement

from db.filters import BUCKETS, Filters, decision_column
from db.schema import MODEL_NAMES, MODEL_PAIRS, RESULT_COUNT_MEASURES, ImageResult, result_counts

R = ImageResult
STRING_KEYS = ("category", "line", "shift", "lot", "defect_type")
SOURCES = ("auto", "rollup", "raw")


def _flag(condition: ColumnElement) -> ColumnElement:
    return case((condition, 1), else_=0)


def raw_measures() -> dict[str, ColumnElement]:
    """Per-row 0/1 counters of ``image_results``, the same definitions as the migration's triggers."""
    ok, first = R.status == "ok", R.is_reinspection.is_not(True)
    out: dict[str, ColumnElement] = {"n_results": literal(1, Integer), "n_errors": _flag(R.status == "error")}
    for model in MODEL_NAMES:
        col = decision_column(model)
        out[f"n_scored_{model}"] = _flag(ok & col.is_not(None))
        out[f"n_defective_{model}"] = _flag(ok & col.is_(True))
        out[f"n_first_{model}"] = _flag(ok & col.is_not(None) & first)
        out[f"n_first_defective_{model}"] = _flag(ok & col.is_(True) & first)
    for a, b in MODEL_PAIRS:
        ca, cb = decision_column(a), decision_column(b)
        both = ok & ca.is_not(None) & cb.is_not(None)
        out[f"n_pair_{a}_{b}"] = _flag(both)
        out[f"n_agree_{a}_{b}"] = _flag(both & (ca == cb))
    present = sum((_flag(decision_column(m).is_not(None)) for m in MODEL_NAMES), literal(0))
    positive = sum((_flag(decision_column(m).is_(True)) for m in MODEL_NAMES), literal(0))
    out["n_multi"] = _flag(ok & (present >= 2))
    out["n_all_agree"] = _flag(ok & (present >= 2) & ((positive == 0) | (positive == present)))
    assert tuple(out) == RESULT_COUNT_MEASURES, "raw_measures out of step with db.schema.RESULT_COUNT_MEASURES"
    return out


def _on_hour(moment: datetime | None) -> bool:
    return moment is None or (moment.minute == 0 and moment.second == 0 and moment.microsecond == 0)


def floor_hour(moment: datetime) -> datetime:
    """Start of the hour containing ``moment``."""
    return moment.replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    """``moment`` itself when on a whole hour, else the start of the next hour."""
    floor = floor_hour(moment)
    return floor if floor == moment else floor + timedelta(hours=1)


def uses_rollup(filters: Filters) -> bool:
    """True when the rollup alone answers ``filters`` exactly (time bounds on whole hours)."""
    return _on_hour(filters.start) and _on_hour(filters.end)


def _counts_select(filters: Filters, start: datetime | None, end: datetime | None, *, rollup: bool) -> Select:
    """Counter rows of one source in ``[start, end)`` matching the non-time parts of ``filters``."""
    if rollup:
        rc = result_counts.c
        time_col, columns = rc.hour_start, [rc.run_id, rc.hour_start.label("t"), *(rc[k] for k in STRING_KEYS)]
        columns += [rc[m] for m in RESULT_COUNT_MEASURES]
        strings = {k: rc[k] for k in STRING_KEYS}
        run_col = rc.run_id
    else:
        time_col = R.inspected_at
        strings = {k: func.coalesce(getattr(R, k), "") for k in ("category", "line", "shift", "lot")}
        strings["defect_type"] = func.coalesce(R.known_defect_type, "")
        columns = [R.run_id, R.inspected_at.label("t"), *(strings[k].label(k) for k in STRING_KEYS)]
        columns += [expr.label(name) for name, expr in raw_measures().items()]
        run_col = R.run_id
    conds: list[ColumnElement] = []
    if start is not None:
        conds.append(time_col >= start)
    if end is not None:
        conds.append(time_col < end)
    for key, values in (("category", filters.categories), ("line", filters.lines),
                        ("shift", filters.shifts), ("lot", filters.lots)):
        if values:
            conds.append(strings[key].in_(values))
    if filters.run_ids:
        conds.append(run_col.in_(filters.run_ids))
    return select(*columns).where(*conds)


def counts_source(filters: Filters, source: str = "auto") -> Subquery:
    """Filtered counter rows, exact for any time bounds.

    ``auto``: the rollup for whole hours plus raw rows for the partial hours at
    either end (raw rows only when the whole selection lies within two hours).
    ``rollup`` forces the rollup (exact only for whole-hour bounds) and ``raw``
    the row-by-row count of ``image_results`` (slow on millions of rows); both
    exist for tests and benchmarks.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
    start, end = filters.start, filters.end
    if source == "raw":
        return _counts_select(filters, start, end, rollup=False).subquery("counts")
    if source == "rollup" or uses_rollup(filters):
        return _counts_select(filters, start, end, rollup=True).subquery("counts")
    inner_start = None if start is None else ceil_hour(start)
    inner_end = None if end is None else floor_hour(end)
    if inner_start is not None and inner_end is not None and inner_start >= inner_end:
        return _counts_select(filters, start, end, rollup=False).subquery("counts")  # under two hours of rows
    parts = [_counts_select(filters, inner_start, inner_end, rollup=True)]
    if start is not None and inner_start != start:
        parts.append(_counts_select(filters, start, inner_start, rollup=False))
    if end is not None and inner_end != end:
        parts.append(_counts_select(filters, inner_end, end, rollup=False))
    return union_all(*parts).subquery("counts")


def bucket_of(engine: Engine, column: ColumnElement, unit: str) -> ColumnElement:
    """Start of the hour/day/week (Monday) containing ``column``; text on SQLite, timestamp elsewhere."""
    if unit not in BUCKETS:
        raise ValueError(f"unknown time bucket {unit!r}; expected one of {', '.join(BUCKETS)}")
    if engine.dialect.name == "sqlite":  # SQLAlchemy stores 'YYYY-MM-DD HH:MM:SS.ffffff'
        if unit == "hour":
            return func.substr(column, 1, 13)
        if unit == "day":
            return func.substr(column, 1, 10)
        return func.date(column, "weekday 0", "-6 days")
    return func.date_trunc(unit, column)
