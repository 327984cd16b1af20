"""`towerrec datasets download|info VARIANT`: fetch a MovieLens release, or describe it."""

from __future__ import annotations

import argparse
import datetime as _dt
from typing import Any

__all__ = ["NAME", "describe", "register", "run"]

NAME = "datasets"
HELP = "download a MovieLens release into the cache, or print its counts and ranges"

#: towerrec.data.VARIANTS, written out so that `towerrec --help` does not import pandas.
VARIANTS = ("100k", "1m", "20m", "25m", "latest-small")


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `datasets` subcommand and its `download` and `info` actions."""
    parser = subparsers.add_parser(
        NAME,
        help=HELP,
        description=(
            "MovieLens releases: 'download' fetches one over HTTPS into the cache, checks its "
            "pinned SHA-256 and extracts it (once); 'info' prints its numbers of users, items "
            "and ratings, the rating range and the time range."
        ),
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", title="actions")
    actions.required = True
    download = actions.add_parser(
        "download",
        help="download and extract a release into the cache (skipped if already there)",
        description="Download a MovieLens release, verify its checksum and extract it into "
        "the cache: --cache-dir, else $TOWERREC_CACHE, else ~/.cache/towerrec.",
    )
    download.add_argument("variant", choices=VARIANTS, metavar="VARIANT", help=_variants_help())
    download.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="the cache folder (default: $TOWERREC_CACHE or ~/.cache/towerrec)",
    )
    download.set_defaults(func=run)
    info = actions.add_parser(
        "info",
        help="print counts of users, items, ratings, the rating range and the time range",
        description="Read a MovieLens release (from --data-dir, else the cache; never "
        "downloads) and print its numbers of users, items and ratings, its rating range and "
        "its time range.",
    )
    info.add_argument("variant", choices=VARIANTS, metavar="VARIANT", help=_variants_help())
    info.add_argument(
        "--data-dir", metavar="DIR", help="a folder holding the release's files (or its parent)"
    )
    info.add_argument("--cache-dir", metavar="DIR", help="the cache folder to look in")
    info.set_defaults(func=run)
    parser.set_defaults(func=run)
    return parser


def _variants_help() -> str:
    return f"the MovieLens release: {', '.join(VARIANTS)}"


def describe(ml: Any) -> list[tuple[str, str]]:
    """A loaded MovieLens -> (label, value) lines: counts, rating range, time range."""
    r = ml.ratings
    users, items, n = r["user_id"].nunique(), r["item_id"].nunique(), len(r)
    values = sorted(float(v) for v in r["rating"].unique())
    first, last = (
        _dt.datetime.fromtimestamp(int(t), _dt.UTC).strftime("%Y-%m-%d")
        for t in (r["timestamp"].min(), r["timestamp"].max())
    )
    steps = ", ".join(f"{v:g}" for v in values) if len(values) <= 12 else f"{len(values)} values"
    return [
        ("folder", str(ml.path)),
        (
            "users",
            f"{users:,} (with ratings; {len(ml.users):,} in the users file)"
            if ml.users is not None
            else f"{users:,}",
        ),
        ("items", f"{items:,} rated ({len(ml.items):,} in the items file)"),
        ("ratings", f"{n:,} (density {n / max(users * items, 1):.2%})"),
        (
            "rating range",
            f"{values[0]:g} to {values[-1]:g} (values: {steps}), mean "
            f"{float(r['rating'].mean()):.3f}",
        ),
        ("time range", f"{first} to {last} (UTC)"),
    ]


def run(args: argparse.Namespace) -> int:
    """Download or describe the release."""
    from towerrec.data.movielens import REMOTES, cache_root, download_movielens, movielens

    if args.action == "download":
        folder = cache_root(args.cache_dir) / REMOTES[args.variant].folder
        if folder.is_dir() and any(folder.iterdir()):  # extraction is atomic: never partial
            print(f"MovieLens {args.variant} is already in the cache: {folder}")
            return 0
        path = download_movielens(args.variant, cache_dir=args.cache_dir)
        print(f"Downloaded MovieLens {args.variant} into {path}")
        return 0
    ml = movielens(
        args.variant,
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
        download=False,
        progress=False,
    )
    print(f"MovieLens {args.variant}")
    lines = describe(ml)
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        print(f"  {label:<{width}}  {value}")
    return 0
