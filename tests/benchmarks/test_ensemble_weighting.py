"""The ensemble-weighting study reproduces the saved ensemble and reports every part of its evidence."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_SPEC = importlib.util.spec_from_file_location(
    "ensemble_weighting", Path(__file__).resolve().parents[2] / "benchmarks" / "ensemble_weighting.py")
study = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(study)


def test_study_on_a_trained_registry(tiny_models_dir: tuple[Path, Path, str], tmp_path: Path) -> None:
    from qc_models.evaluation import evaluate_category
    from qc_models.detectors.synthetic_anomalies import KINDS

    models_dir, root, category = tiny_models_dir
    out = tmp_path / "study.json"
    result = study.main([str(root), "--models", str(models_dir), "--categories", category, "--per-kind", "1",
                         "--bootstrap", "3", "--inner", "2", "--out", str(out)])
    r = result["results"][category]
    assert out.is_file()
    # The saved ensemble's scores are recomputed from its members, so its AUROC must be the evaluation's.
    expected = evaluate_category(root, category, models_dir, models=["ensemble"])["ensemble"]["image_auroc"]
    assert r["saved_ensemble_auroc"] == pytest.approx(expected, abs=1e-9)
    assert set(r["test_auroc"]) == set(r["members"]) == {"cae", "unet", "patchcore"}
    assert all(set(v) == set(KINDS) for v in r["separation_per_kind"].values())
    assert r["saved_gap"] == pytest.approx(r["saved_ensemble_auroc"] - max(r["test_auroc"].values()))
    boot = r["bootstrap"]
    assert boot["n"] == 3 and sum(boot["weight_mean"].values()) == pytest.approx(1.0, abs=1e-3)
    assert boot["gap"]["p10"] <= boot["gap"]["mean"] <= boot["gap"]["p90"]
    # Hindsight is a maximum over a grid that contains every single member alone.
    assert r["hindsight"]["best_auroc"] >= max(r["test_auroc"].values()) - 1e-12
    assert 0 < r["hindsight"]["share_within_0_01"] <= 1


def test_kinds_restrict_the_ensembles_synthetic_set() -> None:
    from qc_models.detectors.ensemble import synthetic_set

    rng = np.random.default_rng(0)
    images = [rng.integers(90, 160, (48, 48, 3), dtype=np.uint8) for _ in range(3)]
    # Same seed, other kind: were ``kinds`` ignored, both draws would be the same images.
    for on_part in (False, True):
        warped, areas = synthetic_set(images, seed=1, per_image=2, on_part=on_part, kinds=["warp"])
        blobs, _ = synthetic_set(images, seed=1, per_image=2, on_part=on_part, kinds=["blob"])
        assert len(warped) == 6 and areas.shape == (6,) and (areas > 0).all()
        assert all(not np.array_equal(a, b) for a, b in zip(warped, blobs))
    with pytest.raises(ValueError, match="unknown anomaly kinds"):
        synthetic_set(images, seed=1, per_image=1, kinds=["crack"])
