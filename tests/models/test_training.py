"""Training and evaluation pipelines on a tiny on-disk dataset with stand-in detectors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from qc_models import registry
from qc_models.calibration import CalibrationError
from qc_models.data import DatasetError
from qc_models.evaluation import evaluate_category, run_evaluation
from qc_models.training import detector_kwargs, load_defect_folder, load_validation_folder, train_category
from tests.models.standin import standin_class, write_dataset

METRIC_KEYS = {"image_auroc", "average_precision", "pixel_auroc", "aupro", "f1", "precision", "recall", "accuracy",
               "false_reject_rate", "confusion_matrix", "iou", "dice", "per_defect_type", "threshold"}


@pytest.fixture()
def standins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry._REGISTERED, "cae", standin_class("cae"))
    monkeypatch.setitem(registry._REGISTERED, "unet", standin_class("unet", noise=0.5))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("ds"), n_train=24)


def test_train_then_evaluate(dataset: Path, tmp_path: Path, standins: None) -> None:
    seen: list[float] = []
    paths = train_category(dataset, "widget", models=("cae", "unet"), out=tmp_path, size=32,
                           progress=lambda msg, f: seen.append(f))
    assert set(paths) == {"cae", "unet", "ensemble"}
    assert seen and seen[-1] == 1.0 and all(0.0 <= f <= 1.0 for f in seen)
    meta = json.loads((paths["cae"] / "model.json").read_text())
    tr = meta["training"]
    # 15% of 24 -> at least 5 calibration images; 15% of the other 19 -> 3 early-stopping ones, calibrated on too
    assert len(tr["fit_files"]) == 16 and len(tr["early_stopping_files"]) == 3 and len(tr["calibration_files"]) == 8
    assert set(tr["early_stopping_files"]) < set(tr["calibration_files"])
    assert not set(tr["calibration_files"]) & set(tr["fit_files"])
    assert meta["training"]["n_calibration"] == 8 and meta["calibration"]["stats"]["n"] == 8
    assert len(tr["fingerprint"]) == 64 and meta["config"]["image_size"] == 32
    assert tr["alignment"]["mode"] == "auto" and isinstance(tr["alignment"]["align"], bool) and tr["alignment"]["reason"]
    ens = json.loads((paths["ensemble"] / "model.json").read_text())
    assert ens["ensemble"]["member_versions"] == {"cae": paths["cae"].name, "unet": paths["unet"].name}
    assert set(ens["training"]["calibration_files"]) == set(tr["calibration_files"])

    evaluation = run_evaluation(dataset, "widget", tmp_path)
    metrics = evaluation.metrics
    assert set(metrics) == {"cae", "unet", "ensemble"}
    for name, m in metrics.items():
        assert METRIC_KEYS <= set(m), name
        assert set(m["per_defect_type"]) == {"blob", "spot"}
        assert m["per_defect_type"]["blob"]["count"] == 4
        assert sum(map(sum, m["confusion_matrix"])) == 16
    assert metrics["cae"]["image_auroc"] > 0.9 and metrics["cae"]["pixel_auroc"] > 0.9
    assert metrics["ensemble"]["image_auroc"] >= max(metrics["cae"]["image_auroc"], metrics["unet"]["image_auroc"]) - 0.01
    assert len(evaluation.scores) == 3 * 16
    assert evaluation.scores_frame().groupby("model").size().to_dict() == {"cae": 16, "ensemble": 16, "unet": 16}
    stored = json.loads((paths["cae"] / "model.json").read_text())["metrics"]
    assert stored["image_auroc"] == metrics["cae"]["image_auroc"]
    only = evaluate_category(dataset, "widget", tmp_path, models=["cae"])
    assert set(only) == {"cae"}


def test_retraining_one_model_rebuilds_the_ensemble_on_newest_versions(dataset: Path, tmp_path: Path, standins: None) -> None:
    first = train_category(dataset, "widget", models=("cae", "unet"), out=tmp_path, size=32)
    second = train_category(dataset, "widget", models=("cae",), out=tmp_path, size=32)
    assert set(second) == {"cae", "ensemble"}
    mset = registry.load_model_set(tmp_path)
    assert mset.versions == {"cae": second["cae"].name, "unet": first["unet"].name,
                             "ensemble": second["ensemble"].name}
    assert not mset.warnings


def test_validation_folder_gives_f1_threshold_but_test_set_is_refused(dataset: Path, tmp_path: Path, standins: None) -> None:
    with pytest.raises(DatasetError, match="test set"):
        train_category(dataset, "widget", models=("cae",), out=tmp_path, size=32,
                       validation_dir=dataset / "widget" / "test")
    with pytest.raises(DatasetError, match="test set"):  # a part of it is the test set too
        load_validation_folder(dataset / "widget" / "test" / "blob", dataset / "widget" / "test")
    val = tmp_path / "val"
    shutil.copytree(dataset / "widget" / "test", val)
    paths = train_category(dataset, "widget", models=("cae", "unet"), out=tmp_path / "m", size=32,
                           validation_dir=val)
    v = json.loads((paths["cae"] / "model.json").read_text())["calibration"]["validation"]
    assert v["n_good"] == 8 and v["n_defective"] == 8 and 0.0 <= v["f1"] <= 1.0
    ens = json.loads((paths["ensemble"] / "model.json").read_text())
    assert set(ens["ensemble"]["details"]["validation_auroc"]) == {"cae", "unet"}
    assert ens["calibration"]["validation"]["n_defective"] == 8


def test_unreadable_training_image_is_skipped_and_recorded(dataset: Path, tmp_path: Path, standins: None) -> None:
    ds = tmp_path / "ds"
    shutil.copytree(dataset, ds)
    (ds / "widget" / "train" / "good" / "zzz.png").write_bytes(b"not a png")
    paths = train_category(ds, "widget", models=("cae",), out=tmp_path / "m", size=32)
    skipped = json.loads((paths["cae"] / "model.json").read_text())["training"]["skipped_files"]
    assert [Path(s["path"]).name for s in skipped] == ["zzz.png"]


def test_a_defect_among_the_held_out_good_images_is_named(dataset: Path, tmp_path: Path, standins: None,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    from qc_models.calibration import split_calibration

    ds = tmp_path / "ds"
    shutil.copytree(dataset, ds)
    good = sorted((ds / "widget" / "train" / "good").glob("*.png"))
    _, cal_idx = split_calibration(len(good), seed=0)
    clean = train_category(ds, "widget", models=("cae",), out=tmp_path / "m0", size=32)
    record = json.loads((clean["cae"] / "model.json").read_text())["training"]
    planted = good[int(cal_idx[0])]
    assert planted.name not in [x["file"] for x in record["suspect_calibration_images"]]
    img = cv2.imread(str(planted))
    img[8:24, 8:24] = 255  # a large white blotch: a defective part filed as good
    cv2.imwrite(str(planted), img)
    paths = train_category(ds, "widget", models=("cae",), out=tmp_path / "m1", size=32)
    record = json.loads((paths["cae"] / "model.json").read_text())["training"]
    named = {x["file"]: x for x in record["suspect_calibration_images"]}
    assert planted.name in named and named[planted.name]["score"] > named[planted.name]["threshold_without"]
    assert planted.name in caplog.text and "move it out of train/good" in caplog.text


def test_too_few_training_images_is_a_clear_error(tmp_path: Path, standins: None) -> None:
    ds = write_dataset(tmp_path / "small", n_train=4)
    with pytest.raises(CalibrationError, match="at least 6 good training images"):
        train_category(ds, "widget", models=("cae",), out=tmp_path / "m", size=32)


def test_detector_kwargs_filters_by_signature_and_profile(standins: None) -> None:
    kw = detector_kwargs("cae", "default", size=48, epochs=3, weights="none", seed=7)
    assert kw == {"image_size": 48, "seed": 7}  # the stand-in takes no epochs/weights
    with pytest.raises(ValueError, match="unknown profile"):
        detector_kwargs("cae", "turbo")


def test_probability_scores_are_calibrated_inside_their_range(tiny_models_dir) -> None:
    """The U-Net's scores are probabilities: its calibrator knows the bound, the others have none."""
    from qc_models.registry import latest_version

    models_dir, _, category = tiny_models_dir
    bounds = {}
    for name in ("cae", "unet", "patchcore", "ensemble"):
        meta = json.loads((latest_version(models_dir, category, name).path / "model.json").read_text())
        bounds[name] = meta["calibration"]["score_upper_bound"]
        if bounds[name] is not None:
            assert meta["threshold"] < bounds[name]
            assert meta["calibration"]["pixel_threshold"] < bounds[name]
    assert bounds == {"cae": None, "unet": 1.0, "patchcore": None, "ensemble": None}


