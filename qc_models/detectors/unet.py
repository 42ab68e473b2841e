"""U-Net defect segmentation trained without labelled defects.

Training on the test set's masks would leak it into the model and users rarely have
labelled defects, so the network learns to segment synthetic anomalies pasted onto
good training images (DRAEM / CutPaste style, :mod:`qc_models.detectors.synthetic_anomalies`).
A user's labelled defect folder (``extra_defects``) is mixed in when given: one in five
held out for early stopping, the rest oversampled, and early stopping then waits for
half the epochs (``min_epochs``). Defect pixels are rare, so the loss is focal loss plus
soft Dice; early stopping watches held-out good images, each seen clean and with one
fixed synthetic anomaly (options, off by default: BatchNorm statistics recomputed after
every epoch, ``norm_batches``; the latest epoch within a fraction of the lowest validation
loss kept, ``keep_latest_within``). The anomaly map is the smoothed defect probability, the image
score its maximum (or a tail mean, ``score_fraction > 0``).

Beside the image the network may see, each chosen by measurement:

* for parts turned to one pose (``align=True``): the difference from the median aligned
  good part (``reference``), since a bent tab is "a tab" on its own; training images are
  then pose-jittered (:func:`pose_jitter`) and anomalies pasted on the part only
  (``anomalies_on_part``);
* for items whose good examples differ as a whole in colour (``centring="auto"``, rule
  :data:`~qc_models.detectors.colour.AUTO_CENTRING_SHARE`): the input minus its own mean
  colour, so a local change stands out whatever the item's colour (not for aligned parts,
  which already see their difference from the typical part).

The measurements behind each choice and the defaults (150 epochs, patience 30) are in
``docs/detector_design.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from qc_models.detectors import map_ops
from qc_models.detectors.alignment import part_mask
from qc_models.detectors.base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    NotFittedError,
    ProgressCallback,
    images_to_tensor,
)
from qc_models.detectors.colour import AUTO_CENTRING_SHARE, between_image_colour_share
from qc_models.detectors.learned import LearnedMapDetector
from qc_models.detectors.reference import check_reference_tensor, median_reference, reference_sample
from qc_models.detectors.synthetic_anomalies import add_synthetic_anomaly, add_synthetic_anomaly_on
from qc_models.detectors.torch_training import choose_flips, random_flips
from qc_models.runtime import configure_torch


#: Input centring of the network: ``none``, or ``add``: the input and the input minus its own mean
#: colour. The detector also takes ``auto`` (see the module docstring).
CENTRINGS = ("none", "add")

# ``centring="auto"`` adds the centred input when the good images' mean colours hold at least
# AUTO_CENTRING_SHARE of their pixel colour variance (qc_models.detectors.colour, shared with the CAE).


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net (Ronneberger et al. 2015) behind a stride-2 stem, one defect logit per pixel.

    The stem halves the resolution first: the encoder/decoder then cost a quarter,
    and the logits are upsampled back, which loses nothing visible once the map is smoothed.
    With a ``reference`` image (``(1, 3, H, W)``, normalised like the input) the network also
    sees ``input - reference``: for parts turned to one pose, the difference from the typical
    good part, which a shape change (a bent tab) shows and the image alone does not.
    """

    def __init__(
        self, base_channels: int = 16, depth: int = 3, reference: torch.Tensor | None = None, centred: bool = False
    ) -> None:
        super().__init__()
        chans = [base_channels * 2**i for i in range(depth + 1)]
        #: Whether the network also sees its input minus the input's own mean colour.
        self.centred = bool(centred)
        in_channels = 3 * (1 + (reference is not None) + self.centred)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, chans[0], 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(chans[0]), nn.ReLU(inplace=True)
        )
        self.downs = nn.ModuleList([_block(chans[0], chans[0])] + [_block(chans[i], chans[i + 1]) for i in range(depth)])
        self.ups = nn.ModuleList([_block(chans[i + 1] + chans[i], chans[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(chans[0], 1, 1)
        # Start from "defects are rare" (p ~ 1 %), as RetinaNet does: stable, faster focal-loss training.
        nn.init.constant_(self.head.bias, -4.6)
        self.reference: torch.Tensor | None
        if reference is None:
            self.reference = None
        else:
            self.register_buffer("reference", reference.detach().clone().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        parts = [x, x - x.mean(dim=(2, 3), keepdim=True)] if self.centred else [x]
        if self.reference is not None:
            if self.reference.shape[-2:] != size:
                raise ValueError(f"U-Net input is {tuple(size)} px, its reference image {tuple(self.reference.shape[-2:])}")
            parts.append(x - self.reference)
        x = torch.cat(parts, 1) if len(parts) > 1 else x
        x = self.stem(x)
        skips = []
        for i, down in enumerate(self.downs):
            x = down(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for up, skip in zip(self.ups, reversed(skips[:-1])):
            x = up(torch.cat([F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False), skip], 1))
        return F.interpolate(self.head(x), size=size, mode="bilinear", align_corners=False)[:, 0]


def focal_dice_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, dice_weight: float = 1.0) -> torch.Tensor:
    """Focal loss (Lin et al. 2017) + soft Dice over the whole batch; both cope with rare defect pixels.

    Dice is computed over the batch, so images without a defect do not make it undefined.
    """
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = torch.exp(-bce)
    focal = ((1.0 - p_t) ** gamma * bce).mean()
    prob = torch.sigmoid(logits)
    dice = 1.0 - (2.0 * (prob * target).sum() + 1.0) / (prob.sum() + target.sum() + 1.0)
    return focal + dice_weight * dice


#: The reference image inside the saved network tensors (see :class:`UNet`).
_REFERENCE_KEY = "net.reference"


#: Largest turn (degrees) and shift (share of the side) of :func:`pose_jitter`.
POSE_JITTER_DEGREES = 3.0
POSE_JITTER_SHIFT = 0.015


def pose_jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``image`` turned by up to 3 degrees and shifted by up to 1.5 % of its side (reflected borders).

    Pose estimates are off by a little, and a U-Net comparing with a reference image
    must learn that the thin difference along every edge this causes is normal.
    """
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), float(rng.uniform(-POSE_JITTER_DEGREES, POSE_JITTER_DEGREES)), 1.0)
    m[:, 2] += rng.uniform(-POSE_JITTER_SHIFT, POSE_JITTER_SHIFT, 2) * np.array([w, h])
    return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def _normalise(x_uint8: torch.Tensor) -> torch.Tensor:
    """``(N, H, W, 3)`` uint8 -> ImageNet-normalised ``(N, 3, H, W)`` float."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x_uint8.permute(0, 3, 1, 2).float() / 255.0 - mean) / std


class UNetDetector(LearnedMapDetector):
    """Synthetic-anomaly-trained segmentation detector (``name = "unet"``); see the module docstring."""

    name = "unet"
    score_upper_bound = 1.0  # image scores and maps are (smoothed) probabilities

    def __init__(
        self,
        image_size: int = 128,
        epochs: int = 150,
        batch_size: int = 8,
        lr: float = 5e-3,
        val_fraction: float = 0.15,
        patience: int = 30,
        seed: int = 0,
        extra_defects: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
        base_channels: int = 16,
        depth: int = 3,
        anomaly_probability: float = 0.5,
        focal_gamma: float = 2.0,
        dice_weight: float = 1.0,
        smoothing_sigma: float = 1.0,
        score_fraction: float = 0.0,
        augment: str = "none",
        max_train_seconds: float | None = None,
        min_epochs: int | None = None,
        align: bool = False,
        reference: bool | None = None,
        centring: str = "auto",
        anomalies_on_part: bool | None = None,
        norm_batches: int = 0,
        keep_latest_within: float = 0.0,
    ) -> None:
        if image_size % (2 ** (depth + 1)) != 0:
            raise ValueError(f"image_size ({image_size}) must be a multiple of 2**(depth+1) ({2 ** (depth + 1)})")
        if not 0.0 < anomaly_probability <= 1.0:
            raise ValueError(f"anomaly_probability must be in (0, 1], got {anomaly_probability}")
        if norm_batches < 0 or keep_latest_within < 0:
            raise ValueError(f"norm_batches and keep_latest_within must be >= 0, got {norm_batches}, {keep_latest_within}")
        self._set_training_params(image_size, epochs, batch_size, lr, val_fraction, patience, seed,
                                  smoothing_sigma, score_fraction, augment, max_train_seconds, align)
        self.extra_defects = self._check_extra(extra_defects)
        #: No early stop before this epoch (None: see ``effective_min_epochs``).
        self.min_epochs = None if min_epochs is None else int(min_epochs)
        self.base_channels = int(base_channels)
        self.depth = int(depth)
        self.anomaly_probability = float(anomaly_probability)
        self.focal_gamma = float(focal_gamma)
        self.dice_weight = float(dice_weight)
        #: Show the network its input's difference from the median good image (None: when aligned).
        self.reference = None if reference is None else bool(reference)
        if centring not in (*CENTRINGS, "auto"):
            raise ValueError(f"centring must be 'auto' or one of {CENTRINGS}, got {centring!r}")
        #: ``auto`` or a fixed :data:`CENTRINGS` mode; the mode in use is ``centring_`` once fitted.
        self.centring = centring
        self.centring_: str | None = None
        self.colour_share_: float | None = None
        #: Paste synthetic anomalies only on the segmented part (None: exactly when comparing with a reference).
        self.anomalies_on_part = None if anomalies_on_part is None else bool(anomalies_on_part)
        self.on_part_: bool | None = None
        #: Batches of training-like images the BatchNorm statistics are recomputed on after every
        #: epoch (0: keep the running averages; :func:`~qc_models.detectors.torch_training.recompute_batchnorm`).
        #: Off by default, like ``keep_latest_within`` (the latest epoch within that fraction of the lowest
        #: validation loss is kept): together they helped the U-Net alone but cost the ensemble
        #: (docs/results.md, 2026-12-07, session 15).
        self.norm_batches = int(norm_batches)
        self.keep_latest_within = float(keep_latest_within)

    @staticmethod
    def _check_extra(pairs: Sequence[tuple[np.ndarray, np.ndarray]] | None) -> list[tuple[np.ndarray, np.ndarray]]:
        out: list[tuple[np.ndarray, np.ndarray]] = []
        for i, pair in enumerate(pairs or []):
            if len(pair) != 2:
                raise ValueError(f"extra_defects[{i}]: expected an (image, mask) pair")
            img, mask = pair
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ValueError(f"extra_defects[{i}]: image must be (H, W, 3) uint8, got {img.shape} {img.dtype}")
            if mask.shape != img.shape[:2]:
                raise ValueError(f"extra_defects[{i}]: mask shape {mask.shape} does not match image {img.shape[:2]}")
            out.append((img, mask.astype(bool)))
        return out

    # ------------------------------------------------------------ persistence

    def get_config(self) -> dict[str, Any]:
        """``extra_defects`` is training data, not configuration: it is left out (None)."""
        return {**super().get_config(), "extra_defects": None}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return self._net_tensors()

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> "UNetDetector":
        """Restore the network; one saved with a reference image (``net.reference``) gets it back."""
        ref = tensors.get(_REFERENCE_KEY)
        if ref is not None:
            ref = check_reference_tensor(ref, self.image_size, f"UNet state: {_REFERENCE_KEY}")
        if ref is None and self.reference:
            raise ValueError(f"UNet state: configured with a reference image but '{_REFERENCE_KEY}' is missing")
        self.centring_ = self._saved_centring(tensors, ref is not None)
        reference = None if ref is None else torch.zeros_like(ref)
        self._load_net(UNet(self.base_channels, self.depth, reference, self.centring_ == "add"), tensors)
        return self

    def _saved_centring(self, tensors: dict[str, torch.Tensor], reference: bool) -> str:
        """The centring a saved network was trained with, read from its first layer's input channels.

        ``add`` widens the input by 3 channels (artifacts from before centring existed carry
        ``auto`` by default and were trained uncentred, with the narrower input).
        """
        stem = tensors.get("net.stem.0.weight")
        if stem is None or stem.ndim != 4:
            raise ValueError("UNet state: 'net.stem.0.weight' is missing or not a convolution weight")
        plain = 3 * (1 + reference)
        channels = int(stem.shape[1])
        if channels == plain + 3:
            if self.centring == "none":
                raise ValueError("UNet state: the network takes the centred input too, but centring is 'none'")
            return "add"
        if channels != plain:
            raise ValueError(f"UNet state: the network takes {channels} input channels, "
                             f"expected {plain} or {plain + 3}")
        if self.centring == "add":
            raise ValueError("UNet state: configured with centring 'add' but the network takes no centred input")
        return "none"

    @property
    def uses_reference(self) -> bool:
        """Whether the (fitted or to-be-fitted) network compares its input with a reference image."""
        if self.net_ is not None:
            return getattr(self.net_, "reference", None) is not None
        return self.align if self.reference is None else self.reference

    def describe(self) -> dict[str, Any]:
        out = {**self._training_description(), "extra_defects_used": len(self.extra_defects),
               "reference_image": self.uses_reference, "input_centring": self.centring_ or self.centring,
               "anomalies_on_part": self.on_part_}
        if self.colour_share_ is not None:
            out["between_image_colour_share"] = round(self.colour_share_, 3)
        return out

    def _resolve_centring(self, train_good: np.ndarray, reference: bool) -> str:
        """The centring to train with: as configured, or for ``auto`` from the good images' colour spread
        (off when the network compares with a reference part: docs/detector_design.md)."""
        self.colour_share_ = between_image_colour_share(torch.from_numpy(train_good))
        if self.centring != "auto":
            return self.centring
        return "add" if self.colour_share_ >= AUTO_CENTRING_SHARE and not reference else "none"

    # ------------------------------------------------------------ training

    def _aligned_extra(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The labelled defects, each turned to the training pose with its mask (as is when alignment is off)."""
        if self.aligner_ is None:
            return self.extra_defects
        out = []
        for img, mask in self.extra_defects:
            pose = self.aligner_.pose(img)
            out.append((self.aligner_.warp(img, pose), self.aligner_.align_mask(mask, pose)))
        return out

    def _resize_u8(self, images: Sequence[np.ndarray]) -> np.ndarray:
        x = images_to_tensor(images, self.image_size, normalize=False)
        return (x.permute(0, 2, 3, 1) * 255).round().clamp(0, 255).to(torch.uint8).numpy()

    def _synthesise(self, good: np.ndarray, idx: np.ndarray, rng: np.random.Generator, p: float, jitter: bool = False):
        """Images ``good[idx]``, each with a synthetic anomaly with probability ``p``, and their masks.

        ``jitter`` first turns and shifts each image a little (:func:`pose_jitter`).
        """
        imgs = good[idx].copy()
        masks = np.zeros(imgs.shape[:3], dtype=np.float32)
        for j in range(len(idx)):
            if jitter:
                imgs[j] = pose_jitter(imgs[j], rng)
            if rng.random() < p:
                src = good[int(rng.integers(len(good)))] if len(good) > 1 else None
                if self.on_part_:
                    part = part_mask(imgs[j], grow=max(1, round(self.image_size / 64)))
                    imgs[j], m = add_synthetic_anomaly_on(imgs[j], rng, part, source=src,
                                                          min_pixels=max(4, self.image_size**2 // 2048))
                else:
                    imgs[j], m = add_synthetic_anomaly(imgs[j], rng, source=src)
                masks[j] = m
        return torch.from_numpy(imgs), torch.from_numpy(masks)

    def fit(
        self,
        images: Sequence[np.ndarray],
        progress: ProgressCallback | None = None,
        validation_images: Sequence[np.ndarray] | None = None,
    ) -> "UNetDetector":
        """Train on good images (plus ``extra_defects``); see the module docstring.

        Early stopping runs on ``validation_images`` (with synthetic anomalies) when given, else on a
        seeded ``val_fraction`` of ``images``; they are never trained on nor pasted into training images.
        """
        rng, gen, images, train_idx, val_idx = self._begin_fit(images, validation_images)
        extra_defects = self._aligned_extra()
        good = self._resize_u8(images)
        train_good = good[train_idx]
        use_reference = self.align if self.reference is None else self.reference
        self.on_part_ = use_reference if self.anomalies_on_part is None else self.anomalies_on_part
        # The median of the fit images (validation ones stay unseen); flipping the input would
        # break its correspondence with the reference, so no flips then.
        reference = (median_reference(_normalise(torch.from_numpy(np.stack(reference_sample(train_good)))))
                     if use_reference else None)
        self.flips_ = [] if use_reference else choose_flips(
            torch.from_numpy(train_good).permute(0, 3, 1, 2).float() / 255.0, self.augment)
        extra_x = extra_m = None
        extra_train, extra_val = np.arange(0), np.arange(0)
        if extra_defects:
            extra_x = torch.from_numpy(self._resize_u8([p[0] for p in extra_defects]))
            size = (self.image_size, self.image_size)
            extra_m = torch.cat([
                F.interpolate(torch.from_numpy(p[1]).float()[None, None], size=size, mode="bilinear", align_corners=False)[0]
                for p in extra_defects
            ]).gt(0.5).float()
            if len(val_idx):  # hold some out only when there is a validation set for them to join
                extra_train, extra_val = self._split_extra(len(extra_x), rng)
            else:
                extra_train = np.arange(len(extra_x))
        repeats = self._extra_repeats(len(train_good), len(extra_train))

        def batches(epoch: int):
            order = torch.randperm(len(train_good), generator=gen).numpy()
            if len(extra_train):  # extra defects are indices past the good images, oversampled
                order = np.concatenate([order, len(train_good) + np.tile(extra_train, repeats)])
                order = order[torch.randperm(len(order), generator=gen).numpy()]
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                if len(idx) < 2 and len(order) > 1:
                    continue  # BatchNorm needs two samples
                gi, ei = idx[idx < len(train_good)], idx[idx >= len(train_good)] - len(train_good)
                x, y = self._synthesise(train_good, gi, rng, self.anomaly_probability, jitter=reference is not None)
                if len(ei):
                    x, y = torch.cat([x, extra_x[ei]]), torch.cat([y, extra_m[ei]])
                x, y = random_flips(gen, self.flips_, _normalise(x), y)
                yield x, y

        val_batches = []
        if len(val_idx):
            vrng = np.random.default_rng(self.seed + 7919)  # fixed: the same anomalies every epoch
            clean = torch.from_numpy(good[val_idx])
            bad, bad_m = self._synthesise(good, val_idx, vrng, 1.0)
            vx = torch.cat([clean, bad])
            vy = torch.cat([torch.zeros(clean.shape[:3]), bad_m])
            if len(extra_val):  # real defects held out from training steer early stopping too
                vx, vy = torch.cat([vx, extra_x[extra_val]]), torch.cat([vy, extra_m[extra_val]])
            val_batches = [(_normalise(vx[s : s + self.batch_size]), vy[s : s + self.batch_size])
                           for s in range(0, len(vx), self.batch_size)]

        # Fixed training-like batches for the BatchNorm statistics, from their own generator so the
        # training run itself is the same with or without them.
        norm_batches: list[torch.Tensor] = []
        if self.norm_batches > 0:
            nrng = np.random.default_rng(self.seed + 104_729)
            nidx = nrng.permutation(len(train_good))[: self.norm_batches * self.batch_size]
            nx, _ = self._synthesise(train_good, nidx, nrng, self.anomaly_probability, jitter=reference is not None)
            norm_batches = [_normalise(nx[s : s + self.batch_size]) for s in range(0, len(nx), self.batch_size)
                            if len(nx[s : s + self.batch_size]) > 1]

        self.centring_ = self._resolve_centring(train_good, reference is not None)
        net = UNet(self.base_channels, self.depth, reference, self.centring_ == "add")
        self._train(net, batches, self._loss, val_batches, progress, norm_batches, self.keep_latest_within)
        return self

    @property
    def effective_min_epochs(self) -> int:
        """``min_epochs``, or by default half the epochs with labelled defects and none without."""
        if self.min_epochs is not None:
            return self.min_epochs
        return self.epochs // 2 if self.extra_defects else 0

    @staticmethod
    def _split_extra(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Labelled defects for training and for early stopping (1 in 5 held out once there are 5)."""
        order = rng.permutation(n)
        n_val = n // 5
        return np.sort(order[n_val:]), np.sort(order[:n_val])

    @staticmethod
    def _extra_repeats(n_good: int, n_extra: int) -> int:
        """How often each labelled defect is shown per epoch: about one real defect per two good images.

        A few labelled defects among a hundred good images would otherwise be a rounding error in
        the loss next to the synthetic anomalies.
        """
        return max(1, round(0.5 * n_good / n_extra)) if n_extra else 0

    def _loss(self, net: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return focal_dice_loss(net(x), y, self.focal_gamma, self.dice_weight)

    # ------------------------------------------------------------ inference

    def anomaly_maps_internal(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Smoothed defect probabilities at the internal resolution ``(N, size, size)``."""
        if self.net_ is None:
            raise NotFittedError("UNetDetector is not fitted; call fit() or load_state_tensors()")
        configure_torch()
        x = images_to_tensor(images, self.image_size, normalize=True)
        with torch.no_grad():
            probs = torch.cat([torch.sigmoid(self.net_(x[s : s + 32])) for s in range(0, len(x), 32)])
        return map_ops.gaussian_blur(probs, self.smoothing_sigma)
