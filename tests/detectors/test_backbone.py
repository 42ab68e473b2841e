"""Backbone loading: random init, local state dicts, refused files and offline ImageNet errors."""

from __future__ import annotations

import pickle
import urllib.error
from pathlib import Path

import pytest
import torch
from torchvision.models import resnet18

from qc_models.detectors import backbone as bb
from qc_models.detectors.backbone import BackboneWeightsError, load_backbone


def _same_params(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_random_init_is_deterministic_and_truncated() -> None:
    a, info = load_backbone("resnet18", "none", seed=0)
    b, _ = load_backbone("resnet18", "none", seed=0)
    c, _ = load_backbone("resnet18", "none", seed=1)
    assert _same_params(a, b) and not _same_params(a, c)
    assert info == {"backbone": "resnet18", "weights": "none", "weights_sha256": info["weights_sha256"], "pretrained": False}
    assert len(info["weights_sha256"]) == 64
    assert not hasattr(a, "layer4") and not hasattr(a, "fc")
    assert not a.training and not any(p.requires_grad for p in a.parameters())
    with torch.inference_mode():
        f2, f3 = a(torch.zeros(2, 3, 64, 64))
    assert f2.shape == (2, 128, 8, 8) and f3.shape == (2, 256, 4, 4)
    with torch.inference_mode():
        f1, g2 = a(torch.zeros(2, 3, 64, 64), ("layer1", "layer2"))
    assert f1.shape == (2, 64, 16, 16) and torch.equal(g2, f2)


def test_random_init_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_backbone("resnet18", "none", seed=7)
    assert torch.equal(torch.rand(3), expected)


def test_imagenet_offline_raises_with_instructions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def no_network(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(BackboneWeightsError) as err:
        load_backbone("resnet18", "imagenet")
    message = str(err.value)
    checkpoints = tmp_path / "torch_home" / "hub" / "checkpoints"
    assert str(checkpoints) in message
    assert "resnet18-f37072fd.pth" in message
    assert "--weights /path/to/" in message and "--weights none" in message


def test_imagenet_from_cache_records_file_sha(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file already in $TORCH_HOME/hub/checkpoints is used without any download."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("no download expected"))
    cached = tmp_path / "hub" / "checkpoints" / bb.imagenet_weights_filename("resnet18")
    cached.parent.mkdir(parents=True)
    assert not bb.imagenet_weights_cached("resnet18")
    torch.manual_seed(5)
    full = resnet18()
    torch.save(full.state_dict(), cached)
    assert bb.imagenet_weights_cached("resnet18")
    model, info = load_backbone("resnet18", "imagenet")
    assert info["pretrained"] is True and info["weights"] == "imagenet"
    assert info["weights_sha256"] == bb.file_sha256(cached)
    assert torch.equal(model.state_dict()["layer3.0.conv1.weight"], full.state_dict()["layer3.0.conv1.weight"])


def test_local_state_dict_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(11)
    full = resnet18()
    path = tmp_path / "weights.pth"
    torch.save(full.state_dict(), path)
    model, info = load_backbone("resnet18", str(path))
    assert info == {"backbone": "resnet18", "weights": str(path), "weights_sha256": bb.file_sha256(path), "pretrained": True}
    ref = full.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in model.state_dict().items())
    # A truncated state dict (what a PatchCore artifact carries) loads as well.
    trunc = tmp_path / "truncated.pth"
    torch.save(model.state_dict(), trunc)
    again, _ = load_backbone("resnet18", str(trunc))
    assert _same_params(model, again)


def test_pickled_object_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"

    class Evil:
        def __reduce__(self):  # noqa: ANN204 - pickle protocol
            return (marker.write_text, ("executed",))

    with open(path, "wb") as fh:
        pickle.dump({"conv1.weight": Evil()}, fh)
    with pytest.raises(BackboneWeightsError, match="not a readable PyTorch state dict") as err:
        load_backbone("resnet18", str(path))
    assert str(path) in str(err.value)
    assert not marker.exists()


def test_non_state_dict_and_mismatches_are_named(tmp_path: Path) -> None:
    tensors = tmp_path / "list.pth"
    torch.save([torch.zeros(3)], tensors)
    with pytest.raises(BackboneWeightsError, match="not a state dict"):
        load_backbone("resnet18", str(tensors))

    wrong_keys = tmp_path / "keys.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, wrong_keys)
    with pytest.raises(BackboneWeightsError, match="keys do not match") as err:
        load_backbone("resnet18", str(wrong_keys))
    assert "missing" in str(err.value) and "encoder.weight" in str(err.value)

    sd = resnet18().state_dict()
    sd["conv1.weight"] = torch.zeros(1, 2, 3, 3)
    wrong_shape = tmp_path / "shape.pth"
    torch.save(sd, wrong_shape)
    with pytest.raises(BackboneWeightsError, match="conv1.weight"):
        load_backbone("resnet18", str(wrong_shape))

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(BackboneWeightsError, match="not a readable PyTorch state dict") as err:
        load_backbone("resnet18", str(garbage))
    assert str(garbage) in str(err.value)

    with pytest.raises(BackboneWeightsError, match="does not exist"):
        load_backbone("resnet18", str(tmp_path / "missing.pth"))
    with pytest.raises(BackboneWeightsError, match="neither 'imagenet', 'none'"):
        load_backbone("resnet18", "imagnet")
    with pytest.raises(ValueError, match="unknown backbone"):
        load_backbone("vgg16", "none")
