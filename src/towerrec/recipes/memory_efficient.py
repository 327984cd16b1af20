"""Memory-efficient embeddings on MovieLens: the Keras recipe (parity) and a tuned recipe (best).

Protocol (the Keras example "Memory-efficient embeddings for recommendation systems"): each
rating goes to train with probability 0.85, else to eval (seeded). Prediction =
5 * sigmoid(user · movie) from 64-d embeddings; MSE loss, MAE metric.

- `"parity"`: Adam lr 1e-3, batch 128, 3 epochs, validated on the eval split each epoch. The
  `"full"` model has full user and movie tables; the `"memory_efficient"` one has
  quotient-remainder users (num_buckets = users // 50, product combiner) and mixed-dimension
  movies (popularity blocks: top 400 at 64, next 1,300 at 32, the rest at 16, each projected
  to 64).
- `"best"`: both models get user/movie/global biases, L2 on the looked-up vectors and biases,
  Adam with a larger batch, and up to `max_epochs` epochs with early stopping on a validation
  slice carved from the train split (never the eval split). The memory-efficient model uses
  mixed-dimension tables for users and movies, blocks and widths from train counts by the
  alpha-power rule.

```python
ml = towerrec.datasets.movielens("100k")
data = prepare_memory_efficient(ml, seed=42)
result = run_memory_efficient(data, recipe="best", embedding="memory_efficient")
result.metrics  # {"loss": ..., "mse": ..., "mae": ...} on the eval split
```
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from towerrec.data.movielens import MovieLens, movielens
from towerrec.data.splits import bernoulli_split
from towerrec.features import FeatureSpace, Lookup
from towerrec.layers.embedding import Embedding
from towerrec.layers.memory import MixedDimEmbedding, QREmbedding, frequency_blocks
from towerrec.metrics import MAE, MSE
from towerrec.models.base import Model
from towerrec.optim import Adam
from towerrec.recipes._settings import recipe_settings
from towerrec.tasks.ranking import Ranking
from towerrec.train.callbacks import Callback, EarlyStopping
from towerrec.train.history import History
from towerrec.train.trainer import Trainer

__all__ = [
    "EMBEDDINGS",
    "RECIPES",
    "BestRecipe",
    "Data",
    "MemoryEfficientResult",
    "ParityRecipe",
    "RatingModel",
    "best_models",
    "build_rating_model",
    "carve_validation",
    "count_params",
    "keras_movie_blocks",
    "load_data",
    "parity_models",
    "parity_params",
    "prepare_memory_efficient",
    "run_memory_efficient",
]

Dataset = dict[str, torch.Tensor]

RECIPES = ("parity", "best")
#: Embedding layouts: full tables, or the recipe's memory-efficient layers.
EMBEDDINGS = ("full", "memory_efficient")
#: The model names the benchmark reports for (recipe, embedding).
MODEL_NAMES = {
    ("parity", "full"): "full",
    ("parity", "memory_efficient"): "qr_user+md_movie",
    ("best", "full"): "full",
    ("best", "memory_efficient"): "md_user+md_movie",
}


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


@dataclass
class Data:
    """Encoded splits and id statistics."""

    train: Dataset
    eval: Dataset
    num_users: int
    num_movies: int
    movie_counts_all: torch.Tensor  # [num_movies] ratings per movie id, all ratings (as Keras)
    user_counts_train: torch.Tensor  # [num_users] ratings per user id, train split only
    movie_counts_train: torch.Tensor  # [num_movies] ratings per movie id, train split only
    space: FeatureSpace | None = None  # the fitted `user_id` / `movie_id` Lookups
    train_frame: pd.DataFrame | None = field(default=None, repr=False)


def prepare_memory_efficient(ml: MovieLens, seed: int = 42) -> Data:
    """MovieLens -> splits: each rating to train with probability 0.85, ids mapped by Lookups.

    As in the Keras example, the vocabularies cover every user and movie in the ratings (no OOV
    bucket): ids are ordered by rating count over all ratings, most rated first.
    """
    ratings = ml.ratings
    space = FeatureSpace(
        {
            "user_id": Lookup(num_oov_buckets=0),
            "movie_id": Lookup(num_oov_buckets=0, column="item_id"),
        }
    ).fit(ratings)
    users, movies = space["user_id"], space["movie_id"]
    train_df, eval_df = bernoulli_split(ratings, train=0.85, seed=seed)

    def encode(df: pd.DataFrame) -> Dataset:
        return {
            **space.transform(df, names=["user_id", "movie_id"]),
            "rating": torch.tensor(df["rating"].to_numpy(dtype=np.float32)),
        }

    train, evaluation = encode(train_df), encode(eval_df)
    return Data(
        train=train,
        eval=evaluation,
        num_users=users.size,
        num_movies=movies.size,
        movie_counts_all=movies.id_counts(),
        user_counts_train=torch.bincount(train["user_id"], minlength=users.size),
        movie_counts_train=torch.bincount(train["movie_id"], minlength=movies.size),
        space=space,
        train_frame=train_df,
    )


def load_data(data_dir: str, variant: str, seed: int) -> Data:
    """Read MovieLens from `data_dir` (never downloads) and `prepare_memory_efficient` it."""
    ml = movielens(variant, data_dir=data_dir, download=False, progress=False)
    return prepare_memory_efficient(ml, seed)


def carve_validation(train: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Split a train dict into (fit, validation) by a seeded permutation of its rows."""
    n = len(train["rating"])
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cut = n - round(fraction * n)
    fit_rows, val_rows = order[:cut].sort().values, order[cut:].sort().values
    return (
        {k: v[fit_rows] for k, v in train.items()},
        {k: v[val_rows] for k, v in train.items()},
    )


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


