"""Greedy k-center coreset selection (PatchCore's memory-bank subsampling).

The greedy rule picks, again and again, the point farthest from everything picked so far.
It is inherently sequential: one iteration per kept point, each reading all N points, so the
fit time is ``n_kept x (bytes of the projected points)``. The loop body is therefore one
matrix-vector product, one in-place ``minimum`` and one ``argmax`` over contiguous float32
data, and the points are first centred (better float precision for ||a||^2 + ||b||^2 - 2ab)
and projected with a seeded Gaussian (Johnson-Lindenstrauss) matrix to ``projection_dim``.
A low projection dimension keeps the projected points inside the CPU cache, which is what
makes ratio 0.1 affordable (see ``benchmarks/patchcore_speed.py``).

The loop runs on one torch thread: its operations are far too small to split, and on a shared
CPU each multi-threaded step waits for a descheduled worker (measured 20x slower with 2 threads
while other processes ran).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from qc_models.detectors.base import ProgressCallback

#: Value marking already picked points in the running minimum distance (distances are >= 0).
_PICKED = float("-inf")


def random_projection(features: torch.Tensor, dim: int | None, seed: int = 0) -> torch.Tensor:
    """Project ``(N, D)`` features to ``dim`` dimensions with a seeded Gaussian matrix.

    Returns float32 features unchanged when ``dim`` is None/0 or not smaller than D. Entries are
    N(0, 1/dim) so squared distances are preserved in expectation (Johnson-Lindenstrauss).
    """
    d_in = features.shape[1]
    if not dim or dim >= d_in:
        return features.float()
    gen = torch.Generator().manual_seed(int(seed))
    matrix = torch.randn(d_in, dim, generator=gen, dtype=torch.float32).div_(math.sqrt(dim))
    return features.float() @ matrix


def coreset_size(n_points: int, ratio: float, max_size: int | None = None) -> int:
    """Number of points kept: ``round(ratio * N)``, at least 1, at most ``max_size`` (None: no cap)."""
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"coreset ratio must be in (0, 1], got {ratio}")
    if max_size is not None and max_size < 1:
        raise ValueError(f"coreset max_size must be >= 1 or None, got {max_size}")
    n = max(1, min(n_points, int(round(ratio * n_points))))
    return n if max_size is None else min(n, int(max_size))


def _check(points: torch.Tensor, n: int) -> None:
    if points.ndim != 2 or points.shape[0] == 0:
        raise ValueError(f"expected a non-empty (N, D) tensor, got shape {tuple(points.shape)}")
    if not 1 <= n <= points.shape[0]:
        raise ValueError(f"cannot select {n} of {points.shape[0]} points")


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block, restoring the previous count after."""
    previous = torch.get_num_threads()
    if previous != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if previous != 1:
            torch.set_num_threads(previous)


def _start_index(n_points: int, seed: int) -> int:
    gen = torch.Generator().manual_seed(int(seed))
    return int(torch.randint(n_points, (1,), generator=gen))


def greedy_coreset_reference(points: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """Textbook greedy k-center with explicit differences. Slow; the yardstick for tests."""
    _check(points, n)
    x = points.double()
    min_d2 = torch.full((x.shape[0],), float("inf"), dtype=torch.float64)
    idx = _start_index(x.shape[0], seed)
    picked: list[int] = []
    for _ in range(n):
        picked.append(idx)
        min_d2 = torch.minimum(min_d2, ((x - x[idx]) ** 2).sum(1))
        min_d2[picked] = _PICKED
        idx = int(torch.argmax(min_d2))
    return torch.tensor(picked, dtype=torch.long)


def greedy_coreset(
    points: torch.Tensor,
    n: int,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> torch.Tensor:
    """Indices of ``n`` distinct points chosen by greedy k-center from a seeded random start.

    Each iteration is one fused pass: ``d2 = ||x||^2 - 2 x.c + ||c||^2``, ``min_d2 = min(min_d2,
    d2)``, next pick = ``argmax(min_d2)``. Picked points are marked so that duplicates can never
    be picked twice.
    """
    _check(points, n)
    x = points.float()
    x = (x - x.mean(0)).contiguous()  # distances unchanged; smaller norms, less cancellation
    n_points = x.shape[0]
    sq = (x * x).sum(1)
    min_d2 = torch.full((n_points,), float("inf"))
    d2 = torch.empty(n_points)
    picked = torch.empty(n, dtype=torch.long)
    idx = _start_index(n_points, seed)
    step = max(1, n // 100)
    with single_thread():
        for k in range(n):
            picked[k] = idx
            torch.addmv(sq, x, x[idx], alpha=-2.0, out=d2).add_(sq[idx])
            torch.minimum(min_d2, d2, out=min_d2)
            min_d2[idx] = _PICKED
            idx = int(torch.argmax(min_d2))
            if progress is not None and (k % step == 0 or k == n - 1):
                progress("coreset", (k + 1) / n)
    return picked


def select_coreset(
    features: torch.Tensor,
    ratio: float,
    projection_dim: int | None = 32,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    max_size: int | None = None,
) -> torch.Tensor:
    """Indices of the ``ratio`` share (at most ``max_size``) of ``(N, D)`` features kept by greedy k-center."""
    n = coreset_size(features.shape[0], ratio, max_size)
    if n == features.shape[0]:
        return torch.arange(n)
    return greedy_coreset(random_projection(features, projection_dim, seed), n, seed, progress)
