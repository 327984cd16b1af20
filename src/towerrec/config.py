"""Run configurations: TOML files checked against a schema, `--set` overrides, a TOML writer.

A config names a task, its recipe, the data and the settings that differ from the recipe's
defaults; every other setting comes from the recipe:

```toml
task = "multitask"            # multitask | deep_retrieval | memory_efficient
recipe = "best"               # the task's recipes (see `towerrec train --help`)
variant = "100k"              # MovieLens release
data_dir = "../shared/data/ml-100k"   # optional: files already on disk (else the cache)
seed = 42

[weights]                     # multitask only: loss weights
rating = 1.0
retrieval = 1.0

[model]                       # the recipe's model settings, e.g. dim, hidden, l2
[train]                       # the recipe's training settings, e.g. epochs, lr, batch_size
```

`load_config(path, overrides)` reads the file, applies `--set key=value` overrides (values are
TOML: `3`, `0.1`, `true`, `[64, 32]`, `"text"`; anything that is not valid TOML is taken as a
string, so `--set data_dir=../data` works) and returns the *resolved* config: every key of the
task's schema with its value or default, `data_dir` made absolute. An unknown key, a value of
the wrong type or outside the allowed values, or a `data_dir` that does not exist raises
`ConfigError` with one line naming the key and what is allowed, e.g.
`config: unknown key 'model.dimm' (allowed: dim, hidden, l2)`.

A run's `config.toml` (written with `dumps`) is itself a valid config. It also holds
`model.name` and `model.config` (the registered model and its constructor arguments, what
`towerrec export` reads); those two keys are derived: accepted in a config and recomputed.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from towerrec.data.movielens import VARIANTS
from towerrec.errors import ConfigError

__all__ = [
    "DERIVED_MODEL_KEYS",
    "RESUMABLE_KEYS",
    "TASKS",
    "Option",
    "apply_overrides",
    "dumps",
    "load_config",
    "option_for",
    "parse_override",
    "read_toml",
    "resolve",
    "schema_of",
]

#: Keys of `[model]` that towerrec writes into a run's config.toml; ignored when read back.
DERIVED_MODEL_KEYS = ("name", "config")
#: Keys a `--set` may change when resuming a run (the others fix the data and the model).
RESUMABLE_KEYS = ("train.epochs", "train.patience", "threads", "data_dir", "cache_dir")


@dataclass(frozen=True)
class Option:
    """One config key: its type, default, allowed values and a one-line description.

    `type` is "int", "float", "str", "bool", "path" (a str, made absolute) or "int_list".
    A `default` of None means optional without a value (left out of the resolved config).
    """

    type: str
    default: Any = None
    help: str = ""
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    required: bool = False


Schema = dict[str, "Option | Schema"]

#: task -> its recipes, the first being the default.
TASKS: dict[str, tuple[str, ...]] = {
    "multitask": ("best", "tfrs-parity"),
    "deep_retrieval": ("tfrs-parity", "best"),
    "memory_efficient": ("parity", "best"),
}

#: The keys every config has, whatever its task.
COMMON: dict[str, Option] = {
    "task": Option("str", required=True, choices=tuple(TASKS), help="what to train"),
    "recipe": Option("str", help="the task's recipe (default: the task's first recipe)"),
    "name": Option("str", help="the run's name (default: the config file's name)"),
    "variant": Option("str", "100k", "the MovieLens release", choices=VARIANTS),
    "data_dir": Option("path", help="a folder holding the MovieLens files (default: the cache)"),
    "cache_dir": Option("path", help="the download cache (default: ~/.cache/towerrec)"),
    "seed": Option("int", 42, "the seed of the split, the initialisation and the shuffling"),
    "threads": Option("int", help="torch CPU threads (default: torch's)", minimum=1),
}


#: Settings that count something (at least 1), and settings that cannot be negative.
_COUNTS = (
    "epochs",
    "max_epochs",
    "batch_size",
    "validation_freq",
    "dim",
    "hidden",
    "full_dim",
    "base_dim",
    "min_dim",
    "num_blocks",
    "layer_sizes",
)
_NON_NEGATIVE = (
    "lr",
    "l2",
    "retrieval_l2",
    "weight_decay",
    "validation_fraction",
    "dropout",
    "patience",
)


def option_for(key: str, value: Any, help: str = "") -> Option:
    """An Option whose type and default come from a recipe's default value."""
    minimum = 1 if key in _COUNTS else 0.0 if key in _NON_NEGATIVE else None
    if isinstance(value, bool):
        return Option("bool", value, help)
    if isinstance(value, int):
        return Option("int", value, help, minimum=minimum)
    if isinstance(value, float):
        return Option("float", value, help, minimum=minimum)
    if isinstance(value, str):
        return Option("str", value, help)
    if isinstance(value, list | tuple) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        return Option("int_list", list(value), help, minimum=minimum)
    raise TypeError(f"No config type for the default value {key} = {value!r}.")


