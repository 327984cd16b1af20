"""The top-k index interface shared by every index, and `load` for saved indexes.

An index holds N candidate vectors with their raw ids (str or int) and answers
"which k candidates have the largest inner product with this query?". Subclasses implement
four hooks (`_fit`, `_search`, `_save_vectors`, `_load_vectors`); validation, id mapping,
exclusions, padding and the `index.json` file are handled here once for all of them.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch

from towerrec._io import read_json, write_json
from towerrec.errors import DataFormatError, NotFittedError

__all__ = ["Index", "load"]

FORMAT_VERSION = 1
_REGISTRY: dict[str, type[Index]] = {}

ArrayLike = torch.Tensor | np.ndarray | Sequence[Sequence[float]]


@dataclass(frozen=True)
class Exclusions:
    """Excluded (row, position) pairs of one query batch, sorted by position.

    `rows[i]` is a query row and `positions[i]` a corpus position never to return for it;
    `max_per_row` is the largest number of excluded positions of any row.
    """

    rows: np.ndarray
    positions: np.ndarray
    max_per_row: int

    def keys(self, size: int) -> np.ndarray:
        """[E] int64 keys `row * size + position`, sorted, for fast membership tests."""
        return np.sort(self.rows * size + self.positions)


def _check_k(k: Any, owner: str) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(
            f"The 'k' parameter of {owner}.query must be a positive int. Got {k!r} instead."
        )
    return int(k)


def _to_numpy_2d(x: Any, what: str, owner: str) -> np.ndarray:
    """Any tensor/array-like -> a float32 C-contiguous numpy array (not yet shape-checked)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype in (torch.bool, torch.complex64, torch.complex128):
            raise TypeError(
                f"The {what} passed to {owner} must be a real-valued float tensor. "
                f"Got dtype {x.dtype} instead."
            )
        arr = x.to(torch.float32).numpy()
    else:
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as e:
            raise TypeError(
                f"The {what} passed to {owner} must be a float tensor or numpy array. "
                f"Got {type(x).__name__} instead."
            ) from e
        if arr.dtype.kind not in "fiu":
            raise TypeError(
                f"The {what} passed to {owner} must be a real-valued float tensor or array. "
                f"Got dtype {arr.dtype} instead."
            )
    return np.ascontiguousarray(arr, dtype=np.float32)


def _as_ids(ids: Any, n: int) -> np.ndarray:
    """Raw ids -> an int64 array or an object array of str, of length `n`, without duplicates."""
    if ids is None:
        return np.arange(n, dtype=np.int64)
    if isinstance(ids, str | bytes):
        raise TypeError(
            "The 'ids' parameter of Index.index must be a sequence of str or int ids, one per "
            f"embedding. Got a single {type(ids).__name__} instead."
        )
    if isinstance(ids, torch.Tensor):
        if ids.is_floating_point() or ids.dtype in (torch.bool, torch.complex64):
            raise TypeError(
                f"The 'ids' parameter of Index.index must hold str or int ids. Got a tensor of "
                f"dtype {ids.dtype} instead."
            )
        arr = ids.detach().cpu().reshape(-1).to(torch.int64).numpy()
    else:
        if not isinstance(ids, np.ndarray) and not hasattr(ids, "__array__"):
            ids = list(ids)
            arr = np.empty(len(ids), dtype=object)
            arr[:] = ids
        else:
            arr = np.asarray(ids)
        if arr.ndim != 1:
            raise ValueError(
                "The 'ids' parameter of Index.index must be one-dimensional (one id per "
                f"embedding). Got shape {arr.shape} instead."
            )
        arr = _normalise_id_dtype(arr)
    if len(arr) != n:
        raise ValueError(
            f"The 'ids' parameter of Index.index must have one id per embedding: got {len(arr)} "
            f"ids for {n} embeddings. Pass exactly {n} ids, or none for 0..{n - 1}."
        )
    unique = len(set(arr.tolist())) if arr.dtype == object else len(np.unique(arr))
    if unique != n:
        values, counts = np.unique(
            arr.astype(str) if arr.dtype == object else arr, return_counts=True
        )
        dup = values[counts > 1][:3].tolist()
        raise ValueError(
            f"The 'ids' parameter of Index.index must hold unique ids; {n - unique} duplicates "
            f"found, e.g. {dup}. Remove or rename the duplicated candidates."
        )
    return arr


