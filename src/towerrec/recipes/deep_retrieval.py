"""The deep-retrieval tutorial on MovieLens (user, time -> movie), as recipes.

Both recipes share the tutorial's split (ratings shuffled with the seed, first 80% train) and
metric (factorized top-k accuracy of each test pair's movie among all movies):

- `"tfrs-parity"`: the tutorial. Query tower user-id embedding ‖ timestamp-bucket embedding ‖
  normalised timestamp; candidate tower title-id embedding ‖ mean title-token embedding; both
  followed by dense `layer_sizes` ([32]: the tutorial's first model). In-batch softmax summed
  over the batch; Adagrad 0.1, batch 2048, 300 epochs, top-k on the test set every 5 epochs
  (as the tutorial's figure).
- `"best"` (`BestRecipe`): query tower user id ‖ the user's last `previous` interactions
  before the query time (from the fit slice while training, from the whole train split at test
  time) ‖ timestamp bucket and value ‖ age, gender, occupation, zip prefix; candidate tower
  movie id ‖ title tokens ‖ genres ‖ release-year bucket, plus a per-movie bias; both then
  dense `layer_sizes` with dropout. Exact softmax over the whole corpus, Adam, early stopping
  on `val_top_100` of a validation slice carved out of the train split (never the test set);
  the best weights are measured on the test set. The same recipe as
  `benchmarks/deep_retrieval.py`'s best row.

```python
ml = towerrec.datasets.movielens("100k")
result = run_deep_retrieval(prepare_deep_retrieval(ml, recipe="best"), recipe="best")
result.metrics["top_100"]
```
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from towerrec.data.movielens import MovieLens
from towerrec.data.splits import random_split
from towerrec.features import Discretize, FeatureSpace, Lookup, Normalize, TextVectorizer
from towerrec.models.deep_retrieval import (
    DeepRetrievalModel,
    build_corpus,
    previous_items,
    tutorial_datasets,
    tutorial_model,
)
from towerrec.optim import OptimizerSpec
from towerrec.recipes._settings import recipe_settings
from towerrec.train.callbacks import Callback, EarlyStopping
from towerrec.train.history import History
from towerrec.train.trainer import Trainer

__all__ = [
    "CANDIDATE_KEYS",
    "QUERY_KEYS",
    "RECIPES",
    "BestRecipe",
    "DeepRetrievalData",
    "DeepRetrievalResult",
    "ParityRecipe",
    "best_frames",
    "best_model",
    "best_space",
    "build_deep_retrieval_model",
    "carve",
    "config_options",
    "prepare_deep_retrieval",
    "run_deep_retrieval",
]

RECIPES = ("tfrs-parity", "best")
OPTIMIZERS = ("adagrad", "adam", "adamw", "sgd", "rmsprop")
KS = (1, 5, 10, 50, 100)

Dataset = dict[str, torch.Tensor]


@dataclass(frozen=True)
class ParityRecipe:
    """The tutorial's settings ([32]: its first model)."""

    layer_sizes: tuple[int, ...] = (32,)
    dim: int = 32
    optimizer: str = "adagrad"
    lr: float = 0.1
    batch_size: int = 2048
    epochs: int = 300
    validation_freq: int = 5


@dataclass(frozen=True)
class BestRecipe:
    """Everything the best recipe is made of (the benchmark's best row)."""

    dim: int = 64
    layer_sizes: tuple[int, ...] = (128, 64)
    dropout: float = 0.3
    previous: int = 10
    lr: float = 4e-3
    batch_size: int = 2048
    max_epochs: int = 40
    patience: int = 3
    validation_freq: int = 2
    validation_fraction: float = 0.05


#: Settings that shape the model ([model] in a config); the others are training settings.
_MODEL_KEYS = ("layer_sizes", "dim", "dropout", "previous")


def _recipe(recipe: str, overrides: dict[str, Any] | None) -> ParityRecipe | BestRecipe:
    if recipe not in RECIPES:
        raise ValueError(
            f"The 'recipe' parameter of the deep-retrieval recipes must be one of {RECIPES}. "
            f"Got {recipe!r} instead."
        )
    cls = ParityRecipe if recipe == "tfrs-parity" else BestRecipe
    values = dict(overrides or {})
    if "layer_sizes" in values:
        values["layer_sizes"] = tuple(values["layer_sizes"])
    return recipe_settings(cls, values, f"{recipe!r} deep-retrieval")


# --------------------------------------------------------------------------------------------
# Best recipe: features and model
# --------------------------------------------------------------------------------------------


