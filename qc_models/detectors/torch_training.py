"""The epoch loop shared by the learned detectors: validation, early stopping, best-weights restore.

Both the autoencoder and the U-Net train on a few dozen good images, where
over-fitting starts early and unpredictably; monitoring a held-out loss and
keeping the best weights makes the number of epochs a ceiling rather than a
guess. The loop knows nothing about the model: callers pass a batch iterator
and a loss function. Also here: the train/validation split and the flip
augmentation that both detectors use.

Under a time limit the loop estimates from the epoch times how many epochs will
fit (:func:`epochs_that_fit`), so progress and the model's record say that the
clock, not early stopping or the epoch count, ended the run (large training sets).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from qc_models.detectors.base import ProgressCallback, no_progress

#: ``loss_fn(model, batch) -> scalar tensor`` (mean over the batch).
LossFn = Callable[[torch.nn.Module, Any], torch.Tensor]


@dataclass
class TrainingResult:
    """What happened during training; goes into ``describe()`` / ``model.json``."""

    epochs_run: int = 0
    best_epoch: int = 0  # the epoch whose weights were kept
    best_val_loss: float = float("nan")
    lowest_loss_epoch: int = 0  # differs from best_epoch only with ``keep_latest_within``
    early_stopped: bool = False
    time_limited: bool = False  # the time limit ended the run before its planned epochs
    monitored: str = "val"  # "val", or "train" when there was no validation set
    seconds: float = 0.0
    train_losses: list[float] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """JSON-able facts (losses rounded, so ``model.json`` stays small)."""
        return {
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "best_val_loss": round(float(self.best_val_loss), 6),
            "lowest_loss_epoch": self.lowest_loss_epoch,
            "early_stopped": self.early_stopped,
            "time_limited": self.time_limited,
            "monitored_loss": self.monitored,
            "train_seconds": round(self.seconds, 2),
        }


def _batch_size(batch: Any) -> int:
    first = batch[0] if isinstance(batch, (tuple, list)) else batch
    return int(first.shape[0])


def evaluate_loss(model: torch.nn.Module, batches: Sequence[Any], loss_fn: LossFn) -> float:
    """Sample-weighted mean of ``loss_fn`` over ``batches`` in eval mode without gradients."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            n = _batch_size(batch)
            total += float(loss_fn(model, batch)) * n
            count += n
    return total / max(count, 1)


