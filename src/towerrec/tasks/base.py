"""The task base class: a module that owns a loss and the metrics updated with it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from torch import nn

from towerrec.metrics.base import Metric


def as_metric_list(metrics: Metric | Sequence[Metric] | None) -> list[Metric]:
    """None, one metric or a sequence of metrics -> a list of metrics."""
    if metrics is None:
        return []
    if isinstance(metrics, Metric):
        return [metrics]
    out = list(metrics)
    for m in out:
        if not isinstance(m, Metric):
            raise TypeError(f"Expected towerrec.metrics.Metric objects, got {type(m).__name__}.")
    return out


class Task(nn.Module):
    """A loss with its metrics. Models hold tasks as attributes; the trainer finds them."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.metrics: list[Metric] = []

    def all_metrics(self) -> Iterable[Metric]:
        """Every metric this task updates."""
        return list(self.metrics)

    def reset_metrics(self) -> None:
        """Reset every metric of this task."""
        for m in self.all_metrics():
            m.reset()

    def metric_values(self) -> dict[str, float]:
        """The current value of every metric that has seen data."""
        out: dict[str, float] = {}
        for m in self.all_metrics():
            out.update(m.compute())
        return out
