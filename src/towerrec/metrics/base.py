"""Stateful metrics: `update` with batches, `compute` the value, `reset` between runs."""

from __future__ import annotations

import torch


def _as_flat(x: torch.Tensor) -> torch.Tensor:
    return x.detach().reshape(-1).to(torch.float64)


def _weights(sample_weight: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    if sample_weight is None:
        return torch.ones_like(like)
    w = _as_flat(sample_weight)
    if w.numel() != like.numel():
        raise ValueError(
            f"sample_weight has {w.numel()} values but the batch has {like.numel()}; "
            "pass one weight per example."
        )
    return w


class Metric:
    """A stateful metric: `update(...)` per batch, `compute() -> dict[str, float]`, `reset()`.

    Subclasses set `name` (the key, or prefix of keys, in the dictionary `compute` returns).
    """

    name: str = "metric"

    def update(self, *args: object, **kwargs: object) -> None:
        """Accumulate one batch."""
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        """The metric's value(s) over everything since the last `reset`."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget everything accumulated."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class _WeightedMean(Metric):
    """Weighted mean of a per-example value computed from (labels, predictions)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.reset()

    def reset(self) -> None:
        self._total = 0.0
        self._weight = 0.0

    def _values(self, labels: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def update(
        self,
        labels: torch.Tensor,
        predictions: torch.Tensor,
        sample_weight: torch.Tensor | None = None,
    ) -> None:
        """[B] labels, [B] or [B, 1] predictions, optional [B] weights: accumulate one batch."""
        y = _as_flat(labels)
        p = _as_flat(predictions)
        if y.numel() != p.numel():
            raise ValueError(
                f"{type(self).__name__}.update got {y.numel()} labels and {p.numel()} predictions; "
                "they must match."
            )
        w = _weights(sample_weight, y)
        self._total += float((self._values(y, p) * w).sum())
        self._weight += float(w.sum())

    def _mean(self) -> float:
        return self._total / self._weight if self._weight > 0 else float("nan")

    def compute(self) -> dict[str, float]:
        return {self.name: self._mean()}
