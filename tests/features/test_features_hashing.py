"""Hashing and Passthrough: stable buckets (also in a fresh process), dtypes, errors."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from towerrec.features import Hashing, Lookup, Passthrough

RAW = ["alice", "bob", 42, "42", 3.0, "café"]


def _expected(value: object, num_bins: int, salt: int = 0) -> int:
    digest = hashlib.blake2b(
        str(value).encode("utf-8"), digest_size=8, salt=salt.to_bytes(16, "little")
    ).digest()
    return int.from_bytes(digest, "little") % num_bins


def test_hashing_matches_the_documented_formula_without_fitting():
    h = Hashing(num_bins=1000)
    assert h.is_fitted and h.size == 1000
    ids = h.transform(np.array(RAW, dtype=object))
    assert ids.dtype == torch.int64
    assert ids.tolist() == [_expected(v, 1000) for v in ["alice", "bob", 42, "42", 3, "café"]]
    assert ids[2] == ids[3] == h.transform([42.0])[0]  # 42, "42" and 42.0 share a bucket
    assert h.transform([None]).tolist() == [_expected("", 1000)]
    salted = Hashing(num_bins=1000, salt=7).transform(["alice"]).tolist()
    assert salted == [_expected("alice", 1000, salt=7)]
    assert h.fit(["x"]).to_config()["state"] is None  # fit records nothing


def test_hashing_is_stable_in_a_fresh_process_with_another_hash_seed():
    code = (
        "import json; from towerrec.features import Hashing, Lookup;"
        "h = Hashing(num_bins=97, salt=3).transform(['alice', 'bob', 'x', 5]).tolist();"
        "o = Lookup(num_oov_buckets=5).fit(['a']).transform(['zz', 'yy', 'q']).tolist();"
        "p = Lookup(num_oov_buckets=5).fit([1]).transform([10, 11, 12]).tolist();"
        "print(json.dumps([h, o, p]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    here = [
        Hashing(num_bins=97, salt=3).transform(["alice", "bob", "x", 5]).tolist(),
        Lookup(num_oov_buckets=5).fit(["a"]).transform(["zz", "yy", "q"]).tolist(),
        Lookup(num_oov_buckets=5).fit([1]).transform([10, 11, 12]).tolist(),
    ]
    assert json.loads(result.stdout) == here


def test_hashing_bad_parameters():
    with pytest.raises(ValueError, match="'num_bins' parameter of Hashing must be a positive int"):
        Hashing(num_bins=0).transform(["a"])
    with pytest.raises(ValueError, match="'salt' parameter of Hashing"):
        Hashing(num_bins=3, salt=-1).transform(["a"])


def test_passthrough_float32_and_int64():
    ratings = Passthrough().transform(pd.Series([1, 4.5, np.nan]))
    assert ratings.dtype == torch.float32
    assert ratings[:2].tolist() == [1.0, 4.5] and torch.isnan(ratings[2])
    big = 2**53 + 1  # not representable in float64: must not go through floats
    ints = Passthrough(dtype="int64").transform(np.array([big, -3], dtype=np.int64))
    assert ints.dtype == torch.int64 and ints.tolist() == [big, -3]
    assert Passthrough(dtype="int64").transform([1.0, 2.0]).tolist() == [1, 2]
    assert Passthrough().output_dtype == torch.float32


def test_passthrough_errors_name_the_dtype():
    with pytest.raises(TypeError, match="needs numeric values; got dtype 'str'"):
        Passthrough().transform(pd.Series(["a", "b"]))
    with pytest.raises(ValueError, match=r"whole numbers; got 1\.5"):
        Passthrough(dtype="int64").transform([1.5])
    with pytest.raises(ValueError, match="'dtype' parameter of Passthrough"):
        Passthrough(dtype="float16").transform([1.0])
    with pytest.raises(AttributeError, match="no 'size'"):
        _ = Passthrough().size
