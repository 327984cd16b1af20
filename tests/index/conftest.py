"""Shared data for the index tests: small clustered corpora and a NumPy top-k reference."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest


def _mixture(
    n: int, dim: int, centres: int, seed: int, spread: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    """-> [n, dim] corpus and [n // 10 + 1, dim] queries from one Gaussian mixture."""
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal((centres, dim)).astype(np.float32)
    corpus = mu[rng.integers(0, centres, n)] + spread * rng.standard_normal((n, dim))
    queries = mu[rng.integers(0, centres, n // 10 + 1)] + spread * rng.standard_normal(
        (n // 10 + 1, dim)
    )
    return corpus.astype(np.float32), queries.astype(np.float32)


def _reference(
    queries: np.ndarray, corpus: np.ndarray, k: int, excluded_mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """[B, D], [N, D] -> [B, k] float64 scores, [B, k] positions (argsort of adjusted scores)."""
    scores = queries.astype(np.float64) @ corpus.astype(np.float64).T
    adjusted = scores if excluded_mask is None else scores - 1e9 * excluded_mask
    order = np.argsort(-adjusted, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


@pytest.fixture
def mixture() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """The clustered-data builder: mixture(n, dim, centres, seed) -> corpus, queries."""
    return _mixture


@pytest.fixture
def reference() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """The NumPy top-k reference: reference(queries, corpus, k, excluded_mask) -> scores, pos."""
    return _reference


@pytest.fixture(autouse=True)
def _faiss_one_thread() -> Iterator[None]:
    """Run FAISS single-threaded here: on tiny corpora its threads only add overhead."""
    try:
        import faiss
    except ImportError:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)
