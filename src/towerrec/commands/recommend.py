"""`towerrec recommend BUNDLE --user 42 -k 10`: print recommendations from a bundle."""

from __future__ import annotations

import argparse
import json
from typing import Any

from towerrec.commands._args import positive_int

__all__ = ["NAME", "format_table", "register", "run"]

NAME = "recommend"
HELP = "print top-k recommendations (or similar items) from a bundle"


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `recommend` subcommand."""
    parser = subparsers.add_parser(
        NAME,
        help=HELP,
        description=(
            "Print the top-k items for one or more users (titles and scores as a table), or the "
            "items most similar to an item. Users unknown to the model get the most popular "
            "items, marked as such. Ids are converted to the type the model was trained on."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("bundle", metavar="BUNDLE", help="a bundle folder (towerrec export)")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "-u",
        "--user",
        action="append",
        metavar="USER_ID",
        default=argparse.SUPPRESS,
        help="a raw user id; repeat for several users",
    )
    target.add_argument(
        "--similar-to",
        metavar="ITEM_ID",
        default=argparse.SUPPRESS,
        help="show the items most similar to this item instead (cosine of embeddings)",
    )
    parser.add_argument(
        "-k", type=positive_int, default=10, help="number of items (1 to the number of items)"
    )
    parser.add_argument(
        "--include-seen",
        action="store_true",
        help="keep items the user interacted with in training (excluded by default)",
    )
    parser.add_argument(
        "--feature",
        action="append",
        metavar="COLUMN=VALUE",
        default=[],
        help="a raw query column for towers that read more than the user id, e.g. "
        "--feature timestamp=879024327 (the same value for every --user; repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.set_defaults(func=run)
    return parser


def format_table(result: Any, heading: str) -> str:
    """One Recommendation -> a heading line and a rank / id / score / title table (the
    title column is left empty where the ids are the titles)."""
    ids = [str(i) for i in result.ids]
    scores = [f"{s:.4f}" if result.fallback is None else f"{s:.0f}" for s in result.scores]
    titles = ["" if t is None else str(t) for t in result.titles]
    if titles == ids:
        titles = [""] * len(ids)
    score_name = "count" if result.fallback == "popular" else "score"
    id_w = max([len("item_id"), *map(len, ids)])
    score_w = max([len(score_name), *map(len, scores)])
    rank_w = max(4, len(str(len(ids))))
    lines = [heading, f"{'rank':>{rank_w}}  {'item_id':<{id_w}}  {score_name:>{score_w}}  title"]
    for rank, (i, s, t) in enumerate(zip(ids, scores, titles, strict=True), start=1):
        lines.append(f"{rank:>{rank_w}}  {i:<{id_w}}  {s:>{score_w}}  {t}".rstrip())
    return "\n".join(lines)


def _feature_columns(pairs: list[str], rows: int) -> dict[str, list[Any]]:
    """["timestamp=879024327", ...] -> {"timestamp": [879024327] * rows}; numbers are parsed
    as int, then float, else kept as text."""
    out: dict[str, list[Any]] = {}
    for pair in pairs:
        column, sep, text = pair.partition("=")
        if not sep or not column:
            raise ValueError(
                f"--feature takes COLUMN=VALUE, e.g. timestamp=879024327. Got {pair!r}."
            )
        value: Any = text
        for parse in (int, float):
            try:
                value = parse(text)
                break
            except ValueError:
                continue
        out[column] = [value] * rows
    return out


def run(args: argparse.Namespace) -> int:
    """Load the bundle, query it and print the results."""
    from towerrec.serving.recommender import Recommender

    rec = Recommender.load(args.bundle)
    if getattr(args, "similar_to", None) is not None:
        results = [rec.similar_items(args.similar_to, args.k)]
    elif args.feature:
        columns = _feature_columns(args.feature, len(args.user))
        column = rec.bundle.feature_space.column_of(rec.bundle.user_feature or "user_id")
        query = {column: [rec.coerce_user_id(u) for u in args.user], **columns}
        results = rec.recommend(query, args.k, not args.include_seen)
    else:
        results = rec.recommend_rows(args.user, args.k, not args.include_seen)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2, ensure_ascii=False))
        return 0
    blocks = []
    for r in results:
        if r.item_id is not None:
            heading = f"Items similar to item {r.item_id}:"
        elif r.fallback == "popular":
            heading = f"User {r.user_id} is unknown to the model; the most popular items:"
        else:
            heading = f"Top {len(r)} for user {r.user_id}:"
        blocks.append(format_table(r, heading))
    print("\n\n".join(blocks))
    return 0
