"""Analytics queries: aggregation happens in SQL, results come back as small DataFrames.

Every query takes a :class:`~db.filters.Filters` (shared by the CLI, reports and
dashboard) and sums the counters of ``db.rollup.counts_source``: the trigger-kept
``result_counts`` rollup when the time bounds are whole hours, otherwise the
same counters computed from ``image_results``. An image counts as inspected by a
model when it was read (``status = 'ok'``) and that model decided on it, so
unreadable files never dilute defect rates. The math on top (Pareto, p-chart
limits, yield, DPMO) is in ``qc_models.analytics``. ``source`` ('auto', 'rollup',
'raw') exists for tests and benchmarks.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from sqlalchemy import Engine, case, func, select
from sqlalchemy.sql.elements import ColumnElement

from db.filters import DIMENSIONS, SUBGROUPS, UNLABELLED, Filters, bucket_to_datetime, rate, read_frame
from db.rollup import bucket_of, counts_source
from db.run_queries import count_runs  # noqa: F401  (re-exported: callers ask db.queries for counts)
from db.schema import MODEL_NAMES, MODEL_PAIRS, InspectionRun

_ALIASES = {"known_defect_type": "defect_type"}


def _dimensions(by: Sequence[str]) -> list[str]:
    names = [_ALIASES.get(d, d) for d in by]
    unknown = [d for d in names if d not in DIMENSIONS]
    if unknown:
        raise ValueError(f"cannot group by {unknown}; choose from {', '.join(DIMENSIONS)}")
    return names


def _total(column: ColumnElement) -> ColumnElement:
    return func.coalesce(func.sum(column), 0)


def _restore_nulls(df: pd.DataFrame) -> pd.DataFrame:
    """The rollup stores NULL strings as ''; show them as None, or ``unlabelled`` for defect types."""
    for name in ("category", "line", "shift", "lot"):
        if name in df.columns:
            df[name] = df[name].replace("", None)
    if "defect_type" in df.columns:
        df["defect_type"] = df["defect_type"].replace("", UNLABELLED)
    return df


def _ints(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    df[list(columns)] = df[list(columns)].fillna(0).astype("int64")
    return df


# ---------------------------------------------------------------- frequency, Pareto, p-chart


def defect_frequency(
    engine: Engine,
    filters: Filters = Filters(),
    by: Sequence[str] = ("category",),
    bucket: str | None = None,
    source: str = "auto",
) -> pd.DataFrame:
    """Inspected and defective image counts per group (and time bucket), with the defect rate.

    ``by`` names dimensions from ``DIMENSIONS``; ``bucket`` is ``hour``, ``day`` or
    ``week`` (weeks start on Monday). Columns: ``*by``, ``[bucket]``,
    ``n_inspected``, ``n_defective``, ``defect_rate``; groups nothing was scored in are omitted.
    """
    names = _dimensions(by)
    src = counts_source(filters, source)
    keys: list[ColumnElement] = [src.c[d].label(d) for d in names]
    if bucket is not None:
        keys.append(bucket_of(engine, src.c.t, bucket).label("bucket"))
    scored, defective = src.c[f"n_scored_{filters.model}"], src.c[f"n_defective_{filters.model}"]
    stmt = (
        select(*keys, _total(scored).label("n_inspected"), _total(defective).label("n_defective"))
        .group_by(*keys)
        .having(func.sum(scored) > 0)
        .order_by(*keys)
    )
    df = _ints(read_frame(engine, stmt, [*names, *(["bucket"] if bucket else []), "n_inspected", "n_defective"]),
               ["n_inspected", "n_defective"])
    if bucket is not None:
        df["bucket"] = bucket_to_datetime(df["bucket"], bucket)
    df["defect_rate"] = rate(df["n_defective"], df["n_inspected"])
    return _restore_nulls(df)


def defect_type_counts(
    engine: Engine, filters: Filters = Filters(), by: str = "defect_type", source: str = "auto"
) -> pd.DataFrame:
    """Defective images per known defect type (or another dimension), for a Pareto chart.

    Images without a known type count as ``unlabelled``; flagged images whose folder
    says ``good`` are false rejects and keep the label ``good``. Columns: ``<by>``, ``count``.
    """
    (name,) = _dimensions([by])
    src = counts_source(filters, source)
    defective = src.c[f"n_defective_{filters.model}"]
    stmt = select(src.c[name].label(name), _total(defective).label("count")).group_by(src.c[name])
    stmt = stmt.having(func.sum(defective) > 0)
    df = _restore_nulls(_ints(read_frame(engine, stmt, [name, "count"]), ["count"]))
    return df.sort_values(["count", name], ascending=[False, True], ignore_index=True)


def p_chart_counts(
    engine: Engine, filters: Filters = Filters(), subgroup: str = "day", source: str = "auto"
) -> pd.DataFrame:
    """Subgroup sizes ``n`` and defective counts ``x`` in time order: the input of ``analytics.p_chart``.

    ``subgroup`` is ``run`` (one point per inspection run, timed by its start) or a
    time bucket. Columns: ``subgroup`` (run id or bucket start), ``time``, ``n``, ``x``.
    """
    if subgroup not in SUBGROUPS:
        raise ValueError(f"unknown subgroup {subgroup!r}; expected one of {', '.join(SUBGROUPS)}")
    src = counts_source(filters, source)
    scored, defective = src.c[f"n_scored_{filters.model}"], src.c[f"n_defective_{filters.model}"]
    key = src.c.run_id if subgroup == "run" else bucket_of(engine, src.c.t, subgroup)
    agg = (
        select(key.label("subgroup"), _total(scored).label("n"), _total(defective).label("x"))
        .group_by(key)
        .having(func.sum(scored) > 0)
        .subquery("agg")
    )
    if subgroup == "run":
        stmt = select(agg.c.subgroup, InspectionRun.started_at.label("time"), agg.c.n, agg.c.x).join(
            InspectionRun, InspectionRun.id == agg.c.subgroup
        )
        df = read_frame(engine, stmt, ["subgroup", "time", "n", "x"])
    else:
        df = read_frame(engine, select(agg.c.subgroup, agg.c.n, agg.c.x), ["subgroup", "n", "x"])
        df["subgroup"] = bucket_to_datetime(df["subgroup"], subgroup)
        df.insert(1, "time", df["subgroup"])
    df["time"] = pd.to_datetime(df["time"])
    return _ints(df, ["n", "x"]).sort_values(["time", "subgroup"], ignore_index=True)


# ---------------------------------------------------------------- yield, detection, agreement


def yield_counts(engine: Engine, filters: Filters = Filters(), source: str = "auto") -> dict[str, int]:
    """Counts behind yield, first-pass yield and DPU/DPMO, plus errors and runs.

    ``inspections``/``defective``: every scored inspection. ``units``/``first_pass_defective``:
    only first inspections (results not marked ``is_reinspection``), so a part
    inspected again after rework counts once, at its first verdict.
    """
    src = counts_source(filters, source)
    m = filters.model
    stmt = select(
        _total(src.c[f"n_scored_{m}"]).label("inspections"),
        _total(src.c[f"n_defective_{m}"]).label("defective"),
        _total(src.c.n_errors).label("errors"),
        _total(src.c[f"n_first_{m}"]).label("units"),
        _total(src.c[f"n_first_defective_{m}"]).label("first_pass_defective"),
        func.count(func.distinct(src.c.run_id)).label("runs"),
    )
    row = read_frame(engine, stmt).iloc[0]
    return {name: int(row[name] or 0) for name in row.index}


def detection_rates(engine: Engine, filters: Filters = Filters(), source: str = "auto") -> pd.DataFrame:
    """Per known defect type: images, detections and detection rate of every model.

    Only images whose folder names the type count (unlabelled images are left out).
    The ``good`` row's rate is the false-reject rate. Columns: ``defect_type``,
    ``n_images``, ``n_detected``, ``detection_rate`` (for ``filters.model``), then
    ``rate_<model>`` for every model.
    """
    src = counts_source(filters, source)
    sums = []
    for model in MODEL_NAMES:
        sums += [_total(src.c[f"n_scored_{model}"]).label(f"n_{model}"),
                 _total(src.c[f"n_defective_{model}"]).label(f"d_{model}")]
    stmt = select(src.c.defect_type, *sums).where(src.c.defect_type != "").group_by(src.c.defect_type)
    raw = read_frame(engine, stmt)
    out = pd.DataFrame({"defect_type": raw["defect_type"]})
    out["n_images"] = raw[f"n_{filters.model}"].astype("int64")
    out["n_detected"] = raw[f"d_{filters.model}"].astype("int64")
    out["detection_rate"] = rate(out["n_detected"], out["n_images"])
    for model in MODEL_NAMES:
        out[f"rate_{model}"] = rate(raw[f"d_{model}"].astype(float), raw[f"n_{model}"].astype(float))
    out = out[out["n_images"] > 0]
    order = out.assign(_good=out["defect_type"] == "good").sort_values(
        ["_good", "n_images", "defect_type"], ascending=[True, False, True]
    )
    return order.drop(columns="_good").reset_index(drop=True)


def model_agreement(engine: Engine, filters: Filters = Filters(), source: str = "auto") -> pd.DataFrame:
    """How often the models' decisions agree, pairwise and all at once.

    One row per pair (``model_a``, ``model_b``): ``n`` images decided by both,
    ``n_agree``, ``agreement_rate``; a last row ``all``/``all`` counts images with at
    least two decisions where every present decision is the same.
    """
    src = counts_source(filters, source)
    sums = []
    for a, b in MODEL_PAIRS:
        sums += [_total(src.c[f"n_pair_{a}_{b}"]).label(f"n_{a}_{b}"), _total(src.c[f"n_agree_{a}_{b}"]).label(f"a_{a}_{b}")]
    sums += [_total(src.c.n_multi).label("n_all"), _total(src.c.n_all_agree).label("a_all")]
    row = read_frame(engine, select(*sums)).iloc[0]
    records = [(a, b, int(row[f"n_{a}_{b}"]), int(row[f"a_{a}_{b}"])) for a, b in MODEL_PAIRS]
    records.append(("all", "all", int(row["n_all"]), int(row["a_all"])))
    df = pd.DataFrame(records, columns=["model_a", "model_b", "n", "n_agree"])
    df["agreement_rate"] = rate(df["n_agree"], df["n"])
    return df


# ---------------------------------------------------------------- composed views (SQL counts + analytics math)


def pareto_table(engine: Engine, filters: Filters = Filters(), by: str = "defect_type") -> pd.DataFrame:
    """Pareto of defective images by defect type (or ``by``): counts, percent, cumulative percent."""
    from qc_models.analytics import pareto

    (name,) = _dimensions([by])
    return pareto(defect_type_counts(engine, filters, by=name), name, "count")


def p_chart_table(engine: Engine, filters: Filters = Filters(), subgroup: str = "day") -> pd.DataFrame:
    """p-chart of the selection with limits and out-of-control flags (see ``analytics.p_chart``)."""
    from qc_models.analytics import p_chart

    return p_chart(p_chart_counts(engine, filters, subgroup))


def defect_opportunities(engine: Engine, filters: Filters = Filters()) -> float:
    """Opportunities per unit when each known defect type of a category is one opportunity.

    Per category: the number of distinct known defect types seen in the selection
    (``good`` and unlabelled excluded, at least 1); across categories, the mean
    weighted by scored images.
    """
    src = counts_source(filters)
    known = src.c.defect_type.not_in(("", "good"))
    stmt = select(
        src.c.category,
        _total(src.c[f"n_scored_{filters.model}"]).label("n"),
        func.count(func.distinct(case((known, src.c.defect_type), else_=None))).label("types"),
    ).group_by(src.c.category)
    df = read_frame(engine, stmt, ["category", "n", "types"])
    if df.empty or df["n"].sum() == 0:
        return 1.0
    return float((df["n"] * df["types"].clip(lower=1)).sum() / df["n"].sum())


def kpi_summary(
    engine: Engine,
    filters: Filters = Filters(),
    subgroup: str = "day",
    opportunities_per_unit: float | str = 1.0,
) -> dict[str, float]:
    """Headline numbers: inspections, errors, defect rate, yield, first-pass yield, DPU, DPMO, runs, SPC signals.

    ``out_of_control`` counts the flagged points of the p-chart by ``subgroup``.
    ``opportunities_per_unit`` is a number (default 1: DPMO = defect rate x 10^6) or
    ``"defect_types"`` for :func:`defect_opportunities`.
    """
    from qc_models.analytics import p_chart, yield_metrics

    if opportunities_per_unit == "defect_types":
        opportunities_per_unit = defect_opportunities(engine, filters)
    elif isinstance(opportunities_per_unit, str):
        raise ValueError(f"opportunities_per_unit must be a number or 'defect_types', not {opportunities_per_unit!r}")
    counts = yield_counts(engine, filters)
    kpis = yield_metrics(
        counts["inspections"], counts["defective"], counts["units"], counts["first_pass_defective"],
        opportunities_per_unit,
    )
    chart = p_chart(p_chart_counts(engine, filters, subgroup))
    kpis.update(
        errors=float(counts["errors"]),
        units=float(counts["units"]),
        runs=float(counts["runs"]),
        out_of_control=float(chart["out_of_control"].sum()) if len(chart) else 0.0,
    )
    return kpis

