"""Memory-efficient embeddings on MovieLens: the Keras recipe (parity) and a tuned recipe (best).

    python benchmarks/memory_efficient.py --data-dir ../shared/data/ml-100k --out me.json

Protocol (the Keras example "Memory-efficient embeddings for recommendation systems"): each
rating goes to train with probability 0.85, else to eval (seeded). Prediction =
5 * sigmoid(user · movie) from 64-d embeddings; MSE loss, MAE metric.

- `parity` rows: Adam lr 1e-3, batch 128, 3 epochs. Baseline: full user and movie tables.
  Memory-efficient: quotient-remainder users (num_buckets = users // 50, product combiner) and
  mixed-dimension movies (popularity blocks: top 400 at 64, next 1,300 at 32, the rest at 16,
  each projected to 64).
- `best` rows: both models get user/movie/global biases, L2 on the looked-up vectors and
  biases, Adam with a larger batch, and up to `--best-epochs` epochs with early stopping on a
  validation slice carved from the train split (never the eval split). The memory-efficient
  model uses mixed-dimension tables for users and movies, blocks and widths from train counts by
  the alpha-power rule.

Writes `{"rows": [{recipe, model, params, eval_mse, eval_mae, fit_seconds, ...}], ...}`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

import towerrec as tr
from towerrec.data.movielens import movielens
from towerrec.data.splits import bernoulli_split
from towerrec.features.lookup import Lookup
from towerrec.layers.embedding import Embedding
from towerrec.layers.memory import MixedDimEmbedding, QREmbedding, frequency_blocks

Dataset = dict[str, torch.Tensor]


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


@dataclass
class Data:
    """Encoded splits and id statistics."""

    train: Dataset
    eval: Dataset
    num_users: int
    num_movies: int
    movie_counts_all: torch.Tensor  # [num_movies] ratings per movie id, all ratings (as Keras)
    user_counts_train: torch.Tensor  # [num_users] ratings per user id, train split only
    movie_counts_train: torch.Tensor  # [num_movies] ratings per movie id, train split only


def load_data(data_dir: str, variant: str, seed: int) -> Data:
    """Read MovieLens, split each rating to train with probability 0.85, map ids with Lookups.

    As in the Keras example, the vocabularies cover every user and movie in the ratings (no OOV
    bucket): ids are ordered by rating count over all ratings, most rated first.
    """
    ratings = movielens(variant, data_dir=data_dir, download=False, progress=False).ratings
    users = Lookup(num_oov_buckets=0).fit(ratings["user_id"])
    movies = Lookup(num_oov_buckets=0).fit(ratings["item_id"])
    train_df, eval_df = bernoulli_split(ratings, train=0.85, seed=seed)

    def encode(df: pd.DataFrame) -> Dataset:
        return {
            "user_id": users.transform(df["user_id"]),
            "movie_id": movies.transform(df["item_id"]),
            "rating": torch.tensor(df["rating"].to_numpy(dtype=np.float32)),
        }

    train, evaluation = encode(train_df), encode(eval_df)
    return Data(
        train=train,
        eval=evaluation,
        num_users=users.size,
        num_movies=movies.size,
        movie_counts_all=movies.id_counts(),
        user_counts_train=torch.bincount(train["user_id"], minlength=users.size),
        movie_counts_train=torch.bincount(train["movie_id"], minlength=movies.size),
    )


def carve_validation(train: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Split a train dict into (fit, validation) by a seeded permutation of its rows."""
    n = len(train["rating"])
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cut = n - round(fraction * n)
    fit_rows, val_rows = order[:cut].sort().values, order[cut:].sort().values
    return (
        {k: v[fit_rows] for k, v in train.items()},
        {k: v[val_rows] for k, v in train.items()},
    )


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


