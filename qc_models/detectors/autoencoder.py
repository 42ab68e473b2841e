"""Convolutional autoencoder: anomalies are what a model of good images cannot reconstruct.

Trained on good images only, through a narrow spatial bottleneck (16x16 at 128 px), so it
learns to redraw normal structure but not defects; optionally (``denoise > 0``) some
inputs carry synthetic anomalies while the target stays clean (DRAEM's reconstructive half).

The anomaly map combines the SSIM error (local structure) with the squared *blurred*
difference (colour and brightness shifts; blurring cancels the texture detail a small
network never redraws exactly), taken after a shrunk whitening of the residual's colour
(``colour_shrinkage``, :mod:`qc_models.detectors.colour`) so that a stain of another hue
counts, not only brightness. Each component is standardised per pixel on the good
training images (always-hard edges and borders do not dominate), then smoothed; the
image score is a tail mean of the map, so a small defect is not averaged away.

Textures whose good items differ as a whole in colour redraw each image minus its own
mean colour (``centring="auto"``, the U-Net's rule, textures only). Parts whose defects are
shapes (a bent tab) need pose alignment (``align=True``, ``qc train --align auto``).
The measurements behind each choice and default are in ``docs/detector_design.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from qc_models.detectors import map_ops
from qc_models.detectors.alignment import shows_objects
from qc_models.detectors.colour import (
    AUTO_CENTRING_SHARE,
    DEFAULT_SHRINKAGE,
    between_image_colour_share,
    shrunk_whitening,
)
from qc_models.detectors.base import (
    NotFittedError,
    ProgressCallback,
    images_to_tensor,
)
from qc_models.detectors.learned import LearnedMapDetector
from qc_models.detectors.synthetic_anomalies import add_synthetic_anomalies
from qc_models.detectors.torch_training import choose_flips, random_flips
from qc_models.runtime import configure_torch


#: Input centring: ``none``, or ``subtract``: the network redraws each image minus its own mean colour
#: (plus mid-grey). The detector also takes ``auto`` (see the module docstring).
CENTRINGS = ("none", "subtract")


def centre_colour(x: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` images in [0, 1] minus their own mean colour, shifted to mid-grey and clipped to [0, 1]."""
    return (x - x.mean(dim=(2, 3), keepdim=True) + 0.5).clamp(0.0, 1.0)


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True))


def _up(cin: int, cout: int) -> nn.Sequential:
    # Upsample + 3x3 conv rather than a transposed conv: no checkerboard pattern in the error map.
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(0.2, inplace=True),
    )


class AutoencoderNet(nn.Module):
    """Encoder of ``depth`` stride-2 convs, a 1x1 bottleneck of ``latent_channels``, mirrored decoder.

    No skip connections: everything must pass the bottleneck at ``1/2**depth`` resolution,
    i.e. ``latent_channels`` numbers per ``2**depth``-pixel square, too few to copy a defect.
    One conv per stage keeps training at 128 px to a few ms per image on a CPU core.
    """

    def __init__(self, base_channels: int = 16, latent_channels: int = 32, depth: int = 4) -> None:
        super().__init__()
        chans = [min(base_channels * 2**i, 128) for i in range(depth)]
        self.encoder = nn.Sequential(*[_down(cin, c) for cin, c in zip([3, *chans[:-1]], chans)])
        self.bottleneck = nn.Sequential(nn.Conv2d(chans[-1], latent_channels, 1), nn.Tanh())
        dec_out = [*reversed(chans[:-1])]
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, chans[-1], 1),
            nn.LeakyReLU(0.2, inplace=True),
            *[_up(cin, c) for cin, c in zip(reversed(chans), dec_out)],
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(chans[0], 3, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(self.bottleneck(self.encoder(x))))


