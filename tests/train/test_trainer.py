"""Trainer: determinism, history, validation frequency, early stopping, checkpoints and resume."""

import math

import pytest
import torch

import towerrec as tr
from towerrec.metrics import RMSE, FactorizedTopK
from towerrec.models.movielens import MultitaskModel


def _data(n: int = 600, users: int = 20, items: int = 30, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    u = torch.randint(0, users, (n,), generator=g)
    i = torch.randint(0, items, (n,), generator=g)
    r = ((u % 5) + (i % 3)).to(torch.float32) / 2 + 1
    return {"user_id": u, "item_id": i, "rating": r}


def _model() -> MultitaskModel:
    return MultitaskModel(20, 30, dim=8, rating_layers=(16,), ks=(1, 5, 10))


def _fit(epochs: int = 3, **kwargs) -> tuple[tr.History, dict[str, float]]:
    torch.manual_seed(123)
    model = _model()
    trainer = tr.Trainer(
        tr.optim.Adagrad(0.1), batch_size=64, epochs=epochs, seed=7, progress=False, **kwargs
    )
    history = trainer.fit(model, _data(), _data(seed=1))
    return history, trainer.evaluate(model, _data(seed=2))


def test_two_runs_with_one_seed_are_identical() -> None:
    h1, m1 = _fit()
    h2, m2 = _fit()
    assert h1.history == h2.history
    assert m1 == m2


def test_history_has_train_and_validation_metrics_per_epoch() -> None:
    history, metrics = _fit()
    assert history.epochs == [1, 2, 3]
    assert {"loss", "val_loss", "val_rmse", "val_top_10"} <= set(history.metrics)
    assert history["loss"][-1] < history["loss"][0]
    assert set(metrics) >= {"loss", "rmse", "mae", "top_1", "top_5", "top_10"}


def test_validation_freq_leaves_gaps_but_validates_last_epoch() -> None:
    history, _ = _fit(epochs=5, validation_freq=2)
    val = history["val_loss"]
    assert [not math.isnan(v) for v in val] == [False, True, False, True, True]


def test_early_stopping_stops_and_restores_best() -> None:
    class Scripted(tr.Callback):
        def __init__(self) -> None:
            self.values = iter([1.0, 0.5, 0.7, 0.8, 0.9, 1.0])

        def on_epoch_end(self, trainer, model, epoch, logs):  # type: ignore[no-untyped-def]
            logs["val_score"] = next(self.values)

    stop = tr.EarlyStopping("val_score", mode="min", patience=2)
    history, _ = _fit(epochs=6, callbacks=[Scripted(), stop])
    assert len(history) == 4  # best at epoch 2, two epochs without improvement
    assert stop.best_epoch == 2


def test_checkpoint_resume_matches_uninterrupted_run(tmp_path) -> None:
    torch.manual_seed(5)
    full_model = _model()
    full = tr.Trainer(tr.optim.Adam(0.01), batch_size=64, epochs=3, seed=3, progress=False)
    full.fit(full_model, _data(), _data(seed=1))
    expected = full.evaluate(full_model, _data(seed=2))

    torch.manual_seed(5)
    part_model = _model()
    part = tr.Trainer(
        tr.optim.Adam(0.01),
        batch_size=64,
        epochs=1,
        seed=3,
        progress=False,
        callbacks=[tr.Checkpoint(tmp_path / "ckpt")],
    )
    part.fit(part_model, _data(), _data(seed=1))
    assert (tmp_path / "ckpt" / "latest.pt").exists()
    assert (tmp_path / "ckpt" / "best.pt").exists()

    resumed_model = _model()
    resumed = tr.Trainer(tr.optim.Adam(0.01), batch_size=64, epochs=3, seed=3, progress=False)
    history = resumed.fit(
        resumed_model, _data(), _data(seed=1), resume_from=tmp_path / "ckpt" / "latest.pt"
    )
    assert history.epochs == [1, 2, 3]
    assert resumed.evaluate(resumed_model, _data(seed=2)) == pytest.approx(expected, rel=1e-6)


def test_history_json_and_csv_round_trip(tmp_path) -> None:
    history, _ = _fit(epochs=3, validation_freq=2)
    history.save_json(tmp_path / "h.json")
    history.save_csv(tmp_path / "h.csv")
    again = tr.History.load_json(tmp_path / "h.json")
    assert again.epochs == history.epochs
    for k, v in history.history.items():
        assert again.history[k] == pytest.approx(v, nan_ok=True)
    lines = (tmp_path / "h.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,loss")
    assert len(lines) == 4


def test_bad_arguments_and_data() -> None:
    with pytest.raises(ValueError, match="'batch_size' parameter of Trainer"):
        tr.Trainer(batch_size=0)
    trainer = tr.Trainer(progress=False)
    with pytest.raises(ValueError, match="same length"):
        trainer.fit(
            _model(),
            {
                "user_id": torch.zeros(3, dtype=torch.long),
                "item_id": torch.zeros(2, dtype=torch.long),
            },
        )
    with pytest.raises(TypeError, match="dict of tensors"):
        trainer.fit(_model(), [1, 2, 3])  # type: ignore[arg-type]


def test_non_finite_loss_is_reported() -> None:
    class Broken(tr.Model):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))
            self.task = tr.tasks.Ranking(metrics=[RMSE()])

        def compute_loss(self, batch, training=False):  # type: ignore[no-untyped-def]
            return self.task(batch["y"], self.w.expand(len(batch["y"])) * float("nan"))

    with pytest.raises(FloatingPointError, match="loss became nan"):
        tr.Trainer(progress=False).fit(Broken(), {"y": torch.ones(4)})


def test_metrics_are_prefixed_when_tasks_share_names() -> None:
    class Two(tr.Model):
        def __init__(self) -> None:
            super().__init__()
            self.a = tr.tasks.Ranking(metrics=[RMSE()], name="a")
            self.b = tr.tasks.Ranking(metrics=[RMSE()], name="b")

    model = Two()
    model.a.metrics[0].update(torch.ones(2), torch.zeros(2))
    model.b.metrics[0].update(torch.ones(2), torch.ones(2))
    assert model.metric_values() == {"a/rmse": 1.0, "b/rmse": 0.0}
    assert isinstance(FactorizedTopK(ks=(1,)).compute()["top_1"], float)
