"""A registry of model classes by name, so a bundle stores an architecture as plain data.

A registered class is rebuilt from its name and its `config` dict: `cls(**model.config)`.
The ready-made models are registered as "multitask" (`MultitaskModel`), "joint"
(`JointModel`) and "deep_retrieval" (`DeepRetrievalModel`). Register your own model before
exporting or loading a bundle that uses it:

>>> register_model("my_model", MyModel)   # MyModel(**my_model.config) rebuilds it
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from towerrec.errors import ConfigError

__all__ = [
    "build_model",
    "get_model_class",
    "model_name",
    "register_model",
    "registered_models",
    "unservable_features",
]

_MODELS: dict[str, type[nn.Module]] = {}
_BUILTINS_LOADED = False


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    from towerrec.models.deep_retrieval import DeepRetrievalModel
    from towerrec.models.movielens import JointModel, MultitaskModel

    _MODELS.setdefault("multitask", MultitaskModel)
    _MODELS.setdefault("joint", JointModel)
    _MODELS.setdefault("deep_retrieval", DeepRetrievalModel)


def register_model(name: str, cls: type[nn.Module], *, overwrite: bool = False) -> None:
    """Register `cls` under `name`; `cls(**config)` must rebuild a model from its `config` dict.

    Re-registering a name with another class is an error unless `overwrite=True`.
    """
    _load_builtins()
    if not isinstance(name, str) or not name:
        raise ValueError(
            f"The 'name' parameter of register_model must be a non-empty str. Got {name!r} instead."
        )
    if not isinstance(cls, type) or not issubclass(cls, nn.Module):
        raise TypeError(
            f"The 'cls' parameter of register_model must be an nn.Module subclass (e.g. a "
            f"towerrec.Model). Got {cls!r} instead."
        )
    current = _MODELS.get(name)
    if current is not None and current is not cls and not overwrite:
        raise ValueError(
            f"A model named {name!r} is already registered ({current.__qualname__}). Choose "
            f"another name, or pass overwrite=True to replace it."
        )
    _MODELS[name] = cls


def registered_models() -> dict[str, type[nn.Module]]:
    """Name -> class of every registered model."""
    _load_builtins()
    return dict(_MODELS)


def get_model_class(name: str) -> type[nn.Module]:
    """The class registered under `name` (a ConfigError lists the known names otherwise)."""
    _load_builtins()
    try:
        return _MODELS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"Unknown model name {name!r}. Registered models: {sorted(_MODELS)}. Register a "
            f"custom model with towerrec.serving.register_model(name, cls) before using it."
        ) from None


def model_name(model: nn.Module) -> str | None:
    """The name `type(model)` is registered under, or None when it is not registered."""
    _load_builtins()
    for name, cls in _MODELS.items():
        if type(model) is cls:
            return name
    return None


def build_model(name: str, config: Mapping[str, Any]) -> nn.Module:
    """Rebuild a registered model from its name and plain-data config: `cls(**config)`."""
    cls = get_model_class(name)
    if not isinstance(config, Mapping):
        raise ConfigError(
            f"The config of model {name!r} must be a dict of constructor arguments. Got "
            f"{type(config).__name__} instead."
        )
    try:
        return cls(**dict(config))
    except TypeError as e:
        raise ConfigError(
            f"Model {name!r} ({cls.__qualname__}) could not be built from its config "
            f"{sorted(config)}: {e}"
        ) from e


def unservable_features(model: Any, space: Any) -> str | None:
    """Why `model` cannot be served from raw query features, or None when it can: its query
    tower reads features that are not in the FeatureSpace (e.g. each user's previous items,
    built from the training interactions), which a bundle cannot rebuild at serving time."""
    serving_features = getattr(model, "serving_features", None)
    if serving_features is None:
        return None
    derived = [n for n in serving_features()["query_features"] if n not in space.transforms]
    if not derived:
        return None
    return (
        f"the query tower reads {derived}, built from the training interactions rather than "
        "from raw query features, which a bundle cannot rebuild at serving time"
    )
