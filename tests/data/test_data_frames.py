"""read_table (CSV, TSV, Parquet, DataFrame) and interactions (renaming to canonical names)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from towerrec.data import interactions, read_table
from towerrec.errors import DataFormatError


@pytest.fixture
def table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "uid": [3, 1, 2],
            "movie": ["b", "a", "c"],
            "stars": [4, 5, 1],
            "when": [100, 50, 75],
            "title": ["Heat, The (1995)", "Up (2009)", "Jaws (1975)"],
        }
    )


def test_read_table_csv_with_column_selection(tmp_path: Path, table: pd.DataFrame) -> None:
    path = tmp_path / "ratings.csv"
    table.to_csv(path, index=False)
    back = read_table(path)
    pd.testing.assert_frame_equal(back, table, check_dtype=False)
    assert back["title"].tolist() == table["title"].tolist()  # quoted comma survives
    picked = read_table(str(path), columns=["when", "uid"])
    assert list(picked.columns) == ["when", "uid"]
    assert picked["when"].tolist() == [100, 50, 75]
    with pytest.raises(
        DataFormatError, match=r"no column\(s\) \['rating'\]. Columns present: \['uid'"
    ):
        read_table(path, columns=["rating"])


def test_read_table_tsv_gz_and_parquet(tmp_path: Path, table: pd.DataFrame) -> None:
    tsv = tmp_path / "r.tsv.gz"
    table.to_csv(tsv, sep="\t", index=False)
    assert read_table(tsv)["movie"].tolist() == ["b", "a", "c"]
    parquet = tmp_path / "r.parquet"
    table.to_parquet(parquet)
    back = read_table(parquet, columns=["movie", "stars"])
    assert list(back.columns) == ["movie", "stars"]
    assert back["stars"].tolist() == [4, 5, 1]
    with pytest.raises(DataFormatError, match=r"no column\(s\) \['nope'\]"):
        read_table(parquet, columns=["nope"])
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataFormatError, match="not a readable Parquet file"):
        read_table(tmp_path / "broken.parquet")


def test_read_table_frames_and_bad_inputs(tmp_path: Path, table: pd.DataFrame) -> None:
    assert read_table(table, columns=["uid"])["uid"].tolist() == [3, 1, 2]
    with pytest.raises(ValueError, match=r"no column\(s\) \['x'\]. Columns present"):
        read_table(table, columns=["x"])
    (tmp_path / "data.json").write_text("{}")
    with pytest.raises(ValueError, match=r"cannot tell the format .*\.csv, \.tsv"):
        read_table(tmp_path / "data.json")
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_table(tmp_path / "missing.csv")
    with pytest.raises(TypeError, match=r"must be a path or a pandas DataFrame\. Got int"):
        read_table(3)  # type: ignore[arg-type]


def test_interactions_renames_and_converts(table: pd.DataFrame) -> None:
    out = interactions(
        table, user_col="uid", item_col="movie", rating_col="stars", timestamp_col="when"
    )
    assert list(out.columns) == ["user_id", "item_id", "rating", "timestamp", "title"]
    assert out["rating"].dtype == np.float32 and out["timestamp"].dtype == np.int64
    assert out["item_id"].tolist() == ["b", "a", "c"]
    assert "uid" in table.columns and "user_id" not in table.columns  # input untouched
    only_ids = interactions(table, user_col="uid", item_col="movie")
    assert "rating" not in only_ids.columns and "stars" in only_ids.columns
    dated = table.assign(
        when=pd.to_datetime(["2020-01-01 00:00", "1970-01-02 00:00", "1970-01-01 00:01"])
    )
    seconds = interactions(dated, "uid", "movie", timestamp_col="when")["timestamp"]
    assert seconds.tolist() == [1577836800, 86400, 60]


def test_interactions_errors(table: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"'user_col' .* 'user_id', .*Columns present: \['uid'"):
        interactions(table)
    with pytest.raises(ValueError, match=r"'item_col' .* 'uid', already used as 'user_id'"):
        interactions(table, user_col="uid", item_col="uid")
    clash = table.assign(item_id=0)
    with pytest.raises(ValueError, match=r"rename column 'movie' to 'item_id'.*already has"):
        interactions(clash, user_col="uid", item_col="movie")
    with pytest.raises(ValueError, match=r"rating column 'title' must be numeric. Row 0"):
        interactions(table, "uid", "movie", rating_col="title")
    with pytest.raises(ValueError, match=r"timestamp column 'title' must hold whole seconds"):
        interactions(table, "uid", "movie", timestamp_col="title")
    holes = table.astype({"uid": "float64"})
    holes.loc[1, "uid"] = np.nan
    with pytest.raises(ValueError, match=r"user_id column \(from 'uid'\) has 1 missing .* row 1"):
        interactions(holes, "uid", "movie")
