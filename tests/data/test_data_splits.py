"""Train/test splits: sizes, determinism, no overlap, leave-last-out picks the latest."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from towerrec.data import bernoulli_split, leave_last_out, random_split, time_split


def _frame(n: int = 100, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "row": np.arange(n),
            "user_id": rng.integers(1, 8, size=n),
            "item_id": rng.integers(1, 30, size=n),
            "timestamp": rng.integers(0, 50, size=n),
        },
        index=np.arange(n) * 3 + 7,  # a non-default index, to check it is reset
    )


def _partition(df: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame) -> None:
    assert len(train) + len(test) == len(df)
    assert set(train["row"]).isdisjoint(test["row"])
    assert sorted([*train["row"], *test["row"]]) == sorted(df["row"])
    assert list(train.index) == list(range(len(train)))
    assert list(test.index) == list(range(len(test)))


def test_random_split_sizes_determinism_and_shuffle() -> None:
    df = _frame()
    train, test = random_split(df, train=0.8, seed=42)
    assert (len(train), len(test)) == (80, 20)
    _partition(df, train, test)
    again, _ = random_split(df, train=0.8, seed=42)
    pd.testing.assert_frame_equal(train, again)
    other, _ = random_split(df, train=0.8, seed=7)
    assert list(other["row"]) != list(train["row"])
    assert list(train["row"]) != sorted(train["row"])  # shuffled order, as the tutorial
    expected = np.random.default_rng(42).permutation(100)[:80]
    assert list(train["row"]) == list(expected)
    small, rest = random_split(df.iloc[:7], train=0.5, seed=0)
    assert (len(small), len(rest)) == (4, 3)


def test_bernoulli_split_is_seeded_and_near_p() -> None:
    df = _frame(4000)
    train, test = bernoulli_split(df, train=0.85, seed=3)
    _partition(df, train, test)
    again, _ = bernoulli_split(df, train=0.85, seed=3)
    pd.testing.assert_frame_equal(train, again)
    sigma = np.sqrt(4000 * 0.85 * 0.15)
    assert abs(len(train) - 3400) < 4 * sigma
    assert list(train["row"]) == sorted(train["row"])  # original order kept
    expected = np.flatnonzero(np.random.default_rng(3).random(4000) < 0.85)
    assert list(train["row"]) == list(expected)


def test_leave_last_out_picks_latest_with_deterministic_ties() -> None:
    df = pd.DataFrame(
        {
            "row": range(9),
            "user_id": ["a", "a", "a", "b", "b", "c", "d", "d", "d"],
            "timestamp": [5, 9, 3, 4, 4, 1, 2, 8, 8],
        }
    )
    train, test = leave_last_out(df, n=1)
    _partition(df, train, test)
    # a: time 9 (row 1); b: tie at 4, the later row 4; c: a single interaction stays in train;
    # d: tie at 8, the later row 8.
    assert sorted(test["row"]) == [1, 4, 8]
    assert "c" in set(train["user_id"]) and "c" not in set(test["user_id"])
    train2, test2 = leave_last_out(df, n=2)
    assert sorted(test2["row"]) == [0, 1, 7, 8]  # b has only 2 rows: kept in train
    _partition(df, train2, test2)
    shuffled_test = leave_last_out(df.sample(frac=1.0, random_state=1), n=1)[1]
    assert shuffled_test.loc[shuffled_test["user_id"] == "a", "row"].tolist() == [1]


def test_leave_last_out_on_random_data_keeps_each_users_latest() -> None:
    df = _frame(300)
    train, test = leave_last_out(df, n=2)
    _partition(df, train, test)
    for user, group in test.groupby("user_id"):
        assert len(group) == 2
        assert group["timestamp"].min() >= train.loc[train["user_id"] == user, "timestamp"].max()


def test_time_split_fraction_and_cutoff() -> None:
    df = _frame()
    train, test = time_split(df, train=0.7)
    assert (len(train), len(test)) == (70, 30)
    assert train["timestamp"].max() <= test["timestamp"].min()
    _partition(df, train, test)
    default_train, _ = time_split(df)
    assert len(default_train) == 80
    train, test = time_split(df, cutoff=25)
    assert (train["timestamp"] < 25).all() and (test["timestamp"] >= 25).all()
    assert len(train) == int((df["timestamp"] < 25).sum())
    dates = df.assign(timestamp=pd.to_datetime(df["timestamp"], unit="D"))
    train, test = time_split(dates, cutoff=pd.Timestamp("1970-01-20"))
    assert len(train) == int((df["timestamp"] < 19).sum())


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (lambda df: random_split(df, train=1.0), r"'train' parameter of random_split .* Got 1.0"),
        (lambda df: random_split(df, train="0.8"), r"strictly between 0 and 1. Got '0.8'"),
        (lambda df: random_split(df, seed=-1), r"'seed' parameter of random_split"),
        (lambda df: bernoulli_split(df, train=0), r"'train' parameter of bernoulli_split"),
        (lambda df: leave_last_out(df, n=0), r"'n' parameter of leave_last_out must be a positive"),
        (lambda df: leave_last_out(df, user_col="uid"), r"column 'uid'.*Columns present: \['row'"),
        (lambda df: time_split(df, train=0.5, cutoff=3), r"either 'train' .* or 'cutoff'"),
        (lambda df: time_split(df, time_col="when"), r"'time_col' parameter of time_split"),
        (lambda df: time_split(df, cutoff="soon"), r"'cutoff' parameter of time_split"),
    ],
)
def test_argument_errors(call: Callable[[pd.DataFrame], object], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        call(_frame(10))


def test_non_frames_are_refused() -> None:
    with pytest.raises(TypeError, match=r"must be a pandas DataFrame\. Got list"):
        random_split([1, 2, 3])  # type: ignore[arg-type]
