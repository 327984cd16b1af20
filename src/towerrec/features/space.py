"""`FeatureSpace`: a named set of transforms, fitted and saved together."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pandas as pd
import torch

from towerrec._io import read_json, write_json
from towerrec.errors import ConfigError, DataFormatError, NotFittedError
from towerrec.features.base import FORMAT_VERSION, Transform, as_series, check_format_version

SPACE_FORMAT = "towerrec.FeatureSpace"

Frame = pd.DataFrame | Mapping[str, Any]


class FeatureSpace:
    """A named set of feature transforms: fit on frames, transform frames to tensors.

    `transforms` maps a feature name to a `Transform`; the transform reads the column
    `transform.column`, or the column named like the feature when `column` is None (so one
    column can feed several features, e.g. a timestamp both bucketed and normalised). Frames
    are pandas DataFrames or mappings of column name -> values (lists, arrays, Series).

    >>> space = FeatureSpace({"user_id": Lookup(), "movie_title": Lookup()})
    >>> space.fit(ratings, movies)          # titles from both frames
    >>> batch = space.transform(ratings)    # {"user_id": [N] int64, "movie_title": [N] int64}
    >>> space["movie_title"].size           # rows of the title embedding table

    The whole space (every transform's parameters and fitted state) saves to one JSON
    document with a format version, written atomically.
    """

    def __init__(self, transforms: Mapping[str, Transform]) -> None:
        if not isinstance(transforms, Mapping):
            raise TypeError(
                "FeatureSpace takes a dict of feature name -> Transform. Got "
                f"{type(transforms).__name__} instead."
            )
        for name, transform in transforms.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"FeatureSpace feature names must be non-empty str. Got {name!r}.")
            if not isinstance(transform, Transform):
                raise TypeError(
                    f"FeatureSpace feature {name!r} must be a towerrec Transform (Lookup, "
                    f"Discretize, ...). Got {type(transform).__name__} instead."
                )
            if transform.column is not None and not isinstance(transform.column, str):
                raise TypeError(
                    f"The 'column' of FeatureSpace feature {name!r} must be a str or None. Got "
                    f"{transform.column!r} instead."
                )
        self.transforms: dict[str, Transform] = dict(transforms)

    # ----------------------------------------------------------------- access
    def column_of(self, name: str) -> str:
        """The source column of feature `name`."""
        transform = self[name]
        return transform.column if transform.column is not None else name

    @property
    def names(self) -> list[str]:
        """Feature names, in order."""
        return list(self.transforms)

    @property
    def columns(self) -> dict[str, str]:
        """Feature name -> source column."""
        return {name: self.column_of(name) for name in self.transforms}

    @property
    def is_fitted(self) -> bool:
        """Whether every transform is fitted."""
        return all(t.is_fitted for t in self.transforms.values())

    def __getitem__(self, name: str) -> Transform:
        """The transform of feature `name`."""
        try:
            return self.transforms[name]
        except KeyError:
            raise KeyError(
                f"No feature named {name!r} in this FeatureSpace; features: {self.names}."
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self.transforms

    def __iter__(self) -> Iterator[str]:
        return iter(self.transforms)

    def __len__(self) -> int:
        return len(self.transforms)

    # ----------------------------------------------------------------- fit / transform
    def fit(self, *frames: Frame) -> FeatureSpace:
        """Fit every transform on its column, taken from every frame that has it, concatenated.

        A column that no frame has is an error naming it and listing the frames' columns.
        Returns `self`.
        """
        if not frames:
            raise TypeError("FeatureSpace.fit needs at least one frame (a DataFrame or dict).")
        frame_columns = [_columns(frame, i) for i, frame in enumerate(frames)]
        for name, transform in self.transforms.items():
            column = self.column_of(name)
            parts = [
                as_series(frame[column], f"FeatureSpace.fit (column {column!r})")
                for frame, cols in zip(frames, frame_columns, strict=True)
                if column in cols
            ]
            if not parts:
                listed = "; ".join(f"frame {i}: {cols}" for i, cols in enumerate(frame_columns))
                raise DataFormatError(
                    f"FeatureSpace.fit: no frame has column {column!r} for feature {name!r} "
                    f"({listed}). Add the column, or set the transform's 'column' to the "
                    f"right name."
                )
            values = parts[0] if len(parts) == 1 else _concat(parts)
            with _context(name, column, values):
                transform.fit(values)
        return self

    def transform(
        self, frame: Frame, names: Sequence[str] | None = None, strict: bool = False
    ) -> dict[str, torch.Tensor]:
        """[N]-row frame -> {feature name: [N] or [N, L] tensor}, one entry per feature.

        Transforms every feature whose column is in `frame` (all of `names` when given). A
        missing column is an error with `strict=True` or when the feature is listed in
        `names`; a frame with none of the features' columns is always an error.
        """
        if isinstance(names, str):
            names = [names]
        wanted = self.names if names is None else list(names)
        unknown = [n for n in wanted if n not in self.transforms]
        if unknown:
            raise KeyError(
                f"FeatureSpace.transform got unknown feature name(s) {unknown}; features: "
                f"{self.names}."
            )
        cols = _columns(frame, None)
        out: dict[str, torch.Tensor] = {}
        for name in wanted:
            column = self.column_of(name)
            if column not in cols:
                if strict or names is not None:
                    raise DataFormatError(
                        f"FeatureSpace.transform: feature {name!r} needs column {column!r}, "
                        f"which the frame lacks (columns: {cols}). Add the column, or leave "
                        f"the feature out of 'names'."
                    )
                continue
            transform = self.transforms[name]
            if not transform.is_fitted:
                raise NotFittedError(
                    f"Feature {name!r} ({type(transform).__name__}) of this FeatureSpace is not "
                    f"fitted yet: call FeatureSpace.fit(frames) first"
                )
            values = as_series(frame[column], f"FeatureSpace.transform (column {column!r})")
            with _context(name, column, values):
                out[name] = transform.transform(values)
        if not out and wanted:
            raise DataFormatError(
                f"FeatureSpace.transform: the frame has none of the features' columns "
                f"{sorted(set(self.column_of(n) for n in wanted))} (columns: {cols})."
            )
        return out

    def fit_transform(self, *frames: Frame) -> dict[str, torch.Tensor]:
        """[N]-row frames[0] -> {name: [N] or [N, L] tensor}: fit on all, transform the first."""
        return self.fit(*frames).transform(frames[0])

    # ----------------------------------------------------------------- config
    def to_config(self) -> dict[str, Any]:
        """A JSON-able dict: format, format version and every feature's transform config."""
        return {
            "format": SPACE_FORMAT,
            "format_version": FORMAT_VERSION,
            "features": {name: t.to_config() for name, t in self.transforms.items()},
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, source: Any = "config") -> FeatureSpace:
        """Rebuild a FeatureSpace (with fitted state) from `to_config()`'s dict."""
        if not isinstance(config, Mapping) or config.get("format") != SPACE_FORMAT:
            found = config.get("format") if isinstance(config, Mapping) else type(config).__name__
            raise ConfigError(
                f"{source} is not a FeatureSpace (format {found!r}, expected {SPACE_FORMAT!r})."
            )
        check_format_version(config.get("format_version"), source)
        features = config.get("features")
        if not isinstance(features, Mapping):
            raise ConfigError(f"{source} has no 'features' dict.")
        transforms = {}
        for name, feature_config in features.items():
            try:
                transforms[name] = Transform.from_config(feature_config)
            except ConfigError as e:
                raise ConfigError(f"Feature {name!r} of {source}: {e}") from e
        return cls(transforms)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the space to `path` as one JSON document, atomically."""
        write_json(path, self.to_config())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FeatureSpace:
        """Read a space written by `save`."""
        return cls.from_config(read_json(path), source=repr(os.fspath(path)))

    def __repr__(self) -> str:
        lines = []
        for name, transform in self.transforms.items():
            size = _size_text(transform)
            line = f"  {name}: {transform!r} <- column {self.column_of(name)!r}"
            lines.append(line + (f", size {size}" if size else ""))
        return "FeatureSpace(\n" + "\n".join(lines) + "\n)" if lines else "FeatureSpace()"


def _columns(frame: Any, position: int | None) -> list[str]:
    if isinstance(frame, pd.DataFrame):
        return list(frame.columns)
    if isinstance(frame, Mapping):
        return list(frame.keys())
    where = f" (frame {position})" if position is not None else ""
    raise TypeError(
        f"FeatureSpace takes frames as pandas DataFrames or dicts of column -> values. Got "
        f"{type(frame).__name__}{where} instead."
    )


def _concat(parts: list[pd.Series]) -> pd.Series:
    parts = [p for p in parts if len(p)] or parts[:1]
    dtypes = {str(p.dtype) for p in parts}
    if len(dtypes) > 1:  # e.g. int64 ids in one frame, str ids in another: keep the raw values
        parts = [p.astype(object) for p in parts]
    return pd.concat(parts, ignore_index=True)


@contextmanager
def _context(name: str, column: str, values: pd.Series) -> Iterator[None]:
    """Re-raise a TypeError/ValueError from a transform with the feature, column and dtype."""
    try:
        yield
    except (TypeError, ValueError) as exc:
        try:
            wrapped = type(exc)(
                f"Feature {name!r} (column {column!r}, dtype {values.dtype}): {exc}"
            )
        except Exception:
            raise exc from None
        raise wrapped from exc


def _size_text(transform: Transform) -> str:
    try:
        return str(transform.size)
    except AttributeError:
        return ""
    except NotFittedError:
        return "? (not fitted)"


__all__ = ["FeatureSpace"]
