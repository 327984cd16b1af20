"""Synthetic embeddings shaped like trained ones, for index and serving benchmarks.

`gaussian_mixture` draws points around `centres` random centres (equal-sized clusters by
default, popularity-skewed ones with `skew > 0`), so nearest-neighbour structure resembles
that of trained two-tower embeddings rather than of isotropic noise (on which every ANN
index looks bad).
Import it from another benchmark script in this folder with
`from _synthetic import gaussian_mixture` (the script's folder is on `sys.path`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["gaussian_mixture", "mixture_centres"]


def mixture_centres(dim: int, centres: int = 1000, seed: int = 0) -> np.ndarray:
    """-> [centres, dim] float32 cluster centres with unit expected squared norm per dimension."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((centres, dim), dtype=np.float32)


def gaussian_mixture(
    n: int,
    dim: int = 64,
    centres: int = 1000,
    *,
    spread: float = 0.5,
    skew: float = 0.0,
    seed: int = 0,
    centre_seed: int = 0,
    chunk: int = 1 << 18,
) -> np.ndarray:
    """-> [n, dim] float32 points from a Gaussian mixture.

    Each point is `centre + spread * N(0, I)`; centre `c` is picked with probability
    proportional to `1 / (c + 1) ** skew` (skew=0: equal clusters). Points sharing
    `centre_seed` come from the same mixture, so queries drawn with another `seed` are
    in-distribution for a corpus drawn with the first.
    """
    mu = mixture_centres(dim, centres, centre_seed)
    weights = 1.0 / np.arange(1, centres + 1, dtype=np.float64) ** skew
    weights /= weights.sum()
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        end = min(n, start + chunk)
        which = rng.choice(centres, size=end - start, p=weights)
        out[start:end] = rng.standard_normal((end - start, dim), dtype=np.float32)
        out[start:end] *= spread
        out[start:end] += mu[which]
    return out