def _normalise_id_dtype(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "U":
        return arr.astype(object)
    if arr.dtype == object:
        types = set(map(type, arr.tolist()))
        if types and all(issubclass(t, str) for t in types):
            out = np.empty(len(arr), dtype=object)
            out[:] = [str(v) for v in arr.tolist()]
            return out
        if types and all(
            issubclass(t, int | np.integer) and not issubclass(t, bool) for t in types
        ):
            return arr.astype(np.int64)
        if not types:
            return np.zeros(0, dtype=np.int64)
        names = sorted(t.__name__ for t in types)
        raise TypeError(
            "The 'ids' parameter of Index.index must hold only str ids or only int ids. "
            f"Got values of types {names} instead. Convert them all to str or all to int."
        )
    raise TypeError(
        "The 'ids' parameter of Index.index must hold str or int ids. "
        f"Got an array of dtype {arr.dtype} instead."
    )


class Index(ABC):
    """N candidate vectors + raw ids -> top-k inner-product search.

    `index(embeddings, ids)` stores the corpus; `query(queries, k, exclude)` returns, for each
    query, the k candidates with the largest dot product, best first. Subclasses differ in how
    they search (exactly, or approximately with FAISS) but share this contract, so the exact
    `BruteForce` index is the reference every other index is tested against.

    Fitted attributes: `ids_` (int64 array, or object array of str) and `dim_`.
    """

    type_name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.type_name:
            _REGISTRY[cls.type_name] = cls

    # -------------------------------------------------------------- subclass hooks
    @property
    @abstractmethod
    def is_exact(self) -> bool:
        """Whether `query` returns the exact top-k (True) or an approximation (False)."""

    @abstractmethod
    def _fit(self, embeddings: np.ndarray) -> None:
        """[N, D] float32 C-contiguous -> None: build the search structure."""

    @abstractmethod
    def _search(
        self, queries: np.ndarray, k: int, exclude: Exclusions | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """[B, D] float32, k <= N -> [B, k] float32 scores (descending), [B, k] int64 positions.

        Rows with fewer than k eligible results end in score -inf and position -1.
        """

    @abstractmethod
    def _config(self) -> dict[str, Any]:
        """JSON-able constructor arguments that rebuild an equivalent, unfitted index."""

    @abstractmethod
    def _save_vectors(self, folder: Path) -> str:
        """Write the search structure into `folder`; return the file name written."""

    @abstractmethod
    def _load_vectors(self, folder: Path, meta: dict[str, Any]) -> None:
        """Read back what `_save_vectors` wrote (sets every fitted attribute but `ids_`)."""

    @abstractmethod
    def _stored_size(self) -> int:
        """N as held by the search structure (checked against the saved ids on load)."""

    # -------------------------------------------------------------- public API
    def index(
        self, embeddings: ArrayLike, ids: Iterable[str] | Iterable[int] | None = None
    ) -> Self:
        """[N, D] candidate embeddings, N ids -> self: store (and build) the corpus.

        `ids` is a sequence/array of str or of int, one per row, without duplicates; it
        defaults to 0..N-1. Calling `index` again replaces the corpus.
        """
        owner = type(self).__name__
        x = _to_numpy_2d(embeddings, "embeddings", f"{owner}.index")
        if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError(
                f"The embeddings passed to {owner}.index must have shape [N, D] with N >= 1 and "
                f"D >= 1. Got shape {tuple(x.shape)} instead."
            )
        if not np.isfinite(x).all():
            raise ValueError(
                f"The embeddings passed to {owner}.index contain NaN or infinite values. "
                "Fix the candidate tower or drop those rows before indexing."
            )
        id_arr = _as_ids(ids, x.shape[0])
        self._fit(x)
        self.ids_ = id_arr
        self.dim_ = int(x.shape[1])
        self._reset_positions()
        return self

    def query(
        self,
        queries: ArrayLike,
        k: int,
        exclude: Sequence[Iterable[Any] | None] | None = None,
        *,
        exclude_positions: Sequence[ArrayLike | None] | None = None,
    ) -> tuple[torch.Tensor, np.ndarray]:
        """[B, D] queries (or one [D] query) -> [B, k'] float32 scores, [B, k'] ids, k' = min(k, N).

        Scores are the dot products, best first; ids are int64 (int ids) or object arrays of
        str (str ids). `exclude` is None or a list of B iterables of raw ids never to return
        for that query (unknown ids are ignored). `exclude_positions` does the same with
        corpus positions (0..N-1, the order of `index(embeddings, ids)`), which skips mapping
        ids to positions; give one or the other. A row with fewer than k' eligible
        candidates ends in score -inf and id -1 (int ids) or "" (str ids).
        """
        owner = type(self).__name__
        self._check_fitted("query")
        k = _check_k(k, owner)
        q = _to_numpy_2d(queries, "queries", f"{owner}.query")
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self.dim_:
            raise ValueError(
                f"The queries passed to {owner}.query must have shape [B, {self.dim_}] or "
                f"[{self.dim_}] (the index dimension). Got shape {tuple(q.shape)} instead."
            )
        if not np.isfinite(q).all():
            raise ValueError(f"The queries passed to {owner}.query contain NaN or infinite values.")
        kk = min(k, self.size)
        if exclude is not None and exclude_positions is not None:
            raise ValueError(
                f"{owner}.query takes 'exclude' (ids) or 'exclude_positions' (positions), not "
                "both. Convert one to the other and pass a single list."
            )
        if exclude_positions is not None:
            excl = self._exclusions(exclude_positions, q.shape[0], owner, by_position=True)
        else:
            excl = self._exclusions(exclude, q.shape[0], owner)
        if q.shape[0] == 0:
            scores = np.zeros((0, kk), dtype=np.float32)
            pos = np.zeros((0, kk), dtype=np.int64)
        else:
            scores, pos = self._search(q, kk, excl)
        return torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float32)), self._ids_at(pos)

    @property
    def size(self) -> int:
        """N, the number of indexed candidates."""
        self._check_fitted("size")
        return len(self.ids_)

    def __len__(self) -> int:
        return self.size

    @property
    def dim(self) -> int:
        """D, the dimension of the indexed vectors."""
        self._check_fitted("dim")
        return self.dim_

    @property
    def id_dtype(self) -> str:
        """'int64' or 'str': the kind of raw ids this index returns."""
        self._check_fitted("id_dtype")
        return "str" if self.ids_.dtype == object else "int64"

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index to the folder `path`: `index.json` and the vectors file (no pickle)."""
        self._check_fitted("save")
        folder = Path(path)
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(
                f"Index.save writes a folder, but {str(folder)!r} is an existing file. "
                "Choose another path."
            )
        folder.mkdir(parents=True, exist_ok=True)
        vectors_file = self._save_vectors(folder)
        meta = {
            "format_version": FORMAT_VERSION,
            "type": self.type_name,
            "config": self._config(),
            "dim": self.dim_,
            "size": self.size,
            "id_dtype": self.id_dtype,
            "vectors_file": vectors_file,
            "ids": self.ids_.tolist(),
        }
        write_json(folder / "index.json", meta)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Index:
        """Read an index saved with `save`; on a subclass, the saved type must match it."""
        index = load(path)
        if cls is not Index and not isinstance(index, cls):
            raise DataFormatError(
                f"The index saved at {str(path)!r} is a {type(index).__name__}, not a "
                f"{cls.__name__}. Load it with towerrec.index.load(path)."
            )
        return index

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._config().items())
        fitted = f", size={len(self.ids_)}, dim={self.dim_}" if hasattr(self, "ids_") else ""
        return f"{type(self).__name__}({args}){fitted}"

    # -------------------------------------------------------------- helpers
    def _check_fitted(self, what: str) -> None:
        if not hasattr(self, "ids_"):
            raise NotFittedError(
                f"This {type(self).__name__} has no corpus yet, so '{what}' cannot be used. "
                "Call .index(embeddings, ids) first."
            )

    def _reset_positions(self) -> None:
        ids = self.ids_
        self._range_ids_ = bool(
            ids.dtype != object and (len(ids) == 0 or (ids[0] == 0 and (np.diff(ids) == 1).all()))
        )
        self._positions_: dict[Any, int] | None = None

    def _position_map(self) -> dict[Any, int]:
        if self._positions_ is None:
            self._positions_ = dict(zip(self.ids_.tolist(), range(len(self.ids_)), strict=True))
        return self._positions_

    def _exclusions(
        self, exclude: Any, batch: int, owner: str, by_position: bool = False
    ) -> Exclusions | None:
        """Per-row raw ids (or corpus positions, `by_position`) -> sorted (row, position)
        pairs; None when nothing is excluded. Unknown ids and out-of-range positions are
        ignored."""
        if exclude is None:
            return None
        param = "exclude_positions" if by_position else "exclude"
        entry = "array of positions" if by_position else "iterable of ids"
        if isinstance(exclude, str | bytes) or not isinstance(exclude, Sequence | np.ndarray):
            raise TypeError(
                f"The '{param}' parameter of {owner}.query must be None or a list with one "
                f"{entry} per query. Got {type(exclude).__name__} instead."
            )
        if len(exclude) != batch:
            raise ValueError(
                f"The '{param}' parameter of {owner}.query must have one entry per query: got "
                f"{len(exclude)} entries for {batch} queries. Use [[...]] for a single query."
            )
        n = len(self.ids_)
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        for r, items in enumerate(exclude):
            if items is None:
                continue
            if by_position:
                pos = _checked_positions(items, r, n, owner)
            else:
                if isinstance(items, str | bytes) or not isinstance(items, Iterable):
                    raise TypeError(
                        f"The 'exclude' parameter of {owner}.query must hold one iterable of ids "
                        f"per query; entry {r} is {items!r}. Wrap it in a list: [[{items!r}]]."
                    )
                if isinstance(items, torch.Tensor | np.ndarray):
                    items = items.tolist()
                pos = self._positions_of(items, n)
            if len(pos):
                rows.append(np.full(len(pos), r, dtype=np.int64))
                cols.append(pos)
        if not rows:
            return None
        return self._pairs(np.concatenate(rows), np.concatenate(cols), n)

    @staticmethod
    def _pairs(rows: np.ndarray, cols: np.ndarray, n: int) -> Exclusions:
        keys = np.unique(rows * n + cols)
        row_arr, pos_arr = np.divmod(keys, n)
        order = np.argsort(pos_arr, kind="stable")
        max_per_row = int(np.bincount(row_arr).max())
        return Exclusions(row_arr[order], pos_arr[order], max_per_row)

    def _positions_of(self, items: Iterable[Any], n: int) -> np.ndarray:
        if self._range_ids_:
            out = [
                int(v)
                for v in items
                if isinstance(v, int | np.integer) and not isinstance(v, bool) and 0 <= v < n
            ]
        else:
            get = self._position_map().get
            out = [p for p in map(get, items) if p is not None]
        return np.asarray(out, dtype=np.int64)

    def _ids_at(self, pos: np.ndarray) -> np.ndarray:
        missing = pos < 0
        out = self.ids_[np.where(missing, 0, pos)]
        if missing.any():
            out[missing] = "" if out.dtype == object else -1
        return out


def _checked_positions(positions: Any, row: int, n: int, owner: str) -> np.ndarray:
    """One row of `exclude_positions` -> its int64 positions within 0..n-1."""
    pos = np.asarray(positions.cpu() if isinstance(positions, torch.Tensor) else positions)
    if pos.ndim != 1 or (len(pos) and pos.dtype.kind not in "iu"):
        raise TypeError(
            f"The 'exclude_positions' parameter of {owner}.query must hold one 1-D integer "
            f"array per query; entry {row} has dtype {pos.dtype} and shape {pos.shape}."
        )
    return pos[(pos >= 0) & (pos < n)].astype(np.int64, copy=False)


def load(path: str | os.PathLike[str]) -> Index:
    """Read an index folder written by `Index.save`, whatever its type."""
    folder = Path(path)
    meta_path = folder / "index.json"
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"No saved index at {str(folder)!r}: 'index.json' is missing. Save one with "
            "index.save(path) and pass that folder."
        )
    try:
        meta = read_json(meta_path)
        type_name = meta["type"]
        config = meta["config"]
        ids = meta["ids"]
        dim = int(meta["dim"])
        id_dtype = meta["id_dtype"]
    except (ValueError, KeyError, TypeError) as e:
        raise DataFormatError(
            f"{str(meta_path)!r} is not a valid index description ({e!r}). Save the index again."
        ) from e
    if meta.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
        raise DataFormatError(
            f"{str(meta_path)!r} has format_version {meta['format_version']}, newer than this "
            f"towerrec understands ({FORMAT_VERSION}). Upgrade towerrec."
        )
    if type_name not in _REGISTRY:
        raise DataFormatError(
            f"{str(meta_path)!r} names an unknown index type {type_name!r}; expected one of "
            f"{sorted(_REGISTRY)}."
        )
    index = _REGISTRY[type_name](**config)
    index._load_vectors(folder, meta)
    if id_dtype == "str":
        id_arr = np.empty(len(ids), dtype=object)
        id_arr[:] = [str(v) for v in ids]
    else:
        id_arr = np.asarray(ids, dtype=np.int64).reshape(-1)
    if len(id_arr) != index._stored_size() or index.dim_ != dim:
        raise DataFormatError(
            f"The index at {str(folder)!r} is inconsistent: index.json lists {len(id_arr)} ids "
            f"of dimension {dim} but the vectors file holds {index._stored_size()} vectors of "
            f"dimension {index.dim_}. Save the index again."
        )
    index.ids_ = id_arr
    index._reset_positions()
    return index
