"""`towerrec quickstart`: MovieLens-100K -> a trained, evaluated, servable recommender."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

__all__ = ["NAME", "QUICKSTART", "REFERENCE", "register", "run"]

NAME = "quickstart"
HELP = "train the best joint retrieval + rating model on MovieLens-100K, end to end"

#: The quickstart's config (configs/quickstart.toml holds the same).
QUICKSTART: dict[str, Any] = {
    "task": "multitask",
    "recipe": "best",
    "name": "quickstart",
    "variant": "100k",
    "seed": 42,
    "weights": {"rating": 1.0, "retrieval": 1.0},
}

#: The TFRS multitask tutorial's published numbers for weights (1, 1).
REFERENCE = {"top_100": 0.235, "rmse": 1.131}
ROWS = ("top_1", "top_5", "top_10", "top_50", "top_100", "excl_top_100", "rmse")
USERS_SHOWN = 3


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `quickstart` subcommand."""
    parser = subparsers.add_parser(
        NAME,
        help=HELP,
        description=(
            "Load MovieLens-100K (downloaded once into the cache, or read from --data-dir),\n"
            "train the best joint retrieval + rating recipe (towerrec.recipes.multitask,\n"
            "recipe 'best'), print its test metrics next to the TFRS multitask tutorial's\n"
            "published numbers and the top 5 movies for a few users, and write a run folder\n"
            "with the config, checkpoints, history, metrics, plots and a serving bundle."
        ),
        epilog="next:\n  towerrec recommend RUN_DIR/bundle --user 42\n"
        "  towerrec serve RUN_DIR/bundle",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        default=None,
        help="a folder holding the ml-100k files (u.data, u.item, ...) or its parent; "
        "default: the cache, downloading once",
    )
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        default=None,
        help="the download cache (default: $TOWERREC_CACHE or ~/.cache/towerrec)",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        default=None,
        help="the run folder to write (default: runs/quickstart-<UTC time>)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing run folder at --output"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars or per-epoch lines"
    )
    parser.set_defaults(func=run)
    return parser


def _liked(prep: Any, user: Any, n: int = 3) -> list[str]:
    """The user's best-rated training items (titles), for context."""
    frame = prep.data.train
    rows = frame[frame["user_id"] == user].sort_values("rating", ascending=False, kind="stable")
    return [str(t) for t in rows["title"].head(n)]


def _show_users(result: Any) -> None:
    from towerrec.serving import Recommender

    if result.bundle is None:
        return
    rec = Recommender.load(result.bundle)
    users = sorted(result.prepared.data.test["user_id"].unique().tolist())[:USERS_SHOWN]
    for user in users:
        top = rec.recommend(user, k=5)
        print(f"\nUser {user} rated highly: {'; '.join(_liked(result.prepared, user))}")
        print(f"Top 5 for user {user} (movies they have not rated):")
        for rank, (item, title) in enumerate(zip(top.ids, top.titles, strict=True), start=1):
            print(f"  {rank}. {title if title is not None else item}")


def run(args: argparse.Namespace) -> int:
    """Train, print the table and the recommendations, say where everything went."""
    from towerrec.config import resolve
    from towerrec.data.movielens import MovieLensNotFoundError
    from towerrec.runs import format_metrics, train

    config = dict(QUICKSTART)
    if args.data_dir is not None:
        config["data_dir"] = args.data_dir
    if args.cache_dir is not None:
        config["cache_dir"] = args.cache_dir
    config = resolve(config)
    log = (lambda text: None) if args.quiet else (lambda text: print(text, file=sys.stderr))
    started = time.perf_counter()
    try:
        result = train(
            config, args.output, overwrite=args.overwrite, progress=not args.quiet, log=log
        )
    except MovieLensNotFoundError as e:
        hint = (
            "" if args.data_dir else " With the files on disk: towerrec quickstart --data-dir DIR."
        )
        raise MovieLensNotFoundError(f"{e}{hint}") from None
    seconds = time.perf_counter() - started
    m = result.metrics
    n_test = len(next(iter(result.prepared.test.values())))
    print(
        f"\nMovieLens-100K, joint retrieval + rating ({len(result.history)} epochs, "
        f"{seconds:.0f} s in all); test split of {n_test:,} ratings:"
    )
    print(format_metrics({"towerrec": m, "TFRS tutorial": REFERENCE}, rows=list(ROWS)))
    print(
        "(top-k: share of test ratings whose movie ranks in the user's top k of all movies; "
        "'seen excluded' ranks only movies the user did not rate in training)"
    )
    _show_users(result)
    print(f"\nRun folder: {result.path}")
    print("  metrics.json, history.csv, plots/*.png, config.toml, checkpoints/, bundle/")
    if result.bundle is not None:
        print(f"Next: towerrec recommend {result.bundle} --user 42")
        print(f"      towerrec serve {result.bundle}")
    return 0
