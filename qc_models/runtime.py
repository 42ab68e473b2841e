"""Process-wide runtime settings for torch (thread count, determinism helpers).

Two cores are shared by the dashboard, batch jobs and tests; ``QC_TORCH_THREADS``
lets an operator cap torch's intra-op threads without touching code.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

_configured = False


def configure_torch() -> None:
    """Apply ``QC_TORCH_THREADS`` once per process (no-op when unset)."""
    global _configured
    if _configured:
        return
    threads = os.environ.get("QC_TORCH_THREADS")
    if threads:
        torch.set_num_threads(max(1, int(threads)))
    _configured = True


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch; returns a NumPy generator for the caller's own draws."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return np.random.default_rng(seed)