def best_space() -> FeatureSpace:
    """Query and candidate features of the best recipe (unfitted)."""
    return FeatureSpace(
        {
            "user_id": Lookup(),
            "item": Lookup(num_oov_buckets=0, column="item_id"),
            "timestamp_bucket": Discretize(num_bins=100, column="timestamp"),
            "timestamp_norm": Normalize(column="timestamp"),
            "age_norm": Normalize(column="age"),
            "gender": Lookup(),
            "occupation": Lookup(),
            "zip3": Lookup(),
            "item_id": Lookup(column="item_id"),
            "title_tokens": TextVectorizer(column="title"),
            "genre_tokens": TextVectorizer(column="genre_text"),
            "year_bucket": Discretize(num_bins=20, strategy="quantile", column="year"),
        }
    )


QUERY_KEYS = [
    "user_id",
    "item",
    "timestamp_bucket",
    "timestamp_norm",
    "age_norm",
    "gender",
    "occupation",
    "zip3",
]
CANDIDATE_KEYS = ["item_id", "title_tokens", "genre_tokens", "year_bucket"]


def best_frames(ml: MovieLens) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ratings joined with user columns and a 3-digit zip prefix, items with genre text and
    release year) from a MovieLens release with a users table."""
    if ml.users is None:
        raise ValueError(f"The best recipe needs a users table; MovieLens {ml.variant} has none.")
    users = ml.users.assign(zip3=ml.users["zip_code"].astype(str).str[:3])
    ratings = ml.ratings.merge(users, on="user_id", how="left")
    year = ml.items["title"].astype(str).str.extract(r"\((\d{4})\)\s*$")[0]
    items = ml.items.assign(
        genre_text=ml.items["genres"].astype(str).str.replace("|", " ", regex=False),
        year=pd.to_numeric(year, errors="coerce").fillna(1990.0),
    )
    return ratings, items


def best_model(space: FeatureSpace, num_items: int, recipe: BestRecipe) -> DeepRetrievalModel:
    """The best recipe's model (no corpus yet)."""
    d = recipe.dim
    size = {name: space[name].size for name in (*QUERY_KEYS, *CANDIDATE_KEYS) if "norm" not in name}
    query = {
        "user_id": {"type": "embedding", "size": size["user_id"], "dim": d},
        "previous": {"type": "bag", "size": num_items + 1, "dim": d},
        "timestamp_bucket": {"type": "embedding", "size": size["timestamp_bucket"], "dim": 8},
        "timestamp_norm": {"type": "numeric"},
        "age_norm": {"type": "numeric"},
        "gender": {"type": "embedding", "size": size["gender"], "dim": 2},
        "occupation": {"type": "embedding", "size": size["occupation"], "dim": 4},
        "zip3": {"type": "embedding", "size": size["zip3"], "dim": 4},
    }
    candidate = {
        "item_id": {"type": "embedding", "size": size["item_id"], "dim": d},
        "title_tokens": {"type": "text", "size": size["title_tokens"], "dim": 16},
        "genre_tokens": {"type": "text", "size": size["genre_tokens"], "dim": 8},
        "year_bucket": {"type": "embedding", "size": size["year_bucket"], "dim": 4},
    }
    return DeepRetrievalModel(
        query,
        candidate,
        list(recipe.layer_sizes),
        negatives="corpus",
        candidate_bias=True,
        dropout=recipe.dropout,
        reduction="mean",
        ks=KS,
    )


