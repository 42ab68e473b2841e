"""U-Net detector trained on synthetic anomalies (and optional labelled defects)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from qc_models.detectors.base import NotFittedError
from qc_models.detectors.unet import UNetDetector, focal_dice_loss
from tests.detectors import learned_contract as contract
from tests.detectors.learned_contract import stripes

TINY = dict(image_size=32, depth=2, base_channels=8, batch_size=4, seed=0)


def plant_defect(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A dark blob of a kind never used in training; returns the image and its mask."""
    out = img.copy()
    y, x = rng.integers(10, img.shape[0] - 10, size=2)
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    mask = (yy - y) ** 2 + (xx - x) ** 2 <= 25
    out[mask] = (20, 60, 200)
    return out, mask


@pytest.fixture(scope="module")
def fitted() -> tuple[UNetDetector, list[np.ndarray], list[tuple[np.ndarray, np.ndarray]]]:
    return contract.fit_on_stripes(lambda: UNetDetector(epochs=25, patience=25, lr=1e-2, **TINY), plant_defect)


def test_planted_defect_scores_above_good_images(fitted) -> None:
    maps = contract.check_planted_defects_score_highest(*fitted)
    assert all(0.0 <= m.min() and m.max() <= 1.0 for m in maps)  # probabilities


def test_maps_come_back_at_each_input_resolution(fitted) -> None:
    contract.check_maps_at_input_resolution(fitted[0], fitted[1])


def test_state_round_trip_gives_identical_predictions(fitted) -> None:
    model, good, bad = fitted
    contract.check_state_round_trip(model, good + [b for b, _ in bad])


def test_given_validation_images_only_choose_the_epoch() -> None:
    contract.check_validation_images_only_choose_the_epoch(UNetDetector, TINY)


def test_describe_reports_training(fitted) -> None:
    assert contract.check_training_description(fitted[0])["extra_defects_used"] == 0


def test_extra_labelled_defects_are_used_and_not_persisted() -> None:
    rng = np.random.default_rng(2)
    extra = [plant_defect(img, rng) for img in stripes(rng, 3, size=40)]  # another size: resized inside
    model = UNetDetector(epochs=1, extra_defects=extra, **TINY).fit(stripes(rng, 6))
    assert model.describe()["extra_defects_used"] == 3
    assert model.get_config()["extra_defects"] is None
    json.dumps(model.get_config())
    assert model.predict(stripes(rng, 2)).image_scores.shape == (2,)


def test_labelled_defects_are_split_for_early_stopping_and_oversampled() -> None:
    rng = np.random.default_rng(0)
    train, val = UNetDetector._split_extra(10, rng)
    assert len(train) == 8 and len(val) == 2 and not set(train) & set(val) and set(train) | set(val) == set(range(10))
    train, val = UNetDetector._split_extra(4, rng)
    assert len(train) == 4 and len(val) == 0  # too few to spare one for validation
    assert UNetDetector._extra_repeats(n_good=87, n_extra=16) == 3  # ~1 real defect per 2 good images
    assert UNetDetector._extra_repeats(n_good=10, n_extra=40) == 1  # never fewer than once
    assert UNetDetector._extra_repeats(n_good=87, n_extra=0) == 0


def test_labelled_defects_all_train_when_there_is_no_validation_set(monkeypatch) -> None:
    import qc_models.detectors.learned as learned_module

    seen = []
    real = learned_module.train_with_early_stopping

    def spy(model, opt, batches, loss_fn, val_batches, *args, **kwargs):
        seen.append((sum(int(x.shape[0]) for x, _ in batches(1)), val_batches))
        return real(model, opt, batches, loss_fn, val_batches, *args, **kwargs)

    monkeypatch.setattr(learned_module, "train_with_early_stopping", spy)
    rng = np.random.default_rng(4)
    extra = [plant_defect(img, rng) for img in stripes(rng, 5)]
    UNetDetector(epochs=1, val_fraction=0.0, extra_defects=extra, **TINY).fit(stripes(rng, 6))
    n_seen, val = seen[0]
    assert not val and n_seen == 6 + 5 * UNetDetector._extra_repeats(6, 5)  # none held out for nothing


def test_bad_extra_defects_are_refused_clearly() -> None:
    img = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match=r"extra_defects\[0\].*mask shape"):
        UNetDetector(extra_defects=[(img, np.zeros((16, 16), bool))])
    with pytest.raises(ValueError, match=r"extra_defects\[0\].*uint8"):
        UNetDetector(extra_defects=[(img.astype(np.float32), np.zeros((32, 32), bool))])


