"""Small MovieLens-like data with a learnable latent-factor structure, and writers of the real
MovieLens file formats (for tests, examples and quick experiments without downloads).

```python
folder = write_movielens(tmp_path, "100k", num_users=30, num_items=20, num_ratings=300)
ml = movielens("100k", data_dir=folder)        # == synthetic_movielens("100k", ...) in content
```
"""

from __future__ import annotations

import csv
import io
import os
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from towerrec.data.movielens import GENRES_100K, REMOTES, MovieLens

__all__ = ["synthetic_interactions", "synthetic_movielens", "write_movielens"]

# fmt: off
# Title words: latin-1 safe (the 100k and 1m files are latin-1), some accented, some with an
# apostrophe; titles also get MovieLens' ", The" suffix, so CSV titles need quoting.
_WORDS = (
    "Night", "River", "Star", "Love", "Dragon's", "Café", "Señor", "Storm", "Garden", "Shadow",
    "Summer", "City", "Ghost", "Island", "Secret", "Journey", "King", "Moon", "Winter", "Heart",
    "Blue", "Lost", "Return", "Dark", "Über", "Angel", "Fire", "Road",
)
_GENRES = GENRES_100K[1:]  # the 18 real genres (1m uses the same names)
_OCCUPATIONS_100K = (
    "administrator", "artist", "doctor", "educator", "engineer", "entertainment", "executive",
    "healthcare", "homemaker", "lawyer", "librarian", "marketing", "none", "other", "programmer",
    "retired", "salesman", "scientist", "student", "technician", "writer",
)
# ml-1m occupation codes (its README) for each ml-100k occupation name.
_OCCUPATION_CODE_1M = {
    "administrator": 3, "artist": 2, "doctor": 6, "educator": 1, "engineer": 17,
    "entertainment": 0, "executive": 7, "healthcare": 6, "homemaker": 9, "lawyer": 11,
    "librarian": 0, "marketing": 14, "none": 19, "other": 0, "programmer": 12, "retired": 13,
    "salesman": 14, "scientist": 15, "student": 4, "technician": 17, "writer": 20,
}
# fmt: on
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _check_int(name: str, value: object, minimum: int) -> int:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < minimum:
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(
            f"The '{name}' parameter of synthetic_interactions must be {kind}. "
            f"Got {value!r} instead."
        )
    return int(value)


def _titles(rng: np.random.Generator, n: int) -> list[str]:
    titles: list[str] = []
    seen: set[str] = set()
    for _ in range(n):
        while True:
            words = rng.choice(len(_WORDS), size=int(rng.integers(1, 4)), replace=False)
            name = " ".join(_WORDS[w] for w in words)
            if rng.random() < 0.2:
                name += ", The"
            title = f"{name} ({int(rng.integers(1930, 1999))})"
            if title not in seen:
                break
        seen.add(title)
        titles.append(title)
    return titles


