"""Deep retrieval: tutorial towers, grouped in-batch softmax, corpus buffers, history, save/load."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

import towerrec as tr
from towerrec.data import random_split, write_movielens
from towerrec.errors import ConfigError
from towerrec.features.space import FeatureSpace
from towerrec.models.deep_retrieval import (
    CandidateModel,
    DeepRetrievalModel,
    HistoryBag,
    QueryModel,
    build_corpus,
    grouped_in_batch_softmax,
    tutorial_model,
    tutorial_space,
)
from towerrec.tasks import Retrieval

QUERY_KEYS = ["user_id", "timestamp_bucket", "timestamp_norm", "item"]


@pytest.fixture(scope="module")
def movielens(tmp_path_factory):
    folder = write_movielens(
        tmp_path_factory.mktemp("ml"), "100k", num_users=40, num_items=30, num_ratings=900
    )
    ml = tr.datasets.movielens("100k", data_dir=folder)
    ratings = ml.ratings.merge(ml.items[["item_id", "title"]], on="item_id")
    train, test = random_split(ratings, 0.8, seed=1)
    space = tutorial_space(num_timestamp_buckets=50).fit(ratings, ml.items)
    corpus = build_corpus(space, ml.items, names=["title_id", "title_tokens"])
    return ml, space, corpus, train, test


def test_tutorial_towers_shapes() -> None:
    query = QueryModel(10, 1001, [64, 32])
    cand = CandidateModel(12, 50, [64, 32])
    assert query.inputs.output_dim == 65  # 32 + 32 + 1
    assert cand.inputs.output_dim == 64
    batch = {
        "user_id": torch.tensor([1, 2, 3]),
        "timestamp_bucket": torch.tensor([0, 500, 1000]),
        "timestamp_norm": torch.tensor([-1.0, 0.0, 1.0]),
        "title_id": torch.tensor([3, 4, 5]),
        "title_tokens": torch.tensor([[2, 3, 0], [4, 0, 0], [0, 0, 0]]),
    }
    assert query(batch).shape == (3, 32)
    assert cand(batch).shape == (3, 32)
    assert [m.out_features for m in query.mlp.net if isinstance(m, torch.nn.Linear)] == [64, 32]


def test_corpus_rows_follow_the_item_lookup(movielens) -> None:
    ml, space, corpus, _, _ = movielens
    rows = space.transform(ml.items, names=["item"])["item"]
    titles = space.transform(ml.items, names=["title_id"])["title_id"]
    assert corpus["title_id"].shape == (len(ml.items),)
    assert corpus["title_tokens"].shape[0] == len(ml.items)
    assert torch.equal(corpus["title_id"][rows], titles)


def test_candidate_corpus_needs_no_arguments(movielens) -> None:
    ml, space, corpus, _, _ = movielens
    model = tutorial_model(space, corpus, [16])
    embeddings, ids = model.candidate_corpus()
    assert embeddings.shape == (len(ml.items), 16)
    assert torch.equal(ids, torch.arange(len(ml.items)))
    one = model.candidate_embeddings(torch.tensor([3]))
    assert torch.allclose(one[0], embeddings[3], atol=1e-6)


def test_trains_with_the_trainer_and_the_loss_falls(movielens) -> None:
    _, space, corpus, train, test = movielens
    torch.manual_seed(0)
    model = tutorial_model(space, corpus, [32, 16], dim=16)
    trainer = tr.Trainer(
        optimizer=tr.optim.Adam(lr=0.01),
        batch_size=128,
        epochs=8,
        validation_freq=4,
        progress=False,
    )
    data = space.transform(train, names=QUERY_KEYS)
    history = trainer.fit(model, data, validation=space.transform(test, names=QUERY_KEYS))
    losses = history["loss"]
    assert losses[-1] < 0.95 * losses[0]
    assert losses[-1] < losses[-2] < losses[-3]
    assert [e for e, v in zip(history.epochs, history["val_top_10"], strict=True) if v == v] == [
        4,
        8,
    ]
    assert 0.0 <= history.last("val_top_10") <= history.last("val_top_100") == 1.0  # 30 items


@pytest.mark.parametrize("logq", [False, True])
@pytest.mark.parametrize("hits", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_grouped_softmax_equals_the_retrieval_task(logq: bool, hits: bool, weighted: bool) -> None:
    torch.manual_seed(0)
    rows = torch.randint(0, 7, (40,))
    corpus = torch.randn(7, 5, requires_grad=True)
    query = torch.randn(40, 5, requires_grad=True)
    log_prob = torch.log_softmax(torch.randn(7), 0)
    weight = torch.rand(40) if weighted else None
    task = Retrieval(remove_accidental_hits=hits, fused=False)
    expected = task(
        query,
        corpus[rows],
        sample_weight=weight,
        candidate_sampling_probability=log_prob[rows].exp() if logq else None,
        candidate_ids=rows,
    )
    uniq, target, counts = torch.unique(rows, return_inverse=True, return_counts=True)
    got = grouped_in_batch_softmax(
        query,
        corpus[uniq],
        target,
        counts,
        sampling_log_prob=log_prob[uniq] if logq else None,
        remove_accidental_hits=hits,
        weight=weight,
    )
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    g_expected = torch.autograd.grad(expected, [query, corpus])
    g_got = torch.autograd.grad(got, [query, corpus])
    for a, b in zip(g_expected, g_got, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_model_loss_grouped_or_not_is_the_same(movielens) -> None:
    _, space, corpus, train, _ = movielens
    torch.manual_seed(0)
    grouped = tutorial_model(space, corpus, [16])
    plain = DeepRetrievalModel.from_config({**grouped.config, "grouped": False})
    plain.set_corpus(corpus)
    plain.load_state_dict(grouped.state_dict())
    batch = space.transform(train.iloc[:64], names=QUERY_KEYS)
    a, b = grouped.compute_loss(batch, training=True), plain.compute_loss(batch, training=True)
    assert a.item() == pytest.approx(b.item(), rel=1e-5)
    ga = torch.autograd.grad(a, list(grouped.parameters()))
    gb = torch.autograd.grad(b, list(plain.parameters()))
    for x, y in zip(ga, gb, strict=True):
        assert torch.allclose(x, y, atol=1e-4)


def test_corpus_negatives_are_the_full_softmax(movielens) -> None:
    _, space, corpus, train, _ = movielens
    torch.manual_seed(0)
    model = tutorial_model(space, corpus, [16])
    full = DeepRetrievalModel.from_config({**model.config, "negatives": "corpus"})
    full.set_corpus(corpus)
    full.load_state_dict(model.state_dict())
    batch = space.transform(train.iloc[:50], names=QUERY_KEYS)
    logits = full.query_embeddings(batch) @ full.candidate_embeddings().T
    expected = F.cross_entropy(logits, batch["item"], reduction="sum")
    assert full.compute_loss(batch).item() == pytest.approx(expected.item(), rel=1e-5)


def test_candidate_bias_and_logq_options_train(movielens) -> None:
    _, space, corpus, train, _ = movielens
    torch.manual_seed(0)
    base = tutorial_model(space, corpus, [8])
    model = DeepRetrievalModel.from_config(
        {**base.config, "candidate_bias": True, "logq_correction": True, "l2": 0.01}
    )
    model.set_corpus(corpus)
    data = space.transform(train, names=QUERY_KEYS)
    model.set_candidate_counts(torch.bincount(data["item"], minlength=len(corpus["title_id"])))
    assert model.query_embeddings(data).shape[1] == 9  # the bias coordinate
    trainer = tr.Trainer(optimizer=tr.optim.Adam(lr=0.01), batch_size=256, epochs=2, progress=False)
    trainer.fit(model, data)
    assert model.candidate_bias is not None and model.candidate_bias.abs().sum() > 0


def test_history_bag_leaves_out_the_own_item() -> None:
    bag = HistoryBag(num_users=3, num_items=4, dim=2)
    with torch.no_grad():
        bag.table.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [4.0, 0.0]]))
    bag.set_history(torch.tensor([0, 0, 0, 1, 0]), torch.tensor([0, 1, 2, 3, 2]))
    out = bag(torch.tensor([0, 0, 1, 1, 2]), torch.tensor([2, 3, 3, 0, 1]))
    expected = torch.tensor(
        [
            [0.5, 0.5],  # user 0 without item 2: mean of items 0 and 1
            [1.0, 1.0],  # item 3 is not in user 0's history: mean of 0, 1, 2
            [0.0, 0.0],  # user 1's only item is the example's own: nothing left
            [4.0, 0.0],
            [0.0, 0.0],  # no history
        ]
    )
    assert torch.allclose(out, expected)
    assert torch.equal(
        bag.contains(torch.tensor([0, 0, 1, 2]), torch.tensor([1, 3, 3, 0])),
        torch.tensor([True, False, True, False]),
    )


def test_save_load_round_trip_gives_the_same_embeddings(movielens, tmp_path) -> None:
    ml, space, corpus, train, test = movielens
    torch.manual_seed(0)
    query_features = {
        "user_id": {"type": "embedding", "size": space["user_id"].size, "dim": 8},
        "history": {
            "type": "history",
            "num_users": space["user_id"].size,
            "size": len(ml.items),
            "dim": 8,
        },
        "timestamp_norm": {"type": "numeric"},
    }
    candidate_features = {
        "title_id": {"type": "embedding", "size": space["title_id"].size, "dim": 8},
        "title_tokens": {"type": "text", "size": space["title_tokens"].size, "dim": 4},
    }
    model = DeepRetrievalModel(
        query_features, candidate_features, [16, 8], candidate_bias=True, negatives="corpus"
    )
    model.set_corpus(corpus)
    data = space.transform(train, names=QUERY_KEYS)
    model.set_history(data["user_id"], data["item"])
    tr.Trainer(optimizer=tr.optim.Adam(lr=0.01), batch_size=128, progress=False).fit(model, data)
    model.eval()
    space.save(tmp_path / "space.json")
    model.save(tmp_path / "model")

    space2 = FeatureSpace.load(tmp_path / "space.json")
    model2 = DeepRetrievalModel.load(tmp_path / "model")
    assert model2.config == model.config
    with torch.no_grad():
        q1 = model.query_embeddings(space.transform(test, names=QUERY_KEYS))
        q2 = model2.query_embeddings(space2.transform(test, names=QUERY_KEYS))
        c1, _ = model.candidate_corpus()
        c2, _ = model2.candidate_corpus()
    assert torch.equal(q1, q2)
    assert torch.equal(c1, c2)
    assert not list((tmp_path / "model").glob(".*"))


def test_clear_errors(movielens) -> None:
    ml, space, corpus, _, _ = movielens
    with pytest.raises(ConfigError, match="'negatives'"):
        DeepRetrievalModel({"u": {"type": "numeric"}}, {"c": {"type": "numeric"}}, negatives="x")
    with pytest.raises(ConfigError, match="'type' one of"):
        DeepRetrievalModel({"u": {"type": "dense"}}, {"c": {"type": "numeric"}})
    with pytest.raises(ConfigError, match="'size' of feature 'u'"):
        DeepRetrievalModel({"u": {"type": "embedding", "dim": 4}}, {"c": {"type": "numeric"}})
    with pytest.raises(ConfigError, match="same size"):
        DeepRetrievalModel(
            {"u": {"type": "numeric"}}, {"c": {"type": "numeric"}}, query_layer_sizes=[3]
        )
    model = tutorial_model(space, corpus, [8])
    with pytest.raises(KeyError, match="'item'"):
        model.compute_loss({"user_id": torch.tensor([1])})
    with pytest.raises(KeyError, match="missing"):
        model.set_corpus({"title_id": corpus["title_id"]})
    with pytest.raises(ValueError, match="exactly once"):
        build_corpus(space, ml.items.iloc[:-1])


def test_previous_items_are_strictly_earlier_most_recent_first() -> None:
    import pandas as pd

    from towerrec.models.deep_retrieval import previous_items

    history = pd.DataFrame({"user_id": [1, 1, 1, 2, 1], "timestamp": [10, 30, 20, 5, 40]})
    items = torch.tensor([0, 1, 2, 3, 4])
    queries = pd.DataFrame({"user_id": [1, 1, 2, 3, 1], "timestamp": [30, 5, 6, 50, 100]})
    got = previous_items(history, items, queries, k=3)
    expected = torch.tensor(
        [
            [3, 1, 0],  # user 1 at t=30: items 2 (t=20) and 0 (t=10), not itself (t=30)
            [0, 0, 0],  # nothing before t=5
            [4, 0, 0],  # user 2: item 3
            [0, 0, 0],  # unknown user
            [5, 2, 3],  # the 3 most recent of user 1
        ]
    )
    assert torch.equal(got, expected)
    with pytest.raises(ValueError, match="'k'"):
        previous_items(history, items, queries, k=0)
    with pytest.raises(ValueError, match="one item id per history row"):
        previous_items(history, items[:2], queries)


def test_bundle_round_trip_serves_the_model_exactly(movielens, tmp_path) -> None:
    import numpy as np

    from towerrec.serving import Recommender, export
    from towerrec.serving.registry import model_name

    ml, space, corpus, train, test = movielens
    torch.manual_seed(0)
    model = tutorial_model(space, corpus, layer_sizes=[16, 8], dim=8)
    data = space.transform(train, names=QUERY_KEYS)
    tr.Trainer(batch_size=128, progress=False).fit(model, data)
    model.eval()
    assert model_name(model) == "deep_retrieval"
    query_features = ["user_id", "timestamp_bucket", "timestamp_norm"]
    path = export(
        model,
        space,
        tmp_path / "bundle",
        items=ml.items,
        seen=train,
        query_features=query_features,
        user_feature="user_id",
        item_feature="item",
    )
    rec = Recommender.load(path)
    assert rec.manifest["model"]["name"] == "deep_retrieval"
    rows = test.head(6)
    raw = {"user_id": rows["user_id"].tolist(), "timestamp": rows["timestamp"].tolist()}
    got = rec.recommend(raw, k=5, exclude_seen=False)
    with torch.no_grad():
        q = model.query_embeddings(space.transform(rows, names=query_features))
        c, corpus_rows = model.candidate_corpus()
        top = torch.topk(q @ c.T, 5, dim=1)
    item_ids = space["item"].inverse(corpus_rows.numpy())
    for row, result in enumerate(got):
        assert result.ids == item_ids[top.indices[row].numpy()].tolist()
        np.testing.assert_allclose(result.scores, top.values[row].numpy(), rtol=1e-5, atol=1e-6)
        assert all(isinstance(t, str) for t in result.titles)
    # A user id alone is not enough for this tower: the error names the missing features.
    with pytest.raises(ValueError, match="timestamp_bucket"):
        rec.recommend(int(rows["user_id"].iloc[0]), k=3)

    # Over HTTP: POST /recommend with raw query features; GET with a user id alone is a 422.
    import warnings

    from towerrec.serving import create_app

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*starlette.testclient.*")
        from fastapi.testclient import TestClient
    with TestClient(create_app(rec)) as client:
        assert client.get("/metadata").json()["query_columns"] == ["timestamp", "user_id"]
        queries = [{"user_id": u, "timestamp": t} for u, t in zip(*raw.values(), strict=True)]
        r = client.post("/recommend", json={"queries": queries, "k": 5, "exclude_seen": False})
        assert r.status_code == 200, r.text
        assert [x["ids"] for x in r.json()["results"]] == [x.ids for x in got]
        r = client.get("/recommend", params={"user_id": raw["user_id"][0]})
        assert r.status_code == 422 and '"queries"' in r.json()["detail"]
        # GET takes the other raw columns as further parameters, typed as they were fitted.
        params = {"user_id": raw["user_id"][0], "timestamp": str(raw["timestamp"][0])}
        r = client.get("/recommend", params={**params, "k": 5, "exclude_seen": "false"})
        assert r.status_code == 200 and r.json()["ids"] == got[0].ids
        r = client.get("/recommend", params={**params, "timestamp": "noon"})
        assert r.status_code == 422 and "'timestamp' takes a number" in r.json()["detail"]
