"""Backbone loading for feature-based detectors: ImageNet, random-init or a local state dict.

Factory PCs are often offline, so ImageNet weights come only from torchvision's cache
(``$TORCH_HOME/hub/checkpoints``) or a download; when neither works the user gets a
:class:`BackboneWeightsError` saying exactly which file to copy where, never a stack trace.
Local ``.pth`` files are read with ``weights_only=True`` (never unpickling code), and every
load records what was used (``weights_info``) so a model artifact can say which backbone it needs.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import urllib.error
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision import models

from qc_models.hashing import file_sha256

WEIGHTS_IMAGENET = "imagenet"
WEIGHTS_NONE = "none"

#: name -> (torchvision constructor, ImageNet weights enum member, channels of layer1, layer2, layer3)
_BACKBONES: dict[str, tuple[Callable[..., nn.Module], Any, tuple[int, ...]]] = {
    "resnet18": (models.resnet18, models.ResNet18_Weights.IMAGENET1K_V1, (64, 128, 256)),
    "wide_resnet50_2": (models.wide_resnet50_2, models.Wide_ResNet50_2_Weights.IMAGENET1K_V1, (256, 512, 1024)),
}

#: Stages the extractor can return, shallow to deep, with their stride (pixels per feature cell).
FEATURE_LAYERS: tuple[str, ...] = ("layer1", "layer2", "layer3")
LAYER_STRIDES: dict[str, int] = {"layer1": 4, "layer2": 8, "layer3": 16}
#: The paper's choice: mid-level features of an ImageNet network.
DEFAULT_LAYERS: tuple[str, ...] = ("layer2", "layer3")

#: Parts of a full ResNet state dict that the truncated extractor does not use.
_DROPPED_PREFIXES = ("layer4.", "fc.")


class BackboneWeightsError(ValueError):
    """Backbone weights could not be obtained or are not usable; the message says how to fix it."""


def supported_backbones() -> list[str]:
    """Names accepted by :func:`load_backbone`."""
    return sorted(_BACKBONES)


class ResNetFeatures(nn.Module):
    """A ResNet truncated after ``layer3``: returns the requested intermediate feature maps.

    Parameter names equal torchvision's, so a full ResNet state dict (minus ``layer4``/``fc``)
    loads unchanged; ``layer4``, the classifier and any stage after the deepest requested layer
    are never computed.
    """

    def __init__(self, resnet: nn.Module, channels: tuple[int, ...]) -> None:
        super().__init__()
        self.conv1 = resnet.conv1
        self.bn1 = resnet.bn1
        self.relu = resnet.relu
        self.maxpool = resnet.maxpool
        self.layer1 = resnet.layer1
        self.layer2 = resnet.layer2
        self.layer3 = resnet.layer3
        self.out_channels = channels

    def forward(self, x: torch.Tensor, layers: Sequence[str] = DEFAULT_LAYERS) -> tuple[torch.Tensor, ...]:
        """Feature maps of ``layers`` (names from :data:`FEATURE_LAYERS`), in the order given."""
        wanted = set(layers)
        deepest = max(FEATURE_LAYERS.index(name) for name in wanted)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        found: dict[str, torch.Tensor] = {}
        for name in FEATURE_LAYERS[: deepest + 1]:
            x = getattr(self, name)(x)
            found[name] = x
        return tuple(found[name] for name in layers)


def _spec(name: str) -> tuple[Callable[..., nn.Module], Any, tuple[int, ...]]:
    if name not in _BACKBONES:
        raise ValueError(f"unknown backbone '{name}'; supported: {', '.join(supported_backbones())}")
    return _BACKBONES[name]


def check_layers(layers: Sequence[str]) -> tuple[str, ...]:
    """``layers`` as a tuple; ValueError unless they are distinct names from :data:`FEATURE_LAYERS`."""
    if not layers:
        raise ValueError(f"feature layers must not be empty; choose from {', '.join(FEATURE_LAYERS)}")
    if any(layer not in FEATURE_LAYERS for layer in layers) or len(set(layers)) != len(layers):
        raise ValueError(
            f"feature layers {list(layers)} invalid: each must be one of {', '.join(FEATURE_LAYERS)}, without repeats"
        )
    return tuple(layers)


def feature_channels(name: str, layers: Sequence[str] = DEFAULT_LAYERS) -> tuple[int, ...]:
    """Channels of the ``layers`` outputs of backbone ``name`` (ValueError if either is unknown)."""
    channels = dict(zip(FEATURE_LAYERS, _spec(name)[2]))
    return tuple(channels[layer] for layer in check_layers(layers))


def _random_resnet(name: str, seed: int) -> nn.Module:
    """A randomly initialised ResNet, identical for the same seed, leaving the global RNG untouched."""
    ctor, _, _ = _spec(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ctor(weights=None)


def tensors_sha256(module: nn.Module) -> str:
    """Hex sha256 over a module's state dict (names, shapes, bytes): identifies random-init weights."""
    h = hashlib.sha256()
    for key, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def sha_to_tensor(sha: str) -> torch.Tensor:
    """A hex sha256 as 32 uint8 values, so it can travel among a model's tensors."""
    return torch.tensor(list(bytes.fromhex(sha)), dtype=torch.uint8)


def tensor_to_sha(t: torch.Tensor) -> str:
    """Inverse of :func:`sha_to_tensor`."""
    return bytes(t.to(torch.uint8).tolist()).hex()