def test_unfitted_and_bad_arguments_are_refused() -> None:
    with pytest.raises(NotFittedError):
        UNetDetector(**TINY).predict(stripes(np.random.default_rng(0), 1))
    with pytest.raises(ValueError, match="multiple"):
        UNetDetector(image_size=100, depth=3)
    with pytest.raises(ValueError, match="at least 2"):
        UNetDetector(**TINY).fit(stripes(np.random.default_rng(0), 1))
    with pytest.raises(ValueError, match="norm_batches and keep_latest_within"):
        UNetDetector(norm_batches=-1)
    with pytest.raises(ValueError, match="norm_batches and keep_latest_within"):
        UNetDetector(keep_latest_within=-0.05)


def test_validation_set_is_fixed_and_has_clean_and_anomalous_images(monkeypatch) -> None:
    import qc_models.detectors.learned as learned_module  # the shared loop lives in the base class

    seen = []
    real = learned_module.train_with_early_stopping

    def spy(model, opt, batches, loss_fn, val_batches, *args, **kwargs):
        seen.append(val_batches)
        return real(model, opt, batches, loss_fn, val_batches, *args, **kwargs)

    monkeypatch.setattr(learned_module, "train_with_early_stopping", spy)
    images = stripes(np.random.default_rng(3), 10)
    for _ in range(2):
        UNetDetector(epochs=1, val_fraction=0.2, **TINY).fit(images)
    first, second = seen
    assert isinstance(first, list) and len(first) >= 1  # materialised once, reused every epoch
    masks = torch.cat([y for _, y in first])
    assert masks.shape[0] == 4  # 2 held-out images, each clean and with an anomaly
    assert masks.flatten(1).sum(1).eq(0).sum() == 2 and masks.sum() > 0
    for (x1, y1), (x2, y2) in zip(first, second):  # same seed, same validation set
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_early_stopping_waits_for_half_the_epochs_with_labelled_defects(monkeypatch) -> None:
    import qc_models.detectors.learned as learned_module

    seen = []
    real = learned_module.train_with_early_stopping

    def spy(*args, **kwargs):
        seen.append(kwargs["min_epochs"])
        return real(*args, **kwargs)

    monkeypatch.setattr(learned_module, "train_with_early_stopping", spy)
    rng = np.random.default_rng(3)
    images = stripes(rng, 6)
    extra = [plant_defect(img, rng) for img in stripes(rng, 2)]
    UNetDetector(epochs=4, **TINY).fit(images)
    UNetDetector(epochs=4, extra_defects=extra, **TINY).fit(images)
    UNetDetector(epochs=4, extra_defects=extra, min_epochs=1, **TINY).fit(images)
    assert seen == [0, 2, 1]
    assert UNetDetector(min_epochs=3).get_config()["min_epochs"] == 3


def test_focal_dice_loss_prefers_the_right_answer() -> None:
    target = torch.zeros(2, 8, 8)
    target[0, 2:4, 2:4] = 1.0
    right = torch.where(target > 0, 6.0, -6.0)
    assert focal_dice_loss(right, target) < focal_dice_loss(-right, target)
    assert focal_dice_loss(right, target) < focal_dice_loss(torch.zeros_like(target), target)


def test_pose_jitter_moves_a_part_a_little_and_only_a_little() -> None:
    from qc_models.detectors.unet import pose_jitter

    img = np.zeros((128, 128, 3), np.uint8)
    img[40:88, 60:68] = 255  # a vertical bar
    rng = np.random.default_rng(0)
    moved = [pose_jitter(img, rng) for _ in range(20)]
    diffs = [float(np.abs(m.astype(int) - img.astype(int)).mean()) for m in moved]
    assert all(m.shape == img.shape and m.dtype == np.uint8 for m in moved)
    assert min(diffs) > 0  # every copy moved
    for m in moved:  # ... but the bar is still about where it was: within ~3 px of its centre
        ys, xs = np.nonzero(m[..., 0] > 127)
        assert abs(xs.mean() - 63.5) < 3.5 and abs(ys.mean() - 63.5) < 3.5


