"""Runtime helpers: what benchmarks record about the machine their timings come from."""

from __future__ import annotations

import os

import torch

from qc_models.runtime import cpu_model, machine_description


def test_machine_description_names_the_cpu_and_the_torch_build() -> None:
    info = machine_description()
    assert info["cpu_count"] == os.cpu_count()
    assert info["torch"] == torch.__version__ and info["torch_threads"] == torch.get_num_threads()
    assert info["cpu"] == cpu_model()
    if os.path.exists("/proc/cpuinfo"):  # Linux: the model name is known
        assert info["cpu"]
    assert isinstance(info["cpu_capability"], str) and info["cpu_capability"]
