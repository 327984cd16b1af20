"""Run folders: what `towerrec train` and `towerrec quickstart` write, and how to read them back.

```
RUN_DIR/
  config.toml            the full resolved config (`towerrec train RUN_DIR/config.toml` repeats
                         the run), plus [model] name and [model.config]: the registered model
                         and its constructor arguments, which `towerrec export` reads
  features.json          the fitted FeatureSpace
  items.csv              item metadata; the id column is named like the item feature's column
  interactions.csv       the training split's (user, item) pairs: seen items, popularity
  checkpoints/latest.pt  written after every epoch: model, optimizer, RNG, history, config and
                         the early-stopping state, everything a resumed fit needs
  checkpoints/best.pt    the final model: the weights the fit ends with (after early stopping
                         restored its best ones); what metrics.json, evaluate and export use
  history.json, .csv     every metric per epoch (validation metrics start with val_)
  metrics.json           the final model's metrics on the test split, epochs and timings
  plots/<metric>.png     each metric per epoch, training (solid) and validation (dashed)
  summary.txt            the model's module table (`towerrec.summary`)
  bundle/                the serving bundle (`towerrec export RUN_DIR`), for models the
                         serving layer knows (see `metrics.json["bundle"]`)
  COMPLETE               written last: a folder without it is unfinished (still training,
                         stopped, or failed) and never mistaken for a finished run
```

Completeness is marked, not staged: the folder is created when training starts and every
file in it is written atomically, so a stopped run keeps its checkpoints and
`towerrec train --resume RUN_DIR` continues it from `checkpoints/latest.pt` (the same final
weights and metrics as an uninterrupted run). Resuming removes `COMPLETE` and the derived
files first and writes them again at the end. A config error or missing data stops before
the folder is created.

`train(config, output)` runs a resolved config (`towerrec.config.load_config`) into a run
folder; `evaluate(run_dir)` recomputes the test metrics of a finished run.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import inspect
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from towerrec._io import atomic_write_text, read_json, write_json
from towerrec.config import dumps, read_toml, resolve
from towerrec.errors import ConfigError
from towerrec.features import FeatureSpace
from towerrec.models.base import Model
from towerrec.train.callbacks import Callback, load_checkpoint, save_checkpoint
from towerrec.train.history import History
from towerrec.train.trainer import Trainer

__all__ = [
    "COMPLETE",
    "RunCheckpoint",
    "RunResult",
    "default_output",
    "evaluate",
    "format_metrics",
    "is_complete",
    "metric_label",
    "read_metrics",
    "read_run_config",
    "train",
    "write_config",
]

COMPLETE = "COMPLETE"
CONFIG = "config.toml"
CHECKPOINTS = "checkpoints"
#: Files and folders derived from training; removed when a run is resumed.
DERIVED = (
    COMPLETE,
    "history.json",
    "history.csv",
    "metrics.json",
    "summary.txt",
    "plots",
    "bundle",
)

Log = Callable[[str], None]


# --------------------------------------------------------------------------------------------
# Tasks: data, training, evaluation and export for each config `task`


@dataclass
class Prepared:
    """A task's data: the fitted features, item metadata, training interactions, tensors."""

    space: FeatureSpace
    items: pd.DataFrame | None
    interactions: pd.DataFrame | None
    data: Any
    test: dict[str, torch.Tensor]
    dataset: str


@dataclass
class Fitted:
    """A trained model, its history and its metrics on the test split."""

    model: Model
    history: History
    metrics: dict[str, float]
    fit_seconds: float


def _movielens(config: Mapping[str, Any], progress: bool) -> Any:
    from towerrec.data.movielens import movielens

    return movielens(
        config["variant"],
        data_dir=config.get("data_dir"),
        cache_dir=config.get("cache_dir"),
        progress=progress,
    )


def _settings(config: Mapping[str, Any]) -> dict[str, Any]:
    return {**config.get("model", {}), **config.get("train", {})}


