"""Alembic environment: runs the package's migrations on a given connection or URL.

``db.session.upgrade`` passes an open connection in ``config.attributes`` (already
set to take SQLite's write lock at BEGIN); the ``alembic`` command line uses
``sqlalchemy.url`` from ``db/alembic.ini`` or ``-x url=...``. All pending
migrations run in one transaction so a failure leaves the previous schema intact,
and PostgreSQL takes an advisory lock so concurrent upgrades run one after another.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from db.schema import Base

# Arbitrary constant identifying "qc schema migration" for pg_advisory_xact_lock.
_PG_LOCK_KEY = 7_214_091_337

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    is_sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        transactional_ddl=True,
        render_as_batch=is_sqlite,  # SQLite ALTER TABLE needs copy-and-move batches
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade head --sql``)."""
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from db.session import get_engine

    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    engine = get_engine(url or None)
    with engine.connect() as conn:
        conn.execution_options(qc_sqlite_begin="IMMEDIATE")
        _run(conn)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
