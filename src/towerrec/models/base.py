"""The model base class: an `nn.Module` with one hook, `compute_loss`."""

from __future__ import annotations

import torch
from torch import nn

from towerrec.tasks.base import Task

Batch = dict[str, torch.Tensor]


class Model(nn.Module):
    """Subclass and implement `compute_loss(batch, training) -> scalar loss`.

    Tasks held as attributes (at any depth) are found automatically: `metric_values()` gathers
    their metrics and `reset_metrics()` resets them. Multi-task models return a weighted sum of
    their tasks' losses. A model may also define `candidate_corpus()` and
    `query_embeddings(batch)` for evaluation and serving helpers.
    """

    def compute_loss(self, batch: Batch, training: bool = False) -> torch.Tensor:
        """dict of [B, ...] tensors -> scalar loss. Update metrics when not training."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement compute_loss(batch, training)."
        )

    def forward(self, batch: Batch) -> torch.Tensor:
        """dict of [B, ...] tensors -> scalar loss (`compute_loss` with `training=self.training`)."""
        return self.compute_loss(batch, training=self.training)

    def tasks(self) -> list[Task]:
        """Every task module inside this model."""
        return [m for m in self.modules() if isinstance(m, Task)]

    def reset_metrics(self) -> None:
        """Reset the metrics of every task."""
        for task in self.tasks():
            task.reset_metrics()

    def metric_values(self) -> dict[str, float]:
        """Current metric values of every task; a name two tasks share is prefixed by the task's."""
        per_task = [(t.name, t.metric_values()) for t in self.tasks()]
        counts: dict[str, int] = {}
        for _, values in per_task:
            for k in values:
                counts[k] = counts.get(k, 0) + 1
        out: dict[str, float] = {}
        for name, values in per_task:
            for k, v in values.items():
                if v != v:  # NaN: the metric saw no data
                    continue
                out[k if counts[k] == 1 else f"{name}/{k}"] = v
        return out
