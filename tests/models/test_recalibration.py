"""Threshold updates in place: new threshold used on reload, pixel calibration and history kept."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from qc_models.calibration import Calibrator
from qc_models.registry import latest_version, load_model, read_metadata, update_calibration


@pytest.fixture()
def cae_version(tiny_models_dir, tmp_path) -> Path:
    models_dir, _, category = tiny_models_dir
    copy = tmp_path / "models"
    shutil.copytree(models_dir, copy)
    return Path(latest_version(copy, category, "cae").path)


def test_update_calibration_changes_threshold_and_keeps_history(cae_version: Path) -> None:
    before = read_metadata(cae_version)
    old = load_model(cae_version).calibrator
    scores = np.linspace(1.0, 2.0, 50)
    new = Calibrator(0.2).fit(scores)
    assert new.threshold != pytest.approx(old.threshold)

    update_calibration(cae_version, new, reason="test")

    after = read_metadata(cae_version)
    reloaded = load_model(cae_version).calibrator
    assert reloaded.threshold == pytest.approx(new.threshold)
    assert after["threshold"] == pytest.approx(new.threshold)
    assert reloaded.normalise(new.threshold) == pytest.approx(0.5)
    # pixel calibration was fitted on maps and must survive an image-threshold update
    assert after["calibration"]["pixel_threshold"] == before["calibration"]["pixel_threshold"]
    assert after["calibration_history"][-1]["threshold"] == pytest.approx(before["threshold"])
    assert after["calibration_history"][-1]["reason"] == "test"


def test_decision_metrics_measured_at_an_old_threshold_are_left_out(cae_version: Path, tiny_models_dir, capsys) -> None:
    """After a threshold change the last evaluation's recall/FRR/F1 describe the old threshold: not shown as current."""
    from qc_models.cli import main
    from qc_models.evaluation import evaluate_category
    from qc_models.registry import list_versions

    models_dir, category = cae_version.parent.parent.parent, cae_version.parent.parent.name
    listed = latest_version(models_dir, category, "cae")
    assert listed.metrics_threshold is None and "recall" in listed.metrics  # evaluated at today's threshold
    old_threshold = listed.threshold
    update_calibration(cae_version, Calibrator(0.2).fit(np.linspace(1.0, 2.0, 50)), reason="test")

    listed = latest_version(models_dir, category, "cae")
    assert listed.metrics_threshold == pytest.approx(old_threshold)
    assert not {"recall", "false_reject_rate", "f1", "precision", "accuracy", "confusion_matrix"} & set(listed.metrics)
    assert listed.metrics["image_auroc"] == read_metadata(cae_version)["metrics"]["image_auroc"]  # threshold-free: kept
    assert all("detection_rate" not in row and "auroc" in row for row in listed.metrics["per_defect_type"].values())
    assert "recall" in read_metadata(cae_version)["metrics"]  # nothing deleted from the file
    others = [v for v in list_versions(models_dir, category) if v.model != "cae"]
    assert others and all(v.metrics_threshold is None and "recall" in v.metrics for v in others)

    assert main(["models", str(models_dir), "--category", category]) == 0
    out = capsys.readouterr().out
    assert f"{category}/cae: threshold changed after the last qc evaluate" in out
    assert f"{category}/unet: threshold changed" not in out

    evaluate_category(tiny_models_dir[1], category, models_dir, models=["cae"])  # the next evaluation restores them
    listed = latest_version(models_dir, category, "cae")
    assert listed.metrics_threshold is None and listed.metrics["threshold"] == pytest.approx(listed.threshold)
    assert "recall" in listed.metrics
