"""MovieLens parsing: every variant's real file format round-trips; malformed files are named."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import towerrec.datasets
from towerrec.data import (
    MovieLensNotFoundError,
    movielens,
    synthetic_movielens,
    write_movielens,
)
from towerrec.errors import DataFormatError

SIZE = {"num_users": 12, "num_items": 9, "num_ratings": 60, "seed": 3}
VARIANTS = ["100k", "1m", "20m", "25m", "latest-small"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_round_trip_of_each_variant(tmp_path: Path, variant: str) -> None:
    folder = write_movielens(tmp_path, variant, **SIZE)
    assert folder == tmp_path / f"ml-{variant}"
    ml = movielens(variant, data_dir=folder)
    expected = synthetic_movielens(variant, **SIZE)
    assert ml.variant == variant and ml.path == folder
    assert ml.ratings.shape == (60, 4)
    assert ml.ratings.dtypes.astype(str).tolist() == ["int64", "int64", "float32", "int64"]
    pd.testing.assert_frame_equal(ml.ratings, expected.ratings)
    pd.testing.assert_frame_equal(ml.items, expected.items)
    assert ml.items["title"].dtype == "str" and ml.items["genres"].dtype == "str"
    if variant in ("100k", "1m"):
        pd.testing.assert_frame_equal(ml.users, expected.users)
        assert list(ml.users.columns) == ["user_id", "age", "gender", "occupation", "zip_code"]
    else:
        assert ml.users is None
        assert {"imdb_id", "tmdb_id"} <= set(ml.items.columns)


def test_parent_folder_and_datasets_module(tmp_path: Path) -> None:
    write_movielens(tmp_path, "100k", **SIZE)
    ml = towerrec.datasets.movielens("100k", data_dir=tmp_path)  # the parent of ml-100k
    assert ml.path == tmp_path / "ml-100k"
    assert ml.movies is ml.items
    assert "ratings=60 rows" in repr(ml)


def test_100k_genres_and_extra_columns(tmp_path: Path) -> None:
    folder = write_movielens(tmp_path, "100k", **SIZE)
    ml = movielens("100k", data_dir=folder)
    line = (folder / "u.item").read_text("latin-1").splitlines()[0].split("|")
    genre_names = [g.split("|")[0] for g in (folder / "u.genre").read_text().split("\n") if g]
    flagged = [name for name, flag in zip(genre_names, line[5:], strict=True) if flag == "1"]
    first = ml.items.iloc[0]
    assert first["genres"] == "|".join(flagged)
    assert first["title"] == line[1] and first["imdb_url"] == line[4]
    assert {"release_date", "video_release_date", "imdb_url"} <= set(ml.items.columns)


def test_joined_adds_titles_genres_and_users(tmp_path: Path) -> None:
    ml = movielens("1m", data_dir=write_movielens(tmp_path, "1m", **SIZE))
    joined = ml.joined()
    assert len(joined) == len(ml.ratings)
    assert list(joined.columns[:6]) == [
        "user_id",
        "item_id",
        "rating",
        "timestamp",
        "title",
        "genres",
    ]
    assert {"age", "gender", "occupation", "zip_code"} <= set(joined.columns)
    titles = ml.items.set_index("item_id")["title"]
    assert joined["title"].tolist() == titles.loc[ml.ratings["item_id"]].tolist()
    assert joined["title"].notna().all()
    csv_ml = movielens("latest-small", data_dir=write_movielens(tmp_path, "latest-small", **SIZE))
    assert list(csv_ml.joined().columns) == [
        "user_id",
        "item_id",
        "rating",
        "timestamp",
        "title",
        "genres",
    ]


def test_csv_titles_with_commas_are_quoted_and_read_back(tmp_path: Path) -> None:
    kwargs = {**SIZE, "num_items": 40, "num_ratings": 80}
    folder = write_movielens(tmp_path, "20m", **kwargs)
    titles = movielens("20m", data_dir=folder).items["title"]
    with_comma = [t for t in titles if "," in t]
    assert with_comma, "the synthetic titles should include some with commas"
    assert f'"{with_comma[0]}"' in (folder / "movies.csv").read_text("utf-8")


def test_unknown_variant_and_missing_data_dir(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'variant' parameter of movielens .* Got '10m'"):
        movielens("10m", data_dir=tmp_path)
    with pytest.raises(MovieLensNotFoundError, match=r"ml-1m/ratings\.dat"):
        movielens("1m", data_dir=tmp_path)
    folder = write_movielens(tmp_path, "1m", **SIZE)
    (folder / "users.dat").unlink()
    with pytest.raises(MovieLensNotFoundError, match=r"incomplete: users\.dat missing"):
        movielens("1m", data_dir=folder)


# ------------------------------------------------------------------------------------------
# Malformed files: (variant, file, 1-based line to replace, new content, message pattern)


def _replace_line(path: Path, line: int, text: str, encoding: str) -> None:
    lines = path.read_bytes().split(b"\n")
    lines[line - 1] = text.encode(encoding)
    path.write_bytes(b"\n".join(lines))


MALFORMED = [
    ("100k", "u.data", 1, "1,2,3,881250949", r"expected 4 tab-separated fields .* found 1"),
    ("100k", "u.data", 5, "1\t2\t3", r"expected 4 tab-separated fields .* found 3"),
    ("100k", "u.data", 7, "1\t2\tfour\t881250949", r"field 'rating' must be a number, got 'four'"),
    ("100k", "u.data", 8, "1\t2\t3\t881250949\t7", r"found 5 field"),
    (
        "100k",
        "u.item",
        3,
        "3|Title (1990)|01-Jan-1990||http://x|0|1",
        r"expected 24 '\|'-separated",
    ),
    ("100k", "u.item", 2, "2|T (1990)|||u" + "|2" * 19, r"field 'genre:unknown' must be 0 or 1"),
    ("100k", "u.user", 4, "4|33|F|other", r"expected 5 '\|'-separated fields"),
    ("100k", "u.user", 2, "2|old|F|other|12345", r"field 'age' must be an integer, got 'old'"),
    ("1m", "ratings.dat", 6, "1::2::x::978300760", r"field 'rating' must be a number"),
    ("1m", "ratings.dat", 1, "1\t2\t3\t978300760", r"expected 4 '::'-separated fields .* found 1"),
    ("1m", "movies.dat", 2, "2::No genres here", r"expected 3 '::'-separated fields"),
    ("1m", "users.dat", 3, "3::M::25::7", r"expected 5 '::'-separated fields"),
    ("latest-small", "ratings.csv", 1, "user,movie,rating,time", r"expected the header"),
    ("latest-small", "ratings.csv", 9, "1,2,good,964982703", r"field 'rating' must be a number"),
    ("latest-small", "ratings.csv", 4, "1,2", r"expected 4 comma-separated fields"),
    ("20m", "movies.csv", 3, "3,Just a title (1990)", r"expected 3 comma-separated fields"),
    ("25m", "movies.csv", 5, '5,"Unclosed, (1990),Drama', r"malformed CSV|expected 3"),
    ("25m", "links.csv", 2, "1,0100007,abc", r"field 'tmdb_id' must be an integer"),
]


@pytest.mark.parametrize(("variant", "name", "line", "text", "pattern"), MALFORMED)
def test_malformed_files_name_file_and_line(
    tmp_path: Path, variant: str, name: str, line: int, text: str, pattern: str
) -> None:
    folder = write_movielens(tmp_path, variant, **SIZE)
    encoding = "latin-1" if variant in ("100k", "1m") else "utf-8"
    _replace_line(folder / name, line, text, encoding)
    with pytest.raises(DataFormatError) as info:
        movielens(variant, data_dir=folder)
    message = str(info.value)
    assert str(folder / name) in message
    assert f" line {line}:" in message
    assert re.search(pattern, message), message


def test_invalid_utf8_is_located(tmp_path: Path) -> None:
    folder = write_movielens(tmp_path, "latest-small", **SIZE)
    lines = (folder / "movies.csv").read_bytes().split(b"\n")
    lines[3] = b"3,Bad \xff byte (1990),Drama"
    (folder / "movies.csv").write_bytes(b"\n".join(lines))
    with pytest.raises(DataFormatError, match=r"movies\.csv line 4: .*not valid utf-8"):
        movielens("latest-small", data_dir=folder)


def test_duplicate_ids_and_unknown_items_are_located(tmp_path: Path) -> None:
    folder = write_movielens(tmp_path, "100k", **SIZE)
    items = (folder / "u.item").read_text("latin-1").splitlines()
    items[4] = "1" + items[4][items[4].index("|") :]
    (folder / "u.item").write_text("\n".join(items) + "\n", "latin-1")
    with pytest.raises(DataFormatError, match=r"u\.item line 5: duplicate item_id 1"):
        movielens("100k", data_dir=folder)

    folder = write_movielens(tmp_path / "b", "1m", **SIZE)
    _replace_line(folder / "ratings.dat", 10, "1::999::4::978300760", "latin-1")
    with pytest.raises(DataFormatError, match=r"ratings\.dat line 10: item_id 999 does not appear"):
        movielens("1m", data_dir=folder)


def test_blank_trailing_lines_and_crlf_are_accepted(tmp_path: Path) -> None:
    folder = write_movielens(tmp_path, "100k", **SIZE)
    data = (folder / "u.data").read_bytes()
    (folder / "u.data").write_bytes(data.replace(b"\n", b"\r\n") + b"\r\n\r\n")
    ml = movielens("100k", data_dir=folder)
    expected = synthetic_movielens("100k", **SIZE)
    np.testing.assert_array_equal(ml.ratings["timestamp"], expected.ratings["timestamp"])
