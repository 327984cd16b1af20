"""Multitask tutorial benchmark: the tutorial's recipe (three weightings) and our best recipe.

    python benchmarks/multitask.py --data-dir ../shared/data/ml-100k --out /tmp/m.json

Same split (seeded shuffle, first 80% train), same two features (user id, movie title), same
metrics (factorized top-k over every movie, RMSE) for every row. `top_100_excl` ranks with
each user's training movies left out. Prints a table and writes {"rows": [...]}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

import towerrec as tr
from towerrec.recipes.multitask import prepare_multitask, run_multitask

PARITY_WEIGHTS = [(1.0, 0.0), (0.0, 1.0), (1.0, 1.0)]
COLUMNS = [
    "recipe",
    "rating_weight",
    "retrieval_weight",
    "epochs",
    "top_1",
    "top_5",
    "top_10",
    "top_50",
    "top_100",
    "top_100_excl",
    "rmse",
    "fit_seconds",
    "eval_seconds",
]


def _fmt(v: object) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", default=None, help="extracted ml-100k folder (default: download and cache)"
    )
    parser.add_argument("--out", default="multitask.json", help="where to write the JSON results")
    parser.add_argument(
        "--recipes", nargs="+", default=["tfrs-parity", "best"], choices=["tfrs-parity", "best"]
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's choice)"
    )
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    ml = tr.datasets.movielens("100k", data_dir=args.data_dir)
    data = prepare_multitask(ml, seed=args.seed)
    rows = []
    runs = []
    if "tfrs-parity" in args.recipes:
        runs += [("tfrs-parity", rw, tw) for rw, tw in PARITY_WEIGHTS]
    if "best" in args.recipes:
        runs.append(("best", 1.0, 1.0))
    for recipe, rw, tw in runs:
        result = run_multitask(
            data,
            recipe=recipe,
            rating_weight=rw,
            retrieval_weight=tw,
            seed=args.seed,
            progress=False,
        )
        row = result.row()
        rows.append(row)
        print("  ".join(f"{c}={_fmt(row[c])}" for c in COLUMNS), flush=True)

    widths = {c: max(len(c), *(len(_fmt(r[c])) for r in rows)) for c in COLUMNS}
    print()
    print("  ".join(c.rjust(widths[c]) for c in COLUMNS))
    for r in rows:
        print("  ".join(_fmt(r[c]).rjust(widths[c]) for c in COLUMNS))
    out = {
        "rows": rows,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "load_average": list(os.getloadavg()),
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
