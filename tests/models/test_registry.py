"""Model artifacts: round trip, refusal of pickles and tampering, newest-version logic, ModelSet."""

from __future__ import annotations

import json
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from qc_models import registry
from qc_models.calibration import Calibrator
from qc_models.detectors.ensemble import Ensemble, transform_scores
from qc_models.registry import ModelError
from tests.models.standin import defective_image, good_image, standin_class


@pytest.fixture()
def standins(monkeypatch: pytest.MonkeyPatch) -> dict[str, type]:
    """Stand-in detectors registered as 'cae' and 'unet' for the duration of one test."""
    classes = {"cae": standin_class("cae"), "unet": standin_class("unet", noise=0.3)}
    for name, cls in classes.items():
        monkeypatch.setitem(registry._REGISTERED, name, cls)
    return classes


def _fitted(cls: type, seed: int = 0) -> tuple[object, Calibrator, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    train = [good_image(rng) for _ in range(20)]
    cal_imgs = [good_image(rng) for _ in range(8)]
    det = cls(image_size=32).fit(train)
    pred = det.predict(cal_imgs)
    return det, Calibrator(0.01).fit(pred.image_scores, pred.anomaly_maps), cal_imgs


def _save(models_dir: Path, cls: type, category: str = "widget", seed: int = 0) -> Path:
    det, cal, _ = _fitted(cls, seed)
    return registry.save_model(models_dir, category, det, cal, training={"fingerprint": "abc"})


def test_round_trip_gives_identical_predictions(tmp_path: Path, standins: dict[str, type]) -> None:
    det, cal, imgs = _fitted(standins["cae"])
    path = registry.save_model(tmp_path, "widget", det, cal, training={"fingerprint": "abc"})
    assert path.parent == tmp_path / "widget" / "cae"
    assert sorted(p.name for p in path.iterdir()) == ["model.json", "tensors.safetensors"]
    loaded = registry.load_model(path)
    a, b = det.predict(imgs), loaded.detector.predict(imgs)
    assert np.array_equal(a.image_scores, b.image_scores)
    assert all(np.array_equal(x, y) for x, y in zip(a.anomaly_maps, b.anomaly_maps))
    assert loaded.calibrator.threshold == cal.threshold
    meta = json.loads((path / "model.json").read_text())
    for key in ("type", "config", "category", "training", "weights", "threshold", "calibration", "metrics",
                "library_versions", "created", "tensors", "tensors_sha256"):
        assert key in meta, key
    assert meta["library_versions"]["torch"] == torch.__version__
    assert loaded.untrained_backbone is True  # the stand-in reports pretrained: False


@pytest.mark.parametrize("name", ["evil.pkl", "weights.pt", "model.pth"])
def test_planted_pickle_is_refused(tmp_path: Path, standins: dict[str, type], name: str) -> None:
    path = _save(tmp_path, standins["cae"])
    (path / name).write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ModelError, match=name.replace(".", r"\.")):
        registry.load_model(path)


@pytest.mark.parametrize(
    "tamper, message",
    [
        (lambda t: "{not json", "not valid JSON"),
        (lambda t: json.dumps([1, 2]), "expected a JSON object"),
        (lambda t: json.dumps({k: v for k, v in json.loads(t).items() if k != "config"}), "missing key 'config'"),
        (lambda t: json.dumps({**json.loads(t), "threshold": "low"}), "'threshold' has the wrong type"),
        (lambda t: json.dumps({**json.loads(t), "type": "os.system"}), "unknown model type"),
        (lambda t: json.dumps({**json.loads(t), "calibration": {"threshold": 1}}), "invalid calibration"),
    ],
)
def test_tampered_model_json_is_refused(tmp_path: Path, standins: dict[str, type], tamper, message: str) -> None:
    path = _save(tmp_path, standins["cae"])
    mj = path / "model.json"
    mj.write_text(tamper(mj.read_text()))
    with pytest.raises(ModelError, match=message) as info:
        registry.load_model(path)
    assert "model.json" in str(info.value)


def test_tampered_tensors_are_refused(tmp_path: Path, standins: dict[str, type]) -> None:
    path = _save(tmp_path, standins["cae"])
    tf = path / "tensors.safetensors"
    good_bytes = tf.read_bytes()
    tf.write_bytes(b"\x80\x04not a safetensors file")
    with pytest.raises(ModelError, match="not a valid safetensors file") as info:
        registry.load_model(path)
    assert "tensors.safetensors" in str(info.value)
    save_file({"mean": torch.zeros(3, 32, 32)}, str(tf))
    with pytest.raises(ModelError, match=r"missing \['std'\]"):
        registry.load_model(path)
    save_file({"mean": torch.zeros(3, 16, 16), "std": torch.ones(3, 32, 32)}, str(tf))
    with pytest.raises(ModelError, match="tensor 'mean' is"):
        registry.load_model(path)
    # Same names and shapes, different values: caught by the recorded sha256.
    from safetensors.torch import load_file

    t = load_file(str(tf))
    tf.write_bytes(good_bytes)
    real = load_file(str(tf))
    save_file({k: v + 1.0 for k, v in real.items()}, str(tf))
    with pytest.raises(ModelError, match="sha256"):
        registry.load_model(path)
    assert set(t) == {"mean", "std"}


