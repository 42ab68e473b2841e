"""Convolutional autoencoder detector, the shared training loop and map post-processing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qc_models.detectors import map_ops
from qc_models.detectors.autoencoder import ConvAutoencoder
from qc_models.detectors.base import NotFittedError
from qc_models.detectors.torch_training import choose_flips, split_train_val, train_with_early_stopping
from qc_models.runtime import seed_everything
from tests.detectors import learned_contract as contract
from tests.detectors.learned_contract import stripes

TINY = dict(image_size=32, depth=3, base_channels=8, latent_channels=4, batch_size=8, seed=0)


def plant_defect(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A red square; returns the image and the square's mask."""
    out = img.copy()
    y, x = rng.integers(8, img.shape[0] - 16, size=2)
    out[y : y + 9, x : x + 9] = (220, 30, 30)
    mask = np.zeros(img.shape[:2], bool)
    mask[y : y + 9, x : x + 9] = True
    return out, mask


@pytest.fixture(scope="module")
def fitted() -> tuple[ConvAutoencoder, list[np.ndarray], list[tuple[np.ndarray, np.ndarray]]]:
    return contract.fit_on_stripes(lambda: ConvAutoencoder(epochs=40, patience=40, lr=5e-3, **TINY), plant_defect)


def test_planted_defect_scores_above_good_images(fitted) -> None:
    contract.check_planted_defects_score_highest(*fitted)


def test_maps_come_back_at_each_input_resolution(fitted) -> None:
    contract.check_maps_at_input_resolution(fitted[0], fitted[1])


def test_state_round_trip_gives_identical_predictions(fitted) -> None:
    model, good, bad = fitted
    assert all(isinstance(t, torch.Tensor) and t.is_contiguous() for t in model.state_tensors().values())
    contract.check_state_round_trip(model, good + [b for b, _ in bad])


def test_colour_residual_is_whitened_and_old_artifacts_keep_plain_rgb(fitted) -> None:
    """Grey stripes leave a grey residual: a change of hue must weigh more than one of brightness."""
    model, good, _ = fitted
    w = model.colour_whitening_
    assert w.shape == (3, 3) and torch.allclose(w, w.T, atol=1e-5)
    grey, hue = torch.tensor([1.0, 1.0, 1.0]) / 3**0.5, torch.tensor([1.0, -1.0, 0.0]) / 2**0.5
    assert float((hue @ w).norm()) > 1.5 * float((grey @ w).norm())
    state = model.state_tensors()
    legacy = ConvAutoencoder(**model.get_config()).load_state_tensors({k: v for k, v in state.items() if k != "colour_whitening"})
    assert torch.equal(legacy.colour_whitening_, torch.eye(3))  # saved before the whitening: plain RGB distance
    with pytest.raises(KeyError, match="colour_whitening"):
        ConvAutoencoder(**model.get_config()).load_state_tensors({**state, "colour_whitening": torch.ones(2, 2)})
    with pytest.raises(ValueError, match="colour_shrinkage"):
        ConvAutoencoder(**{**TINY, "colour_shrinkage": 0.0})


def test_given_validation_images_only_choose_the_epoch() -> None:
    contract.check_validation_images_only_choose_the_epoch(ConvAutoencoder, TINY)


def test_describe_reports_training(fitted) -> None:
    contract.check_training_description(fitted[0])


def test_fit_is_deterministic_for_a_seed() -> None:
    rng = np.random.default_rng(2)
    train, test = stripes(rng, 8), stripes(rng, 2)
    cfg = dict(TINY, epochs=2)
    a = ConvAutoencoder(**cfg).fit(train).predict(test).image_scores
    b = ConvAutoencoder(**cfg).fit(train).predict(test).image_scores
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_unfitted_and_bad_arguments_are_refused() -> None:
    with pytest.raises(NotFittedError):
        ConvAutoencoder(**TINY).predict(stripes(np.random.default_rng(0), 1))
    with pytest.raises(ValueError, match="multiple"):
        ConvAutoencoder(image_size=50, depth=3)
    with pytest.raises(ValueError, match="at least 2"):
        ConvAutoencoder(**TINY).fit(stripes(np.random.default_rng(0), 1))
    with pytest.raises(KeyError, match="error_stats"):
        ConvAutoencoder(**TINY).load_state_tensors({})


