"""PatchCore's defaults and why: search settings, and what changes when the backbone is untrained or parts are aligned.

The paper's embedding (layer2+layer3, nothing appended) assumes ImageNet features. A random-init
backbone (``weights="none"``, all that can be had offline) sees texture but hardly colour or
place, so its defaults differ; each function below says what it changes and what it measured.
:class:`qc_models.detectors.patchcore.PatchCore` resolves its ``None`` parameters through them.

Defaults, measured with ``benchmarks/patchcore_speed.py`` (random-init resnet18, 256 px, 120 good
images, 2 shared cores): ``coreset_ratio=0.05`` instead of the issue's 0.1, because scoring costs half
(end to end 21.9-25.0 instead of 10.4-16.0 images/s, 102 fit images) for a small loss: re-measured at
the current embedding on 8 categories, 0.1 gives +0.003 mean image and +0.005 mean pixel AUROC and
meets no target 0.05 misses (docs/results.md; ``qc train --coreset-ratio`` chooses); and
``projection_dim=32`` instead of the paper's 128, because the projected points (N x 32 float32, 16 MB
for 120 images) stay in the CPU cache, which makes the greedy selection about 10x faster with no
measurable quality change (6.5 s instead of 63 s at ratio 0.05 on carpet, under load).

Random-init layers (60 train images, 256 px, ratio 0.05; 4 demo + 4 hold-out synthetic
categories; image AUROC layer2+3 -> layer1+2): carpet 0.79->0.97, wood 0.75->0.88, bottle
0.98->0.95, metal_nut 0.54->0.54, tile 0.63->0.62, leather 0.48->0.58, screw 0.61->0.65, capsule
0.67->0.64; mean 0.68->0.73, min 0.48->0.54; pixel AUROC equal or better in all eight (mean
0.81->0.84). Untrained deeper stages only re-mix and blur local colour/texture statistics, so
the shallower pair keeps more of what makes a defect visible, at half the feature dimension
(192 instead of 384: faster coreset and scoring). layer1+2+3, layer1 alone, 1x1 or 5x5
neighbourhoods, timm-style zero-initialised residual branches and per-image feature centring
were measured too and were not uniformly better. Trained (ImageNet or local) weights keep the
paper's layer2+layer3.

All of the above was measured on the project's synthetic categories. On real texture photographs
(``benchmarks/photo_texture_check.py``: scikit-image's brick, grass and gravel with generic defects)
the deeper stages did better and the random-init additions did not help (docs/results.md), while
layer1+2+3 on the synthetic categories lost 0.021 mean image AUROC. Kept for now; ``qc train
--layers`` lets users choose on their own images.
"""

from __future__ import annotations

from qc_models.detectors import backbone as bb
from qc_models.detectors.self_similarity import DEFAULT_RADIUS

#: Most patches kept in the memory bank, whatever ``coreset_ratio`` says. The ratio alone makes
#: the bank grow with the training set (1,024 patches per 256-px image), and with it the scoring
#: cost (one distance per bank row) and the greedy selection (one pass over all patches per kept
#: row, so quadratic in the number of images). 400 good images (MVTec-sized training sets) at ratio
#: 0.05 made a 20,480-row bank: fit 53-68 s, scoring 6.8-11.3 images/s; capped at 10,000 rows: fit
#: 29-37 s, 15.7-19.3 images/s, image / pixel AUROC -0.005 to +0.011 / -0.002 to 0 on carpet, wood
#: and bottle (docs/results.md). The issue's 120-image setting (6,144 rows) is below the cap.
MAX_BANK_SIZE = 10_000

#: Feature layers of an untrained backbone (see :func:`default_layers`).
RANDOM_INIT_LAYERS: tuple[str, ...] = ("layer1", "layer2")
_LAYERS_WHY = {
    bb.DEFAULT_LAYERS: "default for trained weights: layer2+layer3, the paper's choice",
    RANDOM_INIT_LAYERS: "default for weights='none': random-init features are informative only near the pixels",
}


def default_border_padding(weights: str) -> int:
    """Reflect padding (px) for random-init backbones, none for trained ones (the paper's setting).

    Zero padding inside the network makes border patches unlike interior ones, and each border
    position has only ``n_images`` examples in the bank, so good images peaked at their corners
    (the carpet false rejects). Reflecting 32 px of the image first and cropping the feature maps
    back keeps the border patches interior-like: random-init mean image AUROC 0.712 -> 0.726 over
    the 8 synthetic categories (60 train images, ratio 0.05).
    """
    return 32 if weights == bb.WEIGHTS_NONE else 0


