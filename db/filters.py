"""The selection every analytic works on, and the SQL conditions it becomes.

One :class:`Filters` value travels from the CLI flags or dashboard sidebar through
the queries into report headers, so "what was counted" is defined once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Engine, Select
from sqlalchemy.sql.elements import ColumnElement

from db.schema import MEMBER_MODELS, MODEL_NAMES, ImageResult
from db.session import describe_url, translate_errors

R = ImageResult
BUCKETS = ("hour", "day", "week")
SUBGROUPS = ("run", *BUCKETS)
#: Dimensions analytics can group by; ``defect_type`` is the known (folder) defect type.
DIMENSIONS = ("category", "defect_type", "line", "shift", "lot", "run_id")
UNLABELLED = "unlabelled"


def _as_tuple(value: str | int | Iterable[Any] | None) -> tuple:
    if value is None:
        return ()
    if isinstance(value, (str, int)):
        return (value,)
    return tuple(v for v in value if v not in (None, ""))


def _as_datetime(value: date | datetime | str | None, *, end: bool) -> datetime | None:
    """Dates mean whole days: a start date is its midnight, an end date includes that day."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"not an ISO date or date-time: {value!r}") from exc
        value = parsed.date() if len(value) <= 10 else parsed
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    day = datetime.combine(value, time())
    return day + timedelta(days=1) if end else day


@dataclass(frozen=True)
class Filters:
    """Which image results an analytic covers, and whose decision counts.

    ``start`` is inclusive and ``end`` exclusive (a plain date as ``end`` includes
    that whole day); both are naive UTC. Empty tuples mean "all". ``model`` picks
    the decision that counts as defective: the ``ensemble`` (production) or one
    member (``cae``, ``unet``, ``patchcore``).
    """

    start: datetime | None = None
    end: datetime | None = None
    categories: tuple[str, ...] = field(default_factory=tuple)
    lines: tuple[str, ...] = field(default_factory=tuple)
    shifts: tuple[str, ...] = field(default_factory=tuple)
    lots: tuple[str, ...] = field(default_factory=tuple)
    run_ids: tuple[int, ...] = field(default_factory=tuple)
    model: str = "ensemble"

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _as_datetime(self.start, end=False))
        object.__setattr__(self, "end", _as_datetime(self.end, end=True))
        for name in ("categories", "lines", "shifts", "lots"):
            object.__setattr__(self, name, tuple(str(v) for v in _as_tuple(getattr(self, name))))
        object.__setattr__(self, "run_ids", tuple(int(v) for v in _as_tuple(self.run_ids)))
        if self.model not in MODEL_NAMES:
            raise ValueError(f"unknown model {self.model!r}; expected one of {', '.join(MODEL_NAMES)}")
        if self.start and self.end and self.start >= self.end:
            raise ValueError(f"empty date range: start {self.start} is not before end {self.end}")

    def with_(self, **changes: Any) -> Filters:
        """A copy with some fields changed (dates re-normalised)."""
        return replace(self, **changes)

    def describe(self) -> dict[str, str]:
        """Human-readable filter values for report headers (whole days shown as dates, end included)."""

        def moment(value: datetime | None, *, end: bool) -> str:
            if value is None:
                return "(all)"
            if value.time() == time():
                return f"{(value - timedelta(days=1) if end else value):%Y-%m-%d}"
            return f"{'before ' if end else ''}{value:%Y-%m-%d %H:%M}"

        return {
            "from": moment(self.start, end=False),
            "to": moment(self.end, end=True),
            "category": ", ".join(self.categories) or "(all)",
            "line": ", ".join(self.lines) or "(all)",
            "shift": ", ".join(self.shifts) or "(all)",
            "lot": ", ".join(self.lots) or "(all)",
            "runs": ", ".join(map(str, self.run_ids)) or "(all)",
            "model": self.model,
        }


def decision_column(model: str) -> ColumnElement:
    """The boolean column holding ``model``'s OK/NG decision."""
    if model == "ensemble":
        return R.is_defective
    if model in MEMBER_MODELS:
        return getattr(R, f"{model}_defective")
    raise ValueError(f"unknown model {model!r}; expected one of {', '.join(MODEL_NAMES)}")


def where_conditions(filters: Filters, *, scored: bool = True) -> list[ColumnElement]:
    """Conditions on ``image_results`` rows; ``scored`` keeps only rows decided by ``filters.model``."""
    conds: list[ColumnElement] = []
    if filters.start is not None:
        conds.append(R.inspected_at >= filters.start)
    if filters.end is not None:
        conds.append(R.inspected_at < filters.end)
    for column, values in (
        (R.category, filters.categories),
        (R.line, filters.lines),
        (R.shift, filters.shifts),
        (R.lot, filters.lots),
        (R.run_id, filters.run_ids),
    ):
        if values:
            conds.append(column == values[0] if len(values) == 1 else column.in_(values))
    if scored:
        conds.append(R.status == "ok")
        conds.append(decision_column(filters.model).is_not(None))
    return conds


def bucket_to_datetime(series: pd.Series, unit: str) -> pd.Series:
    """Bucket labels from SQL (text on SQLite, timestamps elsewhere) as pandas datetimes."""
    if series.dtype == object and unit == "hour":
        series = series.astype(str).str.slice(0, 13) + ":00:00"
    return pd.to_datetime(series)


def read_frame(engine: Engine, stmt: Select, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Run ``stmt`` and return its rows as a DataFrame; database failures become ``DatabaseError``."""
    with translate_errors(describe_url(engine)), engine.connect() as conn:
        result = conn.execute(stmt)
        rows = result.all()
        return pd.DataFrame(rows, columns=list(columns or result.keys()))


def rate(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    """Element-wise ratio with NaN where the denominator is zero."""
    return (numerator / denominator.where(denominator > 0)).astype(float)