class ConvAutoencoder(LearnedMapDetector):
    """Reconstruction-error detector (``name = "cae"``); see the module docstring."""

    name = "cae"

    def __init__(
        self,
        image_size: int = 128,
        epochs: int = 120,
        batch_size: int = 16,
        lr: float = 2e-3,
        val_fraction: float = 0.15,
        patience: int = 30,
        seed: int = 0,
        base_channels: int = 16,
        latent_channels: int = 32,
        depth: int = 3,
        ssim_weight: float = 0.5,
        colour_sigma: float = 3.0,
        colour_shrinkage: float = DEFAULT_SHRINKAGE,
        smoothing_sigma: float = 2.0,
        score_fraction: float = 0.002,
        augment: str = "none",
        denoise: float = 0.5,
        max_train_seconds: float | None = None,
        align: bool = False,
        centring: str = "auto",
    ) -> None:
        if centring not in (*CENTRINGS, "auto"):
            raise ValueError(f"centring must be 'auto' or one of {CENTRINGS}, got {centring!r}")
        if image_size % (2**depth) != 0:
            raise ValueError(f"image_size ({image_size}) must be a multiple of 2**depth ({2**depth})")
        if not 0.0 <= ssim_weight <= 1.0:
            raise ValueError(f"ssim_weight must be in [0, 1], got {ssim_weight}")
        if not 0.0 <= denoise <= 1.0:
            raise ValueError(f"denoise must be in [0, 1], got {denoise}")
        self._set_training_params(image_size, epochs, batch_size, lr, val_fraction, patience, seed,
                                  smoothing_sigma, score_fraction, augment, max_train_seconds, align)
        self.base_channels = int(base_channels)
        self.latent_channels = int(latent_channels)
        self.depth = int(depth)
        self.ssim_weight = float(ssim_weight)
        self.colour_sigma = float(colour_sigma)
        if not (np.isfinite(colour_shrinkage) and colour_shrinkage > 0):
            raise ValueError(f"colour_shrinkage must be a finite number > 0, got {colour_shrinkage}")
        self.colour_shrinkage = float(colour_shrinkage)
        #: 3x3 whitening of the blurred colour residual (identity: plain squared RGB difference).
        self.colour_whitening_: torch.Tensor = torch.eye(3)
        self.denoise = float(denoise)
        #: ``auto`` or a fixed :data:`CENTRINGS` mode; the mode in use is ``centring_`` once fitted.
        self.centring = centring
        self.centring_: str | None = None
        self.colour_share_: float | None = None
        self.error_stats_: torch.Tensor | None = None  # (2, 2, size, size): per-pixel mean, spread of each component

    # ------------------------------------------------------------ persistence

    def _new_net(self) -> AutoencoderNet:
        return AutoencoderNet(self.base_channels, self.latent_channels, self.depth)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        if self.error_stats_ is None:
            raise NotFittedError("ConvAutoencoder is not fitted")
        out = self._net_tensors()
        out["error_stats"] = self.error_stats_.clone().contiguous()
        out["colour_whitening"] = self.colour_whitening_.clone().contiguous()
        out["input_centring"] = torch.tensor([float(self.centring_ == "subtract")])
        return out

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> "ConvAutoencoder":
        configure_torch()
        expected = (2, 2, self.image_size, self.image_size)
        if "error_stats" not in tensors or tuple(tensors["error_stats"].shape) != expected:
            raise KeyError(f"cae state: tensor 'error_stats' missing or not of shape {expected}")
        whitening = tensors.get("colour_whitening")
        if whitening is None:  # saved before the whitening: plain squared RGB difference
            whitening = torch.eye(3)
        elif tuple(whitening.shape) != (3, 3) or not whitening.is_floating_point() or not bool(torch.isfinite(whitening).all()):
            raise KeyError("cae state: tensor 'colour_whitening' is not a finite 3x3 float matrix")
        self.centring_ = self._saved_centring(tensors.get("input_centring"))
        self._load_net(self._new_net(), tensors)
        self.colour_whitening_ = whitening.float().clone()
        self.error_stats_ = tensors["error_stats"].float().clone()
        return self

    def _saved_centring(self, flag: torch.Tensor | None) -> str:
        """The centring a saved network was trained with (artifacts from before it existed: ``none``)."""
        if flag is None:
            mode = "none"
        elif tuple(flag.shape) != (1,) or not flag.is_floating_point() or float(flag[0]) not in (0.0, 1.0):
            raise KeyError("cae state: tensor 'input_centring' is not a single 0/1 float")
        else:
            mode = "subtract" if float(flag[0]) == 1.0 else "none"
        if self.centring != "auto" and self.centring != mode:
            raise ValueError(f"cae state: configured with centring '{self.centring}' but the network was trained "
                             f"with '{mode}'")
        return mode

    def _resolve_centring(self, x: torch.Tensor, images: Sequence[np.ndarray]) -> str:
        """The centring to train with: as configured, or for ``auto`` from the good images' colour spread,
        on textures only (a part's image mean is mostly its background: docs/detector_design.md)."""
        self.colour_share_ = between_image_colour_share(x.permute(0, 2, 3, 1))
        if self.centring != "auto":
            return self.centring
        if self.colour_share_ < AUTO_CENTRING_SHARE or self.align:
            return "none"
        return "none" if shows_objects(images) else "subtract"

    def _input(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Images as the network sees them: resized, in [0, 1], centred when ``centring_`` says so."""
        x = images_to_tensor(images, self.image_size, normalize=False)
        return centre_colour(x) if self.centring_ == "subtract" else x

    def describe(self) -> dict[str, Any]:
        out = {**self._training_description(), "input_centring": self.centring_ or self.centring}
        if self.colour_share_ is not None:
            out["between_image_colour_share"] = round(self.colour_share_, 3)
        return out

    # ------------------------------------------------------------ training

    def fit(
        self,
        images: Sequence[np.ndarray],
        progress: ProgressCallback | None = None,
        validation_images: Sequence[np.ndarray] | None = None,
    ) -> "ConvAutoencoder":
        """Train on good images; early stopping on ``validation_images``, else on a seeded ``val_fraction`` of them.

        Everything learned (network, colour whitening, per-pixel error statistics) comes from the
        training part only, so the validation images score like unseen good images.
        """
        rng, gen, images, train_idx, val_idx = self._begin_fit(images, validation_images)
        x = images_to_tensor(images, self.image_size, normalize=False)
        self.centring_ = self._resolve_centring(x[train_idx], [images[i] for i in train_idx])
        if self.centring_ == "subtract":
            x = centre_colour(x)
        x_train, x_val = x[train_idx], x[val_idx]
        self.flips_ = choose_flips(x_train, self.augment)
        net = self._new_net()
        train_u8 = self._to_uint8(x_train) if self.denoise > 0 else []

        def batches(epoch: int):
            order = torch.randperm(len(x_train), generator=gen)
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                if len(idx) < 2 and len(order) > 1:
                    continue  # BatchNorm needs two samples
                target = x_train[idx]
                inp = target
                if self.denoise > 0:
                    inp = self._corrupt([train_u8[i] for i in idx.tolist()], rng, target)
                inp, target = random_flips(gen, self.flips_, inp, target)
                yield inp, target

        val_batches = [
            (x_val[s : s + self.batch_size],) * 2 for s in range(0, len(x_val), self.batch_size)
        ]
        self._train(net, batches, self._loss, val_batches, progress)
        residual = self._colour_residual(x_train)  # (N, 3, h, w) with the plain RGB metric
        self.colour_whitening_ = shrunk_whitening(residual.permute(0, 2, 3, 1).reshape(-1, 3), self.colour_shrinkage).float()
        self.error_stats_ = self._error_stats(x_train)
        return self

    @staticmethod
    def _to_uint8(x: torch.Tensor) -> list[np.ndarray]:
        return list((x.permute(0, 2, 3, 1) * 255).round().clamp(0, 255).to(torch.uint8).numpy())

    def _corrupt(self, imgs: list[np.ndarray], rng: np.random.Generator, clean: torch.Tensor) -> torch.Tensor:
        bad, _ = add_synthetic_anomalies(imgs, rng, probability=self.denoise)
        out = clean.clone()
        for i, (a, b) in enumerate(zip(imgs, bad)):
            if a is not b:
                out[i] = torch.from_numpy(b).permute(2, 0, 1).float() / 255.0
        return out

    def _loss(self, net: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        inp, target = batch
        recon = net(inp)
        l2 = map_ops.squared_error(recon, target).mean()
        ssim = map_ops.ssim_error(recon, target).mean()
        return l2 + ssim

    def _components(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 2, h, w)``: SSIM error and squared whitened blurred colour difference, in batches."""
        assert self.net_ is not None
        out = []
        with torch.no_grad():
            for s in range(0, len(x), 32):
                xb = x[s : s + 32]
                recon = self.net_(xb)
                residual = torch.einsum("ij,njhw->nihw", self.colour_whitening_, map_ops.gaussian_blur(xb - recon, self.colour_sigma))
                out.append(torch.stack([map_ops.ssim_error(recon, xb), residual.pow(2).sum(dim=1)], dim=1))
        return torch.cat(out)

    def _colour_residual(self, x: torch.Tensor) -> torch.Tensor:
        """Blurred reconstruction difference ``(N, 3, h, w)``, unwhitened: what the whitening is fitted on."""
        assert self.net_ is not None
        with torch.no_grad():
            return torch.cat([map_ops.gaussian_blur(x[s : s + 32] - self.net_(x[s : s + 32]), self.colour_sigma)
                              for s in range(0, len(x), 32)])

    def _error_stats(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel mean and spread of each component on good images, smoothed over space.

        The spread is floored at half its image-wide mean so a pixel that happened to
        vary little in a few dozen images cannot blow up.
        """
        comp = self._components(x)
        sigma = max(2.0, self.image_size / 32)
        mean = map_ops.gaussian_blur(comp.mean(dim=0, keepdim=True), sigma)[0]
        spread = map_ops.gaussian_blur(comp.std(dim=0, keepdim=True), sigma)[0] if len(x) > 1 else mean
        floor = 0.5 * spread.mean(dim=(1, 2), keepdim=True) + 1e-8
        return torch.stack([mean, torch.maximum(spread, floor)])

    # ------------------------------------------------------------ inference

    def anomaly_maps_internal(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Smoothed anomaly maps at the internal resolution ``(N, size, size)``."""
        if self.net_ is None or self.error_stats_ is None:
            raise NotFittedError("ConvAutoencoder is not fitted; call fit() or load_state_tensors()")
        configure_torch()
        comp = self._components(self._input(images))
        z = (comp - self.error_stats_[0]) / self.error_stats_[1]
        w = self.ssim_weight
        maps = (w * z[:, 0] + (1 - w) * z[:, 1]).clamp_min(0.0)
        return map_ops.gaussian_blur(maps, self.smoothing_sigma)
