"""Where data, models and the database live, resolved once from the environment.

Every entry point (CLI, dashboard, benchmarks) asks this module, so pointing the
product elsewhere is one environment variable: ``QC_DATA_DIR`` (dataset root in
the MVTec AD layout), ``QC_MODELS_DIR`` (model registry) and ``QC_DB_URL`` (any
SQLAlchemy URL). Defaults live under ``<project>/data``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def default_home() -> Path:
    """Base folder for all default locations (``QC_HOME`` or ``<project>/data``)."""
    return Path(os.environ.get("QC_HOME", PROJECT_ROOT / "data")).expanduser()


@dataclass(frozen=True)
class Settings:
    """Resolved locations of the dataset root, model registry and database."""

    data_dir: Path
    models_dir: Path
    db_url: str

    @classmethod
    def from_env(cls) -> "Settings":
        home = default_home()
        data_dir = Path(os.environ.get("QC_DATA_DIR", home / "demo")).expanduser()
        models_dir = Path(os.environ.get("QC_MODELS_DIR", home / "models")).expanduser()
        db_url = os.environ.get("QC_DB_URL", f"sqlite:///{(home / 'qc.db').as_posix()}")
        return cls(data_dir=data_dir, models_dir=models_dir, db_url=db_url)
