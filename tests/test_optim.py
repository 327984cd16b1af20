"""Optimizer specs: Keras Adagrad semantics and config round-trip."""

import pytest
import torch

from towerrec.optim import Adagrad, Adam, OptimizerSpec


def test_adagrad_matches_keras_update() -> None:
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = Adagrad(lr=0.1).build([p])
    grad = torch.tensor([0.5, -1.0])
    p.grad = grad.clone()
    opt.step()
    acc = 0.1 + grad**2  # Keras: accumulator starts at 0.1
    expected = torch.tensor([1.0, -2.0]) - 0.1 * grad / (acc.sqrt() + 1e-7)
    torch.testing.assert_close(p.detach(), expected)


def test_config_round_trip_and_errors() -> None:
    spec = Adam(lr=0.003, weight_decay=0.1)
    assert OptimizerSpec.from_config(spec.to_config()) == spec
    assert spec.lr == pytest.approx(0.003)
    with pytest.raises(ValueError, match="Unknown optimizer"):
        OptimizerSpec("lbfgs")
    with pytest.raises(ValueError, match="Unknown optimizer"):
        OptimizerSpec.from_config({"name": "nadam"})
