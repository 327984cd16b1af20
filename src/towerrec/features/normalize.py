"""`Normalize`: standardise a numeric column with its fitted mean and variance."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from towerrec.errors import ConfigError
from towerrec.features.base import Transform, numeric_values


class Normalize(Transform):
    """[N] numbers -> [N] float32 `(x - mean) / sqrt(var)`, with the fitted mean and variance.

    Statistics are computed in float64 (population variance, as Keras' `Normalization`), the
    output is float32. A constant column (variance 0) maps every value to 0 (no NaN or inf);
    Keras divides by `max(std, 1e-7)` instead, which agrees on the fitted values. Missing
    values (NaN) are an error at fit and transform.

    Fitted attributes: `mean_`, `var_` (float64) and `count_` (values seen).
    """

    _state_keys = ("mean_", "var_", "count_")
    output_dtype = torch.float32

    def __init__(self, column: str | None = None) -> None:
        super().__init__(column=column)

    def _fit(self, values: pd.Series) -> None:
        owner = self._owner("fit")
        x = numeric_values(values, owner)
        if len(x) == 0:
            raise ValueError(f"{owner} got no values to compute a mean and variance from.")
        mean = float(x.mean())
        self.mean_ = mean
        self.var_ = float(np.mean(np.square(x - mean)))
        self.count_ = len(x)

    def _transform(self, values: pd.Series) -> torch.Tensor:
        x = numeric_values(values, self._owner("transform"))
        # A constant column carries no information: every value maps to 0.
        out = (x - self.mean_) / np.sqrt(self.var_) if self.var_ > 0 else np.zeros_like(x)
        return torch.from_numpy(out.astype(np.float32))

    def inverse(self, values: Any) -> np.ndarray:
        """[N] normalised values -> [N] float64 values on the original scale."""
        self._check_fitted()
        z = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values)
        return z.astype(np.float64) * np.sqrt(self.var_) + self.mean_

    def _set_state(self, state: Any) -> None:
        super()._set_state(state)
        numbers = (self.mean_, self.var_)
        if (
            not all(isinstance(v, int | float) and np.isfinite(v) for v in numbers)
            or self.var_ < 0
            or not isinstance(self.count_, int)
        ):
            self._clear_state()
            raise ConfigError(
                "A Normalize state needs a finite 'mean_', a finite 'var_' >= 0 and an int "
                f"'count_'. Got {dict(state)!r} instead."
            )


__all__ = ["Normalize"]
