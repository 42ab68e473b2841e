"""Models: train in the background, evaluate on the test split, tune the threshold, browse versions."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, state, widgets
from dashboard import jobs as jobmod
from qc_models import registry
from qc_models.alignment_check import ALIGN_MODES
from qc_models.calibration import Calibrator
from qc_models.calibration_exclusion import exclude_calibration_images
from qc_models.detectors.backbone import imagenet_weights_cached
from qc_models.detectors.ensemble import THRESHOLD_Z_CAP
from qc_models.evaluation import run_evaluation
from qc_models.training import MODELS, PROFILES, patchcore_overrides, suspect_image_note, train_category

MODEL_ORDER = ("cae", "unet", "patchcore", "ensemble")
METRIC_COLUMNS = ("image_auroc", "average_precision", "f1", "precision", "recall", "false_reject_rate",
                  "pixel_auroc", "aupro", "iou", "dice", "threshold")

st.title("Models")
cfg = state.settings()
reg = state.jobs()
data_categories = state.categories(str(cfg.data_dir))
versions = state.model_versions(str(cfg.models_dir), state.generation())
model_categories = state.model_categories(versions)
if not data_categories and not model_categories:
    widgets.fix_banner(f"No dataset at `{cfg.data_dir}` and no models in `{cfg.models_dir}`. Set up the demo with:",
                       "qc demo-setup")
    st.stop()


def _job_status(kind: str, key: str) -> None:
    """Live progress of the newest ``kind`` job for ``key`` (polled while it runs)."""
    job = reg.latest(kind, key)
    if job is None:
        return
    if not job.finished:
        st.progress(job.progress, text=f"{job.label}: {job.message} ({job.elapsed_s:.0f} s)")
    elif job.status == jobmod.FAILED:
        st.error(f"{job.label} failed: {job.error}")
    else:
        st.success(f"{job.label} finished in {job.elapsed_s:.0f} s.")
        if st.session_state.get(f"seen_{kind}") != job.id:  # new versions or metrics: refresh the whole page once
            st.session_state[f"seen_{kind}"] = job.id
            st.rerun(scope="app")


def _live(kind: str, key: str) -> None:
    if reg.latest(kind, key) is not None and not reg.latest(kind, key).finished:
        st.fragment(run_every=1.5)(_job_status)(kind, key)
    else:
        _job_status(kind, key)


all_categories = sorted(set(data_categories) | set(model_categories))
category = st.selectbox("Category", all_categories, key="models_category",
                        index=all_categories.index(model_categories[0]) if model_categories else 0)
if any(versions.loc[versions["category"] == category, "untrained_backbone"].fillna(False)) if len(versions) else False:
    st.warning("These models use an untrained (random-init) backbone: metrics show the pipeline works, not "
               "production accuracy. Retrain with ImageNet weights for real use.", icon=":material/warning:")
tab_eval, tab_threshold, tab_train, tab_versions = st.tabs(["Evaluation", "Threshold", "Train", "Versions"])

# ---------------------------------------------------------------- train
with tab_train:
    if category not in data_categories:
        widgets.fix_banner(f"No category '{category}' in the dataset at `{cfg.data_dir}` to train on.",
                           "qc demo-setup")
    else:
        c = st.columns(3)
        t_category = category
        t_models = c[0].multiselect("Models", list(MODELS), default=list(MODELS), key="train_models")
        t_profile = c[1].selectbox("Profile", list(PROFILES), index=list(PROFILES).index("demo"), key="train_profile",
                                   help="demo: capped epochs and a small coreset (minutes on a CPU); "
                                        "default: full training.")
        cached = imagenet_weights_cached()
        t_weights = c[2].selectbox("Backbone weights", ["imagenet", "none"], index=0 if cached else 1,
                                   key="train_weights",
                                   help="imagenet: ImageNet-pretrained PatchCore backbone from the torch cache "
                                        f"({'found' if cached else 'not found: none is preselected'}); "
                                        "none: random init, for demonstration only.")
        t_align = st.radio("Pose alignment", list(ALIGN_MODES), horizontal=True, key="train_align",
                           help="Turn and centre parts to the training pose before scoring (parts that lie at random "
                                "angles); PatchCore and the U-Net then also compare each part with the median good "
                                "part, which shows bent or misshapen parts. auto decides from the good images; the "
                                "decision is in each model.json.")
        with st.expander("Labelled folders (optional, never the test set)"):
            f = st.columns(2)
            t_validation = f[0].text_input(
                "Validation folder", key="train_validation", placeholder="/path/to/validation",
                help="Server folder with good/ and one folder per defect type: an F1-optimal threshold on it is "
                     "offered on the Threshold tab besides the false-reject one.")
            t_defects = f[1].text_input(
                "Labelled defect folder (U-Net)", key="train_defects", placeholder="/path/to/labelled_defects",
                help="Server folder with one folder per defect type and masks in "
                     "ground_truth/<defect type>/<name>_mask.png: the U-Net learns from these real defects "
                     "besides its synthetic ones. Must differ from the validation folder.")
        with st.expander("PatchCore options"):
            g = st.columns(2)
            t_ratio = g[0].number_input(
                "Coreset ratio", min_value=0.001, max_value=1.0, value=None, step=0.01, format="%.3f",
                key="train_coreset_ratio", placeholder="profile default (0.05)",
                help="Share of the training patches kept in the memory bank (at most 10,000 patches): larger is "
                     "slower to fit and to score. 0.1 measured +0.005 pixel AUROC for half the scoring speed.")
            t_reweight = g[1].checkbox("Re-weighted image score", key="train_reweight",
                                       help="The PatchCore paper's Eq. 7 instead of the largest patch distance.")
            t_layers = g[0].multiselect(
                "Feature layers", ["layer1", "layer2", "layer3"], default=None, key="train_layers",
                placeholder="automatic (layer2+3 trained, layer1+2 random init)",
                help="Backbone stages the patch features come from. The random-init default was chosen on "
                     "synthetic data; real texture photographs did better with deeper stages (docs/results.md).")
        train_key = f"train:{t_category}"
        if st.button("Train", type="primary", icon=":material/model_training:", disabled=not t_models):
            root, out = str(cfg.data_dir), str(cfg.models_dir)

            def body(progress, stop, category=t_category, models=tuple(t_models), profile=t_profile,
                     weights=t_weights, validation=t_validation.strip() or None, defects=t_defects.strip() or None,
                     align=t_align, patchcore=patchcore_overrides(t_ratio, t_reweight, t_layers or None)):
                return train_category(root, category, models=models, out=out, weights=weights, profile=profile,
                                      validation_dir=validation, defects_dir=defects, progress=progress, align=align,
                                      detector_overrides={"patchcore": patchcore} if patchcore else None)

            try:
                reg.submit("train", train_key, f"Training {t_category} ({', '.join(t_models)})", body)
            except jobmod.JobConflictError as exc:
                st.error(f"Not started: {exc}.")
        _live("train", train_key)
        st.caption("Training runs in the background: you can use other pages meanwhile. The new versions are used "
                   "by Inspect image and Batch inspection as soon as they are saved.")

if category not in model_categories:
    for tab in (tab_eval, tab_threshold, tab_versions):
        with tab:
            st.info(f"No trained models for '{category}' yet: train them on the Train tab.")
    st.stop()

root = str(cfg.data_dir)
signature = state.model_signature(str(cfg.models_dir), category)
stored = state.newest_metrics(str(cfg.models_dir), category, state.generation())

eval_key = f"evaluate:{category}"
eval_job = reg.latest("evaluate", eval_key)
evaluation = (eval_job.result if eval_job is not None and eval_job.status == jobmod.DONE
              and eval_job.meta.get("signature") == signature else None)

# ---------------------------------------------------------------- evaluation
with tab_eval:
    st.subheader(f"Test-split metrics · {category}")
    rows = [{"model": m, **{k: stored[m].get(k) for k in METRIC_COLUMNS}} for m in MODEL_ORDER if m in stored]
    table = pd.DataFrame(rows)
    if table.empty or table[list(METRIC_COLUMNS[:-1])].isna().all().all():
        st.info("No stored metrics yet: evaluate the models on the test split.")
    else:
        cis = [widgets.interval(stored[m].get("image_auroc_ci95")) for m in table["model"]]
        table.insert(2, "image_auroc_95%_ci", cis)
        st.dataframe(table.round(4), hide_index=True, width="stretch")
        st.caption("95 % CI: DeLong's interval of the image AUROC; a small test split leaves it wide.")
        for m in MODEL_ORDER:
            if m in stored and (was := stored[m].get("metrics_threshold")) is not None:
                st.caption(f"{m}: its threshold changed since the last evaluation (from {was:.4g} to "
                           f"{stored[m]['threshold']:.4g}), so recall, precision, F1 and the false-reject rate are "
                           "left out until the models are evaluated again.")
    ensemble = state.model_set(str(cfg.models_dir), category).ensemble
    if ensemble is not None:
        weights = pd.DataFrame(ensemble.detector.weight_table())
        weights = weights.drop(columns=[c for c in ("weight_p10", "weight_p90", "validation_auroc")
                                        if weights[c].isna().all()])  # older ensembles lack the spread
        left, right = st.columns([2, 3])
        spread = ("weight_p10", "weight_p90") if "weight_p90" in weights else None
        left.altair_chart(charts.rate_bars(weights, "member", "weight", "Ensemble weights", interval=spread),
                          width="stretch")
        right.dataframe(weights.round(3), hide_index=True, width="stretch")
        right.caption("Members are weighted by how well each separates held-out good images from synthetic anomalies "
                      "made from them (synthetic_auroc), so a weak member gets little say. weight_p10 to weight_p90 is "
                      "how far each weight moves when those images and anomalies are resampled. validation_auroc, "
                      "when shown, is each member's separation on the labelled validation folder."
                      + (" Scores enter as z-scores compressed far beyond any threshold (log-compressed above 20), so "
                         "no member outvotes the others by its scale alone."
                         if ensemble.detector.score_transform != "linear" else "")
                      + (" A member whose own threshold lies far out in its good scores' tail is scaled down ("
                         + ", ".join(f"{m} x{v:.2f}" for m, v in scaled.items())
                         + f") so that its threshold sits at {THRESHOLD_Z_CAP:g} spreads, below the compression."
                         if (scaled := {m: v for m, v in ensemble.detector.member_scales.items() if v < 1}) else "")
                      + (f" At its threshold the ensemble flags {100 * caught:.0f} % of "
                         f"{ensemble.detector.details.get('n_synthetic', '')} synthetic anomalies."
                         if (caught := ensemble.detector.details.get("synthetic_detection_rate")) is not None else "")
                      + (f" Its threshold may not exceed {cap:.4g} (unless a held-out good image scores higher), the "
                         "combined score of a part that every member scores at its own threshold, so a part every "
                         "member rejects is rejected."
                         if (cap := ensemble.detector.details.get("unanimous_score")) is not None else ""))
        if unsettled := ensemble.detector.unsettled_note():
            st.warning(unsettled[0].upper() + unsettled[1:], icon=":material/balance:")
    if st.button("Evaluate on the test split", icon=":material/fact_check:",
                 help="Scores every test image with every model; metrics are stored in model.json."):
        mset = state.model_set(str(cfg.models_dir), category)
        models_dir = str(cfg.models_dir)
        try:
            reg.submit("evaluate", eval_key, f"Evaluating {category}",
                       lambda p, s: run_evaluation(root, category, models_dir, progress=p, model_set=mset),
                       meta={"signature": signature})
        except jobmod.JobConflictError as exc:
            st.error(f"Not started: {exc}.")
    _live("evaluate", eval_key)
    if evaluation is None:
        st.caption("ROC curves, score distributions and the confusion matrix appear after an evaluation here"
                   + (" (per-image scores are not stored: the table above keeps only the metrics of the last "
                      "evaluation, from this page or `qc evaluate`)." if stored else "."))
    else:
        scores = evaluation.scores_frame()
        names = [m for m in MODEL_ORDER if m in evaluation.metrics]
        curves = charts.roc_points(scores, names)
        left, right = st.columns([3, 2])
        left.altair_chart(charts.roc_curves(curves), width="stretch")
        model = right.selectbox("Model", names, index=len(names) - 1, key="eval_model")
        mm = evaluation.metrics[model]
        (tn, fp), (fn, tp) = mm["confusion_matrix"]
        right.altair_chart(charts.confusion_matrix(tn, fp, fn, tp, f"Confusion matrix · {model}"))
        sub = scores[scores["model"] == model].assign(score=lambda d: d["normalised"], group=lambda d: d["defect_type"])
        st.altair_chart(charts.score_distribution(sub, 0.5, f"Normalised scores · {model} (threshold 0.5)"),
                        width="stretch")
        per_type = pd.DataFrame(mm["per_defect_type"]).T.rename_axis("defect_type").reset_index()
        if "auroc_ci95" in per_type:
            per_type["auroc_ci95"] = per_type["auroc_ci95"].map(widgets.interval)
        st.subheader("Per defect type")
        widgets.show_dataframe(per_type, "No defect types in the test split.")
        st.subheader("Pixel metrics")
        st.dataframe(pd.DataFrame([{"model": m, **{k: evaluation.metrics[m].get(k) for k in
                                                   ("pixel_auroc", "aupro", "iou", "dice")}} for m in names]).round(4),
                     hide_index=True, width="stretch")

# ---------------------------------------------------------------- threshold
with tab_threshold:
    st.subheader("Threshold by target false-reject rate")
    th_model = st.selectbox("Model", [m for m in MODEL_ORDER if m in stored], key="th_model",
                            index=len([m for m in MODEL_ORDER if m in stored]) - 1,
                            help="The ensemble's decision is the production OK/NG.")
    current = stored[th_model]
    mset = state.model_set(str(cfg.models_dir), category)
    trained = mset.ensemble if th_model == "ensemble" else mset.members[th_model]
    stored_target = float(trained.calibrator.target_false_reject_rate)
    options = sorted({0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, stored_target})
    target = st.select_slider("Target false-reject rate", options=options, value=stored_target,
                              format_func=lambda v: f"{100 * v:g} %", key=f"th_target_{th_model}",
                              help=f"The current threshold was calibrated for {100 * stored_target:g} %.")
    fallback = trained.calibrator.fallback_note()
    if fallback:
        st.warning(f"{th_model}: {fallback}", icon=":material/warning:")
    for suspect in trained.metadata.get("training", {}).get("suspect_calibration_images", []):
        st.warning(f"{th_model}: {suspect_image_note(suspect)}", icon=":material/warning:")
        if st.button(f"Leave {suspect['file']} out of calibration", key=f"exclude_{th_model}_{suspect['file']}",
                     help="Refits the threshold of every model of this category that held it out, without it, and "
                          "rebuilds the ensemble. Nothing is retrained; the previous thresholds stay in each "
                          "model's history."):
            try:
                with st.spinner(f"Recalibrating {category} without {suspect['file']}…"):
                    done, _ = exclude_calibration_images(root, category, cfg.models_dir, [suspect["file"]])
            except (ValueError, OSError) as exc:
                st.error(f"Not changed: {exc}")
            else:
                state.clear_caches()
                st.success("Recalibrated: " + "; ".join(
                    f"{r.model} {r.old_threshold:.4g} → {r.new_threshold:.4g}" for r in done) + "; ensemble rebuilt.")
    cal = state.calibration_scores(str(cfg.models_dir), root, category, th_model)
    if len(cal) < 2:
        st.warning("The calibration images listed in this model's model.json are not under the dataset root, so "
                   "the threshold cannot be recomputed here.")
    else:
        new = Calibrator(target, trained.calibrator.score_upper_bound).fit(
            np.asarray(cal), anomaly_max=trained.calibrator.stats_.get("anomaly_max"),
            threshold_cap=trained.calibrator.stats_.get("threshold_cap"))
        new.validation_ = copy.deepcopy(trained.calibrator.validation_)  # keep the F1 option
        c = st.columns(3)
        c[0].metric("Current threshold (raw)", f"{current['threshold']:.4g}")
        c[1].metric("New threshold (raw)", f"{new.threshold:.4g}", delta=f"{new.threshold - current['threshold']:+.3g}",
                    delta_color="off")
        c[2].metric("Calibration images", len(cal),
                    help="Good training images no detector fitted on: the calibration hold-out plus, for models "
                         "trained since 2026-12-07, the images that stopped the networks' training early.")
        if evaluation is None:
            st.caption("Evaluate the models (Evaluation tab) to see the effect on the test split.")
        else:
            sub = evaluation.scores_frame()
            sub = sub[sub["model"] == th_model]
            effect = widgets.threshold_effect(sub, {"current": current["threshold"], "new": new.threshold})
            st.dataframe(effect, hide_index=True, width="stretch")
            st.altair_chart(charts.score_distribution(sub.assign(score=sub["raw"], group=sub["defect_type"]),
                                                      new.threshold, f"Raw scores · {th_model} (new threshold)"),
                            width="stretch")
        if st.button("Save new threshold", type="primary"):
            registry.update_calibration(registry.latest_version(cfg.models_dir, category, th_model).path, new)
            state.clear_caches()
            st.success(f"Saved: {th_model} now rejects at {new.threshold:.4g}.")
    f1 = trained.calibrator.validation_
    if f1:
        st.subheader("F1-optimal threshold on the validation folder")
        using_f1 = trained.calibrator.threshold_source == "validation_f1"
        nan = float("nan")
        c = st.columns(4)
        c[0].metric("F1 threshold (raw)", f"{f1['threshold']:.4g}")
        c[1].metric("F1", f"{f1.get('f1', nan):.3f}")
        c[2].metric("Precision / recall", f"{f1.get('precision', nan):.2f} / {f1.get('recall', nan):.2f}")
        c[3].metric("Validation images", f"{f1.get('n_good', '?')} good, {f1.get('n_defective', '?')} defective")
        st.caption(f"Active threshold: {'the F1-optimal one' if using_f1 else 'the false-reject target'}. "
                   "The F1 threshold trades false rejects for recall on the validation folder's mix of parts.")
        source = "calibration" if using_f1 else "validation_f1"
        if st.button("Back to the false-reject threshold" if using_f1 else "Use the F1-optimal threshold",
                     key=f"th_f1_{th_model}"):
            chosen = copy.deepcopy(trained.calibrator).use_threshold(source)
            registry.update_calibration(registry.latest_version(cfg.models_dir, category, th_model).path, chosen,
                                        reason=f"threshold source set to {source}")
            state.clear_caches()
            st.success(f"Saved: {th_model} now rejects at {chosen.threshold:.4g}.")

# ---------------------------------------------------------------- versions
with tab_versions:
    show = versions[versions["category"] == category] if st.toggle("Only this category", True) else versions
    widgets.show_dataframe(show.drop(columns=[c for c in ("path",) if c in show]), "No versions.")
    st.caption(f"Registry: `{cfg.models_dir}` (newest first; the newest version of each model is used).")
