"""Shared pytest configuration: fixtures live in one plugin module per area."""

import os

os.environ.setdefault("QC_TORCH_THREADS", "2")  # 2-core CI machines

pytest_plugins = [
    "tests.fixtures_data",
    "tests.fixtures_models",
    "tests.fixtures_db",
]
