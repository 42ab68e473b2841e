"""Dataset EDA: what a category's images look like, how balanced it is and where defects sit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, state, widgets
from qc_models.data import GOOD, CategoryLayout, ImageLoadError, load_mask, load_rgb
from qc_models.eda import ALL, image_histogram

SAMPLES_PER_GROUP = 4

st.title("Dataset EDA")
cfg = state.settings()

pick = st.columns([3, 1])
root = pick[0].text_input("Dataset root (MVTec AD layout)", value=str(cfg.data_dir), key="eda_root").strip()
categories = state.categories(root)
if not categories:
    widgets.fix_banner(f"No dataset in the MVTec AD layout at `{root}` (expected <root>/<category>/train/good and "
                       "<root>/<category>/test/<defect_type>). Generate the demo dataset with:", "qc demo-setup")
    st.stop()
category = pick[1].selectbox("Category", categories, key="eda_category")

report = state.eda(root, category)
eda = report.categories[category]
counts, stats = eda.counts, eda.image_stats

totals = counts.totals
m = st.columns(5)
m[0].metric("Train images (good)", totals["train_good"])
m[1].metric("Test good", totals["test_good"])
m[2].metric("Test defective", totals["test_defective"])
m[3].metric("Defect types", totals["defect_types"])
m[4].metric("Integrity problems", len(report.problems) + len(eda.unreadable) if report.integrity_checked else "—")

tabs = st.tabs(["Summary", "Samples", "Image statistics", "RGB histograms", "Defect masks", "Integrity"])

with tabs[0]:
    left, right = st.columns([1, 1])
    with left:
        st.subheader("Images per split and defect type")
        st.dataframe(counts.table, hide_index=True, width="stretch")
        imbalance = counts.imbalance
        ratio = imbalance.get("test_good_to_defective")
        st.caption(f"Good : defective in test = {ratio:.2f} : 1" if ratio else "No defective test images.")
    with right:
        st.subheader("Class imbalance")
        st.altair_chart(charts.stacked_counts(counts.table, "split", "images", "defect_type"), width="stretch")

with tabs[1]:
    st.subheader("Good vs defective samples")
    test = stats[stats["split"] == "test"]
    good = test[test["defect_type"] == GOOD].head(SAMPLES_PER_GROUP)
    bad = test[test["defect_type"] != GOOD].groupby("defect_type", sort=True).head(1).head(2 * SAMPLES_PER_GROUP)
    layout = CategoryLayout(Path(root), category)
    images, captions, overlays, overlay_captions = [], [], [], []
    for _, row in pd.concat([good, bad]).iterrows():
        try:
            img = load_rgb(row["path"])
        except ImageLoadError as exc:
            st.error(str(exc))
            continue
        images.append(img)
        captions.append(f"{row['defect_type']} · {Path(row['path']).name}")
        mask_path = layout.mask_path_for(row["defect_type"], Path(row["path"]))
        if mask_path is not None:
            overlays.append(widgets.overlay_mask(img, load_mask(mask_path)))
            overlay_captions.append(f"{row['defect_type']} · mask overlay")
    widgets.image_grid(images, captions, columns=SAMPLES_PER_GROUP)
    st.subheader("Mask overlays")
    widgets.image_grid(overlays, overlay_captions, columns=SAMPLES_PER_GROUP)

with tabs[2]:
    agg = eda.aggregates
    st.subheader("Image properties")
    c = st.columns(4)
    c[0].metric("Modal size (H×W)", "×".join(map(str, agg["modal_size"])) if agg.get("modal_size") else "—")
    c[1].metric("Channel mean (R, G, B)", ", ".join(f"{v:.2f}" for v in agg["channel_mean"]))
    c[2].metric("Intensity outliers", agg["intensity_outlier_count"])
    c[3].metric("Abnormal dimensions", agg["abnormal_dimension_count"])
    st.caption(f"Sizes: {agg['sizes']} · modes: {agg['modes']} · bit depths: {agg['bit_depths']}")
    st.subheader("Mean statistics per class")
    st.dataframe(eda.class_summary.round(3), hide_index=True, width="stretch")
    st.subheader("Good vs defective: which features differ")
    comp = next((c for c in eda.comparisons if c.name == "good_vs_defective"), None)
    if comp is not None:
        st.caption(f"{comp.group_a} (n={comp.n_a}) vs {comp.group_b} (n={comp.n_b}); KS test and Wasserstein "
                   "distance scaled by the pooled std, largest first.")
        st.dataframe(comp.table.sort_values("wasserstein_scaled", ascending=False).round(4), hide_index=True,
                     width="stretch")
    flagged = stats[stats["intensity_outlier"] | stats["abnormal_dimensions"]]
    st.subheader("Flagged images")
    widgets.show_dataframe(flagged[["path", "split", "defect_type", "height", "width", "brightness", "brightness_z",
                                    "intensity_outlier", "abnormal_dimensions"]], "No outliers or odd sizes.")

with tabs[3]:
    hists = eda.histograms
    good_keys = [k for k in hists.keys() if k.endswith(f"/{GOOD}")]
    bad_keys = [k for k in hists.keys() if k.startswith("test/") and not k.endswith(f"/{GOOD}")]
    groups = {}
    if good_keys:
        groups["good"] = np.sum([hists.counts(k) for k in good_keys], axis=0)
    if bad_keys:
        groups["defective"] = np.sum([hists.counts(k) for k in bad_keys], axis=0)
    st.subheader("Good vs defective (all pixels)")
    st.altair_chart(charts.rgb_histograms(groups), width="stretch")
    st.subheader("One image")
    names = stats["path"].tolist()
    chosen = st.selectbox("Image", names, format_func=lambda p: f"{Path(p).parent.name}/{Path(p).name}",
                          key="eda_hist_image")
    if chosen:
        try:
            img = load_rgb(chosen)
            cols = st.columns([1, 3])
            cols[0].image(widgets.downsample(img, 256), width="stretch")
            cols[1].altair_chart(charts.rgb_histograms({Path(chosen).name: image_histogram(img)}), width="stretch")
        except ImageLoadError as exc:
            st.error(str(exc))

with tabs[4]:
    heatmaps = eda.masks.heatmaps()
    mask_counts = eda.masks.counts()
    if not mask_counts.get(ALL):
        st.info("This category has no ground-truth masks.")
    else:
        st.subheader("Average defect mask")
        st.caption("Mean fraction of each cell covered by defect, per defect type and over all types.")
        keys = [ALL, *(k for k in heatmaps if k != ALL)]
        cols = st.columns(min(len(keys), 5))
        for i, key in enumerate(keys):
            cols[i % len(cols)].image(widgets.heatmap_image(heatmaps[key], 160), width="stretch",
                                      caption=f"{key} ({mask_counts.get(key, 0)} masks)")
        left, right = st.columns(2)
        left.altair_chart(charts.area_boxplot(eda.masks.mask_table()), width="stretch")
        right.altair_chart(charts.centroid_scatter(eda.masks.centroid_table()), width="stretch")

with tabs[5]:
    if not report.integrity_checked:
        st.info("The integrity check is not available in this installation.")
    problems = pd.DataFrame(report.problems + eda.unreadable, columns=["path", "kind", "message"])
    if problems.empty and report.integrity_checked:
        st.success("No integrity problems: every image decodes, masks pair with images and sizes match.")
    else:
        st.dataframe(problems, hide_index=True, width="stretch")
        st.caption(f"By kind: {problems['kind'].value_counts().to_dict()}")
