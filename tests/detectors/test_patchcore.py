"""PatchCore on tiny images: planted defects, map sizes, persistence, re-weighting, ImageNet cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torchvision.models import resnet18

from qc_models.data.images import load_rgb
from qc_models.data.layout import open_category
from qc_models.detectors import backbone as bb
from qc_models.detectors.base import NotFittedError
from qc_models.detectors.patchcore import PatchCore

SIZE = 64
SCRATCH = (slice(30, 33), slice(12, 44))  # rows, cols of the planted bright scratch


def _texture(seed: int, shape: tuple[int, int] = (SIZE, SIZE)) -> np.ndarray:
    """A striped, noisy texture with a random phase: same kind of surface, never the same image."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    phase = rng.uniform(0, 2 * np.pi)
    base = 0.45 + 0.2 * np.sin((xx + 0.3 * yy) / 2.5 + phase) + rng.normal(0, 0.03, shape)
    grey = np.clip(base, 0, 1)
    return (np.stack([grey, grey * 0.9, grey * 0.7], axis=-1) * 255).astype(np.uint8)


def _scratched(seed: int) -> np.ndarray:
    img = _texture(seed).copy()
    img[SCRATCH] = 255
    return img


def _model(**overrides: object) -> PatchCore:
    params: dict = {"weights": "none", "image_size": SIZE, "coreset_ratio": 0.25, "projection_dim": 32, "batch_size": 4}
    params.update(overrides)
    return PatchCore(**params)


@pytest.fixture(scope="module")
def fitted() -> PatchCore:
    return _model().fit([_texture(seed) for seed in range(8)])


def test_planted_scratch_scores_highest_and_map_peaks_on_it(fitted: PatchCore) -> None:
    good = [_texture(seed) for seed in range(100, 104)]
    pred = fitted.predict(good + [_scratched(200)])
    assert pred.image_scores.shape == (5,) and pred.image_scores.dtype == np.float64
    assert pred.image_scores[4] > pred.image_scores[:4].max()
    defect_map = pred.anomaly_maps[4]
    row, col = np.unravel_index(np.argmax(defect_map), defect_map.shape)
    assert 30 - 8 <= row <= 32 + 8 and 12 - 8 <= col <= 43 + 8
    inside = defect_map[SCRATCH].mean()
    assert inside > np.percentile(defect_map, 90)


def test_maps_come_back_at_each_input_size(fitted: PatchCore) -> None:
    images = [_texture(1, (64, 64)), _texture(2, (48, 80)), _texture(3, (101, 37))]
    pred = fitted.predict(images)
    assert [m.shape for m in pred.anomaly_maps] == [(64, 64), (48, 80), (101, 37)]
    assert all(m.dtype == np.float32 and np.isfinite(m).all() for m in pred.anomaly_maps)
    assert len(pred) == 3 and np.isfinite(pred.image_scores).all()