def _split_settings(
    defaults: Mapping[str, Any], train_keys: Sequence[str], renames: Mapping[str, str] = {}
) -> tuple[dict[str, Option], dict[str, Option]]:
    """A recipe's flat defaults -> ([model] options, [train] options)."""
    model: dict[str, Option] = {}
    train: dict[str, Option] = {}
    for key, value in defaults.items():
        name = renames.get(key, key)
        (train if key in train_keys else model)[name] = option_for(key, value)
    return model, train


_TRAIN_KEYS = (
    "lr",
    "batch_size",
    "epochs",
    "max_epochs",
    "patience",
    "validation_fraction",
    "validation_freq",
    "optimizer",
    "weight_decay",
)


def schema_of(task: str, recipe: str) -> Schema:
    """The schema of a (task, recipe): the common keys plus the task's tables."""
    schema: Schema = dict(COMMON)
    if task == "multitask":
        from towerrec.recipes.multitask import BEST_DEFAULTS

        schema["weights"] = {
            "rating": Option("float", 1.0, "weight of the rating loss", minimum=0.0),
            "retrieval": Option("float", 1.0, "weight of the retrieval loss", minimum=0.0),
        }
        if recipe == "best":
            model, train = _split_settings(BEST_DEFAULTS, _TRAIN_KEYS)
        else:
            model, train = {}, {"epochs": option_for("epochs", 3, "training epochs")}
    elif task == "memory_efficient":
        from dataclasses import asdict

        from towerrec.recipes.memory_efficient import EMBEDDINGS, BestRecipe, ParityRecipe

        settings = asdict(ParityRecipe() if recipe == "parity" else BestRecipe())
        model, train = _split_settings(settings, _TRAIN_KEYS, {"max_epochs": "epochs"})
        model = {
            "embedding": Option(
                "str", "memory_efficient", "full or memory-efficient tables", EMBEDDINGS
            ),
            **model,
        }
    elif task == "deep_retrieval":
        from towerrec.recipes.deep_retrieval import config_options

        model, train = config_options(recipe)
    else:  # pragma: no cover - checked by the caller
        raise ConfigError(f"config: unknown task {task!r}")
    schema["model"] = model
    schema["train"] = train
    return schema


# --------------------------------------------------------------------------------------------
# Reading, overriding and checking


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML file; a missing file or bad TOML raises ConfigError naming it."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config: no file at {str(path)!r}") from None
    except IsADirectoryError:
        raise ConfigError(f"config: {str(path)!r} is a folder, not a TOML file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config: {str(path)!r} is not valid TOML: {e}") from None


_KEY = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