class _Multitask:
    """`run_multitask` of `towerrec.recipes.multitask`: user id, title -> rating + retrieval."""

    def prepare(self, config: Mapping[str, Any], progress: bool) -> Prepared:
        from towerrec.recipes.multitask import prepare_multitask

        ml = _movielens(config, progress)
        data = prepare_multitask(ml, seed=config["seed"])
        item_col = data.space.column_of("item_id")
        cols = [c for c in (item_col, "item_id", "genres") if c in data.items.columns]
        items = data.items[cols]
        interactions = data.train[[data.space.column_of("user_id"), item_col]]
        return Prepared(
            data.space, items, interactions, data, data.test_tensors, f"MovieLens {ml.variant}"
        )

    def fit(
        self, prep: Prepared, config: Mapping[str, Any], callbacks: list[Callback], progress: bool
    ) -> Fitted:
        from towerrec.recipes.multitask import run_multitask

        settings = _settings(config)
        result = run_multitask(
            prep.data,
            recipe=config["recipe"],
            rating_weight=config["weights"]["rating"],
            retrieval_weight=config["weights"]["retrieval"],
            epochs=settings.get("epochs"),
            seed=config["seed"],
            progress=progress,
            callbacks=callbacks,
            overrides=settings if config["recipe"] == "best" else None,
        )
        return Fitted(result.model, result.history, result.metrics, result.fit_seconds)

    def build(self, prep: Prepared, config: Mapping[str, Any], spec: Mapping[str, Any]) -> Model:
        from towerrec.metrics import FactorizedTopK
        from towerrec.serving.registry import get_model_class

        name, model_config = _model_spec(spec)
        cls = get_model_class(name)
        seen = prep.data.seen
        if "seen" in inspect.signature(cls).parameters:
            return cls(**model_config, seen=seen)
        model = cls(**model_config)
        # As the tfrs-parity recipe: the seen-items-excluded metric next to the plain ones.
        model.retrieval_task.metrics.append(
            FactorizedTopK(model.candidate_corpus, ks=(100,), seen=seen, prefix="excl_")
        )
        return model

    def export(self, run_dir: Path, model: Model, prep: Prepared) -> Path:
        from towerrec.serving import export_run

        return export_run(run_dir, run_dir / "bundle")


class _DeepRetrieval:
    """The recipes of `towerrec.recipes.deep_retrieval`: feature-rich towers."""

    def prepare(self, config: Mapping[str, Any], progress: bool) -> Prepared:
        from towerrec.recipes.deep_retrieval import prepare_deep_retrieval, settings_from_config

        ml = _movielens(config, progress)
        overrides = settings_from_config(config["recipe"], _settings(config))
        data = prepare_deep_retrieval(
            ml, recipe=config["recipe"], seed=config["seed"], overrides=overrides
        )
        items = data.items[[c for c in ("item_id", "title", "genres") if c in data.items]]
        interactions = data.train_frame[["user_id", "item_id"]]
        return Prepared(data.space, items, interactions, data, data.test, f"MovieLens {ml.variant}")

    def fit(
        self, prep: Prepared, config: Mapping[str, Any], callbacks: list[Callback], progress: bool
    ) -> Fitted:
        from towerrec.recipes.deep_retrieval import run_deep_retrieval

        result = run_deep_retrieval(
            prep.data, seed=config["seed"], progress=progress, callbacks=callbacks
        )
        return Fitted(result.model, result.history, result.metrics, result.fit_seconds)

    def build(self, prep: Prepared, config: Mapping[str, Any], spec: Mapping[str, Any]) -> Model:
        from towerrec.recipes.deep_retrieval import build_deep_retrieval_model

        return build_deep_retrieval_model(prep.data)

    def export(self, run_dir: Path, model: Model, prep: Prepared) -> Path | str:
        from towerrec.serving import export
        from towerrec.serving.registry import model_name, unservable_features

        if model_name(model) is None:
            return (
                f"{type(model).__name__} is not a registered serving model "
                f"(towerrec.serving.register_model)"
            )
        reason = unservable_features(model, prep.space)
        if reason:
            return reason
        return export(
            model,
            prep.space,
            run_dir / "bundle",
            items=prep.items,
            seen=prep.interactions,
            **model.serving_features(),
        )