def test_memory_bank_size_follows_ratio_and_fit_is_deterministic(fitted: PatchCore) -> None:
    assert fitted.memory_bank_ is not None
    n_patches = 8 * 8 * 8  # 8 images, 8x8 layer2 grid at 64 px (layer1 is pooled onto it)
    assert fitted.layers == ("layer1", "layer2")  # random-init default: 64 + 128 channels
    # 64 + 128 network channels, then 3 local-colour and 2 thin-line channels (random-init defaults)
    assert fitted.memory_bank_.shape == (round(0.25 * n_patches), 197)
    progress: list[float] = []
    again = _model().fit([_texture(seed) for seed in range(8)], lambda msg, frac: progress.append(frac))
    assert torch.equal(again.memory_bank_, fitted.memory_bank_)
    assert progress == sorted(progress) and progress[-1] == 1.0 and 0.0 < progress[len(progress) // 2] < 1.0


def test_max_bank_size_caps_the_memory_bank_and_travels_in_the_config() -> None:
    capped = _model(max_bank_size=40).fit([_texture(seed) for seed in range(8)])
    assert capped.memory_bank_ is not None and capped.memory_bank_.shape[0] == 40  # the ratio alone gives 128
    assert capped.get_config()["max_bank_size"] == 40
    assert PatchCore(**capped.get_config()).max_bank_size == 40
    assert _model(max_bank_size=None).max_bank_size is None
    with pytest.raises(ValueError, match="max_bank_size"):
        _model(max_bank_size=0)


def test_state_round_trip_through_safetensors_is_identical(fitted: PatchCore, tmp_path: Path) -> None:
    images = [_texture(7), _scratched(8), _texture(9, (50, 70))]
    before = fitted.predict(images)
    path = tmp_path / "tensors.safetensors"
    save_file(fitted.state_tensors(), str(path))
    restored = PatchCore(**fitted.get_config()).load_state_tensors(load_file(str(path)))
    after = restored.predict(images)
    assert np.array_equal(before.image_scores, after.image_scores)
    assert all(np.array_equal(a, b) for a, b in zip(before.anomaly_maps, after.anomaly_maps))
    assert restored.describe() == fitted.describe()


def test_describe_reports_backbone_weights(fitted: PatchCore) -> None:
    facts = fitted.describe()
    assert facts["backbone"] == "resnet18" and facts["weights"] == "none" and facts["pretrained"] is False
    assert facts["weights_sha256"] == bb.load_backbone("resnet18", "none", seed=0)[1]["weights_sha256"]
    assert facts["memory_bank_size"] == fitted.memory_bank_.shape[0]
    assert facts["feature_layers"] == ["layer1", "layer2"] and "weights='none'" in facts["feature_layers_why"]
    config = fitted.get_config()
    assert PatchCore(**config).get_config() == config


def test_layers_default_depends_on_weights_and_can_be_chosen() -> None:
    assert PatchCore(weights="imagenet").layers == ("layer2", "layer3")  # the paper's design
    assert PatchCore(weights="/some/local.pth").layers == ("layer2", "layer3")
    assert PatchCore(weights="none").layers == ("layer1", "layer2")
    paper = _model(layers=["layer2", "layer3"]).fit([_texture(seed) for seed in range(2)])
    assert paper.memory_bank_ is not None and paper.memory_bank_.shape[1] == 384 + 3 + 2
    assert paper.describe()["feature_layers_why"] == "non-default (default here: layer1+layer2)"
    assert paper.get_config()["layers"] == ["layer2", "layer3"]
    deep = _model(layers=["layer3"]).fit([_texture(0)])  # a coarser grid is allowed: 4x4 at 64 px
    assert deep.memory_bank_ is not None and deep.memory_bank_.shape == (4, 256 + 3 + 2)
    assert deep.predict([_texture(1)]).anomaly_maps[0].shape == (SIZE, SIZE)
    for bad in (["layer4"], [], ["layer2", "layer2"]):
        with pytest.raises(ValueError, match="layers"):
            _model(layers=bad)


def test_colour_whitening_gives_hue_a_voice_and_old_scalar_artifacts_still_load() -> None:
    """Training colours vary in brightness only; a stain of another hue must stand out more once whitened."""
    train = [_texture(seed) for seed in range(3)]
    stained = _texture(60).astype(np.float32)
    stained[16:40, 16:40] *= np.array([0.8, 1.0, 1.1])
    images = [_texture(60), np.clip(stained, 0, 255).astype(np.uint8)]

    def stain_ratio(model: PatchCore) -> float:
        good, stain = model.predict(images).image_scores
        return float(stain / good)

    whitened = _model(coreset_ratio=1.0).fit(train)
    isotropic = _model(coreset_ratio=1.0, colour_shrinkage=1e6).fit(train)
    t = isotropic.colour_transform_
    assert torch.allclose(t, t[0, 0] * torch.eye(3), atol=1e-4 * float(t[0, 0]))  # huge shrinkage: a plain scale
    assert stain_ratio(whitened) > 1.5 * stain_ratio(isotropic)
    # Artifacts saved before the whitening carry only the scalar scale: it becomes scale * identity.
    legacy = {k: v for k, v in isotropic.state_tensors().items() if k != "colour_transform"}
    legacy["colour_scale"] = torch.tensor([float(t[0, 0])], dtype=torch.float64)
    restored = PatchCore(**{k: v for k, v in isotropic.get_config().items() if k != "colour_shrinkage"})
    restored.load_state_tensors(legacy)
    assert torch.allclose(restored.colour_transform_, t, rtol=1e-4, atol=1e-4 * float(t[0, 0]))
    assert np.allclose(restored.predict(images).image_scores, isotropic.predict(images).image_scores, rtol=1e-4)
    bad = {**whitened.state_tensors(), "colour_transform": torch.full((3, 3), float("nan"))}
    with pytest.raises(ValueError, match="colour_transform"):
        PatchCore(**whitened.get_config()).load_state_tensors(bad)
    with pytest.raises(ValueError, match="colour_shrinkage"):
        _model(colour_shrinkage=0.0)


def test_artifact_without_layers_in_config_loads_with_the_paper_layers() -> None:
    """Models saved before ``layers`` existed used layer2+layer3 even for random init."""
    old = _model(layers=["layer2", "layer3"], border_padding=0, colour_weight=0, fine_weight=0).fit(
        [_texture(seed) for seed in range(2)])
    new_keys = ("layers", "border_padding", "colour_weight", "fine_weight")
    config = {k: v for k, v in old.get_config().items() if k not in new_keys}
    state = {k: v for k, v in old.state_tensors().items() if k != "colour_scale"}  # older artifacts lack it
    restored = PatchCore(**config).load_state_tensors(state)
    assert restored.layers == ("layer2", "layer3")
    assert (restored.border_padding, restored.colour_weight) == (0, 0.0)
    images = [_scratched(5)]
    assert np.array_equal(restored.predict(images).image_scores, old.predict(images).image_scores)


def test_reweighting_follows_the_paper_formula(fitted: PatchCore) -> None:
    # The paper's scoring: without own-image matching (an artifact without its tensor scores without it).
    state = {k: v for k, v in fitted.state_tensors().items() if k != "self_match"}
    weighted = PatchCore(**{**fitted.get_config(), "reweight": True, "num_neighbours": 3}).load_state_tensors(state)
    images = [_texture(11), _scratched(12)]
    plain = PatchCore(**fitted.get_config()).load_state_tensors(state).predict(images).image_scores
    scores = weighted.predict(images).image_scores
    bank = fitted.memory_bank_.double()
    emb = fitted._embed(images).reshape(2, -1, bank.shape[1]).double()
    for i in range(2):
        dist = torch.cdist(emb[i], bank)  # (patches, M)
        nearest, nn_idx = dist.min(dim=1)
        top = int(nearest.argmax())
        m_star = bank[nn_idx[top]]
        support = torch.cdist(m_star[None], bank)[0].topk(3, largest=False).indices
        d_support = torch.linalg.vector_norm(bank[support] - emb[i, top], dim=1)
        expected = (1 - torch.exp(nearest[top]) / torch.exp(d_support).sum()) * nearest[top]
        assert scores[i] == pytest.approx(float(expected), rel=1e-3)
        assert plain[i] == pytest.approx(float(nearest[top]), rel=1e-3)
        assert 0 < scores[i] < plain[i]


def test_unfitted_and_bad_state_are_refused(fitted: PatchCore) -> None:
    with pytest.raises(NotFittedError):
        _model().predict([_texture(0)])
    state = fitted.state_tensors()
    with pytest.raises(ValueError, match="features per patch"):
        _model().load_state_tensors({**state, "memory_bank": torch.zeros(4, 10)})
    with pytest.raises(ValueError, match="memory_bank"):
        _model().load_state_tensors({k: v for k, v in state.items() if k != "memory_bank"})
    tampered = dict(state)
    tampered["backbone.conv1.weight"] = torch.zeros_like(state["backbone.conv1.weight"])
    with pytest.raises(ValueError, match="sha256"):
        _model().load_state_tensors(tampered)
    with pytest.raises(ValueError, match="coreset_ratio"):
        _model(coreset_ratio=1.5)
    with pytest.raises(ValueError, match="at least one"):
        _model().fit([])


def test_embedding_dim_pools_channels() -> None:
    model = _model(embedding_dim=64, coreset_ratio=0.5).fit([_texture(s) for s in range(2)])
    assert model.memory_bank_.shape == (64, 64 + 3 + 2)  # pooled network channels + colour + thin lines
    assert model.predict([_texture(5)]).anomaly_maps[0].shape == (SIZE, SIZE)


def test_imagenet_weights_are_reloaded_from_cache_and_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("no download expected"))
    cached = tmp_path / "hub" / "checkpoints" / bb.imagenet_weights_filename("resnet18")
    cached.parent.mkdir(parents=True)
    torch.manual_seed(1)
    torch.save(resnet18().state_dict(), cached)  # stands in for the real ImageNet file
    model = _model(weights="imagenet", coreset_ratio=0.5).fit([_texture(s) for s in range(2)])
    state = model.state_tensors()
    assert not any(k.startswith("backbone.") for k in state)  # re-loaded from the cache, not stored
    restored = PatchCore(**model.get_config()).load_state_tensors(state)
    image = [_scratched(3)]
    assert np.array_equal(model.predict(image).image_scores, restored.predict(image).image_scores)
    assert restored.describe()["pretrained"] is True
    torch.manual_seed(2)
    torch.save(resnet18().state_dict(), cached)  # different weights under the same name
    with pytest.raises(bb.BackboneWeightsError, match="differ"):
        PatchCore(**model.get_config()).load_state_tensors(state)


