"""Train/test splits of interaction tables: random, Bernoulli, per-user last-n, and temporal.

Every function returns `(train, test)` DataFrames with a fresh 0..n-1 index. `random_split`
returns rows in shuffled order (the tutorial protocol); the others keep the input's row order.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np
import pandas as pd

__all__ = ["bernoulli_split", "leave_last_out", "random_split", "time_split"]

Split = tuple[pd.DataFrame, pd.DataFrame]


def _check_frame(df: object, owner: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(
            f"The 'df' parameter of {owner} must be a pandas DataFrame. "
            f"Got {type(df).__name__} instead."
        )
    return df


def _check_fraction(value: object, name: str, owner: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 < float(value) < 1.0:
        raise ValueError(
            f"The '{name}' parameter of {owner} must be a float strictly between 0 and 1. "
            f"Got {value!r} instead."
        )
    return float(value)


def _check_seed(seed: object, owner: str) -> int | None:
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0
    ):
        raise ValueError(
            f"The 'seed' parameter of {owner} must be a non-negative int or None. "
            f"Got {seed!r} instead."
        )
    return None if seed is None else int(seed)


def _check_column(df: pd.DataFrame, column: object, name: str, owner: str) -> None:
    if column not in df.columns:
        raise ValueError(
            f"The '{name}' parameter of {owner} names column {column!r}, which the table does "
            f"not have. Columns present: {list(df.columns)}."
        )
    if df[column].isna().any():
        raise ValueError(
            f"The {column!r} column passed to {owner} has missing values; drop or fill them."
        )


def _count(fraction: float, n: int) -> int:
    return min(n, math.floor(fraction * n + 0.5))


def _by_mask(df: pd.DataFrame, train_mask: np.ndarray) -> Split:
    return (
        df.iloc[np.flatnonzero(train_mask)].reset_index(drop=True),
        df.iloc[np.flatnonzero(~train_mask)].reset_index(drop=True),
    )


def random_split(df: pd.DataFrame, train: float = 0.8, seed: int | None = 42) -> Split:
    """Shuffle all rows with a seeded permutation; the first `round(train * len(df))` rows are
    train, the rest test (the TFRS tutorials' protocol: 80,000 / 20,000 of ML-100K).

    `seed=None` draws fresh entropy. Rows come back in shuffled order.
    """
    df = _check_frame(df, "random_split")
    fraction = _check_fraction(train, "train", "random_split")
    rng = np.random.default_rng(_check_seed(seed, "random_split"))
    order = rng.permutation(len(df))
    cut = _count(fraction, len(df))
    return (
        df.iloc[order[:cut]].reset_index(drop=True),
        df.iloc[order[cut:]].reset_index(drop=True),
    )


def bernoulli_split(df: pd.DataFrame, train: float = 0.85, seed: int | None = 42) -> Split:
    """Send each row to train independently with probability `train`, else to test (as the
    Keras memory-efficient embeddings example does); sizes vary around `train * len(df)`."""
    df = _check_frame(df, "bernoulli_split")
    fraction = _check_fraction(train, "train", "bernoulli_split")
    rng = np.random.default_rng(_check_seed(seed, "bernoulli_split"))
    return _by_mask(df, rng.random(len(df)) < fraction)


def leave_last_out(
    df: pd.DataFrame,
    n: int = 1,
    user_col: str = "user_id",
    time_col: str = "timestamp",
) -> Split:
    """Each user's last `n` interactions by `time_col` go to test, the rest to train.

    Equal times are ordered by row position (a later row counts as later), so the result is
    deterministic. Users with `n` or fewer interactions stay entirely in train, so every test
    user also appears in train.
    """
    owner = "leave_last_out"
    df = _check_frame(df, owner)
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"The 'n' parameter of {owner} must be a positive int. Got {n!r} instead.")
    _check_column(df, user_col, "user_col", owner)
    _check_column(df, time_col, "time_col", owner)
    users = pd.factorize(df[user_col])[0]
    times = df[time_col].to_numpy()
    if times.dtype == object:
        raise ValueError(
            f"The {time_col!r} column passed to {owner} must be numeric or datetime. "
            f"Got dtype {df[time_col].dtype} instead."
        )
    order = np.lexsort((np.arange(len(df)), times, users))  # by user, then time, then row
    sorted_users = users[order]
    counts = np.bincount(users, minlength=users.max() + 1 if len(users) else 0)
    group_end = np.cumsum(counts)[sorted_users]  # index one past each row's user group
    rank_from_end = group_end - np.arange(len(df)) - 1
    test_sorted = (rank_from_end < n) & (counts[sorted_users] > n)
    train_mask = np.ones(len(df), dtype=bool)
    train_mask[order[test_sorted]] = False
    return _by_mask(df, train_mask)


def time_split(
    df: pd.DataFrame,
    train: float | None = None,
    cutoff: object = None,
    time_col: str = "timestamp",
) -> Split:
    """A global temporal split: every train interaction happens no later than every test one.

    Give either `train` (the earliest `round(train * len(df))` rows go to train; equal times
    are ordered by row position) or `cutoff` (rows with `time < cutoff` go to train, the rest
    to test). With neither, `train=0.8`.
    """
    owner = "time_split"
    df = _check_frame(df, owner)
    _check_column(df, time_col, "time_col", owner)
    if train is not None and cutoff is not None:
        raise ValueError(
            f"{owner} takes either 'train' (a fraction) or 'cutoff' (a time), not both. "
            f"Got train={train!r} and cutoff={cutoff!r}."
        )
    times = df[time_col]
    if cutoff is not None:
        try:
            mask = np.asarray(times < cutoff, dtype=bool)
        except TypeError as exc:
            raise ValueError(
                f"The 'cutoff' parameter of {owner} must be comparable with the {time_col!r} "
                f"column (dtype {times.dtype}). Got {cutoff!r} instead."
            ) from exc
        return _by_mask(df, mask)
    fraction = _check_fraction(0.8 if train is None else train, "train", owner)
    order = np.argsort(times.to_numpy(), kind="stable")
    mask = np.zeros(len(df), dtype=bool)
    mask[order[: _count(fraction, len(df))]] = True
    return _by_mask(df, mask)
