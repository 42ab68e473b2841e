"""Engines, sessions and the clear errors for locked, missing and unmigrated databases."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time

import pytest
from sqlalchemy import func, select

from db.schema import ImageResult, InspectionRun
from db.session import (
    DatabaseLockedError,
    DatabaseUnavailableError,
    SchemaNotCurrentError,
    describe_url,
    dispose_engine,
    ensure_current,
    get_engine,
    session_scope,
    write_with_retry,
)


def _add_run(url_or_engine, folder: str = "/line/a", n_results: int = 0) -> int:  # type: ignore[no-untyped-def]
    with session_scope(url_or_engine, write=True) as session:
        run = InspectionRun(source_folder=folder, category="bottle")
        for i in range(n_results):
            run.results.append(ImageResult(rel_path=f"{i}.png", path=f"{folder}/{i}.png", is_defective=i % 2 == 0))
        session.add(run)
        session.flush()
        return run.id


def _count_runs(url: str) -> int:
    with session_scope(url) as session:
        return session.scalar(select(func.count()).select_from(InspectionRun)) or 0


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(sqlite_url: str) -> None:
    engine = get_engine(sqlite_url)
    assert get_engine(sqlite_url) is engine  # cached per URL
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_wal_switch_waits_for_a_writer_on_a_brand_new_file(tmp_path) -> None:
    """SQLite refuses ``journal_mode = WAL`` at once (no busy handler) while another connection holds
    the write lock of a not-yet-WAL file: the race of two processes creating one database together."""
    path = tmp_path / "new.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # rollback-journal mode: a RESERVED lock
    release = threading.Timer(0.3, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        started = time.monotonic()
        with get_engine(f"sqlite:///{path}").connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert time.monotonic() - started >= 0.25  # it waited for the lock instead of failing
    finally:
        release.join()
        holder.close()
        dispose_engine(f"sqlite:///{path}")


def test_sqlite_parent_folder_is_created(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'deeper' / 'qc.db'}"
    with get_engine(url).connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    assert (tmp_path / "new" / "deeper" / "qc.db").is_file()
    dispose_engine(url)


def test_session_scope_commits_and_rolls_back_without_losing_earlier_work(db_url: str) -> None:
    _add_run(db_url, n_results=3)
    with pytest.raises(RuntimeError, match="boom"):
        with session_scope(db_url, write=True) as session:
            session.add(InspectionRun(source_folder="/line/b"))
            session.flush()
            raise RuntimeError("boom")
    assert _count_runs(db_url) == 1
    with session_scope(db_url) as session:
        assert session.scalar(select(func.count()).select_from(ImageResult)) == 3


def test_foreign_keys_cascade_results_with_their_run(db_url: str) -> None:
    run_id = _add_run(db_url, n_results=4)
    with session_scope(db_url, write=True) as session:
        session.delete(session.get(InspectionRun, run_id))
    with session_scope(db_url) as session:
        assert session.scalar(select(func.count()).select_from(ImageResult)) == 0


def test_locked_sqlite_database_gives_clear_error_and_keeps_data(sqlite_url: str) -> None:
    _add_run(sqlite_url)
    path = get_engine(sqlite_url).url.database
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        impatient = get_engine(sqlite_url, busy_timeout_s=0.2)
        started = time.monotonic()
        with pytest.raises(DatabaseLockedError) as info:
            _add_run(impatient, folder="/line/blocked")
        assert time.monotonic() - started < 10
        assert path in str(info.value) and "locked" in str(info.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert _count_runs(sqlite_url) == 1


def test_write_with_retry_waits_out_a_lock(sqlite_url: str) -> None:
    path = get_engine(sqlite_url).url.database
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.6, lambda: (holder.execute("COMMIT"), holder.close()))
    release.start()
    attempts = []

    def work(session) -> int:  # type: ignore[no-untyped-def]
        attempts.append(1)
        run = InspectionRun(source_folder="/line/retry")
        session.add(run)
        session.flush()
        return run.id

    run_id = write_with_retry(get_engine(sqlite_url, busy_timeout_s=0.1), work, attempts=10, backoff_s=0.1)
    release.join()
    assert run_id >= 1 and len(attempts) >= 2
    assert _count_runs(sqlite_url) == 1


def test_gone_sqlite_database_gives_clear_error(tmp_path) -> None:
    from db.session import upgrade

    folder = tmp_path / "share"
    url = f"sqlite:///{folder / 'qc.db'}"
    upgrade(url)
    get_engine(url).dispose()
    shutil.rmtree(folder)
    with pytest.raises(DatabaseUnavailableError) as info:
        _count_runs(url)
    assert str(folder / "qc.db") in str(info.value)
    dispose_engine(url)


def test_sqlite_folder_that_cannot_exist_is_reported(tmp_path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(DatabaseUnavailableError, match="cannot create its folder"):
        get_engine(f"sqlite:///{blocker / 'qc.db'}")


def test_unreachable_postgres_server_names_database_without_password() -> None:
    url = "postgresql+psycopg://qc:secret@127.0.0.1:1/qc_nowhere"
    with pytest.raises(DatabaseUnavailableError) as info:
        _count_runs(url)
    message = str(info.value)
    assert "127.0.0.1:1/qc_nowhere" in message and "secret" not in message
    assert describe_url(url) == "postgresql+psycopg://qc:***@127.0.0.1:1/qc_nowhere"
    dispose_engine(url)


def test_unmigrated_database_asks_for_upgrade(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(SchemaNotCurrentError, match="qc db upgrade"):
        _count_runs(url)
    with pytest.raises(SchemaNotCurrentError, match="has no inspection tables"):
        ensure_current(url)
    dispose_engine(url)


def test_invalid_url_is_reported() -> None:
    with pytest.raises(DatabaseUnavailableError, match="not a valid SQLAlchemy URL"):
        get_engine("not a url")
