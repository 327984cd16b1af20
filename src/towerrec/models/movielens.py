"""Ready-made MovieLens models: the multitask tutorial's model and a stronger joint model."""

from __future__ import annotations

import math
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
                u,
                v,
                candidate_ids=batch[self.item_key],
                compute_metrics=compute,
                query_ids=batch[self.user_key],
            )
        return loss


class JointModel(Model):
    """A stronger joint rating + retrieval model on the same two features (user id, item id).

    Both towers look their id up in the training interactions (buffers set once with
    `set_interactions`), as a feature lookup, then learn from there:

    - Query tower: the mean embedding of the items in the user's training history, plus a
      user-id embedding, through a dense layer. During training the target item is taken out
      of its own history, so the model learns to predict an item the user has not been seen
      with (and stops spending its top-k on items already in the history).
    - Candidate tower: an item embedding with the item bias as an extra coordinate (so any
      top-k index serves the score). Retrieval is a full softmax over the corpus
      (`retrieval="full"`) or an in-batch softmax with the sampling-probability correction.
    - Rating head: the item-based autoencoder recipe: h_i = sigmoid(V r_i + b) over the item's
      column of training ratings, r_ui = <W_u, h_i> + c_u, clamped to the rating range at
      evaluation. `l2` weighs the squared norms of V and W.
    """

    def __init__(
        self,
        num_users: int,
        num_items: int,
        *,
        dim: int = 64,
        hidden: int = 500,
        rating_weight: float = 1.0,
        retrieval_weight: float = 1.0,
        retrieval: str = "full",
        l2: float = 6e-4,
        retrieval_l2: float = 0.0,
        use_user_embedding: bool = False,
        history_norm: str = "sqrt",
        rating_lr_scale: float = 1.0,
        rating_full_batch: bool = True,
        history_dropout: float = 0.0,
        share_item_tower: bool = False,
        query_layers: Sequence[int] | None = None,
        rating_range: tuple[float, float] = (1.0, 5.0),
        temperature: float | None = None,
        ks: Sequence[int] = (1, 5, 10, 50, 100),
        seen: SeenItems | None = None,
        user_key: str = "user_id",
        item_key: str = "item_id",
        rating_key: str = "rating",
    ) -> None:
        super().__init__()
        if retrieval not in ("full", "in_batch"):
            raise ValueError(
                f"The 'retrieval' parameter of JointModel must be 'full' or 'in_batch'. Got {retrieval!r} instead."
            )
        self.config = {
            "num_users": num_users,
            "num_items": num_items,
            "dim": dim,
            "hidden": hidden,
            "rating_weight": rating_weight,
            "retrieval_weight": retrieval_weight,
            "retrieval": retrieval,
            "l2": l2,
            "retrieval_l2": retrieval_l2,
            "use_user_embedding": use_user_embedding,
            "history_norm": history_norm,
            "rating_lr_scale": rating_lr_scale,
            "rating_full_batch": rating_full_batch,
            "history_dropout": history_dropout,
            "share_item_tower": share_item_tower,
            "query_layers": None if query_layers is None else list(query_layers),
            "rating_range": list(rating_range),
            "temperature": temperature,
            "user_key": user_key,
            "item_key": item_key,
            "rating_key": rating_key,
        }
        # Feature lookups built from the training interactions.
        self.register_buffer("item_ratings", torch.zeros(num_items, num_users))
        self.register_buffer("user_history", torch.zeros(num_users, num_items))
        self.register_buffer("item_log_prob", torch.full((num_items,), -math.log(num_items)))
        # Query tower.
        self.history_model = Embedding(num_items, dim, init="normal", std=0.05)
        self.user_model = (
            Embedding(num_users, dim, init="normal", std=0.05) if use_user_embedding else None
        )
        self.query_layer = (
            nn.Linear(dim, dim) if not query_layers else MLP([*query_layers, dim], in_features=dim)
        )
        # Candidate tower.
        self.item_model = Embedding(num_items, dim, init="normal", std=0.05)
        self.item_bias = nn.Embedding(num_items, 1)
        nn.init.zeros_(self.item_bias.weight)
        self.item_projection = nn.Linear(hidden, dim, bias=False) if share_item_tower else None
        # Rating head.
        self.encoder = nn.Linear(num_users, hidden)
        self.user_decoder = Embedding(num_users, hidden, init="normal", std=0.01)
        self.user_rating_bias = nn.Embedding(num_users, 1)
        nn.init.zeros_(self.user_rating_bias.weight)
        self.rating_task = Ranking("mse", metrics=[RMSE(), MAE()])
        metrics = [FactorizedTopK(self.candidate_corpus, ks=tuple(ks))]
        if seen is not None:
            metrics.append(
                FactorizedTopK(self.candidate_corpus, ks=tuple(ks), seen=seen, prefix="excl_")
            )
        self.retrieval_task = Retrieval(metrics=metrics, temperature=temperature)
        self.rating_weight = rating_weight
        self.retrieval_weight = retrieval_weight
        self.retrieval = retrieval
        self.l2 = l2
        self.retrieval_l2 = retrieval_l2
        self.rating_range = rating_range
        if history_norm not in ("mean", "sqrt"):
            raise ValueError(
                f"The 'history_norm' parameter of JointModel must be 'mean' or 'sqrt'. Got {history_norm!r} instead."
            )
        self.history_norm = history_norm
        self.rating_lr_scale = rating_lr_scale
        self.rating_full_batch = rating_full_batch
        self.history_dropout = history_dropout
        self.user_key, self.item_key, self.rating_key = user_key, item_key, rating_key

    RATING_PREFIXES = ("encoder.", "user_decoder.", "user_rating_bias.")

    def head_prefixes(self) -> dict[str, tuple[str, ...]]:
        """State-dict key prefixes of each head: {"rating": ..., "retrieval": ...}."""
        rating = self.RATING_PREFIXES
        names = {k.split(".")[0] + "." for k, _ in self.named_parameters()}
        return {"rating": rating, "retrieval": tuple(sorted(n for n in names if n not in rating))}

    def optimizer_groups(self, lr: float) -> list[dict[str, object]]:
        """Parameter groups for the optimizer: the rating head learns at `lr * rating_lr_scale`."""
        rating = [
            *self.encoder.parameters(),
            *self.user_decoder.parameters(),
            *self.user_rating_bias.parameters(),
        ]
        ids = {id(p) for p in rating}
        rest = [p for p in self.parameters() if id(p) not in ids]
        return [{"params": rest}, {"params": rating, "lr": lr * self.rating_lr_scale}]

    @torch.no_grad()
    def set_interactions(
        self, user_ids: torch.Tensor, item_ids: torch.Tensor, ratings: torch.Tensor
    ) -> None:
        """[P] user ids, [P] item ids, [P] ratings of the training set: the towers' lookups and
        the items' sampling probabilities.
        """
        self.item_ratings.zero_()
        self.item_ratings[item_ids, user_ids] = ratings.to(self.item_ratings.dtype)
        self.user_history.zero_()
        self.user_history[user_ids, item_ids] = 1.0
        counts = torch.bincount(item_ids, minlength=self.item_ratings.shape[0]).to(torch.float32)
        self.item_log_prob.copy_(torch.log((counts + 1.0) / (counts.sum() + len(counts))))

    def _history(self, users: torch.Tensor, leave_out: torch.Tensor | None) -> torch.Tensor:
        unique, inverse = torch.unique(users, return_inverse=True)
        rows = self.user_history[unique]
        if self.training and self.history_dropout > 0:
            rows = rows * (torch.rand_like(rows) >= self.history_dropout)
        sums = (rows @ self.history_model.weight)[inverse]
        counts = rows.sum(1)[inverse]
        if leave_out is not None:
            present = rows[inverse, leave_out]
            sums = sums - present[:, None] * self.history_model(leave_out)
            counts = counts - present
        counts = counts.clamp(min=1.0)
        return sums / (counts.sqrt() if self.history_norm == "sqrt" else counts)[:, None]

    def _query(self, users: torch.Tensor, leave_out: torch.Tensor | None = None) -> torch.Tensor:
        x = self._history(users, leave_out)
        if self.user_model is not None:
            x = x + self.user_model(users)
        q = self.query_layer(x)
        return torch.cat([q, torch.ones_like(q[:, :1])], dim=1)

    def query_embeddings(self, batch: Batch) -> torch.Tensor:
        """batch -> [B, dim + 1] user embeddings (the last coordinate is 1, for the item bias)."""
        return self._query(batch[self.user_key])

    def item_embeddings(self, item_ids: torch.Tensor) -> torch.Tensor:
        """[N] item ids -> [N, dim + 1] item embeddings (the last coordinate is the item bias)."""
        v = self.item_model(item_ids)
        if self.item_projection is not None:  # the rating head's item encoding, shared
            v = v + self.item_projection(self.item_hidden(item_ids))
        return torch.cat([v, self.item_bias(item_ids)], dim=1)

    def candidate_corpus(self) -> tuple[torch.Tensor, torch.Tensor]:
        """-> ([num_items, dim + 1] every item's embedding, [num_items] item ids)."""
        ids = torch.arange(self.item_model.num_embeddings)
        return self.item_embeddings(ids), ids

    def item_hidden(self, item_ids: torch.Tensor) -> torch.Tensor:
        """[N] item ids -> [N, hidden] encodings of the items' training ratings."""
        unique, inverse = torch.unique(item_ids, return_inverse=True)
        return torch.sigmoid(self.encoder(self.item_ratings[unique]))[inverse]

    def predict_rating(self, batch: Batch) -> torch.Tensor:
        """batch -> [B] predicted ratings."""
        users, items = batch[self.user_key], batch[self.item_key]
        pred = (self.user_decoder(users) * self.item_hidden(items)).sum(-1) + self.user_rating_bias(
            users
        ).squeeze(-1)
        if not self.training:
            pred = pred.clamp(*self.rating_range)
        return pred

    def _full_rating_loss(self) -> torch.Tensor:
        # The rating head sees every training rating at each step (the autoencoder recipe): the
        # whole item-by-user matrix is reconstructed and the error is taken where a rating exists.
        observed = self.item_ratings != 0
        hidden = torch.sigmoid(self.encoder(self.item_ratings))
        pred = hidden @ self.user_decoder.weight.T + self.user_rating_bias.weight.T
        err = torch.where(observed, pred - self.item_ratings, torch.zeros_like(pred))
        return err.square().sum() / observed.sum().clamp(min=1)

    def compute_loss(self, batch: Batch, training: bool = False) -> torch.Tensor:
        """batch of [B] user ids, item ids, ratings -> scalar weighted loss."""
        compute = not training
        users, items = batch[self.user_key], batch[self.item_key]
        if training and self.rating_full_batch:
            rating_loss = self._full_rating_loss()
        else:
            rating_loss = self.rating_task(
                batch[self.rating_key], self.predict_rating(batch), compute_metrics=compute
            )
        q = self._query(users, leave_out=items if training else None)
        if self.retrieval == "full":
            corpus, ids = self.candidate_corpus()
            retrieval_loss = self.retrieval_task(
                q,
                corpus,
                candidate_ids=ids,
                positive_indices=items,
                compute_metrics=compute,
                query_ids=users,
            )
        else:
            retrieval_loss = self.retrieval_task(
                q,
                self.item_embeddings(items),
                candidate_sampling_probability=self.item_log_prob[items].exp(),
                candidate_ids=items,
                compute_metrics=compute,
                query_ids=users,
            )
        loss = (
            self.rating_weight * rating_loss + self.retrieval_weight * retrieval_loss / q.shape[0]
        )
        if training and self.l2:
            loss = loss + self.l2 * (
                self.encoder.weight.square().sum() + self.user_decoder.weight.square().sum()
            )
        if training and self.retrieval_l2:
            loss = loss + self.retrieval_l2 * q[:, :-1].square().sum(-1).mean()
        return loss
