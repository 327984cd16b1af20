"""`TextVectorizer`: texts -> padded token-id sequences, as Keras' `TextVectorization`."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import torch

from towerrec.errors import ConfigError
from towerrec.features.base import Transform, as_ids, as_series, check_int

#: Keras' `TextVectorization` punctuation pattern (removed after lower-casing).
STRIP_PUNCTUATION = re.compile(r"""[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~']""")
PAD_TOKEN = ""
OOV_TOKEN = "[UNK]"


def standardize(text: str) -> list[str]:
    """One text -> its tokens: lower-case, strip Keras' punctuation set, split on whitespace."""
    return STRIP_PUNCTUATION.sub("", text.lower()).split()


class TextVectorizer(Transform):
    """[N] texts -> [N, L] int64 token ids, padded with 0.

    Keras `TextVectorization` defaults: lower-case, strip punctuation (Keras' pattern
    ``[!"#$%&()\\*\\+,-\\./:;<=>?@\\[\\\\\\]^_`{|}~']``), split on whitespace. Vocabulary ids: 0 is
    padding (""), 1 is OOV ("[UNK]"), then the fitted tokens by frequency, most frequent first,
    ties broken by ascending token. `max_tokens` caps the vocabulary size counting padding and
    OOV, as in Keras (so at most `max_tokens - 2` fitted tokens); None means no cap.

    `L` is `output_sequence_length` (longer texts are truncated, shorter ones padded) or, left
    as None, the longest text of the batch being transformed (at least 1); set it to get the
    same width for every batch. Missing texts (None/NaN) count as empty. Lower-casing is
    Python's `str.lower` (full Unicode; Keras lower-cases ASCII only).

    Fitted attributes: `vocabulary_` (tokens in id order, without padding and OOV) and
    `counts_` (their counts in the fitted texts).
    """

    _state_keys = ("vocabulary_", "counts_")

    def __init__(
        self,
        max_tokens: int | None = 10000,
        output_sequence_length: int | None = None,
        column: str | None = None,
    ) -> None:
        super().__init__(column=column)
        self.max_tokens = max_tokens
        self.output_sequence_length = output_sequence_length

    @property
    def size(self) -> int:
        """Vocabulary size including padding (id 0) and OOV (id 1): rows of an embedding table."""
        self._check_fitted()
        return 2 + len(self.vocabulary_)

    def get_vocabulary(self) -> list[str]:
        """Token of every id in id order: "", "[UNK]", then the fitted tokens (as Keras)."""
        self._check_fitted()
        return [PAD_TOKEN, OOV_TOKEN, *self.vocabulary_]

    def _check_params(self) -> None:
        check_int(self.max_tokens, "max_tokens", "TextVectorizer", minimum=3, allow_none=True)
        check_int(
            self.output_sequence_length,
            "output_sequence_length",
            "TextVectorizer",
            minimum=1,
            allow_none=True,
        )

    def tokenize(self, values: Any) -> list[list[str]]:
        """[N] texts -> N token lists (standardised and split, before the vocabulary)."""
        return self._tokens(as_series(values, self._owner("tokenize")))

    def _tokens(self, values: pd.Series) -> list[list[str]]:
        texts = values.to_numpy(dtype=object, na_value=None)
        bad = next((t for t in texts if t is not None and not isinstance(t, str)), None)
        if bad is not None:
            raise TypeError(
                f"{self._owner()} needs text (str) values; got {type(bad).__name__} values "
                f"such as {bad!r} (dtype {values.dtype}). Convert the column with .astype(str)."
            )
        return [standardize(t) if t is not None else [] for t in texts]

    def _fit(self, values: pd.Series) -> None:
        counts = Counter(itertools.chain.from_iterable(self._tokens(values)))
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        if self.max_tokens is not None:
            ranked = ranked[: self.max_tokens - 2]
        self.vocabulary_ = [token for token, _ in ranked]
        self.counts_ = [count for _, count in ranked]

    def _transform(self, values: pd.Series) -> torch.Tensor:
        tokens = self._tokens(values)
        lengths = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens))
        width = self.output_sequence_length or max(int(lengths.max(initial=0)), 1)
        flat = list(itertools.chain.from_iterable(tokens))
        if flat:
            positions = self._cached("index", lambda: pd.Index(self.vocabulary_, dtype=object))
            # get_indexer gives -1 for unseen tokens: -1 + 2 is the OOV id 1.
            ids = positions.get_indexer(np.asarray(flat, dtype=object)).astype(np.int64) + 2
        else:
            ids = np.empty(0, dtype=np.int64)
        rows = np.repeat(np.arange(len(tokens)), lengths)
        starts = np.cumsum(lengths) - lengths
        cols = np.arange(len(flat)) - np.repeat(starts, lengths)
        keep = cols < width
        out = np.zeros((len(tokens), width), dtype=np.int64)
        out[rows[keep], cols[keep]] = ids[keep]
        return torch.from_numpy(out)

    def inverse(self, ids: Any) -> np.ndarray:
        """[...] token ids -> [...] object array of tokens ("" for padding, "[UNK]" for OOV)."""
        table = np.asarray(self.get_vocabulary(), dtype=object)
        return table[as_ids(ids, self.size, "TextVectorizer.inverse")]

    def decode(self, ids: Any) -> list[str]:
        """[N, L] token ids -> N texts: the tokens of each row joined by spaces, padding dropped."""
        tokens = self.inverse(ids)
        if tokens.ndim != 2:
            raise ValueError(
                f"TextVectorizer.decode takes [N, L] ids. Got shape {tokens.shape} instead."
            )
        return [" ".join(t for t in row if t) for row in tokens.tolist()]

    def _set_state(self, state: Any) -> None:
        super()._set_state(state)
        vocab, counts = self.vocabulary_, self.counts_
        if not (
            isinstance(vocab, list)
            and isinstance(counts, list)
            and len(vocab) == len(counts)
            and all(isinstance(t, str) and t not in (PAD_TOKEN, OOV_TOKEN) for t in vocab)
            and len(set(vocab)) == len(vocab)
        ):
            self._clear_state()
            raise ConfigError(
                "A TextVectorizer state needs 'vocabulary_' (distinct non-empty str tokens, "
                "without '' and '[UNK]') and 'counts_' lists of the same length."
            )


__all__ = ["OOV_TOKEN", "PAD_TOKEN", "STRIP_PUNCTUATION", "TextVectorizer", "standardize"]
