"""Trainer: determinism, history, validation frequency, early stopping, checkpoints and resume."""

import math

import pytest
import torch

import towerrec as tr
from towerrec.metrics import RMSE, FactorizedTopK
from towerrec.models.movielens import JointModel, MultitaskModel


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


def test_per_head_early_stopping_restores_each_head_from_its_best_epoch() -> None:
    class Scripted(tr.Callback):
        def __init__(self) -> None:
            self.rmse = iter([1.0, 0.8, 0.9, 0.95, 0.97, 0.99])
            self.top = iter([0.1, 0.2, 0.3, 0.25, 0.2, 0.1])
            self.snapshots: list[dict[str, torch.Tensor]] = []

        def on_epoch_end(self, trainer, model, epoch, logs):  # type: ignore[no-untyped-def]
            logs["val_rmse"], logs["val_top_100"] = next(self.rmse), next(self.top)
            self.snapshots.append({k: v.clone() for k, v in model.state_dict().items()})

    torch.manual_seed(0)
    model = JointModel(20, 30, dim=4, hidden=8, ks=(5,))
    data = _data()
    model.set_interactions(data["user_id"], data["item_id"], data["rating"])
    heads = model.head_prefixes()
    script = Scripted()
    stopper = tr.PerHeadEarlyStopping(
        {"val_rmse": ("min", heads["rating"]), "val_top_100": ("max", heads["retrieval"])},
        patience=2,
    )
    trainer = tr.Trainer(
        tr.optim.Adam(0.01), batch_size=128, epochs=6, progress=False, callbacks=[script, stopper]
    )
    history = trainer.fit(model, data)
    assert (
        len(history) == 5
    )  # rating best at 2, retrieval best at 3: both waited 2 checks by epoch 5
    assert stopper.best_epoch == {"val_rmse": 2, "val_top_100": 3}
    state = model.state_dict()
    torch.testing.assert_close(state["encoder.weight"], script.snapshots[1]["encoder.weight"])
    torch.testing.assert_close(
        state["item_model.table.weight"], script.snapshots[2]["item_model.table.weight"]
    )


def test_joint_model_trains_and_scores_the_corpus() -> None:
    torch.manual_seed(0)
    data = _data(n=2000)
    model = JointModel(20, 30, dim=8, hidden=16, ks=(1, 5, 10))
    model.set_interactions(data["user_id"], data["item_id"], data["rating"])
    trainer = tr.Trainer(tr.optim.Adam(0.01), batch_size=256, epochs=4, progress=False)
    history = trainer.fit(model, data, _data(seed=1))
    assert history["loss"][-1] < history["loss"][0]
    corpus, ids = model.candidate_corpus()
    assert corpus.shape == (30, 9) and ids.tolist() == list(range(30))
    q = model.query_embeddings({"user_id": torch.tensor([0, 3])})
    assert q.shape == (2, 9) and torch.all(q[:, -1] == 1)
    pred = model.eval().predict_rating({"user_id": torch.tensor([1]), "item_id": torch.tensor([2])})
    assert 1.0 <= pred.item() <= 5.0
