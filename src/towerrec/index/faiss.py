"""Approximate (and exact flat) inner-product top-k with FAISS, behind the `Index` contract."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from towerrec._io import atomic_write_bytes
from towerrec.errors import ConfigError, DataFormatError
from towerrec.index.base import Exclusions, Index

__all__ = ["Faiss"]

_VECTORS_FILE = "index.faiss"
_NEG_INF = np.float32(-np.inf)

#: Parameters each kind accepts, with their defaults (None: chosen from the corpus at `index`).
_PARAMS: dict[str, dict[str, Any]] = {
    "flat": {},
    "hnsw": {"M": 32, "ef_construction": 80, "ef_search": 128, "l2_transform": True},
    "ivf_flat": {"nlist": None, "nprobe": None, "train_size": None, "seed": 0},
    "ivf_pq": {
        "nlist": None,
        "nprobe": None,
        "m": None,
        "nbits": None,
        "train_size": None,
        "seed": 0,
        "refine": None,
    },
}


def _import_faiss() -> Any:
    try:
        import faiss
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "towerrec.index.Faiss needs the 'faiss' package, which is not installed. "
            "Install it with: pip install 'towerrec[ann]'"
        ) from e
    return faiss


def default_nlist(n: int) -> int:
    """N -> number of IVF lists: about 4 * sqrt(N), with at least 39 training points per list."""
    return max(1, min(round(4 * math.sqrt(n)), n // 39))


def default_m(dim: int) -> int:
    """D -> PQ sub-quantizers: the largest divisor of D with at least 4 dimensions each."""
    return max(m for m in range(1, dim + 1) if dim % m == 0 and m <= max(1, dim // 4))


class Faiss(Index):
    """[N, D] corpus -> top-k by inner product with a FAISS index.

    kind:
      - "flat": `IndexFlatIP`, exact (the FAISS reference);
      - "hnsw": HNSW graph over full vectors. Params: `M` (32, links per node),
        `ef_construction` (80), `ef_search` (128; the search uses max(ef_search, k)),
        `l2_transform` (True: build the graph on the Euclidean transform of the problem,
        `x -> [x, sqrt(R^2 - |x|^2)]`, `q -> [q, 0]`, R the largest norm, whose L2 nearest
        neighbours are exactly the largest inner products; HNSW's pruning assumes a metric,
        and on raw inner products its recall plateaus well below 1). Returned scores are
        recomputed exactly from the stored vectors;
      - "ivf_flat": inverted lists of full vectors. Params: `nlist` (default about 4*sqrt(N)),
        `nprobe` (lists visited per query; default min(nlist, 32)), `train_size` (vectors the
        k-means is trained on; default min(N, max(40 * nlist, 65536))), `seed`;
      - "ivf_pq": inverted lists of product-quantized residuals; as "ivf_flat" plus `m`
        (sub-quantizers; D must be divisible by it; default D // 4) and `nbits` (bits per
        code, default 8, fewer when there are under 256 training vectors) and `refine`
        (None: scores are the PQ estimates of the dot products; an int r: the full vectors
        are kept too and the best r * k PQ candidates are re-ranked by their exact dot
        products, which restores recall at the cost of the compression).

    Search parameters (`ef_search`, `nprobe`) are plain attributes and may be changed after
    `index`. Exclusions are handled by over-fetching (k plus the longest exclusion list,
    doubled until every row has k eligible results or the whole corpus was searched).
    When k' reaches N the search is exhaustive, so every candidate is returned.
    """

    type_name = "faiss"

    def __init__(self, kind: str = "hnsw", **params: Any) -> None:
        if kind not in _PARAMS:
            raise ConfigError(
                f"The 'kind' parameter of Faiss must be one of {sorted(_PARAMS)}. "
                f"Got {kind!r} instead."
            )
        allowed = _PARAMS[kind]
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ConfigError(
                f"Faiss(kind={kind!r}) does not take the parameter(s) {unknown}; it accepts "
                f"{sorted(allowed) or 'none'}."
            )
        self.kind = kind
        for name, default in allowed.items():
            value = params.get(name, default)
            if isinstance(default, bool):
                if not isinstance(value, bool | np.bool_):
                    raise ConfigError(
                        f"The '{name}' parameter of Faiss(kind={kind!r}) must be True or False. "
                        f"Got {value!r} instead."
                    )
                setattr(self, name, bool(value))
                continue
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | np.integer)
                or (value < 1 and name != "seed")
            ):
                raise ConfigError(
                    f"The '{name}' parameter of Faiss(kind={kind!r}) must be a positive int"
                    f"{' or None' if default is None else ''}. Got {value!r} instead."
                )
            setattr(self, name, None if value is None else int(value))

    @property
    def is_exact(self) -> bool:
        """True only for kind "flat"."""
        return self.kind == "flat"

    # -------------------------------------------------------------- hooks
    def _config(self) -> dict[str, Any]:
        return {"kind": self.kind, **{name: getattr(self, name) for name in _PARAMS[self.kind]}}

    def _stored_size(self) -> int:
        return int(self.index_.ntotal)

    def _fit(self, embeddings: np.ndarray) -> None:
        faiss = _import_faiss()
        n, d = embeddings.shape
        ip = faiss.METRIC_INNER_PRODUCT
        if self.kind == "flat":
            index = faiss.IndexFlatIP(d)
        elif self.kind == "hnsw":
            if self.l2_transform:
                index = faiss.IndexHNSWFlat(d + 1, self.M, faiss.METRIC_L2)
                embeddings = _augment_corpus(embeddings)
            else:
                index = faiss.IndexHNSWFlat(d, self.M, ip)
            index.hnsw.efConstruction = self.ef_construction
        else:
            nlist = self.nlist if self.nlist is not None else default_nlist(n)
            if nlist > n:
                raise ConfigError(
                    f"The 'nlist' parameter of Faiss(kind={self.kind!r}) must not exceed the "
                    f"number of vectors ({n}). Got {nlist} instead."
                )
            n_train = self.train_size if self.train_size is not None else max(40 * nlist, 1 << 16)
            n_train = max(nlist, min(n, n_train))
            if self.kind == "ivf_flat":
                spec = f"IVF{nlist},Flat"
            else:
                m = self.m if self.m is not None else default_m(d)
                if d % m:
                    raise ConfigError(
                        f"The 'm' parameter of Faiss(kind='ivf_pq') must divide the dimension "
                        f"{d}. Got {m} instead; try {default_m(d)}."
                    )
                nbits = self.nbits if self.nbits is not None else min(8, int(math.log2(n_train)))
                if n_train < 2**nbits:
                    raise ConfigError(
                        f"Faiss(kind='ivf_pq') with nbits={nbits} needs at least {2**nbits} "
                        f"training vectors; got {n_train}. Lower 'nbits' or index more vectors."
                    )
                spec = f"IVF{nlist},PQ{m}x{nbits}np"  # np: no polysemous training
                if self.refine is not None:
                    spec += ",RFlat"  # exact re-ranking from the stored full vectors
            index = faiss.index_factory(d, spec, ip)
            if n_train < n:
                rng = np.random.default_rng(self.seed)
                train = embeddings[np.sort(rng.choice(n, size=n_train, replace=False))]
            else:
                train = embeddings
            index.train(train)
        index.add(embeddings)
        self.index_ = index
        self.dim_ = d

    def _search_params(self, exhaustive: bool) -> Any:
        faiss = _import_faiss()
        if self.kind == "hnsw":
            return faiss.SearchParametersHNSW(efSearch=self.ef_search)
        if self.kind in ("ivf_flat", "ivf_pq"):
            nlist = int(self._ivf.nlist)
            nprobe = nlist if exhaustive else min(nlist, self.nprobe or 32)
            ivf = faiss.SearchParametersIVF(nprobe=nprobe)
            if self._refined:
                return faiss.IndexRefineSearchParameters(
                    k_factor=self.refine, base_index_params=ivf
                )
            return ivf
        return None

    @property
    def _refined(self) -> bool:
        return self.kind == "ivf_pq" and getattr(self, "refine", None) is not None

    @property
    def _ivf(self) -> Any:
        """The inverted-file index itself (inside the re-ranking wrapper when `refine` is set)."""
        if self._refined:
            return _import_faiss().downcast_index(self.index_.base_index)
        return self.index_

    @property
    def _transformed(self) -> bool:
        return self.kind == "hnsw" and self.l2_transform

    def _raw_search(self, queries: np.ndarray, fetch: int) -> tuple[np.ndarray, np.ndarray]:
        """[B, D], fetch -> [B, fetch] inner products (best first), labels (-1: none found).

        Exhaustive when fetch >= N, so that every candidate can be returned.
        """
        exhaustive = fetch >= self.index_.ntotal
        if self._transformed:
            queries = np.concatenate([queries, np.zeros((len(queries), 1), np.float32)], axis=1)
        if exhaustive and self.kind == "hnsw":
            faiss = _import_faiss()
            scores, labels = faiss.downcast_index(self.index_.storage).search(queries, fetch)
        else:
            params = self._search_params(exhaustive)
            if params is None:
                scores, labels = self.index_.search(queries, fetch)
            else:
                scores, labels = self.index_.search(queries, fetch, params=params)
        if self._transformed:
            return self._rescore(queries[:, :-1], labels)
        return _clean(scores, labels)

    def _rescore(self, queries: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[B, D] queries, [B, f] labels -> exact inner products from the stored vectors, re-sorted."""
        faiss = _import_faiss()
        storage = faiss.downcast_index(self.index_.storage)
        stored = faiss.rev_swig_ptr(storage.get_xb(), storage.ntotal * storage.d)
        stored = stored.reshape(storage.ntotal, storage.d)
        missing = labels < 0
        vectors = stored[np.where(missing, 0, labels), : self.dim_]
        scores = np.einsum("bfd,bd->bf", vectors, queries, dtype=np.float32)
        scores[missing] = _NEG_INF
        order = np.argsort(-scores, axis=1, kind="stable")
        labels = np.where(missing, -1, labels).astype(np.int64)
        return np.take_along_axis(scores, order, axis=1), np.take_along_axis(labels, order, axis=1)

    def _search(
        self, queries: np.ndarray, k: int, exclude: Exclusions | None
    ) -> tuple[np.ndarray, np.ndarray]:
        n = int(self.index_.ntotal)
        if exclude is None:
            scores, labels = self._raw_search(queries, k)
            return _clean(scores, labels)
        b = queries.shape[0]
        keys = exclude.keys(n)
        out_v = np.full((b, k), _NEG_INF, dtype=np.float32)
        out_p = np.full((b, k), -1, dtype=np.int64)
        rows = np.arange(b)
        fetch = min(n, k + exclude.max_per_row)
        while True:
            scores, labels = self._raw_search(np.ascontiguousarray(queries[rows]), fetch)
            found = labels >= 0
            key = np.where(found, rows[:, None] * n + labels, -1)
            eligible = found & ~np.isin(key, keys)
            # Eligible results first, in FAISS order (best first), then keep k.
            order = np.argsort(~eligible, axis=1, kind="stable")[:, :k]
            keep = np.take_along_axis(eligible, order, axis=1)
            out_v[rows] = np.where(keep, np.take_along_axis(scores, order, axis=1), _NEG_INF)
            out_p[rows] = np.where(keep, np.take_along_axis(labels, order, axis=1), -1)
            short = eligible.sum(axis=1) < k
            if fetch >= n or not short.any():
                return out_v, out_p
            rows = rows[short]
            fetch = min(n, 2 * fetch)

    def _save_vectors(self, folder: Path) -> str:
        faiss = _import_faiss()
        atomic_write_bytes(folder / _VECTORS_FILE, faiss.serialize_index(self.index_).tobytes())
        return _VECTORS_FILE

    def _load_vectors(self, folder: Path, meta: dict[str, Any]) -> None:
        path = folder / meta.get("vectors_file", _VECTORS_FILE)
        if not path.is_file():
            raise FileNotFoundError(
                f"The saved index at {str(folder)!r} lacks its FAISS file {path.name!r}. "
                "Save the index again."
            )
        faiss = _import_faiss()
        try:
            self.index_ = faiss.read_index(str(path))
        except RuntimeError as e:
            raise DataFormatError(
                f"{str(path)!r} is not a readable FAISS index ({e}). Save the index again."
            ) from e
        self.dim_ = int(self.index_.d) - int(self._transformed)


def _augment_corpus(embeddings: np.ndarray) -> np.ndarray:
    """[N, D] -> [N, D + 1] with the extra coordinate sqrt(R^2 - |x|^2): equal norms R."""
    sq = np.einsum("nd,nd->n", embeddings, embeddings, dtype=np.float64)
    extra = np.sqrt(np.maximum(sq.max() - sq, 0.0)).astype(np.float32)
    return np.concatenate([embeddings, extra[:, None]], axis=1)


def _clean(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FAISS output -> scores with -inf and positions -1 wherever no result was found."""
    missing = labels < 0
    if missing.any():
        scores = np.where(missing, _NEG_INF, scores).astype(np.float32)
        labels = np.where(missing, -1, labels)
    return scores, labels.astype(np.int64, copy=False)
