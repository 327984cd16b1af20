"""Callbacks: hooks the trainer calls at the start and end of a fit and after every epoch."""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from towerrec._io import atomic_write_bytes

if TYPE_CHECKING:
    from towerrec.models.base import Model
    from towerrec.train.trainer import Trainer


class Callback:
    """Base class: override any hook. `trainer.stop_training = True` ends the fit early."""

    def on_fit_start(self, trainer: Trainer, model: Model) -> None:
        """Called once before the first epoch."""

    def on_epoch_end(
        self, trainer: Trainer, model: Model, epoch: int, logs: dict[str, float]
    ) -> None:
        """Called after every epoch (1-based `epoch`) with that epoch's logs."""

    def on_fit_end(self, trainer: Trainer, model: Model) -> None:
        """Called once after the last epoch."""


def _improved(value: float, best: float, mode: str, min_delta: float) -> bool:
    if math.isnan(value):
        return False
    return value < best - min_delta if mode == "min" else value > best + min_delta


class EarlyStopping(Callback):
    """Stop when `monitor` (e.g. "val_loss", "val_top_100") stops improving for `patience` checks.

    With `restore_best_weights`, the model ends with the weights of its best epoch.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        mode: str = "min",
        patience: int = 3,
        min_delta: float = 0.0,
        restore_best_weights: bool = True,
    ) -> None:
        if mode not in ("min", "max"):
            raise ValueError(
                f"The 'mode' parameter of EarlyStopping must be 'min' or 'max'. Got {mode!r} instead."
            )
        self.monitor = monitor
        self.mode = mode
        self.patience = patience
        self.min_delta = min_delta
        self.restore_best_weights = restore_best_weights

    def on_fit_start(self, trainer: Trainer, model: Model) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = 0
        self.wait = 0
        self._best_state: dict[str, torch.Tensor] | None = None

    def on_epoch_end(
        self, trainer: Trainer, model: Model, epoch: int, logs: dict[str, float]
    ) -> None:
        if self.monitor not in logs:
            return  # not computed this epoch (e.g. validation every few epochs)
        value = logs[self.monitor]
        if _improved(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self._best_state = copy.deepcopy(model.state_dict())
        else:
            self.wait += 1
            if self.wait >= self.patience:
                trainer.stop_training = True

    def on_fit_end(self, trainer: Trainer, model: Model) -> None:
        if self.restore_best_weights and self._best_state is not None:
            model.load_state_dict(self._best_state)


def save_checkpoint(
    path: str | os.PathLike[str],
    trainer: Trainer,
    model: Model,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write model weights, optimizer and trainer state (epoch, RNG, history) atomically."""
    state = {"model": model.state_dict(), "trainer": trainer.state_dict(), "extra": extra or {}}
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint` (tensors and plain data only)."""
    return torch.load(path, map_location="cpu", weights_only=True)


class Checkpoint(Callback):
    """Write `latest.pt` after every epoch and `best.pt` when `monitor` improves, atomically.

    Each file holds the model weights, the optimizer state, the epoch, the RNG state, the history
    and `extra` (e.g. the resolved config), so `Trainer.fit(..., resume_from=latest.pt)` continues
    exactly where the run stopped.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        monitor: str | None = "val_loss",
        mode: str = "min",
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.monitor = monitor
        self.mode = mode
        self.extra = extra

    def on_fit_start(self, trainer: Trainer, model: Model) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.best = math.inf if self.mode == "min" else -math.inf
        if self.monitor and trainer.history is not None:
            with contextlib.suppress(KeyError):
                self.best = trainer.history.best(self.monitor, self.mode)[1]

    def on_epoch_end(
        self, trainer: Trainer, model: Model, epoch: int, logs: dict[str, float]
    ) -> None:
        save_checkpoint(self.directory / "latest.pt", trainer, model, self.extra)
        if self.monitor is None:
            return
        if self.monitor in logs and _improved(logs[self.monitor], self.best, self.mode, 0.0):
            self.best = logs[self.monitor]
            save_checkpoint(self.directory / "best.pt", trainer, model, self.extra)


class PerHeadEarlyStopping(Callback):
    """Early stopping for multi-task models whose heads own separate parameters.

    `heads` maps a monitored metric to `(mode, prefixes)`: the state-dict keys starting with one
    of `prefixes` belong to that head. Each head keeps the weights of its own best epoch, and
    training stops once no head has improved for `patience` checks. Used when one head (say
    the rating head) peaks at another epoch than another (the retrieval towers).
    """

    def __init__(
        self, heads: dict[str, tuple[str, Sequence[str]]], patience: int = 3, min_delta: float = 0.0
    ) -> None:
        for monitor, (mode, _) in heads.items():
            if mode not in ("min", "max"):
                raise ValueError(
                    f"The mode of {monitor!r} in PerHeadEarlyStopping must be 'min' or 'max'. Got {mode!r} instead."
                )
        self.heads = {m: (mode, tuple(prefixes)) for m, (mode, prefixes) in heads.items()}
        self.patience = patience
        self.min_delta = min_delta

    def on_fit_start(self, trainer: Trainer, model: Model) -> None:
        self.best = {
            m: (math.inf if mode == "min" else -math.inf) for m, (mode, _) in self.heads.items()
        }
        self.best_epoch = dict.fromkeys(self.heads, 0)
        self.wait = dict.fromkeys(self.heads, 0)
        self._states: dict[str, dict[str, torch.Tensor]] = {}

    def on_epoch_end(
        self, trainer: Trainer, model: Model, epoch: int, logs: dict[str, float]
    ) -> None:
        checked = False
        for monitor, (mode, prefixes) in self.heads.items():
            if monitor not in logs:
                continue
            checked = True
            if _improved(logs[monitor], self.best[monitor], mode, self.min_delta):
                self.best[monitor], self.best_epoch[monitor], self.wait[monitor] = (
                    logs[monitor],
                    epoch,
                    0,
                )
                self._states[monitor] = {
                    k: v.detach().clone()
                    for k, v in model.state_dict().items()
                    if k.startswith(prefixes)
                }
            else:
                self.wait[monitor] += 1
        if checked and all(w >= self.patience for w in self.wait.values()):
            trainer.stop_training = True

    def on_fit_end(self, trainer: Trainer, model: Model) -> None:
        for state in self._states.values():
            model.load_state_dict(state, strict=False)
