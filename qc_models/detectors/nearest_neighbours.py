"""Exact Euclidean nearest neighbours by chunked matrix products.

Scoring compares every patch of an image (about a thousand) with every memory-bank row
(thousands): one GEMM per chunk, ``||q||^2 + ||b||^2 - 2 q.b`` clamped at 0, then a square root,
is the fastest exact method on a CPU. Queries are chunked so that the distance block stays
around ``chunk_elements`` floats and never grows with the batch size. The expansion loses
precision when the norms are large compared with the distances (CNN features are all
positive, so they share a large mean): :class:`NearestNeighbourIndex` centres bank and
queries on the bank mean first, which leaves distances unchanged.
"""

from __future__ import annotations

import torch

#: Default size of one query-by-bank distance block, in float32 elements (32 MiB).
CHUNK_ELEMENTS = 1 << 23


def squared_norms(x: torch.Tensor) -> torch.Tensor:
    """Row-wise squared Euclidean norms of an ``(N, D)`` tensor."""
    return (x * x).sum(1)


def nearest_neighbours(
    queries: torch.Tensor,
    bank: torch.Tensor,
    k: int = 1,
    bank_sq: torch.Tensor | None = None,
    chunk_elements: int = CHUNK_ELEMENTS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances and indices of the ``k`` nearest ``bank`` rows of each query, nearest first.

    ``queries`` is ``(Q, D)``, ``bank`` is ``(M, D)``; returns two ``(Q, k)`` tensors (float32
    distances, int64 indices). ``bank_sq`` (the bank's squared norms) may be passed to avoid
    recomputing it for every batch.
    """
    if queries.ndim != 2 or bank.ndim != 2 or queries.shape[1] != bank.shape[1]:
        raise ValueError(f"shape mismatch: queries {tuple(queries.shape)} vs bank {tuple(bank.shape)}")
    if not 1 <= k <= bank.shape[0]:
        raise ValueError(f"k={k} but the bank has {bank.shape[0]} rows")
    q = queries.float()
    b = bank.float()
    b_sq = squared_norms(b) if bank_sq is None else bank_sq
    rows = max(1, chunk_elements // b.shape[0])
    dists = torch.empty((q.shape[0], k))
    index = torch.empty((q.shape[0], k), dtype=torch.long)
    bt = b.t()
    for start in range(0, q.shape[0], rows):
        qc = q[start : start + rows]
        block = torch.addmm(b_sq.unsqueeze(0), qc, bt, alpha=-2.0)  # ||b||^2 - 2 q.b
        if k == 1:
            val, idx = block.min(dim=1, keepdim=True)
        else:
            val, idx = torch.topk(block, k, dim=1, largest=False, sorted=True)
        val.add_(squared_norms(qc).unsqueeze(1)).clamp_(min=0.0).sqrt_()
        dists[start : start + rows] = val
        index[start : start + rows] = idx
    return dists, index


class NearestNeighbourIndex:
    """A memory bank prepared once for many queries: centred, with cached squared norms."""

    def __init__(self, bank: torch.Tensor) -> None:
        if bank.ndim != 2 or bank.shape[0] == 0:
            raise ValueError(f"expected a non-empty (M, D) bank, got shape {tuple(bank.shape)}")
        self.centre = bank.float().mean(0)
        self.bank = (bank.float() - self.centre).contiguous()  # centred rows
        self.bank_sq = squared_norms(self.bank)

    def __len__(self) -> int:
        return int(self.bank.shape[0])

    def centred(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the index's centred coordinates (distances to bank rows are unchanged)."""
        return x.float() - self.centre

    def query(self, queries: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Distances and indices of the ``k`` nearest bank rows of each ``(Q, D)`` query."""
        return nearest_neighbours(self.centred(queries), self.bank, k=k, bank_sq=self.bank_sq)


def reweighted_scores(index: NearestNeighbourIndex, worst: torch.Tensor, nearest: torch.Tensor, score: torch.Tensor,
                      num_neighbours: int) -> torch.Tensor:
    """PatchCore's Eq. 7: image scores ``score`` of the worst patches ``worst`` ``(B, D)``, re-weighted.

    ``w = 1 - exp(||m_test - m*||) / sum_{m in N_b(m*)} exp(||m_test - m||)``, where ``m_test`` is
    the worst patch, ``m*`` its nearest bank row (``nearest``, indices into the index's bank) and
    ``N_b(m*)`` the ``num_neighbours`` bank rows nearest to ``m*``: a patch far from a sparse bank
    region is down-weighted.
    """
    m_test = index.centred(worst)  # (B, D), in the index's centred coordinates
    m_star = index.bank[nearest]  # (B, D)
    k = min(num_neighbours, len(index))
    _, support = nearest_neighbours(m_star, index.bank, k=k, bank_sq=index.bank_sq)  # (B, k)
    dist = torch.linalg.vector_norm(index.bank[support] - m_test.unsqueeze(1), dim=2)  # (B, k)
    return (1.0 - torch.exp(score - torch.logsumexp(dist, dim=1))) * score
