"""Ready-made MovieLens models: the multitask tutorial's model and a stronger joint model."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from towerrec.layers.embedding import Embedding
from towerrec.layers.mlp import MLP
from towerrec.metrics import MAE, RMSE, FactorizedTopK
from towerrec.metrics.topk import SeenItems
from towerrec.models.base import Batch, Model
from towerrec.tasks.ranking import Ranking
from towerrec.tasks.retrieval import Retrieval


class MultitaskModel(Model):
    """TFRS's multitask tutorial: user and item embeddings shared by a rating head and retrieval.

    Batch keys: `user_key` and `item_key` (int64 ids from fitted `Lookup`s) and `rating_key`.
    Loss = `rating_weight` * MSE(rating head) + `retrieval_weight` * in-batch softmax.
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        *,
        dim: int = 32,
        rating_weight: float = 1.0,
        retrieval_weight: float = 1.0,
        rating_layers: Sequence[int] = (256, 128),
        ks: Sequence[int] = (1, 5, 10, 50, 100),
        user_key: str = "user_id",
        item_key: str = "item_id",
        rating_key: str = "rating",
    ) -> None:
        super().__init__()
        self.config = {
            "num_users": num_users,
            "num_items": num_items,
            "dim": dim,
            "rating_weight": rating_weight,
            "retrieval_weight": retrieval_weight,
            "rating_layers": list(rating_layers),
            "user_key": user_key,
            "item_key": item_key,
            "rating_key": rating_key,
        }
        self.user_model = Embedding(num_users, dim)
        self.item_model = Embedding(num_items, dim)
        self.rating_model = MLP([*rating_layers, 1], in_features=2 * dim)
        self.rating_task = Ranking("mse", metrics=[RMSE(), MAE()])
        self.retrieval_task = Retrieval(metrics=FactorizedTopK(self.candidate_corpus, ks=tuple(ks)))
        self.rating_weight = rating_weight
        self.retrieval_weight = retrieval_weight
        self.user_key, self.item_key, self.rating_key = user_key, item_key, rating_key

    def candidate_corpus(self) -> tuple[torch.Tensor, torch.Tensor]:
        """-> ([num_items, dim] every item's embedding, [num_items] item ids)."""
        ids = torch.arange(self.item_model.num_embeddings)
        return self.item_model(ids), ids

    def query_embeddings(self, batch: Batch) -> torch.Tensor:
        """batch -> [B, dim] user embeddings."""
        return self.user_model(batch[self.user_key])

    def predict_rating(self, batch: Batch) -> torch.Tensor:
        """batch -> [B] predicted ratings."""
        u = self.user_model(batch[self.user_key])
        v = self.item_model(batch[self.item_key])
        return self.rating_model(torch.cat([u, v], dim=1)).squeeze(-1)

    def compute_loss(self, batch: Batch, training: bool = False) -> torch.Tensor:
        """batch of [B] user ids, item ids, ratings -> scalar weighted loss."""
        u = self.user_model(batch[self.user_key])
        v = self.item_model(batch[self.item_key])
        loss = u.new_zeros(())
        compute = not training
        if self.rating_weight or compute:
            pred = self.rating_model(torch.cat([u, v], dim=1)).squeeze(-1)
            loss = loss + self.rating_weight * self.rating_task(
                batch[self.rating_key], pred, compute_metrics=compute
            )
        if self.retrieval_weight or compute:
            loss = loss + self.retrieval_weight * self.retrieval_task(
                u, v, candidate_ids=batch[self.item_key], compute_metrics=compute
            )
        return loss