def default_colour_weight(weights: str) -> float:
    """Weight of local mean colour in the patch feature: 1 for random-init backbones, 0 for trained.

    (The colour has since been taken relative to its surroundings, :func:`default_colour_context`;
    the weights below were measured with absolute colour.)

    Random filters respond mostly to local contrast, so a stain or tint (wood/metal_nut 'color'
    defects scored at chance) barely moves the patch feature. The local mean colour is appended,
    scaled so that its total variance on the training patches is ``colour_weight`` times the
    network features' total variance. Measured with reflect padding (60 train images, 8 synthetic
    categories): weight 0 / 0.25 / 1 gives mean image AUROC 0.726 / 0.730 / 0.740 and pixel AUROC
    0.840 / 0.849 / 0.856. How that variance is shared between brightness and hue is
    ``colour_shrinkage``'s business (see :meth:`PatchCore._fit_colour_transform`).
    """
    return 1.0 if weights == bb.WEIGHTS_NONE else 0.0


#: Radius (patches at 256 px) of the surroundings the local colour is taken relative to (see below).
COLOUR_CONTEXT_RADIUS = 4


def default_colour_context(weights: str, image_size: int = 256) -> int:
    """Radius of the surroundings whose mean colour is subtracted from each patch's: 4 patches at 256 px
    for random-init backbones (scaled with ``image_size``, at least 1), 0 (colour features off) for trained.

    Good textures differ from each other in overall tint and lighting gradient, which absolute
    colour features put into every patch distance; a stain differs from the colour *around* it.
    Measured (random init, 102 fit images, the benchmark's large test splits, image / pixel AUROC,
    absolute -> relative with radius 4): carpet 0.954 / 0.957 -> 0.978 / 0.957, wood 0.937 / 0.917
    -> 0.953 / 0.948, bottle 0.989 / 0.986 -> 0.985 / 0.985, metal_nut 0.861 / 0.939 -> 0.870 /
    0.931, tile 0.724 / 0.804 -> 0.773 / 0.829, leather 0.779 / 0.703 -> 0.833 / 0.740, screw
    0.628 / 0.929 -> 0.639 / 0.926, capsule 0.568 / 0.910 -> 0.579 / 0.908; mean 0.805 / 0.893
    -> 0.826 / 0.903. Radius 2 and 8 gave means 0.829 / 0.902 and 0.818 / 0.903: the gain does
    not hinge on the radius. The window (9 x 9 patches at 256 px) spans about a quarter of the image.
    """
    if weights != bb.WEIGHTS_NONE:
        return 0
    return max(1, round(COLOUR_CONTEXT_RADIUS * image_size / 256))


def default_reference_weight(weights: str, align: bool) -> float:
    """Weight of the difference from the median aligned good part: 0.1 for aligned random-init models, else 0.

    A bent tab or a flipped part is made of patches that each look normal; only their place is
    wrong. For aligned parts each patch also carries the local mean of ``image - reference``
    (:mod:`qc_models.detectors.reference`), whitened like the colour and scaled to
    ``reference_weight`` x the network features' variance. Measured (102 fit images, large test
    splits, image / pixel AUROC): metal_nut 0.790 / 0.929 -> 0.874 / 0.940 (bent 0.67 -> 1.00),
    screw 0.622 / 0.915 -> 0.621 / 0.932; weight 0.03 gave the same within 0.007, 0.25 and 1 cost
    screw 0.02-0.04 (its thin outline turns misalignment into difference). Trained weights keep
    the paper's embedding (not measured here).
    """
    return 0.1 if align and weights == bb.WEIGHTS_NONE else 0.0


