"""The `qc train`, `qc evaluate` and `qc score` commands: exit codes, stdout/stderr, JSON schemas."""

from __future__ import annotations

import json
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from qc_models import registry
from qc_models.cli import main
from tests.models.standin import standin_class, write_dataset

METRIC_KEYS = {"image_auroc", "image_auroc_ci95",
               "average_precision", "pixel_auroc", "aupro", "f1", "precision", "recall", "accuracy",
               "false_reject_rate", "confusion_matrix", "iou", "dice", "per_defect_type", "threshold"}


@pytest.fixture
def offline_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No cached ImageNet weights and no network."""
    import torchvision.models._api as api

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))
    monkeypatch.setattr(api, "load_state_dict_from_url", offline)


@pytest.mark.parametrize("weights_args", [["--weights", "imagenet"], []], ids=["explicit", "default"])
def test_train_imagenet_offline_is_a_clear_error(tmp_path: Path, offline_torch, capsys, weights_args) -> None:
    """ImageNet is also the default (the issue's default for users): offline it is the documented error."""
    root = write_dataset(tmp_path / "ds", n_train=8)
    rc = main(["train", str(root), "--category", "widget", "--model", "patchcore", *weights_args,
               "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: ImageNet weights for resnet18 are not cached")
    assert "resnet18-f37072fd.pth" in err and "--weights none" in err
    assert "Traceback" not in err and not (tmp_path / "m").exists()


def test_train_prints_paths_and_warning(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(registry._REGISTERED, "cae", standin_class("cae"))
    monkeypatch.setitem(registry._REGISTERED, "unet", standin_class("unet"))
    root = write_dataset(tmp_path / "ds", n_train=12)
    write_dataset(root, category="gadget", n_train=12, seed=1)
    out = tmp_path / "m"
    rc = main(["train", str(root), "--category", "all", "--model", "cae", "--out", str(out), "--size", "32",
               "--weights", "none"])
    captured = capsys.readouterr()
    assert rc == 0
    lines = captured.out.split()
    assert [Path(p).parent.parent.name + "/" + Path(p).parent.name for p in lines] == ["gadget/cae", "widget/cae"]
    assert all((Path(p) / "model.json").is_file() for p in lines)
    assert "WARNING: untrained backbone (random init)" in captured.err


def test_train_real_cae_through_the_cli(tiny_dataset: Path, tmp_path: Path, capsys) -> None:
    rc = main(["train", str(tiny_dataset), "--category", "wood", "--model", "cae", "--out", str(tmp_path),
               "--size", "32", "--epochs", "1", "--profile", "demo", "--align", "on"])
    out = capsys.readouterr().out.split()
    assert rc == 0 and len(out) == 1
    meta = json.loads((Path(out[0]) / "model.json").read_text())
    assert meta["type"] == "cae" and meta["config"]["image_size"] == 32 and meta["category"] == "wood"
    assert meta["config"]["align"] is True and meta["training"]["alignment"]["mode"] == "on"


def test_train_patchcore_options_reach_the_model_and_bad_ones_stop_before_training(tmp_path: Path, capsys) -> None:
    root = write_dataset(tmp_path / "ds", n_train=10)
    base = ["train", str(root), "--category", "widget", "--size", "32", "--weights", "none"]
    rc = main([*base, "--model", "patchcore", "--out", str(tmp_path / "m"), "--coreset-ratio", "0.5", "--reweight",
               "--layers", "layer3, layer2"])
    out = capsys.readouterr().out.split()
    assert rc == 0 and len(out) == 1
    config = json.loads((Path(out[0]) / "model.json").read_text())["config"]
    assert config["coreset_ratio"] == 0.5 and config["reweight"] is True
    assert config["layers"] == ["layer2", "layer3"]  # in network order, whatever order was typed
    default = main([*base, "--model", "patchcore", "--out", str(tmp_path / "d")])
    config = json.loads((Path(capsys.readouterr().out.split()[0]) / "model.json").read_text())["config"]
    assert default == 0 and config["coreset_ratio"] == 0.05 and config["reweight"] is False
    assert config["layers"] == ["layer1", "layer2"]  # the random-init default
    for extra, message in ((["--model", "patchcore", "--coreset-ratio", "0"], "--coreset-ratio: coreset ratio must be in (0, 1], got 0.0"),
                           (["--model", "patchcore", "--layers", "layer2,layer4"],
                            "--layers: feature layers ['layer2', 'layer4'] invalid: each must be one of layer1, layer2, layer3, without repeats"),
                           (["--model", "patchcore", "--layers", "layer2,layer2"],
                            "--layers: feature layers ['layer2', 'layer2'] invalid: each must be one of layer1, layer2, layer3, without repeats"),
                           (["--model", "cae", "--layers", "layer2"], "--layers set PatchCore, which --model cae does not train"),
                           (["--model", "cae", "--reweight"], "--reweight set PatchCore, which --model cae does not train")):
        assert main([*base, "--out", str(tmp_path / "bad"), *extra]) == 2
        assert capsys.readouterr().err.strip().endswith(message)
        assert not (tmp_path / "bad").exists()  # refused before anything was trained or written


def test_train_defects_folder_through_the_cli(tmp_path: Path, capsys) -> None:
    """--defects reaches the U-Net; the test set given as --defects is exit 2 with the reason."""
    root = write_dataset(tmp_path / "ds", n_train=8)
    other = write_dataset(tmp_path / "other", n_train=1, n_test_good=0, n_per_defect=2, seed=3) / "widget"
    labelled = tmp_path / "labelled"
    shutil.copytree(other / "test", labelled)
    shutil.copytree(other / "ground_truth", labelled / "ground_truth")
    base = ["train", str(root), "--category", "widget", "--model", "unet", "--out", str(tmp_path / "m"),
            "--size", "32", "--epochs", "1", "--profile", "demo", "--weights", "none"]
    assert main([*base, "--defects", str(root / "widget" / "test")]) == 2
    assert "this is the test set" in capsys.readouterr().err
    assert main([*base, "--defects", str(labelled)]) == 0
    out = capsys.readouterr().out.split()
    meta = json.loads((Path(out[0]) / "model.json").read_text())
    assert meta["training"]["n_labelled_defects"] == 4 and meta["weights"]["extra_defects_used"] == 4


def test_bad_dataset_is_exit_2(tmp_path: Path, capsys) -> None:
    rc = main(["train", str(tmp_path), "--category", "x", "--out", str(tmp_path / "m")])
    assert rc == 2 and "not a dataset" in capsys.readouterr().err


def test_evaluate_json(tiny_models_dir, capsys) -> None:
    models_dir, root, category = tiny_models_dir
    rc = main(["evaluate", str(root), "--category", category, "--models", str(models_dir), "--json"])
    assert rc == 0
    metrics = json.loads(capsys.readouterr().out)
    assert set(metrics) == {"cae", "unet", "patchcore", "ensemble"}
    for name, m in metrics.items():
        assert METRIC_KEYS <= set(m), name
        assert 0.0 <= m["image_auroc"] <= 1.0 and 0.0 <= m["aupro"] <= 1.0
        assert all({"detection_rate", "auroc", "count"} <= set(v) for v in m["per_defect_type"].values())
    rc = main(["evaluate", str(root), "--models", str(models_dir), "--model", "patchcore"])
    table = capsys.readouterr().out
    assert rc == 0 and "patchcore" in table and "cae" not in table


def test_score_json_bad_files_and_maps(tiny_models_dir, tmp_path: Path, capsys) -> None:
    models_dir, root, category = tiny_models_dir
    folder = tmp_path / "in"
    shutil.copytree(root / category / "test" / "good", folder / "good")
    some_defect = sorted((root / category / "test").iterdir())[0]
    shutil.copy(next(some_defect.glob("*.png")), folder / "defect.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (folder / "notes.txt").write_text("hello")
    n_images = len(list((folder / "good").glob("*.png"))) + 1
    maps = tmp_path / "maps"
    rc = main(["score", str(folder), "--models", str(models_dir), "--json", "--save-maps", str(maps)])
    captured = capsys.readouterr()
    assert rc == 1  # the command ran, but some files could not be scored
    doc = json.loads(captured.out)
    assert doc["category"] == category and set(doc["models"]) == {"cae", "unet", "patchcore", "ensemble"}
    assert doc["untrained_backbone"] is True and "WARNING: untrained backbone" in captured.err
    assert len(doc["results"]) == n_images
    for r in doc["results"]:
        assert set(r["normalised"]) == {"cae", "unet", "patchcore", "ensemble"}
        assert r["decision"] in ("OK", "NG") and r["decided_by"] == "ensemble"
        assert (r["decision"] == "NG") == r["is_defective"]["ensemble"]
        assert all(0 < v < 1 for v in r["normalised"].values())
        assert all(Path(p).is_file() for p in r["maps"].values())
    errors = {Path(e["path"]).name: e["kind"] for e in doc["errors"]}
    assert errors == {"broken.png": "corrupt", "notes.txt": "not_an_image"}
    import cv2

    overlay = cv2.imread(doc["results"][0]["maps"]["ensemble"])
    assert overlay is not None and overlay.shape[:2] == (64, 64)


def test_score_single_image_text_output(tiny_models_dir, capsys) -> None:
    models_dir, root, category = tiny_models_dir
    image = sorted((root / category / "test" / "good").glob("*.png"))[0]
    rc = main(["score", str(image), "--models", str(models_dir), "--category", category])
    out = capsys.readouterr().out.splitlines()
    assert rc == 0 and len(out) == 2 and out[1].split()[0] in ("OK", "NG") and str(image) in out[1]
    assert np.isfinite(float(out[1].split()[1]))


def test_score_missing_target_and_registry_are_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["score", str(tmp_path / "nope.png"), "--models", str(tmp_path)]) == 2
    assert "no such file" in capsys.readouterr().err
    img = tmp_path / "a.png"
    img.write_bytes(b"x")
    assert main(["score", str(img), "--models", str(tmp_path / "empty")]) == 2
    assert "no trained models" in capsys.readouterr().err



def test_models_lists_every_version_marks_the_one_in_use_and_flags_broken_ones(tiny_models_dir, tmp_path: Path,
                                                                                 capsys) -> None:
    src, _, category = tiny_models_dir
    models_dir = tmp_path / "models"
    shutil.copytree(src, models_dir)
    cae = models_dir / category / "cae"
    newest = max(p.name for p in cae.iterdir())
    shutil.copytree(cae / newest, cae / "20000101T000000000000Z-0001")  # an older version, kept for comparison
    broken = cae / "20000101T000000000000Z-0000"
    broken.mkdir()
    (broken / "model.json").write_text("{not json")
    meta = json.loads((cae / newest / "model.json").read_text())

    assert main(["models", str(models_dir), "--json"]) == 1  # it ran, and one version cannot be read
    captured = capsys.readouterr()
    rows = json.loads(captured.out)["versions"]
    assert "untrained backbone" in captured.err and f"{broken}: " in captured.err and "not valid JSON" in captured.err
    caes = [r for r in rows if r["model"] == "cae"]
    assert [r["version"] for r in caes] == [newest, "20000101T000000000000Z-0001", broken.name]  # newest first
    assert [r["in_use"] for r in caes] == [True, False, False]
    assert caes[0]["image_auroc"] == meta["metrics"]["image_auroc"] and caes[0]["threshold"] == meta["threshold"]
    assert caes[2]["error"] and caes[2]["image_auroc"] is None
    assert {r["model"] for r in rows if r["in_use"]} == {"cae", "unet", "patchcore", "ensemble"}
    assert next(r for r in rows if r["model"] == "patchcore")["backbone"] == "resnet18 (none)"
    ens = next(r for r in rows if r["model"] == "ensemble" and r["in_use"])
    saved = json.loads((Path(ens["path"]) / "model.json").read_text())["ensemble"]
    assert ens["ensemble_weights"] == saved["weights"] and ens["weight_spread"] == saved["details"]["weight_spread"]
    assert ("do not settle the ensemble's weights" in captured.err) == (ens["weight_spread"]["top_share"] < 0.8)

    assert main(["models", str(models_dir), "--model", "ensemble"]) == 0
    out = capsys.readouterr().out
    first = next(iter(saved["weights"]))
    low, high = saved["details"]["weight_spread"]["interval"][first]
    assert f"{category} ensemble weights: {first} {saved['weights'][first]:.2f} ({low:.2f}-{high:.2f})" in out

    assert main(["models", str(models_dir), "--model", "patchcore"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert not any("ensemble weights" in line for line in lines)  # only listed ensembles show theirs
    assert lines[0].split()[:4] == ["category", "model", "version", "use"]
    body = [line.split() for line in lines[1:-1]]
    assert len(body) == 1 and body[0][:2] == [category, "patchcore"] and body[0][3] == "*"


def test_models_without_a_registry_is_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["models", str(tmp_path / "nope")]) == 2
    assert "no such model registry folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["models", str(tmp_path / "empty"), "--category", "wood"]) == 2
    assert "no trained models for category wood" in capsys.readouterr().err
