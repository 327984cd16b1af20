"""FactorizedTopK against a NumPy reference: ranks, ties, exclusions, chunking."""

import numpy as np
import pytest
import torch

from towerrec.metrics import FactorizedTopK, SeenItems, corpus_ranks


def _reference(q: np.ndarray, corpus: np.ndarray, true: np.ndarray, ks, excluded=None) -> dict:
    scores = q @ corpus.T
    pos = scores[np.arange(len(q)), true]
    scores = scores.copy()
    scores[np.arange(len(q)), true] = -np.inf
    if excluded is not None:
        for r, items in enumerate(excluded):
            scores[r, list(items)] = -np.inf
    ranks = (scores > pos[:, None]).sum(1)
    return {f"top_{k}": float((ranks < k).mean()) for k in ks}


@pytest.mark.parametrize("chunk", [7, 1000])
def test_matches_numpy_reference(chunk: int) -> None:
    rng = np.random.default_rng(0)
    corpus = rng.normal(size=(60, 5)).astype(np.float32)
    q = rng.normal(size=(25, 5)).astype(np.float32)
    true = rng.integers(0, 60, size=25)
    ks = (1, 3, 10, 50)
    metric = FactorizedTopK((torch.from_numpy(corpus), torch.arange(60)), ks=ks, chunk_size=chunk)
    metric.update(
        torch.from_numpy(q),
        torch.from_numpy(corpus[true]),
        true_candidate_ids=torch.from_numpy(true),
    )
    got = metric.compute()
    want = _reference(q, corpus, true, ks)
    assert got == pytest.approx(want)


def test_callable_corpus_is_recomputed_after_reset() -> None:
    calls = []

    def corpus():
        calls.append(1)
        return torch.eye(3), torch.arange(3)

    metric = FactorizedTopK(corpus, ks=(1,))
    q = torch.tensor([[1.0, 0.0, 0.0]])
    metric.update(q, torch.eye(3)[:1])
    metric.update(q, torch.eye(3)[:1])
    assert len(calls) == 1
    metric.reset()
    metric.update(q, torch.eye(3)[:1])
    assert len(calls) == 2
    assert metric.compute()["top_1"] == 1.0


def test_tie_with_true_candidate_counts_as_hit() -> None:
    corpus = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    metric = FactorizedTopK(corpus, ks=(1,))  # no ids: score ties decide
    metric.update(torch.tensor([[1.0, 0.0]]), corpus[1:2])
    assert metric.compute()["top_1"] == 1.0


def test_sample_weights_and_ndcg() -> None:
    corpus = torch.eye(4)
    q = torch.tensor([[1.0, 0.5, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    metric = FactorizedTopK((corpus, torch.arange(4)), ks=(1, 2), ndcg=True)
    # query 0's true item is 1 (rank 1), query 1's true item is 1 (rank 0)
    metric.update(
        q, corpus[[1, 1]], torch.tensor([3.0, 1.0]), true_candidate_ids=torch.tensor([1, 1])
    )
    out = metric.compute()
    assert out["top_1"] == pytest.approx(1 / 4)
    assert out["top_2"] == pytest.approx(1.0)
    assert out["ndcg_2"] == pytest.approx((3 / np.log2(3) + 1) / 4)
    assert out["mrr"] == pytest.approx((3 * 0.5 + 1) / 4)


def test_seen_items_are_excluded() -> None:
    rng = np.random.default_rng(3)
    corpus = rng.normal(size=(40, 4)).astype(np.float32)
    q = rng.normal(size=(6, 4)).astype(np.float32)
    true = rng.integers(0, 40, size=6)
    users = np.array([0, 1, 2, 0, 5, 9])  # 9 has no history
    history = {0: [1, 2, 3], 1: [4], 2: [], 5: list(range(10, 30))}
    pairs_u = [u for u, items in history.items() for _ in items]
    pairs_i = [i for items in history.values() for i in items]
    seen = SeenItems.from_pairs(np.array(pairs_u), np.array(pairs_i), num_queries=6)
    metric = FactorizedTopK((torch.from_numpy(corpus), torch.arange(40)), ks=(1, 5, 10), seen=seen)
    metric.update(
        torch.from_numpy(q),
        torch.from_numpy(corpus[true]),
        true_candidate_ids=torch.from_numpy(true),
        query_ids=torch.from_numpy(users),
    )
    excluded = [
        [i for i in history.get(int(u), []) if i != t] for u, t in zip(users, true, strict=True)
    ]
    assert metric.compute() == pytest.approx(_reference(q, corpus, true, (1, 5, 10), excluded))


def test_corpus_ranks_strictly_greater() -> None:
    q = torch.tensor([[1.0, 0.0]])
    corpus = torch.tensor([[2.0, 0.0], [1.0, 0.0], [0.5, 0.0]])
    ranks = corpus_ranks(q, corpus, torch.tensor([1.0]))
    assert ranks.tolist() == [1]


def test_errors() -> None:
    with pytest.raises(ValueError, match="ks"):
        FactorizedTopK(ks=(0, 5))
    metric = FactorizedTopK(ks=(1,))
    with pytest.raises(ValueError, match="no candidate corpus"):
        metric.update(torch.ones(1, 2), torch.ones(1, 2))
