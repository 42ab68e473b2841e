"""PatchCore (Roth et al., "Towards Total Recall in Industrial Anomaly Detection", CVPR 2022).

Normality is a memory bank of locally aware patch features of good images; a test patch is as
anomalous as its distance to the nearest bank entry. Done as the paper does it:

* features of ``layer2`` and ``layer3`` of a (truncated) ResNet, each averaged over a 3x3
  neighbourhood (avg-pool, stride 1, padding 1); ``layer3`` bilinearly upsampled to
  ``layer2``'s grid and concatenated (optionally average-pooled over channels to ``embedding_dim``,
  as the reference implementation does). ``layers`` selects other stages; with
  ``weights="none"`` the default is ``layer1`` + ``layer2`` (``layer1`` average-pooled onto
  ``layer2``'s grid), see :func:`default_layers` and below;
* with a random-init backbone (``weights="none"``) two additions, off for trained weights: the
  image is reflect-padded by ``border_padding`` px before the backbone and the maps cropped back
  (no zero-padding artefacts at the borders), and the local mean colour is appended to each patch
  feature, taken relative to the mean colour of its surroundings (``colour_context`` patches
  around it: a stain, not a tint or a lighting gradient), whitened with shrinkage (hue counts, not
  only brightness) and scaled to ``colour_weight`` x the network features' variance (random filters
  see texture, hardly colour); see :func:`default_border_padding`, :func:`default_colour_weight`,
  :func:`default_colour_context` and ``_fit_colour_transform``;
* with a random-init backbone, two thin-line channels too (:mod:`qc_models.detectors.fine_structure`):
  bright- and dark-line strength per patch (for aligned parts: the excess over the good parts'
  line envelope), whitened and scaled to ``fine_weight`` x the network variance, because random
  filters average a 1-3 px scratch away with the texture around it;
* for parts turned to one pose (``align=True``, random init) the local mean of the image's
  difference from the median aligned good image is appended too, whitened and scaled to
  ``reference_weight`` x the network variance (:mod:`qc_models.detectors.reference`): a bent tab
  is made of normal-looking patches in the wrong place;
* with a random-init backbone and parts that are not aligned, each patch is also matched against
  its own image outside a window of ``self_match_radius`` patches, which may lower its score to
  ``self_match_floor`` x the bank distance (:mod:`qc_models.detectors.self_similarity`): goods that
  differ from the bank as a whole (a rarer colour) no longer score high everywhere, while a defect
  has no twin;
* the memory bank is a greedy k-center coreset (``coreset_ratio`` of all patches, at most
  ``max_bank_size`` rows so that large training sets do not slow scoring) selected on a
  Gaussian random projection (:mod:`qc_models.detectors.coreset`);
* patch score = exact Euclidean distance to the nearest bank row
  (:mod:`qc_models.detectors.nearest_neighbours`); image score = maximum patch score, optionally
  re-weighted by the paper's Eq. 7 (``reweight=True``); anomaly map = patch scores bilinearly
  upsampled to ``image_size``, Gaussian-smoothed with sigma 4, then resized to each input's size.

The defaults (coreset ratio 0.05 and 32-dim projection instead of the paper's 0.1 and 128, and
what changes for random-init backbones and aligned parts), each with what it measured, are in
:mod:`qc_models.detectors.patchcore_defaults`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from qc_models.detectors import backbone as bb
from qc_models.detectors import self_similarity as own
from qc_models.detectors.base import (
    Detector,
    NotFittedError,
    Prediction,
    ProgressCallback,
    images_to_tensor,
    maps_to_input_sizes,
)
from qc_models.detectors.colour import DEFAULT_SHRINKAGE, minus_surroundings, scaled_whitening
from qc_models.detectors.coreset import select_coreset
from qc_models.detectors.fine_structure import (FINE_CHANNELS, LineEnvelope, envelope_radius, fine_sigma, line_excess,
                                               line_strength)
from qc_models.detectors.map_ops import gaussian_blur
from qc_models.detectors.nearest_neighbours import NearestNeighbourIndex, reweighted_scores
from qc_models.detectors.patchcore_defaults import (
    MAX_BANK_SIZE,
    default_border_padding,
    default_colour_context,
    default_colour_weight,
    default_fine_weight,
    default_layers,
    default_reference_weight,
    default_self_match_radius,
    layers_why,
)
from qc_models.detectors.patchcore_state import (
    BACKBONE_PREFIX,
    COLOUR_CHANNELS,
    FINE_ENVELOPE_KEY,
    FINE_TRANSFORM_KEY,
    REFERENCE_KEY,
    REFERENCE_TRANSFORM_KEY,
    SHA_KEY,
    colour_tensors,
    restore_backbone,
    restore_colour,
    restore_fine,
    restore_reference,
)
from qc_models.detectors.reference import check_reference_tensor, local_difference, median_reference, reference_sample
from qc_models.runtime import configure_torch, seed_everything

#: Sigma (in pixels at ``image_size``) of the Gaussian smoothing of anomaly maps, as in the paper.
MAP_SIGMA = 4.0
_BANK_KEY = "memory_bank"
#: (radius, floor) of own-image matching; artifacts saved before it existed lack it and score without it.
_SELF_MATCH_KEY = "self_match"
#: The patch grid is never finer than layer2's (stride 8), to bound bank size and scoring cost.
_FINEST_GRID_STRIDE = 8


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class PatchCore(Detector):
    """PatchCore anomaly detector; see the module docstring for the method."""

    name: ClassVar[str] = "patchcore"

    def __init__(
        self,
        backbone: str = "resnet18",
        weights: str = bb.WEIGHTS_IMAGENET,
        image_size: int = 256,
        coreset_ratio: float = 0.05,
        max_bank_size: int | None = MAX_BANK_SIZE,
        projection_dim: int | None = 32,
        neighbourhood: int = 3,
        reweight: bool = False,
        num_neighbours: int = 9,
        embedding_dim: int | None = None,
        seed: int = 0,
        batch_size: int = 16,
        layers: Sequence[str] | None = None,
        border_padding: int | None = None,
        colour_weight: float | None = None,
        colour_shrinkage: float = DEFAULT_SHRINKAGE,
        colour_context: int | None = None,
        align: bool = False,
        reference_weight: float | None = None,
        fine_weight: float | None = None,
        self_match_radius: int | None = None,
        self_match_floor: float = own.DEFAULT_FLOOR,
    ) -> None:
        self.layers_explicit = layers is not None
        self.layers: tuple[str, ...] = tuple(layers) if layers is not None else default_layers(str(weights))
        bb.feature_channels(backbone, self.layers)  # unknown names fail here, not after minutes of work
        if image_size < 32:
            raise ValueError(f"image_size must be >= 32 (layer3 has stride 16), got {image_size}")
        if not 0.0 < coreset_ratio <= 1.0:
            raise ValueError(f"coreset_ratio must be in (0, 1], got {coreset_ratio}")
        if neighbourhood < 1 or neighbourhood % 2 == 0:
            raise ValueError(f"neighbourhood must be a positive odd number, got {neighbourhood}")
        for label, value in (("projection_dim", projection_dim), ("embedding_dim", embedding_dim),
                             ("max_bank_size", max_bank_size)):
            if value is not None and value < 1:
                raise ValueError(f"{label} must be >= 1 or None, got {value}")
        if num_neighbours < 1 or batch_size < 1:
            raise ValueError("num_neighbours and batch_size must be >= 1")
        self.backbone = backbone
        self.weights = str(weights)
        self.image_size = int(image_size)
        self.coreset_ratio = float(coreset_ratio)
        self.max_bank_size = None if max_bank_size is None else int(max_bank_size)
        self.projection_dim = None if projection_dim is None else int(projection_dim)
        self.neighbourhood = int(neighbourhood)
        self.reweight = bool(reweight)
        self.num_neighbours = int(num_neighbours)
        self.embedding_dim = None if embedding_dim is None else int(embedding_dim)
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.align = bool(align)
        self.border_padding = default_border_padding(self.weights) if border_padding is None else int(border_padding)
        self.colour_weight = default_colour_weight(self.weights) if colour_weight is None else float(colour_weight)
        if self.border_padding < 0 or self.border_padding % 16:
            raise ValueError(f"border_padding must be a multiple of 16 (layer3's stride) and >= 0, got {border_padding}")
        if not (np.isfinite(self.colour_weight) and self.colour_weight >= 0):
            raise ValueError(f"colour_weight must be a finite number >= 0, got {colour_weight}")
        self.colour_shrinkage = float(colour_shrinkage)
        if not (np.isfinite(self.colour_shrinkage) and self.colour_shrinkage > 0):
            raise ValueError(f"colour_shrinkage must be a finite number > 0, got {colour_shrinkage}")
        self.colour_context = (default_colour_context(self.weights, self.image_size) if colour_context is None
                               else int(colour_context))
        if self.colour_context < 0:
            raise ValueError(f"colour_context must be >= 0 (0: absolute colour), got {colour_context}")
        #: 3x3 map of the colour channels, fitted on the training patches (None: no colour features).
        self.colour_transform_: torch.Tensor | None = None
        self.reference_weight = (default_reference_weight(self.weights, self.align) if reference_weight is None
                                 else float(reference_weight))
        if not (np.isfinite(self.reference_weight) and self.reference_weight >= 0):
            raise ValueError(f"reference_weight must be a finite number >= 0, got {reference_weight}")
        self.fine_weight = default_fine_weight(self.weights, self.align) if fine_weight is None else float(fine_weight)
        if not (np.isfinite(self.fine_weight) and self.fine_weight >= 0):
            raise ValueError(f"fine_weight must be a finite number >= 0, got {fine_weight}")
        #: 2x2 map of the fine-structure channels (None: off) and, for aligned parts, the good parts'
        #: ``(1, 2, S, S)`` line envelope the channels measure the excess over.
        self.fine_transform_: torch.Tensor | None = None
        self.fine_envelope_: torch.Tensor | None = None
        self.self_match_radius = (int(self_match_radius) if self_match_radius is not None
                                  else default_self_match_radius(self.weights, self.image_size, self.align))
        self.self_match_floor = float(self_match_floor)
        own.check_self_match(self.self_match_radius, self.self_match_floor)
        #: Median good image ``(1, 3, S, S)`` and the 3x3 map of the difference features (None: off).
        self.reference_: torch.Tensor | None = None
        self.reference_transform_: torch.Tensor | None = None
        self._extractor: torch.nn.Module | None = None
        self.weights_info_: dict[str, Any] | None = None
        self.memory_bank_: torch.Tensor | None = None
        self._index: NearestNeighbourIndex | None = None

    # ------------------------------------------------------------------ features

    @property
    def network_dim(self) -> int:
        """Channels of the network part of a patch feature (``layers`` summed, or ``embedding_dim``)."""
        return self.embedding_dim or sum(bb.feature_channels(self.backbone, self.layers))

    @property
    def feature_dim(self) -> int:
        """Length of one patch feature: network channels, then colour and reference difference (3 each),
        then fine structure (2), each if on."""
        colour = COLOUR_CHANNELS if self.colour_weight > 0 else 0
        reference = COLOUR_CHANNELS if self.reference_weight > 0 else 0
        fine = FINE_CHANNELS if self.fine_weight > 0 else 0
        return self.network_dim + colour + reference + fine

    def _set_extractor(self, extractor: torch.nn.Module, info: dict[str, Any]) -> None:
        self._extractor = extractor.to(memory_format=torch.channels_last)
        self.weights_info_ = info

    def _ensure_backbone(self) -> torch.nn.Module:
        if self._extractor is None:
            self._set_extractor(*bb.load_backbone(self.backbone, self.weights, self.seed))
        assert self._extractor is not None
        return self._extractor

    @torch.inference_mode()
    def _embed(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Locally aware patch features ``(B, h, w, D)`` of a batch, on the patch grid.

        The grid is that of the shallowest chosen layer but never finer than ``layer2``'s
        (stride 8): ``layer1`` is average-pooled onto it (a 4x larger grid would cost 4x in
        memory bank, coreset and scoring), deeper layers are bilinearly upsampled.
        """
        x = images_to_tensor(images, self.image_size)
        strides = [bb.LAYER_STRIDES[name] for name in self.layers]
        pad = min(self.border_padding, (self.image_size - 1) // 16 * 16)  # reflect needs pad < size
        xp = F.pad(x, (pad,) * 4, mode="reflect") if pad else x
        maps = self._ensure_backbone()(xp.contiguous(memory_format=torch.channels_last), self.layers)
        if pad:  # crop the padding back off every map (pad is a multiple of every stride)
            maps = tuple(m[..., pad // s : m.shape[-2] - pad // s, pad // s : m.shape[-1] - pad // s] for m, s in zip(maps, strides))
        k, p = self.neighbourhood, self.neighbourhood // 2
        coarse = [i for i, stride in enumerate(strides) if stride >= _FINEST_GRID_STRIDE]
        if coarse:  # the finest map that is not finer than the limit defines the grid
            grid = maps[min(coarse, key=lambda i: strides[i])].shape[-2:]
        else:  # only layer1 (stride 4): halve its grid
            h, w = maps[0].shape[-2:]
            grid = ((h + 1) // 2, (w + 1) // 2)
        parts = []
        for f in maps:
            if k > 1:
                f = F.avg_pool2d(f, k, stride=1, padding=p)
            if f.shape[-2] > grid[0]:  # finer than the patch grid (layer1): average down
                f = F.adaptive_avg_pool2d(f, grid)
            elif f.shape[-2] < grid[0]:
                f = F.interpolate(f, size=grid, mode="bilinear", align_corners=False)
            parts.append(f)
        emb = torch.cat(parts, dim=1).permute(0, 2, 3, 1)  # (B, h, w, C), contiguous in channels_last
        if self.embedding_dim is not None and self.embedding_dim != emb.shape[-1]:
            b, h, w, c = emb.shape
            emb = F.adaptive_avg_pool1d(emb.reshape(b * h * w, 1, c), self.embedding_dim).reshape(b, h, w, -1)
        if self.colour_weight > 0:  # local mean colour minus its surroundings', same neighbourhood, last 3 channels
            colour = minus_surroundings(F.adaptive_avg_pool2d(x, grid), self.colour_context)
            if k > 1:
                colour = F.avg_pool2d(colour, k, stride=1, padding=p, count_include_pad=False)
            colour = colour.permute(0, 2, 3, 1)
            if self.colour_transform_ is not None:
                colour = colour @ self.colour_transform_
            emb = torch.cat([emb, colour], dim=-1)
        if self.reference_ is not None:  # difference from the typical part, last 3 channels
            diff = local_difference(x, self.reference_, grid, k)
            if self.reference_transform_ is not None:
                diff = diff @ self.reference_transform_
            emb = torch.cat([emb, diff], dim=-1)
        if self.fine_weight > 0:  # bright and dark thin lines (aligned: above the good envelope), last 2 channels
            fine = (line_strength(x, grid, fine_sigma(self.image_size), k) if self.fine_envelope_ is None
                    else line_excess(x, self.fine_envelope_, grid, fine_sigma(self.image_size), k))
            if self.fine_transform_ is not None:
                fine = fine @ self.fine_transform_
            emb = torch.cat([emb, fine], dim=-1)
        return emb.contiguous()

    # ------------------------------------------------------------------ fit / predict

    def fit(self, images: Sequence[np.ndarray], progress: ProgressCallback | None = None) -> "PatchCore":
        """Build the memory bank from good images: all patch features, then the greedy coreset."""
        if len(images) == 0:
            raise ValueError("PatchCore.fit needs at least one good image")
        configure_torch()
        seed_everything(self.seed)
        report = progress or (lambda message, fraction: None)
        report("loading backbone", 0.0)
        self._ensure_backbone()
        images = self._fit_pose(images)
        self.colour_transform_ = None  # features are extracted untransformed; the transform is fitted on them
        self.reference_transform_ = None
        self.reference_ = None
        self.fine_transform_ = self.fine_envelope_ = None
        if self.reference_weight > 0:
            self.reference_ = median_reference(images_to_tensor(reference_sample(images), self.image_size))

        def tensors() -> Iterator[torch.Tensor]:  # the fit images again, batch by batch, for the line envelope
            return (images_to_tensor(batch, self.image_size) for batch in _batches(images, self.batch_size))

        envelope = None
        if self.align and self.fine_weight > 0:
            envelope = LineEnvelope(fine_sigma(self.image_size), envelope_radius(self.image_size)).fit(tensors())
            self.fine_envelope_ = envelope.envelope_
        features: torch.Tensor | None = None
        pos = 0
        for batch in _batches(images, self.batch_size):
            emb = self._embed(batch)
            flat = emb.reshape(-1, emb.shape[-1])
            if features is None:
                features = torch.empty((len(images) * flat.shape[0] // len(batch), flat.shape[1]))
            features[pos : pos + flat.shape[0]] = flat
            pos += flat.shape[0]
            report("extracting features", 0.3 * pos / features.shape[0])
        assert features is not None
        net_var = float(features[:, : self.network_dim].var(dim=0).sum())
        start = self.network_dim
        if self.colour_weight > 0:
            colour = slice(start, start + COLOUR_CHANNELS)
            self.colour_transform_ = self._fit_colour_transform(features[:, colour], net_var)
            features[:, colour] = features[:, colour] @ self.colour_transform_
            start += COLOUR_CHANNELS
        if self.reference_ is not None:
            diff = slice(start, start + COLOUR_CHANNELS)
            self.reference_transform_ = scaled_whitening(features[:, diff], self.reference_weight * net_var,
                                                         self.colour_shrinkage)
            features[:, diff] = features[:, diff] @ self.reference_transform_
            start += COLOUR_CHANNELS
        if self.fine_weight > 0:  # aligned: in-sample excess is 0, so scaled on each half against the other
            fine = slice(start, start + FINE_CHANNELS)
            scale_on = (features[:, fine] if envelope is None
                        else envelope.held_out_excess(tensors, emb.shape[1:3], self.neighbourhood))
            self.fine_transform_ = scaled_whitening(scale_on, self.fine_weight * net_var, self.colour_shrinkage)
            features[:, fine] = features[:, fine] @ self.fine_transform_
        index = select_coreset(
            features,
            self.coreset_ratio,
            self.projection_dim,
            self.seed,
            progress=lambda message, fraction: report("selecting coreset", 0.3 + 0.7 * fraction),
            max_size=self.max_bank_size,
        )
        self._set_bank(features[index].contiguous())
        report("done", 1.0)
        return self

    def _fit_colour_transform(self, colour: torch.Tensor, net_var: float) -> torch.Tensor:
        """Shrunk whitening of the colour channels, scaled to ``colour_weight`` x the network's variance.

        Raw RGB means vary mostly along brightness (wood grain, lighting), so scaled as they are,
        a tint or stain of another hue moves the feature little. The transform is
        ``(C + colour_shrinkage * tr(C) / 3 * I) ** -1/2`` of the colour covariance ``C`` on the
        training patches: hue gets a voice of its own, and the shrinkage bounds how far the
        (noisy) hue of grey parts is amplified; a large shrinkage gives the isotropic scale used
        before. Mean image / pixel AUROC over 8 synthetic categories: isotropic 0.773 / 0.868,
        shrinkage 0.3 0.784 / 0.874 (the sweep is in docs/results.md).
        """
        return scaled_whitening(colour, self.colour_weight * net_var, self.colour_shrinkage)

    def _set_bank(self, bank: torch.Tensor) -> None:
        self.memory_bank_ = bank
        self._index = NearestNeighbourIndex(bank)

    def _image_scores(self, emb: torch.Tensor, patch: torch.Tensor, nn_index: torch.Tensor) -> torch.Tensor:
        """Max patch score per image, optionally re-weighted as in the paper's Eq. 7 (:func:`reweighted_scores`)."""
        top = patch.argmax(dim=1)
        rows = torch.arange(patch.shape[0])
        score = patch[rows, top]
        if not self.reweight:
            return score
        assert self._index is not None
        return reweighted_scores(self._index, emb[rows, top], nn_index[rows, top], score, self.num_neighbours)

    @torch.inference_mode()
    def predict(self, images: Sequence[np.ndarray]) -> Prediction:
        """Image scores (max patch distance) and anomaly maps at each image's own size."""
        if self._index is None:
            raise NotFittedError("PatchCore.predict called before fit() or load_state_tensors()")
        if len(images) == 0:
            return Prediction(np.zeros(0, dtype=np.float64), [])
        configure_torch()
        images, poses = self._pose_inputs(images)
        size = self.image_size
        scores: list[torch.Tensor] = []
        maps: list[np.ndarray] = []
        for batch in _batches(images, self.batch_size):
            emb = self._embed(batch)
            b, h, w, d = emb.shape
            flat = emb.reshape(b, h * w, d)
            dist, idx = self._index.query(flat.reshape(-1, d))
            patch = dist.view(b, h * w)
            if self.self_match_radius > 0:  # see qc_models.detectors.self_similarity
                mine = torch.stack([own.own_image_distances(e, self.self_match_radius) for e in emb]).view(b, h * w)
                patch = own.discount_by_own_image(patch, mine, self.self_match_floor)
            scores.append(self._image_scores(flat, patch, idx.view(b, h * w)))
            up = F.interpolate(patch.view(b, 1, h, w), size=(size, size), mode="bilinear", align_corners=False)
            maps.extend(maps_to_input_sizes(gaussian_blur(up[:, 0], MAP_SIGMA), batch))
        return Prediction(torch.cat(scores).double().numpy(), self._restore_maps(maps, poses))

    # ------------------------------------------------------------------ persistence

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Memory bank, backbone weights fingerprint and, unless ImageNet, the backbone itself.

        ImageNet weights are re-loaded from torchvision's cache (checked against the sha256);
        random-init and local weights travel with the model so it reproduces exactly anywhere.
        """
        if self.memory_bank_ is None or self._extractor is None or self.weights_info_ is None:
            raise NotFittedError("PatchCore.state_tensors called before fit()")
        out = {
            _BANK_KEY: self.memory_bank_.contiguous(),
            SHA_KEY: bb.sha_to_tensor(self.weights_info_["weights_sha256"]),
            **colour_tensors(self.colour_transform_, self.colour_context),
        }
        if self.self_match_radius > 0:
            out[_SELF_MATCH_KEY] = own.self_match_tensor(self.self_match_radius, self.self_match_floor)
        if self.reference_ is not None and self.reference_transform_ is not None:
            out[REFERENCE_KEY] = self.reference_.contiguous()
            out[REFERENCE_TRANSFORM_KEY] = self.reference_transform_.contiguous()
        if self.fine_transform_ is not None:
            out[FINE_TRANSFORM_KEY] = self.fine_transform_.contiguous()
        if self.fine_envelope_ is not None:
            out[FINE_ENVELOPE_KEY] = self.fine_envelope_.contiguous()
        if self.weights != bb.WEIGHTS_IMAGENET:
            for key, value in self._extractor.state_dict().items():
                out[BACKBONE_PREFIX + key] = value.detach().clone().contiguous()
        out.update(self._pose_tensors())
        return out

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> "PatchCore":
        """Restore a fitted model; raises ValueError / BackboneWeightsError naming what is wrong."""
        bank = tensors.get(_BANK_KEY)
        if bank is None or bank.ndim != 2 or not bank.is_floating_point() or bank.shape[0] == 0:
            raise ValueError(f"PatchCore state: '{_BANK_KEY}' missing or not a non-empty 2-D float tensor")
        has_colour, self.colour_transform_, self.colour_context = restore_colour(tensors, self.colour_weight)
        if not has_colour:  # saved before padding/colour existed: the plain paper embedding
            self.border_padding, self.colour_weight = 0, 0.0
        self.fine_transform_, self.fine_envelope_ = restore_fine(tensors, self.fine_weight,
                                                                 bank.shape[1] == self.feature_dim, self.image_size)
        if self.fine_transform_ is None:  # off, or saved before the fine-structure channels existed
            self.fine_weight = 0.0
        self._load_reference(tensors, bank.shape[1])
        self.self_match_radius, self.self_match_floor = own.self_match_from_tensor(tensors.get(_SELF_MATCH_KEY), _SELF_MATCH_KEY)
        if bank.shape[1] != self.feature_dim and not self.layers_explicit and self.embedding_dim is None:
            legacy = bb.DEFAULT_LAYERS  # artifacts saved before ``layers`` existed used the paper's layers
            colour = COLOUR_CHANNELS if self.colour_weight > 0 else 0
            if bank.shape[1] == sum(bb.feature_channels(self.backbone, legacy)) + colour:
                self.layers = legacy
        if bank.shape[1] != self.feature_dim:
            raise ValueError(
                f"PatchCore state: memory bank has {bank.shape[1]} features per patch, "
                f"the configured {self.backbone} extractor gives {self.feature_dim}"
            )
        extractor, info = restore_backbone(tensors, self.backbone, self.weights, self.seed)
        self._load_pose_tensors(tensors)
        self._set_extractor(extractor, info)
        self._set_bank(bank.float().contiguous())
        return self

    def _load_reference(self, tensors: dict[str, torch.Tensor], bank_width: int) -> None:
        """Restore the reference image and its transform; a model saved before they existed loads without."""
        ref, self.reference_transform_ = restore_reference(tensors, self.reference_weight, bank_width == self.feature_dim)
        if ref is None:  # no reference features, or saved before they existed
            self.reference_, self.reference_weight = None, 0.0
            return
        self.reference_ = check_reference_tensor(ref, self.image_size, f"PatchCore state: {REFERENCE_KEY}")

    def describe(self) -> dict[str, Any]:
        """Backbone weights used (name, source, sha256, pretrained) and the memory-bank size."""
        info = dict(self.weights_info_) if self.weights_info_ is not None else {
            "backbone": self.backbone,
            "weights": self.weights,
            "weights_sha256": None,
            "pretrained": self.weights != bb.WEIGHTS_NONE,
        }
        if self.memory_bank_ is not None:
            info["memory_bank_size"] = int(self.memory_bank_.shape[0])
            info["feature_dim"] = int(self.memory_bank_.shape[1])
        info["feature_layers"] = list(self.layers)
        info["reference_image"] = self.reference_ is not None if self.memory_bank_ is not None else self.reference_weight > 0
        info["fine_structure"] = self.fine_transform_ is not None if self.memory_bank_ is not None else self.fine_weight > 0
        info["fine_envelope"] = self.fine_envelope_ is not None
        info["feature_layers_why"] = layers_why(self.layers, self.weights)
        return info
