"""`towerrec export RUN_DIR_OR_CHECKPOINT --output BUNDLE`: a saved training run -> a bundle.

Run folder layout (what `towerrec train` writes, and what this command reads):

```
RUN_DIR/
  config.json | config.toml   the run configuration; required key: the model, as
                                 {"model": {"name": "multitask", "config": {...}}}
                                 (TOML: a [model] table with `name` and a [model.config] table).
                                 `name` is a registered model name ("multitask" ->
                                 MultitaskModel, "joint" -> JointModel, "deep_retrieval" ->
                                 DeepRetrievalModel, or one registered with
                                 towerrec.serving.register_model); `config` is `model.config`,
                                 the constructor's keyword arguments. Other keys are ignored.
  features.json                the fitted FeatureSpace (`FeatureSpace.save`)
  checkpoints/best.pt          checkpoints written by `towerrec.train.Checkpoint`
  checkpoints/latest.pt        (best.pt is used when present, else latest.pt)
  items.csv | items.parquet    optional: item metadata, one row per item: the item id column
                                 (named like the item feature's column, e.g. `item_id`) and
                                 e.g. `title`, `genres`; titles are shown by recommend/serve
  interactions.csv | .parquet  optional: the training split's interactions, at least the user
                                 and item id columns (named like those features' columns);
                                 they give each user's seen items (excluded from
                                 recommendations) and the popularity counts of the fallback
                                 for unknown users (without it: the item vocabulary counts)
```

The model's `user_key` / `item_key` name the user and item features of `features.json`, or
its `serving_features()` gives them with the query features (as `DeepRetrievalModel` does).
"""

from __future__ import annotations

import argparse
import json
import os
import tomllib
from pathlib import Path
from typing import Any

__all__ = ["NAME", "export_run", "register", "resolve_run", "run"]

NAME = "export"
HELP = "export a saved training run (or checkpoint) as a serving bundle"
CONFIG_FILES = ("config.json", "config.toml")
CHECKPOINTS = {"best": ("best.pt", "latest.pt"), "latest": ("latest.pt",)}


def resolve_run(path: str | os.PathLike[str], checkpoint: str = "best") -> tuple[Path, Path]:
    """A run folder or a checkpoint file -> (run folder, checkpoint file).

    For a folder, `checkpoint="best"` takes `checkpoints/best.pt`, else `latest.pt`;
    `"latest"` takes `latest.pt`. A checkpoint file's run folder is the parent of its
    `checkpoints/` folder (or its own folder).
    """
    if checkpoint not in CHECKPOINTS:
        raise ValueError(
            f"The 'checkpoint' parameter must be 'best' or 'latest'. Got {checkpoint!r} instead."
        )
    path = Path(path)
    if path.is_file():
        run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        return run_dir, path
    if not path.is_dir():
        raise FileNotFoundError(f"No run folder or checkpoint file at {str(path)!r}.")
    for name in CHECKPOINTS[checkpoint]:
        candidate = path / "checkpoints" / name
        if candidate.is_file():
            return path, candidate
    raise FileNotFoundError(
        f"The run folder {str(path)!r} has no checkpoints/{' or '.join(CHECKPOINTS[checkpoint])}."
        f" Train with a Checkpoint callback writing to {str(path / 'checkpoints')!r}, or pass "
        f"a checkpoint file."
    )


def read_config(run_dir: Path) -> dict[str, Any]:
    """The run's config.json or config.toml as a dict (ConfigError-style message if absent)."""
    for name in CONFIG_FILES:
        path = run_dir / name
        if path.is_file():
            if name.endswith(".json"):
                return json.loads(path.read_text("utf-8"))
            with open(path, "rb") as f:
                return tomllib.load(f)
    raise FileNotFoundError(
        f"The run folder {str(run_dir)!r} has no config.json or config.toml naming the model."
    )


def _model_spec(config: dict[str, Any], run_dir: Path) -> tuple[str, dict[str, Any]]:
    from towerrec.errors import ConfigError

    model = config.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        raise ConfigError(
            f"The config of {str(run_dir)!r} needs a 'model' table with a 'name' (a registered "
            f"model, e.g. 'multitask') and a 'config' table of its constructor arguments."
        )
    model_config = model.get("config", {})
    if not isinstance(model_config, dict):
        raise ConfigError(f"'model.config' in the config of {str(run_dir)!r} must be a table.")
    return model["name"], model_config


