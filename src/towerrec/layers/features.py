"""Tower inputs from named features: one module per batch key, outputs concatenated."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class Numeric(nn.Module):
    """[B] or [B, width] numbers -> [B, width] float32: a raw numeric feature as tower columns.

    For features already scaled by a fitted transform (e.g. `Normalize`d timestamps).
    """

    def __init__(self, width: int = 1) -> None:
        super().__init__()
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ValueError(
                f"The 'width' parameter of Numeric must be a positive int. Got {width!r} instead."
            )
        self.width = width

    @property
    def output_dim(self) -> int:
        """Size of the last dimension of the output."""
        return self.width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B] or [B, width] numbers -> [B, width] float32."""
        out = x.reshape(x.shape[0], -1).to(torch.float32)
        if out.shape[1] != self.width:
            raise ValueError(
                f"Numeric(width={self.width}) got a feature of shape {tuple(x.shape)}; expected "
                f"[B] or [B, {self.width}]."
            )
        return out

    def extra_repr(self) -> str:
        return f"width={self.width}"


def _output_dim(name: str, module: nn.Module) -> int:
    dim = getattr(module, "output_dim", None)
    if isinstance(dim, int) and not isinstance(dim, bool) and dim > 0:
        return dim
    raise TypeError(
        f"The module of feature {name!r} ({type(module).__name__}) has no positive int "
        "'output_dim'; give it one (towerrec layers Embedding, TextEmbedding, Numeric and MLP "
        "have it) or wrap it."
    )


class FeatureConcat(nn.Module):
    """dict of [B, ...] feature tensors -> [B, output_dim]: each named feature through its own
    module, the results concatenated in the order given.

    `features` maps a batch key to the module that embeds it, for example
    `{"user_id": Embedding(n, 32), "title_tokens": TextEmbedding(t, 32), "timestamp": Numeric()}`.
    Every module must have an `output_dim`; `output_dim` of the concatenation is their sum.
    Keys of the batch that are not features are ignored; a missing one is an error naming it.
    """

    def __init__(self, features: Mapping[str, nn.Module]) -> None:
        super().__init__()
        if not isinstance(features, Mapping) or not features:
            raise ValueError(
                "FeatureConcat needs a non-empty dict of batch key -> module. Got "
                f"{features!r} instead."
            )
        self.layers = nn.ModuleDict()
        dims: dict[str, int] = {}
        for name, module in features.items():
            if not isinstance(name, str) or not name or "." in name:
                raise ValueError(
                    f"FeatureConcat feature names must be non-empty str without '.'. Got "
                    f"{name!r}; rename the batch key (e.g. replace '.' with '_')."
                )
            if not isinstance(module, nn.Module):
                raise TypeError(
                    f"The feature {name!r} of FeatureConcat must be an nn.Module. Got "
                    f"{type(module).__name__} instead."
                )
            dims[name] = _output_dim(name, module)
            self.layers[name] = module
        self.dims = dims

    @property
    def names(self) -> list[str]:
        """The batch keys read, in concatenation order."""
        return list(self.dims)

    @property
    def output_dim(self) -> int:
        """Size of the last dimension of the output: the sum of the features' sizes."""
        return sum(self.dims.values())

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """dict of [B, ...] tensors -> [B, output_dim] concatenated feature embeddings."""
        parts = []
        for name, module in self.layers.items():
            if name not in batch:
                raise KeyError(
                    f"FeatureConcat needs the batch key {name!r}; the batch has "
                    f"{sorted(batch)}. Transform that feature (FeatureSpace) into the batch."
                )
            parts.append(module(batch[name]))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)

    def extra_repr(self) -> str:
        return f"output_dim={self.output_dim}"
