"""`towerrec train CONFIG.toml [--set key=value ...] [--output DIR] [--resume RUN_DIR]`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["NAME", "register", "run"]

NAME = "train"
HELP = "train a model from a TOML config into a run folder (or resume one)"

DESCRIPTION = """\
Train the task and recipe a TOML config names, evaluate the final model on the test split, and
write a run folder: config.toml (every setting, resolved), features.json, items.csv,
interactions.csv, checkpoints/latest.pt (every epoch) and best.pt (the final model),
history.json, history.csv, metrics.json, plots/<metric>.png, summary.txt, bundle/ (the serving
bundle, for models the serving layer knows) and, last, COMPLETE. A folder without COMPLETE is
unfinished: continue it with --resume.

Config keys: task (multitask | deep_retrieval | memory_efficient), recipe (multitask: best,
tfrs-parity; deep_retrieval: tfrs-parity, best; memory_efficient: parity, best), variant
(MovieLens release, default 100k), data_dir (default: the download cache), cache_dir, seed,
threads, name, a [weights] table (multitask: rating, retrieval), and the recipe's [model] and
[train] tables. An unknown key or a bad value stops with a one-line error naming the allowed
keys or values, before anything is written."""

EPILOG = """\
examples:
  towerrec train configs/multitask_best.toml --set data_dir=../shared/data/ml-100k
  towerrec train configs/deep_retrieval.toml --set train.epochs=50 --output runs/dr50
  towerrec train --resume runs/dr50 --set train.epochs=100"""


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `train` subcommand."""
    parser = subparsers.add_parser(
        NAME,
        help=HELP,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "config",
        nargs="?",
        metavar="CONFIG.toml",
        help="the TOML config to train (leave out with --resume: the run's config.toml is used)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.epochs=5 or --set data_dir=DIR; VALUE "
        'is TOML (5, 0.1, true, [64, 32], "text"), else a plain string; repeat for more. '
        "With --resume only train.epochs, train.patience, threads, data_dir and cache_dir may "
        "change",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        help="the run folder to create (default: runs/<config name>-<UTC time>)",
    )
    parser.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its checkpoints/latest.pt, with its config.toml",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing run folder at --output",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars or per-epoch lines"
    )
    parser.set_defaults(func=run)
    return parser


def resume_config(run_dir: str, overrides: list[str]) -> dict[str, Any]:
    """The config of the run in `run_dir` with `overrides` (only resumable keys) applied."""
    from towerrec.config import RESUMABLE_KEYS, apply_overrides, resolve
    from towerrec.errors import ConfigError
    from towerrec.runs import read_run_config

    raw = read_run_config(run_dir)
    for key in apply_overrides(raw, overrides):
        if key not in RESUMABLE_KEYS:
            raise ConfigError(
                f"config: '{key}' cannot change when resuming (allowed: "
                f"{', '.join(RESUMABLE_KEYS)}); train a new run instead"
            )
    return resolve(raw)


def run(args: argparse.Namespace) -> int:
    """Train (or resume) and print the test metrics and where the run folder is."""
    from towerrec.config import load_config
    from towerrec.runs import format_metrics, train

    if args.resume is not None:
        if args.config is not None or args.output is not None:
            raise ValueError(
                "--resume continues RUN_DIR with its own config.toml; leave out CONFIG.toml "
                "and --output (change settings with --set train.epochs=N)"
            )
        config = resume_config(args.resume, args.overrides)
    elif args.config is None:
        raise ValueError("give a CONFIG.toml to train, or --resume RUN_DIR")
    else:
        config = load_config(args.config, args.overrides)
    log = (lambda text: None) if args.quiet else (lambda text: print(text, file=sys.stderr))
    result = train(
        config,
        args.output,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.quiet,
        log=log,
    )
    print(f"{config['task']} / {config['recipe']}: test metrics after {len(result.history)} epochs")
    print(format_metrics({"test": result.metrics}))
    print(f"Run folder: {result.path}")
    if result.bundle is not None:
        print(f"Serve it:   towerrec serve {result.bundle}")
    return 0