def synthetic_interactions(
    num_users: int = 50,
    num_items: int = 40,
    num_ratings: int = 2000,
    seed: int = 0,
    dim: int = 4,
) -> MovieLens:
    """A MovieLens-like dataset whose ratings follow a hidden latent-factor model.

    Users and items get `dim`-dimensional factors; which (user, item) pairs are rated is drawn
    without replacement with probability growing with their affinity and the item's
    popularity (so retrieval models can learn it), and ratings 1..5 are affinity + biases +
    noise, rounded (so rating models can learn them). Every user and every item is rated at least once when `num_ratings` allows.
    Each pair is rated at most once, so `num_ratings <= num_users * num_items`.

    Returns `MovieLens(variant="synthetic", path=None, ...)` with ratings (`user_id`,
    `item_id` 1-based int64, `rating` float32, `timestamp` int64, in random order), items
    (`item_id`, `title` like "Night River, The (1994)", `genres` like "Comedy|Drama") and
    users (`user_id`, `age`, `gender`, `occupation` (ml-100k names), `zip_code`).
    """
    num_users = _check_int("num_users", num_users, 1)
    num_items = _check_int("num_items", num_items, 1)
    num_ratings = _check_int("num_ratings", num_ratings, 0)
    dim = _check_int("dim", dim, 1)
    if num_ratings > num_users * num_items:
        raise ValueError(
            f"The 'num_ratings' parameter of synthetic_interactions must be at most "
            f"num_users * num_items = {num_users * num_items} (each pair is rated once). "
            f"Got {num_ratings} instead."
        )
    rng = np.random.default_rng(seed)
    user_factors = rng.normal(size=(num_users, dim))
    item_factors = rng.normal(size=(num_items, dim))
    user_bias = rng.normal(0.0, 0.3, size=num_users)
    item_bias = rng.normal(0.0, 0.5, size=num_items)
    affinity = (user_factors @ item_factors.T / np.sqrt(dim)).ravel()

    # Weighted sampling of pairs without replacement (Gumbel top-k), after a covering set.
    popularity = np.tile(2.0 * item_bias, num_users)  # popular items are rated more often
    keys = 1.5 * affinity + popularity + rng.gumbel(size=affinity.size)
    cover = max(num_users, num_items)
    if num_ratings >= cover:
        k = np.arange(cover)
        keys[(k % num_users) * num_items + rng.permutation(num_items)[k % num_items]] = np.inf
    chosen = np.sort(np.argpartition(-keys, num_ratings - 1)[:num_ratings]) if num_ratings else []
    pairs = rng.permutation(np.asarray(chosen, dtype=np.int64))
    users, items = np.divmod(pairs, num_items)
    score = 2.7 + 1.2 * affinity[pairs] + user_bias[users] + item_bias[items]
    rating = np.clip(np.rint(score + rng.normal(0.0, 0.5, size=pairs.size)), 1, 5)
    timestamp = rng.integers(874_724_710, 893_286_638, size=pairs.size, dtype=np.int64)
    ratings = pd.DataFrame(
        {
            "user_id": users.astype(np.int64) + 1,
            "item_id": items.astype(np.int64) + 1,
            "rating": rating.astype(np.float32),
            "timestamp": timestamp,
        }
    )

    genre_ids = [
        np.sort(rng.choice(len(_GENRES), size=int(rng.integers(1, 4)), replace=False))
        for _ in range(num_items)
    ]
    item_table = pd.DataFrame(
        {
            "item_id": np.arange(1, num_items + 1, dtype=np.int64),
            "title": pd.array(_titles(rng, num_items), dtype="str"),
            "genres": pd.array(["|".join(_GENRES[g] for g in ids) for ids in genre_ids], "str"),
        }
    )
    zips = rng.integers(0, 100_000, size=num_users)
    user_table = pd.DataFrame(
        {
            "user_id": np.arange(1, num_users + 1, dtype=np.int64),
            "age": rng.integers(7, 74, size=num_users, dtype=np.int64),
            "gender": pd.array(rng.choice(["M", "F"], size=num_users).tolist(), dtype="str"),
            "occupation": pd.array(
                [_OCCUPATIONS_100K[i] for i in rng.integers(0, 21, size=num_users)], dtype="str"
            ),
            "zip_code": pd.array([f"{z:05d}" for z in zips], dtype="str"),
        }
    )
    return MovieLens("synthetic", None, ratings, item_table, user_table)


def _age_group_1m(age: int) -> int:
    for bound, group in ((18, 1), (25, 18), (35, 25), (45, 35), (50, 45), (56, 50)):
        if age < bound:
            return group
    return 56


def _str(values: list[str]) -> pd.api.extensions.ExtensionArray:
    return pd.array(values, dtype="str")


def synthetic_movielens(variant: str, **kwargs: int) -> MovieLens:
    """The synthetic dataset exactly as `movielens(variant, data_dir=write_movielens(folder,
    variant, **kwargs))` loads it (`path` aside): the variant's columns, dtypes and row order.

    `kwargs` are those of `synthetic_interactions`. 100k adds `release_date`,
    `video_release_date` and `imdb_url`; 1m turns ages into its age groups and occupations into
    its codes; the CSV releases ("20m", "25m", "latest-small") have no users and add `imdb_id`
    and `tmdb_id` (empty for every tenth item), with ratings sorted by user then item.
    """
    if variant not in REMOTES:
        raise ValueError(
            f"The 'variant' parameter of synthetic_movielens must be one of "
            f"{', '.join(repr(v) for v in REMOTES)}. Got {variant!r} instead."
        )
    base = synthetic_interactions(**kwargs)
    ratings, items, users = base.ratings, base.items, base.users
    assert users is not None
    ids = items["item_id"].to_numpy()
    if variant == "100k":
        years = [title[-5:-1] for title in items["title"]]
        items = items.assign(
            release_date=_str(
                [f"{1 + i % 28:02d}-{_MONTHS[i % 12]}-{y}" for i, y in zip(ids, years, strict=True)]
            ),
            video_release_date=_str([""] * len(items)),
            imdb_url=_str(
                [
                    "http://us.imdb.com/M/title-exact?" + urllib.parse.quote(t, safe="/():,'")
                    for t in items["title"]
                ]
            ),
        )
    elif variant == "1m":
        ratings = ratings.sort_values("user_id", kind="stable", ignore_index=True)
        users = users.assign(
            age=np.array([_age_group_1m(a) for a in users["age"]], dtype=np.int64),
            occupation=np.array(
                [_OCCUPATION_CODE_1M[o] for o in users["occupation"]], dtype=np.int64
            ),
        )
    else:
        ratings = ratings.sort_values(["user_id", "item_id"], kind="stable", ignore_index=True)
        items = items.assign(
            imdb_id=_str([f"{100_000 + 7 * i:07d}" for i in ids]),
            tmdb_id=pd.array([None if i % 10 == 0 else 800 + 3 * i for i in ids], dtype="Int64"),
        )
        users = None
    return MovieLens(variant, None, ratings, items, users)


