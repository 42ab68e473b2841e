"""Own-image matching: a patch that looks like other patches of its own image is less anomalous.

Why: the memory bank holds the good images' patches, but goods vary as a whole from image to
image (a leather hide of a rarer colour, a tile of another glaze, a coarser grain). A test image
unlike most of the bank then scores high *everywhere*, and its largest patch distance says more
about the whole image than about any defect. A defect, by contrast, is local: nothing else in
its image looks like it. So each patch is also matched against the patches of its own image
outside a square window of ``radius`` patches around it (the window keeps a defect from matching
itself), and its score becomes the smaller of the two distances, but never less than ``floor`` x
the memory-bank distance: a defect that repeats within an image (several spots of the same
contamination, one large stain) keeps at least that share of its score.

Measured with random-init resnet18 PatchCore (102 fit images, 8 synthetic categories, the large
test splits; image / pixel AUROC, plain -> radius 4, floor 0.7): leather 0.731 / 0.688 ->
0.777 / 0.701, tile 0.676 / 0.727 -> 0.724 / 0.802, wood 0.925 / 0.899 -> 0.931 / 0.916, carpet,
bottle, metal_nut, screw and capsule within 0.006 image AUROC; pixel AUROC carpet 0.954 -> 0.956,
metal_nut 0.931 -> 0.896, screw 0.932 -> 0.944, capsule 0.903 -> 0.916. Radius 3 / 6 gave a mean
image AUROC within 0.002 of radius 4; without the floor (0) pixel AUROC fell on metal_nut (0.881)
and carpet (0.949); the 5th instead of the nearest own-image patch was worse on tile (0.693 at
radius 3); more in docs/results.md. PatchCore leaves it off for aligned parts, which it
compares with the typical part at each place (see ``default_self_match_radius``). The cost is
one (patches x patches) matrix product per image, about a tenth of the memory-bank search.
"""

from __future__ import annotations

import torch

from qc_models.detectors.nearest_neighbours import CHUNK_ELEMENTS, squared_norms

#: Default half-width (in patches, at 256 px) of the window a patch may not match inside its own image.
DEFAULT_RADIUS = 4
#: Default smallest share of the memory-bank distance a patch keeps, however well it matches its image.
DEFAULT_FLOOR = 0.7


def check_self_match(radius: int, floor: float) -> None:
    """ValueError unless ``radius >= 0`` (0: off) and ``0 <= floor <= 1``."""
    if radius < 0 or not 0.0 <= floor <= 1.0:
        raise ValueError(f"own-image matching needs radius >= 0 and floor in [0, 1], got {radius} and {floor}")


def self_match_tensor(radius: int, floor: float) -> torch.Tensor:
    """The settings as saved with a model: ``[radius, floor]``."""
    return torch.tensor([float(radius), float(floor)], dtype=torch.float64)


def self_match_from_tensor(saved: torch.Tensor | None, key: str) -> tuple[int, float]:
    """``(radius, floor)`` from :func:`self_match_tensor`'s output; ``None`` (a model saved before
    own-image matching existed, whose threshold was fitted without it) gives radius 0: off."""
    if saved is None:
        return 0, DEFAULT_FLOOR
    if saved.numel() != 2 or not saved.is_floating_point() or not bool(torch.isfinite(saved).all()):
        raise ValueError(f"PatchCore state: '{key}' must be two finite numbers (radius, floor)")
    radius, floor = (float(v) for v in saved.reshape(-1))
    if radius < 1 or radius != int(radius) or not 0.0 <= floor <= 1.0:
        raise ValueError(f"PatchCore state: '{key}' has radius {radius} and floor {floor}")
    return int(radius), floor


def own_image_distances(features: torch.Tensor, radius: int, chunk_elements: int = CHUNK_ELEMENTS) -> torch.Tensor:
    """Distance of every patch to the nearest patch of its own image outside its window.

    ``features`` is ``(h, w, D)`` (one image, on the patch grid); returns ``(h, w)``, ``inf`` where
    the window covers the whole grid. Rows are processed in chunks of about ``chunk_elements``
    distances, so memory stays bounded for large images.
    """
    if features.ndim != 3:
        raise ValueError(f"expected (h, w, D) patch features, got shape {tuple(features.shape)}")
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    h, w, d = features.shape
    flat = features.reshape(h * w, d).float()
    flat = flat - flat.mean(0)  # centring keeps the norm expansion precise; distances are unchanged
    sq = squared_norms(flat)
    ys = torch.arange(h).repeat_interleave(w)
    xs = torch.arange(w).repeat(h)
    out = torch.empty(h * w)
    rows = max(1, chunk_elements // (h * w))
    for start in range(0, h * w, rows):
        stop = min(start + rows, h * w)
        block = torch.addmm(sq.unsqueeze(0), flat[start:stop], flat.t(), alpha=-2.0)
        inside = ((ys[start:stop, None] - ys[None]).abs() <= radius) & ((xs[start:stop, None] - xs[None]).abs() <= radius)
        block.masked_fill_(inside, float("inf"))
        out[start:stop] = block.min(dim=1).values.add_(sq[start:stop]).clamp_(min=0.0).sqrt_()
    return out.view(h, w)


def discount_by_own_image(bank_distances: torch.Tensor, own_distances: torch.Tensor, floor: float) -> torch.Tensor:
    """``max(min(bank, own), floor * bank)``: own-image matches lower a score by at most ``1 - floor``."""
    if not 0.0 <= floor <= 1.0:
        raise ValueError(f"floor must be in [0, 1], got {floor}")
    return torch.maximum(torch.minimum(bank_distances, own_distances), floor * bank_distances)
