"""`Discretize`: continuous values -> bucket ids, with explicit or fitted boundaries."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from towerrec.errors import ConfigError
from towerrec.features.base import Transform, check_int, numeric_values

_STRATEGIES = ("uniform", "quantile", "linspace")


class Discretize(Transform):
    """[N] numbers -> [N] int64 bucket ids.

    Semantics as Keras' `Discretization`: bucket `i` holds `boundaries[i-1] <= x <
    boundaries[i]` (`np.searchsorted(boundaries, x, side="right")`), so there are
    `len(boundaries) + 1` buckets; values below the first boundary go to bucket 0 and values
    at or above the last one to the last bucket. A value exactly on a boundary goes to the
    bucket above it. `size` is the number of buckets.

    Where the boundaries come from (min, max and quantiles of the fitted data):

    - `boundaries=[b0, ..., bk]`: as given (finite, ascending); `fit` is optional; size k + 2.
    - `num_bins=n, strategy="uniform"` (default): `np.linspace(min, max, n + 1)[1:-1]`, the
      n - 1 inner edges of n equal-width buckets covering [min, max] (the maximum lands in the
      last one); size n.
    - `num_bins=n, strategy="quantile"`: `np.quantile(x, [1/n, ..., (n-1)/n])`; size n (edges
      may repeat on skewed data, leaving empty buckets).
    - `num_bins=n, strategy="linspace"`: `np.linspace(min, max, n)`, the deep-retrieval
      tutorial's recipe `boundaries = np.linspace(min_ts, max_ts, num=1000)`:
      `Discretize(num_bins=1000, strategy="linspace")` gives exactly its 1,000 boundaries and
      1,001 buckets (bucket 0 only for values below min, the last only for values >= max);
      size n + 1.

    `size` is known before fitting: it follows from the arguments alone.
    Missing values (NaN) are an error at fit and transform. Fitted attribute: `boundaries_`.
    """

    _state_keys = ("boundaries_",)

    def __init__(
        self,
        boundaries: list[float] | None = None,
        num_bins: int | None = None,
        strategy: str = "uniform",
        column: str | None = None,
    ) -> None:
        super().__init__(column=column)
        self.boundaries = boundaries
        self.num_bins = num_bins
        self.strategy = strategy

    @property
    def is_fitted(self) -> bool:
        """Whether boundaries are known: fitted, or given explicitly."""
        return self.boundaries is not None or "boundaries_" in self.__dict__

    @property
    def size(self) -> int:
        """Number of buckets: len(boundaries) + 1 (known from the arguments before fitting)."""
        if "boundaries_" in self.__dict__ or self.boundaries is not None:
            return len(self._boundaries()) + 1
        self._check_params()
        return int(self.num_bins) + (self.strategy == "linspace")

    def _check_params(self) -> None:
        if (self.boundaries is None) == (self.num_bins is None):
            raise ValueError(
                "Discretize needs exactly one of 'boundaries' (explicit bucket edges) or "
                f"'num_bins' (boundaries fitted on data). Got boundaries={self.boundaries!r} "
                f"and num_bins={self.num_bins!r}."
            )
        if self.strategy not in _STRATEGIES:
            raise ValueError(
                f"The 'strategy' parameter of Discretize must be one of {_STRATEGIES}. Got "
                f"{self.strategy!r} instead."
            )
        if self.num_bins is not None:
            check_int(self.num_bins, "num_bins", "Discretize", minimum=1)
        else:
            _checked_boundaries(self.boundaries, "The 'boundaries' parameter of Discretize")

    def _fit(self, values: pd.Series) -> None:
        if self.boundaries is not None:
            self.boundaries_ = _checked_boundaries(self.boundaries, "Discretize")
            return
        owner = self._owner("fit")
        x = numeric_values(values, owner)
        if len(x) == 0:
            raise ValueError(f"{owner} got no values to fit boundaries on.")
        n = int(self.num_bins)
        lo, hi = float(x.min()), float(x.max())
        if self.strategy == "uniform":
            edges = np.linspace(lo, hi, n + 1)[1:-1]
        elif self.strategy == "linspace":
            edges = np.linspace(lo, hi, n)
        else:
            edges = np.quantile(x, np.arange(1, n) / n)
        self.boundaries_ = [float(b) for b in edges]

    def _transform(self, values: pd.Series) -> torch.Tensor:
        x = numeric_values(values, self._owner("transform"))
        ids = np.searchsorted(self._boundary_array(), x, side="right")
        return torch.from_numpy(ids.astype(np.int64))

    def _boundaries(self) -> list[float]:
        if "boundaries_" in self.__dict__:
            return self.boundaries_
        self._check_fitted()
        return _checked_boundaries(self.boundaries, "Discretize")

    def _boundary_array(self) -> np.ndarray:
        if "boundaries_" not in self.__dict__:
            return np.asarray(self._boundaries(), dtype=np.float64)
        return self._cached("boundaries", lambda: np.asarray(self.boundaries_, dtype=np.float64))

    def _get_state(self) -> dict[str, Any]:
        return {"boundaries_": list(self._boundaries())}

    def _set_state(self, state: Any) -> None:
        super()._set_state(state)
        try:
            self.boundaries_ = _checked_boundaries(self.boundaries_, "A Discretize state")
        except ValueError as e:
            self._clear_state()
            raise ConfigError(str(e)) from e


def _checked_boundaries(boundaries: Any, owner: str) -> list[float]:
    """Boundaries as a list of floats; raise unless 1-D, finite and sorted ascending."""
    try:
        array = np.asarray(boundaries, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if array is None or array.ndim != 1:
        raise ValueError(
            f"{owner} needs 'boundaries' as a 1-D list of numbers. Got {boundaries!r} instead."
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{owner} needs finite boundaries. Got {array.tolist()} instead.")
    if np.any(np.diff(array) < 0):
        raise ValueError(
            f"{owner} needs boundaries sorted in ascending order. Got {array.tolist()} "
            f"instead; sort them first."
        )
    return array.tolist()


__all__ = ["Discretize"]
