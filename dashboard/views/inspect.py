"""Inspect image: score uploaded or dataset images with every model and show where each one looks."""

from __future__ import annotations

import streamlit as st

from dashboard import state, widgets
from qc_models.data import IMAGE_EXTENSIONS, DatasetError, ImageLoadError, load_mask, load_rgb, open_category

MODEL_ORDER = ("ensemble", "cae", "unet", "patchcore")
MODEL_LABELS = {"ensemble": "Ensemble", "cae": "Autoencoder", "unet": "U-Net", "patchcore": "PatchCore"}
#: Images scored per page view: each one costs three model passes.
MAX_IMAGES = 12

st.title("Inspect image")
st.caption("Score images with the newest models of a category: calibrated scores (0.5 = threshold), "
           "OK/NG decisions and the anomaly map of every model.")

cfg = state.settings()
versions = state.model_versions(str(cfg.models_dir), state.generation())
model_categories = state.model_categories(versions)
if not model_categories:
    widgets.fix_banner(f"No trained models in `{cfg.models_dir}` yet. Train them (Models page) or run:",
                       "qc demo-setup")
    st.stop()

top = st.columns([1, 1, 1])
category = top[0].selectbox("Category", model_categories, key="inspect_category")
source = top[1].segmented_control("Images from", ["Upload", "Dataset"], default="Upload", key="inspect_source")
alpha = top[2].slider("Heatmap opacity", 0.0, 1.0, 0.5, 0.05, key="inspect_alpha")

items: list[dict] = []  # name, image, mask (or None), known defect type (or None)
if source == "Dataset":
    try:
        samples = open_category(cfg.data_dir, category).samples("test")
    except DatasetError as exc:
        samples = []
        st.warning(f"No dataset images for this category: {exc}")
    if samples:
        types = sorted({s.defect_type for s in samples})
        pick = st.columns([1, 3])
        defect_type = pick[0].selectbox("Defect type", types, index=len(types) - 1 if types else 0, key="inspect_type")
        by_name = {s.path.name: s for s in samples if s.defect_type == defect_type}
        names = pick[1].multiselect("Images", list(by_name), default=list(by_name)[:1], key="inspect_names")
        for name in names[:MAX_IMAGES]:
            sample = by_name[name]
            try:
                mask = load_mask(sample.mask_path) if sample.mask_path else None
                items.append({"name": f"{defect_type}/{name}", "image": load_rgb(sample.path), "mask": mask,
                              "known": sample.defect_type})
            except ImageLoadError as exc:
                st.error(str(exc))
else:
    uploads = st.file_uploader("Images", type=[e.lstrip(".") for e in IMAGE_EXTENSIONS], accept_multiple_files=True,
                               key="inspect_uploads", help=f"Up to {MAX_IMAGES} images are scored at a time.")
    for upload in (uploads or [])[:MAX_IMAGES]:
        try:
            items.append({"name": upload.name, "image": widgets.load_upload(upload.name, upload.getvalue()),
                          "mask": None, "known": None})
        except ImageLoadError as exc:
            st.error(str(exc))
    if uploads and len(uploads) > MAX_IMAGES:
        st.warning(f"{len(uploads)} images uploaded; only the first {MAX_IMAGES} are scored. "
                   "Use Batch inspection for whole folders.")

if not items:
    st.info("Upload images or pick some from the dataset to score them.", icon=":material/upload:")
    st.stop()

model_set = state.model_set(str(cfg.models_dir), category)
for warning in model_set.warnings:
    st.warning(warning, icon=":material/warning:")
if model_set.untrained_backbone:
    st.warning("These models use an untrained (random-init) backbone: scores are for demonstration only.",
               icon=":material/warning:")
scores = state.score_images(str(cfg.models_dir), category, [it["image"] for it in items],
                            tuple(widgets.digest(it["image"]) for it in items))
models = [m for m in MODEL_ORDER if m in scores[0].normalised]

st.subheader("Decisions")
st.dataframe(widgets.score_table([it["name"] for it in items], scores, models), hide_index=True, width="stretch")

for item, score in zip(items, scores):
    with st.container(border=True):
        ng = score.is_defective.get("ensemble", any(score.is_defective.values()))
        known = f" · known: {item['known']}" if item["known"] else ""
        st.markdown(f"#### {item['name']} {widgets.decision_badge(ng)}{known}")
        cols = st.columns(2 + len(models))
        cols[0].image(widgets.downsample(item["image"]), caption="original", width="stretch")
        if item["mask"] is not None:
            cols[1].image(widgets.overlay_mask(item["image"], item["mask"]), caption="ground truth", width="stretch")
        else:
            cols[1].caption("no ground-truth mask")
        for col, name in zip(cols[2:], models):
            col.image(widgets.overlay_heatmap(item["image"], score.maps[name], alpha=alpha), width="stretch",
                      caption=f"{MODEL_LABELS.get(name, name)}: {score.normalised[name]:.2f} "
                              f"{'NG' if score.is_defective[name] else 'OK'}")
