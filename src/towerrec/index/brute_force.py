"""Exact inner-product top-k by scoring the whole corpus in chunks with a running top-k."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from towerrec._io import atomic_write_bytes
from towerrec.errors import DataFormatError
from towerrec.index.base import Exclusions, Index

__all__ = ["BruteForce"]

_VECTORS_FILE = "embeddings.safetensors"
_NEG_INF = np.float32(-np.inf)
_LOWEST = np.finfo(np.float32).min
#: Up to this many queries, block maxima are taken by halving (see `_block_maxima`).
_HALVING_MAX_QUERIES = 32


class BruteForce(Index):
    """[N, D] corpus -> exact top-k by inner product; the reference for every other index.

    The corpus is scored chunk by chunk (`[chunk, D] @ [D, B]`) and a running top-k is kept,
    so a large batch never needs a `[B, N]` score matrix at once. `chunk_size` is the number
    of corpus rows per chunk; by default it is chosen from the batch size so that one chunk
    holds about 8M scores (the whole of a 1M corpus for a single query).

    Selecting the top-k of a chunk uses block maxima first: blocks of 64 scores whose maximum
    is below the current k-th best (or below the k-th largest block maximum of the chunk,
    which at least k scores reach) are skipped, so a chunk costs about one pass over its
    scores beyond the matrix product.
    Excluded candidates are set to -inf in the chunk before selection.
    """

    type_name = "brute_force"

    #: scores per chunk when `chunk_size` is None.
    score_budget: int = 1 << 23
    #: chunks with fewer scores than this use a plain partial sort.
    _threshold_min_scores: int = 1 << 14
    #: columns per block for block-maximum filtering.
    _block: int = 64

    def __init__(self, chunk_size: int | None = None) -> None:
        if chunk_size is not None and (
            isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
        ):
            raise ValueError(
                "The 'chunk_size' parameter of BruteForce must be a positive int or None. "
                f"Got {chunk_size!r} instead."
            )
        self.chunk_size = chunk_size

    @property
    def is_exact(self) -> bool:
        """True: brute force returns the exact top-k."""
        return True

    @property
    def embeddings(self) -> np.ndarray:
        """[N, D] float32 the indexed vectors (read-only view)."""
        self._check_fitted("embeddings")
        view = self.embeddings_.view()
        view.flags.writeable = False
        return view

    # -------------------------------------------------------------- hooks
    def _fit(self, embeddings: np.ndarray) -> None:
        # Own a contiguous float32 copy so later changes to the caller's array cannot leak in.
        self.embeddings_ = np.array(embeddings, dtype=np.float32, order="C", copy=True)

    def _config(self) -> dict[str, Any]:
        return {"chunk_size": self.chunk_size}

    def _stored_size(self) -> int:
        return int(self.embeddings_.shape[0])

    def _rows_per_chunk(self, batch: int, n: int) -> int:
        if self.chunk_size is not None:
            return min(self.chunk_size, n)
        return max(1, min(n, self.score_budget // max(batch, 1)))

    def _search(
        self, queries: np.ndarray, k: int, exclude: Exclusions | None
    ) -> tuple[np.ndarray, np.ndarray]:
        corpus = self.embeddings_
        n = corpus.shape[0]
        b = queries.shape[0]
        rows = self._rows_per_chunk(b, n)
        # Block maxima pay off once a chunk holds many scores and at least k blocks.
        block = min(self._block, rows // k) if b * rows >= self._threshold_min_scores else 0
        block = block if block >= 4 else 1
        best_v = np.full((b, k), _NEG_INF, dtype=np.float32)
        best_p = np.full((b, k), -1, dtype=np.int64)
        # Scores are laid out [chunk, B] (corpus-major): block maxima then reduce across
        # rows, which vectorises over the B queries.
        buf = np.empty(-(-rows // block) * block * b, dtype=np.float32)
        for start in range(0, n, rows):
            end = min(n, start + rows)
            c = end - start
            width = -(-c // block) * block
            padded = buf[: width * b].reshape(width, b)
            scores = padded[:c]
            np.matmul(corpus[start:end], queries.T, out=scores)
            padded[c:] = _NEG_INF
            if exclude is not None:
                lo, hi = np.searchsorted(exclude.positions, [start, end])
                scores[exclude.positions[lo:hi] - start, exclude.rows[lo:hi]] = _NEG_INF
            merged = None
            if block > 1:
                merged = _merge_blocks(padded, block, start, best_v, best_p)
            best_v, best_p = merged or _merge_plain(scores, start, best_v, best_p)
        # Best first; equal scores in position order, so results are deterministic.
        order = np.lexsort((best_p, -best_v), axis=1)
        best_v = np.take_along_axis(best_v, order, axis=1)
        best_p = np.take_along_axis(best_p, order, axis=1)
        best_p[best_v == _NEG_INF] = -1
        return best_v, best_p

    def _save_vectors(self, folder: Path) -> str:
        from safetensors.numpy import save

        atomic_write_bytes(folder / _VECTORS_FILE, save({"embeddings": self.embeddings_}))
        return _VECTORS_FILE

    def _load_vectors(self, folder: Path, meta: dict[str, Any]) -> None:
        from safetensors.numpy import load_file

        path = folder / meta.get("vectors_file", _VECTORS_FILE)
        if not path.is_file():
            raise FileNotFoundError(
                f"The saved index at {str(folder)!r} lacks its vectors file {path.name!r}. "
                "Save the index again."
            )
        try:
            tensors = load_file(path)
            emb = tensors["embeddings"]
        except Exception as e:
            raise DataFormatError(
                f"{str(path)!r} is not a valid safetensors file with an 'embeddings' tensor "
                f"({e}). Save the index again."
            ) from e
        if emb.ndim != 2:
            raise DataFormatError(f"{str(path)!r} holds shape {emb.shape}; expected [N, D].")
        self.embeddings_ = np.ascontiguousarray(emb, dtype=np.float32)
        self.dim_ = int(emb.shape[1])


def _merge_plain(
    scores: np.ndarray, start: int, best_v: np.ndarray, best_p: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """[c, B] chunk scores + [B, k] running best -> new [B, k] best, by one partial sort."""
    c, b = scores.shape
    cand_v = np.concatenate([best_v, scores.T], axis=1)
    cand_p = np.concatenate(
        [best_p, np.broadcast_to(np.arange(start, start + c, dtype=np.int64), (b, c))], axis=1
    )
    top = np.argpartition(cand_v, c, axis=1)[:, c:]
    return np.take_along_axis(cand_v, top, axis=1), np.take_along_axis(cand_p, top, axis=1)


def _merge_blocks(
    padded: np.ndarray, block: int, start: int, best_v: np.ndarray, best_p: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """[c, B] chunk scores (c a multiple of `block`) + [B, k] best -> new best, or None.

    Only blocks whose maximum reaches a threshold are looked at: the current k-th best, or,
    while some row has fewer than k results, the k-th largest block maximum of the chunk (at
    least k scores reach it) if higher. Returns None when too many blocks qualify (e.g. many
    tied scores).
    """
    width, b = padded.shape
    k = best_v.shape[1]
    nb = width // block
    if b == 1:  # a contiguous reduction is faster than a strided one
        blocks = padded.reshape(nb, block, 1)
        maxima = padded.reshape(nb, block).max(axis=1)[:, None]
    else:
        blocks = padded.reshape(nb, block, b)
        maxima = _block_maxima(blocks)  # [nb, B]
    threshold = best_v.min(axis=1)
    if nb >= k and (threshold == _NEG_INF).any():
        threshold = np.maximum(threshold, np.partition(maxima, nb - k, axis=0)[nb - k])
    threshold = np.maximum(threshold, _LOWEST)  # never admit excluded (-inf) columns
    # Row-major over [B, nb], so candidates come grouped by query.
    query_ids, block_ids = np.nonzero((maxima >= threshold).T)
    if len(query_ids) > 4 * b * k + 1024:
        return None
    values = blocks[block_ids, :, query_ids]  # [P, block]
    hit_block, hit_col = np.nonzero(values >= threshold[query_ids][:, None])
    return _merge_candidates(
        best_v,
        best_p,
        query_ids[hit_block],
        block_ids[hit_block] * block + hit_col,
        values[hit_block, hit_col],
        start,
    )


def _block_maxima(blocks: np.ndarray) -> np.ndarray:
    """[nb, block, B] -> [nb, B] maxima over the middle axis.

    A reduction over a middle axis of few queries runs numpy's inner loop B elements at a
    time; for small B, halving the blocks with whole-array maximums is several times faster.
    """
    _, width, b = blocks.shape
    if b > _HALVING_MAX_QUERIES or width & (width - 1):
        return blocks.max(axis=1)
    half = width // 2
    x = np.maximum(blocks[:, :half], blocks[:, half:])
    while half > 1:
        half //= 2
        np.maximum(x[:, :half], x[:, half : 2 * half], out=x[:, :half])
    return x[:, 0]


def _merge_candidates(
    best_v: np.ndarray,
    best_p: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    values: np.ndarray,
    start: int,
) -> tuple[np.ndarray, np.ndarray]:
    """[B, k] best + candidate (row, col, value) triples, row-major -> [B, k] new best."""
    b, k = best_v.shape
    if len(rows) == 0:
        return best_v, best_p
    counts = np.bincount(rows, minlength=b)
    m = int(counts.max())
    slot = np.arange(len(rows)) - (np.cumsum(counts) - counts)[rows] + k
    cand_v = np.full((b, k + m), _NEG_INF, dtype=np.float32)
    cand_p = np.full((b, k + m), -1, dtype=np.int64)
    cand_v[:, :k] = best_v
    cand_p[:, :k] = best_p
    cand_v[rows, slot] = values
    cand_p[rows, slot] = cols + start
    top = np.argpartition(cand_v, m, axis=1)[:, m:]
    return np.take_along_axis(cand_v, top, axis=1), np.take_along_axis(cand_p, top, axis=1)
