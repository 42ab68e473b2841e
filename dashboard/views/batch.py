"""Batch inspection: inspect a server folder into the database in the background, then review the results."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard import jobs as jobmod
from dashboard import state, widgets
from db.filters import Filters
from qc_models.data import ImageLoadError, load_rgb
from qc_models.inspection import run_inspection

KIND = "inspect"
GALLERY_COLUMNS = 4

st.title("Batch inspection")
st.caption("Inspect every image of a folder on the server with the newest models of a category. The run continues "
           "when you leave this page; results land in the database as they are scored.")
cfg = state.settings()
registry = state.jobs()
versions = state.model_versions(str(cfg.models_dir), state.generation())
model_categories = state.model_categories(versions)
if not model_categories:
    widgets.fix_banner(f"No trained models in `{cfg.models_dir}`: train them on the Models page or run:",
                       "qc demo-setup")
    st.stop()


def _start(folder: str, category: str, line: str, shift: str, lot: str, resume_run_id: int | None = None) -> None:
    """Submit the run as a background job; the page only keeps the job id."""
    # A resume reloads the exact model versions the run recorded; a new run uses the cached newest set.
    scorer = None if resume_run_id else state.model_set(str(cfg.models_dir), category)
    meta: dict = {"folder": folder, "category": category}
    models_dir, db_url = str(cfg.models_dir), cfg.db_url

    def body(progress, stop):
        return run_inspection(folder, models_dir=models_dir, db_url=db_url, category=category, line=line or None,
                              shift=shift or None, lot=lot or None, resume_run_id=resume_run_id, progress=progress,
                              scorer=scorer, stop_event=stop, on_run_created=lambda rid: meta.update(run_id=rid))

    label = f"Resume run {resume_run_id}" if resume_run_id else f"Inspect {Path(folder).name or folder}"
    try:
        job = registry.submit(KIND, f"{KIND}:{Path(folder).resolve()}", label, body, meta=meta)
    except jobmod.JobConflictError as exc:
        st.error(f"Not started: {exc}.")
        return
    st.session_state["batch_job"] = job.id


# ---------------------------------------------------------------- new run
with st.container(border=True):
    st.subheader("New run")
    folders = state.subfolders(str(cfg.data_dir))
    if folders:
        st.selectbox("Folders under the dataset root", [str(cfg.data_dir), *folders], index=None, key="batch_pick",
                     placeholder="pick a folder…", on_change=lambda: st.session_state.update(
                         batch_folder=st.session_state["batch_pick"] or st.session_state.get("batch_folder", "")))
    folder = st.text_input("Folder on the server", key="batch_folder",
                           placeholder="/path/to/images (searched recursively)").strip()
    row = st.columns(4)
    hint = next((c for c in model_categories if c in Path(folder).parts), model_categories[0])
    category = row[0].selectbox("Category (models)", model_categories, index=model_categories.index(hint),
                                key="batch_category")
    line = row[1].text_input("Line", key="batch_line", placeholder="e.g. line-1")
    shift = row[2].text_input("Shift", key="batch_shift", placeholder="e.g. A")
    lot = row[3].text_input("Lot", key="batch_lot", placeholder="e.g. L042")
    if st.button("Start inspection", type="primary", icon=":material/play_arrow:", disabled=not folder):
        if not Path(folder).is_dir():
            st.error(f"{folder}: not a folder on the server.")
        else:
            _start(folder, category, line, shift, lot)


# ---------------------------------------------------------------- live progress
def _job_panel() -> None:
    job = registry.get(st.session_state.get("batch_job")) or registry.latest(KIND)
    if job is None:
        return
    run_id = job.meta.get("run_id")
    title = f"**{job.label}**" + (f" · run {run_id}" if run_id else "")
    if not job.finished:
        st.progress(job.progress, text=f"{title}: {job.message}")
        if st.button("Stop after the current batch", icon=":material/stop:", key=f"stop_{job.id}"):
            registry.cancel(job.id)
        return
    if job.status == jobmod.FAILED:
        st.error(f"{title} failed: {job.error}")
    else:
        summary = job.result
        if job.status == jobmod.CANCELLED:
            st.warning(f"{title} was stopped; resume it below to finish the remaining images.")
        else:
            st.success(f"{title} finished in {summary.seconds:.1f} s.")
        c = st.columns(5)
        c[0].metric("Images", summary.n_images)
        c[1].metric("Scored", summary.n_scored)
        c[2].metric("Defective (NG)", summary.n_defective)
        c[3].metric("Errors", summary.n_errors)
        c[4].metric("Defect rate", widgets.percent(summary.defect_rate))
    if st.session_state.get("batch_seen") != job.id:  # once per finished job: show its results
        st.session_state["batch_seen"] = job.id
        if run_id:
            st.session_state["batch_run"] = run_id
        st.rerun(scope="app")


if registry.latest(KIND) is not None:
    st.subheader("Progress")
if registry.active(KIND):
    st.fragment(run_every=1.0)(_job_panel)()
else:
    _job_panel()

# ---------------------------------------------------------------- results
if not state.database_exists(cfg.db_url):
    st.info("No inspection results yet: start a run above.")
    st.stop()
runs = state.query("latest_runs", cfg.db_url, Filters(), limit=200)
if runs.empty:
    st.info("No inspection results yet: start a run above.")
    st.stop()

st.subheader("Results")
labels = {int(r.id): f"run {r.id} · {r.started_at:%Y-%m-%d %H:%M} · {r.category} · lot {r.lot or '—'} · "
                     f"{r.status} · {r.n_scored}/{r.n_images} scored" for r in runs.itertuples()}
ids = list(labels)
if st.session_state.get("batch_run") not in ids:  # first visit, or the selected run is no longer listed
    job = registry.get(st.session_state.get("batch_job"))
    st.session_state["batch_run"] = job.meta.get("run_id") if job and job.meta.get("run_id") in ids else ids[0]
run_id = st.selectbox("Run", ids, format_func=labels.get, key="batch_run")
run = runs[runs["id"] == run_id].iloc[0]
if run["status"] in ("interrupted", "failed", "running") and not registry.active(KIND):
    st.warning(f"Run {run_id} is **{run['status']}** with {run['n_scored'] + run['n_errors']}/{run['n_images']} "
               "images done.")
    if st.button("Resume this run", icon=":material/resume:"):
        _start(str(run["source_folder"]), str(run["category"]), run["line"] or "", run["shift"] or "",
               run["lot"] or "", resume_run_id=run_id)
        st.rerun()

run_filter = Filters(run_ids=(run_id,))
f = st.columns([1, 1, 2])
decision = f[0].segmented_control("Decision", ["All", "NG", "OK", "Errors"], default="All", key="batch_decision")
types = state.query("defect_type_counts", cfg.db_url, run_filter)
known = sorted(set(types.iloc[:, 0].astype(str)) - {"unlabelled"}) if len(types) else []
defect_type = f[1].selectbox("Known defect type", ["(any)", *known], key="batch_type")
results = state.query("run_results", cfg.db_url, run_filter,
                      status="error" if decision == "Errors" else ("ok" if decision in ("NG", "OK") else None),
                      defective={"NG": True, "OK": False}.get(decision or "All"),
                      defect_type=None if defect_type == "(any)" else defect_type, order="worst", limit=2000)
show = ["rel_path", "known_defect_type", "status", "is_defective", "ensemble_score", "cae_score", "unet_score",
        "patchcore_score", "anomaly_area_fraction", "error_text"]
f[2].caption(f"{len(results)} images (worst first; at most 2000 shown)")
widgets.show_dataframe(results[[c for c in show if c in results]], "No images match these filters.",
                       column_config={"ensemble_score": st.column_config.ProgressColumn(
                           "ensemble score", format="%.2f", min_value=0.0, max_value=1.0)})

st.subheader("Worst images")
n_worst = st.slider("How many", 4, 24, 8, 4, key="batch_worst_n")
worst = state.query("worst_results", cfg.db_url, run_filter, n=n_worst)
images, captions = [], []
for r in worst.itertuples():
    try:
        img = load_rgb(r.path)
    except ImageLoadError:
        continue  # file moved since the run: the table above still lists it
    box = (r.bbox_x, r.bbox_y, r.bbox_w, r.bbox_h)
    images.append(widgets.draw_box(img, box if r.is_defective else None))
    captions.append(f"{r.ensemble_score:.2f} {'NG' if r.is_defective else 'OK'} · {r.rel_path}")
widgets.image_grid(images, captions, columns=GALLERY_COLUMNS)

errors = state.query("run_errors", cfg.db_url, run_filter)
st.subheader(f"Errors ({len(errors)})")
widgets.show_dataframe(errors[["rel_path", "error_text"]], "Every image of this run could be read.")