def test_denoising_variant_trains() -> None:
    rng = np.random.default_rng(3)
    model = ConvAutoencoder(epochs=1, denoise=0.5, **TINY).fit(stripes(rng, 6))
    assert model.predict(stripes(rng, 2)).image_scores.shape == (2,)


# ---------------------------------------------------------------- shared training loop


def _loop(train_target: float, val_target: float, lr: float, epochs: int = 20, patience: int = 3, min_epochs: int = 0):
    seed_everything(0)
    model = nn.Linear(1, 1)
    x = torch.ones(4, 1)
    batches = lambda epoch: [(x, torch.full((4, 1), train_target))]  # noqa: E731
    loss_fn = lambda m, b: (m(b[0]) - b[1]).pow(2).mean()  # noqa: E731
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    val = [(x, torch.full((4, 1), val_target))]
    result = train_with_early_stopping(model, opt, batches, loss_fn, val, epochs, patience, min_epochs=min_epochs)
    return model, result, loss_fn, val


def test_early_stopping_stops_when_validation_does_not_improve() -> None:
    _, result, _, _ = _loop(0.0, 0.0, lr=0.0, patience=3)  # lr 0: the loss never moves
    assert result.early_stopped and result.epochs_run == 4 and result.best_epoch == 1


def test_early_stopping_waits_for_min_epochs() -> None:
    _, result, _, _ = _loop(0.0, 0.0, lr=0.0, patience=3, min_epochs=10)
    assert result.early_stopped and result.epochs_run == 10 and result.best_epoch == 1


def test_best_weights_are_restored_when_validation_gets_worse() -> None:
    # Training pulls the output towards +5 while validation wants -5: epoch 1 is the best.
    model, result, loss_fn, val = _loop(5.0, -5.0, lr=0.1, patience=2)
    assert result.early_stopped and result.best_epoch == 1 and result.epochs_run == 3
    with torch.no_grad():
        assert loss_fn(model, val[0]).item() == pytest.approx(result.best_val_loss, rel=1e-6)
    assert result.val_losses[-1] > result.best_val_loss


def test_loop_runs_all_epochs_while_improving() -> None:
    _, result, _, _ = _loop(3.0, 3.0, lr=0.05, epochs=8, patience=2)
    assert result.epochs_run == 8 and not result.early_stopped
    assert result.val_losses[-1] < result.val_losses[0]


def test_split_and_flip_choice() -> None:
    tr, va = split_train_val(20, 0.2, seed=1)
    assert len(va) == 4 and len(tr) == 16 and not set(tr) & set(va)
    assert split_train_val(2, 0.2, seed=1)[1].size == 0  # too few images to hold any out
    flat = torch.rand(30, 3, 16, 16)  # texture-like: no orientation
    assert choose_flips(flat, "auto") == [-1, -2]
    aligned = torch.zeros(30, 3, 16, 16)
    aligned[:, :, :, :4] = 1.0  # every part has a bright left edge: flipping would look defective
    aligned += 0.05 * torch.rand_like(aligned)
    assert -1 not in choose_flips(aligned, "auto")
    assert choose_flips(aligned, "none") == []


# ---------------------------------------------------------------- map post-processing


def test_map_ops() -> None:
    x = torch.zeros(1, 9, 9)
    x[0, 4, 4] = 1.0
    blurred = map_ops.gaussian_blur(x, 1.0)
    assert blurred.sum().item() == pytest.approx(1.0, rel=1e-4) and blurred[0, 4, 4] < 1.0
    img = torch.rand(2, 3, 16, 16)
    assert map_ops.ssim_error(img, img).abs().max().item() < 1e-4
    assert map_ops.ssim_error(img, 1 - img).mean().item() > 0.3
    maps = torch.zeros(2, 10, 10)
    maps[1, 0, :3] = 1.0
    scores = map_ops.top_fraction_score(maps, 0.03)
    assert scores[0] == 0 and scores[1] == pytest.approx(1.0)
    assert map_ops.top_fraction_score(maps, 0.0)[1] == 1.0


