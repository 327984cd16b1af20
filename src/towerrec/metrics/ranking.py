"""Ranking metrics over scored lists: recall@k, NDCG@k, MRR, and in-batch top-k accuracy."""

from __future__ import annotations

import math

import torch

from towerrec.metrics.base import Metric, _weights


def _topk_relevance(scores: torch.Tensor, relevant: torch.Tensor, k: int) -> torch.Tensor:
    k = min(k, scores.shape[-1])
    idx = torch.topk(scores, k, dim=-1).indices
    return torch.gather(relevant.to(torch.float64), -1, idx)


def recall_at_k(scores: torch.Tensor, relevant: torch.Tensor, k: int) -> torch.Tensor:
    """[B, N] scores, [B, N] 0/1 relevance -> [B] share of relevant items found in the top k."""
    found = _topk_relevance(scores, relevant, k).sum(-1)
    total = relevant.to(torch.float64).sum(-1)
    return torch.where(total > 0, found / total.clamp(min=1), torch.zeros_like(found))


def ndcg_at_k(scores: torch.Tensor, relevant: torch.Tensor, k: int) -> torch.Tensor:
    """[B, N] scores, [B, N] 0/1 relevance -> [B] normalised discounted cumulative gain at k."""
    rel = _topk_relevance(scores, relevant, k)
    discount = 1.0 / torch.log2(torch.arange(rel.shape[-1], dtype=torch.float64) + 2.0)
    dcg = (rel * discount).sum(-1)
    n_rel = relevant.to(torch.int64).sum(-1).clamp(max=rel.shape[-1])
    ideal = torch.cumsum(discount, 0)
    idcg = torch.where(n_rel > 0, ideal[(n_rel - 1).clamp(min=0)], torch.ones_like(dcg))
    return torch.where(n_rel > 0, dcg / idcg, torch.zeros_like(dcg))


def mrr(scores: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """[B, N] scores, [B, N] 0/1 relevance -> [B] reciprocal rank of the first relevant item."""
    order = torch.argsort(scores, dim=-1, descending=True)
    rel = torch.gather(relevant.to(torch.bool), -1, order)
    first = torch.where(
        rel.any(-1),
        rel.to(torch.int64).argmax(-1),
        torch.full_like(rel[:, 0], -1, dtype=torch.int64),
    )
    return torch.where(
        first >= 0,
        1.0 / (first.to(torch.float64) + 1.0),
        torch.zeros(len(first), dtype=torch.float64),
    )


class BatchTopK(Metric):
    """In-batch top-k accuracy of retrieval logits: is the positive among the k best of its row?

    `update(labels [B, C] one-hot, scores [B, C], sample_weight [B])`; a tie with the positive
    counts as a hit.
    """

    def __init__(self, k: int = 1, name: str | None = None) -> None:
        self.k = k
        self.name = name or f"batch_top_{k}"
        self.reset()

    def reset(self) -> None:
        self._hits = 0.0
        self._weight = 0.0

    def update(
        self, labels: torch.Tensor, scores: torch.Tensor, sample_weight: torch.Tensor | None = None
    ) -> None:
        """[B, C] one-hot labels, [B, C] scores, optional [B] weights: accumulate."""
        s = scores.detach()
        pos = (s * labels).sum(-1, keepdim=True)
        better = ((s > pos) & (labels < 0.5)).sum(-1)
        hits = (better < self.k).to(torch.float64)
        w = _weights(sample_weight, hits)
        self._hits += float((hits * w).sum())
        self._weight += float(w.sum())

    def compute(self) -> dict[str, float]:
        return {self.name: self._hits / self._weight if self._weight > 0 else math.nan}
