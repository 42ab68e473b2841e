"""Engines, sessions, migrations and clear database errors for any SQLAlchemy URL.

SQLite is the default (one file, many processes): every connection gets WAL mode,
a busy timeout and foreign keys, and write transactions start with
``BEGIN IMMEDIATE`` so two writers queue for the lock up front instead of
deadlocking when a reader upgrades to a writer. PostgreSQL (``postgresql+psycopg://``)
works unchanged. Failures a user can cause (server down, file gone, lock held
too long, schema never migrated) become :class:`DatabaseError` subclasses whose
message names the database, and nothing committed is lost because every unit of
work is one transaction.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from qc_models.config import Settings

T = TypeVar("T")

#: Seconds a SQLite connection waits for another process's lock before failing.
DEFAULT_BUSY_TIMEOUT_S = 30.0
#: Seconds a PostgreSQL connection attempt may take before the server counts as unavailable.
CONNECT_TIMEOUT_S = 10
_BEGIN_OPTION = "qc_sqlite_begin"  # execution option: "IMMEDIATE" for write transactions


class DatabaseError(RuntimeError):
    """A database problem a user can act on; the message names the database."""

    def __init__(self, database: str, reason: str) -> None:
        self.database = database
        self.reason = reason
        super().__init__(f"database {database}: {reason}")


class DatabaseUnavailableError(DatabaseError):
    """The database cannot be reached or opened (server down, file or folder gone, no permission)."""


class DatabaseLockedError(DatabaseUnavailableError):
    """Another process held the SQLite write lock for longer than the busy timeout."""


class SchemaNotCurrentError(DatabaseError):
    """The database has no tables or an older schema: run ``qc db upgrade``."""


def describe_url(url: str | Engine) -> str:
    """A printable name for a database: the file of a SQLite URL, else the URL without its password."""
    parsed = url.url if isinstance(url, Engine) else make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or ":memory:"
    return parsed.render_as_string(hide_password=True)


def translate_error(database: str, exc: BaseException) -> DatabaseError | None:
    """Map a SQLAlchemy/driver error to a :class:`DatabaseError`, or ``None`` when it is a bug, not a user problem."""
    if isinstance(exc, DatabaseError):
        return exc
    if not isinstance(exc, sa_exc.DBAPIError):
        return None
    orig = getattr(exc, "orig", None)
    lines = str(orig if orig is not None else exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    lowered = text.lower()
    if "locked" in lowered or "busy" in lowered:
        return DatabaseLockedError(database, f"is locked by another process ({text}); retry when the other writer is done")
    if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        return SchemaNotCurrentError(
            database, f"has no inspection tables ({text}); create them with `qc db upgrade --db <URL>`"
        )
    if isinstance(exc, sa_exc.OperationalError) or exc.connection_invalidated:
        return DatabaseUnavailableError(database, f"is unavailable ({text})")
    return None


@contextmanager
def translate_errors(database: str) -> Iterator[None]:
    """Re-raise user-actionable database failures as :class:`DatabaseError` naming ``database``."""
    try:
        yield
    except sa_exc.DBAPIError as exc:
        mapped = translate_error(database, exc)
        if mapped is None:
            raise
        raise mapped from exc


def _enable_wal(cursor, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    """``PRAGMA journal_mode = WAL``, retried while another process holds the lock.

    Switching a new file into WAL mode needs an exclusive lock, and SQLite does not
    run the busy handler for it: two processes opening a brand-new database at once
    (e.g. two ``qc inspect`` starting together) made one fail at once with "database
    is locked" despite the busy timeout. Retry with backoff up to ``timeout_s``.
    """
    import sqlite3

    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            message = str(exc).lower()
            if ("locked" not in message and "busy" not in message) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _install_sqlite_events(engine: Engine, busy_timeout_s: float) -> None:
    """WAL, busy timeout and foreign keys per connection; explicit BEGIN so IMMEDIATE is possible."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # let SQLAlchemy emit BEGIN itself (see _on_begin)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if engine.url.database not in (None, "", ":memory:"):
                _enable_wal(cursor, busy_timeout_s)
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())


_engines: dict[tuple[str, float], tuple[int, Engine]] = {}
_engines_lock = threading.Lock()