def carve(frame: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a frame into (fit, validation) by a seeded permutation of its rows."""
    order = np.random.default_rng(seed).permutation(len(frame))
    cut = len(frame) - round(fraction * len(frame))
    return (
        frame.iloc[np.sort(order[:cut])].reset_index(drop=True),
        frame.iloc[np.sort(order[cut:])].reset_index(drop=True),
    )


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


@dataclass
class DeepRetrievalData:
    """A recipe's split, fitted features, movie corpus and tensors.

    `fit` trains, `validation` is what is validated on (the test set for tfrs-parity, as the
    tutorial; a slice of the train split for best), `test` is measured at the end.
    """

    recipe: str
    space: FeatureSpace
    corpus: dict[str, torch.Tensor]
    fit: Dataset
    validation: Dataset
    test: Dataset
    train_frame: pd.DataFrame
    items: pd.DataFrame
    settings: ParityRecipe | BestRecipe


def prepare_deep_retrieval(
    ml: MovieLens,
    *,
    recipe: str = "tfrs-parity",
    seed: int = 42,
    overrides: dict[str, Any] | None = None,
) -> DeepRetrievalData:
    """MovieLens -> the recipe's data (features are fitted on what the recipe allows: every
    rating and item for tfrs-parity, as the tutorial; the fit slice and the items for best)."""
    settings = _recipe(recipe, overrides)
    if isinstance(settings, ParityRecipe):
        ratings = ml.ratings.merge(ml.items[["item_id", "title"]], on="item_id", how="left")
        space, corpus, train, test = tutorial_datasets(ratings, ml.items, seed=seed)
        train_frame, _ = random_split(ratings, train=0.8, seed=seed)
        return DeepRetrievalData(
            recipe, space, corpus, train, test, test, train_frame, ml.items, settings
        )
    ratings, items = best_frames(ml)
    train_df, test_df = random_split(ratings, train=0.8, seed=seed)
    fit_df, val_df = carve(train_df, settings.validation_fraction, seed)
    space = best_space().fit(fit_df, items)
    corpus = build_corpus(space, items, names=CANDIDATE_KEYS)

    def encode(frame: pd.DataFrame, history: pd.DataFrame, history_items: torch.Tensor) -> Dataset:
        data = space.transform(frame, names=QUERY_KEYS)
        data["previous"] = previous_items(history, history_items, frame, settings.previous)
        return data

    fit_items = space.transform(fit_df, names=["item"])["item"]
    known_df = pd.concat([fit_df, val_df], ignore_index=True)
    known_items = space.transform(known_df, names=["item"])["item"]
    return DeepRetrievalData(
        recipe,
        space,
        corpus,
        encode(fit_df, fit_df, fit_items),
        encode(val_df, fit_df, fit_items),
        encode(test_df, known_df, known_items),
        train_df,
        items,
        settings,
    )


# --------------------------------------------------------------------------------------------
# Models and runs
# --------------------------------------------------------------------------------------------


def build_deep_retrieval_model(data: DeepRetrievalData) -> DeepRetrievalModel:
    """The untrained model of the data's recipe, with its corpus set (call `torch.manual_seed`
    first)."""
    s = data.settings
    if isinstance(s, ParityRecipe):
        return tutorial_model(data.space, data.corpus, list(s.layer_sizes), s.dim)
    return best_model(data.space, len(data.items), s).set_corpus(data.corpus)


@dataclass
class DeepRetrievalResult:
    """What `run_deep_retrieval` returns: the trained model, its history and test metrics."""

    recipe: str
    model: DeepRetrievalModel
    trainer: Trainer
    history: History
    metrics: dict[str, float]
    fit_seconds: float
    best_epoch: int | None
    settings: dict[str, Any]


def _optimizer(name: str, lr: float) -> OptimizerSpec:
    spec = OptimizerSpec.from_config({"name": name, "lr": lr})
    if name == "adagrad":  # Keras' Adagrad, one fused kernel (as benchmarks/deep_retrieval.py)
        spec = OptimizerSpec("adagrad", {**spec.kwargs, "fused": True})
    return spec


def run_deep_retrieval(
    data: DeepRetrievalData,
    *,
    seed: int = 42,
    progress: bool = False,
    callbacks: list[Callback] | None = None,
) -> DeepRetrievalResult:
    """Train the data's recipe and measure its final model on the test split.

    tfrs-parity validates on the test set every `validation_freq` epochs, as the tutorial;
    best validates on its slice, stops early and restores the best epoch's weights.
    """
    s = data.settings
    torch.manual_seed(seed)
    model = build_deep_retrieval_model(data)
    stop = None
    if isinstance(s, BestRecipe):
        stop = EarlyStopping(monitor="val_top_100", mode="max", patience=s.patience)
        optimizer, epochs = _optimizer("adam", s.lr), s.max_epochs
    else:
        optimizer, epochs = _optimizer(s.optimizer, s.lr), s.epochs
    trainer = Trainer(
        optimizer=optimizer,
        batch_size=s.batch_size,
        epochs=epochs,
        validation_freq=s.validation_freq,
        seed=seed,
        progress=progress,
        callbacks=[*([stop] if stop else []), *(callbacks or [])],
    )
    start = time.perf_counter()
    history = trainer.fit(model, data.fit, validation=data.validation)
    fit_seconds = time.perf_counter() - start
    metrics = trainer.evaluate(model, data.test)
    return DeepRetrievalResult(
        data.recipe,
        model,
        trainer,
        history,
        metrics,
        fit_seconds,
        None if stop is None else stop.best_epoch,
        asdict(s),
    )


def config_options(recipe: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ([model], [train]) options of a recipe for `towerrec.config` (`max_epochs` is
    `train.epochs`)."""
    from towerrec.config import Option, option_for

    defaults = asdict(_recipe(recipe, None))
    model, train = {}, {}
    for key, value in defaults.items():
        name = "epochs" if key == "max_epochs" else key
        if key == "optimizer":
            option = Option("str", value, "the optimizer", choices=OPTIMIZERS)
        else:
            option = option_for(key, list(value) if isinstance(value, tuple) else value)
        (model if key in _MODEL_KEYS else train)[name] = option
    return model, train


def settings_from_config(recipe: str, settings: dict[str, Any]) -> dict[str, Any]:
    """A config's merged [model] and [train] values -> `prepare_deep_retrieval` overrides."""
    out = dict(settings)
    if recipe == "best" and "epochs" in out:
        out["max_epochs"] = out.pop("epochs")
    return out
