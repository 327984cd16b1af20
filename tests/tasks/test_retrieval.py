"""Retrieval task against TFRS's own test vectors, plus the loss options' properties."""

import numpy as np
import pytest
import torch

from towerrec.metrics import BatchTopK
from towerrec.tasks import MIN_LOGIT, Retrieval, hard_negative_mining, remove_accidental_hits

QA = torch.tensor([[1.0, 2, 3], [2, 3, 4]])
CA = torch.tensor([[1.0, 1, 1], [1, 1, 0]])
QB = torch.tensor([[3.0, 2, 1], [2, 3, 4]])
CB = torch.tensor([[0.0, 1, 0], [0, 1, 1], [1, 1, 0]])
QC = torch.tensor([[[3.0, 2, 1], [1, 2, 3]], [[2, 3, 4], [4, 3, 2]]])


@pytest.mark.parametrize("fused", [True, False])
def test_vector_a(fused: bool) -> None:
    assert Retrieval(fused=fused)(QA, CA).item() == pytest.approx(4.066737, abs=1e-5)


@pytest.mark.parametrize("fused", [True, False])
def test_vector_a_weighted(fused: bool) -> None:
    loss = Retrieval(fused=fused)(QA, CA, sample_weight=torch.tensor([0.7, 0.3]))
    assert loss.item() == pytest.approx(1.239456, abs=1e-5)


def test_batch_top1_accuracy_plain_and_weighted() -> None:
    metric = BatchTopK(1)
    task = Retrieval(batch_metrics=metric)
    task(QA, CA)
    assert metric.compute()["batch_top_1"] == pytest.approx(0.5)
    metric.reset()
    task(QA, CA, sample_weight=torch.tensor([0.7, 0.3]))
    assert metric.compute()["batch_top_1"] == pytest.approx(0.7)


@pytest.mark.parametrize("fused", [True, False])
def test_vector_b_extra_negatives(fused: bool) -> None:
    assert Retrieval(fused=fused)(QB, CB).item() == pytest.approx(3.312778, abs=1e-5)


def test_vector_c_multi_head() -> None:
    assert Retrieval()(QC, CB).item() == pytest.approx(4.419999, abs=1e-5)


def test_tie_counts_as_hit_in_batch_topk() -> None:
    metric = BatchTopK(1)
    q = torch.tensor([[1.0, 0.0]])
    c = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # the negative ties with the positive
    Retrieval(batch_metrics=metric)(q, c)
    assert metric.compute()["batch_top_1"] == 1.0


def test_mean_reduction_divides_by_batch() -> None:
    total = Retrieval()(QA, CA)
    mean = Retrieval(reduction="mean")(QA, CA)
    assert mean.item() == pytest.approx(total.item() / 2)


def test_temperature_divides_logits() -> None:
    a = Retrieval(temperature=2.0)(QA, CA)
    b = Retrieval()(QA / 2.0, CA)
    assert a.item() == pytest.approx(b.item(), rel=1e-6)


def test_sampling_probability_correction_subtracts_log() -> None:
    torch.manual_seed(0)
    q, c = torch.randn(4, 3), torch.randn(4, 3)
    p = torch.tensor([0.5, 0.1, 1e-9, 2.0])
    logits = q @ c.T - torch.log(p.clamp(1e-6, 1.0))
    expected = torch.nn.functional.cross_entropy(logits, torch.arange(4), reduction="sum")
    for fused in (True, False):
        got = Retrieval(fused=fused)(q, c, candidate_sampling_probability=p)
        assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_remove_accidental_hits_properties() -> None:
    torch.manual_seed(1)
    logits = torch.randn(3, 5)
    labels = torch.eye(3, 5)
    ids = torch.tensor([7, 8, 7, 9, 8])
    out = remove_accidental_hits(logits, labels, ids)
    for row in range(3):
        assert out[row, row] == logits[row, row]  # the positive is unchanged
        for col in range(5):
            if col != row and ids[col] == ids[row]:
                assert out[row, col] <= MIN_LOGIT / 2
            elif col != row:
                assert out[row, col] == logits[row, col]