class RatingModel(tr.Model):
    """Rating = 5 * sigmoid(user · movie [+ user bias + movie bias + global bias]).

    `l2` penalises the squared norms of the looked-up user and movie vectors (and biases) of
    each training batch, so the same regulariser applies to any embedding layer.
    """

    def __init__(
        self,
        user_model: nn.Module,
        movie_model: nn.Module,
        *,
        biases: bool = False,
        l2: float = 0.0,
        mean_rating: float = 3.5,
    ) -> None:
        super().__init__()
        self.user_model = user_model
        self.movie_model = movie_model
        self.l2 = l2
        self.user_bias: nn.Embedding | None = None
        self.movie_bias: nn.Embedding | None = None
        if biases:
            num_users = user_model.num_embeddings
            num_movies = movie_model.num_embeddings
            self.user_bias = nn.Embedding(num_users, 1)
            self.movie_bias = nn.Embedding(num_movies, 1)
            nn.init.zeros_(self.user_bias.weight)
            nn.init.zeros_(self.movie_bias.weight)
            p = min(max(mean_rating / 5.0, 1e-3), 1 - 1e-3)
            self.global_bias = nn.Parameter(torch.tensor(math.log(p / (1 - p))))
        self.task = tr.tasks.Ranking("mse", metrics=[tr.metrics.MSE(), tr.metrics.MAE()])

    def predict(self, batch: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch -> ([B] predicted ratings, scalar L2 penalty)."""
        u = self.user_model(batch["user_id"])
        m = self.movie_model(batch["movie_id"])
        logits = (u * m).sum(-1)
        penalty = u.pow(2).sum(-1).mean() + m.pow(2).sum(-1).mean()
        if self.user_bias is not None and self.movie_bias is not None:
            bu = self.user_bias(batch["user_id"]).squeeze(-1)
            bm = self.movie_bias(batch["movie_id"]).squeeze(-1)
            logits = logits + bu + bm + self.global_bias
            penalty = penalty + bu.pow(2).mean() + bm.pow(2).mean()
        return 5.0 * torch.sigmoid(logits), penalty

    def compute_loss(self, batch: Dataset, training: bool = False) -> torch.Tensor:
        """Batch -> MSE (+ l2 * penalty while training); metrics update outside training."""
        prediction, penalty = self.predict(batch)
        loss = self.task(batch["rating"], prediction, compute_metrics=not training)
        if training and self.l2 > 0:
            loss = loss + self.l2 * penalty
        return loss


def count_params(model: nn.Module) -> int:
    """Number of parameters (each counted once)."""
    return sum(p.numel() for p in model.parameters())


KERAS_MOVIE_BLOCKS = (400, 1300)  # then "the rest"
KERAS_MOVIE_DIMS = (64, 32, 16)


def keras_movie_blocks(num_movies: int) -> tuple[list[int], list[int]]:
    """The Keras example's movie blocks (top 400, next 1,300, rest), cut to the catalogue."""
    sizes, dims, start = [], [], 0
    for size, dim in zip([*KERAS_MOVIE_BLOCKS, num_movies], KERAS_MOVIE_DIMS, strict=True):
        size = min(size, num_movies - start)
        if size > 0:
            sizes.append(size)
            dims.append(dim)
            start += size
    return sizes, dims


def parity_models(data: Data, dim: int = 64) -> dict[str, Callable[[], RatingModel]]:
    """Builders of the Keras example's baseline and memory-efficient models."""
    sizes, dims = keras_movie_blocks(data.num_movies)
    # Lookup ids are ranks by rating count over all ratings, the order the Keras example sorts
    # movies in for its blocks; frequency_blocks gives the same ranking.
    rank_of_id, _ = frequency_blocks(data.movie_counts_all, block_sizes=sizes)
    assert torch.equal(rank_of_id, torch.arange(data.num_movies))
    return {
        "full": lambda: RatingModel(
            Embedding(data.num_users, dim), Embedding(data.num_movies, dim)
        ),
        "qr_user+md_movie": lambda: RatingModel(
            QREmbedding(data.num_users, dim, max(1, data.num_users // 50), combiner="mul"),
            MixedDimEmbedding(sizes, dims, dim),
        ),
    }


def parity_params(num_users: int, num_movies: int, dim: int = 64) -> dict[str, int]:
    """Parameters of the two parity models for a catalogue of this size (no data needed).

    At MovieLens-1M sizes (6,040 users, 3,706 movies): 623,744 (full, as Keras) and 113,312
    (Keras counts 117,968: its quotient table has num_buckets = 120 rows where 51 are used,
    each block table has an extra OOV row, and each projection a bias: 4,416 + 112 + 128).
    """
    sizes, dims = keras_movie_blocks(num_movies)
    user = QREmbedding(num_users, dim, max(1, num_users // 50), combiner="mul")
    movie = MixedDimEmbedding(sizes, dims, dim)
    return {
        "full": (num_users + num_movies) * dim,
        "qr_user+md_movie": count_params(user) + count_params(movie),
    }


@dataclass(frozen=True)
class BestRecipe:
    """Training recipe shared by the two `best` models.

    Chosen on the validation slice (seed 42, ML-100K): `l2` from {0.02, 0.05, 0.1, 0.2} (0.05
    best for the full model), then the mixed-dimension layout from a few (base_dim, alpha)
    pairs that fit a fifth of the full model's parameters: (16, 0.4), (24, 0.6), (32, 0.8).
    """

    lr: float = 2e-3
    batch_size: int = 256
    max_epochs: int = 40
    patience: int = 3
    l2: float = 0.05
    validation_fraction: float = 0.05
    # memory-efficient layout: equal-rating-mass blocks, alpha-power widths
    num_blocks: int = 4
    alpha: float = 0.6
    base_dim: int = 24
    min_dim: int = 1
    full_dim: int = 64


def best_models(data: Data, recipe: BestRecipe) -> dict[str, Callable[[], RatingModel]]:
    """Builders: full 64-d tables vs mixed-dimension users and movies, biases and L2 in both."""
    mean = float(data.train["rating"].mean())

    def full() -> RatingModel:
        return RatingModel(
            Embedding(data.num_users, recipe.full_dim),
            Embedding(data.num_movies, recipe.full_dim),
            biases=True,
            l2=recipe.l2,
            mean_rating=mean,
        )

    def md(counts: torch.Tensor) -> MixedDimEmbedding:
        return MixedDimEmbedding.from_counts(
            counts,
            recipe.base_dim,
            num_blocks=recipe.num_blocks,
            alpha=recipe.alpha,
            min_dim=recipe.min_dim,
        )

    def efficient() -> RatingModel:
        return RatingModel(
            md(data.user_counts_train),
            md(data.movie_counts_train),
            biases=True,
            l2=recipe.l2,
            mean_rating=mean,
        )

    return {"full": full, "md_user+md_movie": efficient}


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------


def run_parity(data: Data, epochs: int, seed: int) -> tuple[list[dict], dict[str, dict]]:
    """Train both parity models with the Keras recipe; rows and per-epoch curves."""
    rows, curves = [], {}
    for name, build in parity_models(data).items():
        torch.manual_seed(seed)
        model = build()
        trainer = tr.Trainer(
            optimizer=tr.optim.Adam(lr=1e-3),
            batch_size=128,
            epochs=epochs,
            seed=seed,
            progress=False,
        )
        history = trainer.fit(model, data.train, validation=data.eval)
        result = trainer.evaluate(model, data.eval)
        rows.append(_row("parity", name, model, result, trainer.fit_seconds, trainer.epoch))
        curves[f"parity/{name}"] = history.history
        _log(rows[-1])
    return rows, curves


def run_best(data: Data, recipe: BestRecipe, seed: int) -> tuple[list[dict], dict[str, dict]]:
    """Train both best models with early stopping on a validation slice of the train split."""
    fit, validation = carve_validation(data.train, recipe.validation_fraction, seed)
    rows, curves = [], {}
    for name, build in best_models(data, recipe).items():
        torch.manual_seed(seed)
        model = build()
        stop = tr.EarlyStopping(monitor="val_loss", patience=recipe.patience)
        trainer = tr.Trainer(
            optimizer=tr.optim.Adam(lr=recipe.lr),
            batch_size=recipe.batch_size,
            epochs=recipe.max_epochs,
            seed=seed,
            progress=False,
            callbacks=[stop],
        )
        history = trainer.fit(model, fit, validation=validation)
        result = trainer.evaluate(model, data.eval)
        row = _row("best", name, model, result, trainer.fit_seconds, trainer.epoch)
        row["best_epoch"] = stop.best_epoch
        row["val_mse"] = stop.best
        rows.append(row)
        curves[f"best/{name}"] = history.history
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
