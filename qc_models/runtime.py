"""Process-wide runtime settings for torch (thread count, determinism helpers) and what the machine is.

Two cores are shared by the dashboard, batch jobs and tests; ``QC_TORCH_THREADS``
lets an operator cap torch's intra-op threads without touching code.
"""

from __future__ import annotations

import os
import platform
import random
from pathlib import Path
from typing import Any

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


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else :func:`platform.processor`); "" when unknown."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def machine_description() -> dict[str, Any]:
    """What a benchmark's timings depend on, for its JSON: the same code scored 13 images/s on one
    2-core machine and 22-26 on another, and trained a different metal_nut U-Net (docs/results.md)."""
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }
