"""A small, explicit training loop over in-memory dict-of-tensor datasets."""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from towerrec.models.base import Batch, Model
from towerrec.optim import Adagrad, OptimizerSpec
from towerrec.train.callbacks import Callback, load_checkpoint
from towerrec.train.history import History

Dataset = dict[str, torch.Tensor]


def dataset_length(data: Dataset, name: str = "data") -> int:
    """Number of rows of a dict of equal-length tensors (clear error when lengths differ)."""
    if not isinstance(data, dict) or not data:
        raise TypeError(
            f"{name} must be a non-empty dict of tensors (column name -> tensor); got {type(data).__name__}."
        )
    lengths = {k: len(v) for k, v in data.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"All columns of {name} must have the same length; got {lengths}.")
    n = next(iter(lengths.values()))
    if n == 0:
        raise ValueError(f"{name} is empty.")
    return n


def iterate_batches(
    data: Dataset, batch_size: int, order: torch.Tensor | None = None
) -> Iterator[Batch]:
    """Yield dicts of [batch_size, ...] slices, by index slices of `order` (or in row order)."""
    n = dataset_length(data)
    for start in range(0, n, batch_size):
        if order is None:
            yield {k: v[start : start + batch_size] for k, v in data.items()}
        else:
            idx = order[start : start + batch_size]
            yield {k: v.index_select(0, idx) for k, v in data.items()}


