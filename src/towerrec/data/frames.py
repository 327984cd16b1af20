"""Tables from CSV, Parquet or pandas, and renaming a user's columns to towerrec's names."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from towerrec.errors import DataFormatError

__all__ = ["CANONICAL_COLUMNS", "interactions", "read_table"]

CANONICAL_COLUMNS = ("user_id", "item_id", "rating", "timestamp")

TableLike = str | os.PathLike[str] | pd.DataFrame
_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.xz", ".csv.zst", ".csv.zip")
_TSV_SUFFIXES = (".tsv", ".tsv.gz", ".tsv.bz2", ".tsv.xz", ".tsv.zst", ".tsv.zip")
_PARQUET_SUFFIXES = (".parquet", ".pq")


def _missing(columns: list[str], present: list[str], source: str) -> str | None:
    absent = [c for c in columns if c not in present]
    if not absent:
        return None
    return f"{source} has no column(s) {absent}. Columns present: {list(present)}."


def read_table(path_or_frame: TableLike, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a table: a CSV/TSV file (optionally compressed), a Parquet file, or a DataFrame.

    The format follows the file name: `.csv` (comma), `.tsv` (tab), each optionally with
    `.gz`/`.bz2`/`.xz`/`.zst`/`.zip`; `.parquet`/`.pq` (needs pyarrow:
    `pip install 'towerrec[parquet]'`). With `columns`, only those columns are read and
    returned, in that order; a missing one raises an error listing the columns present.
    """
    if columns is not None:
        if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
            raise ValueError(
                f"The 'columns' parameter of read_table must be a list of column names. "
                f"Got {columns!r} instead."
            )
        columns = list(columns)
    if isinstance(path_or_frame, pd.DataFrame):
        if columns is None:
            return path_or_frame.copy(deep=False)
        problem = _missing(columns, list(path_or_frame.columns), "The DataFrame")
        if problem:
            raise ValueError(problem)
        return path_or_frame[columns].copy(deep=False)
    if not isinstance(path_or_frame, str | os.PathLike):
        raise TypeError(
            f"The 'path_or_frame' parameter of read_table must be a path or a pandas DataFrame. "
            f"Got {type(path_or_frame).__name__} instead."
        )
    path = Path(path_or_frame)
    name = path.name.lower()
    if not path.is_file():
        raise FileNotFoundError(f"read_table: no such file: {path}")
    if name.endswith(_PARQUET_SUFFIXES):
        return _read_parquet(path, columns)
    if name.endswith(_CSV_SUFFIXES) or name.endswith(_TSV_SUFFIXES):
        sep = "\t" if name.endswith(_TSV_SUFFIXES) else ","
        try:
            present = list(pd.read_csv(path, sep=sep, nrows=0).columns)
        except (ValueError, pd.errors.ParserError) as exc:
            raise DataFormatError(
                f"{path} could not be read as a table with a header ({exc})."
            ) from exc
        if columns is not None:
            problem = _missing(columns, present, str(path))
            if problem:
                raise DataFormatError(problem)
        try:
            frame = pd.read_csv(path, sep=sep, usecols=columns, low_memory=False)
        except (ValueError, pd.errors.ParserError) as exc:
            raise DataFormatError(f"{path} could not be parsed: {exc}") from exc
        return frame if columns is None else frame[columns]
    raise ValueError(
        f"read_table cannot tell the format of {path}: use a file ending in .csv, .tsv "
        f"(optionally compressed: .gz, .bz2, .xz, .zst, .zip), .parquet or .pq, or pass a "
        f"pandas DataFrame."
    )


def _read_parquet(path: Path, columns: list[str] | None) -> pd.DataFrame:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"Reading the Parquet file {path} needs pyarrow: pip install 'towerrec[parquet]'"
        ) from exc
    try:
        present = list(pq.read_schema(path).names)
    except Exception as exc:  # pyarrow raises its own ArrowInvalid/OSError types
        raise DataFormatError(f"{path} is not a readable Parquet file ({exc}).") from exc
    if columns is not None:
        problem = _missing(columns, present, str(path))
        if problem:
            raise DataFormatError(problem)
    return pd.read_parquet(path, columns=columns, engine="pyarrow")


def _to_seconds(values: pd.Series, column: str) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(values):
        if values.isna().any():
            raise ValueError(f"The timestamp column '{column}' has missing values.")
        naive = values.dt.tz_convert("UTC").dt.tz_localize(None) if values.dt.tz else values
        return naive.to_numpy().astype("datetime64[s]").astype(np.int64)
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() | ~np.isfinite(numbers.to_numpy(dtype=np.float64, na_value=np.nan))
    if not bad.any():
        as_float = numbers.to_numpy(dtype=np.float64)
        if np.array_equal(as_float, np.round(as_float)):
            return numbers.to_numpy().astype(np.int64)
    row = int(np.flatnonzero(bad.to_numpy())[0]) if bad.any() else 0
    raise ValueError(
        f"The timestamp column '{column}' must hold whole seconds (integers) or datetimes. "
        f"Row {row} has {values.iloc[row]!r}."
    )


def interactions(
    frame: TableLike,
    user_col: str = "user_id",
    item_col: str = "item_id",
    rating_col: str | None = None,
    timestamp_col: str | None = None,
) -> pd.DataFrame:
    """Rename a table's columns to towerrec's names: `user_id`, `item_id`, `rating`, `timestamp`.

    `frame` is a DataFrame or anything `read_table` reads. Other columns are kept as they are.
    `rating` becomes float32 (it must be numeric); `timestamp` becomes int64 seconds (from
    integers or datetimes). Missing user or item ids, unknown columns, a column used twice, or
    a canonical name already used by another column raise `ValueError` naming the columns.
    """
    df = read_table(frame)
    wanted = {
        "user_col": (user_col, "user_id"),
        "item_col": (item_col, "item_id"),
        "rating_col": (rating_col, "rating"),
        "timestamp_col": (timestamp_col, "timestamp"),
    }
    present = list(df.columns)
    mapping: dict[str, str] = {}
    for param, (source, target) in wanted.items():
        if source is None:
            continue
        if source not in present:
            raise ValueError(
                f"The '{param}' parameter of interactions names column {source!r}, which the "
                f"table does not have. Columns present: {present}."
            )
        if source in mapping:
            raise ValueError(
                f"The '{param}' parameter of interactions names column {source!r}, already "
                f"used as '{mapping[source]}'. Each column can play one role."
            )
        mapping[source] = target
    for source, target in mapping.items():
        if target in present and mapping.get(target) is None and target != source:
            raise ValueError(
                f"interactions would rename column {source!r} to {target!r}, but the table "
                f"already has a column {target!r}. Drop or rename it first. "
                f"Columns present: {present}."
            )
    out = df.rename(columns=mapping)
    for column, source in (("user_id", user_col), ("item_id", item_col)):
        missing = out[column].isna().to_numpy()
        if missing.any():
            raise ValueError(
                f"The {column} column (from {source!r}) "
                f"has {int(missing.sum())} missing value(s), first at row "
                f"{int(np.flatnonzero(missing)[0])}. Drop those rows first."
            )
    if "rating" in mapping.values():
        ratings = pd.to_numeric(out["rating"], errors="coerce")
        bad = ratings.isna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"The rating column {rating_col!r} must be numeric. Row {row} has "
                f"{out['rating'].iloc[row]!r}."
            )
        out["rating"] = ratings.to_numpy(dtype=np.float32)
    if "timestamp" in mapping.values():
        out["timestamp"] = _to_seconds(out["timestamp"], str(timestamp_col))
    return out
