"""AppTest helpers: run the real app entry point against locations given by environment variables."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
#: Page files by URL path, as routed by dashboard/app.py.
PAGES = {
    "": "views/overview.py",
    "eda": "views/eda.py",
    "models": "views/models.py",
    "inspect": "views/inspect.py",
    "batch": "views/batch.py",
    "analytics": "views/analytics.py",
    "reports": "views/reports.py",
}
#: Generous per-run timeout: the first run of a page imports torch and loads models on a shared 2-core machine.
RUN_TIMEOUT_S = 120


def point_env(monkeypatch: pytest.MonkeyPatch, data_dir: Path, models_dir: Path, db_url: str) -> None:
    monkeypatch.setenv("QC_DATA_DIR", str(data_dir))
    monkeypatch.setenv("QC_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("QC_DB_URL", db_url)


@pytest.fixture
def open_page() -> Callable[..., AppTest]:
    """``open_page("eda")`` -> an AppTest that has rendered that page (URL path) once."""

    def _open(url_path: str, session_state: dict | None = None) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT_S)
        at.run()
        assert not at.exception, f"app failed on first run: {at.exception}"
        for key, value in (session_state or {}).items():
            at.session_state[key] = value
        if url_path:
            at.switch_page(PAGES[url_path]).run()
        return at

    return _open


@pytest.fixture
def empty_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Locations where nothing exists yet: no dataset, no models, no database."""
    point_env(monkeypatch, tmp_path / "no-data", tmp_path / "no-models", f"sqlite:///{tmp_path / 'none' / 'qc.db'}")
    return tmp_path


def texts(at: AppTest) -> str:
    """Everything a user reads on the page (markdown, banners, captions, titles), lower-cased."""
    parts: list[str] = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success", "code"):
        parts.extend(str(el.value) for el in getattr(at, kind))
    return "\n".join(parts).lower()


@pytest.fixture
def demo_env(monkeypatch, tiny_models_dir, populated_db):
    """``(models_dir, data_dir, category, db_url)``: the tiny trained registry and a populated database."""
    models_dir, data_dir, category = tiny_models_dir
    point_env(monkeypatch, data_dir, models_dir, populated_db)
    return models_dir, data_dir, category, populated_db


def count_charts(at: AppTest) -> int:
    """Charts on the page (Vega-Lite and Plotly)."""
    return len(at.get("vega_lite_chart")) + len(at.get("plotly_chart"))


def wait_for_jobs() -> None:
    """Wait for every background job of the dashboard's job registry to finish."""
    from dashboard import state

    for job in state.jobs().jobs():
        state.jobs().wait(job.id, timeout=300)
