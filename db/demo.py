"""Simulated inspection history (runs and results) for demos, tests and benchmarks.

The dashboard demo, the analytics tests and the million-row benchmark need data
with the shape of a real plant: runs per day, line, shift and category; a
Pareto-like mix of defect types; lines and shifts with different defect rates; a
process excursion that an SPC chart should catch; member models that mostly
agree with the ensemble; a few unreadable files; and anomaly locations that
cluster per category. Everything is drawn from one seeded generator, vectorised
per run, and written with chunked executemany inserts.

Categories and defect types are those of the synthetic dataset generator
(``qc_models.data.synthetic``), so simulated history agrees with the demo images
and models. Every simulated run is labelled so nobody mistakes it for a real
inspection: lot ``SIM-<yyyymmdd>-<line>``, source folder and image paths under
``simulated://``, operator and host ``simulation``, model version ``simulated``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
from sqlalchemy import ColumnElement, Engine, func, insert, or_, select

from db.filters import Filters
from db.rollup import counts_source
from db.schema import GRID_SIZE, MEMBER_MODELS, ImageResult, InspectionRun, utcnow
from db.session import describe_url, session_scope, translate_errors
from qc_models.data.synthetic import DEMO_CATEGORIES, defect_types as synthetic_defect_types

#: Marks of simulated history: lot prefix, URL scheme of source folders and paths, operator/host.
SIMULATED_LOT_PREFIX = "SIM-"
SIMULATED_SCHEME = "simulated://"
SIMULATED_OPERATOR = "simulation"
SHIFT_START_HOURS = {"A": 6, "B": 14, "C": 22}
# Member detectors: (noise on the ensemble's normalised score, raw-score scale).
_MEMBER_NOISE = {"cae": (0.12, 0.08), "unet": (0.08, 2.5), "patchcore": (0.05, 11.0)}
# Typical anomaly location (grid x, y) per category so location heatmaps show a pattern.
_HOTSPOTS = {"bottle": (16, 6), "carpet": (10, 22), "metal_nut": (24, 10), "wood": (16, 16)}


def is_simulated(source_folder: str | None) -> bool:
    """True for a run (or result path) written by this module rather than by a real inspection."""
    return bool(source_folder) and str(source_folder).startswith(SIMULATED_SCHEME)


def simulated_condition() -> ColumnElement[bool]:
    """SQL condition on ``inspection_runs`` that is true for simulated runs."""
    run = InspectionRun
    return or_(run.source_folder.startswith(SIMULATED_SCHEME), run.operator == SIMULATED_OPERATOR)


def simulated_run_count(engine: Engine, filters: Filters = Filters()) -> int:
    """How many runs with results in the selection are simulated, so reports and UIs can say so."""
    src = counts_source(filters)
    stmt = (
        select(func.count(func.distinct(src.c.run_id)))
        .select_from(src)
        .join(InspectionRun, InspectionRun.id == src.c.run_id)
        .where(simulated_condition())
    )
    with translate_errors(describe_url(engine)), engine.connect() as conn:
        return int(conn.execute(stmt).scalar() or 0)


@dataclass(frozen=True)
class DemoSummary:
    """How much was written."""

    n_runs: int
    n_results: int
    start: datetime
    end: datetime


@dataclass(frozen=True)
class _RunSpec:
    category: str
    line: str
    shift: str
    lot: str
    started_at: datetime
    defect_rate: float


def _run_specs(
    start: datetime,
    days: int,
    categories: Sequence[str],
    lines: Sequence[str],
    shifts: Sequence[str],
    base_rate: float,
) -> list[_RunSpec]:
    """One run per day x shift x line x category, with line/shift effects and one excursion."""
    excursion_days = range(max(days - 10, 0), max(days - 7, 1))  # three bad days on the last line
    specs = []
    for day in range(days):
        for shift in shifts:
            hour = SHIFT_START_HOURS.get(shift, 6 + 8 * (shifts.index(shift) % 3))
            for li, line in enumerate(lines):
                for ci, category in enumerate(categories):
                    rate = base_rate * (1.0 + 0.35 * li) * (1.3 if shift == shifts[-1] and len(shifts) > 1 else 1.0)
                    if li == len(lines) - 1 and day in excursion_days:
                        rate = min(0.5, rate * 3.5)
                    started = start + timedelta(days=day, hours=hour, minutes=7 * li + 2 * ci)
                    lot = f"{SIMULATED_LOT_PREFIX}{(start + timedelta(days=day)):%Y%m%d}-{line}"
                    specs.append(_RunSpec(category, line, shift, lot, started, rate))
    return specs


def _grids(rng: np.random.Generator, centres: np.ndarray, spread: np.ndarray) -> list[bytes]:
    """Gaussian blobs on a GRID_SIZE^2 uint8 grid, one per (cx, cy) centre."""
    if len(centres) == 0:
        return []
    axis = np.arange(GRID_SIZE, dtype=np.float32)
    dx = (axis[None, None, :] - centres[:, 0, None, None]) ** 2
    dy = (axis[None, :, None] - centres[:, 1, None, None]) ** 2
    blobs = np.exp(-(dx + dy) / (2.0 * spread[:, None, None] ** 2))
    blobs += rng.uniform(0.0, 0.08, size=blobs.shape)
    maps = np.clip(blobs * 255.0, 0, 255).astype(np.uint8)
    return [m.tobytes() for m in maps]


def _results_for_run(
    rng: np.random.Generator,
    spec: _RunSpec,
    run_index: int,
    n: int,
    defect_types: Sequence[str],
    image_size: int,
    grids: str,
    error_rate: float,
    recheck_rate: float,
) -> list[dict]:
    """Vectorised draw of one run's image results (without run_id)."""
    truly_defective = rng.random(n) < spec.defect_rate
    weights = np.array([0.5 ** (k + 1) for k in range(len(defect_types))])
    kinds = rng.choice(len(defect_types), size=n, p=weights / weights.sum())
    known = np.where(truly_defective, np.asarray(defect_types, dtype=object)[kinds], "good")
    ensemble = np.clip(
        np.where(truly_defective, rng.normal(0.72, 0.13, n), rng.normal(0.27, 0.09, n)), 0.0, 1.0
    )
    is_error = rng.random(n) < error_rate
    flagged = ensemble >= 0.5
    member_scores = {m: np.clip(ensemble + rng.normal(0.0, _MEMBER_NOISE[m][0], n), 0.0, 1.0) for m in MEMBER_MODELS}
    area = np.where(flagged, rng.uniform(0.005, 0.08, n), rng.uniform(0.0, 0.002, n))
    hx, hy = _HOTSPOTS.get(spec.category, (16, 16))
    centres = np.clip(rng.normal([hx, hy], 4.0, size=(n, 2)), 1, GRID_SIZE - 2)
    spread = rng.uniform(1.5, 3.5, n)
    scale = image_size / GRID_SIZE
    want_grid = (~is_error) & (flagged if grids == "defective" else np.full(n, grids == "all"))
    grid_bytes = iter(_grids(rng, centres[want_grid], spread[want_grid]))
    seconds = rng.uniform(0.2, 0.6, n).cumsum()
    rows = []
    for i in range(n):
        rel = f"{known[i]}/{run_index:05d}_{i:05d}.png"
        row = {
            "rel_path": rel,
            "path": f"{SIMULATED_SCHEME}{spec.category}/{spec.lot}/{rel}",
            "content_hash": hashlib.sha256(f"{spec.lot}/{spec.category}/{run_index}/{i}".encode()).hexdigest(),
            "width": image_size,
            "height": image_size,
            "known_defect_type": str(known[i]),
            "inspected_at": spec.started_at + timedelta(seconds=float(seconds[i])),
            "category": spec.category,
            "line": spec.line,
            "shift": spec.shift,
            "lot": spec.lot,
            "anomaly_grid": next(grid_bytes) if want_grid[i] else None,
            "is_reinspection": None,
        }
        if is_error[i]:
            row.update(status="error", error_text="corrupt: image file is truncated", is_defective=None,
                       ensemble_score=None, anomaly_area_fraction=None, bbox_x=None, bbox_y=None, bbox_w=None,
                       bbox_h=None, width=None, height=None)
            for m in MEMBER_MODELS:
                row.update({f"{m}_raw": None, f"{m}_score": None, f"{m}_defective": None})
        else:
            half = float(spread[i]) * 2.0 * scale
            row.update(
                status="ok", error_text=None, is_defective=bool(flagged[i]), ensemble_score=float(ensemble[i]),
                anomaly_area_fraction=float(area[i]),
                bbox_x=int(max(0.0, centres[i, 0] * scale - half)), bbox_y=int(max(0.0, centres[i, 1] * scale - half)),
                bbox_w=int(2 * half), bbox_h=int(2 * half),
            )
            for m in MEMBER_MODELS:
                s = float(member_scores[m][i])
                row.update({f"{m}_raw": s * _MEMBER_NOISE[m][1], f"{m}_score": s, f"{m}_defective": s >= 0.5})
        rows.append(row)
    return rows + _rechecks(rng, rows, recheck_rate)