def _labelled_defects(tmp_path: Path) -> Path:
    """A labelled defect folder (<dir>/<defect>/*.png + <dir>/ground_truth/...) from another seed."""
    other = write_dataset(tmp_path / "other", n_train=1, n_test_good=0, n_per_defect=3, seed=7) / "widget"
    folder = tmp_path / "labelled"
    shutil.copytree(other / "test", folder)
    shutil.copytree(other / "ground_truth", folder / "ground_truth")
    return folder


def test_labelled_defect_folder_trains_the_unet_and_is_recorded(dataset: Path, tmp_path: Path) -> None:
    folder = _labelled_defects(tmp_path)
    paths = train_category(dataset, "widget", models=("unet",), out=tmp_path / "m", weights="none", size=32,
                           defects_dir=folder, detector_overrides={"unet": {"epochs": 1, "max_train_seconds": None}})
    meta = json.loads((paths["unet"] / "model.json").read_text())
    assert meta["training"]["n_labelled_defects"] == 6
    assert meta["training"]["defects_dir"] == str(folder)
    assert meta["weights"]["extra_defects_used"] == 6  # the U-Net trained on them
    assert meta["config"]["extra_defects"] is None  # training data, not configuration
    assert registry.load_model(paths["unet"]).detector.describe()["extra_defects_used"] == 0  # not persisted