def get_engine(url: str | None = None, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> Engine:
    """The engine for ``url`` (default ``Settings.from_env().db_url``), cached per URL and process.

    The SQLite file's parent folder is created. A cached engine inherited through
    ``fork`` is replaced, because pooled connections must never cross processes.
    """
    url = url or Settings.from_env().db_url
    key = (url, float(busy_timeout_s))
    pid = os.getpid()
    with _engines_lock:
        cached = _engines.get(key)
        if cached is not None and cached[0] == pid:
            return cached[1]
        if cached is not None:
            cached[1].dispose(close=False)
        engine = _create_engine(url, busy_timeout_s)
        _engines[key] = (pid, engine)
        return engine


def _create_engine(url: str, busy_timeout_s: float) -> Engine:
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError as exc:
        raise DatabaseUnavailableError(url, f"is not a valid SQLAlchemy URL ({exc})") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            folder = Path(parsed.database).expanduser().resolve().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseUnavailableError(parsed.database, f"cannot create its folder {folder} ({exc})") from exc
        engine = create_engine(parsed, connect_args={"timeout": busy_timeout_s})
        _install_sqlite_events(engine, busy_timeout_s)
        return engine
    connect_args: dict[str, object] = {}
    if backend == "postgresql" and "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    try:
        return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    except (ImportError, sa_exc.NoSuchModuleError) as exc:
        raise DatabaseUnavailableError(describe_url(url), f"has no installed driver ({exc})") from exc


def dispose_engine(url: str) -> None:
    """Close and forget the cached engines of ``url`` (e.g. before deleting its file)."""
    with _engines_lock:
        for key in [k for k in _engines if k[0] == url]:
            pid, engine = _engines.pop(key)
            if pid == os.getpid():
                engine.dispose()


def dispose_engines() -> None:
    """Close every cached engine (tests, and processes that are about to exit)."""
    with _engines_lock:
        for pid, engine in _engines.values():
            if pid == os.getpid():
                engine.dispose()
        _engines.clear()


def _as_engine(url_or_engine: str | Engine | None) -> Engine:
    return url_or_engine if isinstance(url_or_engine, Engine) else get_engine(url_or_engine)


@contextmanager
def session_scope(url_or_engine: str | Engine | None = None, *, write: bool = False) -> Iterator[Session]:
    """One transaction: committed on success, rolled back on any error.

    ``write=True`` takes SQLite's write lock at ``BEGIN`` (``BEGIN IMMEDIATE``) so
    concurrent writers wait up to the busy timeout instead of failing mid-way;
    on other backends it changes nothing. Keep write transactions short.
    """
    engine = _as_engine(url_or_engine)
    bind = engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"}) if write else engine
    with translate_errors(describe_url(engine)):
        with Session(bind=bind, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise


def write_with_retry(
    url_or_engine: str | Engine | None,
    work: Callable[[Session], T],
    *,
    attempts: int = 5,
    backoff_s: float = 0.5,
) -> T:
    """Run ``work(session)`` in a write transaction, retrying when the database stays locked.

    The busy timeout already waits for the lock; this covers the rarer case where
    it expires under heavy contention. ``work`` must be safe to run again (the
    failed attempt was rolled back).
    """
    for attempt in range(1, attempts + 1):
        try:
            with session_scope(url_or_engine, write=True) as session:
                return work(session)
        except DatabaseLockedError:
            if attempt == attempts:
                raise
            time.sleep(backoff_s * attempt)
    raise AssertionError("unreachable")  # pragma: no cover


# ---------------------------------------------------------------- migrations

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | None = None):  # type: ignore[no-untyped-def]
    """Alembic ``Config`` with the package's own migrations, independent of the working directory."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest migration revision shipped with this package."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, f"no migrations in {MIGRATIONS_DIR}"
    return head


def current_revision(url_or_engine: str | Engine | None = None) -> str | None:
    """The revision the database is at (``None`` for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    engine = _as_engine(url_or_engine)
    with translate_errors(describe_url(engine)), engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(url_or_engine: str | Engine | None = None, revision: str = "head") -> str:
    """Bring the database to ``revision`` with Alembic (``alembic upgrade head``); returns the new revision.

    Safe to call at every start-up and from several processes at once: an
    up-to-date database is only read, and the migration itself runs in one
    transaction holding the write lock (SQLite) or an advisory lock (PostgreSQL).
    """
    from alembic import command

    engine = _as_engine(url_or_engine)
    name = describe_url(engine)
    target = head_revision() if revision == "head" else revision
    if current_revision(engine) == target:
        return target
    cfg = alembic_config()
    with translate_errors(name), engine.connect() as conn:
        conn.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return current_revision(engine) or ""


def ensure_current(url_or_engine: str | Engine | None = None) -> Engine:
    """The engine, after checking its schema is at head; raises :class:`SchemaNotCurrentError` otherwise."""
    engine = _as_engine(url_or_engine)
    current, head = current_revision(engine), head_revision()
    if current != head:
        state = "has no inspection tables" if current is None else f"is at schema revision {current}, not {head}"
        raise SchemaNotCurrentError(
            describe_url(engine), f"{state}; run `qc db upgrade --db <URL>` (or db.session.upgrade)"
        )
    return engine