class RatingModel(Model):
    """Rating = 5 * sigmoid(user · movie [+ user bias + movie bias + global bias]).

    `l2` penalises the squared norms of the looked-up user and movie vectors (and biases) of
    each training batch, so the same regulariser applies to any embedding layer.
    """

    def __init__(
        self,
        user_model: nn.Module,
        movie_model: nn.Module,
        *,
        biases: bool = False,
        l2: float = 0.0,
        mean_rating: float = 3.5,
    ) -> None:
        super().__init__()
        self.user_model = user_model
        self.movie_model = movie_model
        self.l2 = l2
        self.user_bias: nn.Embedding | None = None
        self.movie_bias: nn.Embedding | None = None
        if biases:
            num_users = user_model.num_embeddings
            num_movies = movie_model.num_embeddings
            self.user_bias = nn.Embedding(num_users, 1)
            self.movie_bias = nn.Embedding(num_movies, 1)
            nn.init.zeros_(self.user_bias.weight)
            nn.init.zeros_(self.movie_bias.weight)
            p = min(max(mean_rating / 5.0, 1e-3), 1 - 1e-3)
            self.global_bias = nn.Parameter(torch.tensor(math.log(p / (1 - p))))
        self.task = Ranking("mse", metrics=[MSE(), MAE()])

    def predict(self, batch: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch of [B] `user_id`, [B] `movie_id` -> ([B] predicted ratings, scalar L2 penalty)."""
        u = self.user_model(batch["user_id"])
        m = self.movie_model(batch["movie_id"])
        logits = (u * m).sum(-1)
        penalty = u.pow(2).sum(-1).mean() + m.pow(2).sum(-1).mean()
        if self.user_bias is not None and self.movie_bias is not None:
            bu = self.user_bias(batch["user_id"]).squeeze(-1)
            bm = self.movie_bias(batch["movie_id"]).squeeze(-1)
            logits = logits + bu + bm + self.global_bias
            penalty = penalty + bu.pow(2).mean() + bm.pow(2).mean()
        return 5.0 * torch.sigmoid(logits), penalty

    def compute_loss(self, batch: Dataset, training: bool = False) -> torch.Tensor:
        """Batch -> MSE (+ l2 * penalty while training); metrics update outside training."""
        prediction, penalty = self.predict(batch)
        loss = self.task(batch["rating"], prediction, compute_metrics=not training)
        if training and self.l2 > 0:
            loss = loss + self.l2 * penalty
        return loss


def count_params(model: nn.Module) -> int:
    """Number of parameters (each counted once)."""
    return sum(p.numel() for p in model.parameters())


KERAS_MOVIE_BLOCKS = (400, 1300)  # then "the rest"
KERAS_MOVIE_DIMS = (64, 32, 16)


def keras_movie_blocks(num_movies: int) -> tuple[list[int], list[int]]:
    """The Keras example's movie blocks (top 400, next 1,300, rest), cut to the catalogue."""
    sizes, dims, start = [], [], 0
    for size, dim in zip([*KERAS_MOVIE_BLOCKS, num_movies], KERAS_MOVIE_DIMS, strict=True):
        size = min(size, num_movies - start)
        if size > 0:
            sizes.append(size)
            dims.append(dim)
            start += size
    return sizes, dims


def parity_models(data: Data, dim: int = 64) -> dict[str, Callable[[], RatingModel]]:
    """Builders of the Keras example's baseline and memory-efficient models."""
    sizes, dims = keras_movie_blocks(data.num_movies)
    # Lookup ids are ranks by rating count over all ratings, the order the Keras example sorts
    # movies in for its blocks; frequency_blocks gives the same ranking.
    rank_of_id, _ = frequency_blocks(data.movie_counts_all, block_sizes=sizes)
    assert torch.equal(rank_of_id, torch.arange(data.num_movies))
    return {
        "full": lambda: RatingModel(
            Embedding(data.num_users, dim), Embedding(data.num_movies, dim)
        ),
        "qr_user+md_movie": lambda: RatingModel(
            QREmbedding(data.num_users, dim, max(1, data.num_users // 50), combiner="mul"),
            MixedDimEmbedding(sizes, dims, dim),
        ),
    }


def parity_params(num_users: int, num_movies: int, dim: int = 64) -> dict[str, int]:
    """Parameters of the two parity models for a catalogue of this size (no data needed).

    At MovieLens-1M sizes (6,040 users, 3,706 movies): 623,744 (full, as Keras) and 113,312
    (Keras counts 117,968: its quotient table has num_buckets = 120 rows where 51 are used,
    each block table has an extra OOV row, and each projection a bias: 4,416 + 112 + 128).
    """
    sizes, dims = keras_movie_blocks(num_movies)
    user = QREmbedding(num_users, dim, max(1, num_users // 50), combiner="mul")
    movie = MixedDimEmbedding(sizes, dims, dim)
    return {
        "full": (num_users + num_movies) * dim,
        "qr_user+md_movie": count_params(user) + count_params(movie),
    }


@dataclass(frozen=True)
class ParityRecipe:
    """The Keras example's training settings."""

    dim: int = 64
    lr: float = 1e-3
    batch_size: int = 128
    epochs: int = 3


@dataclass(frozen=True)
class BestRecipe:
    """Training recipe shared by the two `best` models.

    Chosen on the validation slice (seed 42, ML-100K): `l2` from {0.02, 0.05, 0.1, 0.2} (0.05
    best for the full model), then the mixed-dimension layout from a few (base_dim, alpha)
    pairs that fit a fifth of the full model's parameters: (16, 0.4), (24, 0.6), (32, 0.8).
    """

    lr: float = 2e-3
    batch_size: int = 256
    max_epochs: int = 40
    patience: int = 3
    l2: float = 0.05
    validation_fraction: float = 0.05
    # memory-efficient layout: equal-rating-mass blocks, alpha-power widths
    num_blocks: int = 4
    alpha: float = 0.6
    base_dim: int = 24
    min_dim: int = 1
    full_dim: int = 64


def best_models(data: Data, recipe: BestRecipe) -> dict[str, Callable[[], RatingModel]]:
    """Builders: full 64-d tables vs mixed-dimension users and movies, biases and L2 in both."""
    mean = float(data.train["rating"].mean())

    def full() -> RatingModel:
        return RatingModel(
            Embedding(data.num_users, recipe.full_dim),
            Embedding(data.num_movies, recipe.full_dim),
            biases=True,
            l2=recipe.l2,
            mean_rating=mean,
        )

    def md(counts: torch.Tensor) -> MixedDimEmbedding:
        return MixedDimEmbedding.from_counts(
            counts,
            recipe.base_dim,
            num_blocks=recipe.num_blocks,
            alpha=recipe.alpha,
            min_dim=recipe.min_dim,
        )

    def efficient() -> RatingModel:
        return RatingModel(
            md(data.user_counts_train),
            md(data.movie_counts_train),
            biases=True,
            l2=recipe.l2,
            mean_rating=mean,
        )

    return {"full": full, "md_user+md_movie": efficient}


# --------------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------------


@dataclass
class MemoryEfficientResult:
    """What `run_memory_efficient` returns: the trained model and its eval-split metrics."""

    recipe: str
    embedding: str
    model: RatingModel
    trainer: Trainer
    history: History
    metrics: dict[str, float]
    params: int
    best_epoch: int | None
    best_validation: float | None
    settings: dict[str, Any]


def _settings(recipe: str, overrides: dict[str, Any] | None) -> ParityRecipe | BestRecipe:
    cls = ParityRecipe if recipe == "parity" else BestRecipe
    return recipe_settings(cls, overrides, f"{recipe!r} memory-efficient")


def _check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(
            f"The '{name}' parameter of the memory-efficient recipe must be one of "
            f"{tuple(allowed)}. Got {value!r} instead."
        )


def build_rating_model(
    data: Data,
    recipe: str = "parity",
    embedding: str = "memory_efficient",
    overrides: dict[str, Any] | None = None,
) -> RatingModel:
    """The untrained model of `recipe` ("parity" | "best") with `embedding` tables ("full" |
    "memory_efficient"), built from the data's id counts (call `torch.manual_seed` first)."""
    _check_choice("recipe", recipe, RECIPES)
    _check_choice("embedding", embedding, EMBEDDINGS)
    settings = _settings(recipe, overrides)
    name = MODEL_NAMES[recipe, embedding]
    if isinstance(settings, ParityRecipe):
        return parity_models(data, settings.dim)[name]()
    return best_models(data, settings)[name]()


def run_memory_efficient(
    data: Data,
    *,
    recipe: str = "parity",
    embedding: str = "memory_efficient",
    seed: int = 42,
    progress: bool = False,
    callbacks: Sequence[Callback] = (),
    overrides: dict[str, Any] | None = None,
) -> MemoryEfficientResult:
    """Train one model of one recipe and evaluate it on the eval split.

    `overrides` changes settings of the recipe (`ParityRecipe` or `BestRecipe` fields). The
    parity recipe validates on the eval split each epoch (as Keras does); the best recipe on a
    slice of the train split, with early stopping and the best epoch's weights restored.
    """
    _check_choice("recipe", recipe, RECIPES)
    settings = _settings(recipe, overrides)
    torch.manual_seed(seed)
    model = build_rating_model(data, recipe, embedding, overrides)
    stop: EarlyStopping | None = None
    if isinstance(settings, ParityRecipe):
        fit, validation = data.train, data.eval
        epochs = settings.epochs
    else:
        fit, validation = carve_validation(data.train, settings.validation_fraction, seed)
        stop = EarlyStopping(monitor="val_loss", patience=settings.patience)
        epochs = settings.max_epochs
    trainer = Trainer(
        optimizer=Adam(lr=settings.lr),
        batch_size=settings.batch_size,
        epochs=epochs,
        seed=seed,
        progress=progress,
        callbacks=[*([stop] if stop else []), *callbacks],
    )
    history = trainer.fit(model, fit, validation=validation)
    metrics = trainer.evaluate(model, data.eval)
    return MemoryEfficientResult(
        recipe=recipe,
        embedding=embedding,
        model=model,
        trainer=trainer,
        history=history,
        metrics=metrics,
        params=count_params(model),
        best_epoch=None if stop is None else stop.best_epoch,
        best_validation=None if stop is None else stop.best,
        settings=asdict(settings),
    )
