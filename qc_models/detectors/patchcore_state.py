"""What a saved PatchCore holds besides its memory bank and backbone, and how each tensor is checked on load.

The colour, reference and thin-line features were added after the first artifacts were saved; each has a
tensor whose presence (or absence) tells how the model was fitted, so an older model loads and
scores as it was calibrated. Every check names the tensor that is wrong.
"""

from __future__ import annotations

import torch

from qc_models.detectors.fine_structure import FINE_CHANNELS

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


def restore_fine(tensors: dict[str, torch.Tensor], fine_weight: float, bank_has_room: bool) -> torch.Tensor | None:
    """The saved fine-structure transform, None when the model has no fine-structure channels.

    ``bank_has_room``: the memory bank is as wide as the configured features including those
    channels, so a missing transform is an error rather than a model saved before they existed.
    """
    transform = tensors.get(FINE_TRANSFORM_KEY)
    if transform is None:
        if fine_weight > 0 and bank_has_room:
            raise ValueError(f"PatchCore state: '{FINE_TRANSFORM_KEY}' missing (the memory bank has its channels)")
        return None
    if fine_weight <= 0:
        raise ValueError(f"PatchCore state: '{FINE_TRANSFORM_KEY}' present but the fine-structure features are off")
    if transform.shape != (FINE_CHANNELS, FINE_CHANNELS) or not transform.is_floating_point() \
            or not bool(torch.isfinite(transform).all()):
        raise ValueError(f"PatchCore state: '{FINE_TRANSFORM_KEY}' must be a finite 2x2 float matrix")
    return transform.float().contiguous()
