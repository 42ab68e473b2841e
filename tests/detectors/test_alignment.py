"""Pose alignment: registration of turned parts, maps back onto the input, the auto decision, persistence."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from qc_models.alignment_check import decide_alignment
from qc_models.detectors.alignment import AlignmentError, PoseAligner, silhouette
from qc_models.detectors.patchcore import PatchCore

SIZE = 128


def _background(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """Light, noisy background with a brighter middle (uneven lighting)."""
    yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
    light = 200 + 30 * (1 - 4 * (xx**2 + yy**2))
    img = light[..., None] + rng.normal(0, 4, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _part_polygon(angle: float, centre: tuple[float, float]) -> np.ndarray:
    """An asymmetric part (a bar with a head on one end), turned by ``angle`` degrees about ``centre``."""
    shape = np.array([[-34, -5], [22, -5], [22, -13], [36, -13], [36, 13], [22, 13], [22, 5], [-34, 5]], float)
    a = np.deg2rad(angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (shape @ rot.T + np.asarray(centre)).round().astype(np.int32)


def part_image(angle: float, centre=(64.0, 64.0), seed: int = 0, defect: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A dark part on the background and its silhouette mask (bool)."""
    rng = np.random.default_rng(seed)
    img = _background(rng)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    cv2.fillPoly(mask, [_part_polygon(angle, centre)], 1)
    img[mask > 0] = (70, 75, 80)
    if defect:  # a bright notch on the head
        head = _part_polygon(angle, centre)[3]
        cv2.circle(img, tuple(int(v) for v in head), 5, (250, 240, 40), -1)
    return img, mask.astype(bool)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_silhouette_finds_the_part_and_its_centre() -> None:
    img, mask = part_image(30.0, centre=(58.0, 70.0))
    sil = silhouette(img)
    ys, xs = np.nonzero(mask)
    assert sil.clear_of_edges
    assert abs(sil.centre[0] - xs.mean()) < 2.5 and abs(sil.centre[1] - ys.mean()) < 2.5
    assert 0.5 * mask.mean() < sil.area_share < 1.5 * mask.mean()
    assert sil.signature.shape == (360, 48) and abs(float(np.linalg.norm(sil.signature)) - 1.0) < 1e-3


def test_turned_and_moved_parts_land_on_one_pose() -> None:
    angles = [0, 35, 80, 150, 200, 260, 310]
    centres = [(64, 64), (58, 70), (70, 60), (62, 66), (66, 58), (60, 62), (68, 68)]
    samples = [part_image(a, c, seed=i) for i, (a, c) in enumerate(zip(angles, centres))]
    aligner = PoseAligner().fit([s[0] for s in samples])
    aligned_masks = []
    for img, mask in samples:
        pose = aligner.pose(img)
        aligned_masks.append(aligner.align_mask(mask, pose))
    # Unaligned, the parts barely overlap; aligned, every part covers the first one's silhouette.
    assert min(_iou(samples[0][1], m) for _, m in samples[1:]) < 0.3
    assert min(_iou(aligned_masks[0], m) for m in aligned_masks[1:]) > 0.75


def test_restore_map_puts_aligned_maps_back_on_the_input_pixels() -> None:
    img, mask = part_image(123.0, centre=(60.0, 67.0))
    aligner = PoseAligner().fit([part_image(a, seed=a)[0] for a in (0, 90, 200)])
    pose = aligner.pose(img)
    aligned = aligner.align_mask(mask, pose)
    assert _iou(aligned, mask) < 0.5  # it really moved
    restored = aligner.restore_map(aligned.astype(np.float32), pose) > 0.5
    assert restored.shape == mask.shape and _iou(restored, mask) > 0.85


def test_auto_decision_aligns_turned_parts_only() -> None:
    rng = np.random.default_rng(0)
    turned = [part_image(float(a), seed=i)[0] for i, a in enumerate(rng.uniform(0, 360, 12))]
    still = [part_image(20.0, seed=i)[0] for i in range(12)]
    discs = []
    for i in range(12):
        img = _background(np.random.default_rng(i))
        cv2.circle(img, (64 + i % 3, 64 - i % 2), 30, (60, 60, 60), -1)
        discs.append(img)
    textures = [np.random.default_rng(i).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for i in range(12)]

    yes = decide_alignment(turned, "auto")
    assert yes.align and yes.pose_match_aligned > yes.pose_match_unaligned + 0.3
    assert not decide_alignment(still, "auto").align
    round_parts = decide_alignment(discs, "auto")
    assert not round_parts.align and "round" in round_parts.reason and round_parts.anisotropy < 0.15
    texture = decide_alignment(textures, "auto")
    assert not texture.align and "edges" in texture.reason and texture.object_share < 0.9
    assert decide_alignment(textures, "on").align and not decide_alignment(turned, "off").align
    with pytest.raises(ValueError, match="alignment mode"):
        decide_alignment(turned, "sometimes")


