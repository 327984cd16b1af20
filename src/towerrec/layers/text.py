"""Bags of token ids -> one vector: the mean of the non-padding token embeddings."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Init = Literal["keras", "normal", "xavier"]


def _check_positive(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(
            f"The '{name}' parameter of TextEmbedding must be a positive int. Got {value!r} instead."
        )


class TextEmbedding(nn.Module):
    """[B, L] int token ids (`padding_idx` = padding) -> [B, dim]: mean of the non-padding
    token embeddings.

    The deep-retrieval tutorial's `Embedding(mask_zero=True)` + `GlobalAveragePooling1D`, as one
    `nn.EmbeddingBag(mode="mean")`: padding positions are left out of the mean, so a text padded
    to length 3 or to length 10 embeds identically, and an all-padding row gives zeros (Keras
    divides by zero there). `mode="sum"` sums instead of averaging. `padding_idx=None` averages
    every position.

    `init="keras"` draws U(-0.05, 0.05) as Keras' `Embedding`; `"normal"` draws N(0, std);
    `"xavier"` is Glorot-uniform. The padding row is kept at zero.
    """

    def __init__(
        self,
        num_tokens: int,
        dim: int,
        padding_idx: int | None = 0,
        *,
        mode: Literal["mean", "sum"] = "mean",
        init: Init = "keras",
        std: float = 0.05,
    ) -> None:
        super().__init__()
        _check_positive("num_tokens", num_tokens)
        _check_positive("dim", dim)
        if padding_idx is not None and (
            not isinstance(padding_idx, int) or not 0 <= padding_idx < num_tokens
        ):
            raise ValueError(
                f"The 'padding_idx' parameter of TextEmbedding must be None or an int in "
                f"[0, num_tokens={num_tokens}). Got {padding_idx!r} instead."
            )
        if mode not in ("mean", "sum"):
            raise ValueError(
                f"The 'mode' parameter of TextEmbedding must be 'mean' or 'sum'. Got {mode!r} "
                "instead."
            )
        self.num_tokens = num_tokens
        self.dim = dim
        self.padding_idx = padding_idx
        self.mode = mode
        self.bag = nn.EmbeddingBag(num_tokens, dim, mode=mode, padding_idx=padding_idx)
        with torch.no_grad():
            if init == "keras":
                nn.init.uniform_(self.bag.weight, -0.05, 0.05)
            elif init == "normal":
                nn.init.normal_(self.bag.weight, 0.0, std)
            elif init == "xavier":
                nn.init.xavier_uniform_(self.bag.weight)
            else:
                raise ValueError(
                    f"The 'init' parameter of TextEmbedding must be one of 'keras', 'normal', "
                    f"'xavier'. Got {init!r} instead."
                )
            if padding_idx is not None:
                self.bag.weight[padding_idx].zero_()

    @property
    def weight(self) -> torch.Tensor:
        """[num_tokens, dim] the token table."""
        return self.bag.weight

    @property
    def output_dim(self) -> int:
        """Size of the last dimension of the output."""
        return self.dim

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, L] int token ids -> [B, dim] mean (or sum) of the non-padding token embeddings."""
        if tokens.dim() != 2:
            raise ValueError(
                f"TextEmbedding expects [B, L] token ids (one padded row per text). Got shape "
                f"{tuple(tokens.shape)} instead; reshape a single text to [1, L]."
            )
        if tokens.dtype not in (torch.int64, torch.int32):
            raise TypeError(
                f"TextEmbedding expects int64 token ids (from TextVectorizer). Got dtype "
                f"{tokens.dtype} instead."
            )
        if tokens.shape[1] == 0:
            return self.bag.weight.new_zeros(tokens.shape[0], self.dim)
        return self.bag(tokens)

    def extra_repr(self) -> str:
        return f"{self.num_tokens}, {self.dim}, padding_idx={self.padding_idx}, mode={self.mode!r}"