class Trainer:
    """`fit(model, train, validation=...) -> History` and `evaluate(model, data) -> dict`.

    Data is a dict of equal-length tensors, shuffled each epoch by a seeded permutation and cut
    into index slices (no per-example Python). `validation_freq` validates every n epochs (and
    after the last). Given a `seed`, two fits of the same model give identical results.
    """

    def __init__(
        self,
        optimizer: OptimizerSpec | None = None,
        *,
        batch_size: int = 8192,
        epochs: int = 1,
        eval_batch_size: int | None = None,
        validation_freq: int = 1,
        seed: int | None = 0,
        shuffle: bool = True,
        callbacks: Sequence[Callback] = (),
        progress: bool = True,
        grad_clip_norm: float | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        for name, value in (
            ("batch_size", batch_size),
            ("epochs", epochs),
            ("validation_freq", validation_freq),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(
                    f"The '{name}' parameter of Trainer must be a positive int. Got {value!r} instead."
                )
        self.optimizer_spec = optimizer if optimizer is not None else Adagrad(lr=0.1)
        self.batch_size = batch_size
        self.epochs = epochs
        self.eval_batch_size = eval_batch_size or max(batch_size, 4096)
        self.validation_freq = validation_freq
        self.seed = seed
        self.shuffle = shuffle
        self.callbacks = list(callbacks)
        self.progress = progress
        self.grad_clip_norm = grad_clip_norm
        self.device = torch.device(device)
        self.optimizer: torch.optim.Optimizer | None = None
        self.history: History | None = None
        self.epoch = 0
        self.stop_training = False
        self._generator: torch.Generator | None = None
        self._model_id: int | None = None
        self.fit_seconds = 0.0

    # -- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Optimizer, epoch, RNG states and history: everything needed to resume a fit."""
        return {
            "epoch": self.epoch,
            "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
            "optimizer_spec": self.optimizer_spec.to_config(),
            "generator": None if self._generator is None else self._generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "history": None if self.history is None else self.history.to_dict(),
        }

    def _prepare(self, model: Model) -> None:
        if self.optimizer is None or self._model_id != id(model):
            groups = getattr(model, "optimizer_groups", None)
            if callable(groups):  # a model may ask for per-group settings (e.g. learning rates)
                self.optimizer = self.optimizer_spec.build(groups(self.optimizer_spec.lr))
            else:
                self.optimizer = self.optimizer_spec.build(
                    [p for p in model.parameters() if p.requires_grad]
                )
            self._model_id = id(model)
            self._generator = torch.Generator().manual_seed(
                self.seed if self.seed is not None else int(time.time())
            )
            self.history = History()
            self.epoch = 0

    def resume(self, model: Model, checkpoint: str | os.PathLike[str] | dict[str, Any]) -> None:
        """Load model weights and trainer state from a checkpoint; the next `fit` continues it."""
        state = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
        model.load_state_dict(state["model"])
        model.to(self.device)
        # A fresh optimizer over the loaded parameters: loading may replace parameter objects.
        self.optimizer = None
        self._prepare(model)
        t = state["trainer"]
        assert self.optimizer is not None
        if t["optimizer"] is not None:
            self.optimizer.load_state_dict(t["optimizer"])
        if t["generator"] is not None and self._generator is not None:
            self._generator.set_state(t["generator"])
        torch.set_rng_state(t["torch_rng"])
        self.history = History.from_dict(t["history"]) if t["history"] else History()
        self.epoch = int(t["epoch"])

    # -- loops -------------------------------------------------------------------------------
    def fit(
        self,
        model: Model,
        train: Dataset,
        validation: Dataset | None = None,
        *,
        epochs: int | None = None,
        resume_from: str | os.PathLike[str] | None = None,
    ) -> History:
        """Train `model` on `train` until `epochs` epochs in all have run; return the History.

        Calling `fit` again on the same model continues training (the optimizer state is kept);
        `resume_from` (a checkpoint written by `Checkpoint`) restores weights, optimizer, RNG and
        history first.
        """
        n = dataset_length(train, "train")
        if validation is not None:
            dataset_length(validation, "validation")
        total_epochs = epochs if epochs is not None else self.epochs
        model.to(self.device)
        if resume_from is not None:
            self.resume(model, resume_from)
        else:
            if self.seed is not None and (self.optimizer is None or self._model_id != id(model)):
                torch.manual_seed(self.seed)
            self._prepare(model)
        assert (
            self.optimizer is not None and self.history is not None and self._generator is not None
        )
        train = {k: v.to(self.device) for k, v in train.items()}
        self.stop_training = False
        for cb in self.callbacks:
            cb.on_fit_start(self, model)
        start_time = time.perf_counter()
        steps = math.ceil(n / self.batch_size)
        while self.epoch < total_epochs and not self.stop_training:
            epoch = self.epoch + 1
            model.train()
            model.reset_metrics()
            order = torch.randperm(n, generator=self._generator) if self.shuffle else None
            loss_sum, seen = 0.0, 0
            bar = tqdm(
                iterate_batches(train, self.batch_size, order),
                total=steps,
                desc=f"Epoch {epoch}/{total_epochs}",
                disable=not self.progress,
                leave=False,
                file=sys.stderr,
                dynamic_ncols=True,
            )
            for batch in bar:
                loss = model.compute_loss(batch, training=True)
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"The training loss became {loss.item()} at epoch {epoch}; lower the learning "
                        "rate or check the inputs for NaN/inf."
                    )
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if self.grad_clip_norm is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), self.grad_clip_norm)
                self.optimizer.step()
                b = len(next(iter(batch.values())))
                loss_sum += float(loss.detach()) * b
                seen += b
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", refresh=False)
            bar.close()
            logs: dict[str, float] = {"loss": loss_sum / seen, **model.metric_values()}
            if validation is not None and (
                epoch % self.validation_freq == 0 or epoch == total_epochs
            ):
                val = self.evaluate(model, validation)
                logs.update({f"val_{k}": v for k, v in val.items()})
            self.epoch = epoch
            self.history.append(epoch, logs)
            if self.progress:
                shown = "  ".join(f"{k}={v:.4f}" for k, v in logs.items())
                tqdm.write(f"Epoch {epoch}/{total_epochs}  {shown}", file=sys.stderr)
            for cb in self.callbacks:
                cb.on_epoch_end(self, model, epoch, logs)
        self.fit_seconds = time.perf_counter() - start_time
        for cb in self.callbacks:
            cb.on_fit_end(self, model)
        model.eval()
        return self.history

    @torch.no_grad()
    def evaluate(
        self, model: Model, data: Dataset, batch_size: int | None = None
    ) -> dict[str, float]:
        """Loss (mean over examples of the batch losses) and every task metric on `data`."""
        n = dataset_length(data, "evaluation data")
        model.to(self.device)
        was_training = model.training
        model.eval()
        model.reset_metrics()
        loss_sum = 0.0
        for batch in iterate_batches(
            {k: v.to(self.device) for k, v in data.items()}, batch_size or self.eval_batch_size
        ):
            b = len(next(iter(batch.values())))
            loss_sum += float(model.compute_loss(batch, training=False)) * b
        out = {"loss": loss_sum / n, **model.metric_values()}
        model.reset_metrics()
        model.train(was_training)
        return out
