"""Discretize and Normalize: bucket edges, fitted boundaries, standardisation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from towerrec.errors import NotFittedError
from towerrec.features import Discretize, Normalize


def test_explicit_boundaries_edges_below_and_above():
    d = Discretize(boundaries=[0.0, 1.0, 2.0])
    assert d.size == 4
    # below min, exactly on 0, inside, exactly on 1, just below 2, exactly on 2, above max
    x = [-1.0, 0.0, 0.5, 1.0, 1.999, 2.0, 5.0]
    ids = d.transform(x)  # no fit needed with explicit boundaries
    assert ids.dtype == torch.int64
    assert ids.tolist() == [0, 1, 1, 2, 2, 3, 3]
    assert d.fit([100.0]).boundaries_ == [0.0, 1.0, 2.0]  # fit keeps explicit boundaries


def test_uniform_bins_cover_min_to_max():
    d = Discretize(num_bins=4).fit([0, 3, 8])
    assert d.boundaries_ == [2.0, 4.0, 6.0]
    assert d.size == 4
    assert d.transform([0, 1.99, 2, 7.9, 8, 9, -3]).tolist() == [0, 0, 1, 3, 3, 3, 0]


def test_linspace_is_the_deep_retrieval_recipe():
    rng = np.random.default_rng(1)
    timestamps = rng.integers(874_724_710, 893_286_638, 500)
    d = Discretize(num_bins=1000, strategy="linspace")
    assert d.size == 1001  # known before fitting
    d.fit(timestamps)
    boundaries = np.linspace(timestamps.min(), timestamps.max(), num=1000)
    assert d.boundaries_ == boundaries.tolist()
    expected = np.searchsorted(boundaries, timestamps, side="right")
    assert d.transform(timestamps).tolist() == expected.tolist()
    small = Discretize(num_bins=3, strategy="linspace").fit([0, 10])
    assert small.boundaries_ == [0.0, 5.0, 10.0]
    assert small.transform([-1, 0, 4.9, 5, 10, 11]).tolist() == [0, 1, 1, 2, 3, 3]


def test_quantile_bins():
    d = Discretize(num_bins=4, strategy="quantile").fit(np.arange(1, 9))
    assert d.boundaries_ == pytest.approx([2.75, 4.5, 6.25])
    assert d.transform([1, 2.75, 5, 8]).tolist() == [0, 1, 2, 3]


def test_discretize_errors():
    with pytest.raises(ValueError, match="exactly one of 'boundaries'"):
        Discretize().fit([1.0])
    with pytest.raises(ValueError, match="exactly one of 'boundaries'"):
        Discretize(boundaries=[1.0], num_bins=3).fit([1.0])
    with pytest.raises(ValueError, match="ascending"):
        Discretize(boundaries=[2.0, 1.0]).transform([1.0])
    with pytest.raises(ValueError, match="'strategy' parameter of Discretize"):
        Discretize(num_bins=3, strategy="log").fit([1.0])
    with pytest.raises(ValueError, match="1 missing"):
        Discretize(num_bins=3).fit([1.0, float("nan")])
    with pytest.raises(TypeError, match="needs numeric values; got dtype 'str'"):
        Discretize(num_bins=3).fit(pd.Series(["a", "b"]))
    with pytest.raises(NotFittedError, match="Discretize is not fitted yet"):
        Discretize(num_bins=3).transform([1.0])


def test_normalize_hand_checked():
    n = Normalize().fit([1, 2, 3])
    assert n.mean_ == 2.0 and n.var_ == pytest.approx(2 / 3)
    out = n.transform([1, 2, 3, 4])
    assert out.dtype == torch.float32 and out.shape == (4,)
    z = 1 / math.sqrt(2 / 3)
    assert out.tolist() == pytest.approx([-z, 0.0, z, 2 * z], rel=1e-6)
    assert n.inverse(out) == pytest.approx([1, 2, 3, 4], rel=1e-6)


def test_normalize_uses_float64_statistics_for_timestamps():
    n = Normalize().fit(np.array([1_000_000_000, 1_000_000_001, 1_000_000_002]))
    z = 1 / math.sqrt(2 / 3)
    assert n.transform([1_000_000_000, 1_000_000_002]).tolist() == pytest.approx([-z, z], rel=1e-6)


def test_normalize_zero_variance_gives_zeros():
    n = Normalize().fit([5.0, 5.0, 5.0])
    out = n.transform([5.0, 6.0, -1e30])
    assert torch.isfinite(out).all()
    assert out.tolist() == [0.0, 0.0, 0.0]


def test_normalize_errors():
    with pytest.raises(TypeError, match="got dtype 'object'"):
        Normalize().fit(np.array(["a", "b"], dtype=object))
    with pytest.raises(ValueError, match="missing"):
        Normalize().fit([1.0, None])
    with pytest.raises(NotFittedError):
        Normalize().transform([1.0])