def test_patchcore_with_alignment_scores_a_turned_defect_and_round_trips() -> None:
    rng = np.random.default_rng(1)
    train = [part_image(float(a), seed=i)[0] for i, a in enumerate(rng.uniform(0, 360, 10))]
    good = [part_image(float(a), seed=50 + i)[0] for i, a in enumerate((17, 133, 251))]
    bad = [part_image(float(a), seed=60 + i, defect=True)[0] for i, a in enumerate((71, 199, 305))]
    model = PatchCore(weights="none", image_size=64, coreset_ratio=0.5, align=True).fit(train)
    pred = model.predict(good + bad)
    assert pred.image_scores[3:].min() > pred.image_scores[:3].max()
    assert all(m.shape == (SIZE, SIZE) for m in pred.anomaly_maps)
    # The map peaks on the notch in the *input* image, not in the turned copy.
    img, _ = part_image(71.0, seed=60, defect=True)
    notch = tuple(int(v) for v in _part_polygon(71.0, (64.0, 64.0))[3])
    peak_y, peak_x = np.unravel_index(int(np.argmax(pred.anomaly_maps[3])), (SIZE, SIZE))
    assert np.hypot(peak_x - notch[0], peak_y - notch[1]) < 16

    tensors = model.state_tensors()
    assert model.get_config()["align"] is True and tensors["pose.template"].shape == (360, 48)
    again = PatchCore(**model.get_config()).load_state_tensors(tensors).predict(good + bad)
    np.testing.assert_allclose(again.image_scores, pred.image_scores, rtol=1e-5)

    broken = dict(tensors, **{"pose.template": torch.zeros(3, 3)})
    with pytest.raises(AlignmentError, match="pose.template"):
        PatchCore(**model.get_config()).load_state_tensors(broken)
    missing = {k: v for k, v in tensors.items() if k != "pose.template"}
    with pytest.raises(AlignmentError, match="missing"):
        PatchCore(**model.get_config()).load_state_tensors(missing)


def test_unfitted_aligner_says_so() -> None:
    with pytest.raises(AlignmentError, match="before fit"):
        PoseAligner().pose(part_image(0.0)[0])
    with pytest.raises(AlignmentError, match="at least one"):
        PoseAligner().fit([])


def test_ensemble_synthetic_defects_stay_on_the_part() -> None:
    from qc_models.detectors.alignment import part_mask, shows_objects
    from qc_models.detectors.ensemble import ANOMALIES_PER_IMAGE, PART_GROWTH, synthetic_set

    samples = [part_image(float(a), seed=i) for i, a in enumerate((0, 60, 120, 180, 240, 300))]
    images = [s[0] for s in samples]
    assert shows_objects(images)
    assert not shows_objects([np.random.default_rng(i).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for i in range(6)])
    grown = [part_mask(img, grow=PART_GROWTH + 1) for img in images]
    assert all(_iou(part_mask(img), mask) > 0.8 for img, mask in zip(images, (s[1] for s in samples)))

    def off_part(on_part: bool) -> int:
        anomalous, areas = synthetic_set(images, seed=3, on_part=on_part)
        assert len(anomalous) == ANOMALIES_PER_IMAGE * len(images) and (areas > 0).all()
        changed = [(a != images[i % len(images)]).any(axis=2) for i, a in enumerate(anomalous)]
        return int(sum((c & ~grown[i % len(images)]).sum() for i, c in enumerate(changed)))

    assert off_part(False) > 0 and off_part(True) == 0


def test_unet_labelled_defects_turn_with_their_masks() -> None:
    from qc_models.detectors.unet import UNetDetector

    train = [part_image(float(a), seed=i)[0] for i, a in enumerate((0, 70, 140, 210, 280, 330))]
    defect_img, defect_mask = part_image(123.0, centre=(60.0, 67.0), seed=9, defect=True)
    unet = UNetDetector(image_size=32, epochs=1, batch_size=4, align=True, extra_defects=[(defect_img, defect_mask)])
    unet.fit(train)
    (turned_img, turned_mask), = unet._aligned_extra()
    reference = unet.aligner_.align_mask(part_image(0.0)[1], unet.aligner_.pose(part_image(0.0)[0]))
    assert _iou(defect_mask, reference) < 0.5  # as given, the labelled part lies elsewhere
    assert _iou(turned_mask, reference) > 0.75 and turned_img.shape == defect_img.shape
    assert unet.predict([defect_img]).anomaly_maps[0].shape == defect_mask.shape


