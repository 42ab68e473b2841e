"""The Models page on the tiny demo fixtures: metrics and weights as saved, threshold preview and changes,
calibration warnings, training in the background, leaving a suspect image out of calibration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.dashboard.conftest import count_charts, point_env, wait_for_jobs


def test_models_page_tables_and_threshold_preview(demo_env, open_page) -> None:
    from qc_models.registry import list_versions

    models_dir, _, category, _ = demo_env
    at = open_page("models")
    assert not at.exception, at.exception
    metrics_table = at.dataframe[0].value
    assert set(metrics_table["model"]) == {"cae", "unet", "patchcore", "ensemble"}
    newest = {v.model: v for v in reversed(list_versions(models_dir, category=category))}
    for row in metrics_table.itertuples():
        assert row.image_auroc == pytest.approx(newest[row.model].metrics["image_auroc"], abs=1e-4)
    for model, ci in zip(metrics_table["model"], metrics_table["image_auroc_95%_ci"]):
        low, high = newest[model].metrics["image_auroc_ci95"]
        assert ci == f"{low:.3f}–{high:.3f}"
    weights = at.dataframe[1].value  # the ensemble's member weights, as saved
    saved = json.loads((newest["ensemble"].path / "model.json").read_text())["ensemble"]["weights"]
    assert dict(zip(weights["member"], weights["weight"])) == pytest.approx({k: round(v, 3) for k, v in saved.items()})
    assert "validation_auroc" not in weights  # no validation folder was given
    spread = json.loads((newest["ensemble"].path / "model.json").read_text())["ensemble"]["details"]["weight_spread"]
    assert dict(zip(weights["member"], weights["weight_p90"])) == pytest.approx(
        {k: round(v[1], 3) for k, v in spread["interval"].items()})
    unsettled = [w.value for w in at.warning if "do not settle the ensemble's weights" in w.value]
    assert len(unsettled) == (spread["top_share"] < 0.8)
    assert any("synthetic anomalies" in c.value and "log-compressed" in c.value for c in at.caption)
    caught = json.loads((newest["ensemble"].path / "model.json").read_text())["ensemble"]["details"]
    assert any(f"flags {100 * caught['synthetic_detection_rate']:.0f} % of {caught['n_synthetic']} synthetic" in c.value
               for c in at.caption)
    assert any(f"may not exceed {caught['unanimous_score']:.4g} (unless a held-out good image" in c.value
               for c in at.caption)
    scales = json.loads((newest["ensemble"].path / "model.json").read_text())["ensemble"]["member_scales"]
    assert set(scales) == set(saved)  # every member's scale is saved, 1 where its threshold is near enough
    scaled = {m: v for m, v in scales.items() if v < 1}
    named = [c.value for c in at.caption if "is scaled down" in c.value]
    assert len(named) == bool(scaled) and all(f"{m} x{v:.2f}" in named[0] for m, v in scaled.items())
    labels = {m.label: m.value for m in at.metric}
    assert float(labels["Current threshold (raw)"]) == pytest.approx(newest["ensemble"].threshold, rel=1e-3)
    # at the target it was calibrated for, recalibrating on the stored hold-out reproduces the stored threshold
    assert labels["New threshold (raw)"] == labels["Current threshold (raw)"]
    at.select_slider(key="th_target_ensemble").set_value(0.2).run()
    looser = float({m.label: m.value for m in at.metric}["New threshold (raw)"])
    at.select_slider(key="th_target_ensemble").set_value(0.001).run()
    stricter = float({m.label: m.value for m in at.metric}["New threshold (raw)"])
    assert stricter > looser  # fewer false rejects allowed -> higher threshold
    assert not at.exception, at.exception


def test_models_page_evaluationcount_charts(demo_env, open_page) -> None:
    at = open_page("models")
    next(b for b in at.button if b.label == "Evaluate on the test split").click().run()
    wait_for_jobs()
    at.run()
    assert not at.exception, at.exception
    assert count_charts(at) >= 3  # ROC, confusion matrix, score distribution (+ threshold preview)
    assert any(s.value == "Per defect type" for s in at.subheader)
    assert any(s.value == "Pixel metrics" for s in at.subheader)


def test_models_page_warns_when_the_target_is_beyond_the_score_range(demo_env, open_page, monkeypatch,
                                                                    tmp_path) -> None:
    import shutil

    from qc_models.registry import latest_version

    models_dir, data_dir, category, db_url = demo_env
    copy = tmp_path / "models"
    shutil.copytree(models_dir, copy)
    meta_path = latest_version(copy, category, "unet").path / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["calibration"]["stats"]["beyond_score_range"] = True
    meta_path.write_text(json.dumps(meta))
    point_env(monkeypatch, data_dir, copy, db_url)
    at = open_page("models")
    at.selectbox(key="models_category").set_value(category).run()
    at.selectbox(key="th_model").set_value("unet").run()
    assert not at.exception, at.exception
    assert any("beyond the highest score this model can give" in w.value for w in at.warning)
    at.selectbox(key="th_model").set_value("cae").run()
    assert not any("beyond the highest score" in w.value for w in at.warning)


def test_models_page_leaves_out_decision_metrics_of_an_older_threshold(demo_env, open_page, monkeypatch,
                                                                       tmp_path) -> None:
    import shutil

    import numpy as np

    from qc_models.calibration import Calibrator
    from qc_models.registry import latest_version, update_calibration

    models_dir, data_dir, category, db_url = demo_env
    copy = tmp_path / "models"
    shutil.copytree(models_dir, copy)
    update_calibration(latest_version(copy, category, "cae").path, Calibrator(0.2).fit(np.linspace(1.0, 2.0, 50)))
    point_env(monkeypatch, data_dir, copy, db_url)
    at = open_page("models")
    at.selectbox(key="models_category").set_value(category).run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value.set_index("model")
    assert table.loc["cae", ["recall", "false_reject_rate", "f1"]].isna().all()
    assert table.loc["cae", "image_auroc"] > 0 and table.loc["unet", ["recall", "false_reject_rate"]].notna().all()
    notes = [c.value for c in at.caption if "threshold changed since the last evaluation" in c.value]
    assert len(notes) == 1 and notes[0].startswith("cae:")


def test_models_page_names_a_held_out_good_image_that_scores_like_a_defect(demo_env, open_page, monkeypatch,
                                                                           tmp_path) -> None:
    import shutil

    from qc_models.registry import latest_version

    models_dir, data_dir, category, db_url = demo_env
    copy = tmp_path / "models"
    shutil.copytree(models_dir, copy)
    path = latest_version(copy, category, "patchcore").path
    meta = json.loads((path / "model.json").read_text())
    meta["training"]["suspect_calibration_images"] = [{"file": "007.png", "score": 9.5, "threshold_without": 3.25}]
    (path / "model.json").write_text(json.dumps(meta))
    point_env(monkeypatch, data_dir, copy, db_url)
    at = open_page("models")
    at.selectbox(key="models_category").set_value(category).run()
    at.selectbox(key="th_model").set_value("cae").run()
    assert not any("007.png" in w.value for w in at.warning)
    at.selectbox(key="th_model").set_value("patchcore").run()
    assert not at.exception, at.exception
    warned = [w.value for w in at.warning if "007.png" in w.value]
    assert len(warned) == 1 and "9.5" in warned[0] and "3.25" in warned[0] and "train/good" in warned[0]


def test_models_page_offers_and_saves_the_validation_f1_threshold(demo_env, open_page, monkeypatch, tmp_path) -> None:
    import shutil

    from qc_models.registry import latest_version, load_model

    models_dir, data_dir, category, db_url = demo_env
    copy = tmp_path / "models"
    shutil.copytree(models_dir, copy)
    path = latest_version(copy, category, "unet").path
    meta = json.loads((path / "model.json").read_text())
    f1_threshold = 0.5 * meta["threshold"]
    meta["calibration"]["validation"] = {"threshold": f1_threshold, "f1": 0.8, "precision": 0.9, "recall": 0.72,
                                         "n_good": 10, "n_defective": 12}
    (path / "model.json").write_text(json.dumps(meta))
    point_env(monkeypatch, data_dir, copy, db_url)
    at = open_page("models")
    at.selectbox(key="models_category").set_value(category).run()
    at.selectbox(key="th_model").set_value("cae").run()
    assert not any(b.label == "Use the F1-optimal threshold" for b in at.button)  # cae has no validation fit
    at.selectbox(key="th_model").set_value("unet").run()
    labels = {m.label: m.value for m in at.metric}
    assert labels["F1"] == "0.800" and labels["Validation images"] == "10 good, 12 defective"
    next(b for b in at.button if b.label == "Use the F1-optimal threshold").click().run()
    assert not at.exception, at.exception
    saved = load_model(path).calibrator
    assert saved.threshold_source == "validation_f1" and saved.threshold == pytest.approx(f1_threshold)
    assert json.loads((path / "model.json").read_text())["calibration_history"][-1]["reason"].endswith("validation_f1")
    at.run()
    assert any(b.label == "Back to the false-reject threshold" for b in at.button)


def test_models_page_trains_in_the_background_with_live_progress(demo_env, open_page, monkeypatch, tmp_path) -> None:
    """The Train button wiring: a job with live progress, the page stays usable, success when done.

    ``train_category`` itself is covered by tests/models; here a stand-in records the call and
    holds the job open so the running state can be observed.
    """
    import threading

    import qc_models.training

    models_dir, data_dir, category, _ = demo_env
    calls: list[dict] = []
    release = threading.Event()

    def fake_train(root, cat, **kwargs):
        calls.append({"root": root, "category": cat, **kwargs})
        kwargs["progress"]("cae: fit: epoch 1/30", 0.25)
        release.wait(30)
        return {}

    monkeypatch.setattr(qc_models.training, "train_category", fake_train)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))  # no ImageNet weights cached
    at = open_page("models")
    at.selectbox(key="models_category").set_value(category).run()
    at.multiselect(key="train_models").set_value(["cae"]).run()
    at.text_input(key="train_defects").set_value(f"  {tmp_path / 'labelled'}  ").run()
    assert at.radio(key="train_align").value == "auto"
    at.radio(key="train_align").set_value("on").run()
    assert at.number_input(key="train_coreset_ratio").value is None  # the profile's default unless chosen
    at.number_input(key="train_coreset_ratio").set_value(0.1).run()
    at.checkbox(key="train_reweight").check().run()
    assert at.multiselect(key="train_layers").value == []  # automatic unless chosen
    at.multiselect(key="train_layers").set_value(["layer3", "layer2"]).run()
    next(b for b in at.button if b.label == "Train").click().run()
    assert not at.exception, at.exception
    for _ in range(50):  # the job thread starts asynchronously
        if calls:
            break
        threading.Event().wait(0.1)
    at.run()
    assert calls and calls[0]["category"] == category and calls[0]["models"] == ("cae",)
    assert calls[0]["weights"] == "none"  # preselected because ImageNet weights are not cached
    assert calls[0]["out"] == str(models_dir) and calls[0]["root"] == str(data_dir)
    assert calls[0]["defects_dir"] == str(tmp_path / "labelled") and calls[0]["validation_dir"] is None
    assert calls[0]["align"] == "on"
    assert calls[0]["detector_overrides"] == {"patchcore": {"coreset_ratio": 0.1, "reweight": True,
                                                           "layers": ("layer2", "layer3")}}
    assert any("epoch 1/30" in (p.text or "") for p in at.get("progress"))
    release.set()
    wait_for_jobs()
    at.run()
    assert any("finished" in s.value for s in at.success)


def _models_with_a_suspect(demo_env, monkeypatch, tmp_path, model: str) -> tuple[str, Path, str]:
    """A copy of the tiny registry in which ``model`` names its first calibration image as a suspect;
    returns the category, that model's version folder and the image's name."""
    import shutil

    from qc_models.registry import latest_version

    models_dir, data_dir, category, db_url = demo_env
    copy = tmp_path / "models"
    shutil.copytree(models_dir, copy)
    path = latest_version(copy, category, model).path
    meta = json.loads((path / "model.json").read_text())
    suspect = meta["training"]["calibration_files"][0]
    meta["training"]["suspect_calibration_images"] = [{"file": suspect, "score": 9.5, "threshold_without": 3.25}]
    (path / "model.json").write_text(json.dumps(meta))
    point_env(monkeypatch, data_dir, copy, db_url)
    return category, path, suspect


def _click_exclude(open_page, category: str, model: str, suspect: str):
    at = open_page("models")
    at.selectbox(key="models_category").set_value(category).run()
    at.selectbox(key="th_model").set_value(model).run()
    at.button(key=f"exclude_{model}_{suspect}").click().run()
    assert not at.exception, at.exception
    return at


def test_models_page_leaves_a_suspect_image_out_of_calibration(demo_env, open_page, monkeypatch, tmp_path) -> None:
    from qc_models.registry import list_versions

    category, path, suspect = _models_with_a_suspect(demo_env, monkeypatch, tmp_path, "patchcore")
    held_out = len(json.loads((path / "model.json").read_text())["training"]["calibration_files"])
    # The tiny models hold out few images; allow one fewer here so that one can be left out.
    monkeypatch.setattr("qc_models.calibration_exclusion.MIN_CALIBRATION_IMAGES", held_out - 1)
    monkeypatch.setattr("qc_models.training.MIN_CALIBRATION_IMAGES", held_out - 1)
    at = _click_exclude(open_page, category, "patchcore", suspect)
    assert not at.error, [e.value for e in at.error]
    assert any(s.value.startswith("Recalibrated: ") and "ensemble rebuilt" in s.value for s in at.success)
    after = json.loads((path / "model.json").read_text())
    assert after["training"]["calibration_excluded"] == [suspect] and after["calibration"]["stats"]["n"] == held_out - 1
    assert len(list_versions(path.parents[2], category, "ensemble")) == 2


def test_models_page_refuses_to_leave_out_an_image_it_cannot_spare(demo_env, open_page, monkeypatch, tmp_path) -> None:
    category, path, suspect = _models_with_a_suspect(demo_env, monkeypatch, tmp_path, "cae")
    before = (path / "model.json").read_bytes()
    held_out = len(json.loads(before)["training"]["calibration_files"])
    monkeypatch.setattr("qc_models.calibration_exclusion.MIN_CALIBRATION_IMAGES", held_out)  # none to spare
    at = _click_exclude(open_page, category, "cae", suspect)
    assert any("Not changed" in e.value and f"would leave {held_out - 1} calibration images" in e.value for e in at.error)
    assert (path / "model.json").read_bytes() == before
