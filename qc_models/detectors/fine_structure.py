"""Thin-line strength per patch: what random-init filters average away in scratches and cracks.

A scratch 1-3 px wide covers a few percent of an 8-px patch, and random-init ``layer1``/``layer2``
filters mix it with the texture around it: PatchCore found synthetic wood scratches at image AUROC
0.81 and metal-nut scratches at 0.54, while every other defect type of those categories scored
0.93-1.00 (docs/results.md). Each pixel's brightness minus its Gaussian-blurred surroundings is
positive on bright thin lines and negative on dark ones; the strongest of each inside a patch and
its neighbourhood gives two channels per patch. PatchCore whitens them like the colour channels and
scales them to ``fine_weight`` x the network features' variance
(:func:`qc_models.detectors.patchcore_defaults.default_fine_weight`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qc_models.detectors.map_ops import gaussian_blur

#: Channels of the fine-structure features: bright-line and dark-line strength.
FINE_CHANNELS = 2
#: Sigma (px at 256 px) of the surroundings a pixel's brightness is compared with: lines up to
#: about 2 sigma wide stand out, broad grain and lighting gradients do not.
FINE_SIGMA_AT_256 = 2.0


def fine_sigma(image_size: int) -> float:
    """:data:`FINE_SIGMA_AT_256` scaled with the working size, so the same lines count at any size."""
    return FINE_SIGMA_AT_256 * image_size / 256


def line_strength(x: torch.Tensor, grid: tuple[int, int], sigma: float, neighbourhood: int) -> torch.Tensor:
    """``(B, h, w, 2)`` bright- and dark-line strength of images ``x`` ``(B, 3, S, S)`` on the patch grid.

    Brightness is the channel mean; its difference from the ``sigma``-blurred brightness is
    max-pooled onto ``grid`` (a line anywhere in the patch counts in full) and over the
    ``neighbourhood`` x ``neighbourhood`` patches around each (the network features' neighbourhood).
    """
    grey = x.mean(dim=1, keepdim=True)
    detail = grey - gaussian_blur(grey, sigma)
    lines = F.adaptive_max_pool2d(torch.cat([detail, -detail], dim=1), grid)
    if neighbourhood > 1:
        lines = F.max_pool2d(lines, neighbourhood, stride=1, padding=neighbourhood // 2)
    return lines.permute(0, 2, 3, 1)