class _MemoryEfficient:
    """`run_memory_efficient` of `towerrec.recipes.memory_efficient`: a rating model."""

    def prepare(self, config: Mapping[str, Any], progress: bool) -> Prepared:
        from towerrec.recipes.memory_efficient import prepare_memory_efficient

        ml = _movielens(config, progress)
        data = prepare_memory_efficient(ml, seed=config["seed"])
        assert data.space is not None and data.train_frame is not None
        items = ml.items[[c for c in ("item_id", "title", "genres") if c in ml.items.columns]]
        interactions = data.train_frame[["user_id", "item_id"]]
        return Prepared(data.space, items, interactions, data, data.eval, f"MovieLens {ml.variant}")

    @staticmethod
    def _overrides(config: Mapping[str, Any]) -> dict[str, Any]:
        settings = _settings(config)
        settings.pop("embedding")
        if config["recipe"] == "best":
            settings["max_epochs"] = settings.pop("epochs")
        return settings

    def fit(
        self, prep: Prepared, config: Mapping[str, Any], callbacks: list[Callback], progress: bool
    ) -> Fitted:
        from towerrec.recipes.memory_efficient import run_memory_efficient

        result = run_memory_efficient(
            prep.data,
            recipe=config["recipe"],
            embedding=config["model"]["embedding"],
            seed=config["seed"],
            progress=progress,
            callbacks=callbacks,
            overrides=self._overrides(config),
        )
        return Fitted(result.model, result.history, result.metrics, result.trainer.fit_seconds)

    def build(self, prep: Prepared, config: Mapping[str, Any], spec: Mapping[str, Any]) -> Model:
        from towerrec.recipes.memory_efficient import build_rating_model

        return build_rating_model(
            prep.data, config["recipe"], config["model"]["embedding"], self._overrides(config)
        )

    def export(self, run_dir: Path, model: Model, prep: Prepared) -> str:
        return "a rating-only model: no retrieval towers to serve"


TASKS: dict[str, Any] = {
    "multitask": _Multitask(),
    "deep_retrieval": _DeepRetrieval(),
    "memory_efficient": _MemoryEfficient(),
}


# --------------------------------------------------------------------------------------------
# Callbacks: checkpoints that follow early stopping, and resuming


def _plain(value: Any) -> bool:
    """Whether `value` is data a weights-only checkpoint can hold (tensors, numbers, text)."""
    if value is None or isinstance(value, bool | int | float | str | torch.Tensor):
        return True
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str | int) and _plain(v) for k, v in value.items())
    return False


class RunCheckpoint(Callback):
    """A run's checkpoints: `latest.pt` after every epoch, `best.pt` when the fit ends.

    `latest.pt` holds the model, the trainer (optimizer, epoch, RNG, history), `extra` and the
    state of the fit's other callbacks (their attributes that are not constructor arguments:
    e.g. an early stopping's best value, patience count and best weights), so a fit resumed
    from it (`resume_from`) continues exactly: same weights, same stopping decision, same final
    model. `best.pt` holds the weights the fit ends with,
    after early stopping restored its best ones: the model a run reports and exports. Put this
    callback after the others (their `on_fit_start` resets what a resume restores, and their
    `on_fit_end` restores the weights `best.pt` records). `on_start(model)` is called once the
    model exists (e.g. to record its config).
    """

    def __init__(
        self,
        directory: str | Path,
        extra: dict[str, Any] | None = None,
        *,
        resume_from: str | Path | None = None,
        on_start: Callable[[Model], None] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.extra = dict(extra or {})
        self.resume_from = None if resume_from is None else Path(resume_from)
        self.on_start = on_start

    def _others(self, trainer: Any) -> list[Callback]:
        return [cb for cb in trainer.callbacks if cb is not self]

    @staticmethod
    def _snapshot(cb: Callback) -> dict[str, Any]:
        """A callback's settings (its constructor's arguments) and state (everything else)."""
        params = set(inspect.signature(type(cb)).parameters)
        values = {k: v for k, v in vars(cb).items() if _plain(v)}
        return {
            "type": type(cb).__qualname__,
            "params": {k: v for k, v in values.items() if k in params},
            "state": {k: v for k, v in values.items() if k not in params},
        }

    def on_fit_start(self, trainer: Any, model: Model) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "best.pt").unlink(missing_ok=True)  # rewritten when this fit ends
        if self.resume_from is not None:
            state = load_checkpoint(self.resume_from)
            # Loading weights may replace parameters (e.g. corpus-sized ones); dropping the
            # optimizer makes `resume` build it over the loaded ones before restoring its state.
            trainer.optimizer = None
            trainer.resume(model, state)
            extra = state.get("extra", {})
            saved = extra.get("callbacks", [])
            others = self._others(trainer)
            same = len(saved) == len(others)
            for cb, entry in zip(others, saved, strict=False):
                if entry["type"] != type(cb).__qualname__:
                    same = False
                    continue
                vars(cb).update(entry["state"])
                same = same and entry["params"] == self._snapshot(cb)["params"]
            # A fit that had stopped early stays stopped, unless its settings changed (e.g. a
            # larger patience); then the callbacks decide again after the next epoch.
            trainer.stop_training = same and bool(extra.get("stopped", False))
        if self.on_start is not None:
            self.on_start(model)

    def on_epoch_end(self, trainer: Any, model: Model, epoch: int, logs: dict[str, float]) -> None:
        callbacks = [self._snapshot(cb) for cb in self._others(trainer)]
        extra = {**self.extra, "callbacks": callbacks, "stopped": bool(trainer.stop_training)}
        save_checkpoint(self.directory / "latest.pt", trainer, model, extra)

    def on_fit_end(self, trainer: Any, model: Model) -> None:
        save_checkpoint(self.directory / "best.pt", trainer, model, self.extra)


