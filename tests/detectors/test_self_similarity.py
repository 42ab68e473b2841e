"""Own-image matching: exact distances outside the window, the floor, and what it does inside PatchCore."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qc_models.detectors.patchcore import PatchCore
from qc_models.detectors.self_similarity import (
    DEFAULT_FLOOR,
    discount_by_own_image,
    own_image_distances,
    self_match_from_tensor,
    self_match_tensor,
)

SIZE = 128  # a 16 x 16 patch grid: a radius-4 window leaves most of the image to match against


def _brute_force(features: torch.Tensor, radius: int) -> torch.Tensor:
    h, w, d = features.shape
    flat = features.reshape(-1, d).double()
    dist = torch.cdist(flat, flat)
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    inside = ((ys[:, None] - ys[None]).abs() <= radius) & ((xs[:, None] - xs[None]).abs() <= radius)
    return dist.masked_fill(inside, float("inf")).min(dim=1).values.view(h, w)


@pytest.mark.parametrize("radius", [0, 1, 2])
def test_own_image_distances_match_brute_force_in_small_chunks(radius: int) -> None:
    features = torch.randn(5, 7, 6, generator=torch.Generator().manual_seed(radius)) + 50.0  # far from 0
    got = own_image_distances(features, radius, chunk_elements=8)  # a few rows per chunk
    assert got.shape == (5, 7)
    assert torch.allclose(got.double(), _brute_force(features, radius), rtol=1e-4, atol=1e-3)


def test_window_over_the_whole_grid_leaves_nothing_to_match() -> None:
    got = own_image_distances(torch.randn(4, 4, 3), radius=4)
    assert torch.isinf(got).all()
    bank = torch.tensor([1.0, 2.0])
    assert torch.equal(discount_by_own_image(bank, torch.full((2,), float("inf")), 0.7), bank)


def test_discount_lowers_a_score_by_at_most_one_minus_the_floor() -> None:
    bank = torch.tensor([10.0, 10.0, 10.0])
    own = torch.tensor([1.0, 8.0, 20.0])
    assert torch.equal(discount_by_own_image(bank, own, 0.7), torch.tensor([7.0, 8.0, 10.0]))
    assert torch.equal(discount_by_own_image(bank, own, 0.0), torch.tensor([1.0, 8.0, 10.0]))
    with pytest.raises(ValueError, match="floor"):
        discount_by_own_image(bank, own, 1.5)
    with pytest.raises(ValueError, match="radius"):
        own_image_distances(torch.zeros(2, 2, 1), -1)


def test_saved_settings_round_trip_and_bad_ones_are_refused() -> None:
    assert self_match_from_tensor(self_match_tensor(4, 0.7), "self_match") == (4, 0.7)
    assert self_match_from_tensor(None, "self_match") == (0, DEFAULT_FLOOR)  # saved before it existed: off
    for bad in (torch.tensor([4.0]), torch.tensor([0.0, 0.7]), torch.tensor([2.5, 0.7]), torch.tensor([4.0, 2.0]),
                torch.tensor([4, 1]), torch.tensor([float("nan"), 0.7])):
        with pytest.raises(ValueError, match="self_match"):
            self_match_from_tensor(bad, "self_match")


def _texture(seed: int, tint: tuple[float, float, float] = (1.0, 0.9, 0.7)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    grey = np.clip(0.45 + 0.2 * np.sin((xx + 0.3 * yy) / 2.5 + rng.uniform(0, 2 * np.pi)) + rng.normal(0, 0.03, (SIZE, SIZE)), 0, 1)
    return (np.stack([grey * t for t in tint], axis=-1) * 255).astype(np.uint8)


def _spotted(seed: int) -> np.ndarray:
    img = _texture(seed).copy()
    img[56:68, 56:68] = (200, 60, 60)  # one compact spot: nothing else in the image looks like it
    return img


def test_patchcore_discounts_a_good_image_unlike_the_bank_but_not_a_defect() -> None:
    """A good surface of an unseen tint scored above a real spot; its own patches vouch for it, the spot has no twin."""
    train = [_texture(seed) for seed in range(6)]
    # Absolute colour: with colour relative to its surroundings (the default) an overall tint hardly scores at all.
    params = {"weights": "none", "image_size": SIZE, "coreset_ratio": 0.25, "batch_size": 4, "colour_context": 0}
    plain = PatchCore(**params, self_match_radius=0).fit(train)
    matched = PatchCore(**params).fit(train)
    assert (matched.self_match_radius, matched.self_match_floor) == (2, 0.7)  # random-init default at 128 px
    assert torch.equal(plain.memory_bank_, matched.memory_bank_)  # only scoring changes
    images = [_texture(100, tint=(0.8, 0.9, 1.0)), _spotted(101)]
    tinted_before, spot_before = plain.predict(images).image_scores
    tinted_after, spot_after = matched.predict(images).image_scores
    assert tinted_before > spot_before  # the failure being fixed
    assert tinted_after == pytest.approx(0.7 * tinted_before, rel=0.02)  # discounted down to the floor
    assert spot_after == pytest.approx(spot_before, rel=1e-3)  # its worst patch has no twin


def test_patchcore_saves_its_setting_and_older_artifacts_score_without_it() -> None:
    params = {"weights": "none", "image_size": SIZE, "coreset_ratio": 0.25, "batch_size": 4}
    train = [_texture(s) for s in range(2)]
    model = PatchCore(**params).fit(train)
    state = model.state_tensors()
    assert torch.equal(state["self_match"], self_match_tensor(2, 0.7))
    restored = PatchCore(**{**model.get_config(), "self_match_radius": 0}).load_state_tensors(state)
    assert restored.self_match_radius == 2  # what the model was calibrated with wins over the constructor
    # An artifact saved before own-image matching existed: no tensor, no config keys; it scores as it was calibrated.
    legacy_config = {k: v for k, v in model.get_config().items() if not k.startswith("self_match")}
    legacy = PatchCore(**legacy_config).load_state_tensors({k: v for k, v in state.items() if k != "self_match"})
    assert legacy.self_match_radius == 0
    images = [_texture(7, tint=(0.8, 0.9, 1.0))]
    unmatched = PatchCore(**params, self_match_radius=0).fit(train).predict(images).image_scores
    assert np.array_equal(legacy.predict(images).image_scores, unmatched)
    assert not np.array_equal(restored.predict(images).image_scores, unmatched)
    assert PatchCore(weights="imagenet").self_match_radius == 0  # trained backbones keep the paper's scoring
    assert PatchCore(weights="none", align=True).self_match_radius == 0  # aligned parts are compared by place
    # The window keeps its share of the image at any working size.
    assert [PatchCore(weights="none", image_size=s).self_match_radius for s in (64, 256, 512)] == [1, 4, 8]
    with pytest.raises(ValueError, match="radius"):
        PatchCore(weights="none", self_match_radius=-1)