def _rechecks(rng: np.random.Generator, rows: list[dict], rate: float) -> list[dict]:
    """Flagged images scanned again at the end of the run (same content, so re-inspections); half now pass."""
    flagged = [r for r in rows if r["is_defective"]]
    picked = [flagged[i] for i in np.flatnonzero(rng.random(len(flagged)) < rate)]
    out = []
    last = rows[-1]["inspected_at"] if rows else None
    for k, row in enumerate(picked):
        passes = bool(rng.random() < 0.5)
        score = float(rng.uniform(0.2, 0.45)) if passes else row["ensemble_score"]
        again = dict(row, rel_path=f"recheck/{row['rel_path']}", is_reinspection=True, ensemble_score=score,
                     is_defective=not passes, inspected_at=last + timedelta(seconds=k + 1))
        for m in MEMBER_MODELS:
            again[f"{m}_defective"] = row[f"{m}_defective"] and not passes
        out.append(again)
    return out


def populate_demo_results(
    engine: Engine,
    *,
    days: int = 30,
    end: datetime | None = None,
    categories: Sequence[str] = DEMO_CATEGORIES,
    lines: Sequence[str] = ("L1", "L2", "L3"),
    shifts: Sequence[str] = ("A", "B", "C"),
    images_per_run: int = 40,
    base_defect_rate: float = 0.03,
    error_rate: float = 0.003,
    recheck_rate: float = 0.2,
    defect_types: Mapping[str, Sequence[str]] | None = None,
    image_size: int = 256,
    grids: Literal["all", "defective", "none"] = "all",
    seed: int = 0,
    chunk_rows: int = 20_000,
    progress: Callable[[str, float], None] | None = None,
) -> DemoSummary:
    """Write completed simulated runs ending at ``end`` (default: today 00:00 UTC) into a migrated database.

    Runs: ``days x len(shifts) x len(lines) x len(categories)``, each with
    ``images_per_run`` results. Defect rates rise by line and on the last shift,
    and the last line has a three-day excursion ending a week before ``end``.
    A share ``recheck_rate`` of flagged images is scanned again at the end of its
    run (``is_reinspection``), which is what separates first-pass yield from yield.
    Defect types come from ``qc_models.data.synthetic.defect_types`` (first ones
    most frequent); ``defect_types`` may name them for categories the generator
    does not know, which otherwise raise ``ValueError``. Runs carry the
    simulation labels described in the module docstring.
    """
    if days < 1 or images_per_run < 1:
        raise ValueError(f"days and images_per_run must be >= 1 (got {days}, {images_per_run})")
    if grids not in ("all", "defective", "none"):
        raise ValueError(f"grids must be 'all', 'defective' or 'none', not {grids!r}")
    given = {c: tuple(v) for c, v in (defect_types or {}).items()}
    types = {c: given[c] if c in given else tuple(synthetic_defect_types(c)) for c in categories}
    empty = [c for c, v in types.items() if not v]
    if empty:
        raise ValueError(f"no defect types for categories {empty}")
    end = end or utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    specs = _run_specs(start, days, categories, lines, shifts, base_defect_rate)
    rng = np.random.default_rng(seed)
    runs_table, results_table = InspectionRun.__table__, ImageResult.__table__
    n_results = 0
    batch: list[tuple[dict, list[dict]]] = []

    def flush() -> None:
        with session_scope(engine, write=True) as session:
            ids = session.execute(
                insert(runs_table).returning(runs_table.c.id, sort_by_parameter_order=True), [r for r, _ in batch]
            ).scalars().all()
            rows = [dict(res, run_id=run_id) for run_id, (_, results) in zip(ids, batch) for res in results]
            session.execute(insert(results_table), rows)
        batch.clear()

    pending = 0
    for index, spec in enumerate(specs):
        results = _results_for_run(
            rng, spec, index, images_per_run, types[spec.category], image_size, grids, error_rate, recheck_rate
        )
        ok = [r for r in results if r["status"] == "ok"]
        run_row = {
            "started_at": spec.started_at,
            "finished_at": results[-1]["inspected_at"] + timedelta(seconds=1),
            "status": "completed",
            "source_folder": f"{SIMULATED_SCHEME}{spec.category}/{spec.lot}",
            "category": spec.category, "line": spec.line, "shift": spec.shift, "lot": spec.lot,
            "operator": SIMULATED_OPERATOR, "host": SIMULATED_OPERATOR,
            "models": '[{"model": "ensemble", "version": "simulated", "path": "", "threshold": 0.5}]',
            "n_images": len(results), "n_scored": len(ok), "n_errors": len(results) - len(ok),
            "n_defective": sum(1 for r in ok if r["is_defective"]),
            "seconds": (results[-1]["inspected_at"] - spec.started_at).total_seconds(),
            "error_text": None,
        }
        batch.append((run_row, results))
        pending += len(results)
        n_results += len(results)
        if pending >= chunk_rows:
            flush()
            pending = 0
            if progress:
                progress(f"simulated results: {n_results:,} rows", (index + 1) / len(specs))
    if batch:
        flush()
    if progress:
        progress(f"simulated results: {n_results:,} rows", 1.0)
    return DemoSummary(n_runs=len(specs), n_results=n_results, start=start, end=end)
