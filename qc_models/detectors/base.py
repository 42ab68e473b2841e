"""The one interface every anomaly detector implements, in the scikit-learn spirit.

Parameters go to ``__init__``; ``fit`` learns from good images only and sets
attributes ending in ``_``; ``predict`` returns raw image scores (higher = more
anomalous) and per-pixel anomaly maps at each input image's own resolution.
Persisting goes through ``get_config`` (JSON-able) and ``state_tensors``
(name -> tensor, saved with safetensors), never pickle.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from qc_models.detectors.alignment import Pose, PoseAligner

#: ``progress(message, fraction)`` with fraction in [0, 1]; used by the CLI bar and the dashboard.
ProgressCallback = Callable[[str, float], None]

#: ImageNet statistics, used by every backbone-based and learned detector for input normalisation.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class NotFittedError(RuntimeError):
    """``predict`` was called before ``fit``."""


@dataclass
class Prediction:
    """Raw detector output for a batch of N images."""

    image_scores: np.ndarray  # (N,) float64, raw, higher = more anomalous
    anomaly_maps: list[np.ndarray] = field(default_factory=list)  # N x (H_i, W_i) float32

    def __len__(self) -> int:
        return int(self.image_scores.shape[0])


def no_progress(message: str, fraction: float) -> None:
    """Default progress callback: does nothing."""


class Detector(ABC):
    """Base class of all detectors. Subclasses set ``name`` and implement the abstract methods."""

    name: ClassVar[str] = "detector"
    #: Highest score (and map value) the detector can produce, e.g. 1.0 for probabilities; None = unbounded.
    #: Calibration never puts a threshold at or beyond it (:func:`qc_models.calibration.conservative_threshold`).
    score_upper_bound: ClassVar[float | None] = None

    @abstractmethod
    def fit(self, images: Sequence[np.ndarray], progress: ProgressCallback | None = None) -> "Detector":
        """Learn normality from good ``(H, W, 3)`` uint8 RGB images; returns ``self``."""

    @abstractmethod
    def predict(self, images: Sequence[np.ndarray]) -> Prediction:
        """Score images; anomaly maps come back at each input image's resolution."""

    def get_config(self) -> dict[str, Any]:
        """Every ``__init__`` parameter from the attribute of the same name (scikit-learn's ``get_params``).

        Detectors keep each argument as ``self.<name>`` (resolved defaults included), so
        ``cls(**get_config())`` rebuilds an identical, unfitted detector; tuples become lists (JSON).
        """
        names = [n for n in inspect.signature(type(self).__init__).parameters if n != "self"]
        values = {n: getattr(self, n) for n in names}
        return {n: list(v) if isinstance(v, tuple) else v for n, v in values.items()}

    @abstractmethod
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Everything learned by ``fit``, as named tensors (safetensors-compatible)."""

    @abstractmethod
    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> "Detector":
        """Restore what ``state_tensors`` returned; returns ``self``, ready to predict."""

    def describe(self) -> dict[str, Any]:
        """Extra facts for ``model.json`` (e.g. backbone weights used); override when useful."""
        return {}

    # ---------------------------------------------------------- pose alignment (``align=True``)
    # Detectors that take an ``align`` parameter call these around their own fit/predict, so the
    # alignment travels inside the detector (and its artifact) and every caller gets it.

    #: Turn and centre parts to the training pose before scoring (:mod:`qc_models.detectors.alignment`).
    align: bool = False
    #: The fitted pose template, or None when alignment is off.
    aligner_: PoseAligner | None = None

    def _fit_pose(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Fit the pose template when ``align`` is on; returns the images to learn from."""
        if not self.align:
            self.aligner_ = None
            return list(images)
        self.aligner_ = PoseAligner().fit(images)
        return self.aligner_.align(images)[0]

    def _pose_inputs(self, images: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[Pose] | None]:
        """The images as the detector should see them, and their poses (None when alignment is off)."""
        if self.aligner_ is None:
            return list(images), None
        return self.aligner_.align(images)

    @staticmethod
    def _restore_maps(maps: list[np.ndarray], poses: list[Pose] | None) -> list[np.ndarray]:
        """Anomaly maps of aligned images warped back onto the input images' pixels."""
        if poses is None:
            return maps
        return [PoseAligner.restore_map(m, p) for m, p in zip(maps, poses)]

    def _pose_tensors(self) -> dict[str, torch.Tensor]:
        return {} if self.aligner_ is None else self.aligner_.tensors()

    def _load_pose_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.aligner_ = PoseAligner.from_tensors(tensors) if self.align else None


# ---------------------------------------------------------------- shared pre/post-processing


def images_to_tensor(
    images: Sequence[np.ndarray],
    size: int,
    normalize: bool = True,
) -> torch.Tensor:
    """Stack images into an ``(N, 3, size, size)`` float tensor, resized with area/bilinear.

    With ``normalize`` the ImageNet mean/std are applied, otherwise values are in [0, 1].
    """
    if len(images) == 0:
        raise ValueError("no images given")
    out = torch.empty((len(images), 3, size, size), dtype=torch.float32)
    for i, img in enumerate(images):
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"image {i}: expected (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
        if not img.flags.writeable or not img.flags.c_contiguous:
            img = np.array(img, order="C")  # torch refuses to wrap read-only buffers silently
        t = torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
        if t.shape[-2:] != (size, size):
            mode = "area" if min(t.shape[-2:]) > size else "bilinear"
            t = F.interpolate(t, size=(size, size), mode=mode, **({} if mode == "area" else {"align_corners": False}))
        out[i] = t[0]
    if normalize:
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        out = (out - mean) / std
    return out


def maps_to_input_sizes(maps: torch.Tensor, images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Resize ``(N, h, w)`` maps bilinearly back to each image's ``(H_i, W_i)``."""
    out: list[np.ndarray] = []
    for i, img in enumerate(images):
        m = maps[i : i + 1].unsqueeze(1).float()
        h, w = img.shape[:2]
        if m.shape[-2:] != (h, w):
            m = F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)
        out.append(m[0, 0].cpu().numpy().astype(np.float32, copy=False))
    return out