def parse_override(text: str) -> tuple[str, Any]:
    """`"a.b=value"` -> ("a.b", value parsed as TOML, or the raw string if it is not TOML)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not _KEY.match(key):
        raise ConfigError(
            f"config: --set needs KEY=VALUE with a dotted KEY (e.g. train.epochs=5). Got "
            f"{text!r} instead."
        )
    raw = raw.strip()
    try:
        value = tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def apply_overrides(config: dict[str, Any], overrides: Sequence[str]) -> list[str]:
    """Apply `--set KEY=VALUE` strings to `config` in place; returns the keys set."""
    keys = []
    for text in overrides:
        key, value = parse_override(text)
        *parents, last = key.split(".")
        table = config
        for i, part in enumerate(parents):
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                where = ".".join(parents[: i + 1])
                raise ConfigError(f"config: --set {key}: '{where}' is a value, not a table")
        table[last] = value
        keys.append(key)
    return keys


_TYPE_NAMES = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "path": "a path (string)",
    "int_list": "a list of integers",
}


def _type_name(value: Any) -> str:
    if isinstance(value, dict):
        return "table"
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list"}.get(
        type(value), type(value).__name__
    )


def _check_value(key: str, option: Option, value: Any) -> Any:
    t = option.type
    bad = ConfigError(
        f"config: '{key}' must be {_TYPE_NAMES[t]}; got {value!r} ({_type_name(value)})"
    )
    if t == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad
    elif t == "float":
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise bad
        value = float(value)
        if math.isnan(value):
            raise bad
    elif t in ("str", "path"):
        if not isinstance(value, str) or (t == "path" and not value):
            raise bad
    elif t == "bool":
        if not isinstance(value, bool):
            raise bad
    elif t == "int_list":
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise bad
        value = list(value)
    if option.choices and value not in option.choices:
        allowed = ", ".join(str(c) for c in option.choices)
        raise ConfigError(f"config: '{key}' must be one of {allowed}; got {value!r}")
    if option.minimum is not None:
        values = value if t == "int_list" else [value]
        if any(v < option.minimum for v in values):
            what = "every entry of " if t == "int_list" else ""
            raise ConfigError(f"config: {what}'{key}' must be >= {option.minimum:g}; got {value!r}")
    return value


def _allowed(schema: Schema) -> str:
    return ", ".join(schema) if schema else "none for this task and recipe"


def _check_table(prefix: str, schema: Schema, given: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in given:
        if key not in schema:
            raise ConfigError(f"config: unknown key '{prefix}{key}' (allowed: {_allowed(schema)})")
    for key, spec in schema.items():
        name = f"{prefix}{key}"
        if isinstance(spec, dict):
            value = given.get(key, {})
            if not isinstance(value, dict):
                raise ConfigError(
                    f"config: '{name}' must be a table (allowed keys: {_allowed(spec)}); got "
                    f"{value!r}"
                )
            out[key] = _check_table(f"{name}.", spec, value)
        elif key in given:
            out[key] = _check_value(name, spec, given[key])
        elif spec.required:
            allowed = f" (one of: {', '.join(spec.choices)})" if spec.choices else ""
            raise ConfigError(f"config: missing key '{name}'{allowed}")
        elif spec.default is not None:
            out[key] = list(spec.default) if isinstance(spec.default, list) else spec.default
    return out


def resolve(raw: Mapping[str, Any], *, name: str | None = None) -> dict[str, Any]:
    """A config as read from TOML -> the resolved, checked config (defaults filled in).

    `name` is the run name to use when the config has none. Raises ConfigError (one line
    naming the key) on any problem.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"config: expected a table of settings; got {raw!r}")
    raw = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in raw.items()}
    model = raw.get("model")
    if isinstance(model, dict):
        for key in DERIVED_MODEL_KEYS:
            model.pop(key, None)
    if "task" not in raw:
        raise ConfigError(f"config: missing key 'task' (one of: {', '.join(TASKS)})")
    task_name = _check_value("task", COMMON["task"], raw["task"])
    recipes = TASKS[task_name]
    recipe = raw.get("recipe", recipes[0])
    _check_value("recipe", Option("str", choices=recipes), recipe)
    schema = schema_of(task_name, recipe)
    out = _check_table("", schema, raw)
    out["recipe"] = recipe
    if name is not None and "name" not in out:
        out["name"] = name
    for key in ("data_dir", "cache_dir"):
        if key in out:
            path = Path(out[key]).expanduser().resolve()
            if key == "data_dir" and not path.is_dir():
                raise ConfigError(
                    f"config: 'data_dir' is {str(path)!r}, which is not a folder. Point it at "
                    f"the folder holding the MovieLens files (e.g. u.data), or leave it out to "
                    f"download into the cache"
                )
            out[key] = str(path)
    order = [*COMMON, *(k for k in out if k not in COMMON)]
    return {k: out[k] for k in order if k in out}


def load_config(
    path: str | os.PathLike[str] | None,
    overrides: Sequence[str] = (),
    *,
    base: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Read the TOML file `path` (or start from `base`), apply `overrides`, resolve and check.

    The run name defaults to the file's stem. Raises ConfigError on any problem.
    """
    if path is not None:
        raw = read_toml(path)
        name: str | None = Path(path).stem
    else:
        raw = _deep_copy(base or {})
        name = None
    apply_overrides(raw, overrides)
    return resolve(raw, name=name)


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_deep_copy(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------
# Writing TOML

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _key(key: str) -> str:
    return key if _BARE.match(key) else _string(key)


def _string(text: str) -> str:
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _scalar(value: Any, where: str) -> str:
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, list | dict):
        value = value.item()  # numpy / torch scalars
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_scalar(v, where) for v in value) + "]"
    if isinstance(value, Mapping):
        items = [f"{_key(str(k))} = {_scalar(v, where)}" for k, v in value.items() if v is not None]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    if value is None:
        raise TypeError(f"TOML has no null: {where} holds None inside a list.")
    raise TypeError(f"Cannot write {where} = {value!r} ({type(value).__name__}) as TOML.")


def dumps(doc: Mapping[str, Any], header: str | None = None) -> str:
    """A dict of tables, scalars and lists -> TOML text (`tomllib.loads` reads it back).

    None values are left out (TOML has no null); a nested dict becomes a `[table]` (dicts
    inside lists become inline tables). `header` is written first as `#` comment lines.
    """
    lines: list[str] = [f"# {line}".rstrip() for line in (header or "").splitlines()]

    def table(path: list[str], values: Mapping[str, Any]) -> None:
        scalars = [
            (k, v) for k, v in values.items() if v is not None and not isinstance(v, Mapping)
        ]
        tables = [(k, v) for k, v in values.items() if isinstance(v, Mapping)]
        if path and (scalars or not tables):
            if lines:
                lines.append("")
            lines.append("[" + ".".join(_key(p) for p in path) + "]")
        for k, v in scalars:
            where = ".".join([*path, str(k)])
            lines.append(f"{_key(str(k))} = {_scalar(v, where)}")
        for k, v in tables:
            table([*path, str(k)], v)

    table([], doc)
    return "\n".join(lines) + "\n"
