"""Fixtures for the models area: one tiny trained registry shared by the whole test session."""

from __future__ import annotations

from pathlib import Path

import pytest

#: Category of ``tiny_models_dir`` (a texture of the synthetic demo data).
TINY_MODELS_CATEGORY = "carpet"


@pytest.fixture(scope="session")
def tiny_models_dir(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """``(models_dir, dataset_root, category)``: cae, unet, patchcore and the ensemble trained on
    the 64 px ``tiny_dataset`` (1 epoch, random-init backbone, small coreset) and evaluated, so
    every model.json carries metrics. Read-only for tests: copy the folder to modify it."""
    from qc_models.evaluation import evaluate_category
    from qc_models.training import train_category

    models_dir = tmp_path_factory.mktemp("tiny_models") / "models"
    train_category(
        tiny_dataset,
        TINY_MODELS_CATEGORY,
        out=models_dir,
        weights="none",
        size=64,
        epochs=1,
        seed=0,
        profile="demo",
        detector_overrides={"patchcore": {"coreset_ratio": 0.1}},
    )
    evaluate_category(tiny_dataset, TINY_MODELS_CATEGORY, models_dir)
    return models_dir, tiny_dataset, TINY_MODELS_CATEGORY
