"""Shared fixtures for the serving tests: a small trained model, its bundle and a run folder."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from towerrec.data import synthetic_interactions
from towerrec.features import FeatureSpace, Lookup
from towerrec.models.movielens import MultitaskModel
from towerrec.serving import export
from towerrec.train import Checkpoint, Trainer


@dataclass
class Trained:
    """A MultitaskModel trained one epoch on synthetic data, with its features and data."""

    model: MultitaskModel
    space: FeatureSpace
    ratings: pd.DataFrame
    items: pd.DataFrame


def train_small(run_dir: Path | None = None, seed: int = 0) -> Trained:
    """Train a small MultitaskModel for one epoch (with a Checkpoint into run_dir if given)."""
    data = synthetic_interactions(num_users=40, num_items=30, num_ratings=600, seed=seed)
    space = FeatureSpace({"user_id": Lookup(), "item_id": Lookup()}).fit(data.ratings, data.items)
    torch.manual_seed(seed)
    model = MultitaskModel(space["user_id"].size, space["item_id"].size, dim=8)
    train = space.transform(data.ratings)
    train["rating"] = torch.tensor(data.ratings["rating"].to_numpy())
    callbacks = [] if run_dir is None else [Checkpoint(run_dir / "checkpoints", monitor="loss")]
    Trainer(batch_size=128, epochs=1, progress=False, callbacks=callbacks).fit(model, train)
    model.eval()
    return Trained(model, space, data.ratings, data.items)


@pytest.fixture(scope="session")
def trained() -> Trained:
    """One trained model for the whole session (tests must not modify it)."""
    return train_small()


@pytest.fixture(scope="session")
def bundle_path(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle of `trained` with titles and seen items (brute force); read-only."""
    path = tmp_path_factory.mktemp("bundle") / "bundle"
    return export(trained.model, trained.space, path, items=trained.items, seen=trained.ratings)


@pytest.fixture
def bundle_copy(bundle_path: Path, tmp_path: Path) -> Path:
    """A private copy of the bundle, free to damage."""
    import shutil

    return Path(shutil.copytree(bundle_path, tmp_path / "copy"))


def write_run_folder(run_dir: Path, config_format: str = "json") -> Trained:
    """Train one epoch into `run_dir` with the documented run-folder layout."""
    run_dir.mkdir(parents=True, exist_ok=True)
    trained = train_small(run_dir)
    config: dict[str, Any] = {"model": {"name": "multitask", "config": trained.model.config}}
    if config_format == "json":
        (run_dir / "config.json").write_text(json.dumps(config))
    else:
        lines = ["[model]", 'name = "multitask"', "", "[model.config]"]
        for key, value in trained.model.config.items():
            lines.append(f"{key} = {json.dumps(value)}")
        (run_dir / "config.toml").write_text("\n".join(lines) + "\n")
    trained.space.save(run_dir / "features.json")
    trained.items[["item_id", "title"]].to_csv(run_dir / "items.csv", index=False)
    trained.ratings[["user_id", "item_id"]].to_csv(run_dir / "interactions.csv", index=False)
    return trained


@pytest.fixture(scope="session")
def make_run_folder() -> Any:
    """The run-folder writer: make_run_folder(run_dir, config_format="json"|"toml")."""
    return write_run_folder


@pytest.fixture(scope="session")
def test_client_class() -> Any:
    """fastapi.testclient.TestClient, imported without starlette's httpx deprecation warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*starlette.testclient.*")
        from fastapi.testclient import TestClient
    return TestClient