def _read_frame(run_dir: Path, stem: str, id_columns: dict[str, str | None]) -> Any:
    """`stem`.csv or .parquet from the run folder, or None; str-kind id columns read as str."""
    import pandas as pd

    from towerrec.data.frames import read_table

    csv, parquet = run_dir / f"{stem}.csv", run_dir / f"{stem}.parquet"
    if parquet.is_file():
        return read_table(parquet)
    if csv.is_file():
        dtype = {col: str for col, kind in id_columns.items() if kind == "str"}
        return pd.read_csv(csv, dtype=dtype or None, keep_default_na=False, na_values=[""])
    return None


def export_run(
    run_dir: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    checkpoint: str = "best",
    index: Any = None,
    overwrite: bool = False,
) -> Path:
    """Export a saved training run (the layout in this module's docstring) as a bundle.

    `run_dir` is the run folder or one of its checkpoint files; `checkpoint` picks "best"
    (falling back to "latest") or "latest"; `index` is passed to `towerrec.serving.export`
    (None: exact brute force; or "hnsw", "ivf_flat", ...). Returns the bundle path.
    """
    from towerrec.errors import ConfigError
    from towerrec.features import FeatureSpace, Lookup
    from towerrec.serving.bundle import export
    from towerrec.serving.registry import build_model, unservable_features
    from towerrec.train import load_checkpoint

    run_path, ckpt_path = resolve_run(run_dir, checkpoint)
    name, model_config = _model_spec(read_config(run_path), run_path)
    features_path = run_path / "features.json"
    if not features_path.is_file():
        raise FileNotFoundError(
            f"The run folder {str(run_path)!r} has no features.json (the fitted FeatureSpace)."
        )
    space = FeatureSpace.load(features_path)
    model = build_model(name, model_config)
    state = load_checkpoint(ckpt_path)
    weights = state.get("model") if isinstance(state, dict) else None
    if not isinstance(weights, dict):
        raise ValueError(f"{str(ckpt_path)!r} is not a towerrec checkpoint (no 'model' weights).")
    model.load_state_dict(weights)
    model.eval()

    def kinds(*features: str | None) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for feature in features:
            if feature and feature in space:
                t = space[feature]
                out[space.column_of(feature)] = t.kind_ if isinstance(t, Lookup) else None
        return out

    reason = unservable_features(model, space)
    if reason:
        raise ConfigError(f"The model of {str(run_path)!r} cannot be exported: {reason}.")
    features = model.serving_features() if hasattr(model, "serving_features") else {}
    user_key = features.get("user_feature", getattr(model, "user_key", None))
    item_key = features.get("item_feature", getattr(model, "item_key", None))
    items = _read_frame(run_path, "items", kinds(item_key))
    seen = _read_frame(run_path, "interactions", kinds(user_key, item_key))
    return export(
        model, space, output, items=items, seen=seen, index=index, overwrite=overwrite, **features
    )


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `export` subcommand."""
    parser = subparsers.add_parser(
        NAME,
        help=HELP,
        description=(
            "Export a saved training run as a serving bundle: one folder with the model, the "
            "fitted features, the candidate embeddings, the popularity fallback, each user's "
            "seen items and the item titles, checked by sha256 when loaded. The run folder "
            "holds config.json|config.toml (the model name and config), features.json, "
            "checkpoints/best.pt|latest.pt, and optionally items.csv|parquet and "
            "interactions.csv|parquet (the training interactions)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "run", metavar="RUN_DIR_OR_CHECKPOINT", help="a training run folder or a checkpoint file"
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="BUNDLE",
        default=argparse.SUPPRESS,
        help="the bundle folder to write",
    )
    parser.add_argument(
        "--checkpoint",
        choices=sorted(CHECKPOINTS),
        default="best",
        help="which checkpoint of a run folder ('best' falls back to 'latest')",
    )
    parser.add_argument(
        "--index",
        choices=["brute_force", "flat", "hnsw", "ivf_flat", "ivf_pq"],
        default="brute_force",
        help="top-k index: exact brute force (rebuilt at load) or a FAISS index saved in the "
        "bundle (needs pip install 'towerrec[ann]')",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing bundle at --output"
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Export the run and print where the bundle went."""
    index = None if args.index == "brute_force" else args.index
    path = export_run(
        args.run, args.output, checkpoint=args.checkpoint, index=index, overwrite=args.overwrite
    )
    from towerrec.serving.bundle import read_manifest

    manifest = read_manifest(path)
    parts = ", ".join(k for k, v in manifest["parts"].items() if v)
    print(
        f"Wrote bundle {path} ({manifest['candidates']['count']} items, "
        f"dim {manifest['candidates']['dim']}; parts: {parts})."
    )
    return 0
