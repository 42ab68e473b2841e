"""Fixtures for the data area: one small synthetic dataset shared by the whole test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from qc_models.data.synthetic import generate_dataset

#: Arguments of :func:`tiny_dataset`, for tests that need to know the expected counts.
TINY_DATASET_ARGS = {"size": 64, "n_train": 12, "n_test_good": 4, "n_per_defect": 3, "seed": 0}


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of a 64 px synthetic MVTec-layout dataset with every demo category (read-only: copy to modify)."""
    return generate_dataset(tmp_path_factory.mktemp("tiny_dataset") / "data", **TINY_DATASET_ARGS)