# --------------------------------------------------------------------------------------------
# Writing a run


@dataclass
class RunResult:
    """What `train` returns: where the run went and what it produced."""

    path: Path
    config: dict[str, Any]
    model: Model
    history: History
    metrics: dict[str, float]
    prepared: Prepared
    bundle: Path | None
    fit_seconds: float
    files: list[str] = field(default_factory=list)


def is_complete(run_dir: str | Path) -> bool:
    """Whether the run folder was finished (holds the COMPLETE marker)."""
    return (Path(run_dir) / COMPLETE).is_file()


def _looks_like_run(path: Path) -> bool:
    return (path / CONFIG).is_file() or (path / CHECKPOINTS).is_dir()


def _check_output(path: Path, overwrite: bool) -> None:
    if not path.exists():
        return
    if not path.is_dir():
        raise FileExistsError(f"The run folder {str(path)!r} is a file. Choose another --output.")
    if not any(path.iterdir()):
        return
    if not overwrite:
        raise FileExistsError(
            f"The run folder {str(path)!r} already exists. Choose another --output, pass "
            f"--overwrite to replace it, or --resume it."
        )
    if not _looks_like_run(path):
        raise FileExistsError(
            f"{str(path)!r} is not empty and is not a run folder (no {CONFIG}); refusing to "
            f"replace it. Choose another --output."
        )


def default_output(config: Mapping[str, Any]) -> Path:
    """`runs/<name>-<UTC time>` under the current folder."""
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{config.get('name') or config['task']}-{stamp}"


