"""Fixtures of the inspection tests: a fresh SQLite database file per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from db.session import dispose_engines


@pytest.fixture
def db_url(tmp_path: Path):
    """A SQLite URL in the test's temp folder (migrated by the runner itself)."""
    yield f"sqlite:///{(tmp_path / 'qc.db').as_posix()}"
    dispose_engines()
