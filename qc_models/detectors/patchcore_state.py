"""The tensors a saved PatchCore holds besides its memory bank, and how each is checked on load.

The backbone is checked against its recorded sha256. The colour, reference and thin-line features
were added after the first artifacts were saved; each has a tensor whose presence (or absence) tells
how the model was fitted, so an older model loads and scores as it was calibrated. Every check names
the tensor that is wrong.
"""

from __future__ import annotations

from typing import Any

import torch

from qc_models.detectors import backbone as bb
from qc_models.detectors.fine_structure import FINE_CHANNELS

#: Prefix of the backbone parameters inside ``state_tensors`` (random-init or local weights only).
BACKBONE_PREFIX = "backbone."
SHA_KEY = "backbone_sha256"

#: Scale of the appended local-colour features; its presence marks artifacts that use padding/colour.
#: Since 2026-11-29 it is 1 (colour on) or 0 (off) and the colour transform is saved as ``COLOUR_TRANSFORM_KEY``.
COLOUR_KEY = "colour_scale"
#: 3x3 matrix applied to the local-colour features (shrunk whitening, see ``PatchCore._fit_colour_transform``).
COLOUR_TRANSFORM_KEY = "colour_transform"
#: Radius of the surroundings the local colour is relative to; artifacts saved before it existed lack it (absolute colour).
COLOUR_CONTEXT_KEY = "colour_context"
#: Channels of the local-colour features (mean R, G, B of the patch's neighbourhood).
COLOUR_CHANNELS = 3
#: Median aligned good image and the 3x3 map of the difference features (see ``default_reference_weight``).
REFERENCE_KEY = "reference_image"
REFERENCE_TRANSFORM_KEY = "reference_transform"


def colour_matrix(tensor: torch.Tensor, key: str) -> torch.Tensor:
    """A saved 3x3 transform of colour-like channels, or ValueError naming its tensor."""
    if tensor.shape != (COLOUR_CHANNELS, COLOUR_CHANNELS) or not tensor.is_floating_point() or not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"PatchCore state: '{key}' must be a finite 3x3 float matrix")
    return tensor.float().contiguous()


def colour_tensors(transform: torch.Tensor | None, context: int) -> dict[str, torch.Tensor]:
    """The colour settings to save: scale flag, transform and surroundings radius (when colour is on)."""
    out = {COLOUR_KEY: torch.tensor([0.0 if transform is None else 1.0], dtype=torch.float64)}
    if transform is not None:
        out[COLOUR_TRANSFORM_KEY] = transform.contiguous()
        if context > 0:
            out[COLOUR_CONTEXT_KEY] = torch.tensor([float(context)], dtype=torch.float64)
    return out


def saved_colour_context(saved: torch.Tensor | None) -> int:
    """The saved surroundings radius; absent (saved before it existed, absolute colour) gives 0."""
    if saved is None:
        return 0
    if saved.numel() != 1 or not saved.is_floating_point() or not bool(torch.isfinite(saved).all()):
        raise ValueError(f"PatchCore state: '{COLOUR_CONTEXT_KEY}' must be one finite number")
    radius = float(saved.reshape(()))
    if radius < 1 or radius != int(radius):
        raise ValueError(f"PatchCore state: '{COLOUR_CONTEXT_KEY}' must be a whole number >= 1, got {radius}")
    return int(radius)


def restore_colour(tensors: dict[str, torch.Tensor], colour_weight: float) -> tuple[bool, torch.Tensor | None, int]:
    """``(has_colour_settings, transform, context)`` of a saved model configured with ``colour_weight``.

    ``has_colour_settings`` is False for models saved before padding and colour existed (the plain
    paper embedding: the caller turns both off). Models saved before the whitening carry only a
    scalar scale, which becomes scale x identity.
    """
    colour = tensors.get(COLOUR_KEY)
    context = saved_colour_context(tensors.get(COLOUR_CONTEXT_KEY))
    if colour is None:
        if context > 0:
            raise ValueError(f"PatchCore state: '{COLOUR_CONTEXT_KEY}' present but the colour features are off")
        return False, None, 0
    if colour.numel() != 1 or not colour.is_floating_point() or not bool(torch.isfinite(colour).all()):
        raise ValueError(f"PatchCore state: '{COLOUR_KEY}' must be one finite number")
    scale = float(colour.reshape(()))
    if (scale > 0) != (colour_weight > 0):
        raise ValueError(f"PatchCore state: colour scale {scale} does not match the configured colour_weight {colour_weight}")
    transform = tensors.get(COLOUR_TRANSFORM_KEY)
    if transform is None:  # saved before the whitening: an isotropic scale
        matrix = scale * torch.eye(COLOUR_CHANNELS) if scale > 0 else None
    elif scale > 0:
        matrix = colour_matrix(transform, COLOUR_TRANSFORM_KEY)
    else:
        raise ValueError(f"PatchCore state: '{COLOUR_TRANSFORM_KEY}' present but the colour features are off")
    if context > 0 and matrix is None:
        raise ValueError(f"PatchCore state: '{COLOUR_CONTEXT_KEY}' present but the colour features are off")
    return True, matrix, context