def _lines(rows: Iterable[object]) -> str:
    return "".join(f"{row}\n" for row in rows)


def write_movielens(folder: str | os.PathLike[str], variant: str, **kwargs: int) -> Path:
    """Write a synthetic dataset in the real file format of `variant` into `folder/ml-<variant>`
    and return that folder (what `movielens(variant, data_dir=...)` accepts).

    Formats: 100k writes `u.data` (tab-separated), `u.item`, `u.user` (pipe-separated, 19 genre
    flags), `u.genre`, `u.occupation`, `u.info`, all latin-1; 1m writes `ratings.dat`,
    `movies.dat`, `users.dat` with `::` separators, latin-1; "20m", "25m" and "latest-small"
    write UTF-8 `ratings.csv`, `movies.csv` (titles with commas quoted) and `links.csv` with
    their headers. `kwargs` are those of `synthetic_interactions`.
    """
    data = synthetic_movielens(variant, **kwargs)
    out = Path(folder) / REMOTES[variant].folder
    out.mkdir(parents=True, exist_ok=True)
    r, items, users = data.ratings, data.items, data.users
    rating_ints = r["rating"].to_numpy().astype(np.int64)
    if variant == "100k":
        assert users is not None
        (out / "u.data").write_bytes(
            _lines(
                f"{u}\t{i}\t{x}\t{t}"
                for u, i, x, t in zip(
                    r["user_id"], r["item_id"], rating_ints, r["timestamp"], strict=True
                )
            ).encode("latin-1")
        )
        flag_rows = []
        for row in items.itertuples(index=False):
            present = set(row.genres.split("|"))
            flags = "|".join("1" if g in present else "0" for g in GENRES_100K)
            flag_rows.append(
                f"{row.item_id}|{row.title}|{row.release_date}|{row.video_release_date}|"
                f"{row.imdb_url}|{flags}"
            )
        (out / "u.item").write_bytes(_lines(flag_rows).encode("latin-1"))
        (out / "u.user").write_bytes(
            _lines("|".join(map(str, row)) for row in users.itertuples(index=False)).encode(
                "latin-1"
            )
        )
        genre_text = _lines(f"{g}|{i}" for i, g in enumerate(GENRES_100K)) + "\n"
        (out / "u.genre").write_bytes(genre_text.encode("latin-1"))
        (out / "u.occupation").write_bytes(_lines(_OCCUPATIONS_100K).encode("latin-1"))
        info = f"{len(users)} users\n{len(items)} items\n{len(r)} ratings\n"
        (out / "u.info").write_bytes(info.encode("latin-1"))
    elif variant == "1m":
        assert users is not None
        (out / "ratings.dat").write_bytes(
            _lines(
                f"{u}::{i}::{x}::{t}"
                for u, i, x, t in zip(
                    r["user_id"], r["item_id"], rating_ints, r["timestamp"], strict=True
                )
            ).encode("latin-1")
        )
        (out / "movies.dat").write_bytes(
            _lines("::".join(map(str, row)) for row in items.itertuples(index=False)).encode(
                "latin-1"
            )
        )
        cols = ["user_id", "gender", "age", "occupation", "zip_code"]
        (out / "users.dat").write_bytes(
            _lines("::".join(map(str, row)) for row in users[cols].itertuples(index=False)).encode(
                "latin-1"
            )
        )
    else:
        (out / "ratings.csv").write_bytes(
            (
                "userId,movieId,rating,timestamp\n"
                + _lines(
                    f"{u},{i},{x:.1f},{t}"
                    for u, i, x, t in zip(
                        r["user_id"], r["item_id"], r["rating"], r["timestamp"], strict=True
                    )
                )
            ).encode("utf-8")
        )
        for name, header, cols in (
            ("movies.csv", ["movieId", "title", "genres"], ["item_id", "title", "genres"]),
            ("links.csv", ["movieId", "imdbId", "tmdbId"], ["item_id", "imdb_id", "tmdb_id"]),
        ):
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(header)
            for row in items[cols].itertuples(index=False):
                writer.writerow(["" if pd.isna(v) else v for v in row])
            (out / name).write_bytes(buffer.getvalue().encode("utf-8"))
    return out
