"""The typical good part as a reference image, for parts turned to one pose.

Judged patch by patch, a bent tab is just "a tab" and a missing feature just "background":
each looks normal on its own and is wrong only for where it is. Once parts are aligned
(:mod:`qc_models.detectors.alignment`), the pixel-wise median of the aligned good images is
the typical part, and an image's difference from it shows such defects. PatchCore appends the
local mean of that difference to its patch features; the U-Net reads it as extra input channels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F

T = TypeVar("T")

#: The median is taken over at most this many images (evenly spaced), to bound memory on big sets.
MAX_REFERENCE_IMAGES = 256


def reference_sample(items: Sequence[T]) -> list[T]:
    """At most :data:`MAX_REFERENCE_IMAGES` of ``items``, evenly spaced: pick them before converting to tensors."""
    n = len(items)
    if n <= MAX_REFERENCE_IMAGES:
        return list(items)
    return [items[int(i)] for i in np.linspace(0, n - 1, MAX_REFERENCE_IMAGES).round()]


def median_reference(images: torch.Tensor) -> torch.Tensor:
    """Pixel-wise median ``(1, C, H, W)`` of ``(N, C, H, W)`` images (pass a :func:`reference_sample`)."""
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"median_reference needs a non-empty (N, C, H, W) batch, got shape {tuple(images.shape)}")
    return images.median(dim=0).values[None].contiguous()


def local_difference(x: torch.Tensor, reference: torch.Tensor, grid: tuple[int, int], neighbourhood: int) -> torch.Tensor:
    """Mean of ``x - reference`` per patch of ``grid``, averaged over ``neighbourhood`` patches: ``(B, h, w, C)``.

    The same pooling as PatchCore's local colour, so both describe one patch's surroundings.
    """
    if reference.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"reference image is {tuple(reference.shape[-2:])} px, the input {tuple(x.shape[-2:])}")
    diff = F.adaptive_avg_pool2d(x - reference, grid)
    if neighbourhood > 1:
        diff = F.avg_pool2d(diff, neighbourhood, stride=1, padding=neighbourhood // 2, count_include_pad=False)
    return diff.permute(0, 2, 3, 1)


def check_reference_tensor(tensor: torch.Tensor, size: int, name: str) -> torch.Tensor:
    """``tensor`` as a float ``(1, 3, size, size)`` reference image, or ValueError naming ``name``."""
    if (tensor.ndim != 4 or tuple(tensor.shape) != (1, 3, size, size) or not tensor.is_floating_point()
            or not bool(torch.isfinite(tensor).all())):
        raise ValueError(f"'{name}' must be a finite (1, 3, {size}, {size}) float tensor, got {tuple(tensor.shape)}")
    return tensor.float().contiguous()
