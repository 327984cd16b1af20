"""The `Index` contract, checked once for BruteForce and for every FAISS kind."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import towerrec.index as ti
from towerrec.errors import NotFittedError

try:
    import faiss
except ImportError:  # the test job without the [ann] extra
    faiss = None

FACTORIES = {
    "brute_force": lambda: ti.BruteForce(),
    "brute_force_chunked": lambda: ti.BruteForce(chunk_size=37),
    "faiss_flat": lambda: ti.Faiss("flat"),
    "faiss_hnsw": lambda: ti.Faiss("hnsw"),
    "faiss_hnsw_ip": lambda: ti.Faiss("hnsw", l2_transform=False),
    "faiss_ivf_flat": lambda: ti.Faiss("ivf_flat"),
    "faiss_ivf_pq": lambda: ti.Faiss("ivf_pq"),
    "faiss_ivf_pq_refine": lambda: ti.Faiss("ivf_pq", refine=2),
}
N, D, B = 300, 8, 5
_NEEDS_FAISS = pytest.mark.skipif(faiss is None, reason="needs pip install 'towerrec[ann]'")


@pytest.fixture(
    params=[
        pytest.param(name, marks=_NEEDS_FAISS if name.startswith("faiss") else ())
        for name in sorted(FACTORIES)
    ]
)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def data(mixture):
    corpus, queries = mixture(N, D, centres=20, seed=0)
    return corpus, queries[:B]


def _str_ids(n: int) -> list[str]:
    return [f"item-{(7 * i) % n:04d}" for i in range(n)]


def _check_result(index, corpus, queries, scores, ids, k, id_list=None) -> None:
    """Shapes, dtypes, order, valid distinct ids and (except PQ) the real dot products."""
    id_list = list(range(len(corpus))) if id_list is None else id_list
    position = {v: p for p, v in enumerate(id_list)}
    assert isinstance(scores, torch.Tensor) and scores.dtype == torch.float32
    assert isinstance(ids, np.ndarray)
    assert tuple(scores.shape) == ids.shape == (len(queries), k)
    assert ids.dtype == (object if isinstance(id_list[0], str) else np.int64)
    s = scores.numpy()
    assert (np.diff(s, axis=1) <= 0).all(), "scores must be in descending order"
    for row in range(len(queries)):
        found = [v for v in ids[row].tolist() if v not in ("", -1)]
        assert len(set(found)) == len(found), "an id was returned twice"
        pos = np.array([position[v] for v in found], dtype=np.int64)
        estimated = getattr(index, "kind", "") == "ivf_pq" and index.refine is None
        if not estimated:  # PQ without re-ranking returns estimated scores
            true = corpus[pos].astype(np.float64) @ queries[row].astype(np.float64)
            np.testing.assert_allclose(s[row, : len(found)], true, atol=1e-4, rtol=1e-5)


def test_shapes_dtypes_and_exactness(kind, data, reference) -> None:
    corpus, queries = data
    index = FACTORIES[kind]().index(corpus)
    assert index.size == N == len(index) and index.dim == D
    assert index.is_exact == (kind in ("brute_force", "brute_force_chunked", "faiss_flat"))
    scores, ids = index.query(queries, k=10)
    _check_result(index, corpus, queries, scores, ids, 10)
    if index.is_exact:
        ref_scores, ref_pos = reference(queries, corpus, 10)
        np.testing.assert_array_equal(ids, ref_pos)
        np.testing.assert_allclose(scores.numpy(), ref_scores, atol=1e-4)


def test_torch_and_numpy_inputs_agree(kind, data) -> None:
    corpus, queries = data
    a = FACTORIES[kind]().index(corpus).query(queries, 7)
    b = FACTORIES[kind]().index(torch.from_numpy(corpus)).query(torch.from_numpy(queries), 7)
    np.testing.assert_array_equal(a[1], b[1])
    assert torch.equal(a[0], b[0])


def test_single_query_is_a_batch_of_one(kind, data) -> None:
    corpus, queries = data
    index = FACTORIES[kind]().index(corpus)
    scores, ids = index.query(queries[2], k=6)
    assert tuple(scores.shape) == ids.shape == (1, 6)
    batch_scores, batch_ids = index.query(queries, k=6)
    np.testing.assert_array_equal(ids[0], batch_ids[2])
    np.testing.assert_allclose(scores[0].numpy(), batch_scores[2].numpy(), atol=1e-5)


def test_k_larger_than_corpus_returns_every_candidate(kind, mixture) -> None:
    corpus, queries = mixture(60, 4, centres=3, seed=1)
    ids = _str_ids(60)
    index = FACTORIES[kind]().index(corpus, ids)
    scores, got = index.query(queries[:3], k=1000)
    assert tuple(scores.shape) == got.shape == (3, 60)
    for row in got:
        assert sorted(row.tolist()) == sorted(ids)
    _check_result(index, corpus, queries[:3], scores, got, 60, ids)


@pytest.mark.parametrize("as_type", [list, set, np.array, tuple])
def test_excluded_ids_are_never_returned(kind, data, reference, as_type) -> None:
    corpus, queries = data
    ids = _str_ids(N)
    index = FACTORIES[kind]().index(corpus, ids)
    _, plain = index.query(queries, k=10)
    exclude = [
        as_type([*plain[0, :5].tolist(), "no-such-id"]),
        None,
        as_type([]),
        as_type(plain[3, ::2].tolist()),
        as_type(["nothing", "known"]),
    ]
    scores, got = index.query(queries, k=10, exclude=exclude)
    _check_result(index, corpus, queries, scores, got, 10, ids)
    for row, excluded in enumerate(exclude):
        assert not set(got[row].tolist()) & set([] if excluded is None else list(excluded))
        assert "" not in got[row].tolist(), "enough candidates remain: no padding expected"
    if index.is_exact:
        mask = np.zeros((B, N))
        position = {v: p for p, v in enumerate(ids)}
        for row, excluded in enumerate(exclude):
            for v in [] if excluded is None else list(excluded):
                if v in position:
                    mask[row, position[v]] = 1
        _, ref_pos = reference(queries, corpus, 10, mask)
        np.testing.assert_array_equal(got, np.array(ids, dtype=object)[ref_pos])


def test_excluding_positions_equals_excluding_their_ids(kind, data) -> None:
    corpus, queries = data
    ids = _str_ids(N)
    index = FACTORIES[kind]().index(corpus, ids)
    _, plain = index.query(queries, k=10)
    position = {v: p for p, v in enumerate(ids)}
    by_id = [plain[0, :5].tolist(), None, [], plain[3, ::2].tolist(), [ids[7]]]
    by_position = [
        None if row is None else np.array([position[v] for v in row], dtype=np.int64)
        for row in by_id
    ]
    by_position[4] = np.array([7, -1, N, N + 5])  # out-of-range positions are ignored
    s1, got1 = index.query(queries, k=10, exclude=by_id)
    s2, got2 = index.query(queries, k=10, exclude_positions=by_position)
    np.testing.assert_array_equal(got1, got2)
    np.testing.assert_array_equal(s1.numpy(), s2.numpy())
    with pytest.raises(ValueError, match="not both"):
        index.query(queries, k=10, exclude=by_id, exclude_positions=by_position)
    with pytest.raises(ValueError, match="one entry per query"):
        index.query(queries, k=10, exclude_positions=by_position[:2])
    with pytest.raises(TypeError, match="integer array per query"):
        index.query(queries, k=10, exclude_positions=[np.array([0.5])] + [None] * (B - 1))


@pytest.mark.parametrize("str_ids", [False, True])
def test_rows_short_of_candidates_are_padded(kind, data, str_ids) -> None:
    corpus, queries = data
    ids = _str_ids(N) if str_ids else list(range(1000, 1000 + N))
    index = FACTORIES[kind]().index(corpus, ids)
    keep = {ids[3], ids[250]}
    exclude = [[v for v in ids if v not in keep], [ids[0]]]
    scores, got = index.query(queries[:2], k=5, exclude=exclude)
    pad = "" if str_ids else -1
    assert set(got[0, :2].tolist()) == keep
    assert got[0, 2:].tolist() == [pad] * 3
    assert torch.isinf(scores[0, 2:]).all() and (scores[0, 2:] < 0).all()
    assert torch.isfinite(scores[0, :2]).all() and torch.isfinite(scores[1]).all()
    assert ids[0] not in got[1].tolist() and pad not in got[1].tolist()


def test_int_and_str_ids_are_returned_as_given(kind, data) -> None:
    corpus, queries = data
    int_ids = np.random.default_rng(3).choice(10**9, size=N, replace=False)
    index = FACTORIES[kind]().index(corpus, int_ids)
    _, by_int = index.query(queries, 8)
    assert by_int.dtype == np.int64 and set(by_int.ravel().tolist()) <= set(int_ids.tolist())
    str_ids = [f"movie {v}" for v in int_ids]
    index_s = FACTORIES[kind]().index(corpus, np.array(str_ids))
    _, by_str = index_s.query(queries, 8)
    assert by_str.dtype == object and isinstance(by_str[0, 0], str)
    np.testing.assert_array_equal(by_str, np.vectorize(lambda v: f"movie {v}")(by_int))
    assert index_s.id_dtype == "str" and index.id_dtype == "int64"


@pytest.mark.parametrize("str_ids", [False, True])
def test_save_and_load_give_the_same_results(kind, data, tmp_path, str_ids) -> None:
    corpus, queries = data
    ids = _str_ids(N) if str_ids else list(range(5000, 5000 + N))
    index = FACTORIES[kind]().index(corpus, ids)
    exclude = [[ids[1], ids[2]]] * B
    before = index.query(queries, 12, exclude=exclude)
    index.save(tmp_path / "idx")
    meta = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert meta["type"] == index.type_name and meta["dim"] == D
    assert meta["ids"] == ids and meta["id_dtype"] == ("str" if str_ids else "int64")
    files = sorted(p.name for p in (tmp_path / "idx").iterdir())
    assert files == sorted(["index.json", meta["vectors_file"]])
    for loaded in (ti.load(tmp_path / "idx"), type(index).load(str(tmp_path / "idx"))):
        assert type(loaded) is type(index) and loaded.size == N and loaded.dim == D
        assert loaded.is_exact == index.is_exact
        after = loaded.query(queries, 12, exclude=exclude)
        np.testing.assert_array_equal(after[1], before[1])
        assert torch.equal(after[0], before[0])


def test_reindexing_replaces_the_corpus(kind, data) -> None:
    corpus, queries = data
    index = FACTORIES[kind]().index(corpus, _str_ids(N))
    index.index(corpus[:50] * 2)
    _, ids = index.query(queries, 3)
    assert index.size == 50 and ids.dtype == np.int64 and ids.max() < 50


def test_bad_k_is_a_clear_error(kind, data) -> None:
    corpus, queries = data
    index = FACTORIES[kind]().index(corpus)
    for k in (0, -3, 2.5, True, "5", None):
        with pytest.raises(ValueError, match=r"'k' parameter of \w+\.query must be a positive int"):
            index.query(queries, k)


def test_using_an_index_before_index_raises_not_fitted(kind, data, tmp_path) -> None:
    _, queries = data
    index = FACTORIES[kind]()
    with pytest.raises(NotFittedError, match=r"Call \.index\(embeddings, ids\) first"):
        index.query(queries, 3)
    with pytest.raises(NotFittedError):
        index.save(tmp_path / "x")
    with pytest.raises(NotFittedError):
        _ = index.size


def test_wrong_shapes_and_values_are_clear_errors(kind, data) -> None:
    corpus, queries = data
    index = FACTORIES[kind]().index(corpus)
    with pytest.raises(ValueError, match=rf"shape \[B, {D}\] or \[{D}\].*Got shape \(5, 7\)"):
        index.query(queries[:, :7], 3)
    with pytest.raises(ValueError, match="Got shape"):
        index.query(queries[None], 3)
    with pytest.raises(ValueError, match="one entry per query: got 2 entries for 5 queries"):
        index.query(queries, 3, exclude=[[1], [2]])
    with pytest.raises(TypeError, match="one iterable of ids per query"):
        index.query(queries[:1], 3, exclude=[5])
    with pytest.raises(ValueError, match="NaN or infinite"):
        index.query(np.full((1, D), np.nan), 3)
    fresh = FACTORIES[kind]()
    with pytest.raises(ValueError, match="one id per embedding: got 299 ids for 300"):
        fresh.index(corpus, list(range(299)))
    with pytest.raises(ValueError, match=r"unique ids; 1 duplicates found, e.g. \['a'\]"):
        fresh.index(corpus[:3], ["a", "b", "a"])
    with pytest.raises(TypeError, match="only str ids or only int ids"):
        fresh.index(corpus[:2], ["a", 1])
    with pytest.raises(TypeError, match=r"only str ids or only int ids\. Got values of types"):
        fresh.index(corpus[:2], [0.5, 1.5])
    with pytest.raises(TypeError, match=r"str or int ids\. Got an array of dtype float64"):
        fresh.index(corpus[:2], np.array([0.5, 1.5]))
    with pytest.raises(ValueError, match=r"shape \[N, D\]"):
        fresh.index(corpus[0])
    bad = corpus.copy()
    bad[4, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        fresh.index(bad)
    with pytest.raises(TypeError, match="real-valued"):
        fresh.index(np.array([["a", "b"]]))
