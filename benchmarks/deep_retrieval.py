"""Deep retrieval on MovieLens-100K: the TFRS tutorial's three models (parity) and a best recipe.

    python benchmarks/deep_retrieval.py --data-dir ../shared/data/ml-100k --epochs 300 \\
        --out deep_retrieval.json --plot deep_retrieval.png

Protocol (TFRS "Building deep retrieval models"): the 100,000 ratings are shuffled (seed 42) and
cut 80,000 train / 20,000 test. Metric: factorized top-k accuracy on the test set, the rank of
each test pair's movie among all 1,682 movies by dot product (ties count as hits), with nothing
excluded.

- `tfrs-parity` rows: query tower user id (32) ‖ timestamp bucket (32, 1,000 linspace
  boundaries) ‖ normalised timestamp; candidate tower title id (32) ‖ mean of title-token
  embeddings (32); both then Dense `layer_sizes`. In-batch softmax summed over the batch,
  Adagrad 0.1 (Keras accumulator 0.1), batch 2048, `--epochs` epochs (tutorial: 300), test
  top-100 every 5 epochs. The in-batch softmax is computed over each batch's distinct movies
  with log-count offsets: the same loss and gradients as TFRS's, with ~2.6x fewer columns.
- `best` row: query tower user id ‖ the user's last `previous` training interactions before
  the query time (mean of their embeddings; test queries see the whole train split, training
  queries the fitting part) ‖ timestamp bucket and value ‖ age, gender, occupation, zip prefix;
  candidate tower movie id ‖ title tokens ‖ genres ‖ release-year bucket, plus a per-movie
  bias; both then Dense [128, 64] with dropout. Exact softmax over the whole corpus, Adam, up to
  `--best-max-epochs` epochs with early stopping on a validation slice carved out of the train
  split (never the test set); the restored best weights are measured on the test set.

Writes `{"rows": [{recipe, layer_sizes, epochs, top_1, ..., top_100, top_100_curve,
fit_seconds, fit_cpu_seconds, ...}], "machine": {...}}`. `fit_seconds` is wall time;
`fit_cpu_seconds` the process's CPU time, which shows how much a busy machine stretched it.
Runs on one torch thread by default (`--threads`): on a shared 2-core machine two threads
become many times slower as soon as another process competes for a core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

import towerrec as tr
from towerrec.data.movielens import MovieLens, movielens
from towerrec.data.splits import random_split
from towerrec.models.deep_retrieval import (
    tutorial_datasets,
    tutorial_model,
)
from towerrec.recipes.deep_retrieval import (
    BestRecipe,
    best_frames,
    build_deep_retrieval_model,
    prepare_deep_retrieval,
)

Dataset = dict[str, torch.Tensor]
KS = (1, 5, 10, 50, 100)
PARITY_LAYER_SIZES = ([32], [64, 32], [128, 64, 32])


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - platform without load averages
        return None


def _curve(history: tr.History, metric: str) -> list[list[float]]:
    return [
        [e, round(v, 5)] for e, v in zip(history.epochs, history[metric], strict=True) if v == v
    ]


# --------------------------------------------------------------------------------------------
# Parity: the tutorial's three models
# --------------------------------------------------------------------------------------------


def run_parity(
    ml: MovieLens,
    epochs: int,
    seed: int,
    progress: bool,
    layer_sizes_list: Sequence[list[int]] = PARITY_LAYER_SIZES,
) -> tuple[list[dict[str, Any]], dict[str, tr.History]]:
    """Train the tutorial's models (its three depths by default); one row and History each."""
    ratings = ml.ratings.merge(ml.items[["item_id", "title"]], on="item_id", how="left")
    space, corpus, train, test = tutorial_datasets(ratings, ml.items, seed=seed)
    rows, histories = [], {}
    for layer_sizes in layer_sizes_list:
        torch.manual_seed(seed)
        model = tutorial_model(space, corpus, layer_sizes)
        trainer = tr.Trainer(
            optimizer=tr.optim.OptimizerSpec(
                "adagrad",
                {"lr": 0.1, "initial_accumulator_value": 0.1, "eps": 1e-7, "fused": True},
            ),
            batch_size=2048,
            epochs=epochs,
            validation_freq=5,
            seed=seed,
            progress=progress,
        )
        cpu = time.process_time()
        history = trainer.fit(model, train, validation=test)
        cpu = time.process_time() - cpu
        result = {k: history.last(f"val_top_{k}") for k in KS}
        row = {
            "recipe": "tfrs-parity",
            "layer_sizes": layer_sizes,
            "epochs": trainer.epoch,
            **{f"top_{k}": round(v, 5) for k, v in result.items()},
            "top_100_curve": _curve(history, "val_top_100"),
            "curve_on": "test",
            "fit_seconds": round(trainer.fit_seconds, 1),
            "fit_cpu_seconds": round(cpu, 1),
            "load_after": _loadavg(),
        }
        rows.append(row)
        histories[f"{layer_sizes}"] = history
        _log(row)
    return rows, histories


