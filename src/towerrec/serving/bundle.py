"""One exported folder that serves anywhere: `export(...)` writes it, `load(path)` reads it.

A bundle holds everything a recommender needs at serving time, and nothing is unpickled to
read it back:

```
BUNDLE/
  manifest.json            format and towerrec versions, creation time, the parts present,
                           the size and sha256 of every file, and a checksum of itself
  features.json            the fitted FeatureSpace (raw ids -> tensors exactly as in training)
  model/config.json        {"name": registered model name, "config": model.config}   } a registered
  model/weights.safetensors  the model's weights (query tower, rating head, ...)     } model, or
  model/query_tower.pt2    a torch.export program of a custom query tower (no pickle)
  candidates.safetensors   candidate ids and [N, D] float32 embeddings
  index/                   optional: a saved approximate index (e.g. towerrec.index.Faiss)
  popularity.safetensors   [N] interaction counts of the candidates (the fallback ranking)
  seen.safetensors         optional: each known user's seen candidates, as CSR arrays
  items.json               optional: item metadata (titles, ...) aligned with the candidates
```

`export` writes into a temporary folder next to the target and renames it into place, so a
failure never leaves a half-written bundle. `load` checks the manifest, then the size and
sha256 of every file, before reading anything; a missing, truncated, edited or unknown part
raises `BundleError` naming it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import itertools
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from towerrec._io import atomic_write_bytes, write_json
from towerrec.errors import BundleError, ConfigError
from towerrec.features.lookup import Lookup
from towerrec.features.space import FeatureSpace
from towerrec.serving.registry import build_model, model_name

__all__ = ["FORMAT", "FORMAT_VERSION", "Bundle", "export", "load"]

FORMAT = "towerrec.bundle"
FORMAT_VERSION = 1

MANIFEST = "manifest.json"
FEATURES = "features.json"
MODEL_CONFIG = "model/config.json"
MODEL_WEIGHTS = "model/weights.safetensors"
QUERY_TOWER = "model/query_tower.pt2"
CANDIDATES = "candidates.safetensors"
INDEX_DIR = "index"
POPULARITY = "popularity.safetensors"
SEEN = "seen.safetensors"
ITEMS = "items.json"

_CHUNK = 65536
_FAISS_KINDS = ("flat", "hnsw", "ivf_flat", "ivf_pq")

Batch = dict[str, torch.Tensor]


# ------------------------------------------------------------------------------------ Bundle
@dataclass(eq=False)
class Bundle:
    """A loaded bundle: fitted features, query tower, candidates, index and serving data.

    `candidate_ids` is an int64 array or an object array of str; `embeddings` is [N, D]
    float32; `popularity` is [N] int64; the seen items of user `seen_users[u]` are the
    candidate positions `seen_indices[seen_indptr[u]:seen_indptr[u + 1]]`; `items` maps a
    metadata column (e.g. "title") to a list of N values.
    """

    path: Path
    manifest: dict[str, Any]
    feature_space: FeatureSpace
    candidate_ids: np.ndarray
    embeddings: np.ndarray
    index: Any
    popularity: np.ndarray
    model: nn.Module | None = None
    query_tower: Callable[[Batch], torch.Tensor] | None = None
    seen_users: np.ndarray | None = None
    seen_indptr: np.ndarray | None = None
    seen_indices: np.ndarray | None = None
    items: dict[str, list[Any]] | None = None

    @property
    def query_features(self) -> list[str]:
        """Names of the features the query tower reads."""
        return list(self.manifest["model"]["query_features"])

    @property
    def user_feature(self) -> str | None:
        """The feature holding the raw user id (None when queries have no user id)."""
        return self.manifest["model"].get("user_feature")

    @property
    def item_feature(self) -> str | None:
        """The feature holding the raw item id (used by the rating head)."""
        return self.manifest["model"].get("item_feature")

    @property
    def has_rating_head(self) -> bool:
        """Whether `predict_rating` is available."""
        return bool(self.manifest["model"].get("rating_head"))

    def query_embeddings(self, batch: Batch) -> torch.Tensor:
        """{query feature: [B] tensor} -> [B, D] float32 query embeddings."""
        with torch.inference_mode():
            if self.query_tower is not None:
                out = self.query_tower(batch)
            else:
                assert self.model is not None
                out = self.model.query_embeddings(batch)  # type: ignore[operator]
        return out.detach().to(torch.float32)

    def predict_rating(self, batch: Batch) -> torch.Tensor:
        """{user feature: [B], item feature: [B]} -> [B] predicted ratings."""
        if not self.has_rating_head or self.model is None:
            raise NotImplementedError("This bundle's model has no rating head.")
        with torch.inference_mode():
            return self.model.predict_rating(batch).detach().to(torch.float32)  # type: ignore[operator]


# ------------------------------------------------------------------------------------ export
def export(
    model: nn.Module | None,
    feature_space: FeatureSpace,
    path: str | os.PathLike[str],
    *,
    candidates: Any = None,
    query_tower: nn.Module | torch.export.ExportedProgram | None = None,
    candidate_tower: Callable[[Batch], torch.Tensor] | None = None,
    items: pd.DataFrame | Mapping[str, Sequence[Any]] | None = None,
    index: Any = None,
    seen: Any = None,
    popularity: Any = None,
    query_features: Sequence[str] | None = None,
    query_example: Mapping[str, torch.Tensor] | None = None,
    user_feature: str | None = None,
    item_feature: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a serving bundle to the folder `path` (atomically) and return its path.

    - `model`: a registered model (see `register_model`; the MovieLens models are), stored as
      its name, `model.config` and safetensors weights. It must have `query_embeddings(batch)`
      and, for the default candidates, `item_embeddings(ids)` or `candidate_corpus()`; a
      `predict_rating(batch)` method makes `Recommender.predict` available. Its `user_key` and
      `item_key` attributes name the user and item features.
    - `query_tower`: instead of a registered model, a custom tower `{feature: [B] tensor} ->
      [B, D]` (an `nn.Module`, exported here with `torch.export` and a dynamic batch size, from
      `query_example` or from two vocabulary ids of each Lookup feature), or an
      `ExportedProgram`. `query_features` names its inputs (default: `query_example`'s keys, or
      the user feature).
    - `candidates`: None (every value of the item feature's Lookup vocabulary), a sequence of
      raw item ids, a frame of raw candidate features, or a tuple `(ids, [N, D] embeddings)`.
      Embeddings come from `candidate_tower(features)` when given, else from the model.
    - `items`: item metadata (a frame with the item id column and e.g. "title", "genres").
    - `index`: None or "brute_force" (exact, rebuilt at load), a FAISS kind ("flat", "hnsw",
      "ivf_flat", "ivf_pq") or a `towerrec.index.Index` (fitted on the candidates, or not yet
      fitted); approximate indexes are saved in the bundle.
    - `seen`: the training interactions (a frame with the user and item id columns), or a dict
      user id -> item ids; used to exclude seen items and, when `popularity` is None, to count
      each candidate's interactions for the popularity fallback.
    - `popularity`: [N] counts aligned with the candidates, or a dict item id -> count. By
      default: counts in `seen`, else the item Lookup's fitted counts.
    - `overwrite`: replace an existing bundle at `path` (never a folder that is not a bundle).
    """
    target = Path(path)
    _check_target(target, overwrite)
    if not isinstance(feature_space, FeatureSpace) or not feature_space.is_fitted:
        raise TypeError(
            "The 'feature_space' parameter of export must be a fitted towerrec FeatureSpace "
            f"(the one the model was trained with). Got {type(feature_space).__name__} instead."
        )
    space = feature_space
    name = None if model is None else model_name(model)
    if query_tower is None:
        if model is None:
            raise TypeError("export needs a registered 'model' or a custom 'query_tower'.")
        if name is None:
            raise ConfigError(
                f"{type(model).__name__} is not a registered model, so its architecture cannot "
                f"be stored as config. Register it with towerrec.serving.register_model(name, "
                f"{type(model).__name__}) (its constructor must accept model.config), or pass "
                f"query_tower= to export a custom tower with torch.export."
            )
        if not isinstance(getattr(model, "config", None), Mapping):
            raise ConfigError(f"{type(model).__name__} has no plain-data 'config' dict to store.")
    user_feature = _pick_feature(space, user_feature, getattr(model, "user_key", None), "user_id")
    item_feature = _pick_feature(space, item_feature, getattr(model, "item_key", None), "item_id")
    if query_features is None:
        if query_tower is None:
            query_features = getattr(model, "query_features", None) or [user_feature]
        elif query_example is not None:
            query_features = list(query_example)
        else:
            query_features = [user_feature]
    query_features = [str(f) for f in query_features if f is not None]
    missing = [f for f in query_features if f not in space]
    if not query_features or missing:
        raise ConfigError(
            f"The query features {query_features} must be features of the FeatureSpace "
            f"({space.names}); missing: {missing}. Pass query_features= or user_feature=."
        )

    ids, embeddings = _candidates(model, space, candidates, candidate_tower, item_feature)
    index_obj = _build_index(index, ids, embeddings)
    counts = _popularity(popularity, seen, ids, space, item_feature, user_feature)
    seen_csr = None if seen is None else _seen_csr(seen, ids, space, user_feature, item_feature)
    meta = None if items is None else _items_table(items, ids, space, item_feature)
    rating_head = query_tower is None and callable(getattr(model, "predict_rating", None))

    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "towerrec_version": _version(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "parts": {
            "model": "registered" if query_tower is None else "exported",
            "features": True,
            "candidates": True,
            "index": None if index_obj is None else index_obj.type_name,
            "popularity": True,
            "seen": seen_csr is not None,
            "items": meta is not None,
        },
        "model": {
            "name": name if query_tower is None else None,
            "query_features": query_features,
            "user_feature": user_feature,
            "item_feature": item_feature,
            "rating_head": rating_head,
        },
        "candidates": {
            "count": len(ids),
            "dim": int(embeddings.shape[1]),
            "id_kind": "str" if ids.dtype == object else "int",
        },
    }

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        space.save(tmp / FEATURES)
        if query_tower is None:
            assert model is not None
            write_json(tmp / MODEL_CONFIG, {"name": name, "config": dict(model.config)})
            _write_weights(tmp / MODEL_WEIGHTS, model)
        else:
            example = query_example or _auto_example(space, query_features)
            _write_exported(tmp / QUERY_TOWER, query_tower, example)
        _save_tensors(tmp / CANDIDATES, {**_encode_ids(ids, "ids"), "embeddings": embeddings})
        if index_obj is not None:
            index_obj.save(tmp / INDEX_DIR)
        _save_tensors(tmp / POPULARITY, {"counts": counts})
        if seen_csr is not None:
            _save_tensors(tmp / SEEN, seen_csr)
        if meta is not None:
            write_json(tmp / ITEMS, {"columns": meta})
        manifest["files"] = _hash_files(tmp)
        manifest["manifest_sha256"] = _manifest_digest(manifest)
        write_json(tmp / MANIFEST, manifest)
        _move_into_place(tmp, target, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _version() -> str:
    from towerrec import __version__

    return __version__


def _check_target(target: Path, overwrite: bool) -> None:
    if not target.exists():
        return
    if not overwrite:
        raise FileExistsError(
            f"{str(target)!r} already exists. Choose another output path, or pass "
            f"overwrite=True (--overwrite) to replace the bundle there."
        )
    if not target.is_dir() or not ((target / MANIFEST).is_file() or not any(target.iterdir())):
        raise FileExistsError(
            f"{str(target)!r} exists and is not a towerrec bundle (no {MANIFEST}); refusing to "
            f"replace it. Choose another output path."
        )


def _move_into_place(tmp: Path, target: Path, overwrite: bool) -> None:
    if not target.exists():
        os.replace(tmp, target)
        return
    _check_target(target, overwrite)
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.replace(target, old / "bundle")
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(old / "bundle", target)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def _pick_feature(
    space: FeatureSpace, given: str | None, from_model: Any, default: str
) -> str | None:
    if given is not None:
        if given not in space:
            raise ConfigError(f"Feature {given!r} is not in the FeatureSpace ({space.names}).")
        return given
    if isinstance(from_model, str) and from_model in space:
        return from_model
    return default if default in space else None


def _lookup(space: FeatureSpace, feature: str | None) -> Lookup | None:
    if feature is None or feature not in space:
        return None
    transform = space[feature]
    return transform if isinstance(transform, Lookup) else None


def _as_id_array(values: Any, what: str) -> np.ndarray:
    """Raw ids -> int64 array or object array of str."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    if isinstance(values, pd.Series | pd.Index):
        values = values.to_numpy()
    arr = np.asarray(values) if isinstance(values, np.ndarray) else None
    if arr is None:
        items = list(values)
        arr = np.empty(len(items), dtype=object)
        arr[:] = items
    if arr.ndim != 1:
        raise ValueError(f"The {what} must be one-dimensional. Got shape {arr.shape} instead.")
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "U":
        return arr.astype(object)
    if arr.dtype == object:
        kinds = {type(v) for v in arr.tolist()}
        if all(issubclass(t, str) for t in kinds):
            return arr
        if all(issubclass(t, int | np.integer) and not issubclass(t, bool) for t in kinds):
            return arr.astype(np.int64)
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        return arr.astype(np.int64)
    raise TypeError(
        f"The {what} must be all ints or all strings. Got dtype {arr.dtype} instead; cast "
        f"them with .astype(int) or .astype(str)."
    )


def _candidates(
    model: nn.Module | None,
    space: FeatureSpace,
    candidates: Any,
    candidate_tower: Callable[[Batch], torch.Tensor] | None,
    item_feature: str | None,
) -> tuple[np.ndarray, np.ndarray]:
    """-> ([N] raw ids, [N, D] float32 embeddings)."""
    if isinstance(candidates, tuple):
        if len(candidates) != 2:
            raise ValueError("candidates=(ids, embeddings) must be a pair.")
        ids = _as_id_array(candidates[0], "candidate ids")
        emb = _float_matrix(candidates[1])
    else:
        item_col = space.column_of(item_feature) if item_feature else "item_id"
        if candidates is None:
            lookup = _lookup(space, item_feature)
            if lookup is None:
                raise ConfigError(
                    "export needs 'candidates' (raw ids, a frame of candidate features, or "
                    "(ids, embeddings)) when the item feature is not a fitted Lookup."
                )
            ids = _as_id_array(lookup.vocabulary_, "candidate ids")
            frame: Mapping[str, Any] = {item_col: ids}
        elif isinstance(candidates, pd.DataFrame | Mapping):
            if item_col not in candidates:
                raise ConfigError(
                    f"The candidates frame needs the item id column {item_col!r}; it has "
                    f"{list(candidates.keys())}."
                )
            frame = candidates
            ids = _as_id_array(candidates[item_col], "candidate ids")
        else:
            ids = _as_id_array(candidates, "candidate ids")
            frame = {item_col: ids}
        emb = _embed_candidates(model, space, frame, candidate_tower, item_feature, len(ids))
    if len(ids) == 0:
        raise ValueError("export needs at least one candidate.")
    if emb.shape[0] != len(ids):
        raise ValueError(
            f"Got {len(ids)} candidate ids but {emb.shape[0]} candidate embeddings; they must "
            f"match one to one."
        )
    unique = len(set(ids.tolist())) if ids.dtype == object else len(np.unique(ids))
    if unique != len(ids):
        raise ValueError(
            f"The candidate ids hold {len(ids) - unique} duplicates; make them unique."
        )
    if not np.isfinite(emb).all():
        raise ValueError("The candidate embeddings contain NaN or infinite values.")
    return ids, emb


def _float_matrix(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().to(torch.float32).numpy()
    arr = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if arr.ndim != 2:
        raise ValueError(f"Candidate embeddings must be [N, D]. Got shape {arr.shape} instead.")
    return arr


def _embed_candidates(
    model: nn.Module | None,
    space: FeatureSpace,
    frame: Mapping[str, Any] | pd.DataFrame,
    candidate_tower: Callable[[Batch], torch.Tensor] | None,
    item_feature: str | None,
    n: int,
) -> np.ndarray:
    features = space.transform(frame)
    parts = []
    with torch.inference_mode():
        if candidate_tower is None and model is not None and not hasattr(model, "item_embeddings"):
            if not callable(getattr(model, "candidate_corpus", None)):
                raise ConfigError(
                    f"{type(model).__name__} has neither item_embeddings(ids) nor "
                    f"candidate_corpus(); pass candidate_tower= or candidates=(ids, embeddings)."
                )
            corpus, corpus_ids = model.candidate_corpus()  # type: ignore[operator]
            where = {int(v): i for i, v in enumerate(corpus_ids.tolist())}
            assert item_feature is not None
            rows = torch.tensor([where[int(v)] for v in features[item_feature].tolist()])
            return _float_matrix(corpus[rows])
        for start in range(0, n, _CHUNK):
            batch = {k: v[start : start + _CHUNK] for k, v in features.items()}
            if candidate_tower is not None:
                out = candidate_tower(batch)
            elif model is not None and item_feature is not None:
                out = model.item_embeddings(batch[item_feature])  # type: ignore[operator]
            else:
                raise ConfigError(
                    "export needs a model or a candidate_tower to embed the candidates, or "
                    "candidates=(ids, embeddings)."
                )
            parts.append(out.detach().cpu().to(torch.float32))
    return _float_matrix(torch.cat(parts))


def _build_index(index: Any, ids: np.ndarray, embeddings: np.ndarray) -> Any:
    """-> an index to save in the bundle, or None for brute force (rebuilt at load)."""
    from towerrec.index import BruteForce, Faiss, Index

    if index is None or index == "brute_force":
        return None
    if isinstance(index, str):
        if index not in _FAISS_KINDS:
            raise ConfigError(
                f"The 'index' parameter of export must be None, 'brute_force', one of "
                f"{list(_FAISS_KINDS)} or a towerrec.index.Index. Got {index!r} instead."
            )
        index = Faiss(index)
    if not isinstance(index, Index):
        raise TypeError(
            f"The 'index' parameter of export must be a str or a towerrec.index.Index. Got "
            f"{type(index).__name__} instead."
        )
    if isinstance(index, BruteForce):
        return None
    if not hasattr(index, "ids_"):
        index.index(embeddings, ids)
    elif index.size != len(ids) or index.ids_.tolist() != ids.tolist():
        raise ValueError(
            "The fitted index passed to export holds other candidates than the bundle's; "
            "pass it unfitted, or fitted on exactly the candidate ids, in order."
        )
    return index


def _positions(ids: np.ndarray, values: Any, what: str) -> np.ndarray:
    """Raw ids -> candidate positions (-1 where unknown), matched by type-converted value."""
    arr = _as_id_array(values, what)
    if len(arr) and (arr.dtype == object) != (ids.dtype == object):
        arr = arr.astype(object if ids.dtype == object else np.int64)
        if ids.dtype == object:
            arr = np.asarray([str(v) for v in arr.tolist()], dtype=object)
    return pd.Index(ids).get_indexer(pd.Index(arr))


def _column(frame: Any, space: FeatureSpace, feature: str | None, default: str) -> str:
    column = space.column_of(feature) if feature else default
    if column not in frame and default in frame:
        column = default
    if column not in frame:
        raise ConfigError(f"The frame needs the column {column!r}; it has {list(frame.keys())}.")
    return column


def _popularity(
    popularity: Any,
    seen: Any,
    ids: np.ndarray,
    space: FeatureSpace,
    item_feature: str | None,
    user_feature: str | None,
) -> np.ndarray:
    n = len(ids)
    if popularity is not None:
        if isinstance(popularity, Mapping):
            counts = np.zeros(n, dtype=np.int64)
            pos = _positions(ids, list(popularity.keys()), "popularity ids")
            values = np.asarray(list(popularity.values()), dtype=np.int64)
            counts[pos[pos >= 0]] = values[pos >= 0]
            return counts
        counts = np.asarray(popularity, dtype=np.float64).reshape(-1)
        if counts.shape != (n,):
            raise ValueError(f"popularity must hold one count per candidate ({n}).")
        return np.rint(counts).astype(np.int64)
    if seen is not None and _is_frame(seen, space, user_feature):
        column = _column(seen, space, item_feature, "item_id")
        pos = _positions(ids, seen[column], "seen item ids")
        return np.bincount(pos[pos >= 0], minlength=n).astype(np.int64)
    if seen is not None:
        csr = _seen_csr(seen, ids, space, user_feature, item_feature)
        return np.bincount(csr["indices"], minlength=n).astype(np.int64)
    lookup = _lookup(space, item_feature)
    counts = np.zeros(n, dtype=np.int64)
    if lookup is not None:
        pos = _positions(ids, lookup.vocabulary_, "vocabulary")
        vocab_counts = np.asarray(lookup.counts_, dtype=np.int64)
        counts[pos[pos >= 0]] = vocab_counts[pos >= 0]
    return counts


def _is_frame(seen: Any, space: FeatureSpace, user_feature: str | None) -> bool:
    """A frame of interactions (columns), as opposed to a dict user id -> item ids."""
    if isinstance(seen, pd.DataFrame):
        return True
    if not isinstance(seen, Mapping):
        return False
    user_col = space.column_of(user_feature) if user_feature else "user_id"
    return user_col in seen or "user_id" in seen


def _seen_csr(
    seen: Any,
    ids: np.ndarray,
    space: FeatureSpace,
    user_feature: str | None,
    item_feature: str | None,
) -> dict[str, np.ndarray]:
    """-> {"users*": raw user ids, "indptr": [U + 1] int64, "indices": candidate positions}."""
    if _is_frame(seen, space, user_feature):
        user_col = _column(seen, space, user_feature, "user_id")
        item_col = _column(seen, space, item_feature, "item_id")
        users = _as_id_array(seen[user_col], "seen user ids")
        items = _positions(ids, seen[item_col], "seen item ids")
    elif isinstance(seen, Mapping):
        pairs = [(u, i) for u, its in seen.items() for i in its]
        users = _as_id_array([u for u, _ in pairs] or np.zeros(0, np.int64), "seen user ids")
        items = _positions(ids, [i for _, i in pairs] or np.zeros(0, np.int64), "seen item ids")
    else:
        raise TypeError(
            "The 'seen' parameter of export must be a frame with the user and item id columns, "
            f"or a dict user id -> item ids. Got {type(seen).__name__} instead."
        )
    known = items >= 0
    users, items = users[known], items[known]
    codes, uniques = pd.factorize(pd.Series(users, dtype=users.dtype), sort=True)
    codes = np.asarray(codes, dtype=np.int64)
    key = np.unique(codes * max(len(ids), 1) + items)
    rows, cols = np.divmod(key, max(len(ids), 1))
    indptr = np.zeros(len(uniques) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum(np.bincount(rows, minlength=len(uniques)))
    dtype = np.int32 if len(ids) < 2**31 else np.int64
    user_ids = _as_id_array(np.asarray(uniques), "seen user ids")
    return {**_encode_ids(user_ids, "users"), "indptr": indptr, "indices": cols.astype(dtype)}


def _items_table(
    items: Any, ids: np.ndarray, space: FeatureSpace, item_feature: str | None
) -> dict[str, list[Any]]:
    if not isinstance(items, pd.DataFrame | Mapping):
        raise TypeError(
            f"The 'items' parameter of export must be a frame of item metadata. Got "
            f"{type(items).__name__} instead."
        )
    frame = pd.DataFrame(dict(items)) if not isinstance(items, pd.DataFrame) else items
    column = _column(frame, space, item_feature, "item_id")
    frame = frame.drop_duplicates(subset=[column], keep="first")
    pos = _positions(ids, frame[column], "item ids")
    out: dict[str, list[Any]] = {}
    for name in frame.columns:
        if name == column and name != "title":  # ids that are titles stay the titles too
            continue
        values: list[Any] = [None] * len(ids)
        for p, v in zip(pos.tolist(), frame[name].tolist(), strict=True):
            if p >= 0:
                values[p] = _jsonable(v)
        out[str(name)] = values
    return out


def _jsonable(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool):
        return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _encode_ids(ids: np.ndarray, name: str) -> dict[str, np.ndarray]:
    """Raw ids -> safetensors arrays: `name` (int64), or `name_utf8` bytes + `name_offsets`."""
    if ids.dtype != object:
        return {name: np.ascontiguousarray(ids, dtype=np.int64)}
    encoded = [str(v).encode("utf-8") for v in ids.tolist()]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in encoded])
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
    return {f"{name}_utf8": data, f"{name}_offsets": offsets}


def _decode_ids(tensors: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    if name in tensors:
        return np.asarray(tensors[name], dtype=np.int64)
    data = tensors[f"{name}_utf8"].tobytes()
    offsets = tensors[f"{name}_offsets"].tolist()
    out = np.empty(len(offsets) - 1, dtype=object)
    out[:] = [data[a:b].decode("utf-8") for a, b in itertools.pairwise(offsets)]
    return out


def _save_tensors(path: Path, tensors: Mapping[str, np.ndarray]) -> None:
    from safetensors.numpy import save

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, save({k: np.ascontiguousarray(v) for k, v in tensors.items()}))


def _write_weights(path: Path, model: nn.Module) -> None:
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, save(state))


def _auto_example(space: FeatureSpace, names: Sequence[str]) -> dict[str, torch.Tensor]:
    example = {}
    for name in names:
        lookup = _lookup(space, name)
        if lookup is None:
            raise ConfigError(
                f"Query feature {name!r} is not a Lookup, so no example input can be made for "
                f"torch.export; pass query_example={{feature: [B] tensor, ...}} (B >= 2)."
            )
        size = lookup.size
        example[name] = torch.tensor([size - 1, max(size - 2, 0)], dtype=torch.int64)
    return example


class _DictTower(nn.Module):
    """Wraps a tower so torch.export sees one dict argument."""

    def __init__(self, tower: nn.Module) -> None:
        super().__init__()
        self.tower = tower

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.tower(features)


def _write_exported(path: Path, tower: Any, example: Mapping[str, torch.Tensor]) -> None:
    if isinstance(tower, torch.export.ExportedProgram):
        program = tower
    elif isinstance(tower, nn.Module):
        example = {k: torch.as_tensor(v) for k, v in example.items()}
        batch = torch.export.Dim("batch", min=1)
        shapes = ({k: {0: batch} for k in example},)
        was_training = tower.training
        tower.eval()
        try:
            program = torch.export.export(
                _DictTower(tower), (dict(example),), dynamic_shapes=shapes
            )
        finally:
            tower.train(was_training)
    else:
        raise TypeError(
            "The 'query_tower' parameter of export must be an nn.Module or a "
            f"torch.export.ExportedProgram. Got {type(tower).__name__} instead."
        )
    program.example_inputs = None  # sample inputs would be pickled; none are needed to serve
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.export.save(program, buf)
    atomic_write_bytes(path, buf.getvalue())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hash_files(folder: Path) -> dict[str, dict[str, Any]]:
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel != MANIFEST:
            files[rel] = {"sha256": _sha256(path), "bytes": path.stat().st_size}
    return files


def _manifest_digest(manifest: Mapping[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------------ load
def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a bundle's manifest (format, version, self-checksum); files unchecked."""
    folder = Path(path)
    if not folder.is_dir():
        raise BundleError(
            f"No bundle at {str(folder)!r}: it is not a folder. Export one with "
            f"towerrec.serving.export(...) or `towerrec export`."
        )
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"The bundle at {str(folder)!r} has no {MANIFEST}: it is incomplete.")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{MANIFEST} of the bundle at {str(folder)!r} is unreadable: {e}") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{MANIFEST} at {str(folder)!r} is not a towerrec bundle manifest.")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise BundleError(
            f"{MANIFEST} at {str(folder)!r} has an invalid format_version {version!r}."
        )
    if version > FORMAT_VERSION:
        raise BundleError(
            f"The bundle at {str(folder)!r} has format_version {version}, newer than this "
            f"towerrec reads ({FORMAT_VERSION}). Upgrade towerrec to load it."
        )
    if manifest.get("manifest_sha256") != _manifest_digest(manifest):
        raise BundleError(
            f"{MANIFEST} at {str(folder)!r} was edited after export (its checksum does not "
            f"match its content). Export the bundle again."
        )
    for key in ("files", "parts", "model", "candidates"):
        if not isinstance(manifest.get(key), dict):
            raise BundleError(f"{MANIFEST} at {str(folder)!r} lacks its {key!r} section.")
    return manifest


