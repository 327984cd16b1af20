"""The retrieval task: in-batch softmax over query-candidate dot products."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from towerrec.metrics.base import Metric
from towerrec.metrics.topk import FactorizedTopK
from towerrec.tasks._softmax import fused_in_batch_softmax
from towerrec.tasks.base import Task, as_metric_list

# Added to the logits of accidental hits, as TFRS does (finite, so no NaN in the softmax).
MIN_LOGIT = float(np.finfo(np.float32).min) / 100.0


def retrieval_scores(query: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
    """[B, D] or [B, H, D] queries, [C, D] candidates -> [B, C] scores (max over the H heads)."""
    if query.dim() == 3:
        return torch.einsum("bhd,cd->bhc", query, candidate).amax(dim=1)
    if query.dim() != 2:
        raise ValueError(
            f"Retrieval expects queries of shape [B, D] or [B, H, D]; got {tuple(query.shape)}."
        )
    return query @ candidate.T


def hard_negative_mining(
    logits: torch.Tensor, labels: torch.Tensor, num_hard_negatives: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, C] logits, [B, C] one-hot labels -> [B, n+1] logits and labels: the positive and the n
    highest-scoring negatives of each row.
    """
    k = min(num_hard_negatives + 1, logits.shape[1])
    # The positive is pushed to the front by a large offset, then the best negatives follow.
    _, idx = torch.topk(logits + labels * (-MIN_LOGIT), k, dim=1)
    return torch.gather(logits, 1, idx), torch.gather(labels, 1, idx)


def remove_accidental_hits(
    logits: torch.Tensor, labels: torch.Tensor, candidate_ids: torch.Tensor
) -> torch.Tensor:
    """[B, C] logits, [B, C] one-hot labels, [C] candidate ids -> [B, C] logits where every column
    holding the same candidate as the row's positive (other than the positive) gets a very large
    negative logit.
    """
    ids = candidate_ids.reshape(-1)
    positive_ids = ids[labels.argmax(dim=1)]
    duplicate = (ids[None, :] == positive_ids[:, None]) & (labels < 0.5)
    return logits + duplicate.to(logits.dtype) * MIN_LOGIT


