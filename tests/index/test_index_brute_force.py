"""BruteForce: the TFRS top-k grid, the block-maximum fast path, ties and saved folders."""

from __future__ import annotations

import itertools
import json
import zlib

import numpy as np
import pytest

import towerrec.index as ti
from towerrec.errors import DataFormatError

GRID = list(
    itertools.product(
        [5, 10],  # k
        [3, 16],  # batch: corpus rows scored per chunk
        [3, 15, 16],  # number of queries
        [128, 1024],  # corpus size
        ["str", "int"],  # id type
        [True, False],  # exclusions
    )
)


def _grid_case(k: int, num_queries: int, corpus_size: int, id_type: str, exclusions: bool):
    """-> corpus, queries, ids, exclude lists and the [B, N] excluded mask, from a fixed seed."""
    rng = np.random.default_rng(zlib.crc32(f"{k}-{num_queries}-{corpus_size}-{id_type}".encode()))
    corpus = rng.standard_normal((corpus_size, 16)).astype(np.float32)
    queries = rng.standard_normal((num_queries, 16)).astype(np.float32)
    raw = rng.choice(10**6, size=corpus_size, replace=False)
    ids = np.array([f"cand_{v}" for v in raw], dtype=object) if id_type == "str" else raw
    mask = np.zeros((num_queries, corpus_size))
    exclude = None
    if exclusions:
        top = np.argsort(-(queries.astype(np.float64) @ corpus.T.astype(np.float64)), axis=1)
        exclude = []
        for row in range(num_queries):
            chosen = np.concatenate(
                [
                    rng.choice(top[row, : 2 * k], size=k // 2, replace=False),
                    rng.choice(corpus_size, 3),
                ]
            )
            mask[row, chosen] = 1
            unknown = "cand_unknown" if id_type == "str" else -12345
            exclude.append([*ids[chosen].tolist(), unknown])
    return corpus, queries, ids, exclude, mask


@pytest.mark.parametrize(
    ("k", "batch", "num_queries", "corpus_size", "id_type", "exclusions"), GRID
)
def test_tfrs_topk_grid(
    k, batch, num_queries, corpus_size, id_type, exclusions, reference, tmp_path
) -> None:
    corpus, queries, ids, exclude, mask = _grid_case(
        k, num_queries, corpus_size, id_type, exclusions
    )
    ref_scores, ref_pos = reference(queries, corpus, k + 1, mask)
    adjusted = ref_scores - 1e9 * np.take_along_axis(mask, ref_pos, axis=1)
    # Precondition: no near-ties in the top k+1, so float32 rounding cannot reorder them.
    assert (-np.diff(adjusted, axis=1)).min() > 1e-4
    expected_ids, expected_scores = ids[ref_pos[:, :k]], ref_scores[:, :k]

    index = ti.BruteForce(chunk_size=batch).index(corpus, ids)
    for searcher in (index, None):
        if searcher is None:
            index.save(tmp_path / "grid")
            searcher = ti.load(tmp_path / "grid")
        scores, got = searcher.query(queries, k, exclude=exclude)
        assert got.shape == (num_queries, k)
        np.testing.assert_array_equal(got, expected_ids)
        np.testing.assert_allclose(scores.numpy(), expected_scores, atol=1e-4, rtol=0)


def _check_topk(queries, corpus, scores, pos, k, mask=None) -> None:
    """Exact top-k up to near-ties: real scores, and the same sorted values as NumPy's top-k."""
    full = queries.astype(np.float64) @ corpus.T.astype(np.float64)
    if mask is not None:
        full = np.where(mask, -np.inf, full)
    expected = -np.sort(-full, axis=1)[:, :k]
    s = scores.numpy()
    np.testing.assert_allclose(s, expected, atol=1e-4)
    valid = pos >= 0
    np.testing.assert_array_equal(valid, np.isfinite(expected))
    rows = np.nonzero(valid)[0]
    np.testing.assert_allclose(s[valid], full[rows, pos[valid]], atol=1e-4)
    for row in range(len(pos)):
        assert len(set(pos[row][valid[row]].tolist())) == valid[row].sum()


@pytest.mark.parametrize("k", [1, 10, 100])
@pytest.mark.parametrize("batch", [1, 7, 40])
@pytest.mark.parametrize("chunk_size", [None, 3000])
def test_block_maximum_path_is_exact(k, batch, chunk_size, mixture) -> None:
    corpus, queries = mixture(20_000, 16, centres=50, seed=k + batch)
    queries = queries[:batch]
    index = ti.BruteForce(chunk_size=chunk_size).index(corpus)
    scores, pos = index.query(queries, k)
    _check_topk(queries, corpus, scores, pos, k)
    # Exclude the first half of each row's answer and a random tenth of the corpus.
    rng = np.random.default_rng(k)
    mask = rng.random((batch, len(corpus))) < 0.1
    np.put_along_axis(mask, pos[:, : max(1, k // 2)], True, axis=1)
    exclude = [np.nonzero(row)[0].tolist() for row in mask]
    scores, pos = index.query(queries, k, exclude=exclude)
    _check_topk(queries, corpus, scores, pos, k, mask)


@pytest.mark.parametrize("width", [4, 30, 64])
@pytest.mark.parametrize("queries", [1, 2, 5, 32, 33])
def test_block_maxima_match_a_plain_reduction(width, queries) -> None:
    from towerrec.index.brute_force import _block_maxima

    blocks = np.random.default_rng(width + queries).standard_normal((50, width, queries))
    blocks = blocks.astype(np.float32)
    blocks[3, :, 0] = -np.inf  # a fully excluded block stays -inf
    expected = blocks.max(axis=1)
    np.testing.assert_array_equal(_block_maxima(blocks.copy()), expected)


def test_block_path_pads_rows_with_too_few_candidates(mixture) -> None:
    corpus, queries = mixture(20_000, 8, centres=10, seed=1)
    index = ti.BruteForce().index(corpus)
    keep = [11, 4000, 12345, 19999]
    exclude = [[p for p in range(len(corpus)) if p not in keep], [7]]
    scores, pos = index.query(queries[:2], 10, exclude=exclude)
    assert sorted(pos[0, :4].tolist()) == keep and pos[0, 4:].tolist() == [-1] * 6
    assert np.isneginf(scores[0, 4:].numpy()).all() and (pos[1] >= 0).all() and 7 not in pos[1]


def test_ties_keep_position_order_and_real_scores() -> None:
    corpus = np.tile(np.array([[1.0, 2.0, -1.0]], dtype=np.float32), (30_000, 1))
    corpus[[5, 17]] = [0.0, 0.0, 9.0]  # two strictly better candidates
    queries = np.array([[0.5, 0.25, 1.0], [1.0, 0.0, 0.0]], dtype=np.float32)
    scores, pos = ti.BruteForce().index(corpus).query(queries, 20)
    assert pos[0, :2].tolist() == [5, 17] and np.allclose(scores[0, :2].numpy(), 9.0)
    assert np.allclose(scores[0, 2:].numpy(), 0.0)
    assert np.allclose(scores[1, :18].numpy(), 1.0)
    for row in pos:
        tied = row[2:] if row[0] == 5 else row[:18]
        assert (np.diff(tied) > 0).all(), "equal scores come back in position order"


def test_results_do_not_depend_on_chunk_size(mixture) -> None:
    corpus, queries = mixture(3000, 12, centres=30, seed=4)
    results = [
        ti.BruteForce(chunk_size=c).index(corpus).query(queries[:9], 25, exclude=[[1, 2]] * 9)
        for c in (None, 7, 999, 3000, 10**6)
    ]
    for scores, pos in results[1:]:
        np.testing.assert_array_equal(pos, results[0][1])
        np.testing.assert_allclose(scores.numpy(), results[0][0].numpy(), atol=1e-5)


def test_index_keeps_its_own_copy_of_the_corpus() -> None:
    corpus = np.eye(4, dtype=np.float32)
    index = ti.BruteForce().index(corpus)
    corpus[:] = 0
    _, pos = index.query(np.array([0.0, 0.0, 1.0, 0.0]), 1)
    assert pos.tolist() == [[2]]
    assert not index.embeddings.flags.writeable and index.embeddings[2, 2] == 1.0


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "10"])
def test_chunk_size_must_be_a_positive_int(bad) -> None:
    with pytest.raises(ValueError, match="'chunk_size' parameter of BruteForce must be a positive"):
        ti.BruteForce(chunk_size=bad)


def test_broken_saved_folders_are_clear_errors(tmp_path) -> None:
    corpus = np.arange(12, dtype=np.float32).reshape(4, 3)
    folder = tmp_path / "idx"
    ti.BruteForce(chunk_size=2).index(corpus, ["a", "b", "c", "d"]).save(folder)
    assert ti.load(folder).chunk_size == 2
    with pytest.raises(FileNotFoundError, match=r"'index\.json' is missing"):
        ti.load(tmp_path / "nothing-here")
    meta = json.loads((folder / "index.json").read_text())

    def write(**changes) -> None:
        (folder / "index.json").write_text(json.dumps({**meta, **changes}))

    write(ids=["a", "b"])
    with pytest.raises(DataFormatError, match="lists 2 ids of dimension 3 but the vectors file"):
        ti.load(folder)
    write(type="mystery")
    with pytest.raises(DataFormatError, match="unknown index type 'mystery'"):
        ti.load(folder)
    write(type="faiss", config={"kind": "flat"}, vectors_file="index.faiss")
    with pytest.raises(FileNotFoundError, match="lacks its FAISS file"):
        ti.load(folder)
    write()
    (folder / "embeddings.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(DataFormatError, match="not a valid safetensors file"):
        ti.BruteForce.load(folder)
    (folder / "index.json").write_text("{not json")
    with pytest.raises(DataFormatError, match="not a valid index description"):
        ti.load(folder)
    with pytest.raises(NotADirectoryError, match="writes a folder"):
        ti.BruteForce().index(corpus).save(folder / "index.json")
