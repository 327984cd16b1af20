"""`Lookup`: a fitted vocabulary mapping raw ids (ints or strings) to contiguous int64 ids."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from towerrec.errors import ConfigError
from towerrec.features.base import (
    Transform,
    as_ids,
    check_int,
    factorize_discrete,
    stable_hash,
)


class Lookup(Transform):
    """[N] raw values (ints or strings) -> [N] int64 ids, through a fitted vocabulary.

    Id layout, as Keras' `StringLookup`/`IntegerLookup`:

    - id 0 is the mask when `mask_value` is given (the raw value `mask_value` maps to it and
      never enters the vocabulary);
    - then `num_oov_buckets` out-of-vocabulary ids;
    - then the vocabulary, most frequent value first (ties broken by ascending value, so the
      layout is deterministic).

    Unseen values map to an OOV id; with several OOV buckets the bucket is
    `stable_hash(value) % num_oov_buckets` (SplitMix64 of an int, CRC-32 of a string's UTF-8
    bytes), the same in every process. Missing values (None,
    NaN) map to the first OOV id. With `num_oov_buckets=0` an unseen or missing value is an
    error. `max_tokens` caps the total number of ids (`size`), mask and OOV ids included, as
    in Keras; `min_count` drops values seen fewer times from the vocabulary.

    Int vocabularies stay ints through JSON. Values are matched by type: a Lookup fitted on
    ints rejects strings (and the reverse) instead of silently mapping them all to OOV.

    Fitted attributes: `vocabulary_` (values in id order, without mask and OOV), `counts_`
    (their counts in the fitted data) and `kind_` ("int" or "str").
    """

    _state_keys = ("vocabulary_", "counts_", "kind_")

    def __init__(
        self,
        num_oov_buckets: int = 1,
        mask_value: int | str | None = None,
        max_tokens: int | None = None,
        min_count: int = 1,
        column: str | None = None,
    ) -> None:
        super().__init__(column=column)
        self.num_oov_buckets = num_oov_buckets
        self.mask_value = mask_value
        self.max_tokens = max_tokens
        self.min_count = min_count

    # ----------------------------------------------------------------- layout
    @property
    def num_special(self) -> int:
        """Number of ids before the vocabulary: the mask (if any) plus the OOV buckets."""
        return (self.mask_value is not None) + self.num_oov_buckets

    @property
    def oov_ids(self) -> list[int]:
        """The OOV ids."""
        start = int(self.mask_value is not None)
        return list(range(start, start + self.num_oov_buckets))

    @property
    def mask_id(self) -> int | None:
        """The mask id (0), or None without `mask_value`."""
        return 0 if self.mask_value is not None else None

    @property
    def size(self) -> int:
        """Total number of ids: mask + OOV buckets + vocabulary (rows of an embedding table)."""
        self._check_fitted()
        return self.num_special + len(self.vocabulary_)

    def get_vocabulary(self) -> list[Any]:
        """Raw value of every id in id order; mask and OOV ids read None."""
        self._check_fitted()
        return [None] * self.num_special + list(self.vocabulary_)

    def id_counts(self) -> torch.Tensor:
        """[size] int64 count of each id's value in the fitted data (0 for mask and OOV ids)."""
        self._check_fitted()
        counts = torch.zeros(self.size, dtype=torch.int64)
        counts[self.num_special :] = torch.tensor(self.counts_, dtype=torch.int64)
        return counts

    # ----------------------------------------------------------------- fit / transform
    def _check_params(self) -> None:
        owner = "Lookup"
        check_int(self.num_oov_buckets, "num_oov_buckets", owner, minimum=0)
        check_int(self.min_count, "min_count", owner, minimum=1)
        check_int(self.max_tokens, "max_tokens", owner, minimum=1, allow_none=True)
        if self.mask_value is not None and (
            isinstance(self.mask_value, bool) or not isinstance(self.mask_value, int | str)
        ):
            raise ValueError(
                f"The 'mask_value' parameter of Lookup must be an int, a str or None. Got "
                f"{self.mask_value!r} instead."
            )
        if self.max_tokens is not None and self.max_tokens <= self.num_special:
            raise ValueError(
                f"The 'max_tokens' parameter of Lookup counts the mask and OOV ids "
                f"({self.num_special} here) and must leave room for a vocabulary. Got "
                f"{self.max_tokens} instead; use at least {self.num_special + 1}."
            )

    def _fit(self, values: pd.Series) -> None:
        owner = self._owner("fit")
        codes, uniques, kind = factorize_discrete(values, owner)
        if kind == "empty":
            raise ValueError(f"{owner} got no values to learn a vocabulary from (all missing).")
        self._check_mask_kind(kind)
        counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
        table = pd.DataFrame({"value": uniques, "count": counts})
        if self.mask_value is not None:
            table = table[table["value"] != self.mask_value]
        table = table[table["count"] >= self.min_count]
        table = table.sort_values(["count", "value"], ascending=[False, True], kind="mergesort")
        if self.max_tokens is not None:
            table = table.iloc[: self.max_tokens - self.num_special]
        self.vocabulary_ = table["value"].tolist()
        self.counts_ = table["count"].tolist()
        self.kind_ = kind

    def _transform(self, values: pd.Series) -> torch.Tensor:
        owner = self._owner("transform")
        codes, uniques, kind = factorize_discrete(values, owner, distinct=False)
        if kind not in (self.kind_, "empty"):
            cast = "int" if self.kind_ == "int" else "str"
            example = uniques[:1].tolist()[0]
            raise TypeError(
                f"{owner} was fitted on {self.kind_} values but got {kind} values (e.g. "
                f"{example!r}); convert them with .astype({cast}) so they match the vocabulary "
                f"instead of all mapping to OOV."
            )
        # Map the distinct values, then gather: one hash lookup per distinct value.
        positions = self._index().get_indexer(uniques) if len(uniques) else np.empty(0, int)
        unique_ids = positions.astype(np.int64) + self.num_special
        unseen = positions < 0
        if self.mask_value is not None and len(uniques):
            is_mask = uniques == self.mask_value
            unique_ids[is_mask] = 0
            unseen &= ~is_mask
        if unseen.any():
            unique_ids[unseen] = self._oov(uniques[unseen], owner)
        missing = codes < 0
        if missing.any():
            if self.num_oov_buckets == 0:
                raise ValueError(
                    f"{owner} got {int(missing.sum())} missing value(s) (None/NaN) and has "
                    f"num_oov_buckets=0. Fill them, or set num_oov_buckets >= 1 to map them "
                    f"to an OOV id."
                )
            unique_ids = np.append(unique_ids, self.oov_ids[0])  # code -1 reads the last entry
        return torch.from_numpy(unique_ids[codes])

    def _oov(self, unseen: np.ndarray, owner: str) -> np.ndarray:
        """OOV ids of the distinct unseen values `unseen`."""
        if self.num_oov_buckets == 0:
            raise ValueError(
                f"{owner} got {len(unseen)} distinct value(s) outside its vocabulary (e.g. "
                f"{unseen[:5].tolist()}) and has num_oov_buckets=0. Set num_oov_buckets >= 1 "
                f"to map unseen values to an OOV id."
            )
        first = self.oov_ids[0]
        if self.num_oov_buckets == 1:
            return np.full(len(unseen), first, dtype=np.int64)
        return (stable_hash(unseen) % np.uint64(self.num_oov_buckets)).astype(np.int64) + first

    def inverse(self, ids: Any) -> np.ndarray:
        """[...] int ids -> [...] object array of raw values (None for mask and OOV ids)."""
        self._check_fitted()
        array = as_ids(ids, self.size, "Lookup.inverse")
        table = np.empty(self.size, dtype=object)
        table[self.num_special :] = self._vocab_array()
        return table[array]

    # ----------------------------------------------------------------- state
    def _set_state(self, state: Any) -> None:
        super()._set_state(state)
        vocab, counts, kind = self.vocabulary_, self.counts_, self.kind_
        ok = (
            isinstance(vocab, list)
            and isinstance(counts, list)
            and len(vocab) == len(counts)
            and kind in ("int", "str")
            and all(type(v) is (int if kind == "int" else str) for v in vocab)
        )
        if not ok or len(set(vocab)) != len(vocab):
            self._clear_state()
            raise ConfigError(
                "A Lookup state needs 'vocabulary_' (distinct values, all int or all str as "
                "'kind_' says) and 'counts_' lists of the same length, and 'kind_' in "
                "('int', 'str')."
            )
        try:
            self._check_mask_kind(kind)
        except ConfigError:
            self._clear_state()
            raise

    def _check_mask_kind(self, kind: str) -> None:
        if self.mask_value is None:
            return
        mask_kind = "str" if isinstance(self.mask_value, str) else "int"
        if mask_kind != kind:
            raise ConfigError(
                f"The 'mask_value' parameter of {self._owner()} is a {mask_kind} "
                f"({self.mask_value!r}) but the values are {kind}s; use a mask value of the "
                f"same type."
            )

    def _vocab_array(self) -> np.ndarray:
        def build() -> np.ndarray:
            out = np.empty(len(self.vocabulary_), dtype=object)
            out[:] = self.vocabulary_
            return out

        return self._cached("vocab_array", build)

    def _index(self) -> pd.Index:
        def build() -> pd.Index:
            if self.kind_ == "int":
                return pd.Index(np.asarray(self.vocabulary_, dtype=np.int64))
            return pd.Index(self._vocab_array(), dtype=object)

        return self._cached("index", build)


__all__ = ["Lookup"]
