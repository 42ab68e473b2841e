"""File fingerprints shared by backbone weights, model artifacts and inspected images."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, streamed (weights files reach hundreds of MB); raises OSError."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
