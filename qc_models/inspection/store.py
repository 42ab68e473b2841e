"""Database side of an inspection run: run rows, model versions, result batches, counters.

Every function takes an open session from ``db.session.session_scope`` so the
runner decides the transaction boundaries: one batch of image results and the
run's counters are written in the same transaction, which is what keeps a
killed process from leaving counters that disagree with the stored rows.
Inserts use Core statements on the ORM tables (executemany), so a batch of
rows costs one round trip and no ORM identity-map bookkeeping.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, insert, select, update
from sqlalchemy.orm import Session

from db.results import find_reinspections
from db.schema import ImageResult, InspectionRun, ModelVersion, run_models, utcnow
from qc_models.inspection.scanning import InspectionError

#: Columns of ``image_results`` a result row may set (everything but the primary key).
RESULT_COLUMNS = frozenset(c.name for c in ImageResult.__table__.columns if c.name != "id")


@dataclass(frozen=True)
class ModelInfo:
    """One model of the set a run used: what ``model_versions`` and the run's ``models`` record."""

    model: str
    version: str
    path: str
    threshold: float | None = None
    category: str | None = None
    backbone_weights: str | None = None
    pretrained: bool = False
    metrics: dict[str, Any] | None = None

    def run_entry(self) -> dict[str, Any]:
        """The ``{model, version, path, threshold}`` item of ``inspection_runs.models``."""
        return {"model": self.model, "version": self.version, "path": self.path, "threshold": self.threshold}


@dataclass(frozen=True)
class RunRecord:
    """A snapshot of one ``inspection_runs`` row."""

    id: int
    status: str
    source_folder: str
    category: str | None
    line: str | None
    shift: str | None
    lot: str | None
    models: list[dict[str, Any]]
    n_images: int
    n_scored: int
    n_errors: int
    n_defective: int
    seconds: float
    error_text: str | None


def register_models(session: Session, infos: Sequence[ModelInfo], category: str | None) -> list[int]:
    """Upsert ``model_versions`` rows by artifact path; returns their ids in ``infos`` order."""
    ids: list[int] = []
    for info in infos:
        cat = info.category or category or ""
        row = session.execute(select(ModelVersion).where(ModelVersion.path == info.path)).scalar_one_or_none()
        if row is None:
            row = session.execute(
                select(ModelVersion).where(
                    ModelVersion.category == cat,
                    ModelVersion.model_name == info.model,
                    ModelVersion.version == info.version,
                )
            ).scalar_one_or_none()
        if row is None:
            row = ModelVersion(category=cat, model_name=info.model, version=info.version, path=info.path)
            session.add(row)
        row.backbone_weights = info.backbone_weights
        row.pretrained = bool(info.pretrained)
        row.threshold = info.threshold
        if info.metrics is not None:
            row.metrics = json.dumps(info.metrics, sort_keys=True, default=float)
        session.flush()
        ids.append(int(row.id))
    return ids


def insert_run(session: Session, fields: dict[str, Any], models: Sequence[ModelInfo], model_ids: Iterable[int]) -> int:
    """Create a run in status ``running`` and link its model versions; returns the run id."""
    run = InspectionRun(
        status="running",
        started_at=utcnow(),
        models=json.dumps([m.run_entry() for m in models]),
        **fields,
    )
    session.add(run)
    session.flush()
    unique_ids = sorted(set(model_ids))
    if unique_ids:
        session.execute(insert(run_models), [{"run_id": run.id, "model_version_id": i} for i in unique_ids])
    return int(run.id)