def test_newest_version_wins(tmp_path: Path, standins: dict[str, type]) -> None:
    old = _save(tmp_path, standins["cae"], seed=0)
    time.sleep(0.002)
    new = _save(tmp_path, standins["cae"], seed=1)
    assert old.name < new.name
    versions = registry.list_versions(tmp_path, "widget", "cae")
    assert [v.path for v in versions] == [new, old]
    assert registry.latest_version(tmp_path, "widget", "cae").path == new
    mset = registry.load_model_set(tmp_path)
    assert mset.category == "widget" and mset.versions == {"cae": new.name}
    assert registry.latest_version(tmp_path, "widget", "unet") is None


def test_broken_version_is_listed_with_its_error(tmp_path: Path, standins: dict[str, type]) -> None:
    path = _save(tmp_path, standins["cae"])
    (path / "model.json").write_text("{")
    [info] = registry.list_versions(tmp_path)
    assert info.error is not None and "model.json" in info.error


def test_category_inference(tmp_path: Path, standins: dict[str, type]) -> None:
    with pytest.raises(ModelError, match="no trained models"):
        registry.load_model_set(tmp_path)
    _save(tmp_path, standins["cae"], category="widget")
    _save(tmp_path, standins["cae"], category="gadget")
    with pytest.raises(ModelError, match="gadget, widget"):
        registry.load_model_set(tmp_path)
    assert registry.load_model_set(tmp_path, "gadget").category == "gadget"
    with pytest.raises(ModelError, match="no models for category 'nope'"):
        registry.load_model_set(tmp_path, "nope")


def test_model_set_scores_batches_and_ensemble(tmp_path: Path, standins: dict[str, type], monkeypatch) -> None:
    cae = registry.load_model(_save(tmp_path, standins["cae"]))
    unet = registry.load_model(_save(tmp_path, standins["unet"]))
    ens = Ensemble({"cae": 0.8, "unet": 0.2}, {"cae": cae.version, "unet": unet.version})
    ens_cal = Calibrator().fit(np.linspace(0.05, 0.3, 10), [np.full((4, 4), 0.2, np.float32)] * 5)
    registry.save_ensemble(tmp_path, "widget", ens, ens_cal)
    mset = registry.load_model_set(tmp_path)
    assert mset.names == ["cae", "unet", "ensemble"] and mset.untrained_backbone
    calls = []
    for m in mset.members.values():
        orig = m.detector.predict
        monkeypatch.setattr(m.detector, "predict", lambda imgs, orig=orig: calls.append(len(imgs)) or orig(imgs))
    rng = np.random.default_rng(5)
    images = [good_image(rng, 40) for _ in range(3)] + [defective_image(rng, 48)[0]]
    results = mset.score(images, batch_size=4)
    assert calls == [4, 4]  # one predict per model per batch
    for img, r in zip(images, results):
        assert set(r.raw) == set(r.normalised) == set(r.is_defective) == set(r.maps) == {"cae", "unet", "ensemble"}
        for name in r.maps:
            assert r.maps[name].shape == img.shape[:2] and r.maps[name].dtype == np.float32
            assert r.is_defective[name] == (r.normalised[name] > 0.5)
            assert 0.0 < r.normalised[name] < 1.0
    z = {n: mset.members[n].calibrator.standardise(results[0].raw[n]) for n in ("cae", "unet")}
    c = {n: transform_scores(np.array([v]), "knee_log")[0] for n, v in z.items()}  # the ensemble's compressed z-scores
    assert results[0].raw["ensemble"] == pytest.approx(0.8 * c["cae"] + 0.2 * c["unet"])


def test_stale_ensemble_is_not_used(tmp_path: Path, standins: dict[str, type]) -> None:
    cae = registry.load_model(_save(tmp_path, standins["cae"]))
    _save(tmp_path, standins["unet"])
    ens = Ensemble({"cae": 0.5, "unet": 0.5}, {"cae": cae.version, "unet": "19990101T000000000000Z-dead"})
    registry.save_ensemble(tmp_path, "widget", ens, Calibrator().fit(np.arange(10.0)))
    mset = registry.load_model_set(tmp_path)
    assert mset.ensemble is None and mset.names == ["cae", "unet"]
    assert "not used" in mset.warnings[0]


def test_ensemble_directory_refuses_tensors_and_metrics_update(tmp_path: Path, standins: dict[str, type]) -> None:
    path = registry.save_ensemble(tmp_path, "widget", Ensemble({"cae": 1.0}), Calibrator().fit(np.arange(10.0)))
    assert [p.name for p in path.iterdir()] == ["model.json"]
    registry.update_metrics(path, {"image_auroc": 0.9})
    assert registry.load_model(path).metadata["metrics"] == {"image_auroc": 0.9}
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind
    (path / "tensors.safetensors").write_bytes(b"x")
    with pytest.raises(ModelError, match="unexpected file"):
        registry.load_model(path)


def test_data_fingerprint_changes_with_content(tmp_path: Path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(b"1")
    b.write_bytes(b"2")
    f1 = registry.data_fingerprint([b, a])
    assert f1 == registry.data_fingerprint([a, b])
    b.write_bytes(b"3")
    assert registry.data_fingerprint([a, b]) != f1


def test_non_finite_facts_are_stored_as_null(tmp_path: Path, standins: dict[str, type]) -> None:
    det, cal, _ = _fitted(standins["cae"])
    det.describe = lambda: {"best_val_loss": float("nan"), "pretrained": False}  # type: ignore[method-assign]
    path = registry.save_model(tmp_path, "widget", det, cal, training={"fit_seconds": np.float64(1.5)})
    meta = json.loads((path / "model.json").read_text())
    assert meta["weights"]["best_val_loss"] is None and meta["training"]["fit_seconds"] == 1.5
