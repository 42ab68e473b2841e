"""Model version artifacts: save and load one trained model without ever unpickling.

Layout: ``<MODELS_DIR>/<category>/<model>/<version>/`` holding exactly
``model.json`` (type, config, calibration, provenance, metrics) and, for
detectors, ``tensors.safetensors``. Version names are UTC timestamps with
microseconds plus a random suffix, so sorting names sorts by creation time.

Loading is defensive because a models folder may be shared or copied around:
any other file in a version directory (a planted ``*.pkl``/``*.pt`` pickle, a
stray file) is refused; ``model.json`` is validated field by field; the tensors
file must be a real safetensors file whose names, shapes, dtypes and sha256
match the manifest recorded in ``model.json``. Detector classes come from a
fixed table in code, never from a module path stored in JSON.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import secrets
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qc_models import __version__
from qc_models.calibration import CalibrationError, Calibrator
from qc_models.detectors.base import Detector
from qc_models.detectors.ensemble import Ensemble, EnsembleError
from qc_models.hashing import file_sha256

MODEL_JSON = "model.json"
TENSORS_FILE = "tensors.safetensors"
FORMAT_VERSION = 1
ENSEMBLE = "ensemble"
_MAX_JSON_BYTES = 20_000_000

#: Built-in detector types: name -> "module:Class". Imported lazily (only what is loaded).
DETECTOR_TYPES: dict[str, str] = {
    "cae": "qc_models.detectors.autoencoder:ConvAutoencoder",
    "unet": "qc_models.detectors.unet:UNetDetector",
    "patchcore": "qc_models.detectors.patchcore:PatchCore",
}
_REGISTERED: dict[str, type[Detector]] = {}

_REQUIRED_KEYS: dict[str, type | tuple[type, ...]] = {
    "format_version": int,
    "type": str,
    "category": str,
    "version": str,
    "created": str,
    "config": dict,
    "calibration": dict,
    "threshold": (int, float),
}


class ModelError(ValueError):
    """A model artifact is missing, tampered with or unusable; the message names the file."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def register_detector_type(cls: type[Detector]) -> type[Detector]:
    """Make a Detector subclass loadable by its ``name`` (plugins, test stand-ins)."""
    _REGISTERED[cls.name] = cls
    return cls


