"""towerrec.summary: module table, output shapes, parameter totals."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from towerrec.layers.memory import MixedDimEmbedding, QREmbedding
from towerrec.summary import summary


class _Tower(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = QREmbedding(50, 8, 7)
        self.dense = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 4))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.dense(self.embedding(ids))


class _TwoTower(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.query = _Tower()
        self.candidate = MixedDimEmbedding([5, 10], [4, 2], 4)
        self.frozen = nn.Linear(4, 2)
        self.frozen.weight.requires_grad_(False)
        self.losses = 0

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return (self.query(batch["user"]) * self.candidate(batch["item"])).sum(-1)


class _WithLoss(_TwoTower):
    def compute_loss(self, batch: dict[str, torch.Tensor], training: bool = False) -> torch.Tensor:
        self.losses += 1
        return self(batch).pow(2).mean()

    def reset_metrics(self) -> None:
        self.losses = 0


def _total_line(text: str, label: str) -> int:
    line = next(x for x in text.splitlines() if x.startswith(label))
    return int(line.split(":")[1].split()[0].replace(",", ""))


def test_totals_equal_parameter_count() -> None:
    model = _TwoTower()
    text = summary(model)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert _total_line(text, "Total params") == total
    assert _total_line(text, "Trainable params") == trainable
    assert _total_line(text, "Non-trainable params") == total - trainable == 8


def test_shared_parameters_count_once() -> None:
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert _total_line(summary(model), "Total params") == 12


def test_rows_follow_depth() -> None:
    model = _TwoTower()
    default = summary(model)
    assert "query (_Tower)" in default
    assert "  embedding (QREmbedding)" in default  # a grandchild, indented
    assert "quotient (Embedding)" not in default  # depth 3 hidden by default
    assert "embedding (QREmbedding)" not in summary(model, depth=1)
    assert "\n    quotient (Embedding)" in summary(model, depth=None)
    with pytest.raises(ValueError, match="'depth' parameter of summary"):
        summary(model, depth=0)


def test_row_counts_and_trainable_column() -> None:
    text = summary(_TwoTower())
    row = next(x for x in text.splitlines() if x.startswith("query (_Tower)"))
    assert row.split()[-2:] == [f"{(8 + 7) * 8 + 8 * 4 + 4 + 4 * 4 + 4:,}", "yes"]
    frozen = next(x for x in text.splitlines() if x.startswith("frozen (Linear)"))
    assert frozen.split()[-2:] == ["10", "2"]


def test_output_shapes_from_an_example_batch() -> None:
    model = _TwoTower()
    model.train()
    batch = {"user": torch.tensor([1, 2, 3]), "item": torch.tensor([0, 4, 14])}
    text = summary(model, batch)
    assert "Output shape" in text
    lines = text.splitlines()
    assert next(x for x in lines if x.startswith("query")).split()[2:4] == ["[3,", "4]"]
    assert next(x for x in lines if x.startswith("candidate")).split()[2:4] == ["[3,", "4]"]
    assert next(x for x in lines if x.startswith("frozen")).split()[2] == "-"  # never called
    assert model.training and model.query.training  # training mode restored
    assert "Output shape" not in summary(model)


def test_compute_loss_is_used_and_metrics_reset() -> None:
    model = _WithLoss()
    batch = {"user": torch.tensor([1, 2]), "item": torch.tensor([0, 4])}
    text = summary(model, batch)
    assert next(x for x in text.splitlines() if x.startswith("query")).split()[2:4] == ["[2,", "4]"]
    assert model.losses == 0


def test_lazy_parameters_are_marked_until_materialised() -> None:
    model = nn.Sequential(nn.LazyLinear(3), nn.ReLU())
    text = summary(model)
    assert "?" in text and "uninitialised lazy parameters" in text
    text = summary(model, torch.zeros(2, 5))
    assert _total_line(text, "Total params") == 5 * 3 + 3
    assert "[2, 3]" in text
