"""Leaving calibration images out: thresholds refitted on the rest, ensemble rebuilt, nothing lost, bad requests refused."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from qc_models import registry
from qc_models.calibration import CalibrationError, Calibrator, split_calibration
from qc_models.calibration_exclusion import exclude_calibration_images
from qc_models.cli import main
from qc_models.data import load_rgb
from qc_models.training import train_category
from tests.models.standin import standin_class, write_dataset


@pytest.fixture()
def standins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry._REGISTERED, "cae", standin_class("cae"))
    monkeypatch.setitem(registry._REGISTERED, "unet", standin_class("unet", noise=0.5))


def _plant_defect_in_calibration(root: Path, n_train: int) -> Path:
    """A defective part filed as good, at a position the seeded split holds out for calibration."""
    good = sorted((root / "widget" / "train" / "good").glob("*.png"))
    _, cal_idx = split_calibration(n_train, seed=0)
    planted = good[int(cal_idx[0])]
    img = cv2.imread(str(planted))
    img[8:24, 8:24] = 255
    cv2.imwrite(str(planted), img)
    return planted


def _meta(version_dir: Path) -> dict:
    return json.loads((version_dir / "model.json").read_text())


def test_leaving_a_defective_image_out_refits_every_threshold_and_rebuilds_the_ensemble(
        tmp_path: Path, standins: None, capsys: pytest.CaptureFixture) -> None:
    ds = write_dataset(tmp_path / "ds", n_train=40)  # 6 calibration + 5 early-stopping images
    planted = _plant_defect_in_calibration(ds, 40)
    models = tmp_path / "models"
    paths = train_category(ds, "widget", models=("cae", "unet"), out=models, size=32)
    before = {name: _meta(path) for name, path in paths.items()}
    assert planted.name in [x["file"] for x in before["cae"]["training"]["suspect_calibration_images"]]

    assert main(["calibrate", str(ds), "--category", "widget", "--models", str(models), "--exclude", planted.name]) == 0
    out = capsys.readouterr().out
    assert "widget/cae: threshold" in out and "widget/unet: threshold" in out and "widget/ensemble: rebuilt" in out

    folder = ds / "widget" / "train" / "good"
    for name in ("cae", "unet"):
        after = _meta(paths[name])  # the same version, recalibrated in place
        rest = [f for f in before[name]["training"]["calibration_files"] if f != planted.name]
        assert len(rest) == 10 and after["calibration"]["stats"]["n"] == 10
        assert after["training"]["calibration_excluded"] == [planted.name]
        assert after["calibration_history"][-1]["threshold"] == before[name]["threshold"]
        assert planted.name in after["calibration_history"][-1]["reason"]
        detector = registry.load_model(paths[name]).detector
        refit = Calibrator(0.01).fit(detector.predict([load_rgb(folder / f) for f in rest]).image_scores)
        assert after["threshold"] == pytest.approx(refit.threshold)  # as if the image had never been held out
    assert _meta(paths["cae"])["threshold"] < before["cae"]["threshold"]  # the blotch had raised it
    assert _meta(paths["cae"])["training"]["suspect_calibration_images"] == []

    ensembles = registry.list_versions(models, "widget", "ensemble")
    assert len(ensembles) == 2 and ensembles[1].path == paths["ensemble"]  # the old one stays
    assert planted.name not in _meta(ensembles[0].path)["training"]["calibration_files"]
    assert planted.name in _meta(ensembles[1].path)["training"]["calibration_files"]
    mset = registry.load_model_set(models, "widget")
    assert mset.versions["ensemble"] == ensembles[0].version

    with pytest.raises(ValueError, match=f"{planted.name}: not among the calibration images"):
        exclude_calibration_images(ds, "widget", models, [planted.name])  # already left out


def test_requests_that_cannot_be_met_change_nothing(tmp_path: Path, standins: None, capsys: pytest.CaptureFixture) -> None:
    ds = write_dataset(tmp_path / "ds", n_train=40)  # 6 calibration + 5 early-stopping images; 5 is the minimum
    models = tmp_path / "models"
    paths = train_category(ds, "widget", models=("cae", "unet"), out=models, size=32)
    snapshot = {p: (p / "model.json").read_bytes() for p in paths.values()}
    calibration = _meta(paths["cae"])["training"]["calibration_files"]

    with pytest.raises(CalibrationError, match="would leave 4 calibration images"):
        exclude_calibration_images(ds, "widget", models, calibration[:7])
    assert main(["calibrate", str(ds), "--models", str(models), "--exclude", "nope.png"]) == 2
    assert "nope.png: not among the calibration images of widget" in capsys.readouterr().err
    (ds / "widget" / "train" / "good" / calibration[1]).unlink()
    with pytest.raises(Exception, match=calibration[1]):
        exclude_calibration_images(ds, "widget", models, [calibration[0]])
    assert {p: (p / "model.json").read_bytes() for p in paths.values()} == snapshot
    assert len(registry.list_versions(models, "widget", "ensemble")) == 1
    assert np.isfinite(registry.load_model(paths["cae"]).calibrator.threshold)
