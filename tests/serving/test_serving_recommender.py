"""Recommender: batches, fallback, k at call time, exclusions, similar items, predict."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from towerrec.serving import Recommendation, Recommender, UnknownItemError, UnknownUserError


@pytest.fixture(scope="module")
def rec(bundle_path) -> Recommender:
    return Recommender.load(bundle_path)


def same(a: Recommendation, b: Recommendation) -> bool:
    """Equal results; scores may differ in the last float32 bits between batch sizes."""
    return (
        (a.ids, a.titles, a.user_id, a.item_id, a.fallback)
        == (b.ids, b.titles, b.user_id, b.item_id, b.fallback)
    ) and np.allclose(a.scores, b.scores, rtol=1e-5, atol=1e-7)


def test_one_user_or_a_batch(rec):
    one = rec.recommend(1, k=5)
    assert isinstance(one, Recommendation)
    assert one.user_id == 1 and len(one.ids) == len(one.scores) == len(one.titles) == 5
    assert one.scores == sorted(one.scores, reverse=True)
    batch = rec.recommend([1, 2, 3], k=5)
    assert isinstance(batch, list) and [r.user_id for r in batch] == [1, 2, 3]
    assert same(batch[0], one)
    assert all(map(same, rec.recommend(np.array([2, 3]), k=5), batch[1:]))


def test_string_ids_are_converted_to_the_fitted_type(rec):
    assert same(rec.recommend("7", k=3), rec.recommend(7, k=3))
    with pytest.raises(ValueError, match="integer id"):
        rec.recommend("seven", k=3)
    with pytest.raises(TypeError, match="bool"):
        rec.recommend(True, k=3)


def test_k_is_any_value_up_to_the_corpus(rec):
    n = rec.num_candidates
    for k in (1, 13, n):
        result = rec.recommend(5, k=k, exclude_seen=False)
        assert len(result.ids) == k
    everything = rec.recommend(5, k=n, exclude_seen=False)
    assert sorted(everything.ids) == sorted(rec.bundle.candidate_ids.tolist())
    for bad in (0, -1, n + 1, 2.5, True):
        with pytest.raises(ValueError, match=r"'k' parameter of Recommender\.recommend"):
            rec.recommend(5, k=bad)


def test_unknown_user_gets_flagged_popularity_fallback(rec, trained):
    result = rec.recommend(10_000, k=4)
    assert result.fallback == "popular"
    counts = trained.ratings["item_id"].value_counts()
    assert result.scores == sorted(result.scores, reverse=True)
    assert result.scores[0] == counts.max()
    assert result.ids[0] in set(counts[counts == counts.max()].index)
    mixed = rec.recommend([1, 10_000], k=4)
    assert [r.fallback for r in mixed] == [None, "popular"]
    assert rec.popular(4).ids == result.ids


def test_exclude_seen(rec, trained):
    user = 3
    seen = set(trained.ratings.loc[trained.ratings["user_id"] == user, "item_id"])
    assert set(rec.seen_items(user)) == seen
    n = rec.num_candidates
    kept = rec.recommend(user, k=n)
    assert set(kept.ids) == set(rec.bundle.candidate_ids.tolist()) - seen
    assert len(kept.ids) == n - len(seen)  # fewer than k remain: no padding
    everything = rec.recommend(user, k=n, exclude_seen=False)
    assert seen <= set(everything.ids)


def test_raw_query_features(rec):
    assert same(rec.recommend({"user_id": 4}, k=3), rec.recommend(4, k=3))
    rows = rec.recommend({"user_id": [4, 10_000]}, k=3)
    assert same(rows[0], rec.recommend(4, k=3))
    assert rows[1].fallback == "popular"
    with pytest.raises(ValueError, match="needs the features"):
        rec.recommend({"other": [1]}, k=3)


def test_per_row_k_and_flags_in_one_batch(rec):
    rows = rec.recommend_rows([1, 1, 10_000], [2, 5, 3], [True, False, True])
    assert [len(r.ids) for r in rows] == [2, 5, 3]
    assert rows[0].ids == rec.recommend(1, k=2).ids
    assert rows[1].ids == rec.recommend(1, k=5, exclude_seen=False).ids


def test_similar_items_cosine_and_dot(rec):
    emb = rec.bundle.embeddings
    ids = rec.bundle.candidate_ids
    item = int(ids[4])
    result = rec.similar_items(item, k=5)
    assert item not in result.ids and len(result.ids) == 5
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    cosine = unit @ unit[4]
    cosine[4] = -np.inf
    assert result.ids == ids[np.argsort(-cosine, kind="stable")[:5]].tolist()
    np.testing.assert_allclose(result.scores, np.sort(cosine)[::-1][:5], rtol=1e-5)
    dot = rec.similar_items(item, k=5, metric="dot")
    raw = emb @ emb[4]
    raw[4] = -np.inf
    assert dot.ids == ids[np.argsort(-raw, kind="stable")[:5]].tolist()
    assert dot.to_dict()["item_id"] == item
    with pytest.raises(UnknownItemError, match="Unknown item id 999"):
        rec.similar_items(999)
    with pytest.raises(ValueError, match="between 1 and"):
        rec.similar_items(item, k=rec.num_candidates)
    with pytest.raises(ValueError, match="'metric'"):
        rec.similar_items(item, metric="l2")


def test_predict_matches_the_rating_head(rec, trained):
    space, model = trained.space, trained.model
    batch = space.transform({"user_id": [1, 2], "item_id": [3, 4]})
    with torch.no_grad():
        expected = model.predict_rating(batch).tolist()
    assert rec.predict(1, 3) == pytest.approx(expected[0], abs=1e-6)
    assert rec.predict([1, 2], [3, 4]) == pytest.approx(expected, abs=1e-6)
    assert rec.predict("1", "3") == pytest.approx(expected[0], abs=1e-6)
    with pytest.raises(UnknownItemError, match="item id 999"):
        rec.predict(1, 999)
    with pytest.raises(UnknownUserError, match="user id 999"):
        rec.predict(999, 3)
    with pytest.raises(ValueError, match="as many user ids"):
        rec.predict([1, 2], [3])


def test_to_dict(rec):
    d = rec.recommend(1, k=2).to_dict()
    assert set(d) == {"user_id", "ids", "scores", "titles", "fallback"}
    assert d["fallback"] is None
