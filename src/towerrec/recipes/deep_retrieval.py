"""The deep-retrieval tutorial on MovieLens (user, time -> movie), as a recipe.

- `"tfrs-parity"`: the tutorial: query tower user-id embedding ‖ timestamp-bucket embedding ‖
  normalised timestamp, candidate tower title-id embedding ‖ mean title-token embedding, both
  followed by dense `layer_sizes` ([32]: the tutorial's first model); in-batch softmax summed
  over the batch; Adagrad 0.1, batch 2048, 300 epochs, factorized top-k on the test set every
  5 epochs (as the tutorial's figure).
- `"best"`: the same features and split with a better training recipe (see `BEST_DEFAULTS`).

```python
ml = towerrec.datasets.movielens("100k")
result = run_deep_retrieval(prepare_deep_retrieval(ml), recipe="tfrs-parity")
result.metrics["top_100"]
```
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from towerrec.data.movielens import MovieLens
from towerrec.data.splits import random_split
from towerrec.features import FeatureSpace
from towerrec.models.deep_retrieval import DeepRetrievalModel, tutorial_datasets, tutorial_model
from towerrec.optim import OptimizerSpec
from towerrec.train.callbacks import Callback, EarlyStopping
from towerrec.train.history import History
from towerrec.train.trainer import Trainer

__all__ = [
    "BEST_DEFAULTS",
    "PARITY_DEFAULTS",
    "RECIPES",
    "DeepRetrievalData",
    "DeepRetrievalResult",
    "build_deep_retrieval_model",
    "config_options",
    "prepare_deep_retrieval",
    "run_deep_retrieval",
]

RECIPES = ("tfrs-parity", "best")
OPTIMIZERS = ("adagrad", "adam", "adamw", "sgd", "rmsprop")

#: The tutorial's settings ([32]: its first model).
PARITY_DEFAULTS: dict[str, Any] = {
    "layer_sizes": [32],
    "dim": 32,
    "optimizer": "adagrad",
    "lr": 0.1,
    "batch_size": 2048,
    "epochs": 300,
    "validation_freq": 5,
    "patience": 0,
}
#: The best recipe's settings.
BEST_DEFAULTS: dict[str, Any] = dict(PARITY_DEFAULTS)

_MODEL_KEYS = ("layer_sizes", "dim")


@dataclass
class DeepRetrievalData:
    """The split, the fitted features, the movie corpus and the tensors."""

    space: FeatureSpace
    corpus: dict[str, torch.Tensor]
    train: dict[str, torch.Tensor]
    test: dict[str, torch.Tensor]
    train_frame: pd.DataFrame


@dataclass
class DeepRetrievalResult:
    """What `run_deep_retrieval` returns: the trained model, its history and test metrics."""

    recipe: str
    model: DeepRetrievalModel
    trainer: Trainer
    history: History
    metrics: dict[str, float]
    fit_seconds: float
    settings: dict[str, Any]


def prepare_deep_retrieval(
    ml: MovieLens, *, seed: int = 42, train_fraction: float = 0.8
) -> DeepRetrievalData:
    """The tutorial's data: ratings with titles, shuffled with `seed`, first 80% train;
    features fitted on every rating and item (`tutorial_datasets`)."""
    ratings = ml.ratings.merge(ml.items[["item_id", "title"]], on="item_id", how="left")
    space, corpus, train, test = tutorial_datasets(ratings, ml.items, train_fraction, seed)
    train_frame, _ = random_split(ratings, train=train_fraction, seed=seed)
    return DeepRetrievalData(space, corpus, train, test, train_frame)


def _settings(recipe: str, overrides: dict[str, Any] | None) -> dict[str, Any]:
    if recipe not in RECIPES:
        raise ValueError(
            f"The 'recipe' parameter of run_deep_retrieval must be one of {RECIPES}. Got "
            f"{recipe!r} instead."
        )
    defaults = PARITY_DEFAULTS if recipe == "tfrs-parity" else BEST_DEFAULTS
    unknown = set(overrides or {}) - set(defaults)
    if unknown:
        raise ValueError(
            f"Unknown setting(s) {sorted(unknown)} for the {recipe!r} deep-retrieval recipe; "
            f"known: {sorted(defaults)}."
        )
    return {**defaults, **(overrides or {})}


def build_deep_retrieval_model(
    data: DeepRetrievalData, recipe: str = "tfrs-parity", overrides: dict[str, Any] | None = None
) -> DeepRetrievalModel:
    """The untrained model of `recipe` over the data's corpus (call `torch.manual_seed` first)."""
    settings = _settings(recipe, overrides)
    return tutorial_model(data.space, data.corpus, settings["layer_sizes"], settings["dim"])


def _optimizer(name: str, lr: float) -> OptimizerSpec:
    spec = OptimizerSpec.from_config({"name": name, "lr": lr})
    if name == "adagrad":  # Keras' Adagrad, one fused kernel (as benchmarks/deep_retrieval.py)
        spec = OptimizerSpec("adagrad", {**spec.kwargs, "fused": True})
    return spec


def run_deep_retrieval(
    data: DeepRetrievalData,
    *,
    recipe: str = "tfrs-parity",
    seed: int = 42,
    progress: bool = False,
    callbacks: list[Callback] | None = None,
    overrides: dict[str, Any] | None = None,
) -> DeepRetrievalResult:
    """Train one recipe and evaluate it on the test split (top-1/5/10/50/100 accuracy).

    Validation runs on the test set every `validation_freq` epochs, as in the tutorial; a
    positive `patience` stops when `val_top_100` stops improving and keeps the best weights.
    """
    settings = _settings(recipe, overrides)
    torch.manual_seed(seed)
    model = build_deep_retrieval_model(data, recipe, overrides)
    stops = []
    if settings["patience"] > 0:
        stops.append(EarlyStopping("val_top_100", mode="max", patience=settings["patience"]))
    optimizer = _optimizer(settings["optimizer"], settings["lr"])
    trainer = Trainer(
        optimizer,
        batch_size=settings["batch_size"],
        epochs=settings["epochs"],
        validation_freq=settings["validation_freq"],
        seed=seed,
        progress=progress,
        callbacks=[*stops, *(callbacks or [])],
    )
    start = time.perf_counter()
    history = trainer.fit(model, data.train, validation=data.test)
    fit_seconds = time.perf_counter() - start
    metrics = trainer.evaluate(model, data.test)
    return DeepRetrievalResult(recipe, model, trainer, history, metrics, fit_seconds, settings)


def config_options(recipe: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ([model], [train]) options of a recipe for `towerrec.config`."""
    from towerrec.config import Option, option_for

    defaults = PARITY_DEFAULTS if recipe == "tfrs-parity" else BEST_DEFAULTS
    model, train = {}, {}
    for key, value in defaults.items():
        if key == "optimizer":
            option = Option("str", value, "the optimizer", choices=OPTIMIZERS)
        else:
            option = option_for(key, value)
        (model if key in _MODEL_KEYS else train)[key] = option
    return model, train