def test_fits_and_scores_generated_dataset(tiny_dataset: Path) -> None:
    layout = open_category(tiny_dataset, "carpet")
    train = [load_rgb(s.path) for s in layout.samples("train")][:8]
    test = layout.samples("test")
    model = _model(coreset_ratio=1.0, batch_size=3).fit(train)  # full bank: every training patch kept
    pred = model.predict([load_rgb(s.path) for s in test])
    assert len(pred) == len(test)
    assert all(m.shape == load_rgb(s.path).shape[:2] for m, s in zip(pred.anomaly_maps, test))
    # Training images re-scored in other batches find their own patches: features do not depend
    # on batch composition, and fit and predict embed identically.
    train_scores = model.predict(train[::-1]).image_scores
    assert train_scores.max() < 0.02 * pred.image_scores.min()


def test_colour_features_and_border_padding_defaults_and_round_trip() -> None:
    """Random init appends scaled local colour and reflects the border; trained weights keep the paper's embedding."""
    assert (PatchCore(weights="none").border_padding, PatchCore(weights="none").colour_weight) == (32, 1.0)
    assert (PatchCore(weights="imagenet").border_padding, PatchCore(weights="imagenet").colour_weight) == (0, 0.0)
    model = _model(coreset_ratio=1.0).fit([_texture(seed) for seed in range(3)])
    bank = model.memory_bank_
    assert model.colour_transform_ is not None and model.colour_transform_.shape == (3, 3)
    net = model.network_dim
    net_var, colour_var = bank[:, :net].var(0).sum(), bank[:, net:net + 3].var(0).sum()
    assert colour_var == pytest.approx(float(net_var), rel=1e-3)  # colour_weight 1: equal total variance
    restored = PatchCore(**model.get_config()).load_state_tensors(model.state_tensors())
    assert torch.equal(restored.colour_transform_, model.colour_transform_)
    images = [_texture(50), _scratched(51)]
    assert np.allclose(restored.predict(images).image_scores, model.predict(images).image_scores)
    tinted = _texture(52).astype(np.float32)
    tinted[16:40, 16:40] *= np.array([0.6, 1.0, 1.2])  # a stain: colour changes, texture does not
    scores = model.predict([_texture(52), np.clip(tinted, 0, 255).astype(np.uint8)]).image_scores
    assert scores[1] > scores[0]
    with pytest.raises(ValueError, match="border_padding"):
        _model(border_padding=8)
    with pytest.raises(ValueError, match="colour"):
        PatchCore(**{**model.get_config(), "colour_weight": 0.0}).load_state_tensors(model.state_tensors())