def _model_spec(spec: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    model = spec.get("model", {})
    name, config = model.get("name"), model.get("config")
    if not isinstance(name, str) or not isinstance(config, dict):
        raise ConfigError(
            f"config: the run's {CONFIG} lacks [model] name and [model.config] (the model "
            f"towerrec trained); it was not written by towerrec train"
        )
    return name, config


def _config_document(config: Mapping[str, Any], model: Model | None) -> dict[str, Any]:
    """The resolved config plus [model] name / [model.config] of a registered model."""
    from towerrec.serving.registry import model_name

    doc = {k: (dict(v) if isinstance(v, dict) else v) for k, v in config.items()}
    name = None if model is None else model_name(model)
    model_config = getattr(model, "config", None)
    if name is not None and isinstance(model_config, Mapping):
        signature = inspect.signature(type(model)).parameters
        for key, value in model_config.items():
            if value is None and key in signature and signature[key].default is not None:
                raise ConfigError(
                    f"The config of {type(model).__name__} holds {key} = None, which TOML "
                    f"cannot store and its constructor does not default to."
                )
        doc["model"] = {"name": name, **doc.get("model", {}), "config": dict(model_config)}
    return doc


def write_config(run_dir: Path, config: Mapping[str, Any], model: Model | None = None) -> None:
    """Write `config.toml`: the resolved config (and the model's name and config)."""
    from towerrec import __version__

    header = (
        f"towerrec {__version__}: the resolved config of this run (every setting).\n"
        f"Repeat it with: towerrec train {run_dir / CONFIG}"
    )
    atomic_write_text(run_dir / CONFIG, dumps(_config_document(config, model), header=header))


def _write_frame(path: Path, frame: pd.DataFrame) -> None:
    atomic_write_text(path, frame.to_csv(index=False))


def _plots(run_dir: Path, history: History, name: str) -> list[Path]:
    """One PNG per metric: its training and validation values per epoch."""
    from towerrec.plot import history as plot_history

    train = History(
        [{k: v for k, v in r.items() if not k.startswith("val_")} for r in history.records]
    )
    validation = History(
        [
            {
                k.removeprefix("val_"): v
                for k, v in r.items()
                if k == "epoch" or k.startswith("val_")
            }
            for r in history.records
        ]
    )
    curves = {"training": train, "validation": validation}
    paths = []
    for metric in dict.fromkeys(m.removeprefix("val_") for m in history.metrics):
        present = {label: h for label, h in curves.items() if metric in h.metrics}
        label = metric_label(metric)
        paths.append(
            plot_history(
                present,
                metrics=[metric],
                path=run_dir / "plots" / f"{metric}.png",
                title=f"{name}: {label} per epoch",
                validation=False,
                ylabel=label,
            )
        )
    return paths


def _summary_text(model: Model, example: Mapping[str, torch.Tensor] | None) -> str:
    from towerrec.summary import summary

    return summary(model, None if example is None else dict(example)) + "\n"


def train(
    config: Mapping[str, Any],
    output: str | Path | None = None,
    *,
    resume: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    log: Log | None = None,
) -> RunResult:
    """Train the resolved `config` into a run folder (the layout in this module's docstring).

    `output` is the run folder (default: `runs/<name>-<time>`); `resume` continues the run
    folder given instead (its `checkpoints/latest.pt`). Data is loaded before anything is
    written, so missing data leaves no folder behind. Returns a `RunResult`.
    """
    say = log or (lambda text: print(text, file=sys.stderr))
    config = resolve(config)
    task = TASKS[config["task"]]
    if resume is not None:
        run_dir = Path(resume)
        latest = run_dir / CHECKPOINTS / "latest.pt"
        if not latest.is_file():
            raise FileNotFoundError(
                f"Cannot resume {str(run_dir)!r}: it has no {CHECKPOINTS}/latest.pt (a run "
                f"stopped before its first epoch ended). Train it again instead."
            )
    else:
        run_dir = Path(output) if output is not None else default_output(config)
        _check_output(run_dir, overwrite)
        latest = None
    with _threads(config.get("threads")):
        say(f"Loading {config['variant']} data ...")
        prep = task.prepare(config, progress)
        if resume is None:
            if run_dir.exists() and any(run_dir.iterdir()):
                shutil.rmtree(run_dir)  # --overwrite of a run folder, checked above
            run_dir.mkdir(parents=True, exist_ok=True)
        else:
            for name in DERIVED:
                path = run_dir / name
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
        say(f"Run folder: {run_dir}")
        write_config(run_dir, config)
        prep.space.save(run_dir / "features.json")
        if prep.items is not None:
            _write_frame(run_dir / "items.csv", prep.items)
        if prep.interactions is not None:
            _write_frame(run_dir / "interactions.csv", prep.interactions)
        checkpoint = RunCheckpoint(
            run_dir / CHECKPOINTS,
            extra={"config": config},
            resume_from=latest,
            on_start=lambda model: write_config(run_dir, config, model),
        )
        started = time.perf_counter()
        try:
            fitted = task.fit(prep, config, [checkpoint], progress)
            say(f"Trained {len(fitted.history)} epochs in {time.perf_counter() - started:.1f} s.")
            return _finish(run_dir, config, task, prep, fitted)
        except BaseException:
            if (run_dir / CHECKPOINTS / "latest.pt").is_file():
                say(
                    f"The run folder {run_dir} is unfinished; continue it with: "
                    f"towerrec train --resume {run_dir}"
                )
            raise


def _finish(
    run_dir: Path, config: dict[str, Any], task: Any, prep: Prepared, fitted: Fitted
) -> RunResult:
    from towerrec import __version__

    model, history = fitted.model, fitted.history
    history.save_json(run_dir / "history.json")
    history.save_csv(run_dir / "history.csv")
    example = {k: v[:8] for k, v in prep.test.items()}
    atomic_write_text(run_dir / "summary.txt", _summary_text(model, example))
    _plots(run_dir, history, config.get("name") or config["task"])
    bundle = task.export(run_dir, model, prep)
    bundle_path = bundle if isinstance(bundle, Path) else None
    record: dict[str, Any] = {
        "task": config["task"],
        "recipe": config["recipe"],
        "dataset": prep.dataset,
        "split": "test",
        "metrics": fitted.metrics,
        "epochs": len(history),
        "fit_seconds": round(fitted.fit_seconds, 3),
        "bundle": "bundle" if bundle_path is not None else None,
    }
    if bundle_path is None:
        record["bundle_skipped"] = str(bundle)
    write_json(run_dir / "metrics.json", record)
    files = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file())
    write_json(
        run_dir / COMPLETE,
        {
            "completed": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "towerrec_version": __version__,
            "files": files,
        },
    )
    return RunResult(
        path=run_dir,
        config=config,
        model=model,
        history=history,
        metrics=fitted.metrics,
        prepared=prep,
        bundle=bundle_path,
        fit_seconds=fitted.fit_seconds,
        files=[*files, COMPLETE],
    )


