"""Batch inspection: stream a folder's images through a model set into the database.

Exactly once per image and run: ``image_results`` is unique on ``(run_id,
rel_path)`` and each batch first asks which of its paths are already stored, so
resuming a crashed, interrupted or failed run finishes the remaining images
without duplicates or gaps. Each batch's rows and the run's counters are one
transaction, so a killed process leaves a consistent database (the run stays
``running``/``interrupted`` and ``--resume`` completes it). Only one batch of
decoded images is scored while the next one is decoded in a helper thread;
nothing else is held but the sorted list of relative paths.
"""

from __future__ import annotations

import getpass
import logging
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine

from db.schema import utcnow
from db.session import get_engine, session_scope, upgrade
from qc_models.data.images import MAX_IMAGE_PIXELS, ImageLoadError, load_rgb
from qc_models.inspection import store
from qc_models.inspection.scanning import InspectionError, SourceFolder, file_sha256, resolve_root, scan_folder
from qc_models.inspection.scoring import (
    Scorer,
    describe_models,
    load_recorded_scorer,
    load_scorer,
    model_warnings,
    result_columns,
    score_batch,
)

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, float], None]

#: Largest image inspected (pixels); bigger files become error rows instead of exhausting memory.
MAX_INSPECT_PIXELS = min(MAX_IMAGE_PIXELS, 64_000_000)
#: Results are committed at least this often (images), whatever the scoring batch size.
COMMIT_EVERY = 64