def default_fine_weight(weights: str, align: bool = False) -> float:
    """Weight of the thin-line channels (:mod:`qc_models.detectors.fine_structure`): 0.1 for random-init
    backbones (0.01 for aligned parts, whose channels are the excess over the good parts' line
    envelope), 0 for trained ones (the paper's embedding; not measured here).

    Aligned parts (2026-12-07, session 18; same protocol; image / pixel AUROC, plain line strength
    at 0.1 -> envelope excess at 0.01): metal_nut seed 0 0.912 / 0.926 -> 0.958 / 0.910 (scratches
    0.73 -> 0.92 alone), seed 1 0.897 / 0.943 -> 0.953 / 0.931, screw 0.631 / 0.940 -> 0.621 / 0.922.
    The excess is 0 on most patches and large on a new line, so small weights suffice: 0.003 / 0.02 /
    0.05 / 0.1 gave metal_nut seed 0 0.955 / 0.951 / 0.936 / 0.922, good parts' stray excesses
    outranking the colour and flip defects as the weight grows. The pixel AUROC pooled over all
    types falls although it rises or holds per type (scratch pixels 0.932 -> 0.977): a scratch's
    strong halo outranks the whole-part masks of flipped nuts. The price is a heavier tail of good
    scores (a part a pixel larger than every training part): calibrating on 33 good images drawn
    at random from 393, the mean false-reject rate went 1.2 -> 1.4 % (seed 0) and 1.5 -> 1.7 %
    (seed 1), and the share of draws above 5 % from 3 to 6 %; seed 0's own calibration set is
    such a draw (6.3 % on 300 fresh good nuts, 3.3 % on the test goods).

    Measured (2026-12-07; PatchCore refitted on the detector benchmark's 87 fit images of both demo
    draws and the four hold-outs, saved configuration otherwise; image / pixel AUROC, weight 0 ->
    0.1): mean over the 8 demo draws 0.943 / 0.955 -> 0.964 / 0.953 (wood 0.951 -> 0.995 and 0.932 ->
    0.986, metal_nut 0.869 -> 0.912 and 0.878 -> 0.897, bottle +0.005 / +0.016, carpet -0.010 and
    -0.001), over the 4 hold-outs 0.690 / 0.847 -> 0.712 / 0.861 (all four up: tile +0.009, leather
    +0.005, screw +0.030, capsule +0.044). Weights 0.25 and 0.5 gave 12-category means 0.874 / 0.874
    against 0.880 at 0.1 (0.859 without) and cost carpet and tile up to 0.025. On the real texture
    photographs of ``benchmarks/photo_texture_check.py`` (6 draws) mean image / pixel AUROC went
    0.785 / 0.919 -> 0.844 / 0.943 at 0.1 (0.853 / 0.946 at 0.25): smudges (lost fine detail) and
    scratches on brick are found, not only the generator's scratches (docs/results.md).
    """
    if weights != bb.WEIGHTS_NONE:
        return 0.0
    return ALIGNED_FINE_WEIGHT if align else FINE_WEIGHT


#: See :func:`default_fine_weight`.
FINE_WEIGHT = 0.1
ALIGNED_FINE_WEIGHT = 0.01


def default_layers(weights: str) -> tuple[str, ...]:
    """Feature layers used when none are given: the paper's for trained weights, shallower for random.

    A random-init network has no learned semantics; its deeper layers mostly mix and blur the
    local colour/texture statistics that make a defect visible. Measured with random-init resnet18
    on 8 synthetic categories (see the module docstring), layer1+layer2 beat layer2+layer3.
    """
    return RANDOM_INIT_LAYERS if weights == bb.WEIGHTS_NONE else bb.DEFAULT_LAYERS


def layers_why(layers: tuple[str, ...], weights: str) -> str:
    """Why these feature layers, for ``describe()``: the default's reason, or that they are not the default."""
    default = default_layers(weights)
    return _LAYERS_WHY[default] if tuple(layers) == default else f"non-default (default here: {'+'.join(default)})"


def default_self_match_radius(weights: str, image_size: int = 256, align: bool = False) -> int:
    """Own-image matching window (patches): 4 at 256 px for random-init, unaligned models; else 0 (off).

    Measured only with random-init features at 256 px, where goods that differ from the bank as a
    whole scored high everywhere (leather 0.731 -> 0.777, tile 0.676 -> 0.724 image AUROC; the
    full measurement is in :mod:`qc_models.detectors.self_similarity`). Trained weights keep the
    paper's scoring. Aligned parts compare each patch with the typical part at its own place
    (:func:`default_reference_weight`); matching it anywhere in its own image works against that,
    and measured so: metal_nut pixel AUROC 0.939 -> 0.901, screw 0.929 -> 0.944, image AUROC within
    0.003 on both. The window is meant to cover the same share of the image at any working size (a
    defect spans the same share), so it scales with ``image_size`` (at least 1 patch); other sizes
    were not measured. Re-measured once the colour became relative (:func:`default_colour_context`),
    off -> on, image / pixel AUROC: tile 0.721 / 0.774 -> 0.773 / 0.829, leather 0.828 / 0.725 ->
    0.833 / 0.740, capsule 0.574 / 0.886 -> 0.579 / 0.908, carpet 0.981 -> 0.978, wood 0.957 -> 0.953.
    """
    if weights != bb.WEIGHTS_NONE or align:
        return 0
    return max(1, round(DEFAULT_RADIUS * image_size / 256))
