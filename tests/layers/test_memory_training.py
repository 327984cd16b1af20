"""Memory-efficient embeddings train in place of `Embedding` in a two-tower retrieval model."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch
from torch import nn

import towerrec as tr
from towerrec.layers.memory import HashEmbedding, MixedDimEmbedding, QREmbedding

NUM_USERS, NUM_ITEMS, DIM = 60, 40, 8


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # Tiny batches: intra-op threads only add synchronisation (badly so on shared cores).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class _TwoTower(tr.Model):
    def __init__(self, user_model: nn.Module, item_model: nn.Module) -> None:
        super().__init__()
        self.user_model = user_model
        self.item_model = item_model
        self.task = tr.tasks.Retrieval()

    def compute_loss(self, batch: dict[str, torch.Tensor], training: bool = False) -> torch.Tensor:
        return self.task(
            self.user_model(batch["user"]), self.item_model(batch["item"]), compute_metrics=False
        )


def _interactions(n: int = 600) -> dict[str, torch.Tensor]:
    """Users in 4 taste groups; each group picks among its own 10 items, popular ones first."""
    g = torch.Generator().manual_seed(0)
    user = torch.randint(0, NUM_USERS, (n,), generator=g)
    offset = torch.minimum(torch.distributions.Geometric(0.3).sample((n,)).long(), torch.tensor(9))
    item = (user % 4) * 10 + offset
    return {"user": user, "item": item}


def _qr() -> tuple[nn.Module, nn.Module]:
    return QREmbedding(NUM_USERS, DIM, 8), QREmbedding(NUM_ITEMS, DIM, 7, combiner="add")


def _md() -> tuple[nn.Module, nn.Module]:
    counts = torch.bincount(_interactions()["item"], minlength=NUM_ITEMS)
    item = MixedDimEmbedding.from_counts(counts, DIM, num_blocks=3, alpha=0.5)
    return MixedDimEmbedding([20, 40], [DIM, 4], DIM), item


def _hash() -> tuple[nn.Module, nn.Module]:
    return HashEmbedding(32, DIM, num_hashes=2, seed=1), HashEmbedding(32, DIM, seed=2)


@pytest.mark.parametrize("make", [_qr, _md, _hash], ids=["qr", "md", "hash"])
def test_retrieval_loss_falls(make: Callable[[], tuple[nn.Module, nn.Module]]) -> None:
    torch.manual_seed(0)
    model = _TwoTower(*make())
    data = _interactions()
    if isinstance(model.user_model, HashEmbedding):  # open vocabulary: raw, sparse ids
        data = {**data, "user": data["user"] * 1_000_003 - 7}
    trainer = tr.Trainer(optimizer=tr.optim.Adam(lr=0.05), batch_size=100, epochs=6, progress=False)
    before = trainer.evaluate(model, data)["loss"]
    history = trainer.fit(model, data)
    after = trainer.evaluate(model, data)["loss"]
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert after < 0.9 * before, (before, after)
    assert model.user_model.output_dim == model.item_model.output_dim == DIM
