"""Factorized top-k accuracy against a whole candidate corpus."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from towerrec.metrics.base import Metric, _weights

Corpus = tuple[torch.Tensor, torch.Tensor | np.ndarray | Sequence[Any] | None]


def _int64(values: torch.Tensor | np.ndarray | Sequence[Any]) -> torch.Tensor:
    """Ids as a fresh int64 tensor (tensors, arrays and lists alike)."""
    if isinstance(values, torch.Tensor):
        return values.detach().to(torch.int64).clone()
    return torch.as_tensor(np.array(values), dtype=torch.int64)


class SeenItems:
    """Items to leave out of each query's ranking (e.g. everything the user rated in training).

    Stored as CSR over query ids: `indptr[q]:indptr[q+1]` slices `items` (corpus positions).
    """

    def __init__(self, indptr: torch.Tensor, items: torch.Tensor) -> None:
        self.indptr = indptr.to(torch.int64)
        self.items = items.to(torch.int64)

    @classmethod
    def from_pairs(
        cls,
        query_ids: torch.Tensor | np.ndarray,
        items: torch.Tensor | np.ndarray,
        num_queries: int | None = None,
    ) -> SeenItems:
        """[P] query ids, [P] item positions -> CSR of each query's items (duplicates kept once)."""
        q, i = _int64(query_ids), _int64(items)
        if q.shape != i.shape:
            raise ValueError(
                f"SeenItems.from_pairs got {q.numel()} query ids and {i.numel()} items."
            )
        n = int(num_queries if num_queries is not None else (int(q.max()) + 1 if q.numel() else 0))
        key = torch.unique(q * (int(i.max()) + 1 if i.numel() else 1) + i)
        width = int(i.max()) + 1 if i.numel() else 1
        q, i = key // width, key % width
        counts = torch.bincount(q, minlength=n)
        indptr = torch.zeros(n + 1, dtype=torch.int64)
        indptr[1:] = torch.cumsum(counts, 0)
        return cls(indptr, i)

    def pairs(self, query_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B] query ids -> (rows, items): row r of the batch excludes corpus position items[j]."""
        q = query_ids.to(torch.int64).reshape(-1)
        known = q < len(self.indptr) - 1
        q = torch.where(known, q, torch.zeros_like(q))
        starts = self.indptr[q]
        counts = torch.where(known, self.indptr[q + 1] - starts, torch.zeros_like(q))
        rows = torch.repeat_interleave(torch.arange(len(q)), counts)
        offsets = torch.arange(int(counts.sum())) - torch.repeat_interleave(
            torch.cumsum(counts, 0) - counts, counts
        )
        return rows, self.items[torch.repeat_interleave(starts, counts) + offsets]


def corpus_ranks(
    queries: torch.Tensor,
    corpus: torch.Tensor,
    positive_scores: torch.Tensor,
    *,
    true_positions: torch.Tensor | None = None,
    exclude: tuple[torch.Tensor, torch.Tensor] | None = None,
    chunk_size: int = 65536,
) -> torch.Tensor:
    """[B, D] queries, [N, D] corpus, [B] positive scores -> [B] int64 ranks (0 = best).

    The rank of a positive is the number of corpus candidates scoring strictly higher, so a tie
    with the true candidate counts in its favour (TFRS semantics). With `true_positions` the true
    candidate's own column is left out of the count; `exclude=(rows, positions)` leaves those
    columns out of the given rows (already-seen items). Scored in chunks of the corpus.
    """
    q = queries.detach()
    pos = positive_scores.detach().reshape(-1, 1).to(q.dtype)
    ranks = torch.zeros(q.shape[0], dtype=torch.int64)
    n = corpus.shape[0]
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        scores = q @ corpus[start:stop].detach().T
        if true_positions is not None:
            inside = (true_positions >= start) & (true_positions < stop)
            rows = torch.nonzero(inside).reshape(-1)
            scores[rows, true_positions[rows] - start] = float("-inf")
        if exclude is not None:
            er, ec = exclude
            inside = (ec >= start) & (ec < stop)
            scores[er[inside], ec[inside] - start] = float("-inf")
        ranks += (scores > pos).sum(dim=1, dtype=torch.int32)  # int64 bool sums are 4x slower
    return ranks


class FactorizedTopK(Metric):
    """Top-k accuracy of each query's true candidate among the whole corpus, for several k.

    `candidates` gives the corpus: a callable returning `(embeddings [N, D], ids [N] or None)`
    (the candidate tower applied to every candidate; called once after each `reset`, so the
    corpus is recomputed at each evaluation), or a fixed `[N, D]` tensor, or `(tensor, ids)`.
    `update(query [B, D], true_candidate [B, D], ...)` ranks each true candidate by how many
    corpus candidates score strictly higher (ties count as hits). `compute()` returns
    `{"top_1": ..., "top_5": ...}` and, with `ndcg=True`, `ndcg_k` and `mrr` too.
    """

    def __init__(
        self,
        candidates: Callable[[], Corpus] | torch.Tensor | Corpus | None = None,
        ks: Sequence[int] = (1, 5, 10, 50, 100),
        *,
        seen: SeenItems | None = None,
        chunk_size: int = 65536,
        ndcg: bool = False,
        prefix: str = "",
    ) -> None:
        ks = tuple(ks)
        if not ks or any(not isinstance(k, int) or k < 1 for k in ks):
            raise ValueError(
                f"The 'ks' parameter of FactorizedTopK must be positive ints. Got {ks!r} instead."
            )
        self.ks = ks
        self.candidates = candidates
        self.seen = seen
        self.chunk_size = chunk_size
        self.ndcg = ndcg
        self.prefix = prefix
        self.name = f"{prefix}top_k"
        self._corpus: torch.Tensor | None = None
        self._position_of: torch.Tensor | None = None
        self.reset()

    def reset(self) -> None:
        self._hits = torch.zeros(len(self.ks), dtype=torch.float64)
        self._ndcg = torch.zeros(len(self.ks), dtype=torch.float64)
        self._rr = 0.0
        self._weight = 0.0
        if callable(self.candidates):
            self._corpus = None  # recomputed on the next update

    def set_candidates(
        self, embeddings: torch.Tensor, ids: torch.Tensor | np.ndarray | None = None
    ) -> None:
        """[N, D] corpus embeddings, optional [N] int ids: use this corpus until changed."""
        self.candidates = (embeddings, ids)
        self._corpus = None

    def _load_corpus(self) -> torch.Tensor:
        if self._corpus is not None:
            return self._corpus
        cand = self.candidates
        if cand is None:
            raise ValueError(
                "FactorizedTopK has no candidate corpus: pass candidates=... (a callable returning "
                "(embeddings, ids)) or call set_candidates(embeddings, ids)."
            )
        if callable(cand):
            with torch.no_grad():
                cand = cand()
        emb, ids = cand if isinstance(cand, tuple) else (cand, None)
        self._corpus = emb.detach().to(torch.float32).contiguous()
        self._position_of = None
        if ids is not None:
            ids_t = torch.as_tensor(
                ids.clone() if isinstance(ids, torch.Tensor) else np.array(ids), dtype=torch.int64
            )
            lookup = torch.full((int(ids_t.max()) + 2,), -1, dtype=torch.int64)
            lookup[ids_t] = torch.arange(len(ids_t))
            self._position_of = lookup
        return self._corpus

    def update(
        self,
        query_embeddings: torch.Tensor,
        true_candidate_embeddings: torch.Tensor,
        sample_weight: torch.Tensor | None = None,
        *,
        true_candidate_ids: torch.Tensor | None = None,
        query_ids: torch.Tensor | None = None,
    ) -> None:
        """[B, D] queries, [B, D] true candidates, optional [B] weights, [B] candidate ids, [B] query ids.

        `true_candidate_ids` (ids as in the corpus) lets the true candidate's own corpus column be
        left out of the count; `query_ids` with `seen=` leaves each query's seen items out.
        """
        corpus = self._load_corpus()
        q = query_embeddings.detach().to(torch.float32)
        positive = (q * true_candidate_embeddings.detach().to(torch.float32)).sum(dim=-1)
        true_pos = None
        if true_candidate_ids is not None and self._position_of is not None:
            ids = (
                true_candidate_ids.reshape(-1).to(torch.int64).clamp(0, len(self._position_of) - 1)
            )
            true_pos = self._position_of[ids]
            if bool((true_pos < 0).any()):
                true_pos = None  # a true candidate outside the corpus: fall back to score ties
        exclude = None
        if self.seen is not None:
            if query_ids is None:
                raise ValueError("FactorizedTopK(seen=...) needs query_ids in update().")
            exclude = self.seen.pairs(query_ids.reshape(-1))
        ranks = corpus_ranks(
            q,
            corpus,
            positive,
            true_positions=true_pos,
            exclude=exclude,
            chunk_size=self.chunk_size,
        )
        w = _weights(sample_weight, ranks.to(torch.float64))
        ks = torch.tensor(self.ks).reshape(-1, 1)
        hits = (ranks.reshape(1, -1) < ks).to(torch.float64)
        self._hits += (hits * w).sum(dim=1)
        if self.ndcg:
            gain = 1.0 / torch.log2(ranks.to(torch.float64) + 2.0)
            self._ndcg += (hits * gain * w).sum(dim=1)
            self._rr += float((w / (ranks.to(torch.float64) + 1.0)).sum())
        self._weight += float(w.sum())

    def compute(self) -> dict[str, float]:
        denom = self._weight if self._weight > 0 else float("nan")
        out = {
            f"{self.prefix}top_{k}": float(h) / denom
            for k, h in zip(self.ks, self._hits, strict=True)
        }
        if self.ndcg:
            out.update(
                {
                    f"{self.prefix}ndcg_{k}": float(g) / denom
                    for k, g in zip(self.ks, self._ndcg, strict=True)
                }
            )
            out[f"{self.prefix}mrr"] = self._rr / denom
        return out