# --------------------------------------------------------------------------------------------
# Reading a run


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """A run folder -> its config.toml as read (with [model] name/config; not yet resolved)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"No run folder at {str(run_dir)!r}.")
    return read_toml(run_dir / CONFIG)


def evaluate(
    run_dir: str | Path,
    *,
    data_dir: str | Path | None = None,
    checkpoint: str = "best",
    progress: bool = False,
) -> dict[str, float]:
    """Recompute the test-split metrics of a finished run from its checkpoint.

    The data comes from the run's config (or `data_dir`); `checkpoint` "best" falls back to
    `latest.pt` as `towerrec export` does, so the metrics are those of the final model.
    """
    from towerrec.commands.export import resolve_run

    run_dir = Path(run_dir)
    raw = read_run_config(run_dir)
    if not is_complete(run_dir):
        raise FileNotFoundError(
            f"The run folder {str(run_dir)!r} is unfinished (no {COMPLETE} marker): it is still "
            f"training or was stopped. Continue it with: towerrec train --resume {run_dir}"
        )
    config = resolve({**raw, "data_dir": str(data_dir)} if data_dir is not None else raw)
    _, ckpt = resolve_run(run_dir, checkpoint)
    task = TASKS[config["task"]]
    with _threads(config.get("threads")):
        prep = task.prepare(config, progress)
        torch.manual_seed(config["seed"])
        model = task.build(prep, config, raw)
        model.load_state_dict(load_checkpoint(ckpt)["model"])
        return Trainer(progress=False).evaluate(model, prep.test)


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """Run the block with `n` torch CPU threads (None: unchanged), then restore the count."""
    previous = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def read_metrics(run_dir: str | Path) -> dict[str, Any]:
    """The run's metrics.json."""
    return read_json(Path(run_dir) / "metrics.json")


# --------------------------------------------------------------------------------------------
# Printing


def metric_label(name: str) -> str:
    """A metric key -> a readable label ("excl_top_100" -> "top-100, seen excluded")."""
    base = name.removeprefix("val_")
    prefix = "validation " if name.startswith("val_") else ""
    excl = base.startswith("excl_")
    base = base.removeprefix("excl_")
    if base.startswith("top_") and base[4:].isdigit():
        text = f"top-{base[4:]} accuracy"
    else:
        text = {"rmse": "RMSE", "mae": "MAE", "mse": "MSE", "auc": "AUC"}.get(base, base)
    return prefix + text + (", seen excluded" if excl else "")


def format_metrics(
    columns: Mapping[str, Mapping[str, float | None]],
    rows: Sequence[str] | None = None,
) -> str:
    """{column title: {metric: value}} -> an aligned table, one metric per row ("-" if absent)."""
    titles = list(columns)
    if rows is None:
        rows = list(dict.fromkeys(k for col in columns.values() for k in col))
    labels = [metric_label(r) for r in rows]
    width = max([len("metric"), *map(len, labels)])
    widths = [max(len(t), 8) for t in titles]

    def cell(value: float | None, w: int) -> str:
        return f"{'-' if value is None or value != value else f'{value:.4f}':>{w}}"

    lines = [
        "  ".join(
            [f"{'metric':<{width}}", *(f"{t:>{w}}" for t, w in zip(titles, widths, strict=True))]
        )
    ]
    lines.append("-" * len(lines[0]))
    for row, label in zip(rows, labels, strict=True):
        cells = [cell(columns[t].get(row), w) for t, w in zip(titles, widths, strict=True)]
        lines.append("  ".join([f"{label:<{width}}", *cells]))
    return "\n".join(lines)
