"""Shrunk colour whitening (the formula, the degenerate case, bad input) and colour relative to its surroundings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qc_models.detectors.colour import between_image_colour_share, minus_surroundings, shrunk_whitening


def test_whitening_inverts_the_shrunk_covariance() -> None:
    gen = torch.Generator().manual_seed(0)
    brightness = torch.randn(500, 1, generator=gen) * 10.0
    samples = brightness * torch.tensor([[1.0, 0.9, 0.7]]) + 0.1 * torch.randn(500, 3, generator=gen)
    w = shrunk_whitening(samples, shrinkage=0.3)
    cov = torch.cov(samples.double().T)
    shrunk = cov + 0.3 * torch.trace(cov) / 3 * torch.eye(3, dtype=torch.float64)
    assert torch.allclose(w @ shrunk @ w, torch.eye(3, dtype=torch.float64), atol=1e-8)
    assert torch.allclose(w, w.T)
    # The shrinkage bounds the amplification: eigenvalues of the shrunk covariance lie in
    # [s tr/3, tr (1 + s/3)], so gains differ by at most sqrt((3 + s) / s); nearly reached here (rank-1 colour).
    gains = torch.linalg.eigvalsh(w)
    ratio = float(gains.max() / gains.min())
    assert 2.5 < ratio <= ((3 + 0.3) / 0.3) ** 0.5 + 1e-6


def test_constant_colour_gives_identity_and_bad_input_is_refused() -> None:
    assert torch.equal(shrunk_whitening(torch.full((10, 3), 0.5)), torch.eye(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="sample matrix"):
        shrunk_whitening(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="shrinkage"):
        shrunk_whitening(torch.randn(10, 3), shrinkage=0.0)


def test_between_image_colour_share_separates_dyed_items_from_one_colour_items() -> None:
    rng = np.random.default_rng(0)
    texture = torch.from_numpy(rng.normal(128, 30, size=(6, 16, 16, 3)))
    assert between_image_colour_share(texture) < 0.01  # same colour, varied inside
    flat = torch.ones(4, 8, 8, 3) * torch.tensor([[10.0], [60.0], [120.0], [200.0]]).view(4, 1, 1, 1)
    assert between_image_colour_share(flat) == pytest.approx(1.0)  # all the variance is between items
    assert between_image_colour_share(flat[:1]) == 0.0
    assert between_image_colour_share(torch.zeros(3, 4, 4, 3)) == 0.0
    with pytest.raises(ValueError, match="expected"):
        between_image_colour_share(torch.zeros(3, 4, 4))


def test_minus_surroundings_drops_tints_and_gradients_but_keeps_a_stain() -> None:
    h = w = 16
    ramp = torch.linspace(0.2, 0.6, w).view(1, 1, 1, w).expand(1, 3, h, w)  # lighting gradient
    tint = torch.tensor([0.1, -0.05, 0.0]).view(1, 3, 1, 1)  # the whole item another colour
    field = ramp + tint
    stained = field.clone()
    stained[:, :, 6:9, 6:9] -= torch.tensor([0.2, 0.1, 0.0]).view(1, 3, 1, 1)
    rel = minus_surroundings(field, 3)
    assert float(rel[..., 3:-3, 3:-3].abs().max()) < 1e-6  # a linear gradient is its own local mean
    assert float(rel.abs().max()) < 0.05  # at the reflected borders only a small residue remains
    # The stain keeps most of its departure; an unrelative tint would have added 0.1 everywhere.
    departure = minus_surroundings(stained, 3)[0, 0, 7, 7]
    assert float(departure) < -0.15
    assert torch.equal(minus_surroundings(stained, 0), stained)
    small = minus_surroundings(torch.rand(1, 3, 2, 2), 4)  # radius cut to the 2x2 grid: still defined
    assert small.shape == (1, 3, 2, 2) and bool(torch.isfinite(small).all())
    with pytest.raises(ValueError, match="radius"):
        minus_surroundings(field, -1)