def tinted(images: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """The same images, each scaled by its own random colour (hides dyed in several colours)."""
    return [(img * rng.uniform(0.3, 1.0, size=3)).clip(0, 255).astype(np.uint8) for img in images]


def test_auto_centring_follows_the_colour_spread_between_good_images(fitted) -> None:
    assert fitted[0].centring_ == "none"  # the stripes all share one grey
    assert fitted[0].describe()["input_centring"] == "none"
    rng = np.random.default_rng(4)
    model = UNetDetector(epochs=1, **TINY).fit(tinted(stripes(rng, 8), rng))
    assert model.centring_ == "add" and model.describe()["between_image_colour_share"] > 0.1
    assert model.net_.stem[0].weight.shape[1] == 6  # input and input minus its mean colour
    contract.check_state_round_trip(model, stripes(rng, 3))
    forced = UNetDetector(epochs=1, centring="none", **TINY).fit(tinted(stripes(rng, 8), rng))
    assert forced.centring_ == "none" and forced.net_.stem[0].weight.shape[1] == 3
    compared = UNetDetector(epochs=1, reference=True, **TINY).fit(tinted(stripes(rng, 8), rng))
    assert compared.centring_ == "none"  # a part compared with its reference is not centred as well
    assert compared.net_.stem[0].weight.shape[1] == 6  # input and input minus reference


def test_centring_is_read_back_from_the_saved_network(fitted) -> None:
    plain = fitted[0].state_tensors()
    legacy = UNetDetector(**TINY)  # an artifact from before centring: config without it, 'auto' by default
    legacy.load_state_tensors(plain)
    assert legacy.centring_ == "none"
    with pytest.raises(ValueError, match="centring 'add' but the network takes no centred input"):
        UNetDetector(centring="add", **TINY).load_state_tensors(plain)
    rng = np.random.default_rng(5)
    wide = UNetDetector(epochs=1, centring="add", **TINY).fit(stripes(rng, 6)).state_tensors()
    with pytest.raises(ValueError, match="takes the centred input too"):
        UNetDetector(centring="none", **TINY).load_state_tensors(wide)
    bad = {**plain, "net.stem.0.weight": plain["net.stem.0.weight"][:, :2]}
    with pytest.raises(ValueError, match="2 input channels"):
        UNetDetector(**TINY).load_state_tensors(bad)
    with pytest.raises(ValueError, match="centring must be"):
        UNetDetector(centring="sometimes", **TINY)


def _disc_parts(rng: np.random.Generator, n: int, size: int = 32) -> list[np.ndarray]:
    """Grey discs with a little texture on a dark, slightly uneven background."""
    yy, xx = np.mgrid[:size, :size]
    out = []
    for _ in range(n):
        img = rng.integers(10, 30, size=(size, size, 3)).astype(np.uint8)
        disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= (size / 4) ** 2
        img[disc] = rng.integers(150, 190, size=(int(disc.sum()), 3))
        out.append(img)
    return out


def test_synthetic_anomalies_stay_on_the_part_when_comparing_with_a_reference() -> None:
    from qc_models.detectors.alignment import part_mask

    rng = np.random.default_rng(4)
    images = _disc_parts(rng, 6)
    on = UNetDetector(epochs=1, reference=True, **TINY).fit(images)
    off = UNetDetector(epochs=1, **TINY).fit(images)
    assert on.on_part_ is True and on.describe()["anomalies_on_part"] is True
    assert off.on_part_ is False and off.describe()["anomalies_on_part"] is False
    assert UNetDetector(epochs=1, reference=True, anomalies_on_part=False, **TINY).fit(images).on_part_ is False

    good = np.stack(images)
    idx = np.arange(len(good)).repeat(4)
    outside = {}
    for name, model in (("on", on), ("off", off)):
        _, masks = model._synthesise(good, idx, np.random.default_rng(0), 1.0)
        grown = np.stack([part_mask(good[i], grow=1) for i in idx])
        assert masks.flatten(1).sum(1).gt(0).all()  # every image got a defect
        outside[name] = int((masks.numpy().astype(bool) & ~grown).sum())
    assert outside["on"] == 0 and outside["off"] > 0


def test_recomputed_batchnorm_statistics_leave_the_training_run_unchanged() -> None:
    images = stripes(np.random.default_rng(5), 10)
    plain = UNetDetector(epochs=3, val_fraction=0.2, norm_batches=0, **TINY).fit(images)
    precise = UNetDetector(epochs=3, val_fraction=0.2, norm_batches=2, **TINY).fit(images)
    # Training uses batch statistics, so the same seed gives the same run, loss for loss ...
    assert plain.training_.train_losses == precise.training_.train_losses
    # ... while what validation sees (eval mode, running statistics) differs.
    assert plain.training_.val_losses != precise.training_.val_losses
    assert precise.get_config()["norm_batches"] == 2
