"""Regression and classification metrics on hand-computed values."""

import math

import pytest
import torch

from towerrec.metrics import AUC, MAE, MSE, RMSE, BinaryAccuracy, Mean, mrr, ndcg_at_k, recall_at_k


def test_rmse_is_over_all_updates_not_mean_of_batches() -> None:
    m = RMSE()
    m.update(torch.tensor([0.0]), torch.tensor([3.0]))
    m.update(torch.tensor([0.0, 0.0, 0.0]), torch.tensor([1.0, 1.0, 1.0]))
    assert m.compute()["rmse"] == pytest.approx(math.sqrt((9 + 3) / 4))
    m.reset()
    assert math.isnan(m.compute()["rmse"])


def test_mae_mse_mean_accuracy() -> None:
    y, p = torch.tensor([1.0, 0.0, 1.0, 0.0]), torch.tensor([0.9, 0.6, 0.4, 0.1])
    mae, mse, acc, mean = MAE(), MSE(), BinaryAccuracy(), Mean()
    mae.update(y, p)
    mse.update(y, p)
    acc.update(y, p)
    mean.update(p, torch.tensor([1.0, 1.0, 1.0, 3.0]))
    assert mae.compute()["mae"] == pytest.approx((0.1 + 0.6 + 0.6 + 0.1) / 4)
    assert mse.compute()["mse"] == pytest.approx((0.01 + 0.36 + 0.36 + 0.01) / 4)
    assert acc.compute()["binary_accuracy"] == pytest.approx(0.5)
    assert mean.compute()["mean"] == pytest.approx((0.9 + 0.6 + 0.4 + 0.3) / 6)


def test_auc_counts_pairs_and_ties() -> None:
    auc = AUC()
    auc.update(torch.tensor([1.0, 1.0, 0.0, 0.0]), torch.tensor([0.8, 0.4, 0.4, 0.1]))
    # positive pairs: (0.8 > 0.4, 0.8 > 0.1, 0.4 = 0.4 -> 1/2, 0.4 > 0.1) = 3.5 of 4
    assert auc.compute()["auc"] == pytest.approx(3.5 / 4)


def test_weight_length_mismatch() -> None:
    with pytest.raises(ValueError, match="sample_weight"):
        RMSE().update(torch.ones(3), torch.ones(3), torch.ones(2))


def test_list_metrics() -> None:
    scores = torch.tensor([[0.9, 0.8, 0.1, 0.5]])
    relevant = torch.tensor([[0, 1, 1, 0]])
    assert recall_at_k(scores, relevant, 2).item() == pytest.approx(0.5)
    ideal = 1 + 1 / math.log2(3)
    assert ndcg_at_k(scores, relevant, 2).item() == pytest.approx((1 / math.log2(3)) / ideal)
    assert mrr(scores, relevant).item() == pytest.approx(0.5)
