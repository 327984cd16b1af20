"""Stacks of dense layers."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "silu": nn.SiLU,
    "identity": nn.Identity,
}


def make_activation(name: str | None) -> nn.Module:
    """Build an activation module from its name (`relu`, `gelu`, `tanh`, `sigmoid`, `silu`)."""
    if name is None:
        return nn.Identity()
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(
            f"Unknown activation {name!r}; choose one of {sorted(_ACTIVATIONS)} or None."
        ) from None


class MLP(nn.Module):
    """[..., in] -> [..., layer_sizes[-1]]: dense layers with `activation` between them.

    The input size is inferred on the first call (`in_features=None`) or given. The last layer
    gets `final_activation` (none by default), so `MLP([64, 32])` is Dense(64)-ReLU-Dense(32),
    the deep-retrieval tutorial's tower. Weights are Glorot-uniform and biases zero, as Keras
    initialises `Dense`.
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        *,
        in_features: int | None = None,
        activation: str | None = "relu",
        final_activation: str | None = None,
        dropout: float = 0.0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        sizes = list(layer_sizes)
        if not sizes or any(not isinstance(s, int) or s < 1 for s in sizes):
            raise ValueError(
                "The 'layer_sizes' parameter of MLP must be a non-empty list of positive ints. "
                f"Got {layer_sizes!r} instead."
            )
        self.layer_sizes = sizes
        layers: list[nn.Module] = []
        for i, size in enumerate(sizes):
            linear = (
                nn.Linear(in_features, size, bias=bias)
                if in_features
                else nn.LazyLinear(size, bias=bias)
            )
            layers.append(linear)
            last = i == len(sizes) - 1
            layers.append(make_activation(final_activation if last else activation))
            if dropout > 0 and not last:
                layers.append(nn.Dropout(dropout))
            in_features = size
        self.net = nn.Sequential(*layers)
        self._pending_init = isinstance(layers[0], nn.LazyLinear)
        if not self._pending_init:
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform weights and zero biases, as Keras' `Dense`."""
        for m in self.net:
            if isinstance(m, nn.Linear) and not isinstance(m, nn.LazyLinear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @property
    def output_dim(self) -> int:
        """Size of the last dimension of the output."""
        return self.layer_sizes[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[..., in] -> [..., layer_sizes[-1]]."""
        if self._pending_init:
            # Materialise the lazily-sized layers, then give them Keras' initialisation.
            with torch.no_grad():
                self.net(x.detach().reshape(-1, x.shape[-1])[:1])
            self.reset_parameters()
            self._pending_init = False
        return self.net(x)