class Retrieval(Task):
    """[B, D] queries, [C, D] candidates (C >= B; row i's positive is candidate i) -> scalar loss.

    Softmax cross-entropy of `Q @ Cᵀ` against the identity, summed over the batch (TFRS's
    default; `reduction="mean"` divides by the batch size). Options are applied in TFRS's order:
    max over heads for `[B, H, D]` queries -> divide by `temperature` -> subtract
    `log(clip(candidate_sampling_probability, 1e-6, 1))` -> remove accidental hits (when
    `remove_accidental_hits` and `candidate_ids` are given) -> keep the positive and
    `num_hard_negatives` best negatives -> loss.

    `metrics` (e.g. `FactorizedTopK`) are updated with the queries and the positive candidates
    when `compute_metrics`; `batch_metrics` (e.g. `BatchTopK`) with the in-batch labels and logits.
    """

    def __init__(
        self,
        metrics: Metric | Sequence[Metric] | None = None,
        *,
        batch_metrics: Metric | Sequence[Metric] | None = None,
        temperature: float | None = None,
        num_hard_negatives: int | None = None,
        remove_accidental_hits: bool = False,
        reduction: str = "sum",
        fused: bool = True,
        name: str = "retrieval",
    ) -> None:
        super().__init__(name)
        if reduction not in ("sum", "mean"):
            raise ValueError(
                f"The 'reduction' parameter of Retrieval must be 'sum' or 'mean'. Got {reduction!r} instead."
            )
        if temperature is not None and not temperature > 0:
            raise ValueError(
                f"The 'temperature' parameter of Retrieval must be > 0. Got {temperature!r} instead."
            )
        if num_hard_negatives is not None and (
            not isinstance(num_hard_negatives, int) or num_hard_negatives < 1
        ):
            raise ValueError(
                f"The 'num_hard_negatives' parameter of Retrieval must be a positive int. Got {num_hard_negatives!r} instead."
            )
        self.metrics = as_metric_list(metrics)
        self.batch_metrics = as_metric_list(batch_metrics)
        self.temperature = temperature
        self.num_hard_negatives = num_hard_negatives
        self.remove_accidental_hits = remove_accidental_hits
        self.reduction = reduction
        self.fused = fused

    def all_metrics(self) -> list[Metric]:
        return [*self.metrics, *self.batch_metrics]

    def forward(
        self,
        query_embeddings: torch.Tensor,
        candidate_embeddings: torch.Tensor,
        sample_weight: torch.Tensor | None = None,
        candidate_sampling_probability: torch.Tensor | None = None,
        candidate_ids: torch.Tensor | None = None,
        compute_metrics: bool = True,
        compute_batch_metrics: bool = True,
        query_ids: torch.Tensor | None = None,
        positive_indices: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """[B, D] or [B, H, D] queries, [C, D] candidates, optional [B] weights, [C] sampling
        probabilities, [C] candidate ids, [B] query ids -> scalar loss.

        `positive_indices` ([B] ints) turns the candidates into a shared set (e.g. the whole
        corpus: a full softmax) in which row i's positive is column `positive_indices[i]`,
        instead of column i.
        """
        b = query_embeddings.shape[0]
        c = candidate_embeddings.shape[0]
        if positive_indices is not None:
            positive_indices = positive_indices.reshape(-1).to(torch.int64)
            if positive_indices.numel() != b:
                raise ValueError(
                    f"positive_indices has {positive_indices.numel()} values for {b} queries."
                )
        elif c < b:
            raise ValueError(
                f"Retrieval needs at least as many candidates as queries (row i's positive is "
                f"candidate i); got {b} queries and {c} candidates."
            )
        if query_embeddings.shape[-1] != candidate_embeddings.shape[-1]:
            raise ValueError(
                f"Query and candidate embeddings must have the same size; got {query_embeddings.shape[-1]} "
                f"and {candidate_embeddings.shape[-1]}."
            )
        bias = None
        if candidate_sampling_probability is not None:
            bias = -torch.log(
                candidate_sampling_probability.reshape(-1)
                .to(query_embeddings.dtype)
                .clamp(1e-6, 1.0)
            )
        weight = (
            None if sample_weight is None else sample_weight.reshape(-1).to(query_embeddings.dtype)
        )

        simple = (
            self.fused
            and query_embeddings.dim() == 2
            and self.num_hard_negatives is None
            and not (self.remove_accidental_hits and candidate_ids is not None)
            and not (compute_batch_metrics and self.batch_metrics)
        )
        if simple:
            q = (
                query_embeddings
                if self.temperature is None
                else query_embeddings / self.temperature
            )
            loss = fused_in_batch_softmax(q, candidate_embeddings, weight, bias, positive_indices)
        else:
            logits = retrieval_scores(query_embeddings, candidate_embeddings)
            target = (
                torch.arange(b, device=logits.device)
                if positive_indices is None
                else positive_indices
            )
            if self.temperature is not None:
                logits = logits / self.temperature
            if bias is not None:
                logits = logits + bias
            needs_labels = (
                (self.remove_accidental_hits and candidate_ids is not None)
                or (compute_batch_metrics and self.batch_metrics)
                or self.num_hard_negatives is not None
            )
            if needs_labels:
                labels = F.one_hot(target, c).to(logits.dtype)
                if self.remove_accidental_hits and candidate_ids is not None:
                    logits = remove_accidental_hits(logits, labels, candidate_ids)
                if compute_batch_metrics:
                    for m in self.batch_metrics:
                        m.update(labels, logits, weight)  # type: ignore[call-arg]
                if self.num_hard_negatives is not None:
                    logits, labels = hard_negative_mining(logits, labels, self.num_hard_negatives)
                    target = torch.zeros(
                        b, dtype=torch.int64, device=logits.device
                    )  # positive first
            per_row = F.cross_entropy(logits, target, reduction="none")
            if weight is not None:
                per_row = per_row * weight
            loss = per_row.sum()
        if self.reduction == "mean":
            loss = loss / b

        if compute_metrics and self.metrics:
            rows = slice(0, b) if positive_indices is None else positive_indices
            positives = candidate_embeddings[rows]
            queries = query_embeddings
            if queries.dim() == 3:  # multi-head: score with the head that matches the positive best
                best = torch.einsum("bhd,bd->bh", queries, positives).argmax(dim=1)
                queries = queries[torch.arange(b), best]
            true_ids = None if candidate_ids is None else candidate_ids.reshape(-1)[rows]
            for m in self.metrics:
                if isinstance(m, FactorizedTopK):
                    m.update(
                        queries, positives, weight, true_candidate_ids=true_ids, query_ids=query_ids
                    )
                else:
                    m.update(queries, positives, weight)  # type: ignore[call-arg]
        return loss