class JointModel(Model):
    """A stronger joint rating + retrieval model on the same two features (user id, item id).

    Towers: user and item embeddings of `dim`. Retrieval score = <u, v> + b_item (the item bias is
    folded into the dot product as an extra coordinate, so any top-k index serves it), trained
    with in-batch softmax corrected by each candidate's in-batch sampling probability (logQ) so
    it learns p(item | user), not just lift. Rating = global mean + b_user + b_item +
    <P_u, Q_i>, a regularised biased factorisation whose factors are heads over the shared tower
    outputs. Weight decay through `l2`.
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        *,
        dim: int = 64,
        rating_dim: int = 64,
        rating_weight: float = 1.0,
        retrieval_weight: float = 1.0,
        item_log_prob: torch.Tensor | None = None,
        global_mean: float = 3.5,
        temperature: float | None = None,
        ks: Sequence[int] = (1, 5, 10, 50, 100),
        seen: SeenItems | None = None,
        user_key: str = "user_id",
        item_key: str = "item_id",
        rating_key: str = "rating",
    ) -> None:
        super().__init__()
        self.config = {
            "num_users": num_users,
            "num_items": num_items,
            "dim": dim,
            "rating_dim": rating_dim,
            "rating_weight": rating_weight,
            "retrieval_weight": retrieval_weight,
            "global_mean": global_mean,
            "temperature": temperature,
            "user_key": user_key,
            "item_key": item_key,
            "rating_key": rating_key,
        }
        self.user_model = Embedding(num_users, dim, init="normal", std=0.01)
        self.item_model = Embedding(num_items, dim, init="normal", std=0.01)
        self.item_bias = nn.Embedding(num_items, 1)
        nn.init.zeros_(self.item_bias.weight)
        self.user_rating = Embedding(num_users, rating_dim, init="normal", std=0.01)
        self.item_rating = Embedding(num_items, rating_dim, init="normal", std=0.01)
        self.user_rating_bias = nn.Embedding(num_users, 1)
        self.item_rating_bias = nn.Embedding(num_items, 1)
        nn.init.zeros_(self.user_rating_bias.weight)
        nn.init.zeros_(self.item_rating_bias.weight)
        self.global_mean = global_mean
        self.rating_task = Ranking("mse", metrics=[RMSE(), MAE()])
        metrics = [FactorizedTopK(self.candidate_corpus, ks=tuple(ks))]
        if seen is not None:
            metrics.append(
                FactorizedTopK(self.candidate_corpus, ks=tuple(ks), seen=seen, prefix="excl_")
            )
        self.retrieval_task = Retrieval(metrics=metrics, temperature=temperature)
        if item_log_prob is None:
            item_log_prob = torch.zeros(num_items)
        self.register_buffer("item_log_prob", item_log_prob.to(torch.float32))
        self.rating_weight = rating_weight
        self.retrieval_weight = retrieval_weight
        self.user_key, self.item_key, self.rating_key = user_key, item_key, rating_key

    def query_embeddings(self, batch: Batch) -> torch.Tensor:
        """batch -> [B, dim + 1] user embeddings (the last coordinate is 1, for the item bias)."""
        u = self.user_model(batch[self.user_key])
        return torch.cat([u, torch.ones_like(u[:, :1])], dim=1)

    def item_embeddings(self, item_ids: torch.Tensor) -> torch.Tensor:
        """[N] item ids -> [N, dim + 1] item embeddings (the last coordinate is the item bias)."""
        return torch.cat([self.item_model(item_ids), self.item_bias(item_ids)], dim=1)

    def candidate_corpus(self) -> tuple[torch.Tensor, torch.Tensor]:
        """-> ([num_items, dim + 1] every item's embedding, [num_items] item ids)."""
        ids = torch.arange(self.item_model.num_embeddings)
        return self.item_embeddings(ids), ids

    def predict_rating(self, batch: Batch) -> torch.Tensor:
        """batch -> [B] predicted ratings."""
        users, items = batch[self.user_key], batch[self.item_key]
        dot = (self.user_rating(users) * self.item_rating(items)).sum(-1)
        return (
            self.global_mean
            + self.user_rating_bias(users).squeeze(-1)
            + self.item_rating_bias(items).squeeze(-1)
            + dot
        )

    def compute_loss(self, batch: Batch, training: bool = False) -> torch.Tensor:
        """batch of [B] user ids, item ids, ratings -> scalar weighted loss."""
        compute = not training
        items = batch[self.item_key]
        pred = self.predict_rating(batch)
        rating_loss = self.rating_task(batch[self.rating_key], pred, compute_metrics=compute)
        q = self.query_embeddings(batch)
        c = self.item_embeddings(items)
        prob = self.item_log_prob[items].exp()
        retrieval_loss = self.retrieval_task(
            q,
            c,
            candidate_sampling_probability=prob,
            candidate_ids=items,
            compute_metrics=compute,
            query_ids=batch[self.user_key],
        )
        return self.rating_weight * rating_loss + self.retrieval_weight * retrieval_loss