def checkpoints_dir() -> Path:
    """Where torchvision looks for cached weights (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def imagenet_weights_filename(name: str) -> str:
    """The file name torchvision caches the ImageNet weights of ``name`` under."""
    return os.path.basename(_spec(name)[1].url)


def imagenet_weights_cached(name: str = "resnet18") -> bool:
    """Whether torchvision's cache already holds the ImageNet weights of ``name`` (no download needed)."""
    return (checkpoints_dir() / imagenet_weights_filename(name)).is_file()


def _offline_help(name: str) -> str:
    filename = imagenet_weights_filename(name)
    return (
        f"to provide them offline, copy the file '{filename}' (from {_spec(name)[1].url}) into "
        f"{checkpoints_dir()}/ , or pass --weights /path/to/{filename} , "
        f"or use --weights none for an untrained (random-init) backbone"
    )


def _imagenet_state_dict(name: str) -> tuple[dict[str, torch.Tensor], str]:
    """ImageNet weights from torchvision's cache (downloaded if missing) and the file's sha256."""
    _, enum, _ = _spec(name)
    cached = checkpoints_dir() / imagenet_weights_filename(name)
    try:
        state = enum.get_state_dict(progress=False, check_hash=True, map_location="cpu", weights_only=True)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        if cached.exists():
            raise BackboneWeightsError(
                f"ImageNet weights for {name} in {cached} could not be read ({exc}); the file may be "
                f"truncated: delete it and {_offline_help(name)}"
            ) from exc
        raise BackboneWeightsError(
            f"ImageNet weights for {name} are not cached and could not be downloaded ({exc}); "
            f"{_offline_help(name)}"
        ) from exc
    return state, file_sha256(cached)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a ``.pth`` state dict without unpickling arbitrary objects; clear errors otherwise."""
    if not path.is_file():
        raise BackboneWeightsError(f"{path}: weights file does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pickle-protocol chatter; the error below says what matters
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise BackboneWeightsError(
            f"{path}: not a readable PyTorch state dict: it holds pickled Python objects other than "
            "tensors, which are refused (save the weights with torch.save(model.state_dict(), path))"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - any other decoding failure is the same user error
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0]}" if str(exc) else type(exc).__name__
        raise BackboneWeightsError(f"{path}: not a readable PyTorch state dict ({reason})") from exc
    if isinstance(obj, Mapping):
        for wrapper in ("state_dict", "model"):
            if isinstance(obj.get(wrapper), Mapping):
                obj = obj[wrapper]
                break
    if not isinstance(obj, Mapping) or not obj or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise BackboneWeightsError(
            f"{path}: not a state dict (expected a mapping of parameter names to tensors, got {type(obj).__name__})"
        )
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _load_into(extractor: ResNetFeatures, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Copy a full or truncated ResNet state dict into ``extractor``, naming any mismatch."""
    expected = extractor.state_dict()
    used = {k: v for k, v in state.items() if not k.startswith(_DROPPED_PREFIXES)}
    unexpected = sorted(set(used) - set(expected))
    missing = sorted(k for k in set(expected) - set(used) if not k.endswith("num_batches_tracked"))
    if unexpected or missing:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys (e.g. {', '.join(unexpected[:3])})")
        raise BackboneWeightsError(f"{source}: keys do not match the backbone: {'; '.join(parts)}")
    for k, v in used.items():
        if tuple(v.shape) != tuple(expected[k].shape):
            raise BackboneWeightsError(
                f"{source}: shape of '{k}' is {tuple(v.shape)}, the backbone expects {tuple(expected[k].shape)}"
            )
    extractor.load_state_dict(used, strict=False)


def load_backbone(name: str = "resnet18", weights: str = WEIGHTS_IMAGENET, seed: int = 0) -> tuple[nn.Module, dict]:
    """Build the truncated feature extractor of ``name`` with ``weights``.

    ``weights`` is ``"imagenet"`` (torchvision cache or download), ``"none"`` (random init,
    deterministic from ``seed``) or a path to a local ``.pth`` state dict. Returns the module in
    eval mode without gradients, and ``weights_info`` = ``{"backbone", "weights",
    "weights_sha256", "pretrained"}``. Raises :class:`BackboneWeightsError` on unusable weights.
    """
    _, _, channels = _spec(name)
    extractor = ResNetFeatures(_random_resnet(name, seed), channels)
    if weights == WEIGHTS_NONE:
        sha, pretrained, label = tensors_sha256(extractor), False, WEIGHTS_NONE
    elif weights == WEIGHTS_IMAGENET:
        state, sha = _imagenet_state_dict(name)
        _load_into(extractor, state, f"ImageNet weights of {name}")
        pretrained, label = True, WEIGHTS_IMAGENET
    else:
        path = Path(weights).expanduser()
        if not path.exists() and os.sep not in weights and not weights.endswith((".pth", ".pt")):
            raise BackboneWeightsError(
                f"weights '{weights}' is neither 'imagenet', 'none' nor an existing .pth file"
            )
        _load_into(extractor, _read_state_dict(path), str(path))
        sha, pretrained, label = file_sha256(path), True, str(path)
    extractor.eval().requires_grad_(False)
    info = {"backbone": name, "weights": label, "weights_sha256": sha, "pretrained": pretrained}
    return extractor, info


def backbone_from_tensors(name: str, tensors: Mapping[str, torch.Tensor], source: str = "model artifact") -> nn.Module:
    """Rebuild a truncated extractor from saved parameters (artifacts of random-init/local weights)."""
    _, _, channels = _spec(name)
    extractor = ResNetFeatures(_random_resnet(name, 0), channels)
    _load_into(extractor, tensors, source)
    return extractor.eval().requires_grad_(False)
