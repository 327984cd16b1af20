"""Memory-efficient embeddings: quotient-remainder, mixed-dimension, hashed."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from towerrec.layers.memory import (
    HashEmbedding,
    MixedDimEmbedding,
    QREmbedding,
    alpha_power_dims,
    frequency_blocks,
)


def _nparams(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# ------------------------------------------------------------------ QREmbedding


@pytest.mark.parametrize("combiner", ["mul", "add", "concat"])
def test_qr_every_id_gets_a_distinct_vector(combiner: str) -> None:
    torch.manual_seed(0)
    emb = QREmbedding(1000, 8, 32, combiner=combiner)
    vectors = emb(torch.arange(1000))
    assert vectors.shape == (1000, 8)
    assert torch.unique(vectors, dim=0).shape[0] == 1000


def test_qr_combines_quotient_and_remainder_rows() -> None:
    torch.manual_seed(0)
    ids = torch.tensor([0, 7, 31, 32, 999])
    for combiner in ("mul", "add", "concat"):
        emb = QREmbedding(1000, 8, 32, combiner=combiner)
        q = emb.quotient.weight[ids // 32]
        r = emb.remainder.weight[ids % 32]
        expected = {"mul": q * r, "add": q + r, "concat": torch.cat([q, r], -1)}[combiner]
        torch.testing.assert_close(emb(ids), expected)


@pytest.mark.parametrize(
    ("n", "buckets", "combiner", "dim"),
    [(1000, 32, "mul", 8), (1024, 32, "add", 8), (1000, 50, "mul", 6), (943, 18, "concat", 64)],
)
def test_qr_parameter_count(n: int, buckets: int, combiner: str, dim: int) -> None:
    emb = QREmbedding(n, dim, buckets, combiner=combiner)
    table_dim = dim // 2 if combiner == "concat" else dim
    assert _nparams(emb) == (math.ceil(n / buckets) + buckets) * table_dim
    assert emb.quotient.weight.shape[0] == math.ceil(n / buckets)
    assert emb.remainder.weight.shape[0] == buckets


def test_qr_sqrt_buckets_use_two_square_tables() -> None:
    for n in (1000, 1024):
        b = math.ceil(math.sqrt(n))
        assert _nparams(QREmbedding(n, 16, b)) == 2 * b * 16


def test_qr_shapes_and_keras_init() -> None:
    emb = QREmbedding(100, 6, 10)
    assert emb.output_dim == 6
    assert emb(torch.tensor([[1, 2, 3], [4, 5, 99]])).shape == (2, 3, 6)
    w = torch.cat([emb.quotient.weight, emb.remainder.weight]).detach()
    assert float(w.abs().max()) <= 0.05


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_embeddings": 10, "dim": 4, "num_buckets": 0}, "'num_buckets' parameter"),
        ({"num_embeddings": 10, "dim": 4, "num_buckets": 11}, "must not exceed num_embeddings"),
        ({"num_embeddings": 0, "dim": 4, "num_buckets": 1}, "'num_embeddings' parameter"),
        ({"num_embeddings": 10, "dim": 5, "num_buckets": 3, "combiner": "concat"}, "even"),
        ({"num_embeddings": 10, "dim": 4, "num_buckets": 3, "combiner": "max"}, "'combiner'"),
        ({"num_embeddings": 10, "dim": 4, "num_buckets": 3, "init": "zeros"}, "'init'"),
    ],
)
def test_qr_argument_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        QREmbedding(**kwargs)


def test_qr_rejects_ids_out_of_range_and_float_ids() -> None:
    emb = QREmbedding(10, 4, 3)
    with pytest.raises(IndexError, match=r"ids must lie in \[0, 9\]"):
        emb(torch.tensor([3, 10]))
    with pytest.raises(IndexError, match="ids must lie"):
        emb(torch.tensor([-1]))
    with pytest.raises(TypeError, match="integer ids"):
        emb(torch.tensor([1.0]))


# ------------------------------------------------------------------ MixedDimEmbedding


def test_md_full_width_block_has_no_projection() -> None:
    emb = MixedDimEmbedding([3, 4, 5], [8, 4, 2], 8)
    assert isinstance(emb.projections[0], nn.Identity)
    assert not list(emb.projections[0].parameters())
    assert isinstance(emb.projections[1], nn.Linear) and emb.projections[1].bias is None
    assert _nparams(emb) == 3 * 8 + 4 * 4 + 5 * 2 + (4 + 2) * 8
    assert emb.output_dim == 8


def test_md_ids_use_their_blocks_table() -> None:
    sizes, dims = [2, 3, 5], [4, 3, 2]
    rank_of_id = torch.tensor([9, 0, 5, 2, 7, 1, 3, 8, 4, 6])
    emb = MixedDimEmbedding(sizes, dims, 4, rank_of_id=rank_of_id)
    with torch.no_grad():
        for b, table in enumerate(emb.tables):
            table.weight.fill_(b + 1.0)
    expected_per_block = [
        proj(torch.full((d,), b + 1.0))
        for b, (proj, d) in enumerate(zip(emb.projections, dims, strict=True))
    ]
    ids = torch.arange(10).reshape(2, 5)
    out = emb(ids)
    assert out.shape == (2, 5, 4)
    ends = torch.tensor(sizes).cumsum(0)
    for i in range(10):
        block = int(torch.searchsorted(ends, rank_of_id[i], right=True))
        torch.testing.assert_close(out.reshape(10, 4)[i], expected_per_block[block])
    torch.testing.assert_close(
        emb.block_of(ids).reshape(-1), torch.bucketize(rank_of_id, ends, right=True)
    )


def test_md_rank_offsets_within_a_block() -> None:
    emb = MixedDimEmbedding([2, 3], [2, 2], 2)  # ids are ranks, no projections
    with torch.no_grad():
        for table in emb.tables:
            table.weight.copy_(torch.arange(table.weight.numel(), dtype=torch.float32).view(-1, 2))
    out = emb(torch.tensor([0, 1, 2, 3, 4]))
    expected = torch.tensor([[0.0, 1], [2, 3], [0, 1], [2, 3], [4, 5]])
    torch.testing.assert_close(out, expected)


def test_md_gradients_reach_every_block() -> None:
    emb = MixedDimEmbedding([2, 3, 4], [6, 3, 1], 6)
    emb(torch.arange(9)).pow(2).sum().backward()
    for p in emb.parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0


def test_md_argument_errors() -> None:
    with pytest.raises(ValueError, match="'block_sizes'"):
        MixedDimEmbedding([3, 0], [4, 2], 4)
    with pytest.raises(ValueError, match="'block_dims'"):
        MixedDimEmbedding([3, 2], [4], 4)
    with pytest.raises(ValueError, match=r"'block_dims'.*\[1, base_dim=4\]"):
        MixedDimEmbedding([3, 2], [8, 2], 4)
    with pytest.raises(ValueError, match="permutation"):
        MixedDimEmbedding([3, 2], [4, 2], 4, rank_of_id=[0, 1, 2, 3, 3])
    with pytest.raises(IndexError, match="ids must lie"):
        MixedDimEmbedding([3, 2], [4, 2], 4)(torch.tensor([5]))


def test_frequency_blocks_hand_example() -> None:
    rank_of_id, sizes = frequency_blocks([5, 50, 0, 50, 1], num_blocks=2)
    assert rank_of_id.tolist() == [2, 0, 4, 1, 3]
    assert sizes == [1, 4]
    assert frequency_blocks([5, 50, 0, 50, 1], block_sizes=[2, 3])[1] == [2, 3]
    assert frequency_blocks([1, 2, 3])[1] == [3]
    # Equal shares of occurrences: heavy head, long tail.
    counts = [100] * 2 + [10] * 20 + [1] * 200
    assert frequency_blocks(counts, num_blocks=3)[1] == [2, 20, 200]
    with pytest.raises(ValueError, match="summing to the number of ids"):
        frequency_blocks([1, 2, 3], block_sizes=[1, 1])
    with pytest.raises(ValueError, match="'num_blocks'"):
        frequency_blocks([1, 2, 3], num_blocks=4)


def test_alpha_power_dims_hand_example() -> None:
    totals, sizes = [1000, 1000, 1000], [10, 100, 1000]
    assert alpha_power_dims(totals, 64, 0.3, block_sizes=sizes) == [64, 32, 16]
    assert alpha_power_dims(totals, 64, 0.5, block_sizes=sizes) == [64, 20, 6]
    assert alpha_power_dims([100, 10, 1], 64, 0.5) == [64, 20, 6]  # mean counts directly
    assert alpha_power_dims(totals, 64, 0.0, block_sizes=sizes) == [64, 64, 64]
    assert alpha_power_dims([100, 10, 1], 64, 1.0, min_dim=4) == [64, 6, 4]
    with pytest.raises(ValueError, match="'alpha'"):
        alpha_power_dims([1, 2], 8, -0.5)
    with pytest.raises(ValueError, match="not all zero"):
        alpha_power_dims([0, 0], 8)


def test_md_from_counts_builds_alpha_power_blocks() -> None:
    counts = torch.tensor([1] * 100 + [10] * 10 + [100] * 1)[torch.randperm(111)]
    emb = MixedDimEmbedding.from_counts(counts, 64, num_blocks=3, alpha=0.5)
    assert emb.block_sizes == [1, 10, 100]
    assert emb.block_dims == [64, 20, 6]
    # The most frequent id lands in the full-width block.
    assert int(emb.block_of(counts.argmax().reshape(1))) == 0


# ------------------------------------------------------------------ HashEmbedding

_HASH_IDS = [0, 1, 2, -1, 12345678901, -(2**63), 2**63 - 1, 42]


def test_hash_is_deterministic_and_in_range() -> None:
    ids = torch.tensor(_HASH_IDS)
    a, b = HashEmbedding(97, 4, num_hashes=3, seed=7), HashEmbedding(97, 4, num_hashes=3, seed=7)
    assert torch.equal(a.buckets(ids), b.buckets(ids))
    assert not torch.equal(a.buckets(ids), HashEmbedding(97, 4, 3, seed=8).buckets(ids))
    wide = torch.randint(-(2**62), 2**62, (5000,))
    rows = a.buckets(wide)
    assert rows.shape == (5000, 3)
    assert int(rows.min()) >= 0 and int(rows.max()) < 97


def test_hash_spreads_ids_and_hashes_differ() -> None:
    emb = HashEmbedding(50, 2, num_hashes=2)
    rows = emb.buckets(torch.arange(10_000))
    for k in range(2):
        counts = torch.bincount(rows[:, k], minlength=50)
        assert int(counts.min()) > 120 and int(counts.max()) < 280  # expected 200 each
    assert float((rows[:, 0] == rows[:, 1]).float().mean()) < 0.05


def test_hash_forward_sums_hashed_rows() -> None:
    emb = HashEmbedding(31, 5, num_hashes=3, seed=1)
    ids = torch.tensor([[3, -8], [2**40, 0]])
    out = emb(ids)
    assert out.shape == (2, 2, 5) and emb.output_dim == 5
    expected = emb.table.weight[emb.buckets(ids)].sum(-2)
    torch.testing.assert_close(out, expected)
    assert _nparams(emb) == 31 * 5


def test_hash_same_in_fresh_process_with_other_hash_seed() -> None:
    here = HashEmbedding(1000, 2, num_hashes=2, seed=3).buckets(torch.tensor(_HASH_IDS)).tolist()
    code = (
        "import json, torch; from towerrec.layers.memory import HashEmbedding; "
        f"print(json.dumps(HashEmbedding(1000, 2, num_hashes=2, seed=3)"
        f".buckets(torch.tensor({_HASH_IDS!r})).tolist()))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout) == here


def test_hash_argument_errors() -> None:
    with pytest.raises(ValueError, match="'num_hashes'"):
        HashEmbedding(10, 4, num_hashes=0)
    with pytest.raises(ValueError, match="'seed'"):
        HashEmbedding(10, 4, seed=-1)
    with pytest.raises(TypeError, match="integer ids"):
        HashEmbedding(10, 4)(torch.tensor([0.5]))


# ------------------------------------------------------------------ all three


def _layers() -> list[nn.Module]:
    return [
        QREmbedding(40, 6, 7),
        MixedDimEmbedding([5, 15, 20], [6, 3, 2], 6, rank_of_id=torch.randperm(40)),
        HashEmbedding(16, 6, num_hashes=2, seed=5),
    ]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_layers_save_and_load_with_the_state_dict(index: int, tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    torch.manual_seed(index)
    model = nn.Sequential(_layers()[index], nn.Linear(6, 1))
    ids = torch.arange(40).reshape(4, 10)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    torch.manual_seed(100 + index)
    fresh = nn.Sequential(_layers()[index], nn.Linear(6, 1))
    assert not torch.equal(fresh(ids), model(ids))
    fresh.load_state_dict(load_file(str(path)))
    torch.testing.assert_close(fresh(ids), model(ids))
    assert model[0].output_dim == 6