def verify(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Check a bundle without loading it: manifest, then size and sha256 of every file."""
    folder = Path(path)
    manifest = read_manifest(folder)
    files = manifest["files"]
    root = folder.resolve()
    for rel, info in files.items():
        file = (folder / rel).resolve()
        if root not in file.parents or not isinstance(info, dict):
            raise BundleError(f"{MANIFEST} at {str(folder)!r} lists an invalid file {rel!r}.")
        if not file.is_file():
            raise BundleError(f"The bundle at {str(folder)!r} is missing its file {rel!r}.")
        size = file.stat().st_size
        if size != info.get("bytes"):
            raise BundleError(
                f"{rel!r} in the bundle at {str(folder)!r} has {size} bytes, but {info.get('bytes')}"
                f" were exported: it is truncated or was replaced. Export the bundle again."
            )
        if _sha256(file) != info.get("sha256"):
            raise BundleError(
                f"{rel!r} in the bundle at {str(folder)!r} does not match its sha256 checksum: it "
                f"is corrupted or was modified. Export the bundle again."
            )
    parts = manifest["parts"]
    required = [FEATURES, CANDIDATES, POPULARITY]
    if parts.get("model") == "registered":
        required += [MODEL_CONFIG, MODEL_WEIGHTS]
    elif parts.get("model") == "exported":
        required.append(QUERY_TOWER)
    else:
        raise BundleError(f"{MANIFEST} at {str(folder)!r} names no known model part.")
    required += [SEEN] if parts.get("seen") else []
    required += [ITEMS] if parts.get("items") else []
    required += [f"{INDEX_DIR}/index.json"] if parts.get("index") else []
    for rel in required:
        if rel not in files:
            raise BundleError(f"{MANIFEST} at {str(folder)!r} does not list the part {rel!r}.")
    return manifest


def load(path: str | os.PathLike[str]) -> Bundle:
    """Read a bundle written by `export`; never unpickles anything.

    Every file is checked against the manifest first, so a missing, truncated, edited or
    unknown part raises `BundleError` naming it and nothing is loaded.
    """
    folder = Path(path)
    manifest = verify(folder)
    parts = manifest["parts"]
    space = _part(folder, FEATURES, lambda p: FeatureSpace.load(p))
    cand = _part(folder, CANDIDATES, _load_tensors)
    ids = _part(folder, CANDIDATES, lambda _: _decode_ids(cand, "ids"))
    embeddings = np.ascontiguousarray(cand["embeddings"], dtype=np.float32)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(ids):
        raise BundleError(f"{CANDIDATES} in {str(folder)!r} holds inconsistent ids/embeddings.")
    counts = _part(folder, POPULARITY, _load_tensors)["counts"].astype(np.int64)
    if counts.shape != (len(ids),):
        raise BundleError(f"{POPULARITY} in {str(folder)!r} does not match the candidates.")
    bundle = Bundle(
        path=folder,
        manifest=manifest,
        feature_space=space,
        candidate_ids=ids,
        embeddings=embeddings,
        index=None,
        popularity=counts,
    )
    if parts["model"] == "registered":
        bundle.model = _part(folder, MODEL_CONFIG, _load_model)
    else:
        bundle.query_tower = _part(folder, QUERY_TOWER, _load_exported)
    if parts.get("seen"):
        seen = _part(folder, SEEN, _load_tensors)
        bundle.seen_users = _part(folder, SEEN, lambda _: _decode_ids(seen, "users"))
        bundle.seen_indptr = seen["indptr"].astype(np.int64)
        bundle.seen_indices = seen["indices"]
        if len(bundle.seen_indptr) != len(bundle.seen_users) + 1:
            raise BundleError(f"{SEEN} in {str(folder)!r} has inconsistent CSR arrays.")
    if parts.get("items"):
        columns = _part(folder, ITEMS, lambda p: json.loads(p.read_text("utf-8"))["columns"])
        if not isinstance(columns, dict) or any(len(v) != len(ids) for v in columns.values()):
            raise BundleError(f"{ITEMS} in {str(folder)!r} does not match the candidates.")
        bundle.items = columns
    if parts.get("index"):
        from towerrec.index import load as load_index

        bundle.index = _part(folder, INDEX_DIR, lambda p: load_index(p))
        if bundle.index.size != len(ids) or bundle.index.ids_.tolist() != ids.tolist():
            raise BundleError(f"{INDEX_DIR}/ in {str(folder)!r} holds other candidates.")
    else:
        from towerrec.index import BruteForce

        bundle.index = BruteForce().index(embeddings, ids)
    return bundle


def _part(folder: Path, rel: str, reader: Callable[[Path], Any]) -> Any:
    try:
        return reader(folder / rel)
    except BundleError:
        raise
    except Exception as e:
        raise BundleError(
            f"The part {rel!r} of the bundle at {str(folder)!r} could not be read: {e}"
        ) from e


def _load_tensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(path)


def _load_model(config_path: Path) -> nn.Module:
    from safetensors.torch import load_file

    doc = json.loads(config_path.read_text("utf-8"))
    model = build_model(doc["name"], doc["config"])
    weights_path = config_path.parent / Path(MODEL_WEIGHTS).name
    try:
        state = load_file(weights_path)
        model.load_state_dict(state, strict=True)
    except Exception as e:
        raise BundleError(
            f"The part {MODEL_WEIGHTS!r} of the bundle at {str(config_path.parent.parent)!r} "
            f"could not be read: {e}"
        ) from e
    model.eval()
    return model


def _check_pt2(path: Path) -> None:
    """Refuse a .pt2 archive whose loading would unpickle (pickled weights, objects, inputs)."""
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            parts = name.split("/")
            sub = "/".join(parts[1:])
            if sub.startswith(("data/weights/", "data/constants/")) and sub.endswith(".pt"):
                raise BundleError(f"{path.name} holds pickled weights ({sub}); refusing to load.")
            if sub.startswith(("data/weights/", "data/constants/")) and sub.endswith("config.json"):
                config = json.loads(archive.read(name)).get("config", {})
                for fqn, meta in config.items():
                    pickled = meta.get("use_pickle") or not str(
                        meta.get("path_name", "")
                    ).startswith(("weight_", "tensor_"))
                    if pickled:
                        raise BundleError(
                            f"{path.name} holds a pickled tensor or object ({fqn}); refusing to "
                            f"load it."
                        )
            if sub.startswith("data/sample_inputs/") and archive.getinfo(name).file_size:
                torch.load(io.BytesIO(archive.read(name)), weights_only=True)


def _load_exported(path: Path) -> Callable[[Batch], torch.Tensor]:
    _check_pt2(path)
    program = torch.export.load(path)
    return program.module()
