"""The ranking task: a pointwise loss on predicted ratings or click probabilities."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.nn import functional as F

from towerrec.metrics.base import Metric
from towerrec.tasks.base import Task, as_metric_list

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
_EPS = 1e-7  # Keras' epsilon: probabilities are clipped to [eps, 1 - eps] for cross-entropy


def _mse(labels: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
    return (predictions - labels) ** 2


def _bce(labels: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
    p = predictions.clamp(_EPS, 1 - _EPS)
    return -(labels * torch.log(p) + (1 - labels) * torch.log(1 - p))


def _bce_logits(labels: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, labels, reduction="none")


def _huber(labels: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
    return F.huber_loss(predictions, labels, reduction="none")


_LOSSES: dict[str, LossFn] = {
    "mse": _mse,
    "bce": _bce,
    "bce_logits": _bce_logits,
    "huber": _huber,
}


class Ranking(Task):
    """[B] labels, [B] or [B, 1] predictions -> scalar loss (mean over the batch).

    `loss` is "mse" (ratings), "bce" (click probabilities in [0, 1]), "bce_logits" (raw logits),
    "huber", or a callable `(labels [B], predictions [B]) -> [B]` per-example losses. Sample
    weights multiply each example's loss and the sum is divided by the batch size, as Keras does.
    `metrics` get `(labels, predictions, weights)`; `prediction_metrics` / `label_metrics` get
    the predictions / labels alone (e.g. `Mean()`).
    """

    def __init__(
        self,
        loss: str | LossFn = "mse",
        metrics: Metric | Sequence[Metric] | None = None,
        *,
        prediction_metrics: Metric | Sequence[Metric] | None = None,
        label_metrics: Metric | Sequence[Metric] | None = None,
        name: str = "ranking",
    ) -> None:
        super().__init__(name)
        if isinstance(loss, str):
            if loss not in _LOSSES:
                raise ValueError(
                    f"The 'loss' parameter of Ranking must be one of {sorted(_LOSSES)} or a "
                    f"callable. Got {loss!r} instead."
                )
            self.loss_fn: LossFn = _LOSSES[loss]
        elif callable(loss):
            self.loss_fn = loss
        else:
            raise TypeError(
                f"Ranking(loss=...) must be a name or a callable, got {type(loss).__name__}."
            )
        self.metrics = as_metric_list(metrics)
        self.prediction_metrics = as_metric_list(prediction_metrics)
        self.label_metrics = as_metric_list(label_metrics)

    def all_metrics(self) -> list[Metric]:
        return [*self.metrics, *self.prediction_metrics, *self.label_metrics]

    def forward(
        self,
        labels: torch.Tensor,
        predictions: torch.Tensor,
        sample_weight: torch.Tensor | None = None,
        compute_metrics: bool = True,
    ) -> torch.Tensor:
        """[B] labels, [B] or [B, 1] predictions, optional [B] weights -> scalar loss."""
        y = labels.reshape(-1).to(predictions.dtype)
        p = predictions.reshape(-1)
        if y.shape != p.shape:
            raise ValueError(
                f"Ranking got {y.numel()} labels and {p.numel()} predictions; they must match."
            )
        per_example = self.loss_fn(y, p)
        if sample_weight is not None:
            per_example = per_example * sample_weight.reshape(-1).to(per_example.dtype)
        loss = per_example.sum() / max(per_example.numel(), 1)
        if compute_metrics:
            w = None if sample_weight is None else sample_weight.reshape(-1)
            for m in self.metrics:
                m.update(y, p, w)  # type: ignore[call-arg]
            for m in self.prediction_metrics:
                m.update(p, w)  # type: ignore[call-arg]
            for m in self.label_metrics:
                m.update(y, w)  # type: ignore[call-arg]
        return loss
