"""Id embedding tables."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Init = Literal["keras", "normal", "xavier"]


def _check_positive(name: str, owner: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(
            f"The '{name}' parameter of {owner} must be a positive int. Got {value!r} instead."
        )


class Embedding(nn.Module):
    """[...] int ids -> [..., dim] vectors: a lookup table.

    `init="keras"` draws weights from U(-0.05, 0.05), as Keras' `Embedding` does (parity with
    TFRS recipes); `"normal"` draws N(0, std) and `"xavier"` Glorot-uniform. `sparse=True`
    produces sparse gradients (for very large tables with `SparseAdam`/`Adagrad`).
    """

    def __init__(
        self,
        num_embeddings: int,
        dim: int,
        *,
        init: Init = "keras",
        std: float = 0.05,
        sparse: bool = False,
        padding_idx: int | None = None,
    ) -> None:
        super().__init__()
        _check_positive("num_embeddings", "Embedding", num_embeddings)
        _check_positive("dim", "Embedding", dim)
        self.num_embeddings = num_embeddings
        self.dim = dim
        self.table = nn.Embedding(num_embeddings, dim, sparse=sparse, padding_idx=padding_idx)
        with torch.no_grad():
            if init == "keras":
                nn.init.uniform_(self.table.weight, -0.05, 0.05)
            elif init == "normal":
                nn.init.normal_(self.table.weight, 0.0, std)
            elif init == "xavier":
                nn.init.xavier_uniform_(self.table.weight)
            else:
                raise ValueError(
                    f"The 'init' parameter of Embedding must be one of 'keras', 'normal', "
                    f"'xavier'. Got {init!r} instead."
                )
            if padding_idx is not None:
                self.table.weight[padding_idx].zero_()

    @property
    def weight(self) -> torch.Tensor:
        """[num_embeddings, dim] the table."""
        return self.table.weight

    @property
    def output_dim(self) -> int:
        """Size of the last dimension of the output."""
        return self.dim

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """[...] int64 ids -> [..., dim] float vectors."""
        return self.table(ids)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.dim}"