def get_run(session: Session, run_id: int) -> RunRecord:
    """The run's current row; :class:`InspectionError` when there is no such run."""
    run = session.get(InspectionRun, run_id)
    if run is None:
        raise InspectionError(f"no inspection run with id {run_id} in this database")
    try:
        models = json.loads(run.models or "[]")
    except json.JSONDecodeError:
        models = []
    return RunRecord(
        id=int(run.id),
        status=run.status,
        source_folder=run.source_folder,
        category=run.category,
        line=run.line,
        shift=run.shift,
        lot=run.lot,
        models=models,
        n_images=int(run.n_images or 0),
        n_scored=int(run.n_scored or 0),
        n_errors=int(run.n_errors or 0),
        n_defective=int(run.n_defective or 0),
        seconds=float(run.seconds or 0.0),
        error_text=run.error_text,
    )


def stored_rel_paths(session: Session, run_id: int, rel_paths: Sequence[str]) -> set[str]:
    """Which of ``rel_paths`` already have a result in this run (the exactly-once check)."""
    if not rel_paths:
        return set()
    stmt = select(ImageResult.rel_path).where(ImageResult.run_id == run_id, ImageResult.rel_path.in_(rel_paths))
    return set(session.execute(stmt).scalars())


def write_results(session: Session, run_id: int, rows: Sequence[dict[str, Any]], seconds: float) -> None:
    """Insert result rows and advance the run's counters in the caller's transaction."""
    if not rows:
        return
    unknown = set().union(*(r.keys() for r in rows)) - RESULT_COLUMNS
    if unknown:
        raise ValueError(f"unknown image_results columns: {sorted(unknown)}")
    # An image content already judged by an earlier run is a re-inspection: first-pass yield skips it.
    seen = find_reinspections(session, run_id, (r.get("content_hash") for r in rows))
    rows = [{**r, "is_reinspection": r.get("content_hash") in seen} for r in rows]
    session.execute(insert(ImageResult), rows)
    n_ok = sum(1 for r in rows if r.get("status") == "ok")
    n_def = sum(1 for r in rows if r.get("is_defective"))
    session.execute(
        update(InspectionRun)
        .where(InspectionRun.id == run_id)
        .values(
            n_scored=InspectionRun.n_scored + n_ok,
            n_errors=InspectionRun.n_errors + (len(rows) - n_ok),
            n_defective=InspectionRun.n_defective + n_def,
            seconds=seconds,
        )
    )


def set_run_state(session: Session, run_id: int, **values: Any) -> None:
    """Update columns of the run row (status, n_images, seconds, error_text, finished_at)."""
    session.execute(update(InspectionRun).where(InspectionRun.id == run_id).values(**values))


def recount(session: Session, run_id: int) -> dict[str, int]:
    """Counters recomputed from the stored rows (exact even after crashes), written back to the run."""
    ok = case((ImageResult.status == "ok", 1), else_=0)
    err = case((ImageResult.status == "error", 1), else_=0)
    bad = case((ImageResult.is_defective.is_(True), 1), else_=0)
    n_ok, n_err, n_def = session.execute(
        select(func.coalesce(func.sum(ok), 0), func.coalesce(func.sum(err), 0), func.coalesce(func.sum(bad), 0)).where(
            ImageResult.run_id == run_id
        )
    ).one()
    counts = {"n_scored": int(n_ok), "n_errors": int(n_err), "n_defective": int(n_def)}
    set_run_state(session, run_id, **counts)
    return counts


def per_defect_type(session: Session, run_id: int) -> dict[str, dict[str, int]]:
    """Per known label: images, flagged defective, errors (only rows whose folder gave a label)."""
    stmt = (
        select(
            ImageResult.known_defect_type,
            func.count(),
            func.coalesce(func.sum(case((ImageResult.is_defective.is_(True), 1), else_=0)), 0),
            func.coalesce(func.sum(case((ImageResult.status == "error", 1), else_=0)), 0),
        )
        .where(ImageResult.run_id == run_id, ImageResult.known_defect_type.is_not(None))
        .group_by(ImageResult.known_defect_type)
        .order_by(ImageResult.known_defect_type)
    )
    return {
        str(t): {"n_images": int(n), "n_defective": int(d), "n_errors": int(e)} for t, n, d, e in session.execute(stmt)
    }