def restore_reference(
    tensors: dict[str, torch.Tensor], reference_weight: float, bank_has_room: bool
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(reference image, transform)`` of a saved model, both None when it has no reference features.

    ``bank_has_room``: the memory bank is as wide as the configured features including the
    reference channels, so a missing reference is an error rather than a model saved before
    the reference features existed. The image itself is checked by the caller (it knows the size).
    """
    ref, transform = tensors.get(REFERENCE_KEY), tensors.get(REFERENCE_TRANSFORM_KEY)
    if ref is None and transform is None:
        if reference_weight > 0 and bank_has_room:
            raise ValueError(f"PatchCore state: '{REFERENCE_KEY}' missing (the memory bank has its channels)")
        return None, None
    if reference_weight <= 0:
        raise ValueError(f"PatchCore state: '{REFERENCE_KEY}' present but the reference features are off")
    if ref is None or transform is None:
        raise ValueError(f"PatchCore state: '{REFERENCE_KEY}' and '{REFERENCE_TRANSFORM_KEY}' must come together")
    return ref, colour_matrix(transform, REFERENCE_TRANSFORM_KEY)


#: 2x2 map of the fine-structure channels (see :mod:`qc_models.detectors.fine_structure`); models saved
#: before those channels existed lack it and score without them.
FINE_TRANSFORM_KEY = "fine_transform"
#: The good parts' ``(1, 2, S, S)`` line envelope of aligned models; models without it (not aligned, or
#: saved before session 18) score plain line strength, as they were calibrated.
FINE_ENVELOPE_KEY = "fine_envelope"


def restore_fine(tensors: dict[str, torch.Tensor], fine_weight: float, bank_has_room: bool,
                 image_size: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The saved fine-structure transform and line envelope; ``(None, None)`` when the model has no such channels.

    ``bank_has_room``: the memory bank is as wide as the configured features including those
    channels, so a missing transform is an error rather than a model saved before they existed.
    """
    transform, envelope = tensors.get(FINE_TRANSFORM_KEY), tensors.get(FINE_ENVELOPE_KEY)
    if transform is None:
        if fine_weight > 0 and bank_has_room:
            raise ValueError(f"PatchCore state: '{FINE_TRANSFORM_KEY}' missing (the memory bank has its channels)")
        if envelope is not None:
            raise ValueError(f"PatchCore state: '{FINE_ENVELOPE_KEY}' present without '{FINE_TRANSFORM_KEY}'")
        return None, None
    if fine_weight <= 0:
        raise ValueError(f"PatchCore state: '{FINE_TRANSFORM_KEY}' present but the fine-structure features are off")
    if transform.shape != (FINE_CHANNELS, FINE_CHANNELS) or not transform.is_floating_point() \
            or not bool(torch.isfinite(transform).all()):
        raise ValueError(f"PatchCore state: '{FINE_TRANSFORM_KEY}' must be a finite 2x2 float matrix")
    if envelope is not None and (tuple(envelope.shape) != (1, FINE_CHANNELS, image_size, image_size)
                                 or not envelope.is_floating_point() or not bool(torch.isfinite(envelope).all())):
        raise ValueError(f"PatchCore state: '{FINE_ENVELOPE_KEY}' must be a finite "
                         f"(1, {FINE_CHANNELS}, {image_size}, {image_size}) float tensor, got {tuple(envelope.shape)}")
    return transform.float().contiguous(), None if envelope is None else envelope.float().contiguous()


def restore_backbone(tensors: dict[str, torch.Tensor], backbone: str, weights: str,
                     seed: int) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The feature extractor a model was fitted with, and its description; checked against the saved sha256.

    ImageNet weights are re-read from torchvision's cache; random-init and local weights travel in
    ``tensors`` under :data:`BACKBONE_PREFIX`.
    """
    if SHA_KEY not in tensors or tensors[SHA_KEY].numel() != 32:
        raise ValueError(f"PatchCore state: '{SHA_KEY}' missing or malformed")
    sha = bb.tensor_to_sha(tensors[SHA_KEY])
    if weights == bb.WEIGHTS_IMAGENET:
        extractor, info = bb.load_backbone(backbone, bb.WEIGHTS_IMAGENET, seed)
        if info["weights_sha256"] != sha:
            raise bb.BackboneWeightsError(
                f"the cached ImageNet weights of {backbone} (sha256 {info['weights_sha256'][:12]}...) "
                f"differ from those this model was trained with ({sha[:12]}...)"
            )
    else:
        params = {k[len(BACKBONE_PREFIX) :]: v for k, v in tensors.items() if k.startswith(BACKBONE_PREFIX)}
        if not params:
            raise ValueError("PatchCore state: backbone tensors missing (needed for non-ImageNet weights)")
        extractor = bb.backbone_from_tensors(backbone, params)
        if weights == bb.WEIGHTS_NONE and bb.tensors_sha256(extractor) != sha:
            raise ValueError("PatchCore state: backbone tensors do not match their recorded sha256")
        info = {
            "backbone": backbone,
            "weights": weights,
            "weights_sha256": sha,
            "pretrained": weights != bb.WEIGHTS_NONE,
        }
    return extractor, info