def _tinted(images: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Mid-range copies of ``images``, each scaled by its own colour (hides dyed in several colours)."""
    return [(60 + img * 0.5 * rng.uniform(0.4, 1.0, size=3)).astype(np.uint8) for img in images]


def test_auto_centring_redraws_each_image_minus_its_own_colour(fitted) -> None:
    assert fitted[0].centring_ == "none"  # the stripes all share one grey
    assert fitted[0].describe()["input_centring"] == "none"
    rng = np.random.default_rng(4)
    model = ConvAutoencoder(epochs=2, **TINY).fit(_tinted(stripes(rng, 8), rng))
    assert model.centring_ == "subtract" and model.describe()["between_image_colour_share"] > 0.1
    # A good item that differs only as a whole in colour scores as its twin does; uncentred it would not.
    img = _tinted(stripes(rng, 1), rng)[0]
    shifted = (img.astype(np.int16) + np.array([12, -8, 20])).astype(np.uint8)
    pair = model.predict([img, shifted])
    assert np.isclose(pair.image_scores[0], pair.image_scores[1], rtol=2e-3)  # up to resizing's rounding
    assert np.allclose(pair.anomaly_maps[0], pair.anomaly_maps[1], atol=1e-3)
    plain = ConvAutoencoder(epochs=2, centring="none", **TINY).fit(_tinted(stripes(rng, 8), rng))
    assert plain.centring_ == "none"
    assert not np.isclose(*plain.predict([img, shifted]).image_scores, rtol=0.05)
    contract.check_state_round_trip(model, [img, shifted])
    aligned = ConvAutoencoder(epochs=1, align=True, **TINY).fit(_tinted(stripes(rng, 8), rng))
    assert aligned.centring_ == "none"  # aligned parts keep their colour, as in the U-Net


def test_auto_centring_leaves_single_parts_alone() -> None:
    """A part's image mean is mostly its background, so tinted parts are not centred (capsule lost 0.08 AUROC)."""
    import cv2

    rng = np.random.default_rng(6)
    parts = []
    for _ in range(8):
        img = np.full((32, 32, 3), 60, np.uint8)
        cv2.ellipse(img, (16, 16), (11, 6), float(rng.uniform(0, 180)), 0, 360, (230, 230, 230), -1)
        parts.append((img * rng.uniform(0.3, 1.0, size=3)).astype(np.uint8))
    model = ConvAutoencoder(epochs=1, **TINY).fit(parts)
    assert model.colour_share_ > 0.1  # they do differ in colour as a whole ...
    assert model.centring_ == "none"  # ... but show a part on a background


def test_centring_is_read_back_and_mismatches_are_refused(fitted) -> None:
    plain = fitted[0].state_tensors()
    assert plain["input_centring"].tolist() == [0.0]
    legacy = ConvAutoencoder(**TINY).load_state_tensors({k: v for k, v in plain.items() if k != "input_centring"})
    assert legacy.centring_ == "none"  # saved before centring existed: trained on the plain image
    with pytest.raises(ValueError, match="centring 'subtract' but the network was trained with 'none'"):
        ConvAutoencoder(centring="subtract", **TINY).load_state_tensors(plain)
    centred = {**plain, "input_centring": torch.tensor([1.0])}
    assert ConvAutoencoder(**TINY).load_state_tensors(centred).centring_ == "subtract"
    with pytest.raises(ValueError, match="configured with centring 'none'"):
        ConvAutoencoder(centring="none", **TINY).load_state_tensors(centred)
    with pytest.raises(KeyError, match="input_centring"):
        ConvAutoencoder(**TINY).load_state_tensors({**plain, "input_centring": torch.tensor([0.5])})
    with pytest.raises(ValueError, match="centring must be"):
        ConvAutoencoder(centring="sometimes", **TINY)
