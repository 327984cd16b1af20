"""FeatureConcat and Numeric: tower inputs from named features."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from towerrec.layers.embedding import Embedding
from towerrec.layers.features import FeatureConcat, Numeric
from towerrec.layers.text import TextEmbedding


def _batch(b: int = 5) -> dict[str, torch.Tensor]:
    return {
        "user_id": torch.arange(b) % 7,
        "title_tokens": torch.tensor([[1, 2, 0]] * b),
        "timestamp_norm": torch.linspace(-1, 1, b),
        "unused": torch.zeros(b),
    }


def test_shapes_order_and_values() -> None:
    torch.manual_seed(0)
    user = Embedding(7, 4)
    text = TextEmbedding(3, 3)
    concat = FeatureConcat({"user_id": user, "title_tokens": text, "timestamp_norm": Numeric()})
    batch = _batch()
    out = concat(batch)
    assert concat.output_dim == 8
    assert concat.names == ["user_id", "title_tokens", "timestamp_norm"]
    assert out.shape == (5, 8)
    assert out.dtype == torch.float32
    assert torch.equal(out[:, :4], user(batch["user_id"]))
    assert torch.equal(out[:, 4:7], text(batch["title_tokens"]))
    assert torch.equal(out[:, 7], batch["timestamp_norm"])


def test_gradients_reach_every_feature_module() -> None:
    concat = FeatureConcat({"user_id": Embedding(7, 4), "title_tokens": TextEmbedding(3, 2)})
    concat(_batch()).pow(2).sum().backward()
    for p in concat.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_numeric_width() -> None:
    two = Numeric(2)
    assert two(torch.ones(3, 2, dtype=torch.float64)).dtype == torch.float32
    assert two.output_dim == 2
    with pytest.raises(ValueError, match=r"Numeric\(width=2\).*\[B, 2\]"):
        two(torch.ones(3))
    with pytest.raises(ValueError, match="'width'"):
        Numeric(0)


def test_missing_batch_key_names_it() -> None:
    concat = FeatureConcat({"user_id": Embedding(7, 4), "genre_tokens": TextEmbedding(3, 2)})
    with pytest.raises(KeyError, match="'genre_tokens'"):
        concat(_batch())


def test_bad_definitions() -> None:
    with pytest.raises(ValueError, match="non-empty dict"):
        FeatureConcat({})
    with pytest.raises(ValueError, match=r"without '\.'"):
        FeatureConcat({"user.id": Embedding(3, 2)})
    with pytest.raises(TypeError, match="'output_dim'"):
        FeatureConcat({"x": nn.Linear(3, 2)})
    with pytest.raises(TypeError, match=r"nn\.Module"):
        FeatureConcat({"x": "embedding"})  # type: ignore[dict-item]