def recompute_batchnorm(model: torch.nn.Module, batches: Sequence[torch.Tensor]) -> None:
    """Set every BatchNorm layer's running statistics to the average of ``batches``' statistics under
    the current weights ("precise BN").

    The running averages trail the weights by about ten batches; at a high learning rate the weights
    move so far in that time that the network in eval mode is not the one that was trained: a U-Net's
    validation loss went from 0.77 at epoch 42 (test image AUROC 0.94) to 2.93 at epoch 45 (0.63);
    recomputed statistics gave 0.80 and 0.92 at epoch 45 (docs/results.md, 2026-12-07, session 15).
    Only the running statistics change; the weights are trained the same, epoch for epoch (which epoch
    early stopping keeps may differ, since validation sees the recomputed statistics).
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or not batches:
        return
    was_training = model.training
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    model.train()
    with torch.no_grad():
        for x in batches:
            model(x)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)


def epochs_that_fit(planned: int, done: int, elapsed: float, per_epoch: float, max_seconds: float | None) -> int:
    """Total epochs a run will reach: ``planned``, or fewer when ``max_seconds`` ends it first.

    The loop checks the clock after each epoch and stops once past the limit, so the run
    reaches ``done + ceil(remaining / per_epoch)`` epochs, and ends now when no time remains.
    """
    if max_seconds is None or per_epoch <= 0:
        return planned
    remaining = max_seconds - elapsed
    return min(planned, done + max(0, math.ceil(remaining / per_epoch)))


def train_with_early_stopping(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train_batches: Callable[[int], Iterable[Any]],
    loss_fn: LossFn,
    val_batches: Sequence[Any] | None,
    epochs: int,
    patience: int,
    min_rel_improvement: float = 1e-3,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    max_seconds: float | None = None,
    progress: ProgressCallback | None = None,
    label: str = "training",
    min_epochs: int = 0,
    before_validation: Callable[[torch.nn.Module], None] | None = None,
    keep_latest_within: float = 0.0,
) -> TrainingResult:
    """Train for up to ``epochs`` epochs; stop after ``patience`` epochs without improvement.

    ``train_batches(epoch)`` yields the batches of one epoch. The monitored loss is
    the validation loss (or the epoch's mean training loss when ``val_batches`` is
    empty); an epoch counts as an improvement when it beats the best by more than
    ``min_rel_improvement`` (relative); it never stops early before ``min_epochs`` (a
    network stuck on a plateau at the start can still leave it). ``max_seconds`` caps the wall time. The
    best weights are restored into ``model`` before returning. Progress reports the epochs the
    run is expected to reach (fewer than ``epochs`` once the epoch times show that ``max_seconds``
    ends it first); ``time_limited`` records that the clock ended it.

    Not done: shortening the learning-rate schedule to the epochs that fit. On 400 good carpet
    images (both networks cut by the 240 s limit) it gave the autoencoder image / pixel AUROC
    0.936 / 0.937 -> 0.938 / 0.948 but the U-Net 0.921 / 0.954 -> 0.814 / 0.813 (docs/results.md).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if patience < 1:
        raise ValueError(f"patience must be >= 1, got {patience}")
    report = progress or no_progress
    result = TrainingResult(monitored="val" if val_batches else "train")
    if keep_latest_within < 0:
        raise ValueError(f"keep_latest_within must be >= 0, got {keep_latest_within}")
    best_state: dict[str, torch.Tensor] | None = None
    best = kept = float("inf")
    since_best = 0
    start = time.perf_counter()
    first_epoch_seconds = 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        total, count = 0.0, 0
        for batch in train_batches(epoch):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model, batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{label}: loss became {float(loss)} at epoch {epoch}; try a lower lr")
            loss.backward()
            optimizer.step()
            n = _batch_size(batch)
            total += float(loss.detach()) * n
            count += n
        if scheduler is not None:
            scheduler.step()
        if before_validation is not None:
            before_validation(model)
        train_loss = total / max(count, 1)
        result.train_losses.append(train_loss)
        monitored = evaluate_loss(model, val_batches, loss_fn) if val_batches else train_loss
        if val_batches:
            result.val_losses.append(monitored)
        result.epochs_run = epoch
        improved = monitored < best * (1.0 - min_rel_improvement) or best_state is None
        if improved:
            best, since_best = monitored, 0
            result.lowest_loss_epoch = epoch
        else:
            since_best += 1
        if improved or (keep_latest_within > 0 and monitored <= best * (1.0 + keep_latest_within)):
            kept, result.best_epoch = monitored, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elapsed = time.perf_counter() - start
        if epoch == 1:
            first_epoch_seconds = elapsed
        # Later epochs predict the rest better than the first (warm-up, allocations).
        per_epoch = (elapsed - first_epoch_seconds) / (epoch - 1) if epoch > 1 else elapsed
        expected = epochs_that_fit(epochs, epoch, elapsed, per_epoch, max_seconds)
        limit = f" of {epochs} planned (time limit {max_seconds:g} s)" if expected < epochs else ""
        report(f"{label}: epoch {epoch}/{expected}{limit}, {result.monitored} loss {monitored:.4f}",
               epoch / expected)
        if since_best >= patience and epoch >= min_epochs:
            result.early_stopped = epoch < epochs
            break
        if max_seconds is not None and elapsed > max_seconds:
            result.time_limited = epoch < epochs
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.best_val_loss = kept
    result.seconds = time.perf_counter() - start
    report(f"{label}: done after {result.epochs_run} epochs", 1.0)
    return result


# ---------------------------------------------------------------- split and augmentation


def split_train_val(n: int, val_fraction: float, seed: int, min_train: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random split of ``range(n)`` into train and validation indices.

    The validation part is empty when it would hold no image or leave fewer than
    ``min_train`` images to train on.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(val_fraction * n))
    if n_val < 1 or n - n_val < min_train:
        return np.sort(order), np.array([], dtype=np.int64)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def choose_flips(images: torch.Tensor, mode: str) -> list[int]:
    """Which flips (tensor dims: -1 horizontal, -2 vertical) keep images "normal".

    ``mode`` is ``"none"``, ``"flips"`` (both) or ``"auto"``: a flip is kept when the
    mean image is about as symmetric under it as the image set's noise allows. That
    accepts textures and symmetric or freely rotated objects, and refuses aligned
    asymmetric parts, where a flipped good part would look like a defect.
    """
    if mode == "none":
        return []
    if mode == "flips":
        return [-1, -2]
    if mode != "auto":
        raise ValueError(f"augment must be 'auto', 'flips' or 'none', got {mode!r}")
    n = images.shape[0]
    if n < 2:
        return []
    mean = images.mean(dim=0)
    spread = float((images - mean).pow(2).mean().sqrt())
    allowed = 0.35 * spread + 3.0 * spread / np.sqrt(n)
    return [d for d in (-1, -2) if float((mean - mean.flip(d)).pow(2).mean().sqrt()) < allowed]


def random_flips(generator: torch.Generator, flips: Sequence[int], *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Flip each sample along each allowed dim with probability 1/2; all ``tensors`` get the same flips."""
    out = list(tensors)
    n = out[0].shape[0]
    for d in flips:
        sel = torch.rand(n, generator=generator) < 0.5
        out = [torch.where(sel.view(-1, *([1] * (t.dim() - 1))), t.flip(d), t) for t in out]
    return tuple(out)