def test_labelled_defect_folder_problems_name_the_file(dataset: Path, tmp_path: Path) -> None:
    folder = _labelled_defects(tmp_path)
    with pytest.raises(DatasetError, match="test set"):
        load_defect_folder(dataset / "widget" / "test", dataset / "widget" / "test")
    with pytest.raises(DatasetError, match="validation folder"):
        load_defect_folder(folder, validation_dir=folder)
    with pytest.raises(DatasetError, match="does not exist"):
        load_defect_folder(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    (empty / "good").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no labelled defects"):
        load_defect_folder(empty)
    assert len(load_defect_folder(folder)) == 6
    (folder / "ground_truth" / "blob" / "001_mask.png").unlink()
    with pytest.raises(DatasetError, match=r"blob/001\.png: no mask"):
        load_defect_folder(folder)
    cv2.imwrite(str(folder / "ground_truth" / "blob" / "001_mask.png"), np.full((16, 16), 255, np.uint8))
    with pytest.raises(DatasetError, match=r"001_mask\.png: mask is 16x16 px but its image 001\.png is 32x32"):
        load_defect_folder(folder)
    cv2.imwrite(str(folder / "ground_truth" / "blob" / "001_mask.png"), np.zeros((32, 32), np.uint8))
    with pytest.raises(DatasetError, match="empty mask"):
        load_defect_folder(folder)


def test_alignment_choice_reaches_every_detector_and_its_record(dataset: Path, tmp_path: Path) -> None:
    paths = train_category(dataset, "widget", models=("patchcore",), out=tmp_path / "m", weights="none", size=32,
                           align="on", detector_overrides={"patchcore": {"coreset_ratio": 0.5}})
    meta = json.loads((paths["patchcore"] / "model.json").read_text())
    assert meta["config"]["align"] is True
    assert meta["training"]["alignment"] == {**meta["training"]["alignment"], "align": True, "mode": "on"}
    model = registry.load_model(paths["patchcore"])
    assert model.detector.aligner_ is not None
    assert [v.pose_aligned for v in registry.list_versions(tmp_path / "m")] == [True]
    off = train_category(dataset, "widget", models=("patchcore",), out=tmp_path / "m2", weights="none", size=32,
                         align="off", detector_overrides={"patchcore": {"coreset_ratio": 0.5}})
    assert json.loads((off["patchcore"] / "model.json").read_text())["config"]["align"] is False
    assert [v.pose_aligned for v in registry.list_versions(tmp_path / "m2")] == [False]
    with pytest.raises(ValueError, match="alignment mode"):
        train_category(dataset, "widget", models=("patchcore",), out=tmp_path / "m3", weights="none", size=32,
                       align="maybe")