def detector_class(name: str) -> type[Detector]:
    """The Detector class for a model type name, from the fixed table in code."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in DETECTOR_TYPES:
        raise KeyError(name)
    module, _, attr = DETECTOR_TYPES[name].partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass
class TrainedModel:
    """A loaded model version: detector (or ensemble), its calibrator and its model.json."""

    name: str
    detector: Detector | Ensemble
    calibrator: Calibrator
    metadata: dict[str, Any]
    path: Path | None = None

    @property
    def version(self) -> str:
        return str(self.metadata.get("version", ""))

    @property
    def category(self) -> str:
        return str(self.metadata.get("category", ""))

    @property
    def untrained_backbone(self) -> bool:
        return uses_untrained_backbone(self.metadata.get("weights"))


# ---------------------------------------------------------------- helpers


def uses_untrained_backbone(weights_info: Any) -> bool:
    """True when ``describe()`` facts say a backbone was random-init (``pretrained: False``)."""
    if isinstance(weights_info, dict):
        if weights_info.get("pretrained") is False:
            return True
        return any(uses_untrained_backbone(v) for v in weights_info.values())
    if isinstance(weights_info, list):
        return any(uses_untrained_backbone(v) for v in weights_info)
    return False


def data_fingerprint(paths: Iterable[str | Path]) -> str:
    """sha256 over the sorted (file name, size, content sha256) of training files."""
    h = hashlib.sha256()
    for p in sorted((Path(p) for p in paths), key=lambda p: p.name):
        h.update(f"{p.name}\0{p.stat().st_size}\0{file_sha256(p)}\n".encode())
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    import torchvision

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "qc_models": __version__,
    }


def new_version_name(now: datetime | None = None) -> str:
    """``YYYYmmddTHHMMSSffffffZ-xxxx``: sorts by creation time, unique by the random suffix."""
    now = now or datetime.now(timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(2)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def _finite(obj: Any) -> Any:
    """NaN/inf become None so model.json stays strict JSON (e.g. a diverged loss in describe())."""
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _write_json(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(_finite(json.loads(json.dumps(data, default=_json_default))), indent=2, sort_keys=True,
                      allow_nan=False)
    path.write_text(text + "\n")


def _commit_dir(tmp: Path, final: Path) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, final)
    return final


def _staging_dir(models_dir: Path, category: str, model: str, version: str) -> Path:
    parent = Path(models_dir) / category / model
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".staging-{version}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def _check_name(kind: str, value: str) -> None:
    if not value or value.startswith(".") or "/" in value or "\\" in value or value in ("..",):
        raise ValueError(f"invalid {kind} name {value!r}")


# ---------------------------------------------------------------- saving


def save_model(
    models_dir: str | Path,
    category: str,
    detector: Detector,
    calibrator: Calibrator,
    training: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    version: str | None = None,
) -> Path:
    """Write a fitted detector + calibrator as a new version; returns the version directory.

    ``training`` holds provenance (data fingerprint, file lists, timings); ``extra``
    is merged into model.json top level. Written to a hidden staging directory and
    renamed, so a crash never leaves a half-written version that looks loadable.
    """
    _check_name("category", category)
    version = version or new_version_name()
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in detector.state_tensors().items()}
    tmp = _staging_dir(Path(models_dir), category, detector.name, version)
    from safetensors.torch import save_file

    save_file(tensors, str(tmp / TENSORS_FILE))
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "type": detector.name,
        "category": category,
        "version": version,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": detector.get_config(),
        "weights": detector.describe(),
        "threshold": calibrator.threshold,
        "calibration": calibrator.to_dict(),
        "training": training or {},
        "metrics": {},
        "library_versions": library_versions(),
        "tensors": {k: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")} for k, v in tensors.items()},
        "tensors_sha256": file_sha256(tmp / TENSORS_FILE),
    }
    meta.update(extra or {})
    _write_json(tmp / MODEL_JSON, meta)
    return _commit_dir(tmp, Path(models_dir) / category / detector.name / version)


def save_ensemble(
    models_dir: str | Path,
    category: str,
    ensemble: Ensemble,
    calibrator: Calibrator,
    training: dict[str, Any] | None = None,
    version: str | None = None,
) -> Path:
    """Write an ensemble version (model.json only: weights, member versions, calibration)."""
    _check_name("category", category)
    version = version or new_version_name()
    tmp = _staging_dir(Path(models_dir), category, ENSEMBLE, version)
    meta = {
        "format_version": FORMAT_VERSION,
        "type": ENSEMBLE,
        "category": category,
        "version": version,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": {},
        "ensemble": ensemble.to_dict(),
        "weights": {},
        "threshold": calibrator.threshold,
        "calibration": calibrator.to_dict(),
        "training": training or {},
        "metrics": {},
        "library_versions": library_versions(),
    }
    _write_json(tmp / MODEL_JSON, meta)
    return _commit_dir(tmp, Path(models_dir) / category / ENSEMBLE / version)


def update_metrics(version_dir: str | Path, metrics: dict[str, Any]) -> None:
    """Store evaluation metrics in a version's model.json (atomic replace)."""
    version_dir = Path(version_dir)
    meta = read_metadata(version_dir)
    meta["metrics"] = metrics
    meta["evaluated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    tmp = version_dir.parent / f".{version_dir.name}.{secrets.token_hex(4)}.json"
    _write_json(tmp, meta)
    os.replace(tmp, version_dir / MODEL_JSON)


# ---------------------------------------------------------------- loading


def read_metadata(version_dir: str | Path) -> dict[str, Any]:
    """Read and validate ``model.json`` (structure only); raises :class:`ModelError`."""
    path = Path(version_dir) / MODEL_JSON
    if not path.is_file():
        raise ModelError(path, "missing model.json; not a model version directory")
    if path.stat().st_size > _MAX_JSON_BYTES:
        raise ModelError(path, f"model.json is larger than {_MAX_JSON_BYTES} bytes; refused")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(path, f"not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise ModelError(path, f"expected a JSON object, got {type(meta).__name__}")
    for key, typ in _REQUIRED_KEYS.items():
        if key not in meta:
            raise ModelError(path, f"missing key '{key}'")
        if not isinstance(meta[key], typ) or isinstance(meta[key], bool):
            raise ModelError(path, f"key '{key}' has the wrong type ({type(meta[key]).__name__})")
    if meta["format_version"] != FORMAT_VERSION:
        raise ModelError(path, f"unsupported format_version {meta['format_version']} (expected {FORMAT_VERSION})")
    known = set(DETECTOR_TYPES) | set(_REGISTERED) | {ENSEMBLE}
    if meta["type"] not in known:
        raise ModelError(path, f"unknown model type '{meta['type']}' (known: {', '.join(sorted(known))})")
    if meta["type"] != ENSEMBLE:
        if not isinstance(meta.get("tensors"), dict) or not isinstance(meta.get("tensors_sha256"), str):
            raise ModelError(path, "missing tensor manifest ('tensors' and 'tensors_sha256')")
    elif not isinstance(meta.get("ensemble"), dict):
        raise ModelError(path, "missing key 'ensemble'")
    if not isinstance(meta.get("metrics", {}), dict):
        raise ModelError(path, "key 'metrics' has the wrong type")
    return meta


def _check_directory(version_dir: Path, expected: set[str]) -> None:
    if not version_dir.is_dir():
        raise ModelError(version_dir, "model version directory does not exist")
    unexpected = sorted(p.name for p in version_dir.iterdir() if p.name not in expected)
    if unexpected:
        raise ModelError(
            version_dir,
            f"unexpected file(s) {', '.join(unexpected)} in the model directory; only "
            f"{' and '.join(sorted(expected))} are allowed (pickle files are never loaded); refused",
        )


def _load_tensors(path: Path, meta: dict[str, Any]) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise ModelError(path, "missing tensors file")
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelError(path, f"not a valid safetensors file ({exc})") from exc
    manifest = meta["tensors"]
    missing = sorted(set(manifest) - set(tensors))
    extra = sorted(set(tensors) - set(manifest))
    if missing or extra:
        raise ModelError(path, f"tensors do not match model.json: missing {missing}, unexpected {extra}")
    for name, spec in manifest.items():
        t = tensors[name]
        shape = spec.get("shape") if isinstance(spec, dict) else None
        dtype = spec.get("dtype") if isinstance(spec, dict) else None
        if list(t.shape) != shape or str(t.dtype).removeprefix("torch.") != dtype:
            raise ModelError(
                path, f"tensor '{name}' is {list(t.shape)} {t.dtype}, model.json says {shape} {dtype}"
            )
    if file_sha256(path) != meta["tensors_sha256"]:
        raise ModelError(path, "sha256 does not match model.json (file modified after training); refused")
    return tensors


def load_model(version_dir: str | Path) -> TrainedModel:
    """Load one version (detector or ensemble) with its calibrator; raises :class:`ModelError`."""
    version_dir = Path(version_dir)
    if not version_dir.is_dir():
        raise ModelError(version_dir, "model version directory does not exist")
    is_ensemble = (version_dir / MODEL_JSON).is_file() and version_dir.parent.name == ENSEMBLE
    _check_directory(version_dir, {MODEL_JSON} if is_ensemble else {MODEL_JSON, TENSORS_FILE})
    meta = read_metadata(version_dir)
    json_path = version_dir / MODEL_JSON
    if (meta["type"] == ENSEMBLE) != is_ensemble:
        raise ModelError(json_path, f"type '{meta['type']}' does not match its folder '{version_dir.parent.name}'")
    try:
        calibrator = Calibrator.from_dict(meta["calibration"])
    except CalibrationError as exc:
        raise ModelError(json_path, f"invalid calibration: {exc}") from exc
    if is_ensemble:
        try:
            detector: Detector | Ensemble = Ensemble.from_dict(meta["ensemble"])
        except EnsembleError as exc:
            raise ModelError(json_path, f"invalid ensemble: {exc}") from exc
        return TrainedModel(ENSEMBLE, detector, calibrator, meta, version_dir)
    tensors = _load_tensors(version_dir / TENSORS_FILE, meta)
    cls = detector_class(meta["type"])
    try:
        detector = cls(**meta["config"])
    except TypeError as exc:
        raise ModelError(json_path, f"config does not fit {cls.__name__}: {exc}") from exc
    except ValueError as exc:  # e.g. BackboneWeightsError when weights must be re-read
        raise ModelError(json_path, f"cannot rebuild {cls.__name__}: {exc}") from exc
    try:
        detector.load_state_tensors(tensors)
    except (KeyError, ValueError, RuntimeError) as exc:
        text = " ".join(str(exc).split())
        text = text if len(text) <= 400 else text[:400] + " ..."
        raise ModelError(version_dir / TENSORS_FILE, f"tensors do not fit {cls.__name__} (trained with another "
                         f"version of the code?): {text}") from exc
    return TrainedModel(meta["type"], detector, calibrator, meta, version_dir)
