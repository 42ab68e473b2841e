"""Post-processing shared by the learned detectors: smoothing, SSIM error, image scores.

Raw per-pixel errors are noisy; a small Gaussian blur turns isolated noise into
low values while keeping defect blobs, and a high quantile (rather than the mean)
keeps a small defect from being averaged away by the rest of the image.
All functions work on batches ``(N, h, w)`` or ``(N, C, h, w)`` torch tensors.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_kernel1d(sigma: float, truncate: float = 3.0) -> torch.Tensor:
    """Normalised 1-D Gaussian kernel of radius ``ceil(truncate * sigma)``."""
    radius = max(1, int(math.ceil(truncate * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(N, h, w)`` or ``(N, C, h, w)`` with reflect padding.

    Depthwise (grouped) convolutions: about 15x faster on CPU than one-channel convs.
    ``sigma <= 0`` returns the input unchanged.
    """
    if sigma <= 0:
        return x
    squeeze = x.dim() == 3
    t = x.unsqueeze(1) if squeeze else x
    c = t.shape[1]
    k = gaussian_kernel1d(sigma).to(t)
    r = k.numel() // 2
    mode = "reflect" if min(t.shape[-2:]) > r else "replicate"
    t = F.pad(t, (r, r, r, r), mode=mode)
    t = F.conv2d(t, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    t = F.conv2d(t, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return t[:, 0] if squeeze else t


def ssim_map(x: torch.Tensor, y: torch.Tensor, sigma: float = 1.5, data_range: float = 1.0) -> torch.Tensor:
    """Per-pixel SSIM of ``(N, C, h, w)`` images, averaged over channels -> ``(N, h, w)``.

    Gaussian-weighted local statistics (Wang et al. 2004); values in [-1, 1], 1 = identical.
    """
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    stats = gaussian_blur(torch.cat([x, y, x * x, y * y, x * y], dim=1), sigma)
    c = x.shape[1]
    mx, my, xx, yy, xy = stats.split(c, dim=1)
    vx = (xx - mx * mx).clamp_min(0)
    vy = (yy - my * my).clamp_min(0)
    cov = xy - mx * my
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean(dim=1)


def ssim_error(x: torch.Tensor, y: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """``(1 - SSIM) / 2`` per pixel, in [0, 1]: structural reconstruction error."""
    return (1.0 - ssim_map(x, y, sigma)) * 0.5


def squared_error(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Channel-mean squared error per pixel ``(N, h, w)``."""
    return (x - y).pow(2).mean(dim=1)


def top_fraction_score(maps: torch.Tensor, fraction: float = 0.001) -> torch.Tensor:
    """Image score = mean of each map's highest ``fraction`` of pixels -> ``(N,)`` float64.

    A tail mean behaves like a high quantile (``fraction=0.001`` ~ the 99.9 % quantile)
    but is less jumpy; ``fraction <= 0`` gives the maximum.
    """
    flat = maps.reshape(maps.shape[0], -1).float()
    if fraction <= 0:
        return flat.amax(dim=1).double()
    k = max(1, int(math.ceil(fraction * flat.shape[1])))
    return flat.topk(k, dim=1).values.mean(dim=1).double()
