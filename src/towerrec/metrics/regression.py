"""Metrics over (labels, predictions): RMSE, MAE, MSE, Mean, BinaryAccuracy, AUC."""

from __future__ import annotations

import math

import torch

from towerrec.metrics.base import Metric, _as_flat, _WeightedMean, _weights


class MSE(_WeightedMean):
    """Mean squared error over all updates."""

    def __init__(self, name: str = "mse") -> None:
        super().__init__(name)

    def _values(self, labels: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
        return (labels - predictions) ** 2


class RMSE(MSE):
    """Root mean squared error over all updates (not a mean of per-batch RMSEs)."""

    def __init__(self, name: str = "rmse") -> None:
        super().__init__(name)

    def compute(self) -> dict[str, float]:
        return {self.name: math.sqrt(self._mean())}


class MAE(_WeightedMean):
    """Mean absolute error over all updates."""

    def __init__(self, name: str = "mae") -> None:
        super().__init__(name)

    def _values(self, labels: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
        return (labels - predictions).abs()


class BinaryAccuracy(_WeightedMean):
    """Fraction of predictions on the right side of `threshold` (labels are 0/1)."""

    def __init__(self, threshold: float = 0.5, name: str = "binary_accuracy") -> None:
        self.threshold = threshold
        super().__init__(name)

    def _values(self, labels: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
        return (
            (predictions > self.threshold).to(labels.dtype) == (labels > 0.5).to(labels.dtype)
        ).to(labels.dtype)


class Mean(Metric):
    """Weighted mean of the values given to `update` (e.g. of predictions or labels)."""

    def __init__(self, name: str = "mean") -> None:
        self.name = name
        self.reset()

    def reset(self) -> None:
        self._total = 0.0
        self._weight = 0.0

    def update(self, values: torch.Tensor, sample_weight: torch.Tensor | None = None) -> None:
        """[...] values, optional weights of the same size: accumulate."""
        v = _as_flat(values)
        w = _weights(sample_weight, v)
        self._total += float((v * w).sum())
        self._weight += float(w.sum())

    def compute(self) -> dict[str, float]:
        return {self.name: self._total / self._weight if self._weight > 0 else float("nan")}


class AUC(Metric):
    """Exact ROC AUC of scores against 0/1 labels over all updates (ties count one half)."""

    def __init__(self, name: str = "auc") -> None:
        self.name = name
        self.reset()

    def reset(self) -> None:
        self._labels: list[torch.Tensor] = []
        self._scores: list[torch.Tensor] = []
        self._weights: list[torch.Tensor] = []

    def update(
        self,
        labels: torch.Tensor,
        predictions: torch.Tensor,
        sample_weight: torch.Tensor | None = None,
    ) -> None:
        """[B] 0/1 labels, [B] scores, optional [B] weights: accumulate."""
        y = _as_flat(labels)
        self._labels.append(y)
        self._scores.append(_as_flat(predictions))
        self._weights.append(_weights(sample_weight, y))

    def compute(self) -> dict[str, float]:
        if not self._labels:
            return {self.name: float("nan")}
        y = torch.cat(self._labels) > 0.5
        s = torch.cat(self._scores)
        w = torch.cat(self._weights)
        pos_w = float(w[y].sum())
        neg_w = float(w[~y].sum())
        if pos_w == 0 or neg_w == 0:
            return {self.name: float("nan")}
        # Sort by score; for each positive, the weight of negatives below it (+ half of ties).
        order = torch.argsort(s)
        s, y, w = s[order], y[order], w[order]
        uniq, inverse = torch.unique_consecutive(s, return_inverse=True)
        neg_per = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inverse, w * (~y))
        pos_per = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inverse, w * y)
        neg_below = torch.cumsum(neg_per, 0) - neg_per
        area = float((pos_per * (neg_below + 0.5 * neg_per)).sum())
        return {self.name: area / (pos_w * neg_w)}
