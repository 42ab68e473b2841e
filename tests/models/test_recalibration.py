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
