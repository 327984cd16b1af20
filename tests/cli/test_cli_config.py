"""Config schema, `--set` parsing, the TOML writer, and the shipped configs."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import pytest

from towerrec.commands.quickstart import QUICKSTART
from towerrec.config import (
    RESUMABLE_KEYS,
    TASKS,
    dumps,
    load_config,
    parse_override,
    resolve,
    schema_of,
)
from towerrec.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_dumps_round_trips_through_tomllib():
    doc = {
        "title": 'quote " back\\slash\ttab\nnewline \x7f é 😀',
        "n": -3,
        "x": 1e-07,
        "big": 1e300,
        "inf": math.inf,
        "flag": False,
        "skipped": None,
        "list": [1, 2.5, "a", [True, False]],
        "inline": [{"a": 1, "b": "c"}],
        "weird key": 1,
        "table": {"k": 1, "sub": {"deep": [64, 32]}, "empty": {}},
        "only_tables": {"child": {"v": "w"}},
    }
    text = dumps(doc, header="line one\nline two")
    assert text.startswith("# line one\n# line two\n")
    back = tomllib.loads(text)
    expected = {k: v for k, v in doc.items() if v is not None}
    assert back == expected
    nan = tomllib.loads(dumps({"v": math.nan}))["v"]
    assert math.isnan(nan)
    with pytest.raises(TypeError, match="holds None inside a list"):
        dumps({"v": [1, None]})
    with pytest.raises(TypeError, match="Cannot write v"):
        dumps({"v": object()})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train.epochs=5", ("train.epochs", 5)),
        ("lr = 0.5", ("lr", 0.5)),
        ("model.layer_sizes=[64, 32]", ("model.layer_sizes", [64, 32])),
        ("flag=true", ("flag", True)),
        ('name="a b"', ("name", "a b")),
        ("data_dir=../shared/data/ml-100k", ("data_dir", "../shared/data/ml-100k")),
        ("x=", ("x", "")),
    ],
)
def test_parse_override(text, expected):
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["noequals", "=3", "a..b=1", "a b=1"])
def test_parse_override_rejects_bad_keys(text):
    with pytest.raises(ConfigError, match="--set needs KEY=VALUE"):
        parse_override(text)


def test_resolve_fills_defaults_and_checks_every_recipe(tmp_path):
    for task, recipes in TASKS.items():
        for recipe in recipes:
            config = resolve({"task": task, "recipe": recipe, "data_dir": str(tmp_path)})
            assert config["data_dir"] == str(tmp_path.resolve())
            schema = schema_of(task, recipe)
            assert set(config["train"]) == set(schema["train"])
            assert "epochs" in config["train"]
            assert tomllib.loads(dumps(config)) == config  # a resolved config is its own TOML
    default = resolve({"task": "deep_retrieval"})
    assert default["recipe"] == "tfrs-parity" and default["seed"] == 42
    assert default["variant"] == "100k" and "data_dir" not in default
    with pytest.raises(ConfigError, match=r"'train' must be a table \(allowed keys: epochs\)"):
        resolve({"task": "multitask", "recipe": "tfrs-parity", "train": 3})
    with pytest.raises(ConfigError, match=r"unknown key 'model.dim' \(allowed: none"):
        resolve({"task": "multitask", "recipe": "tfrs-parity", "model": {"dim": 3}})
    with pytest.raises(ConfigError, match=r"every entry of 'model\.layer_sizes' must be >= 1"):
        resolve({"task": "deep_retrieval", "model": {"layer_sizes": [32, 0]}})
    with pytest.raises(ConfigError, match=r"'train\.optimizer' must be one of adagrad"):
        resolve({"task": "deep_retrieval", "train": {"optimizer": "lbfgs"}})
    assert resolve({"task": "deep_retrieval", "train": {"lr": 1}})["train"]["lr"] == 1.0


def test_derived_model_keys_are_accepted_and_dropped():
    raw = {"task": "multitask", "model": {"name": "joint", "config": {"num_users": 3}, "dim": 8}}
    config = resolve(raw)
    assert config["model"]["dim"] == 8 and "name" not in config["model"]
    assert raw["model"]["name"] == "joint"  # the caller's dict is left alone
    assert {"train.epochs", "train.patience", "data_dir"} <= set(RESUMABLE_KEYS)
    assert not {"seed", "variant", "model.dim"} & set(RESUMABLE_KEYS)


def test_shipped_configs_resolve(tmp_path):
    files = sorted(CONFIGS.glob("*.toml"))
    names = {f.stem for f in files}
    assert {"quickstart", "multitask_best", "deep_retrieval", "memory_efficient"} <= names
    assert {"multitask_rating", "multitask_retrieval", "multitask_joint"} <= names
    for path in files:
        config = load_config(path, [f"data_dir={tmp_path}"])
        assert config["name"] == ("quickstart" if path.stem == "quickstart" else path.stem)
    quick = load_config(CONFIGS / "quickstart.toml")
    assert quick == resolve(QUICKSTART)
    weights = {
        stem: tuple(load_config(CONFIGS / f"{stem}.toml")["weights"].values())
        for stem in ("multitask_rating", "multitask_retrieval", "multitask_joint")
    }
    assert weights == {
        "multitask_rating": (1.0, 0.0),
        "multitask_retrieval": (0.0, 1.0),
        "multitask_joint": (1.0, 1.0),
    }
    parity = load_config(CONFIGS / "deep_retrieval.toml")
    assert parity["recipe"] == "tfrs-parity" and parity["model"]["layer_sizes"] == [32]
    assert parity["train"]["epochs"] == 300 and parity["train"]["validation_freq"] == 5
