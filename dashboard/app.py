"""QC dashboard entry point: page routing and the sidebar every page shares.

Run from the project root (so ``.streamlit/config.toml`` applies):
``streamlit run dashboard/app.py``. Locations come from ``QC_DATA_DIR``,
``QC_MODELS_DIR`` and ``QC_DB_URL``. Page scripts stay thin, calling ``qc_models``
and ``db`` through ``dashboard.state``; they live in ``dashboard/views/``, deliberately
not ``pages/``: Streamlit
treats a ``pages/`` folder beside the entry script as a legacy multipage app until
``st.navigation`` first runs in the process, so a first visitor opening a deep link
such as ``/analytics`` would get that page without this router, sidebar or layout.
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:  # `streamlit run` puts dashboard/ first, not the project root
    sys.path.insert(0, str(_ROOT))

import streamlit as st  # noqa: E402

from dashboard import state  # noqa: E402
from db.session import DatabaseError, describe_url  # noqa: E402
from qc_models.data import DatasetError, ImageLoadError  # noqa: E402

st.set_page_config(page_title="QC Inspect", page_icon=":material/verified:", layout="wide")

PAGES = {
    "Monitor": [
        st.Page("views/overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page("views/analytics.py", title="Defect analytics", icon=":material/analytics:", url_path="analytics"),
        st.Page("views/reports.py", title="Reports", icon=":material/description:", url_path="reports"),
    ],
    "Inspect": [
        st.Page("views/inspect.py", title="Inspect image", icon=":material/image_search:", url_path="inspect"),
        st.Page("views/batch.py", title="Batch inspection", icon=":material/inventory_2:", url_path="batch"),
    ],
    "Engineer": [
        st.Page("views/eda.py", title="Dataset EDA", icon=":material/query_stats:", url_path="eda"),
        st.Page("views/models.py", title="Models", icon=":material/model_training:", url_path="models"),
    ],
}


def _render_jobs() -> None:
    active = state.jobs().active()
    if not active:
        st.caption("No background jobs running.")
        return
    for job in active:
        st.progress(job.progress, text=f"{job.label}: {job.message}")


def sidebar() -> None:
    """Where the data comes from, background jobs and a manual refresh: the same on every page."""
    cfg = state.settings()
    with st.sidebar:
        st.subheader("Background jobs")
        if state.jobs().active():
            st.fragment(run_every=3)(_render_jobs)()
        else:
            _render_jobs()
        with st.expander("Data sources", icon=":material/folder_open:"):
            st.caption("Set with QC_DATA_DIR, QC_MODELS_DIR and QC_DB_URL.")
            st.markdown(f"**Dataset** `{cfg.data_dir}`  \n**Models** `{cfg.models_dir}`  \n"
                        f"**Database** `{describe_url(cfg.db_url)}`")
        if st.button("Refresh data", icon=":material/refresh:", help="Reload results written by other processes"):
            state.clear_caches()
            st.rerun()


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions a user can cause and fix (bad path, missing models, database down): shown as a message, not a trace.

    Model errors are included only once the registry is imported, so pages that never load torch stay fast.
    """
    found: list[type[BaseException]] = [DatabaseError, DatasetError, ImageLoadError]
    for module, name in (("qc_models.registry", "ModelError"), ("qc_models.inspection", "InspectionError"),
                         ("qc_models.calibration", "CalibrationError")):
        if module in sys.modules and hasattr(sys.modules[module], name):
            found.append(getattr(sys.modules[module], name))
    return tuple(found)


page = st.navigation(PAGES)
sidebar()
try:
    page.run()
except Exception as exc:
    if not isinstance(exc, user_errors()):
        raise
    st.error(str(exc), icon=":material/error:")
    if isinstance(exc, DatabaseError):
        st.caption("Check QC_DB_URL; an old database is brought up to date with `qc db upgrade --db <URL>`.")
