"""TextVectorizer: standardisation, vocabulary order, padding, truncation."""

from __future__ import annotations

import pytest
import torch

from towerrec.errors import NotFittedError
from towerrec.features import TextVectorizer
from towerrec.features.text import standardize

TITLES = ["The Matrix (1999)", "The Matrix Reloaded (2003)", "Don't Look Up", None]


def test_lower_case_and_keras_punctuation():
    assert standardize("Hello, World!") == ["hello", "world"]
    assert standardize("Don't  (1999)\tA-B.c") == ["dont", "1999", "abc"]
    assert standardize("!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~'") == []
    assert standardize("naïve café") == ["naïve", "café"]  # non-ASCII letters are kept


def test_vocabulary_by_frequency_then_token():
    tv = TextVectorizer().fit(TITLES)
    # matrix 2, the 2 (tie -> alphabetical), then count-1 tokens alphabetically
    assert tv.vocabulary_ == ["matrix", "the", "1999", "2003", "dont", "look", "reloaded", "up"]
    assert tv.counts_ == [2, 2, 1, 1, 1, 1, 1, 1]
    assert tv.size == 10
    assert tv.get_vocabulary()[:4] == ["", "[UNK]", "matrix", "the"]


def test_transform_pads_to_longest_and_maps_oov_to_one():
    tv = TextVectorizer().fit(TITLES)
    ids = tv.transform(["THE matrix!!", "brand new words here", "", None])
    assert ids.dtype == torch.int64
    assert ids.tolist() == [[3, 2, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert tv.transform(["", None]).shape == (2, 1)  # at least one column
    assert tv.decode(ids) == ["the matrix", "[UNK] [UNK] [UNK] [UNK]", "", ""]
    assert tv.inverse(torch.tensor([0, 1, 2])).tolist() == ["", "[UNK]", "matrix"]


def test_output_sequence_length_truncates_and_pads():
    tv = TextVectorizer(output_sequence_length=2).fit(["a b c", "c"])
    # c 2, a 1, b 1 -> ids c=2, a=3, b=4
    assert tv.transform(["a b c", "c", ""]).tolist() == [[3, 4], [2, 0], [0, 0]]


def test_max_tokens_counts_padding_and_oov():
    tv = TextVectorizer(max_tokens=4).fit(TITLES)
    assert tv.vocabulary_ == ["matrix", "the"]
    assert tv.size == 4
    with pytest.raises(ValueError, match="'max_tokens' parameter of TextVectorizer"):
        TextVectorizer(max_tokens=2).fit(TITLES)


def test_text_errors():
    with pytest.raises(TypeError, match="needs text"):
        TextVectorizer().fit([1, 2])
    with pytest.raises(NotFittedError, match="TextVectorizer is not fitted yet"):
        TextVectorizer().transform(["a"])
