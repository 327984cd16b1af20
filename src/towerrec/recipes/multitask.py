"""The multitask tutorial on MovieLens (user id, movie title -> rating + retrieval).

Two recipes on the same split, features and metrics:

- `"tfrs-parity"`: the tutorial's settings (embedding dim 32, rating head 256-128-1, Adagrad
  0.1, batch 8192, 3 epochs, in-batch softmax summed over the batch).
- `"best"`: `JointModel` (history-aware query tower, full-softmax retrieval with item biases,
  item-autoencoder rating head), Adam, early stopping on a validation slice carved out of
  the training ratings (never the test set), then the restored best weights.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from towerrec.data.movielens import MovieLens
from towerrec.data.splits import random_split
from towerrec.features import FeatureSpace, Lookup
from towerrec.metrics.topk import SeenItems
from towerrec.models.base import Model
from towerrec.models.movielens import JointModel, MultitaskModel
from towerrec.optim import Adagrad, Adam
from towerrec.train.callbacks import Callback, PerHeadEarlyStopping
from towerrec.train.history import History
from towerrec.train.trainer import Trainer

RECIPES = ("tfrs-parity", "best")

# Settings of the best recipe, chosen on the validation slice.
BEST_DEFAULTS: dict[str, Any] = {
    "dim": 64,
    "hidden": 500,
    "lr": 1e-2,
    "batch_size": 8192,
    "epochs": 40,
    "patience": 4,
    "validation_fraction": 0.1,
    "l2": 6e-4,
    "retrieval_l2": 0.03,
}


@dataclass
class MultitaskData:
    """The split, the fitted features and the tensors a recipe trains and evaluates on."""

    train: pd.DataFrame
    test: pd.DataFrame
    items: pd.DataFrame
    space: FeatureSpace
    train_tensors: dict[str, torch.Tensor]
    test_tensors: dict[str, torch.Tensor]
    seen: SeenItems


@dataclass
class MultitaskResult:
    """What `run_multitask` returns: the trained model and its test metrics."""

    recipe: str
    rating_weight: float
    retrieval_weight: float
    model: Model
    trainer: Trainer
    history: History
    data: MultitaskData
    metrics: dict[str, float]
    epochs: int
    fit_seconds: float
    eval_seconds: float
    config: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        """The benchmark row: recipe, weights, epochs, top-k, RMSE and timings."""
        m = self.metrics
        return {
            "recipe": self.recipe,
            "rating_weight": self.rating_weight,
            "retrieval_weight": self.retrieval_weight,
            "epochs": self.epochs,
            **{f"top_{k}": m.get(f"top_{k}", float("nan")) for k in (1, 5, 10, 50, 100)},
            "top_100_excl": m.get("excl_top_100", float("nan")),
            "rmse": m.get("rmse", float("nan")),
            "fit_seconds": self.fit_seconds,
            "eval_seconds": self.eval_seconds,
        }


def _tensors(space: FeatureSpace, frame: pd.DataFrame) -> dict[str, torch.Tensor]:
    out = space.transform(frame, names=["user_id", "item_id"])
    out["rating"] = torch.tensor(frame["rating"].to_numpy(np.float32))
    return out


def prepare_multitask(
    ml: MovieLens, *, seed: int = 42, train_fraction: float = 0.8
) -> MultitaskData:
    """The tutorial's data: ratings joined with titles, shuffled with `seed`, first 80% train.

    Features: `user_id` (a `Lookup` over user ids) and `item_id` (a `Lookup` over movie titles,
    fitted on the items frame so every movie is in the corpus), each with one OOV id.
    """
    ratings = ml.joined()[["user_id", "title", "rating", "timestamp"]]
    train, test = random_split(ratings, train=train_fraction, seed=seed)
    items = ml.items.drop_duplicates("title").reset_index(drop=True)
    space = FeatureSpace({"user_id": Lookup(), "item_id": Lookup(column="title")})
    space.fit(ratings[["user_id"]], items[["title"]])
    train_t, test_t = _tensors(space, train), _tensors(space, test)
    seen = SeenItems.from_pairs(
        train_t["user_id"], train_t["item_id"], num_queries=space["user_id"].size
    )
    return MultitaskData(train, test, items, space, train_t, test_t, seen)


def _parity(
    data: MultitaskData,
    rating_weight: float,
    retrieval_weight: float,
    epochs: int,
    seed: int,
    progress: bool,
    callbacks: list[Callback],
) -> tuple[Model, Trainer, dict[str, Any]]:
    torch.manual_seed(seed)
    space = data.space
    model = MultitaskModel(
        space["user_id"].size,
        space["item_id"].size,
        rating_weight=rating_weight,
        retrieval_weight=retrieval_weight,
    )
    # The exclusion metric is reported for every recipe.
    from towerrec.metrics import FactorizedTopK

    model.retrieval_task.metrics.append(
        FactorizedTopK(model.candidate_corpus, ks=(100,), seen=data.seen, prefix="excl_")
    )
    trainer = Trainer(
        Adagrad(lr=0.1),
        batch_size=8192,
        epochs=epochs,
        seed=seed,
        progress=progress,
        callbacks=callbacks,
    )
    return model, trainer, {"optimizer": "adagrad", "lr": 0.1, "batch_size": 8192, "dim": 32}


def run_multitask(
    ml: MovieLens | MultitaskData,
    *,
    recipe: str = "best",
    rating_weight: float = 1.0,
    retrieval_weight: float = 1.0,
    epochs: int | None = None,
    seed: int = 42,
    progress: bool = True,
    callbacks: list[Callback] | None = None,
    overrides: dict[str, Any] | None = None,
) -> MultitaskResult:
    """Train and evaluate one multitask recipe; returns the model, history and test metrics.

    `overrides` changes settings of the best recipe (see `BEST_DEFAULTS`).
    """
    if recipe not in RECIPES:
        raise ValueError(
            f"The 'recipe' parameter of run_multitask must be one of {RECIPES}. Got {recipe!r} instead."
        )
    data = ml if isinstance(ml, MultitaskData) else prepare_multitask(ml, seed=seed)
    callbacks = list(callbacks or [])
    validation = None
    if recipe == "tfrs-parity":
        model, trainer, config = _parity(
            data, rating_weight, retrieval_weight, epochs or 3, seed, progress, callbacks
        )
        fit_data = data.train_tensors
    else:
        settings = {**BEST_DEFAULTS, **(overrides or {})}
        unknown = set(settings) - set(BEST_DEFAULTS)
        if unknown:
            raise ValueError(
                f"Unknown setting(s) {sorted(unknown)} for the best recipe; known: {sorted(BEST_DEFAULTS)}."
            )
        n = len(data.train)
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(n, generator=generator)
        n_val = round(settings["validation_fraction"] * n)
        fit_data = {k: v[order[n_val:]] for k, v in data.train_tensors.items()}
        validation = {k: v[order[:n_val]] for k, v in data.train_tensors.items()}
        torch.manual_seed(seed)
        space = data.space
        model = JointModel(
            space["user_id"].size,
            space["item_id"].size,
            dim=settings["dim"],
            hidden=settings["hidden"],
            l2=settings["l2"],
            retrieval_l2=settings["retrieval_l2"],
            rating_weight=rating_weight,
            retrieval_weight=retrieval_weight,
            seen=data.seen,
        )
        model.set_interactions(fit_data["user_id"], fit_data["item_id"], fit_data["rating"])
        heads = model.head_prefixes()
        monitors: dict[str, tuple[str, tuple[str, ...]]] = {}
        if rating_weight:
            monitors["val_rmse"] = ("min", heads["rating"])
        if retrieval_weight:
            monitors["val_top_100"] = ("max", heads["retrieval"])
        # Each head keeps the weights of its own best validation epoch.
        callbacks.insert(0, PerHeadEarlyStopping(monitors, patience=settings["patience"]))
        trainer = Trainer(
            Adam(lr=settings["lr"]),
            batch_size=settings["batch_size"],
            epochs=epochs or settings["epochs"],
            seed=seed,
            progress=progress,
            callbacks=callbacks,
        )
        config = {"optimizer": "adam", **settings}
    start = time.perf_counter()
    history = trainer.fit(model, fit_data, validation)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    metrics = trainer.evaluate(model, data.test_tensors)
    eval_seconds = time.perf_counter() - start
    return MultitaskResult(
        recipe=recipe,
        rating_weight=rating_weight,
        retrieval_weight=retrieval_weight,
        model=model,
        trainer=trainer,
        history=history,
        data=data,
        metrics=metrics,
        epochs=len(history),
        fit_seconds=fit_seconds,
        eval_seconds=eval_seconds,
        config={
            "recipe": recipe,
            "rating_weight": rating_weight,
            "retrieval_weight": retrieval_weight,
            "seed": seed,
            **config,
        },
    )