def test_remove_accidental_hits_changes_loss() -> None:
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    c = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    ids = torch.tensor([5, 5, 6])
    with_removal = Retrieval(remove_accidental_hits=True)(q, c, candidate_ids=ids)
    logits = q @ c.T
    logits[0, 1] = MIN_LOGIT  # row 0's positive (id 5) appears again in column 1
    logits[1, 0] = MIN_LOGIT  # and row 1's positive (id 5) in column 0
    expected = torch.nn.functional.cross_entropy(logits, torch.arange(2), reduction="sum")
    assert with_removal.item() == pytest.approx(expected.item(), rel=1e-5)


def test_hard_negative_mining_keeps_positive_and_best_negatives() -> None:
    logits = torch.tensor([[0.1, 5.0, 3.0, -1.0, 4.0], [2.0, -3.0, 1.0, 0.5, 0.0]])
    labels = torch.eye(2, 5)
    out_logits, out_labels = hard_negative_mining(logits, labels, 2)
    assert out_logits.shape == (2, 3)
    np.testing.assert_allclose(out_labels[:, 0].numpy(), [1.0, 1.0])
    np.testing.assert_allclose(out_logits[0].numpy(), [0.1, 5.0, 4.0])
    np.testing.assert_allclose(out_logits[1].numpy(), [-3.0, 2.0, 1.0])


def test_hard_negative_mining_loss() -> None:
    torch.manual_seed(2)
    q, c = torch.randn(4, 3), torch.randn(6, 3)
    loss = Retrieval(num_hard_negatives=2)(q, c)
    logits = q @ c.T
    expected = 0.0
    for r in range(4):
        neg = torch.cat([logits[r, :r], logits[r, r + 1 :]])
        kept = torch.cat([logits[r, r : r + 1], torch.topk(neg, 2).values])
        expected += float(torch.logsumexp(kept, 0) - kept[0])
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_fused_gradients_match_plain() -> None:
    torch.manual_seed(0)
    q = torch.randn(40, 8, dtype=torch.float64, requires_grad=True)
    c = torch.randn(55, 8, dtype=torch.float64, requires_grad=True)
    w = torch.rand(40, dtype=torch.float64)
    p = torch.rand(55, dtype=torch.float64)
    a = Retrieval(temperature=0.3)(q, c, w, p)
    ga = torch.autograd.grad(2.5 * a, [q, c])
    b = Retrieval(temperature=0.3, fused=False)(q, c, w, p)
    gb = torch.autograd.grad(2.5 * b, [q, c])
    assert a.item() == pytest.approx(b.item(), rel=1e-10)
    for x, y in zip(ga, gb, strict=True):
        torch.testing.assert_close(x, y)


def test_fewer_candidates_than_queries_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least as many candidates"):
        Retrieval()(torch.randn(3, 2), torch.randn(2, 2))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="reduction"):
        Retrieval(reduction="avg")
    with pytest.raises(ValueError, match="temperature"):
        Retrieval(temperature=0.0)
    with pytest.raises(ValueError, match="num_hard_negatives"):
        Retrieval(num_hard_negatives=0)


def test_positive_indices_full_softmax_matches_cross_entropy() -> None:
    torch.manual_seed(4)
    q = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    corpus = torch.randn(9, 3, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 4, 4, 8, 2, 1])
    expected = torch.nn.functional.cross_entropy(q @ corpus.T, target, reduction="sum")
    ge = torch.autograd.grad(expected, [q, corpus])
    for fused in (True, False):
        got = Retrieval(fused=fused)(q, corpus, positive_indices=target)
        gg = torch.autograd.grad(got, [q, corpus])
        assert got.item() == pytest.approx(expected.item(), rel=1e-10)
        for x, y in zip(gg, ge, strict=True):
            torch.testing.assert_close(x, y)