@dataclass
class RunSummary:
    """The outcome of a run (whole run, including parts done before a resume)."""

    run_id: int
    status: str
    source_folder: str
    category: str | None
    n_images: int
    n_scored: int
    n_errors: int
    n_defective: int
    seconds: float
    n_skipped: int = 0  # non-image files in the folder, not inspected
    n_new: int = 0  # images inspected by this call (the rest were stored before a resume)
    per_defect_type: dict[str, dict[str, int]] = field(default_factory=dict)
    models: list[dict[str, Any]] = field(default_factory=list)
    line: str | None = None
    shift: str | None = None
    lot: str | None = None
    error_text: str | None = None
    warnings: list[str] = field(default_factory=list)  # caveats about the models (untrained backbone, ...)

    @property
    def defect_rate(self) -> float | None:
        """Share of scored images flagged defective (None before any image was scored)."""
        return self.n_defective / self.n_scored if self.n_scored else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (the CLI's ``--json`` last line)."""
        return {**asdict(self), "defect_rate": self.defect_rate}


@dataclass
class _Decoded:
    rel_path: str
    path: Path
    content_hash: str | None
    image: np.ndarray | None = None
    error: str | None = None


def _decode_batch(source: SourceFolder, rel_paths: list[str]) -> list[_Decoded]:
    out: list[_Decoded] = []
    for rel in rel_paths:
        path = source.root / rel
        item = _Decoded(rel, path, file_sha256(path))
        try:
            item.image = load_rgb(path, max_pixels=MAX_INSPECT_PIXELS)
        except ImageLoadError as exc:
            item.error = f"{exc.kind}: {exc.reason}"
        except (OSError, MemoryError, ValueError) as exc:
            item.error = f"unreadable: {exc}"
        out.append(item)
    return out


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise InspectionError(f"batch size must be at least 1, got {batch_size}")


def _open_database(db_url: str | None) -> Engine:
    """The engine after migrating the schema to head (a fresh SQLite file gets its tables)."""
    engine = get_engine(db_url)
    upgrade(engine)
    return engine


def _resolve_category(source: SourceFolder, category: str | None, models_dir: str | Path | None) -> str | None:
    """``--category``, else the registry's only category, else ``<category>/test`` of the folder."""
    if category:
        return category
    from qc_models.config import Settings
    from qc_models.registry import registry_categories

    cats = registry_categories(Path(models_dir) if models_dir else Settings.from_env().models_dir)
    if len(cats) == 1:
        return cats[0]
    return source.category_hint


def _scan(folder: str | Path) -> SourceFolder:
    source = scan_folder(folder)
    if not source.rel_paths:
        raise InspectionError(
            f"{source.root}: no images to inspect (looked recursively for .png/.jpg/.jpeg/.bmp/.tif/.tiff; "
            f"{source.n_skipped} other file(s) skipped)"
        )
    return source


def _models(
    source: SourceFolder, models_dir: str | Path | None, category: str | None, scorer: Scorer | None
) -> tuple[str | None, Scorer]:
    if scorer is None:
        category = _resolve_category(source, category, models_dir)
        return category, load_scorer(models_dir, category)
    return category or getattr(scorer, "category", None) or source.category_hint, scorer


def _new_run(
    engine: Engine,
    source: SourceFolder,
    scorer: Scorer,
    category: str | None,
    line: str | None,
    shift: str | None,
    lot: str | None,
    operator: str | None,
) -> int:
    infos = describe_models(scorer, category)
    fields = {
        "source_folder": str(source.root),
        "category": category,
        "line": line,
        "shift": shift,
        "lot": lot,
        "operator": operator or getpass.getuser(),
        "host": socket.gethostname(),
        "n_images": len(source),
    }
    with session_scope(engine, write=True) as s:
        ids = store.register_models(s, infos, category)
        return store.insert_run(s, fields, infos, ids)


def create_run(
    folder: str | Path,
    models_dir: str | Path | None = None,
    db_url: str | None = None,
    category: str | None = None,
    line: str | None = None,
    shift: str | None = None,
    lot: str | None = None,
    scorer: Scorer | None = None,
    operator: str | None = None,
) -> int:
    """Validate the folder, load the models and create the run row; returns the run id.

    The dashboard calls this first (to show the id at once) and then
    :func:`continue_run` in a background thread; pass the same ``scorer`` to both
    to load the models only once.
    """
    source = _scan(folder)
    engine = _open_database(db_url)
    category, scorer = _models(source, models_dir, category, scorer)
    return _new_run(engine, source, scorer, category, line, shift, lot, operator)


def _check_same_models(run: store.RunRecord, scorer: Scorer) -> None:
    used = sorted((m.get("model"), m.get("path")) for m in run.models)
    now = sorted((m.model, m.path) for m in describe_models(scorer, run.category))
    if used and used != now:
        raise InspectionError(
            f"run {run.id} was started with models {[p for _, p in used]} but the models now loaded are "
            f"{[p for _, p in now]}; resuming would mix model versions in one run (start a new run instead)"
        )


def continue_run(
    run_id: int,
    db_url: str | None = None,
    models_dir: str | Path | None = None,
    batch_size: int = 32,
    progress: ProgressCallback | None = None,
    scorer: Scorer | None = None,
    stop_event: threading.Event | None = None,
) -> RunSummary:
    """Inspect the images of run ``run_id`` that have no result yet, then complete the run.

    Without ``scorer`` the exact model versions the run recorded are loaded again
    (``models_dir`` is only used for runs that recorded none).

    Works for new, crashed (``running``), ``interrupted`` and ``failed`` runs; a
    ``completed`` run is returned unchanged. Setting ``stop_event`` stops after
    the current batch and marks the run ``interrupted``.
    """
    _check_batch_size(batch_size)
    engine = _open_database(db_url)
    with session_scope(engine) as s:
        run = store.get_run(s, run_id)
    source = scan_folder(run.source_folder)
    if run.status == "completed":
        return _summary(engine, run_id, source, 0)
    if scorer is None:
        if run.models and all(m.get("path") for m in run.models):
            scorer = load_recorded_scorer(run.category or "", run.models)
        else:
            scorer = load_scorer(models_dir, run.category)
    _check_same_models(run, scorer)
    return _execute(engine, run, source, scorer, batch_size, progress, stop_event)


def _fmt_eta(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "?"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _execute(
    engine: Engine,
    run: store.RunRecord,
    source: SourceFolder,
    scorer: Scorer,
    batch_size: int,
    progress: ProgressCallback | None,
    stop_event: threading.Event | None,
) -> RunSummary:
    chunk = min(batch_size, COMMIT_EVERY)
    total = len(source)
    prior_seconds = run.seconds
    start = time.monotonic()
    with session_scope(engine, write=True) as s:
        store.set_run_state(s, run.id, status="running", n_images=total, error_text=None, finished_at=None)

    chunks = [source.rel_paths[i : i + chunk] for i in range(0, total, chunk)]
    counts = {"new": 0, "done": 0}
    warnings = model_warnings(scorer)

    def finish(status: str, error_text: str | None = None) -> RunSummary:
        summary = _finish(engine, run.id, source, counts["new"], start, prior_seconds, status, error_text)
        summary.warnings = warnings
        return summary

    def stopped() -> bool:
        return stop_event is not None and stop_event.is_set()

    def submit(pool: ThreadPoolExecutor, paths: list[str]) -> tuple[Future[list[_Decoded]], int]:
        """Skip paths already stored for this run; decode the rest in the helper thread."""
        with session_scope(engine) as s:
            done = store.stored_rel_paths(s, run.id, paths)
        return pool.submit(_decode_batch, source, [p for p in paths if p not in done]), len(done)

    def report() -> None:
        if progress is None:
            return
        rate = counts["new"] / max(time.monotonic() - start, 1e-9)
        eta = (total - counts["done"]) / rate if rate > 0 else float("inf")
        progress(
            f"run {run.id}: {counts['done']}/{total} images, {rate:.1f} images/s, ETA {_fmt_eta(eta)}",
            counts["done"] / total,
        )

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qc-decode")
    try:
        pending = submit(pool, chunks[0]) if chunks else None
        for idx in range(len(chunks)):
            if stopped():  # leave the rest (a prefetched batch is just dropped) for --resume
                return finish("interrupted")
            assert pending is not None
            future, n_skipped = pending
            batch = future.result()
            pending = submit(pool, chunks[idx + 1]) if idx + 1 < len(chunks) else None
            if batch:
                rows = _score_rows(run, source, scorer, batch)
                with session_scope(engine, write=True) as s:
                    store.write_results(s, run.id, rows, prior_seconds + time.monotonic() - start)
                counts["new"] += len(rows)
            counts["done"] += n_skipped + len(batch)
            report()
    except KeyboardInterrupt:
        finish("interrupted")
        raise
    except BaseException as exc:
        try:
            finish("failed", f"{type(exc).__name__}: {exc}")
        except Exception:  # the database itself failed: the original error matters more
            log.exception("could not mark run %s as failed", run.id)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return finish("completed")


def _score_rows(run: store.RunRecord, source: SourceFolder, scorer: Scorer, batch: list[_Decoded]) -> list[dict[str, Any]]:
    good = [d for d in batch if d.image is not None]
    scores = score_batch(scorer, [d.image for d in good]) if good else []
    if len(scores) != len(good):
        raise RuntimeError(f"scorer returned {len(scores)} results for {len(good)} images")
    by_rel = {d.rel_path: sc for d, sc in zip(good, scores, strict=True)}
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for d in batch:
        row: dict[str, Any] = {
            "run_id": run.id,
            "rel_path": d.rel_path,
            "path": str(d.path),
            "content_hash": d.content_hash,
            "known_defect_type": source.known_defect_type(d.rel_path),
            "category": run.category,
            "line": run.line,
            "shift": run.shift,
            "lot": run.lot,
            "inspected_at": now,
        }
        if d.image is None:
            row.update(status="error", error_text=d.error)
        else:
            h, w = d.image.shape[:2]
            row.update(status="ok", error_text=None, width=int(w), height=int(h))
            row.update(result_columns(by_rel[d.rel_path], d.image.shape))
        rows.append(row)
    return rows


def _finish(
    engine: Engine,
    run_id: int,
    source: SourceFolder,
    n_new: int,
    start: float,
    prior_seconds: float,
    status: str,
    error_text: str | None = None,
) -> RunSummary:
    seconds = prior_seconds + time.monotonic() - start
    with session_scope(engine, write=True) as s:
        store.recount(s, run_id)
        store.set_run_state(
            s,
            run_id,
            status=status,
            seconds=seconds,
            error_text=error_text,
            finished_at=utcnow() if status == "completed" else None,
        )
    return _summary(engine, run_id, source, n_new)


def _summary(engine: Engine, run_id: int, source: SourceFolder, n_new: int) -> RunSummary:
    with session_scope(engine) as s:
        run = store.get_run(s, run_id)
        per_type = store.per_defect_type(s, run_id)
    return RunSummary(
        run_id=run.id,
        status=run.status,
        source_folder=run.source_folder,
        category=run.category,
        n_images=run.n_images,
        n_scored=run.n_scored,
        n_errors=run.n_errors,
        n_defective=run.n_defective,
        seconds=round(run.seconds, 3),
        n_skipped=source.n_skipped,
        n_new=n_new,
        per_defect_type=per_type,
        models=run.models,
        line=run.line,
        shift=run.shift,
        lot=run.lot,
        error_text=run.error_text,
    )


def run_inspection(
    folder: str | Path,
    models_dir: str | Path | None = None,
    db_url: str | None = None,
    category: str | None = None,
    line: str | None = None,
    shift: str | None = None,
    lot: str | None = None,
    resume_run_id: int | None = None,
    batch_size: int = 32,
    progress: ProgressCallback | None = None,
    scorer: Scorer | None = None,
    stop_event: threading.Event | None = None,
    on_run_created: Callable[[int], None] | None = None,
    operator: str | None = None,
) -> RunSummary:
    """Inspect every image under ``folder`` (or resume run ``resume_run_id``) into the database.

    ``on_run_created(run_id)`` is called as soon as the run row exists, before
    any image is scored, so callers can show the id (and how to resume) at once.
    """
    _check_batch_size(batch_size)
    if resume_run_id is not None:
        engine = _open_database(db_url)
        root = resolve_root(folder) if folder is not None else None
        with session_scope(engine) as s:
            run = store.get_run(s, resume_run_id)
        if root is not None and Path(run.source_folder) != root:
            raise InspectionError(f"run {resume_run_id} inspected {run.source_folder}, not {root}")
        if on_run_created is not None:
            on_run_created(resume_run_id)
        return continue_run(resume_run_id, db_url, models_dir, batch_size, progress, scorer, stop_event)
    source = _scan(folder)
    engine = _open_database(db_url)
    category, scorer = _models(source, models_dir, category, scorer)
    run_id = _new_run(engine, source, scorer, category, line, shift, lot, operator)
    if on_run_created is not None:
        on_run_created(run_id)
    with session_scope(engine) as s:
        run = store.get_run(s, run_id)
    return _execute(engine, run, source, scorer, batch_size, progress, stop_event)
