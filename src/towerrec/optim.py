"""Optimizer specifications: named settings that build a `torch.optim.Optimizer` later.

`towerrec.optim.Adagrad(lr=0.1)` follows Keras' Adagrad (accumulator starts at 0.1, epsilon 1e-7),
so TFRS recipes give the same numbers. A spec is plain data, so it can live in a config file
and in a checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

_BUILDERS: dict[str, type[torch.optim.Optimizer]] = {
    "adagrad": torch.optim.Adagrad,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}


@dataclass(frozen=True)
class OptimizerSpec:
    """A named optimizer and its keyword arguments; `build(params)` makes the optimizer."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in _BUILDERS:
            raise ValueError(f"Unknown optimizer {self.name!r}; choose one of {sorted(_BUILDERS)}.")

    def build(
        self, params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]]
    ) -> torch.optim.Optimizer:
        """Create the optimizer over `params`."""
        return _BUILDERS[self.name](params, **self.kwargs)

    @property
    def lr(self) -> float:
        """The learning rate."""
        return float(self.kwargs.get("lr", 0.0))

    def to_config(self) -> dict[str, Any]:
        """A JSON/TOML-able dictionary: {"name": ..., **kwargs}."""
        return {"name": self.name, **self.kwargs}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> OptimizerSpec:
        """The inverse of `to_config`."""
        config = dict(config)
        name = config.pop("name")
        builder = _FACTORIES.get(name)
        if builder is None:
            raise ValueError(f"Unknown optimizer {name!r}; choose one of {sorted(_FACTORIES)}.")
        return builder(**config)


def Adagrad(
    lr: float = 0.1,
    initial_accumulator_value: float = 0.1,
    eps: float = 1e-7,
    weight_decay: float = 0.0,
) -> OptimizerSpec:
    """Adagrad with Keras' defaults (accumulator 0.1, epsilon 1e-7)."""
    return OptimizerSpec(
        "adagrad",
        {
            "lr": lr,
            "initial_accumulator_value": initial_accumulator_value,
            "eps": eps,
            "weight_decay": weight_decay,
        },
    )


def Adam(
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-7,
    weight_decay: float = 0.0,
) -> OptimizerSpec:
    """Adam with Keras' epsilon (1e-7)."""
    return OptimizerSpec(
        "adam", {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay}
    )


def AdamW(
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-7,
    weight_decay: float = 0.01,
) -> OptimizerSpec:
    """Adam with decoupled weight decay."""
    return OptimizerSpec(
        "adamw", {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay}
    )


def SGD(lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0) -> OptimizerSpec:
    """Stochastic gradient descent, optionally with momentum."""
    return OptimizerSpec("sgd", {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})


def RMSprop(lr: float = 1e-3, alpha: float = 0.9, eps: float = 1e-7) -> OptimizerSpec:
    """RMSprop with Keras' defaults (rho 0.9, epsilon 1e-7)."""
    return OptimizerSpec("rmsprop", {"lr": lr, "alpha": alpha, "eps": eps})


_FACTORIES = {"adagrad": Adagrad, "adam": Adam, "adamw": AdamW, "sgd": SGD, "rmsprop": RMSprop}
