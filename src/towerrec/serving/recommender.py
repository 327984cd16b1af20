"""`Recommender`: recommendations, rating predictions and similar items from a bundle.

Plain Python, no HTTP: the FastAPI app and the CLI are thin layers over it.

>>> rec = Recommender.load("bundle/")
>>> rec.recommend(42, k=5)                 # one user -> Recommendation
>>> rec.recommend([42, 7], k=5)            # a batch -> [Recommendation, Recommendation]
>>> rec.similar_items(50, k=5)
>>> rec.predict(42, 50)                    # where the model has a rating head
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from towerrec.errors import TowerrecError
from towerrec.features.lookup import Lookup
from towerrec.serving.bundle import Bundle, load

__all__ = [
    "Recommendation",
    "Recommender",
    "UnknownItemError",
    "UnknownUserError",
    "UnsupportedError",
]

POPULAR = "popular"


class UnknownItemError(TowerrecError, KeyError):
    """An item id is not among the bundle's items (the HTTP service answers 404)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownUserError(TowerrecError, KeyError):
    """A user id is unknown where a known user is required (`predict`; HTTP 404)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnsupportedError(TowerrecError, NotImplementedError):
    """The bundle cannot do this (e.g. `predict` without a rating head; HTTP 400)."""


@dataclass
class Recommendation:
    """Top-k items for one query, best first.

    `ids` are raw item ids, `scores` their scores (model scores; interaction counts for the
    popularity fallback; similarities for `similar_items`), `titles` their titles (None where
    the bundle has none). `fallback` is "popular" when the user was unknown and the most
    popular items were returned instead. Fewer than k items come back only when the user has
    seen so many items that fewer than k remain.
    """

    ids: list[Any]
    scores: list[float]
    titles: list[str | None]
    user_id: Any = None
    item_id: Any = None
    fallback: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict: the query id, `ids`, `scores`, `titles` and `fallback`."""
        head = {"item_id": self.item_id} if self.item_id is not None else {"user_id": self.user_id}
        out = {**head, "ids": self.ids, "scores": self.scores, "titles": self.titles}
        if self.item_id is None:
            out["fallback"] = self.fallback
        return out

    def __len__(self) -> int:
        return len(self.ids)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | bytes | int | float | np.generic) or value is None


