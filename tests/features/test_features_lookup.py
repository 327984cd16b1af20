"""Lookup: id layout, OOV and mask ids, frequency ordering, types and speed."""

from __future__ import annotations

import time
import zlib

import numpy as np
import pandas as pd
import pytest
import torch

from towerrec.errors import NotFittedError
from towerrec.features import Lookup
from towerrec.features.base import stable_hash

VALUES = ["b", "a", "c", "a", "b", "d", "a"]  # counts: a 3, b 2, c 1, d 1


def test_frequency_order_with_ties_by_value_and_oov_first():
    lookup = Lookup().fit(VALUES)
    assert lookup.vocabulary_ == ["a", "b", "c", "d"]
    assert lookup.counts_ == [3, 2, 1, 1]
    assert lookup.size == 5
    ids = lookup.transform(["a", "b", "c", "d", "unseen", None])
    assert ids.dtype == torch.int64
    assert ids.tolist() == [1, 2, 3, 4, 0, 0]


def test_mask_is_id_zero_and_never_in_vocabulary():
    lookup = Lookup(mask_value="").fit(["", "", "", "x", "y", "y"])
    assert lookup.vocabulary_ == ["y", "x"]
    assert lookup.size == 4  # mask, OOV, y, x
    assert lookup.mask_id == 0 and lookup.oov_ids == [1]
    assert lookup.transform(["", "zz", "y", "x"]).tolist() == [0, 1, 2, 3]
    assert lookup.inverse(torch.tensor([0, 1, 2, 3])).tolist() == [None, None, "y", "x"]
    assert lookup.get_vocabulary() == [None, None, "y", "x"]


def test_several_oov_buckets_use_crc32_of_the_string():
    lookup = Lookup(num_oov_buckets=3, mask_value="").fit(["a"])
    unseen = ["zz", "hello", "q", "zz"]
    expected = [1 + zlib.crc32(v.encode("utf-8")) % 3 for v in unseen]
    assert lookup.transform(unseen).tolist() == expected
    assert lookup.transform(["a", None]).tolist() == [4, 1]  # missing -> first OOV id


def test_int_oov_buckets_use_splitmix64():
    # SplitMix64's first output for seed 0 is 0xE220A8397B1DCDAF (reference implementation).
    assert int(stable_hash(np.array([0], dtype=np.int64))[0]) == 0xE220A8397B1DCDAF
    lookup = Lookup(num_oov_buckets=4).fit([7])
    assert lookup.transform([0]).tolist() == [0xE220A8397B1DCDAF % 4]
    ids = lookup.transform(np.arange(1000, 2000))
    assert set(ids.tolist()) == {0, 1, 2, 3}


def test_ints_stay_ints_and_float_columns_of_whole_numbers_match():
    lookup = Lookup().fit(pd.Series([10, 20, 20, None]))  # float64 with NaN, as read from CSV
    assert lookup.vocabulary_ == [20, 10]
    assert all(type(v) is int for v in lookup.vocabulary_)
    assert lookup.kind_ == "int"
    assert lookup.transform(np.array([10, 20, 30])).tolist() == [2, 1, 0]
    assert lookup.transform(pd.Series([20.0, np.nan])).tolist() == [1, 0]
    assert lookup.transform(pd.array([10, None], dtype="Int64")).tolist() == [2, 0]


def test_max_tokens_counts_mask_and_oov_and_min_count_drops_rare_values():
    assert Lookup(max_tokens=3).fit(VALUES).vocabulary_ == ["a", "b"]
    assert Lookup(max_tokens=4, mask_value="").fit(VALUES).vocabulary_ == ["a", "b"]
    assert Lookup(min_count=2).fit(VALUES).vocabulary_ == ["a", "b"]
    with pytest.raises(ValueError, match="max_tokens"):
        Lookup(max_tokens=1).fit(VALUES)


def test_id_counts_align_with_ids():
    lookup = Lookup(mask_value="").fit(VALUES)
    assert lookup.id_counts().tolist() == [0, 0, 3, 2, 1, 1]


def test_type_mismatch_is_an_error_not_a_silent_oov_collapse():
    lookup = Lookup().fit([1, 2, 3])
    with pytest.raises(TypeError, match=r"fitted on int values but got str values.*astype\(int\)"):
        lookup.transform(["1", "2"])
    with pytest.raises(TypeError, match=r"float values such as 1\.5"):
        Lookup().fit([1.5, 2.0])
    with pytest.raises(TypeError, match="mixed"):
        Lookup().fit(np.array([1, "a"], dtype=object))


def test_no_oov_buckets_makes_unseen_values_an_error():
    lookup = Lookup(num_oov_buckets=0).fit(["a", "b"])
    assert lookup.transform(["b", "a"]).tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"outside its vocabulary.*'zz'"):
        lookup.transform(["a", "zz"])


def test_not_fitted_and_bad_parameters():
    with pytest.raises(
        NotFittedError, match=r"^Lookup is not fitted yet: call fit\(values\) first"
    ):
        Lookup().transform(["a"])
    with pytest.raises(NotFittedError):
        _ = Lookup().size
    with pytest.raises(ValueError, match="'num_oov_buckets' parameter of Lookup"):
        Lookup(num_oov_buckets=-1).fit(["a"])
    with pytest.raises(ValueError, match="mask_value"):
        Lookup(mask_value=0).fit(["a"])
    with pytest.raises(IndexError, match="outside"):
        Lookup().fit(["a"]).inverse([2])
    lookup = Lookup()
    assert not lookup.is_fitted and lookup.fit(["a"]) is lookup and lookup.is_fitted


def test_input_containers_agree():
    lookup = Lookup().fit(VALUES)
    expected = lookup.transform(VALUES).tolist()
    for values in (
        tuple(VALUES),
        np.array(VALUES),
        np.array(VALUES, dtype=object),
        pd.Series(VALUES, index=range(10, 17)),
        pd.Index(VALUES),
    ):
        assert lookup.transform(values).tolist() == expected
    assert lookup.transform([]).shape == (0,)
    with pytest.raises(TypeError, match="single str"):
        lookup.transform("a")


def test_a_million_values_transform_vectorised():
    rng = np.random.default_rng(0)
    vocab = np.array([f"item{i}" for i in range(10_000)], dtype=object)
    strings = Lookup().fit(vocab)
    ints = Lookup().fit(np.arange(10_000) * 7)
    str_values = vocab[rng.integers(0, 12_000, 1_000_000) % 10_000]
    int_values = rng.integers(0, 70_000, 1_000_000)
    start = time.perf_counter()
    str_ids = strings.transform(str_values)
    int_ids = ints.transform(int_values)
    elapsed = time.perf_counter() - start
    assert str_ids.shape == (1_000_000,) and int_ids.shape == (1_000_000,)
    assert np.array_equal(strings.inverse(str_ids[:100]), str_values[:100])
    known = int_values % 7 == 0
    assert (int_ids[torch.from_numpy(~known)] == 0).all()
    assert (int_ids[torch.from_numpy(known)] > 0).all()
    assert elapsed < 2.5, f"1M + 1M values took {elapsed:.2f} s"
