"""TextEmbedding: masked mean of token embeddings."""

from __future__ import annotations

import pytest
import torch

from towerrec.layers.text import TextEmbedding


def test_mean_of_non_padding_tokens_by_hand() -> None:
    emb = TextEmbedding(5, 2)
    with torch.no_grad():
        emb.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]))
    out = emb(torch.tensor([[1, 2, 0], [3, 0, 0], [4, 4, 1]]))
    expected = torch.tensor([[2.0, 3.0], [5.0, 6.0], [5.0, 6.0]])
    assert torch.allclose(out, expected)


def test_padding_length_does_not_change_the_embedding() -> None:
    torch.manual_seed(0)
    emb = TextEmbedding(50, 8)
    titles = [[7, 3, 12], [5], [9, 9]]
    short = torch.tensor([t + [0] * (3 - len(t)) for t in titles])
    long = torch.tensor([t + [0] * (10 - len(t)) for t in titles])
    assert torch.allclose(emb(short), emb(long), atol=0, rtol=0)
    # the padding row is ignored even if it were non-zero
    with torch.no_grad():
        emb.weight[0].fill_(100.0)
    assert torch.allclose(emb(short), emb(long))
    assert emb(long).abs().max() < 1.0


def test_all_padding_rows_give_zeros_and_no_nan() -> None:
    emb = TextEmbedding(10, 4)
    out = emb(torch.tensor([[0, 0, 0], [1, 0, 0]]))
    assert torch.equal(out[0], torch.zeros(4))
    assert torch.isfinite(out).all()
    assert torch.equal(emb(torch.zeros(3, 0, dtype=torch.int64)), torch.zeros(3, 4))


def test_keras_init_range_and_zero_padding_row() -> None:
    torch.manual_seed(0)
    emb = TextEmbedding(1000, 16)
    w = emb.weight.detach()
    assert torch.equal(w[0], torch.zeros(16))
    assert w[1:].min() >= -0.05 and w[1:].max() <= 0.05
    assert w[1:].std() > 0.02  # uniform on (-0.05, 0.05): std 0.029
    assert emb.output_dim == 16


def test_gradients_skip_padding_and_sum_mode() -> None:
    emb = TextEmbedding(6, 3, mode="sum")
    with torch.no_grad():
        emb.weight.copy_(torch.arange(18, dtype=torch.float32).reshape(6, 3))
        emb.weight[0].zero_()
    out = emb(torch.tensor([[1, 2, 0, 0]]))
    assert torch.allclose(out, emb.weight[1] + emb.weight[2])
    out.sum().backward()
    grad = emb.weight.grad
    assert torch.equal(grad[0], torch.zeros(3))
    assert torch.equal(grad[1], torch.ones(3))


def test_no_padding_idx_averages_every_position() -> None:
    emb = TextEmbedding(4, 1, padding_idx=None)
    with torch.no_grad():
        emb.weight.copy_(torch.tensor([[1.0], [2.0], [3.0], [4.0]]))
    assert torch.allclose(emb(torch.tensor([[0, 3]])), torch.tensor([[2.5]]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_tokens": 0, "dim": 4}, "'num_tokens'.*positive int. Got 0"),
        ({"num_tokens": 4, "dim": 0}, "'dim'.*positive int"),
        ({"num_tokens": 4, "dim": 2, "padding_idx": 4}, "'padding_idx'"),
        ({"num_tokens": 4, "dim": 2, "mode": "max"}, "'mode'"),
        ({"num_tokens": 4, "dim": 2, "init": "zeros"}, "'init'"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TextEmbedding(**kwargs)


def test_bad_inputs() -> None:
    emb = TextEmbedding(4, 2)
    with pytest.raises(ValueError, match=r"\[B, L\]"):
        emb(torch.tensor([1, 2]))
    with pytest.raises(TypeError, match="int64"):
        emb(torch.tensor([[1.0, 2.0]]))
