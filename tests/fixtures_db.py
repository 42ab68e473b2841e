"""Fixtures for the db area: migrated SQLite and PostgreSQL databases, and one with demo results.

``sqlite_url``: a fresh SQLite file migrated to head. ``postgres_url``: a fresh
database on the server named by ``QC_TEST_POSTGRES_URL`` (``scripts/start_postgres.sh``
prints one), migrated to head and dropped afterwards; skipped with the reason when
the variable is unset or the server is down. ``db_url``: both, parametrised.
``populated_db``: a SQLite URL holding ``db.demo`` runs over 14 days (session-scoped,
so read-only for tests).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest

POSTGRES_ENV = "QC_TEST_POSTGRES_URL"
#: End of the populated_db demo period: fixed so tests can name dates.
POPULATED_END = datetime(2024, 3, 15)


def _dispose(url: str) -> None:
    from db.session import dispose_engine

    dispose_engine(url)


@pytest.fixture
def sqlite_url(tmp_path) -> Iterator[str]:
    """A migrated SQLite database file in a temporary folder."""
    from db.session import upgrade

    url = f"sqlite:///{(tmp_path / 'qc.db').as_posix()}"
    upgrade(url)
    yield url
    _dispose(url)


def _postgres_admin_url() -> str:
    url = os.environ.get(POSTGRES_ENV, "").strip()
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set (run `export {POSTGRES_ENV}=$(scripts/start_postgres.sh)`)")
    return url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database, dropped after the test."""
    from sqlalchemy import create_engine, make_url, text

    from db.session import upgrade

    base = make_url(_postgres_admin_url())
    admin = create_engine(base, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    name = f"qc_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # server down or no CREATEDB right: say why, do not fail the suite
        admin.dispose()
        pytest.skip(f"PostgreSQL at {base.render_as_string(hide_password=True)} unusable: {exc}")
    url = base.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        _dispose(url)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request) -> str:
    """Each test using this runs against SQLite and against PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture(scope="session")
def populated_db(tmp_path_factory) -> Iterator[str]:
    """SQLite URL with 14 days x 3 shifts x 3 lines x 4 categories of demo runs (30 images each)."""
    from db.demo import populate_demo_results
    from db.session import get_engine, upgrade

    url = f"sqlite:///{(tmp_path_factory.mktemp('populated') / 'qc.db').as_posix()}"
    upgrade(url)
    populate_demo_results(get_engine(url), days=14, end=POPULATED_END, images_per_run=30, seed=7)
    yield url
    _dispose(url)
