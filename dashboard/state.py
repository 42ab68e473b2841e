"""Process-wide resources and cached results shared by every page and session.

Streamlit reruns page scripts on every interaction, so anything slow is cached
here: the database engine, loaded models and the job registry with
``st.cache_resource`` (one object per process), query results and EDA summaries
with ``st.cache_data`` (copied per caller). Query caches carry the job registry's
``generation`` in their key, so results written by a finished batch run or
training job appear on the next rerun without a manual refresh.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st
from sqlalchemy import make_url

from dashboard.jobs import JobRegistry
from qc_models.config import Settings

#: Seconds a cached query result stays valid; results written by other processes (CLI runs) show up after this.
QUERY_TTL_S = 60


def settings() -> Settings:
    """Locations from ``QC_DATA_DIR``/``QC_MODELS_DIR``/``QC_DB_URL`` (read on every run: cheap, never stale)."""
    return Settings.from_env()


@st.cache_resource(show_spinner=False)
def jobs() -> JobRegistry:
    """The one job registry of this server process: jobs survive page changes and reconnects."""
    return JobRegistry()


def generation() -> int:
    """Changes whenever a background job finishes; part of every query cache key."""
    return jobs().generation


def clear_caches() -> None:
    """Forget cached query results, EDA summaries and model listings (after new results are written)."""
    st.cache_data.clear()


# ---------------------------------------------------------------- database


def database_exists(db_url: str) -> bool:
    """False for a SQLite file that was never created (the empty state); True for server databases."""
    url = make_url(db_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return True
    return Path(url.database).expanduser().is_file()


@st.cache_resource(show_spinner="Opening the database…")
def engine(db_url: str) -> Any:
    """The SQLAlchemy engine for ``db_url`` with its schema migrated to the newest revision."""
    from db.session import get_engine, upgrade

    eng = get_engine(db_url)
    upgrade(eng)
    return eng


def filters_key(filters: Any) -> dict[str, Any] | None:
    """A ``db.queries.Filters`` as a plain dict (hashable by ``st.cache_data``)."""
    if filters is None:
        return None
    return dataclasses.asdict(filters) if dataclasses.is_dataclass(filters) else dict(filters)


def _query_function(name: str) -> Any:
    """``<name>`` from ``db.queries`` (aggregates), ``db.run_queries`` (rows) or ``db.demo`` (simulated-data facts)."""
    from db import demo, queries, run_queries

    for module in (queries, run_queries, demo):
        fn = getattr(module, name, None)
        if callable(fn) and not name.startswith("_"):
            return fn
    raise AttributeError(f"db.queries / db.run_queries / db.demo have no query '{name}'")


@st.cache_data(ttl=QUERY_TTL_S, show_spinner=False, max_entries=256)
def _query(name: str, db_url: str, filters: Mapping[str, Any] | None, kwargs: Mapping[str, Any], gen: int) -> Any:
    from db.filters import Filters

    fn = _query_function(name)
    eng = engine(db_url)
    if filters is None:
        return fn(eng, **kwargs)
    return fn(eng, Filters(**filters), **kwargs)


def query(name: str, db_url: str, filters: Any = None, **kwargs: Any) -> Any:
    """``<name>(engine, filters, **kwargs)`` from ``db.queries``/``db.run_queries``, cached until new results land."""
    _query_function(name)  # fail fast with a clear name, before touching the cache
    return _query(name, db_url, filters_key(filters), dict(kwargs), generation())


# ---------------------------------------------------------------- dataset


@st.cache_data(ttl=30, show_spinner=False)
def categories(data_dir: str) -> list[str]:
    """Categories under ``data_dir``; empty when the folder is missing or not a dataset."""
    from qc_models.data import DatasetError, list_categories

    try:
        return list_categories(data_dir)
    except DatasetError:
        return []


@st.cache_data(ttl=30, show_spinner=False)
def subfolders(root: str, depth: int = 2) -> list[str]:
    """Folders under ``root`` (up to ``depth`` levels) that a batch run can be pointed at."""
    base = Path(root)
    if not base.is_dir():
        return []
    out: list[str] = []
    level = [base]
    for _ in range(depth):
        nxt = sorted(p for d in level for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
        out.extend(str(p) for p in nxt)
        level = nxt
    return sorted(out)


def folder_signature(folder: str | Path) -> tuple[tuple[str, int], ...]:
    """Modification times of ``folder`` and its sub-folders: changes when files are added or removed."""
    base = Path(folder)
    if not base.is_dir():
        return ()
    dirs = [base, *(p for p in base.rglob("*") if p.is_dir())]
    return tuple(sorted((str(d.relative_to(base)), d.stat().st_mtime_ns) for d in dirs))


@st.cache_data(show_spinner="Analysing the dataset (every image is read once)…", max_entries=8)
def _eda(root: str, category: str, signature: tuple) -> Any:
    from qc_models.eda import run_eda

    return run_eda(root, category, check_integrity=True, workers=2)


def eda(root: str, category: str) -> Any:
    """``qc_models.eda.run_eda`` of one category (an ``EdaReport``), cached per root, category and folder state."""
    return _eda(str(root), category, folder_signature(Path(root) / category))


# ---------------------------------------------------------------- models


@st.cache_data(ttl=30, show_spinner=False)
def model_versions(models_dir: str, gen: int = 0) -> pd.DataFrame:
    """Every saved model version as a table (newest first); empty when the registry is missing."""
    if not Path(models_dir).is_dir():
        return pd.DataFrame()
    from qc_models.registry import list_versions, version_rows

    return pd.DataFrame(version_rows(list_versions(models_dir)))


def model_categories(versions: pd.DataFrame) -> list[str]:
    """Categories that have at least one trained model, sorted (empty registry: none)."""
    return sorted(versions["category"].unique()) if "category" in versions else []


def model_signature(models_dir: str, category: str) -> tuple[str, ...]:
    """Identifies the versions of ``category`` and their thresholds: reloads the models when either changes.

    A new training adds a path; a saved threshold rewrites a ``model.json`` in place, so the
    threshold is part of the signature too (otherwise pages would keep deciding with the old
    one until a restart).
    """
    df = model_versions(models_dir, generation())
    if df.empty or "category" not in df:
        return ()
    sub = df[df["category"] == category]
    paths = sub.get("path", sub.get("version", pd.Series(dtype=str)))
    thresholds = sub.get("threshold", pd.Series([None] * len(sub), index=sub.index))
    return tuple(sorted(f"{p}@{t!r}" for p, t in zip(paths, thresholds)))


@st.cache_resource(show_spinner="Loading models…", max_entries=4)
def _model_set(models_dir: str, category: str, signature: tuple[str, ...]) -> Any:
    from qc_models.registry import load_model_set
    from qc_models.runtime import configure_torch

    configure_torch()
    return load_model_set(models_dir, category)


def model_set(models_dir: str, category: str) -> Any:
    """The newest trained models of ``category`` (``registry.ModelSet``), loaded once per version."""
    return _model_set(str(models_dir), category, model_signature(str(models_dir), category))


@st.cache_data(show_spinner="Scoring…", max_entries=16)
def _score(models_dir: str, category: str, signature: tuple[str, ...], digests: tuple[str, ...], _images: list) -> list:
    return model_set(models_dir, category).score(_images)


def score_images(models_dir: str, category: str, images: list, digests: tuple[str, ...]) -> list:
    """``ModelSet.score(images)`` cached by image digests and model versions (reruns don't rescore)."""
    return _score(str(models_dir), category, model_signature(str(models_dir), category), digests, images)


@st.cache_data(ttl=30, show_spinner=False)
def newest_metrics(models_dir: str, category: str, gen: int = 0) -> dict[str, dict[str, Any]]:
    """Stored evaluation metrics (``model.json``) of the newest version of each model of ``category``."""
    from qc_models.registry import list_versions

    out: dict[str, dict[str, Any]] = {}
    for v in list_versions(models_dir, category=category):  # newest first
        if v.model not in out and v.error is None:
            out[v.model] = dict(v.metrics or {}, version=v.version, threshold=v.threshold,
                                metrics_threshold=v.metrics_threshold)
    return out


@st.cache_data(show_spinner="Scoring the calibration hold-out…", max_entries=16)
def _calibration_scores(models_dir: str, root: str, category: str, model: str, signature: tuple[str, ...]) -> list:
    from qc_models.data import GOOD, load_rgb
    from qc_models.training import calibration_files

    mset = model_set(models_dir, category)
    trained = mset.ensemble if model == "ensemble" else mset.members[model]
    names = calibration_files(trained.metadata)
    folder = Path(root) / category / "train" / GOOD
    images = [load_rgb(folder / n) for n in names if (folder / n).is_file()]
    if not images:
        return []
    return [s.raw[model] for s in mset.score(images, with_maps=False)]


def calibration_scores(models_dir: str, root: str, category: str, model: str) -> list[float]:
    """Raw scores of ``model`` on its own calibration hold-out (the good images listed in its model.json)."""
    return _calibration_scores(str(models_dir), str(root), category, model,
                               model_signature(str(models_dir), category))


@st.cache_data(ttl=QUERY_TTL_S, show_spinner="Collecting the report…", max_entries=16)
def _report(db_url: str, filters: Mapping[str, Any], subgroup: str, gen: int) -> Any:
    from db.filters import Filters
    from qc_models.reports import build_report

    return build_report(engine(db_url), Filters(**filters), subgroup=subgroup)


def report(db_url: str, filters: Any, subgroup: str = "day") -> Any:
    """``qc_models.reports.build_report`` for the filters (a ``ReportData``), cached until new results land."""
    return _report(db_url, filters_key(filters), subgroup, generation())
