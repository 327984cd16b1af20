"""Shared fixtures of the command-line tests: synthetic MovieLens files and a CLI runner."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from towerrec.cli import main
from towerrec.data import write_movielens


@dataclass
class Outcome:
    """Exit status and captured output of one `towerrec` call."""

    code: int
    out: str
    err: str


@pytest.fixture(scope="session")
def ml_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic ml-100k folder (40 users, 30 movies, 600 ratings)."""
    root = tmp_path_factory.mktemp("movielens")
    return write_movielens(root, "100k", num_users=40, num_items=30, num_ratings=600, seed=3)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Outcome]:
    """Run `towerrec ARGS...` in-process; returns its exit status and output."""

    def run(*args: object) -> Outcome:
        capsys.readouterr()
        threads = torch.get_num_threads()
        code = main([str(a) for a in args])
        assert torch.get_num_threads() == threads  # a run restores the thread count
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run


@pytest.fixture
def fast_plots(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip drawing the per-metric PNGs (the plotting test draws them for real)."""
    import towerrec.runs

    def names_only(run_dir: Path, history, name: str) -> list[Path]:
        out = []
        for metric in dict.fromkeys(m.removeprefix("val_") for m in history.metrics):
            path = run_dir / "plots" / f"{metric}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
            out.append(path)
        return out

    monkeypatch.setattr(towerrec.runs, "_plots", names_only)


#: Small settings of each task, so a run takes a second or two.
TINY = {
    "multitask": """
task = "multitask"
recipe = "best"
data_dir = "{data}"
[model]
dim = 8
hidden = 16
[train]
epochs = {epochs}
batch_size = 128
""",
    "deep_retrieval": """
task = "deep_retrieval"
recipe = "tfrs-parity"
data_dir = "{data}"
threads = 1
[model]
layer_sizes = [8]
dim = 8
[train]
epochs = {epochs}
batch_size = 128
validation_freq = 1
""",
    "deep_retrieval_best": """
task = "deep_retrieval"
recipe = "best"
data_dir = "{data}"
[model]
layer_sizes = [8]
dim = 8
previous = 3
[train]
epochs = {epochs}
batch_size = 128
validation_freq = 1
patience = 1
validation_fraction = 0.2
""",
    "memory_efficient": """
task = "memory_efficient"
recipe = "best"
data_dir = "{data}"
[model]
full_dim = 8
base_dim = 4
[train]
epochs = {epochs}
batch_size = 128
patience = 1
""",
}


@pytest.fixture
def tiny_config(tmp_path: Path, ml_dir: Path) -> Callable[..., Path]:
    """Write a config file of a task with small settings: tiny_config(task, epochs=2, extra="")."""

    def write(task: str, epochs: int = 2, extra: str = "", name: str = "run.toml") -> Path:
        path = tmp_path / name
        text = TINY[task].format(data=ml_dir.as_posix(), epochs=epochs) + extra
        path.write_text(text, encoding="utf-8")
        return path

    return write
