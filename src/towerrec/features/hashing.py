"""Transforms that need no fitting: `Hashing` (raw value -> hash bucket) and `Passthrough`."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd
import torch

from towerrec.features.base import Transform, check_int, numeric_values

_DTYPES = {"float32": torch.float32, "int64": torch.int64}


def hash_bucket(value: Any, num_bins: int, salt: int = 0) -> int:
    """One raw value -> its `Hashing` bucket: blake2b-64 of `str(value)` modulo `num_bins`.

    The digest is `hashlib.blake2b(str(value).encode("utf-8"), digest_size=8,
    salt=salt.to_bytes(16, "little"))` read as a little-endian unsigned int; it is the same
    in every process (never Python's salted `hash`). Integral floats hash as ints, so 3, 3.0
    and "3" share a bucket.
    """
    if isinstance(value, float | np.floating) and float(value).is_integer():
        value = int(value)
    digest = hashlib.blake2b(
        str(value).encode("utf-8"), digest_size=8, salt=int(salt).to_bytes(16, "little")
    ).digest()
    return int.from_bytes(digest, "little") % num_bins


class Hashing(Transform):
    """[N] raw values (ints, strings, ...) -> [N] int64 hash buckets in [0, num_bins).

    Each value's bucket is `hash_bucket(value, num_bins, salt)`: blake2b-64 of its string form
    (integral floats as ints, so a column of ids read with missing values still matches),
    stable across processes and machines. Missing values (None/NaN) hash as the empty string.
    Nothing is learned: `fit` is a no-op and the transform works unfitted. Different `salt`
    values give independent hash functions (e.g. for the several hashes of a hash embedding).
    `size` is `num_bins`.
    """

    def __init__(self, num_bins: int, salt: int = 0, column: str | None = None) -> None:
        super().__init__(column=column)
        self.num_bins = num_bins
        self.salt = salt

    @property
    def size(self) -> int:
        """Number of buckets (`num_bins`)."""
        self._check_params()
        return int(self.num_bins)

    def _check_params(self) -> None:
        check_int(self.num_bins, "num_bins", "Hashing", minimum=1)
        check_int(self.salt, "salt", "Hashing", minimum=0)
        if self.salt >= 2**128:
            raise ValueError(
                f"The 'salt' parameter of Hashing must be below 2**128. Got {self.salt} instead."
            )

    def _transform(self, values: pd.Series) -> torch.Tensor:
        codes, uniques = values.factorize(use_na_sentinel=True)
        n, salt = int(self.num_bins), int(self.salt)
        buckets = np.fromiter(
            (hash_bucket(v, n, salt) for v in np.asarray(uniques, dtype=object).tolist()),
            dtype=np.int64,
            count=len(uniques),
        )
        buckets = np.append(buckets, hash_bucket("", n, salt))  # code -1 (missing) reads it
        return torch.from_numpy(buckets[np.asarray(codes, dtype=np.int64)])


class Passthrough(Transform):
    """[N] numbers -> [N] tensor of `dtype` ("float32" or "int64"), values unchanged.

    For columns a model reads as they are: labels such as a rating, raw timestamps, counts.
    Non-numeric input is a TypeError naming the dtype. For "int64", values must be whole
    numbers without missing values (int columns convert exactly, with no float round trip);
    for "float32", NaN passes through. Nothing is learned: `fit` is a no-op.
    """

    def __init__(self, dtype: str = "float32", column: str | None = None) -> None:
        super().__init__(column=column)
        self.dtype = dtype

    @property
    def output_dtype(self) -> torch.dtype:  # type: ignore[override]
        """The torch dtype of the output."""
        self._check_params()
        return _DTYPES[self.dtype]

    def _check_params(self) -> None:
        if self.dtype not in _DTYPES:
            raise ValueError(
                f"The 'dtype' parameter of Passthrough must be one of {list(_DTYPES)}. Got "
                f"{self.dtype!r} instead."
            )

    def _transform(self, values: pd.Series) -> torch.Tensor:
        owner = self._owner("transform")
        if self.dtype == "float32":
            x = numeric_values(values, owner, allow_nan=True)
            return torch.from_numpy(x.astype(np.float32))
        if pd.api.types.is_integer_dtype(values.dtype) and not values.hasnans:
            return torch.from_numpy(np.array(values.to_numpy(dtype=np.int64), copy=True))
        x = numeric_values(values, owner)
        whole = x == np.round(x)
        if not whole.all():
            raise ValueError(
                f"{owner} with dtype='int64' needs whole numbers; got {float(x[~whole][0])!r}. Use "
                f"dtype='float32', or round the column first."
            )
        return torch.from_numpy(x.astype(np.int64))


__all__ = ["Hashing", "Passthrough", "hash_bucket"]
