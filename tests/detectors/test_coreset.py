"""Greedy k-center coreset and exact nearest neighbours: compared with brute-force references."""

from __future__ import annotations

import pytest
import torch

from qc_models.detectors.coreset import (
    coreset_size,
    greedy_coreset,
    greedy_coreset_reference,
    random_projection,
    select_coreset,
)
from qc_models.detectors.nearest_neighbours import NearestNeighbourIndex, nearest_neighbours


def _points(n: int, d: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("n", "d", "k"), [(60, 2, 20), (300, 8, 90), (120, 32, 120)])
def test_greedy_matches_naive_reference(n: int, d: int, k: int) -> None:
    pts = _points(n, d, seed=n) * 3.0 + 5.0  # an offset exercises the centring
    fast = greedy_coreset(pts, k, seed=1)
    ref = greedy_coreset_reference(pts, k, seed=1)
    assert fast.tolist() == ref.tolist()


def test_greedy_first_picks_spread_over_far_clusters() -> None:
    corners = torch.tensor([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0], [100.0, 100.0]])
    pts = (corners.repeat_interleave(25, dim=0) + _points(100, 2) * 0.5).contiguous()
    picks = greedy_coreset(pts, 4, seed=3)
    cluster = (picks // 25).tolist()
    assert sorted(cluster) == [0, 1, 2, 3]  # one pick per cluster before any second pick
    # Each new pick is the point farthest from the previous picks.
    chosen = pts[picks[:2]]
    d_to_first = torch.cdist(pts, chosen[:1])[:, 0]
    assert int(picks[1]) == int(torch.argmax(d_to_first))


def test_indices_unique_and_count_follows_ratio() -> None:
    feats = _points(1000, 64)
    idx = select_coreset(feats, 0.05, projection_dim=16, seed=0)
    assert idx.numel() == coreset_size(1000, 0.05) == 50
    assert idx.unique().numel() == 50
    assert int(idx.min()) >= 0 and int(idx.max()) < 1000


def test_max_size_caps_the_count_the_ratio_gives() -> None:
    assert coreset_size(1000, 0.05, max_size=20) == 20
    assert coreset_size(1000, 0.05, max_size=500) == 50  # the cap only ever lowers the count
    assert coreset_size(1000, 0.05, max_size=None) == 50
    feats = _points(1000, 16)
    idx = select_coreset(feats, 0.05, projection_dim=8, seed=0, max_size=20)
    assert idx.numel() == 20 and idx.unique().numel() == 20
    # Greedy picks are nested: the capped set is the first 20 picks of the uncapped one.
    assert idx.tolist() == select_coreset(feats, 0.05, projection_dim=8, seed=0)[:20].tolist()
    with pytest.raises(ValueError, match="max_size"):
        coreset_size(1000, 0.05, max_size=0)


def test_duplicates_never_picked_twice() -> None:
    pts = torch.cat([torch.zeros(30, 4), torch.ones(1, 4), torch.full((1, 4), 3.0)])
    idx = greedy_coreset(pts, 10, seed=0)
    assert idx.unique().numel() == 10
    distinct_first = {float(pts[i, 0]) for i in idx[:3].tolist()}
    assert distinct_first == {0.0, 1.0, 3.0}  # the three distinct values come before any duplicate


def test_selection_is_deterministic_per_seed() -> None:
    feats = _points(400, 32)
    a = select_coreset(feats, 0.1, projection_dim=8, seed=5)
    b = select_coreset(feats, 0.1, projection_dim=8, seed=5)
    c = select_coreset(feats, 0.1, projection_dim=8, seed=6)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_random_projection_preserves_distances_on_average() -> None:
    feats = _points(200, 384)
    proj = random_projection(feats, 128, seed=0)
    assert proj.shape == (200, 128)
    ratio = torch.pdist(proj).pow(2) / torch.pdist(feats).pow(2)
    assert abs(float(ratio.mean()) - 1.0) < 0.1
    assert torch.equal(random_projection(feats, 500, seed=0), feats)  # no-op when not reducing


def test_bad_ratio_and_size_are_refused() -> None:
    with pytest.raises(ValueError, match="ratio"):
        coreset_size(10, 0.0)
    with pytest.raises(ValueError, match="cannot select"):
        greedy_coreset(_points(5, 2), 6)


@pytest.mark.parametrize("k", [1, 3])
def test_nearest_neighbours_equal_brute_force(k: int) -> None:
    queries = _points(257, 24, seed=1) + 2.0
    bank = _points(101, 24, seed=2) + 2.0
    dist, idx = nearest_neighbours(queries, bank, k=k, chunk_elements=1000)  # forces many chunks
    ref = torch.cdist(queries.double(), bank.double())
    ref_d, ref_i = torch.topk(ref, k, dim=1, largest=False)
    assert torch.equal(idx, ref_i)
    torch.testing.assert_close(dist.double(), ref_d, atol=1e-4, rtol=1e-4)


def test_nearest_neighbours_exact_match_is_near_zero() -> None:
    bank = _points(50, 16) * 10.0
    dist, idx = nearest_neighbours(bank[[3, 7]], bank)
    assert idx[:, 0].tolist() == [3, 7]
    # fp32 expansion: error ~ sqrt(eps) * norm; clamped at 0 before the square root, never NaN
    assert float(dist.max()) < 1e-3 * float(bank[[3, 7]].norm(dim=1).max())
    assert not torch.isnan(dist).any()


def test_index_centring_keeps_precision_for_offset_features() -> None:
    bank = _points(200, 32, seed=3) + 100.0  # large shared mean, as post-ReLU CNN features have
    queries = bank[:20] + 0.01 * _points(20, 32, seed=4)
    dist, idx = NearestNeighbourIndex(bank).query(queries)
    assert idx[:, 0].tolist() == list(range(20))
    ref = torch.linalg.vector_norm((queries - bank[:20]).double(), dim=1)
    torch.testing.assert_close(dist[:, 0].double(), ref, atol=2e-3, rtol=1e-2)


def test_greedy_loop_restores_the_thread_count() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        greedy_coreset(_points(50, 4), 5)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
