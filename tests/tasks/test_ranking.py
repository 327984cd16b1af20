"""Ranking task against TFRS's test vector and hand-computed values."""

import pytest
import torch

from towerrec.metrics import MAE, RMSE, BinaryAccuracy, Mean
from towerrec.tasks import Ranking


def test_bce_vector_with_metrics() -> None:
    acc, mean = BinaryAccuracy(), Mean("prediction_mean")
    task = Ranking("bce", metrics=[acc], prediction_metrics=[mean])
    loss = task(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 0.3]))
    assert loss.item() == pytest.approx(0.601986, abs=1e-5)
    assert acc.compute()["binary_accuracy"] == pytest.approx(0.5)
    assert mean.compute()["prediction_mean"] == pytest.approx(0.65)


def test_mse_weighted_and_metrics() -> None:
    rmse, mae = RMSE(), MAE()
    task = Ranking("mse", metrics=[rmse, mae])
    labels = torch.tensor([1.0, 2.0, 4.0])
    preds = torch.tensor([[2.0], [2.0], [1.0]])
    loss = task(labels, preds, sample_weight=torch.tensor([1.0, 1.0, 2.0]))
    assert loss.item() == pytest.approx((1 + 0 + 2 * 9) / 3)
    assert rmse.compute()["rmse"] == pytest.approx(((1 + 0 + 18) / 4) ** 0.5)
    assert mae.compute()["mae"] == pytest.approx((1 + 0 + 6) / 4)


def test_bce_logits_matches_bce_of_sigmoid() -> None:
    logits = torch.tensor([0.3, -1.2, 2.0])
    labels = torch.tensor([1.0, 0.0, 1.0])
    a = Ranking("bce_logits")(labels, logits)
    b = Ranking("bce")(labels, torch.sigmoid(logits))
    assert a.item() == pytest.approx(b.item(), rel=1e-5)


def test_callable_loss_and_no_metric_update_when_disabled() -> None:
    rmse = RMSE()
    task = Ranking(lambda y, p: (y - p).abs(), metrics=[rmse])
    loss = task(torch.tensor([1.0, 3.0]), torch.tensor([2.0, 2.0]), compute_metrics=False)
    assert loss.item() == pytest.approx(1.0)
    assert rmse.compute()["rmse"] != rmse.compute()["rmse"]  # NaN: nothing accumulated


def test_errors() -> None:
    with pytest.raises(ValueError, match="'loss' parameter of Ranking"):
        Ranking("hinge-ish")
    with pytest.raises(ValueError, match="labels"):
        Ranking()(torch.ones(3), torch.ones(2))