class Recommender:
    """Serve a bundle: `recommend`, `predict`, `similar_items`; thread-safe for concurrent use.

    Unknown users get the most popular items, flagged `fallback="popular"`, never an error.
    `k` may be anything from 1 to the number of candidates at each call. Raw ids are
    converted to the type the features were fitted on (so "42" works for int ids).
    """

    def __init__(self, bundle: Bundle) -> None:
        if not isinstance(bundle, Bundle):
            raise TypeError(
                "Recommender takes a loaded Bundle; use Recommender.load(path) to read one. "
                f"Got {type(bundle).__name__} instead."
            )
        self.bundle = bundle
        space = bundle.feature_space
        self._space = space
        self._ids = bundle.candidate_ids
        self._n = len(self._ids)
        self._item_index = pd.Index(self._ids)
        self._item_kind = "str" if self._ids.dtype == object else "int"
        self._user_feature = bundle.user_feature
        self._user_column = space.column_of(self._user_feature) if self._user_feature else None
        user = space[self._user_feature] if self._user_feature else None
        self._user_lookup = user if isinstance(user, Lookup) else None
        item = space.transforms.get(bundle.item_feature) if bundle.item_feature else None
        self._item_lookup = item if isinstance(item, Lookup) else None
        self._item_column = space.column_of(bundle.item_feature) if item is not None else None
        if self._user_lookup is not None:
            self._user_kind: str | None = self._user_lookup.kind_
        elif bundle.seen_users is not None:
            self._user_kind = "str" if bundle.seen_users.dtype == object else "int"
        else:
            self._user_kind = None
        self._seen_index = None if bundle.seen_users is None else pd.Index(bundle.seen_users)
        self._popular = np.argsort(-bundle.popularity, kind="stable")
        titles = (bundle.items or {}).get("title")
        self._titles = np.asarray(titles if titles is not None else [None] * self._n, dtype=object)
        self._cosine_index: Any = None
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Recommender:
        """Load the bundle at `path` (checked first; a bad bundle raises BundleError)."""
        return cls(load(path))

    # ----------------------------------------------------------------- facts
    @property
    def manifest(self) -> dict[str, Any]:
        """The bundle's manifest (versions, parts, checksums)."""
        return self.bundle.manifest

    @property
    def num_candidates(self) -> int:
        """N, the number of candidate items (the largest k)."""
        return self._n

    @property
    def has_rating_head(self) -> bool:
        """Whether `predict` is available."""
        return self.bundle.has_rating_head

    @property
    def user_id_kind(self) -> str | None:
        """'int' or 'str': the type user ids are converted to (None when not known)."""
        return self._user_kind

    @property
    def query_columns(self) -> list[str]:
        """The raw columns the query tower reads (e.g. ["timestamp", "user_id"]), sorted."""
        return sorted({self._space.column_of(name) for name in self.bundle.query_features})

    def coerce_query_value(self, column: str, value: Any) -> Any:
        """A raw query value given as text (e.g. from a URL) -> the type the transforms of
        `column` were fitted on: the id type of a lookup, text for text and hashing
        features, a number otherwise. ValueError names the column and the value."""
        from towerrec.features.hashing import Hashing
        from towerrec.features.text import TextVectorizer

        if not isinstance(value, str):
            return value
        transforms = [
            self._space[name]
            for name in self.bundle.query_features
            if self._space.column_of(name) == column
        ]
        for transform in transforms:
            if isinstance(transform, Lookup):
                return _coerce(value, transform.kind_, column)
        if any(isinstance(t, TextVectorizer | Hashing) for t in transforms):
            return value
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"The query column {column!r} takes a number. Got {value!r}.") from None

    @property
    def item_id_kind(self) -> str:
        """'int' or 'str': the type of item ids."""
        return self._item_kind

    # ----------------------------------------------------------------- ids
    def coerce_user_id(self, value: Any) -> Any:
        """A raw user id (e.g. the string "42" from a URL) -> the type the features were fitted on.

        Raises ValueError (TypeError for unsupported types) naming the value and the type.
        """
        return _coerce(value, self._user_kind, "user_id")

    def coerce_item_id(self, value: Any) -> Any:
        """A raw item id -> the type of the candidate ids (ValueError/TypeError otherwise)."""
        return _coerce(value, self._item_kind, "item_id")

    def item_position(self, item_id: Any) -> int:
        """A raw item id -> its candidate position; UnknownItemError when it is not a candidate."""
        value = self.coerce_item_id(item_id)
        try:
            pos = self._item_index.get_loc(value)
        except KeyError:
            pos = None
        if not isinstance(pos, int | np.integer):
            raise UnknownItemError(
                f"Unknown item id {item_id!r}: it is not one of the bundle's {self._n} items."
            )
        return int(pos)

    def _check_k(self, k: Any, owner: str, largest: int | None = None) -> int:
        largest = self._n if largest is None else largest
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= largest:
            raise ValueError(
                f"The 'k' parameter of Recommender.{owner} must be an int between 1 and "
                f"{largest} (the number of candidates). Got {k!r} instead."
            )
        return int(k)

    # ----------------------------------------------------------------- recommend
    def recommend(
        self, users: Any, k: int = 10, exclude_seen: bool = True
    ) -> Recommendation | list[Recommendation]:
        """Top-k items for one raw user id, a list of them, or raw query features.

        - `users`: a raw user id -> one `Recommendation`; a list of ids -> a list;
          a dict of raw query feature columns (`{"user_id": [42, 7], ...}`, scalars for one
          query) -> a list (one per row), or one Recommendation when every value is a scalar.
        - `exclude_seen`: leave out the items each user interacted with in training.
        Unknown users get the most popular items, flagged `fallback="popular"`.
        """
        k = self._check_k(k, "recommend")
        if isinstance(users, Mapping):
            single = all(_is_scalar(v) for v in users.values())
            frame = {c: [v] if single else list(v) for c, v in users.items()}
            if self._user_column in frame:
                frame[self._user_column] = [
                    self.coerce_user_id(u) for u in frame[self._user_column]
                ]
            lengths = {len(v) for v in frame.values()}
            if len(lengths) != 1:
                raise ValueError(f"The query feature columns have different lengths: {lengths}.")
            out = self._recommend_frame(frame, lengths.pop(), k, bool(exclude_seen))
            return out[0] if single else out
        single = _is_scalar(users)
        if isinstance(users, torch.Tensor | np.ndarray | pd.Series):
            users = users.tolist()
        user_list = [users] if single else list(users)
        out = self.recommend_rows(user_list, k, exclude_seen)
        return out[0] if single else out

    def recommend_rows(
        self,
        users: Sequence[Any],
        k: int | Sequence[int],
        exclude_seen: bool | Sequence[bool] = True,
    ) -> list[Recommendation]:
        """A batch of raw user ids, each with its own k and exclude flag -> one result each.

        The batch is scored by one query-tower call and one index query (k = the largest
        asked), so batching concurrent requests costs about as much as one of them.
        """
        if self._user_column is None:
            raise UnsupportedError(
                "This bundle's queries have no user id feature; pass raw query features as a "
                "dict to recommend() instead."
            )
        coerced = [self.coerce_user_id(u) for u in users]
        n = len(coerced)
        ks = [k] * n if isinstance(k, int | np.integer) else list(k)
        single_flag = isinstance(exclude_seen, bool | np.bool_)
        flags = [bool(exclude_seen)] * n if single_flag else [bool(f) for f in exclude_seen]
        if len(ks) != n or len(flags) != n:
            raise ValueError("recommend_rows needs one k and one exclude flag per user.")
        ks = [self._check_k(x, "recommend") for x in ks]
        return self._recommend_frame({self._user_column: coerced}, n, ks, flags)

    def _recommend_frame(
        self,
        frame: dict[str, list[Any]],
        n: int,
        k: int | list[int],
        exclude: bool | list[bool],
    ) -> list[Recommendation]:
        ks = [k] * n if isinstance(k, int) else k
        flags = [exclude] * n if isinstance(exclude, bool) else exclude
        if n == 0:
            return []
        user_col = self._user_column
        users = frame.get(user_col) if user_col else None
        known = self._known_users(users, n)
        seen_rows = self._seen_rows(users, n)
        results: list[Recommendation | None] = [None] * n
        rows = np.flatnonzero(known)
        if len(rows):
            needed = [
                name
                for name in self.bundle.query_features
                if self._space.column_of(name) not in frame
            ]
            if needed:
                columns = sorted({self._space.column_of(x) for x in needed})
                raise ValueError(
                    f"This bundle's query tower needs the features {needed} (raw columns "
                    f"{columns}) besides the user id; pass every raw query column "
                    f"{self.query_columns} (Python: recommend() with a dict of columns; HTTP: "
                    f'POST /recommend with "queries": [{{column: value, ...}}, ...]).'
                )
            sub = {c: [v[i] for i in rows] for c, v in frame.items()}
            batch = self._space.transform(sub, names=self.bundle.query_features)
            queries = self.bundle.query_embeddings(batch).cpu().numpy()
            exclusions = [
                self._seen_positions(seen_rows[i]) if flags[i] and seen_rows[i] >= 0 else None
                for i in rows
            ]
            has_exclusions = any(e is not None for e in exclusions)
            kmax = max(ks[i] for i in rows)
            scores, ids = self.bundle.index.query(
                queries, kmax, exclude_positions=exclusions if has_exclusions else None
            )
            scores_np = scores.numpy()
            titles = self._titles_of(ids)
            for j, i in enumerate(rows):
                row_scores = scores_np[j, : ks[i]]
                keep = np.isfinite(row_scores)
                results[i] = Recommendation(
                    ids=ids[j, : ks[i]][keep].tolist(),
                    scores=row_scores[keep].tolist(),
                    titles=titles[j, : ks[i]][keep].tolist(),
                    user_id=None if users is None else users[i],
                )
        for i in np.flatnonzero(~known):
            results[i] = self._popular_for(
                None if users is None else users[i], ks[i], seen_rows[i] if flags[i] else -1
            )
        return [r for r in results if r is not None]

    def _known_users(self, users: list[Any] | None, n: int) -> np.ndarray:
        if users is None:
            return np.ones(n, dtype=bool)
        if self._user_lookup is not None:
            lookup = self._user_lookup
            ids = self._space.transform({self._user_column: users}, names=[self._user_feature])
            internal = ids[self._user_feature].numpy()
            return internal >= lookup.num_special
        if self._seen_index is not None:
            return self._seen_index.get_indexer(pd.Index(users)) >= 0
        return np.ones(n, dtype=bool)

    def _seen_rows(self, users: list[Any] | None, n: int) -> np.ndarray:
        if users is None or self._seen_index is None:
            return np.full(n, -1, dtype=np.int64)
        return np.asarray(self._seen_index.get_indexer(pd.Index(users)), dtype=np.int64)

    def _seen_positions(self, row: int) -> np.ndarray:
        b = self.bundle
        assert b.seen_indptr is not None and b.seen_indices is not None
        return b.seen_indices[b.seen_indptr[row] : b.seen_indptr[row + 1]]

    def _seen_ids(self, row: int) -> list[Any]:
        return self._ids[self._seen_positions(row)].tolist()

    def seen_items(self, user_id: Any) -> list[Any]:
        """The raw ids of the items `user_id` interacted with in training ([] if none known)."""
        rows = self._seen_rows([self.coerce_user_id(user_id)], 1)
        return [] if rows[0] < 0 else self._seen_ids(int(rows[0]))

    def _titles_of(self, ids: np.ndarray) -> np.ndarray:
        """[...] raw item ids (-1 / "" for padding) -> [...] object array of titles."""
        if ids.size == 0:
            return np.empty(ids.shape, dtype=object)
        positions = self._item_index.get_indexer(pd.Index(ids.ravel())).reshape(ids.shape)
        out = self._titles[np.maximum(positions, 0)]
        out[positions < 0] = None
        return out

    def _popular_for(self, user: Any, k: int, seen_row: int) -> Recommendation:
        order = self._popular
        if seen_row >= 0:
            seen = self._seen_positions(seen_row)
            order = order[: k + len(seen)]
            order = order[~np.isin(order, seen)]
        top = order[:k]
        return Recommendation(
            ids=self._ids[top].tolist(),
            scores=self.bundle.popularity[top].astype(np.float64).tolist(),
            titles=self._titles[top].tolist(),
            user_id=user,
            fallback=POPULAR,
        )

    def popular(self, k: int = 10) -> Recommendation:
        """The k most popular items (interaction counts as scores), flagged "popular"."""
        return self._popular_for(None, self._check_k(k, "popular"), -1)

    # ----------------------------------------------------------------- similar items
    def similar_items(self, item_id: Any, k: int = 10, metric: str = "cosine") -> Recommendation:
        """The k candidates most similar to `item_id` by `metric` ("cosine" or "dot") over the
        candidate embeddings, the item itself excluded. UnknownItemError for an unknown id."""
        if metric not in ("cosine", "dot"):
            raise ValueError(
                f"The 'metric' parameter of Recommender.similar_items must be 'cosine' or 'dot'. "
                f"Got {metric!r} instead."
            )
        pos = self.item_position(item_id)
        k = self._check_k(k, "similar_items", self._n - 1)
        item = self._ids[pos].item() if self._item_kind == "int" else self._ids[pos]
        if metric == "cosine":
            index = self._cosine()
            query = index.embeddings[pos]
        else:
            index = self.bundle.index
            query = self.bundle.embeddings[pos]
        scores, ids = index.query(query[None, :], k, exclude=[[item]])
        keep = np.isfinite(scores.numpy()[0])
        row_ids = ids[0][keep]
        return Recommendation(
            ids=row_ids.tolist(),
            scores=scores.numpy()[0][keep].tolist(),
            titles=self._titles_of(row_ids).tolist(),
            item_id=item,
        )

    def _cosine(self) -> Any:
        with self._lock:
            if self._cosine_index is None:
                from towerrec.index import BruteForce

                emb = self.bundle.embeddings
                norms = np.linalg.norm(emb, axis=1, keepdims=True)
                unit = emb / np.maximum(norms, np.float32(1e-12))
                self._cosine_index = BruteForce().index(unit, self._ids)
            return self._cosine_index

    # ----------------------------------------------------------------- predict
    def predict(self, user_id: Any, item_id: Any) -> float | list[float]:
        """Predicted rating of (user, item) with the model's rating head; lists give a list.

        UnsupportedError when the model has no rating head; UnknownItemError /
        UnknownUserError for ids outside the fitted vocabularies.
        """
        if not self.has_rating_head:
            name = self.manifest["model"].get("name") or "custom query tower"
            raise UnsupportedError(
                f"This bundle's model ({name}) has no rating head, so it cannot predict "
                f"ratings; only recommend and similar_items are available."
            )
        single = _is_scalar(user_id) and _is_scalar(item_id)
        users = [user_id] if _is_scalar(user_id) else list(user_id)
        items = [item_id] if _is_scalar(item_id) else list(item_id)
        if len(users) != len(items):
            raise ValueError(
                f"predict needs as many user ids as item ids; got {len(users)} and {len(items)}."
            )
        users = [self.coerce_user_id(u) for u in users]
        items = [self.coerce_item_id(i) for i in items]
        assert self._user_column is not None and self._item_column is not None
        batch = self._space.transform(
            {self._user_column: users, self._item_column: items},
            names=[self._user_feature, self.bundle.item_feature],
        )
        for name, raw, kind in (
            (self.bundle.item_feature, items, "item"),
            (self._user_feature, users, "user"),
        ):
            lookup = self._space[name]
            if isinstance(lookup, Lookup):
                unknown = batch[name].numpy() < lookup.num_special
                if unknown.any():
                    bad = raw[int(np.flatnonzero(unknown)[0])]
                    error = UnknownItemError if kind == "item" else UnknownUserError
                    raise error(
                        f"Unknown {kind} id {bad!r}: it was not seen in training, so the rating "
                        f"head has no embedding for it."
                    )
        ratings = self.bundle.predict_rating(batch).tolist()
        return ratings[0] if single else ratings


def _coerce(value: Any, kind: str | None, name: str) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if kind == "int":
        if isinstance(value, bool):
            raise TypeError(f"The {name} must be an integer id. Got the bool {value!r} instead.")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            text = value.strip()
            if text.lstrip("+-").isdigit() and text.isascii():
                return int(text)
            raise ValueError(f"The {name} must be an integer id. Got {value!r} instead.")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise TypeError(
            f"The {name} must be an integer id. Got {type(value).__name__} {value!r} instead."
        )
    if kind == "str":
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise TypeError(
            f"The {name} must be a string id. Got {type(value).__name__} {value!r} instead."
        )
    if value is None:
        raise TypeError(f"The {name} must not be None.")
    return value
