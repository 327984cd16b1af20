"""`towerrec evaluate RUN_DIR [--data-dir DIR]`: the test metrics of a finished run."""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["NAME", "register", "run"]

NAME = "evaluate"
HELP = "recompute the test metrics of a finished run from its checkpoint"


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `evaluate` subcommand."""
    parser = subparsers.add_parser(
        NAME,
        help=HELP,
        description=(
            "Rebuild the run's test split from its config.toml (same data, same seed), load "
            "the final model from checkpoints/best.pt (else latest.pt) and print its metrics "
            "next to the ones recorded in metrics.json when the run finished."
        ),
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a finished run folder (towerrec train)")
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        default=None,
        help="read the MovieLens files from DIR instead of the run's data_dir",
    )
    parser.add_argument(
        "--checkpoint",
        choices=["best", "latest"],
        default="best",
        help="which checkpoint (default: best, which falls back to latest as towerrec export does)",
    )
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Evaluate the run and print the table (or JSON)."""
    from towerrec.runs import evaluate, format_metrics, read_metrics

    metrics = evaluate(args.run_dir, data_dir=args.data_dir, checkpoint=args.checkpoint)
    if args.json:
        print(json.dumps(metrics, indent=2))
        return 0
    recorded = read_metrics(args.run_dir).get("metrics", {})
    print(f"Test metrics of {args.run_dir} ({args.checkpoint} checkpoint):")
    print(format_metrics({"now": metrics, "recorded": recorded}, rows=list(metrics)))
    return 0