# --------------------------------------------------------------------------------------------
# Best recipe
# --------------------------------------------------------------------------------------------


def run_best(
    ml: MovieLens, recipe: BestRecipe, seed: int, progress: bool
) -> tuple[dict[str, Any], tr.History]:
    """Train the best recipe with early stopping on a validation slice; test the best weights."""
    data = prepare_deep_retrieval(ml, recipe="best", seed=seed, overrides=asdict(recipe))
    # The same 20,000 test ratings as the parity rows (same rows shuffled by the same seed).
    ratings, _ = best_frames(ml)
    _, test_df = random_split(ratings, train=0.8, seed=seed)
    _, parity_test = random_split(ml.ratings, train=0.8, seed=seed)
    columns = ["user_id", "item_id", "timestamp"]
    assert test_df[columns].equals(parity_test[columns]), "the test split must match parity's"
    fit, val, test = data.fit, data.validation, data.test

    torch.manual_seed(seed)
    model = build_deep_retrieval_model(data)
    stop = tr.EarlyStopping(monitor="val_top_100", mode="max", patience=recipe.patience)
    trainer = tr.Trainer(
        optimizer=tr.optim.Adam(lr=recipe.lr),
        batch_size=recipe.batch_size,
        epochs=recipe.max_epochs,
        validation_freq=recipe.validation_freq,
        seed=seed,
        progress=progress,
        callbacks=[stop],
    )
    cpu = time.process_time()
    history = trainer.fit(model, fit, validation=val)
    cpu = time.process_time() - cpu
    result = trainer.evaluate(model, test)
    row = {
        "recipe": "best",
        "layer_sizes": list(recipe.layer_sizes),
        "epochs": trainer.epoch,
        **{f"top_{k}": round(result[f"top_{k}"], 5) for k in KS},
        "top_100_curve": _curve(history, "val_top_100"),
        "curve_on": "validation slice",
        "fit_seconds": round(trainer.fit_seconds, 1),
        "fit_cpu_seconds": round(cpu, 1),
        "best_epoch": stop.best_epoch,
        "val_top_100": round(stop.best, 5),
        "load_after": _loadavg(),
        "config": model.config,
        "recipe_params": asdict(recipe),
    }
    _log(row)
    return row, history


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _log(row: dict[str, Any]) -> None:
    print(
        f"  {row['recipe']:<11} {row['layer_sizes']!s:<14} top_100={row['top_100']:.4f} "
        f"epochs={row['epochs']} fit={row['fit_seconds']:.0f}s (cpu {row['fit_cpu_seconds']:.0f}s)",
        file=sys.stderr,
        flush=True,
    )


def table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of the rows."""
    head = (
        f"{'recipe':<12} {'layer_sizes':<14} {'epochs':>6} "
        + " ".join(f"{'top_' + str(k):>7}" for k in KS)
        + f" {'fit_s':>7} {'cpu_s':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['recipe']:<12} {r['layer_sizes']!s:<14} {r['epochs']:>6} "
            + " ".join(f"{r[f'top_{k}']:>7.4f}" for k in KS)
            + f" {r['fit_seconds']:>7.1f} {r['fit_cpu_seconds']:>7.1f}"
        )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """Where the numbers were measured."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "loadavg_start": _loadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder with the extracted ml-100k")
    parser.add_argument("--epochs", type=int, default=300, help="parity epochs (tutorial: 300)")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--plot", default=None, help="PNG of parity top-100 accuracy vs epoch")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--best-max-epochs", type=int, default=BestRecipe.max_epochs)
    parser.add_argument(
        "--layer-sizes",
        nargs="+",
        default=None,
        help="parity depths to run, e.g. 32 64,32 (default: the tutorial's three)",
    )
    parser.add_argument("--skip-parity", action="store_true", help="run only the best row")
    parser.add_argument("--skip-best", action="store_true", help="run only the parity rows")
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    ml = movielens("100k", data_dir=args.data_dir, download=False, progress=False)
    info = machine()
    rows: list[dict[str, Any]] = []
    if not args.skip_parity:
        depths = (
            PARITY_LAYER_SIZES
            if args.layer_sizes is None
            else [[int(x) for x in sizes.split(",")] for sizes in args.layer_sizes]
        )
        parity_rows, histories = run_parity(ml, args.epochs, args.seed, args.progress, depths)
        rows += parity_rows
        if args.plot:
            tr.plot.history(
                {f"layer_sizes={k}": h for k, h in histories.items()},
                metrics=["val_top_100"],
                path=args.plot,
                title=f"Deep retrieval, MovieLens-100K ({args.epochs} epochs, test set)",
                ylabel="top-100 accuracy",
            )
    if not args.skip_best:
        recipe = BestRecipe(max_epochs=args.best_max_epochs)
        row, _ = run_best(ml, recipe, args.seed, args.progress)
        rows.append(row)
    info["loadavg_end"] = _loadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows, "machine": info}, indent=2) + "\n")
    print(table(rows))
    print(f"load average: start {info['loadavg_start']}, end {info['loadavg_end']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
