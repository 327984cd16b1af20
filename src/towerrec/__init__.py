"""towerrec: PyTorch-native two-tower retrieval and ranking models, evaluation and serving.

Core names are imported eagerly; sub-packages with optional or heavier dependencies
(`datasets`, `data`, `features`, `index`, `serving`, `plot`) load on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

from towerrec import layers, metrics, optim, tasks, train
from towerrec.errors import (
    BundleError,
    ChecksumError,
    ConfigError,
    DataFormatError,
    NotFittedError,
    TowerrecError,
)
from towerrec.models.base import Model
from towerrec.summary import summary
from towerrec.train import (
    Callback,
    Checkpoint,
    EarlyStopping,
    History,
    PerHeadEarlyStopping,
    Trainer,
)

__version__ = "0.1.0"

_LAZY_MODULES = {
    "data",
    "datasets",
    "features",
    "index",
    "serving",
    "plot",
    "models",
    "recipes",
    "config",
    "runs",
    "cli",
}
_LAZY_NAMES = {
    "FeatureSpace": "towerrec.features",
}

__all__ = [
    "BundleError",
    "Callback",
    "Checkpoint",
    "ChecksumError",
    "ConfigError",
    "DataFormatError",
    "EarlyStopping",
    "FeatureSpace",
    "History",
    "Model",
    "NotFittedError",
    "PerHeadEarlyStopping",
    "TowerrecError",
    "Trainer",
    "__version__",
    "data",
    "datasets",
    "features",
    "index",
    "layers",
    "metrics",
    "models",
    "optim",
    "plot",
    "recipes",
    "serving",
    "summary",
    "tasks",
    "train",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return importlib.import_module(f"towerrec.{name}")
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(_LAZY_NAMES[name]), name)
    raise AttributeError(f"module 'towerrec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
