"""Helpers for code that writes image results (batch inspection).

Kept beside the schema so the writer and the analytics agree on what the
bookkeeping columns mean.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.schema import ImageResult

_CHUNK = 500  # stays under every backend's bound-parameter limit


def find_reinspections(session: Session, run_id: int, content_hashes: Iterable[str | None]) -> set[str]:
    """Which of ``content_hashes`` an earlier run (lower id) already inspected.

    Set ``ImageResult.is_reinspection = True`` for those before inserting, so
    first-pass yield counts each image content once, at its first verdict.
    Uses the ``content_hash`` index: one query per 500 hashes.
    """
    wanted = sorted({h for h in content_hashes if h})
    seen: set[str] = set()
    for i in range(0, len(wanted), _CHUNK):
        chunk = wanted[i : i + _CHUNK]
        stmt = (
            select(ImageResult.content_hash)
            .where(ImageResult.content_hash.in_(chunk), ImageResult.run_id < run_id)
            .distinct()
        )
        seen.update(session.execute(stmt).scalars())
    return seen
