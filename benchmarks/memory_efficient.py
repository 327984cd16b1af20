"""Memory-efficient embeddings on MovieLens: the Keras recipe (parity) and a tuned recipe (best).

    python benchmarks/memory_efficient.py --data-dir ../shared/data/ml-100k --out me.json

Trains the `parity` and `best` recipes of `towerrec.recipes.memory_efficient` (its docstring
gives the protocol), each with full embedding tables and with memory-efficient ones.

Writes `{"rows": [{recipe, model, params, eval_mse, eval_mae, fit_seconds, ...}], ...}`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from towerrec.recipes.memory_efficient import (
    EMBEDDINGS,
    MODEL_NAMES,
    BestRecipe,
    Data,
    count_params,
    load_data,
    parity_params,
    run_memory_efficient,
)

# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------


def run_parity(data: Data, epochs: int, seed: int) -> tuple[list[dict], dict[str, dict]]:
    """Train both parity models with the Keras recipe; rows and per-epoch curves."""
    rows, curves = [], {}
    for embedding in EMBEDDINGS:
        name = MODEL_NAMES["parity", embedding]
        result = run_memory_efficient(
            data, recipe="parity", embedding=embedding, seed=seed, overrides={"epochs": epochs}
        )
        trainer = result.trainer
        rows.append(
            _row("parity", name, result.model, result.metrics, trainer.fit_seconds, trainer.epoch)
        )
        curves[f"parity/{name}"] = result.history.history
        _log(rows[-1])
    return rows, curves


def run_best(data: Data, recipe: BestRecipe, seed: int) -> tuple[list[dict], dict[str, dict]]:
    """Train both best models with early stopping on a validation slice of the train split."""
    rows, curves = [], {}
    for embedding in EMBEDDINGS:
        name = MODEL_NAMES["best", embedding]
        result = run_memory_efficient(
            data, recipe="best", embedding=embedding, seed=seed, overrides=asdict(recipe)
        )
        trainer = result.trainer
        row = _row("best", name, result.model, result.metrics, trainer.fit_seconds, trainer.epoch)
        row["best_epoch"] = result.best_epoch
        row["val_mse"] = result.best_validation
        rows.append(row)
        curves[f"best/{name}"] = result.history.history
        _log(row)
    return rows, curves


def _row(
    recipe: str, name: str, model: nn.Module, result: dict, seconds: float, epochs: int
) -> dict:
    return {
        "recipe": recipe,
        "model": name,
        "params": count_params(model),
        "eval_mse": result["mse"],
        "eval_mae": result["mae"],
        "fit_seconds": round(seconds, 2),
        "epochs": epochs,
    }


def _log(row: dict) -> None:
    print(
        f"  {row['recipe']:<6} {row['model']:<18} params={row['params']:,} "
        f"eval_mse={row['eval_mse']:.4f} eval_mae={row['eval_mae']:.4f} "
        f"epochs={row['epochs']} fit={row['fit_seconds']:.1f}s",
        file=sys.stderr,
    )


def table(rows: list[dict]) -> str:
    """A plain-text table of the rows."""
    head = f"{'recipe':<7} {'model':<18} {'params':>9} {'eval_mse':>9} {'eval_mae':>9} {'fit_s':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['recipe']:<7} {r['model']:<18} {r['params']:>9,} {r['eval_mse']:>9.4f} "
            f"{r['eval_mae']:>9.4f} {r['fit_seconds']:>7.1f}"
        )
    return "\n".join(lines)


def compare(rows: list[dict], recipe: str) -> dict:
    """Parameter ratio and relative MAE of the memory-efficient model vs the full one."""
    full = next(r for r in rows if r["recipe"] == recipe and r["model"] == "full")
    efficient = next(r for r in rows if r["recipe"] == recipe and r["model"] != "full")
    return {
        "param_ratio": full["params"] / efficient["params"],
        "mae_increase": efficient["eval_mae"] / full["eval_mae"] - 1.0,
    }


def plot_curves(curves: dict[str, dict], path: str) -> None:
    """Train and eval/validation loss per epoch of every run, one panel per recipe."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("Plotting needs matplotlib: pip install 'towerrec[plot]'") from exc
    recipes = sorted({k.split("/")[0] for k in curves})
    fig, axes = plt.subplots(1, len(recipes), figsize=(6 * len(recipes), 4), squeeze=False)
    for ax, recipe in zip(axes[0], recipes, strict=True):
        for key, hist in curves.items():
            if not key.startswith(recipe + "/"):
                continue
            name = key.split("/", 1)[1]
            epochs = range(1, len(hist["loss"]) + 1)
            held_out = "eval" if recipe == "parity" else "validation"
            (line,) = ax.plot(epochs, hist["loss"], label=f"{name} train")
            ax.plot(
                epochs, hist["val_loss"], "--", color=line.get_color(), label=f"{name} {held_out}"
            )
        title = "parity: MSE" if recipe == "parity" else "best: MSE (train adds the L2 term)"
        ax.set(title=title, xlabel="epoch", ylabel="loss")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", required=True, help="folder with the extracted MovieLens files"
    )
    parser.add_argument(
        "--variant", default=None, help="100k or 1m (default: from the folder name)"
    )
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--epochs", type=int, default=3, help="parity epochs (Keras: 3)")
    parser.add_argument("--best-epochs", type=int, default=BestRecipe.max_epochs)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--plot", default=None, help="PNG file for the loss curves")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--skip-best", action="store_true", help="run only the parity rows")
    args = parser.parse_args(argv)

    variant = args.variant or ("1m" if "1m" in Path(args.data_dir).name else "100k")
    # Batch-128 steps are tiny ops: intra-op threads cost more in synchronisation than they
    # save (about 1 ms/step on one thread here, far more on two when the cores are shared).
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    data = load_data(args.data_dir, variant, args.seed)
    n_train, n_eval = len(data.train["rating"]), len(data.eval["rating"])
    print(
        f"MovieLens {variant}: {data.num_users} users, {data.num_movies} movies, "
        f"{n_train} train / {n_eval} eval ratings",
        file=sys.stderr,
    )
    rows, curves = run_parity(data, args.epochs, args.seed)
    recipe = BestRecipe(max_epochs=args.best_epochs)
    if not args.skip_best:
        more_rows, more_curves = run_best(data, recipe, args.seed)
        rows += more_rows
        curves.update(more_curves)
    summary = {
        r: compare(rows, r) for r in ("parity", "best") if any(x["recipe"] == r for x in rows)
    }
    result = {
        "dataset": f"ml-{variant}",
        "seed": args.seed,
        "train_ratings": n_train,
        "eval_ratings": n_eval,
        "best_recipe": recipe.__dict__,
        "torch_threads": torch.get_num_threads(),
        "rows": rows,
        "comparison": summary,
        "parity_params_at_ml1m_sizes": parity_params(6040, 3706),
        "curves": curves,
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(rows))
    for name, cmp in summary.items():
        print(
            f"{name}: {cmp['param_ratio']:.2f}x fewer parameters, "
            f"eval MAE {100 * cmp['mae_increase']:+.2f}% vs full"
        )
    at_1m = result["parity_params_at_ml1m_sizes"]
    print(
        f"(the parity models at MovieLens-1M sizes: {at_1m['full']:,} vs "
        f"{at_1m['qr_user+md_movie']:,} parameters, "
        f"{at_1m['full'] / at_1m['qr_user+md_movie']:.2f}x)"
    )
    if args.plot:
        plot_curves(curves, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
