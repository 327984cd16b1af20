"""The `Transform` base class: fit on raw values, transform to tensors, save as JSON.

A transform follows the scikit-learn habits: the constructor only stores its arguments,
`fit(values)` learns the state and returns `self`, fitted attributes end in `_`, and using an
unfitted transform raises `NotFittedError`. The whole transform (arguments and fitted state)
round-trips through a JSON document, so serving maps raw values exactly as training did:

    {"type": "Lookup", "params": {"num_oov_buckets": 1, ...}, "state": {"vocabulary_": [...]}}

`Transform.from_config` rebuilds a transform from such a dict through a registry of transform
types (every subclass registers itself under its class name, or under `type_name` when it sets
one). Nothing is ever evaluated or unpickled.
"""

from __future__ import annotations

import inspect
import os
import zlib
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from towerrec._io import read_json, write_json
from towerrec.errors import ConfigError, NotFittedError

#: Version of the JSON document written by `Transform.save`.
FORMAT_VERSION = 1
TRANSFORM_FORMAT = "towerrec.Transform"

_REGISTRY: dict[str, type[Transform]] = {}


class Transform:
    """Base class of fitted feature transforms: raw column values -> tensors.

    Subclasses implement `_fit(values)` and `_transform(values)` (both receive a pandas Series)
    and list their fitted attributes in `_state_keys`; those attributes must hold JSON-able
    values (lists, str, int, float). `column` names the source column; left as `None`, a
    `FeatureSpace` reads the column named like the feature's key.
    """

    #: Name of the transform in configs; defaults to the class name.
    type_name: ClassVar[str] = "Transform"
    #: Names of the fitted attributes (all end in "_"); they make up the saved state.
    _state_keys: ClassVar[tuple[str, ...]] = ()
    #: dtype of the tensors `transform` returns.
    output_dtype: ClassVar[torch.dtype] = torch.int64

    def __init__(self, column: str | None = None) -> None:
        self.column = column

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "type_name" not in cls.__dict__:
            cls.type_name = cls.__name__
        if cls.__name__.startswith("_"):
            return
        existing = _REGISTRY.get(cls.type_name)
        if existing is not None and (existing.__module__, existing.__qualname__) != (
            cls.__module__,
            cls.__qualname__,
        ):
            raise ConfigError(
                f"A Transform type named {cls.type_name!r} is already registered "
                f"({existing.__module__}.{existing.__qualname__}); give "
                f"{cls.__module__}.{cls.__qualname__} another class name or set its "
                f"'type_name' class attribute."
            )
        _REGISTRY[cls.type_name] = cls

    # ----------------------------------------------------------------- fitting
    def fit(self, values: Any) -> Transform:
        """Learn the transform's state from `values` (a pandas Series, numpy array or list).

        Refitting discards the previous state. Returns `self`.
        """
        series = as_series(values, self._owner("fit"))
        self._check_params()
        self._clear_state()
        self._fit(series)
        return self

    def transform(self, values: Any) -> torch.Tensor:
        """[N] raw values -> tensor with N rows (shape and dtype depend on the transform)."""
        self._check_fitted()
        self._check_params()
        return self._transform(as_series(values, self._owner("transform")))

    def fit_transform(self, values: Any) -> torch.Tensor:
        """[N] raw values -> tensor with N rows: `fit(values)` then `transform(values)`."""
        return self.fit(values).transform(values)

    @property
    def is_fitted(self) -> bool:
        """Whether the transform can transform: its fitted attributes are all set."""
        return all(key in self.__dict__ for key in self._state_keys)

    @property
    def size(self) -> int:
        """Number of distinct ids the output can take (rows an embedding table needs)."""
        raise AttributeError(
            f"{type(self).__name__} has no 'size': it outputs values, not ids. Only id "
            f"transforms (Lookup, Discretize, TextVectorizer, Hashing) have a size."
        )

    # ----------------------------------------------------------------- hooks
    def _fit(self, values: pd.Series) -> None:
        """Learn the fitted attributes from `values` (the base has nothing to learn)."""

    def _transform(self, values: pd.Series) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement _transform(values)")

    def _check_params(self) -> None:
        """Validate the constructor arguments (called by fit and transform)."""

    def _get_state(self) -> dict[str, Any]:
        return {key: to_jsonable(getattr(self, key)) for key in self._state_keys}

    def _set_state(self, state: Mapping[str, Any]) -> None:
        missing = [key for key in self._state_keys if key not in state]
        unknown = [key for key in state if key not in self._state_keys]
        if missing or unknown:
            raise ConfigError(
                f"The fitted state of a {self.type_name} config must have exactly the keys "
                f"{list(self._state_keys)}. Got missing {missing} and unknown {unknown}."
            )
        self._clear_state()
        for key in self._state_keys:
            setattr(self, key, state[key])

    # ----------------------------------------------------------------- config
    def get_params(self) -> dict[str, Any]:
        """The constructor arguments, by name (as stored by the constructor)."""
        return {name: getattr(self, name) for name in _init_parameters(type(self))}

    def to_config(self) -> dict[str, Any]:
        """A JSON-able dict: `type`, constructor `params` and fitted `state` (None if unfitted)."""
        return {
            "type": self.type_name,
            "params": to_jsonable(self.get_params()),
            "state": self._get_state() if self.is_fitted and self._state_keys else None,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Transform:
        """Rebuild a transform (with its fitted state) from `to_config()`'s dict.

        Dispatches on `config["type"]` through the registry of Transform subclasses; called on
        a subclass, the config must be of that subclass.
        """
        if not isinstance(config, Mapping):
            raise ConfigError(
                f"A transform config must be a dict with a 'type' key. Got "
                f"{type(config).__name__} instead."
            )
        type_name = config.get("type")
        klass = _REGISTRY.get(type_name) if isinstance(type_name, str) else None
        if klass is None:
            raise ConfigError(
                f"Unknown transform type {type_name!r} in config. Known types: "
                f"{sorted(_REGISTRY)}. Define (import) a custom Transform subclass before "
                f"loading a config that uses it."
            )
        if not issubclass(klass, cls):
            raise ConfigError(
                f"{cls.__name__}.from_config got a config of type {type_name!r}; use "
                f"Transform.from_config to load any transform type."
            )
        params = config.get("params") or {}
        if not isinstance(params, Mapping):
            raise ConfigError(
                f"The 'params' of a {type_name} config must be a dict. Got "
                f"{type(params).__name__} instead."
            )
        allowed = _init_parameters(klass)
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ConfigError(
                f"Unknown parameter(s) {unknown} in a {type_name} config. Allowed: {allowed}."
            )
        transform = klass(**params)
        state = config.get("state")
        if state is not None:
            if not isinstance(state, Mapping):
                raise ConfigError(
                    f"The 'state' of a {type_name} config must be a dict or null. Got "
                    f"{type(state).__name__} instead."
                )
            transform._set_state(state)
        return transform

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the transform (parameters and fitted state) to `path` as one JSON document."""
        write_json(
            path,
            {"format": TRANSFORM_FORMAT, "format_version": FORMAT_VERSION, **self.to_config()},
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Transform:
        """Read a transform written by `save`."""
        doc = read_json(path)
        if not isinstance(doc, dict) or doc.get("format") != TRANSFORM_FORMAT:
            found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
            hint = " Use FeatureSpace.load for it." if found == "towerrec.FeatureSpace" else ""
            raise ConfigError(
                f"{os.fspath(path)!r} is not a saved transform (format {found!r}, expected "
                f"{TRANSFORM_FORMAT!r}).{hint}"
            )
        check_format_version(doc.get("format_version"), path)
        return cls.from_config({k: doc[k] for k in ("type", "params", "state") if k in doc})

    # ----------------------------------------------------------------- helpers
    def _owner(self, method: str | None = None) -> str:
        name = type(self).__name__
        if self.column is not None:
            name = f"{name}(column={self.column!r})"
        return f"{name}.{method}" if method else name

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted yet: call fit(values) first")

    def _clear_state(self) -> None:
        for key in self._state_keys:
            self.__dict__.pop(key, None)
        self.__dict__.pop("_cache", None)

    def _cached(self, key: str, factory: Any) -> Any:
        """A value derived from the fitted state, computed once per fit/load."""
        cache = self.__dict__.setdefault("_cache", {})
        if key not in cache:
            cache[key] = factory()
        return cache[key]

    def __repr__(self) -> str:
        defaults = _init_defaults(type(self))
        shown = []
        for name, value in self.get_params().items():
            default = defaults.get(name, inspect.Parameter.empty)
            if default is inspect.Parameter.empty or not _same(value, default):
                shown.append(f"{name}={_short_repr(value)}")
        return f"{type(self).__name__}({', '.join(shown)})"


# --------------------------------------------------------------------------- value helpers
def as_series(values: Any, owner: str) -> pd.Series:
    """Turn a pandas Series/Index, numpy array, torch tensor or list into a 1-D Series."""
    if isinstance(values, pd.Series):
        return values.reset_index(drop=True)
    if isinstance(values, pd.DataFrame):
        raise TypeError(
            f"{owner} takes one column of values (a Series, array or list), not a DataFrame "
            f"with columns {list(values.columns)}. Pass df[column] instead."
        )
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise TypeError(
            f"{owner} takes a 1-D sequence of values (a Series, array or list). Got a single "
            f"{type(values).__name__} ({_short_repr(values)}); wrap it in a list."
        )
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise ValueError(
                f"{owner} takes a 1-D sequence of values. Got an array of shape "
                f"{values.shape}; pass one column (flatten it or select it) instead."
            )
        # Object arrays stay object (no costly conversion to a string dtype).
        return pd.Series(values, dtype=values.dtype if values.dtype == object else None)
    if isinstance(values, pd.Index | pd.api.extensions.ExtensionArray):
        return pd.Series(values)
    values = values if isinstance(values, list | tuple) else list(values)
    return pd.Series(list(values), dtype=object if len(values) == 0 else None)


def as_ids(ids: Any, size: int, owner: str) -> np.ndarray:
    """[...] int ids (tensor, array, list, int) -> [...] int64 array, checked in [0, size)."""
    if isinstance(ids, torch.Tensor):
        array = ids.detach().cpu().numpy()
    elif isinstance(ids, pd.Series):
        array = ids.to_numpy()
    else:
        array = np.asarray(ids)
    if array.dtype.kind not in "iu":
        if array.size == 0:
            array = array.astype(np.int64)
        else:
            raise TypeError(f"{owner} takes integer ids. Got dtype {array.dtype} instead.")
    array = array.astype(np.int64, copy=False)
    if array.size and (array.min() < 0 or array.max() >= size):
        bad = array[(array < 0) | (array >= size)].ravel()[0]
        raise IndexError(f"{owner} got id {int(bad)}, outside [0, {size}).")
    return array


def factorize_discrete(
    series: pd.Series, owner: str, *, distinct: bool = True
) -> tuple[np.ndarray, np.ndarray, str]:
    """[N] discrete values -> [N] int64 codes (-1 = missing), [U] distinct values, kind.

    With `distinct=False` a plain int column skips the factorisation (codes are 0..N-1 and the
    "uniques" are the values themselves, repeats included): faster where only a per-value
    mapping is needed, not counts.

    `kind` is "int" (uniques an int64 array), "str" (uniques an object array of str) or
    "empty" (no values present). Floats that are all whole numbers count as ints (a column of
    ints with missing values reads from CSV as floats). Other values (non-integral floats,
    bools, a mix of ints and strings) raise a TypeError that names the dtype and the fix. The
    type is inferred on the distinct values only, so long columns stay fast.
    """
    if not distinct and series.dtype.kind in "iu" and isinstance(series.dtype, np.dtype):
        return np.arange(len(series), dtype=np.int64), series.to_numpy(np.int64), "int"
    codes, index = series.factorize(use_na_sentinel=True)
    codes = np.asarray(codes, dtype=np.int64)
    if len(index) == 0:
        return codes, np.empty(0, dtype=object), "empty"
    dtype = index.dtype
    if isinstance(dtype, pd.CategoricalDtype) or dtype == np.dtype(object):
        uniques = np.asarray(index, dtype=object)
        kind = pd.api.types.infer_dtype(uniques, skipna=True)
    elif pd.api.types.is_bool_dtype(dtype):
        uniques, kind = np.asarray(index, dtype=object), "boolean"
    elif pd.api.types.is_integer_dtype(dtype):
        return codes, index.to_numpy(dtype=np.int64), "int"
    elif pd.api.types.is_float_dtype(dtype):
        uniques, kind = index.to_numpy(dtype=np.float64), "floating"
    elif pd.api.types.is_string_dtype(dtype):
        return codes, index.to_numpy(dtype=object), "str"
    else:
        uniques, kind = np.asarray(index, dtype=object), str(dtype)
    if kind == "string":
        return codes, uniques, "str"
    if kind == "integer":
        return codes, uniques.astype(np.int64), "int"
    if kind in ("floating", "mixed-integer-float"):
        floats = uniques.astype(np.float64)
        whole = np.isfinite(floats) & (floats == np.round(floats))
        if whole.all():
            return codes, floats.astype(np.int64), "int"
        raise TypeError(
            f"{owner} maps discrete values (ints or strings); got float values such as "
            f"{float(floats[~whole][0])!r} (dtype {series.dtype}). Use Discretize or Normalize for "
            f"continuous values, or cast the column with .astype(int) or .astype(str)."
        )
    raise TypeError(
        f"{owner} maps discrete values that are all ints or all strings; got "
        f"{kind.replace('-', ' ')} values (dtype {series.dtype}, e.g. "
        f"{_short_repr(uniques[0])}). Cast the column with .astype(str) or .astype(int) first."
    )


def numeric_values(series: pd.Series, owner: str, *, allow_nan: bool = False) -> np.ndarray:
    """Numeric values as a float64 array; a clear TypeError names a non-numeric dtype."""
    dtype = series.dtype
    numeric = pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)
    if not numeric and dtype == np.dtype(object):
        numeric = pd.api.types.infer_dtype(series, skipna=True) in (
            "integer",
            "floating",
            "mixed-integer-float",
            "decimal",
            "boolean",
            "empty",
        )
    if not numeric:
        raise TypeError(
            f"{owner} needs numeric values; got dtype '{dtype}' (e.g. "
            f"{_short_repr(_first_present(series))}). Convert the column with pd.to_numeric, "
            f"or use Lookup, Hashing or TextVectorizer for strings."
        )
    out = series.to_numpy(dtype=np.float64, na_value=np.nan)
    if not allow_nan:
        nans = int(np.isnan(out).sum())
        if nans:
            raise ValueError(
                f"{owner} got {nans} missing (NaN) value(s) out of {len(out)}. Fill or drop "
                f"them first (e.g. series.fillna(series.median()))."
            )
    return out


def stable_hash(values: np.ndarray) -> np.ndarray:
    """[U] ints or strings -> [U] uint64 hashes, the same in every process and on every platform.

    int64 arrays go through the SplitMix64 finaliser (vectorised); anything else hashes the
    UTF-8 bytes of each value's string form with CRC-32 (`zlib.crc32`). Never Python's salted
    `hash`. Call it on distinct values (see `factorize_discrete`) and gather with the codes.
    """
    values = np.asarray(values)
    if values.dtype.kind in "iu":
        z = values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))
    return np.fromiter(
        (zlib.crc32(str(v).encode("utf-8")) for v in values.tolist()),
        dtype=np.uint64,
        count=len(values),
    )


def to_jsonable(value: Any) -> Any:
    """Convert numpy/torch scalars and arrays (also nested in lists/dicts) to JSON types."""
    if isinstance(value, np.ndarray | torch.Tensor):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def check_format_version(version: Any, path: Any) -> None:
    """Raise a ConfigError unless `version` is a format version this code can read."""
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ConfigError(f"{os.fspath(path)!r} has no valid 'format_version'. Got {version!r}.")
    if version > FORMAT_VERSION:
        raise ConfigError(
            f"{os.fspath(path)!r} was written with format_version {version}, newer than this "
            f"towerrec reads ({FORMAT_VERSION}). Upgrade towerrec to load it."
        )


def check_int(value: Any, name: str, owner: str, *, minimum: int, allow_none: bool = False) -> None:
    """Raise a ValueError unless `value` is an int >= minimum (or None when allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        what = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        what += " or None" if allow_none else ""
        raise ValueError(
            f"The '{name}' parameter of {owner} must be {what}. Got {value!r} instead."
        )


def _init_parameters(cls: type) -> list[str]:
    sig = inspect.signature(cls.__init__)
    return [
        name
        for name, p in sig.parameters.items()
        if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def _init_defaults(cls: type) -> dict[str, Any]:
    sig = inspect.signature(cls.__init__)
    return {name: p.default for name, p in sig.parameters.items() if name != "self"}


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(type(a) is type(b) and a == b)
    except (ValueError, TypeError):
        return False


def _first_present(series: pd.Series) -> Any:
    present = series.dropna()
    return present.iloc[0] if len(present) else None


def _short_repr(value: Any, limit: int = 60) -> str:
    if isinstance(value, np.ndarray | list | tuple) and len(value) > 6:
        items = list(value[:3])
        return f"[{', '.join(repr(to_jsonable(v)) for v in items)}, ... ({len(value)} values)]"
    text = repr(to_jsonable(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."
