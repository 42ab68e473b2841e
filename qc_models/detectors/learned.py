"""Shared plumbing of the detectors that train a small network (CAE, U-Net).

Both split good images into fit/validation sets (or take a validation set from the caller, which
then stays unseen but for choosing the epoch), train with AdamW + cosine decay
under early stopping, store the network as ``net.*`` tensors and turn an internal
anomaly map into an image score the same way; keeping that here means a fix to
one (e.g. BatchNorm or serialisation) reaches both.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from qc_models.detectors import map_ops
from qc_models.detectors.base import Detector, NotFittedError, Prediction, ProgressCallback, maps_to_input_sizes
from qc_models.detectors.torch_training import (
    TrainingResult,
    recompute_batchnorm,
    split_train_val,
    train_with_early_stopping,
)
from qc_models.runtime import configure_torch, seed_everything


class LearnedMapDetector(Detector):
    """Base for network detectors: subclasses set ``image_size``, ``seed``, ``val_fraction``, ``batch_size``,
    ``lr``, ``epochs``, ``patience``, ``max_train_seconds``, ``score_fraction`` and implement
    ``anomaly_maps_internal``."""

    net_: nn.Module | None
    training_: TrainingResult | None
    flips_: list[int]

    def _set_training_params(
        self,
        image_size: int,
        epochs: int,
        batch_size: int,
        lr: float,
        val_fraction: float,
        patience: int,
        seed: int,
        smoothing_sigma: float,
        score_fraction: float,
        augment: str,
        max_train_seconds: float | None,
        align: bool = False,
    ) -> None:
        """Store (type-normalised) the constructor parameters every network detector has; reset fit state."""
        self.image_size = int(image_size)
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.lr = float(lr)
        self.val_fraction = float(val_fraction)
        self.patience = int(patience)
        self.seed = int(seed)
        self.smoothing_sigma = float(smoothing_sigma)
        self.score_fraction = float(score_fraction)
        self.augment = augment
        self.max_train_seconds = None if max_train_seconds is None else float(max_train_seconds)
        self.align = bool(align)
        self.net_ = None
        self.training_ = None
        self.flips_ = []

    def _begin_fit(
        self, images: Sequence[np.ndarray], validation_images: Sequence[np.ndarray] | None = None
    ) -> tuple[np.random.Generator, torch.Generator, list[np.ndarray], np.ndarray, np.ndarray]:
        """Checks, pose template, seeding and the train/validation split shared by every network detector.

        Returns ``(rng, gen, images, train_idx, val_idx)``: ``images`` as the network sees them
        (aligned when ``align`` is on), indexed by both index arrays. Without ``validation_images``
        a seeded ``val_fraction`` of ``images`` drives early stopping; with them, every image in
        ``images`` is trained on and the given ones (aligned with the template of the others, which
        they never shape) only choose the epoch, so they stay fit to calibrate on.
        """
        configure_torch()
        if len(images) < 2:
            raise ValueError(f"{self.name}: need at least 2 good images to train, got {len(images)}")
        images = self._fit_pose(images)
        rng = seed_everything(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        if validation_images is None:
            train_idx, val_idx = split_train_val(len(images), self.val_fraction, self.seed)
        else:
            validation = self._pose_inputs(validation_images)[0] if len(validation_images) else []
            train_idx = np.arange(len(images))
            val_idx = np.arange(len(images), len(images) + len(validation))
            images = list(images) + list(validation)
        return rng, gen, list(images), train_idx, val_idx

    @property
    def effective_min_epochs(self) -> int:
        """Epochs before early stopping may end training (none by default; the U-Net overrides it)."""
        return 0

    def _train(
        self,
        net: nn.Module,
        batches: Callable[[int], Iterable[Any]],
        loss: Callable[[nn.Module, Any], torch.Tensor],
        val_batches: list[Any],
        progress: ProgressCallback | None,
        norm_batches: Sequence[torch.Tensor] = (),
        keep_latest_within: float = 0.0,
    ) -> None:
        """AdamW + cosine decay under early stopping; keeps the best weights in ``net_``.

        With ``norm_batches`` (training-like inputs) the BatchNorm statistics are recomputed on them
        after every epoch, before validation (:func:`recompute_batchnorm`); ``keep_latest_within``:
        see :func:`train_with_early_stopping`.
        """
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.epochs, eta_min=self.lr * 0.05)
        self.training_ = train_with_early_stopping(
            net, opt, batches, loss, val_batches, self.epochs, self.patience,
            scheduler=sched, max_seconds=self.max_train_seconds, progress=progress, label=self.name,
            min_epochs=self.effective_min_epochs,
            before_validation=(lambda model: recompute_batchnorm(model, norm_batches)) if len(norm_batches) else None,
            keep_latest_within=keep_latest_within,
        )
        self.net_ = net.eval()

    def _net_tensors(self) -> dict[str, torch.Tensor]:
        """The network as ``net.*`` tensors, plus the pose template when alignment is on."""
        if self.net_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted")
        out = {f"net.{k}": v.detach().cpu().contiguous() for k, v in self.net_.state_dict().items()}
        out.update(self._pose_tensors())
        return out

    def _load_net(self, net: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
        """Strict load of the ``net.*`` tensors (raises naming missing/unexpected keys)."""
        configure_torch()
        net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")}, strict=True)
        self._load_pose_tensors(tensors)
        self.net_ = net.eval()

    def _training_description(self) -> dict[str, Any]:
        out: dict[str, Any] = {"internal_size": self.image_size}
        if self.training_ is not None:
            out.update(self.training_.summary())
            out["flips"] = ["horizontal" if d == -1 else "vertical" for d in self.flips_]
        return out

    @abstractmethod
    def anomaly_maps_internal(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Smoothed anomaly maps at the internal resolution ``(N, size, size)``."""

    def predict(self, images: Sequence[np.ndarray]) -> Prediction:
        images, poses = self._pose_inputs(images)
        maps = self.anomaly_maps_internal(images)
        scores = map_ops.top_fraction_score(maps, self.score_fraction).numpy()
        return Prediction(image_scores=scores, anomaly_maps=self._restore_maps(maps_to_input_sizes(maps, images), poses))
