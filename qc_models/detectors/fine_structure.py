"""Thin-line strength per patch: what random-init filters average away in scratches and cracks.

A scratch 1-3 px wide covers a few percent of an 8-px patch, and random-init ``layer1``/``layer2``
filters mix it with the texture around it: PatchCore found synthetic wood scratches at image AUROC
0.81 and metal-nut scratches at 0.54, while every other defect type of those categories scored
0.93-1.00 (docs/results.md). Each pixel's brightness minus its Gaussian-blurred surroundings is
positive on bright thin lines and negative on dark ones; the strongest of each inside a patch and
its neighbourhood gives two channels per patch. PatchCore whitens them like the colour channels and
scales them to ``fine_weight`` x the network features' variance
(:func:`qc_models.detectors.patchcore_defaults.default_fine_weight`).

Parts turned to one pose (``align=True``) have lines of their own in fixed places: the machined
rings of a metal nut, the thread of a screw. There a scratch is a line where no good part has one,
so the channels become the *excess* over the good parts' envelope (:class:`LineEnvelope`): each
pixel's line strength minus the strongest any aligned good image showed within ``radius`` px of
it, averaged over the patch (a line counts by its length, a stray pixel hardly).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F

from qc_models.detectors.map_ops import gaussian_blur

#: Channels of the fine-structure features: bright-line and dark-line strength.
FINE_CHANNELS = 2
#: Sigma (px at 256 px) of the surroundings a pixel's brightness is compared with: lines up to
#: about 2 sigma wide stand out, broad grain and lighting gradients do not.
FINE_SIGMA_AT_256 = 2.0
#: Tolerance (px at 256 px) of the good parts' line envelope: alignment is good to about a pixel.
ENVELOPE_RADIUS_AT_256 = 1


def fine_sigma(image_size: int) -> float:
    """:data:`FINE_SIGMA_AT_256` scaled with the working size, so the same lines count at any size."""
    return FINE_SIGMA_AT_256 * image_size / 256


def envelope_radius(image_size: int) -> int:
    """:data:`ENVELOPE_RADIUS_AT_256` scaled with the working size, at least 1 px."""
    return max(1, round(ENVELOPE_RADIUS_AT_256 * image_size / 256))


def line_maps(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``(B, 2, S, S)`` bright- and dark-line strength per pixel: brightness minus its ``sigma``-blurred surroundings."""
    grey = x.mean(dim=1, keepdim=True)
    detail = grey - gaussian_blur(grey, sigma)
    return torch.cat([detail, -detail], dim=1)


def line_strength(x: torch.Tensor, grid: tuple[int, int], sigma: float, neighbourhood: int) -> torch.Tensor:
    """``(B, h, w, 2)`` bright- and dark-line strength of images ``x`` ``(B, 3, S, S)`` on the patch grid.

    Brightness is the channel mean; its difference from the ``sigma``-blurred brightness is
    max-pooled onto ``grid`` (a line anywhere in the patch counts in full) and over the
    ``neighbourhood`` x ``neighbourhood`` patches around each (the network features' neighbourhood).
    """
    return _neighbourhood_max(F.adaptive_max_pool2d(line_maps(x, sigma), grid), neighbourhood)


def line_excess(x: torch.Tensor, envelope: torch.Tensor, grid: tuple[int, int], sigma: float,
                neighbourhood: int) -> torch.Tensor:
    """``(B, h, w, 2)`` line strength of aligned images ``x`` above the good parts' ``envelope`` ``(1 or B, 2, S, S)``,
    averaged per patch of ``grid`` and max-pooled over the ``neighbourhood``."""
    if envelope.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"line envelope is {tuple(envelope.shape[-2:])} px, the input {tuple(x.shape[-2:])}")
    excess = torch.relu(line_maps(x, sigma) - envelope)
    return _neighbourhood_max(F.adaptive_avg_pool2d(excess, grid), neighbourhood)


def _neighbourhood_max(lines: torch.Tensor, neighbourhood: int) -> torch.Tensor:
    if neighbourhood > 1:
        lines = F.max_pool2d(lines, neighbourhood, stride=1, padding=neighbourhood // 2)
    return lines.permute(0, 2, 3, 1)


def _dilate(lines: torch.Tensor, radius: int) -> torch.Tensor:
    return F.max_pool2d(lines, 2 * radius + 1, stride=1, padding=radius) if radius > 0 else lines


class LineEnvelope:
    """The strongest bright and dark line each pixel shows in aligned good images, widened by ``radius`` px.

    Every training image lies inside the envelope, so its excess is 0 by construction and says
    nothing about how much a new good part exceeds it. :meth:`held_out_excess` measures that by
    cross-fitting: each image against the envelope of the *other* half of the images. PatchCore
    whitens the channels on those held-out excesses (docs/results.md, session 18).
    """

    def __init__(self, sigma: float, radius: int) -> None:
        self.sigma = float(sigma)
        self.radius = int(radius)
        self._halves: list[torch.Tensor | None] = [None, None]
        #: ``(1, 2, S, S)`` envelope of all images, set by :meth:`fit`.
        self.envelope_: torch.Tensor | None = None

    def fit(self, batches: Iterable[torch.Tensor]) -> "LineEnvelope":
        """Running per-pixel maxima of the images (``(B, 3, S, S)`` batches), even and odd images apart."""
        index = 0
        for x in batches:
            lines = line_maps(x, self.sigma)
            for half in (0, 1):
                part = lines[(half - index) % 2 :: 2]
                if len(part):
                    top = part.max(dim=0, keepdim=True).values
                    seen = self._halves[half]
                    self._halves[half] = top if seen is None else torch.maximum(seen, top)
            index += len(x)
        if self._halves[0] is None:
            raise ValueError("LineEnvelope.fit needs at least one image")
        both = self._halves[0] if self._halves[1] is None else torch.maximum(self._halves[0], self._halves[1])
        self.envelope_ = _dilate(both, self.radius).contiguous()
        return self

    def held_out_excess(self, batches: Callable[[], Iterable[torch.Tensor]], grid: tuple[int, int],
                        neighbourhood: int) -> torch.Tensor:
        """``(N * h * w, 2)`` excess features of each image over the other half's envelope (empty for one image)."""
        if self._halves[1] is None or self._halves[0] is None:
            return torch.zeros((0, FINE_CHANNELS))
        other = [_dilate(self._halves[1], self.radius), _dilate(self._halves[0], self.radius)]
        out, index = [], 0
        for x in batches():  # each image against the envelope of the half it is not in, a batch at a time
            envelopes = torch.cat([other[(index + i) % 2] for i in range(len(x))])
            out.append(line_excess(x, envelopes, grid, self.sigma, neighbourhood))
            index += len(x)
        return torch.cat(out).reshape(-1, FINE_CHANNELS)
