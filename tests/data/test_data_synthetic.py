"""Synthetic MovieLens-like data: shapes, determinism, learnable structure, real file formats."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from towerrec.data import synthetic_interactions, synthetic_movielens, write_movielens


def _top_share(matrix: np.ndarray, rank: int = 4) -> float:
    """The share of the centred matrix's energy in its top `rank` singular values."""
    s = np.linalg.svd(matrix - matrix.mean(), compute_uv=False) ** 2
    return float(s[:rank].sum() / s.sum())


def test_shapes_dtypes_and_determinism() -> None:
    ml = synthetic_interactions(num_users=20, num_items=15, num_ratings=120, seed=5)
    r = ml.ratings
    assert r.shape == (120, 4)
    assert r.dtypes.astype(str).tolist() == ["int64", "int64", "float32", "int64"]
    assert not r.duplicated(["user_id", "item_id"]).any()
    assert set(r["user_id"]) == set(range(1, 21)) and set(r["item_id"]) == set(range(1, 16))
    assert set(r["rating"]) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert ml.items["title"].is_unique and len(ml.items) == 15
    assert all(g for g in ml.items["genres"]) and ml.users["zip_code"].str.len().eq(5).all()
    again = synthetic_interactions(num_users=20, num_items=15, num_ratings=120, seed=5)
    assert r.equals(again.ratings) and ml.items.equals(again.items)
    other = synthetic_interactions(num_users=20, num_items=15, num_ratings=120, seed=6)
    assert not r.equals(other.ratings)
    assert len(ml.joined()) == 120


def test_ratings_have_low_rank_structure() -> None:
    ml = synthetic_interactions(num_users=60, num_items=40, num_ratings=2400, seed=0, dim=4)
    matrix = np.zeros((60, 40))
    matrix[ml.ratings["user_id"] - 1, ml.ratings["item_id"] - 1] = ml.ratings["rating"]
    shuffled = np.random.default_rng(0).permutation(matrix.ravel()).reshape(matrix.shape)
    assert _top_share(matrix) > _top_share(shuffled) + 0.2


def test_rated_pairs_follow_affinity() -> None:
    # Which pairs get rated follows the hidden factors: the 0/1 interaction matrix is closer to
    # low rank than a random matrix of the same density.
    ml = synthetic_interactions(num_users=60, num_items=50, num_ratings=600, seed=0)
    rated = np.zeros((60, 50))
    rated[ml.ratings["user_id"] - 1, ml.ratings["item_id"] - 1] = 1.0
    shuffled = np.random.default_rng(0).permutation(rated.ravel()).reshape(rated.shape)
    assert _top_share(rated) > _top_share(shuffled) + 0.05


def test_argument_errors() -> None:
    with pytest.raises(ValueError, match=r"'num_ratings' .* at most num_users \* num_items = 6"):
        synthetic_interactions(num_users=2, num_items=3, num_ratings=7)
    with pytest.raises(ValueError, match=r"'num_users' .* positive int. Got 0"):
        synthetic_interactions(num_users=0)
    with pytest.raises(ValueError, match=r"'variant' parameter of synthetic_movielens"):
        synthetic_movielens("5m")


def test_100k_files_are_in_the_real_format(tmp_path: Path) -> None:
    folder = write_movielens(tmp_path, "100k", num_users=30, num_items=60, num_ratings=200)
    data = (folder / "u.data").read_text("latin-1").splitlines()
    assert len(data) == 200 and all(len(line.split("\t")) == 4 for line in data)
    item_lines = (folder / "u.item").read_bytes().decode("latin-1").splitlines()
    assert all(len(line.split("|")) == 24 for line in item_lines)
    titles = [line.split("|")[1] for line in item_lines]
    assert any(not t.isascii() for t in titles)  # accented words, written as latin-1
    with pytest.raises(UnicodeDecodeError):
        (folder / "u.item").read_bytes().decode("utf-8")
    genre = (folder / "u.genre").read_text("latin-1")
    assert genre.startswith("unknown|0\nAction|1\n") and genre.endswith("Western|18\n\n")
    assert (folder / "u.info").read_text() == "30 users\n60 items\n200 ratings\n"
    assert len((folder / "u.occupation").read_text().split()) == 21


def test_1m_and_csv_files_are_in_the_real_format(tmp_path: Path) -> None:
    folder = write_movielens(tmp_path, "1m", num_users=10, num_items=30, num_ratings=50)
    first = (folder / "ratings.dat").read_text("latin-1").splitlines()[0]
    assert len(first.split("::")) == 4
    user = (folder / "users.dat").read_text("latin-1").splitlines()[0].split("::")
    assert user[1] in ("M", "F") and int(user[2]) in (1, 18, 25, 35, 45, 50, 56)
    assert 0 <= int(user[3]) <= 20
    folder = write_movielens(tmp_path, "latest-small", num_users=10, num_items=30, num_ratings=50)
    text = (folder / "ratings.csv").read_text("utf-8")
    assert text.startswith("userId,movieId,rating,timestamp\n")
    assert text.splitlines()[1].split(",")[2].endswith(".0")
    with (folder / "movies.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["movieId", "title", "genres"] and all(len(r) == 3 for r in rows)
    assert any("," in r[1] for r in rows[1:])
    links = (folder / "links.csv").read_text().splitlines()
    assert links[0] == "movieId,imdbId,tmdbId" and links[10].endswith(",")  # item 10: no tmdb id