def test_colour_is_relative_to_its_surroundings_and_older_artifacts_keep_absolute_colour() -> None:
    """A good item in another overall tint is not a defect; a local stain still is. Models saved
    before the surroundings existed (no 'colour_context' tensor) score with absolute colour."""
    assert PatchCore(weights="none").colour_context == 4 and PatchCore(weights="none", image_size=128).colour_context == 2
    assert PatchCore(weights="imagenet").colour_context == 0
    train = [_texture(seed) for seed in range(4)]
    tinted = np.clip(_texture(70).astype(np.float32) * np.array([1.0, 0.75, 0.55]), 0, 255).astype(np.uint8)
    stained = _texture(71).astype(np.float32)
    stained[20:36, 20:36] *= np.array([0.6, 1.0, 1.2])
    images = [_texture(72), tinted, np.clip(stained, 0, 255).astype(np.uint8)]
    relative = _model(coreset_ratio=1.0).fit(train)
    absolute = _model(coreset_ratio=1.0, colour_context=0).fit(train)
    assert relative.colour_context == 1  # 4 patches at 256 px, scaled to 64 px
    good, tint, stain = relative.predict(images).image_scores
    a_good, a_tint, a_stain = absolute.predict(images).image_scores
    assert tint / good < a_tint / a_good  # the whole-item tint counts less once colour is relative
    assert stain > tint and stain > good  # the stain still stands out
    saved = relative.state_tensors()
    assert float(saved["colour_context"]) == 1.0
    restored = PatchCore(**relative.get_config()).load_state_tensors(saved)
    assert np.allclose(restored.predict(images).image_scores, relative.predict(images).image_scores)
    legacy = {k: v for k, v in absolute.state_tensors().items()}
    assert "colour_context" not in legacy
    old = PatchCore(**{k: v for k, v in absolute.get_config().items() if k != "colour_context"})
    assert old.colour_context == 1  # the default of today ...
    old.load_state_tensors(legacy)
    assert old.colour_context == 0  # ... is not what the old model was fitted with
    assert np.allclose(old.predict(images).image_scores, absolute.predict(images).image_scores)
    with pytest.raises(ValueError, match="colour_context"):
        PatchCore(**relative.get_config()).load_state_tensors({**saved, "colour_context": torch.tensor([0.5], dtype=torch.float64)})
    with pytest.raises(ValueError, match="colour_context"):
        _model(colour_context=-1)
