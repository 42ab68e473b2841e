"""Two processes writing to one SQLite file at once: no "database is locked" failures, nothing lost."""

from __future__ import annotations

import multiprocessing as mp

from sqlalchemy import func, select

from db.schema import ImageResult, InspectionRun, result_counts
from db.session import session_scope

ROWS_PER_WRITER = 300
ROWS_PER_TRANSACTION = 5


def _writer(url: str, name: str, start, errors) -> None:  # type: ignore[no-untyped-def]
    """Insert ROWS_PER_WRITER results in small transactions, as batch inspection does."""
    try:
        with session_scope(url, write=True) as session:
            run = InspectionRun(source_folder=f"/{name}", category=name)
            session.add(run)
            session.flush()
            run_id = run.id
        start.wait(30)
        for first in range(0, ROWS_PER_WRITER, ROWS_PER_TRANSACTION):
            with session_scope(url, write=True) as session:
                session.add_all(
                    ImageResult(run_id=run_id, rel_path=f"{i}.png", path=f"/{name}/{i}.png", is_defective=i % 3 == 0,
                                category=name)
                    for i in range(first, first + ROWS_PER_TRANSACTION)
                )
            with session_scope(url) as session:  # interleave reads, like the dashboard polling progress
                session.scalar(select(func.count()).select_from(ImageResult).where(ImageResult.run_id == run_id))
    except Exception as exc:  # reported to the parent, which fails the test with the message
        errors.put(f"{name}: {type(exc).__name__}: {exc}")


def test_two_writer_processes_share_one_sqlite_file(sqlite_url: str) -> None:
    ctx = mp.get_context("spawn")  # no inherited connections or threads
    start, errors = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(sqlite_url, name, start, errors)) for name in ("left", "right")]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(180)
    messages = []
    while not errors.empty():
        messages.append(errors.get())
    assert messages == []
    assert [p.exitcode for p in procs] == [0, 0]
    with session_scope(sqlite_url) as session:
        per_run = dict(session.execute(
            select(InspectionRun.category, func.count(ImageResult.id)).join(ImageResult).group_by(InspectionRun.category)
        ).all())
        rolled = session.scalar(select(func.sum(result_counts.c.n_results)))
    assert per_run == {"left": ROWS_PER_WRITER, "right": ROWS_PER_WRITER}
    assert rolled == 2 * ROWS_PER_WRITER