def test_aligned_unet_compares_with_the_median_good_part_and_round_trips() -> None:
    from qc_models.detectors.unet import UNetDetector

    train = [part_image(float(a), seed=i)[0] for i, a in enumerate((0, 50, 100, 150, 200, 250, 300, 330))]
    unet = UNetDetector(image_size=32, epochs=2, batch_size=4, align=True, augment="flips").fit(train)
    ref = unet.net_.reference
    assert ref is not None and tuple(ref.shape) == (1, 3, 32, 32)
    assert unet.describe()["reference_image"] is True and unet.flips_ == []  # flips would break the comparison
    # The reference is the typical aligned part: dark where every aligned part is, light on the background.
    assert float(ref[0, :, 16, 16].mean()) < float(ref[0, :, 1, 1].mean())
    tensors = unet.state_tensors()
    again = UNetDetector(**unet.get_config()).load_state_tensors(tensors)
    probe = [part_image(77.0, seed=40)[0]]
    np.testing.assert_allclose(again.predict(probe).image_scores, unet.predict(probe).image_scores, rtol=1e-5)

    # Saved before the reference existed (or without alignment): loads as the plain 3-channel network.
    plain = UNetDetector(image_size=32, epochs=1, batch_size=4, align=True, reference=False).fit(train)
    assert plain.net_.reference is None and plain.describe()["reference_image"] is False
    legacy_config = {k: v for k, v in plain.get_config().items() if k != "reference"}
    assert UNetDetector(**legacy_config).load_state_tensors(plain.state_tensors()).describe()["reference_image"] is False
    with pytest.raises(ValueError, match="net.reference"):
        UNetDetector(**unet.get_config()).load_state_tensors(dict(tensors, **{"net.reference": torch.zeros(3, 32)}))
    with pytest.raises(ValueError, match="reference image"):
        UNetDetector(**dict(legacy_config, reference=True)).load_state_tensors(plain.state_tensors())


def _long_part_image(angle: float, seed: int) -> np.ndarray:
    """A part whose bar is 16 px too long: every patch of it looks like some patch of a good part."""
    img, _ = part_image(angle, seed=seed)
    a = np.deg2rad(angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    stub = np.array([[-50, -5], [-34, -5], [-34, 5], [-50, 5]], float) @ rot.T + 64.0
    cv2.fillPoly(img, [stub.round().astype(np.int32)], (70, 75, 80))
    return img


def test_patchcore_reference_features_see_a_part_that_is_the_wrong_shape() -> None:
    rng = np.random.default_rng(2)
    train = [part_image(float(a), seed=i)[0] for i, a in enumerate(rng.uniform(0, 360, 12))]
    good = [part_image(float(a), seed=70 + i)[0] for i, a in enumerate((25, 140, 260))]
    bad = [_long_part_image(float(a), seed=80 + i) for i, a in enumerate((80, 190, 310))]

    def separation(reference_weight: float) -> tuple[float, PatchCore]:
        """Lowest bad score over highest good score (scale-free: the features' scale differs)."""
        model = PatchCore(weights="none", image_size=64, coreset_ratio=0.5, align=True,
                          reference_weight=reference_weight, self_match_radius=0, fine_weight=0.0).fit(train)  # features alone
        scores = model.predict(good + bad).image_scores
        return float(scores[3:].min() / scores[:3].max()), model

    without, _ = separation(0.0)
    with_reference, model = separation(1.0)
    assert PatchCore(weights="none", align=True).reference_weight > 0  # on by default for aligned random init
    assert with_reference > 1.5 * without > 1.5  # measured: 8.5 vs 4.3
    tensors = model.state_tensors()
    assert tuple(tensors["reference_image"].shape) == (1, 3, 64, 64) and model.describe()["reference_image"]
    again = PatchCore(**model.get_config()).load_state_tensors(tensors)
    np.testing.assert_allclose(again.predict(bad).image_scores, model.predict(bad).image_scores, rtol=1e-5)
    with pytest.raises(ValueError, match="reference_image"):
        PatchCore(**model.get_config()).load_state_tensors(dict(tensors, reference_image=torch.zeros(1, 3, 8, 8)))
    with pytest.raises(ValueError, match="reference_image"):
        PatchCore(**model.get_config()).load_state_tensors({k: v for k, v in tensors.items() if k != "reference_image"})
    # A model saved before the reference features existed: no tensors, a narrower bank, loads without them.
    plain = PatchCore(weights="none", image_size=64, coreset_ratio=0.5, align=True, reference_weight=0.0).fit(train)
    legacy_config = {k: v for k, v in plain.get_config().items() if k != "reference_weight"}
    legacy = PatchCore(**legacy_config).load_state_tensors(plain.state_tensors())
    assert legacy.reference_weight == 0.0 and not legacy.describe()["reference_image"]
    with pytest.raises(ValueError, match="reference features are off"):
        PatchCore(**legacy_config, reference_weight=0.0).load_state_tensors(tensors)


def test_reference_is_the_median_of_an_even_sample() -> None:
    from qc_models.detectors.reference import MAX_REFERENCE_IMAGES, median_reference, reference_sample

    items = list(range(3 * MAX_REFERENCE_IMAGES))
    picked = reference_sample(items)
    assert len(picked) == MAX_REFERENCE_IMAGES and picked[0] == 0 and picked[-1] == items[-1]
    assert reference_sample(items[:5]) == items[:5]
    stack = torch.stack([torch.full((3, 4, 4), float(v)) for v in (0, 1, 2, 10, 11)])
    ref = median_reference(stack)
    assert tuple(ref.shape) == (1, 3, 4, 4) and bool((ref == 2).all())  # the median, not the mean (4.8)
    with pytest.raises(ValueError, match="non-empty"):
        median_reference(torch.zeros(0, 3, 4, 4))
