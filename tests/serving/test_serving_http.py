"""The FastAPI app: every endpoint, and every kind of bad input answered with a message."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from towerrec.serving import Recommender, create_app


@pytest.fixture(scope="module")
def rec(bundle_path) -> Recommender:
    return Recommender.load(bundle_path)


@pytest.fixture(scope="module")
def client(rec, test_client_class):
    with test_client_class(create_app(rec, max_k=25, max_batch=4)) as c:
        yield c


def detail(response) -> str:
    return str(response.json()["detail"])


def test_get_recommend(client, rec):
    r = client.get("/recommend", params={"user_id": 1, "k": 5})
    assert r.status_code == 200
    body = r.json()
    expected = rec.recommend(1, k=5)
    assert body["user_id"] == 1 and body["fallback"] is None
    assert body["ids"] == expected.ids and body["titles"] == expected.titles
    assert body["scores"] == pytest.approx(expected.scores, rel=1e-5)
    r = client.get("/recommend", params={"user_id": 1, "k": 5, "exclude_seen": "false"})
    assert r.json()["ids"] == rec.recommend(1, k=5, exclude_seen=False).ids
    assert len(client.get("/recommend", params={"user_id": 2}).json()["ids"]) == 10


def test_concurrent_requests_are_batched_correctly(client, rec):
    users = list(range(1, 25))

    def fetch(user):
        return client.get("/recommend", params={"user_id": user, "k": 3}).json()

    with ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(fetch, users))
    for user, body in zip(users, bodies, strict=True):
        assert body["user_id"] == user
        assert body["ids"] == rec.recommend(user, k=3).ids


def test_unknown_user_falls_back_flagged(client):
    r = client.get("/recommend", params={"user_id": 99_999, "k": 3})
    assert r.status_code == 200
    assert r.json()["fallback"] == "popular" and len(r.json()["ids"]) == 3


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"user_id": 1, "k": 0}, "greater than or equal to 1"),
        ({"user_id": 1, "k": 26}, "less than or equal to 25"),
        ({"user_id": 1, "k": 10**9}, "less than or equal to 25"),
        ({"user_id": 1, "k": "ten"}, "valid integer"),
        ({"k": 3}, "user_id"),
        ({"user_id": "abc"}, "must be an integer id"),
        ({"user_id": ""}, "at least 1 character"),
        ({"user_id": 1, "exclude_seen": "maybe"}, "valid boolean"),
    ],
)
def test_get_recommend_bad_input(client, params, message):
    r = client.get("/recommend", params=params)
    assert r.status_code == 422
    assert message in detail(r)


def test_k_above_the_corpus_is_rejected(rec, test_client_class):
    with test_client_class(create_app(rec, max_k=1000)) as c:
        n = rec.num_candidates
        assert len(c.get("/recommend", params={"user_id": 1, "k": n}).json()["ids"]) <= n
        r = c.get("/recommend", params={"user_id": 1, "k": n + 1})
        assert r.status_code == 422 and f"between 1 and {n}" in detail(r)
        assert c.get("/metadata").json()["max_k"] == n


def test_post_recommend_batch(client, rec):
    r = client.post("/recommend", json={"user_ids": [1, "2", 99_999], "k": 4})
    assert r.status_code == 200
    results = r.json()["results"]
    assert [x["user_id"] for x in results] == [1, 2, 99_999]
    assert results[0]["ids"] == rec.recommend(1, k=4).ids
    assert [x["fallback"] for x in results] == [None, None, "popular"]
    r = client.post("/recommend", json={"user_ids": [1], "exclude_seen": False})
    assert r.json()["results"][0]["ids"] == rec.recommend(1, k=10, exclude_seen=False).ids
    # The same users as raw query features.
    r = client.post("/recommend", json={"queries": [{"user_id": 1}, {"user_id": 99_999}], "k": 4})
    assert r.status_code == 200
    assert [x["ids"] for x in r.json()["results"]] == [
        rec.recommend(1, k=4).ids,
        rec.recommend(99_999, k=4).ids,
    ]
    assert client.get("/metadata").json()["query_columns"] == ["user_id"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"user_ids": [1, 2, 3, 4, 5]}, 422, "at most 4 users or queries"),
        ({"user_ids": [1], "queries": [{"user_id": 1}]}, 422, "not both or neither"),
        ({"queries": [{"user_id": 1}, {"user": 2}]}, 422, "the same columns"),
        ({"queries": [{"user_id": [1]}]}, 422, "queries"),
        ({"user_ids": []}, 422, "at least 1 item"),
        ({"user_ids": [1], "k": 0}, 422, "between 1 and 25"),
        ({"user_ids": [1], "k": 26}, 422, "between 1 and 25"),
        ({"user_ids": [1], "k": "3"}, 422, "valid integer"),
        ({"user_ids": [True]}, 422, "valid integer"),
        ({"user_ids": [1.5]}, 422, "valid integer"),
        ({"user_ids": ["x"]}, 422, "must be an integer id"),
        ({"k": 3}, 422, "user_ids"),
        ({"user_ids": 7}, 422, "valid list"),
    ],
)
def test_post_recommend_bad_input(client, body, status, message):
    r = client.post("/recommend", json=body)
    assert r.status_code == status
    assert message in detail(r)


def test_post_recommend_malformed_json(client):
    r = client.post(
        "/recommend", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422


def test_similar(client, rec):
    item = int(rec.bundle.candidate_ids[0])
    r = client.get("/similar", params={"item_id": item, "k": 4})
    assert r.status_code == 200
    assert r.json()["item_id"] == item
    assert r.json()["ids"] == rec.similar_items(item, 4).ids
    r = client.get("/similar", params={"item_id": item, "k": 4, "metric": "dot"})
    assert r.json()["ids"] == rec.similar_items(item, 4, metric="dot").ids
    r = client.get("/similar", params={"item_id": 12345})
    assert r.status_code == 404 and "Unknown item id" in detail(r)
    assert client.get("/similar", params={"item_id": "zz"}).status_code == 422
    assert client.get("/similar", params={"item_id": item, "metric": "l2"}).status_code == 422
    assert client.get("/similar").status_code == 422


def test_predict(client, rec):
    r = client.get("/predict", params={"user_id": 1, "item_id": 3})
    assert r.status_code == 200
    assert r.json() == {"user_id": 1, "item_id": 3, "rating": pytest.approx(rec.predict(1, 3))}
    r = client.get("/predict", params={"user_id": 1, "item_id": 12345})
    assert r.status_code == 404 and "Unknown item id" in detail(r)
    r = client.get("/predict", params={"user_id": 12345, "item_id": 3})
    assert r.status_code == 404 and "Unknown user id" in detail(r)
    assert client.get("/predict", params={"user_id": 1}).status_code == 422
    assert client.get("/predict", params={"user_id": "a", "item_id": 3}).status_code == 422


def test_healthz_metadata_docs(client, rec):
    assert client.get("/healthz").json() == {"status": "ok", "items": rec.num_candidates}
    meta = client.get("/metadata").json()
    assert meta["manifest"] == rec.manifest
    assert meta["rating_head"] is True and meta["max_batch"] == 4
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/recommend", "/similar", "/predict", "/healthz", "/metadata"} <= set(paths)
    assert set(paths["/recommend"]) == {"get", "post"}


def test_create_app_validates_limits(rec):
    with pytest.raises(ValueError, match="'max_k' parameter of create_app"):
        create_app(rec, max_k=0)


def test_predict_without_rating_head_is_a_clear_400(trained, tmp_path, test_client_class):
    import numpy as np
    from torch import nn

    from towerrec.serving import export

    tower = nn.Embedding(trained.space["user_id"].size, 4)

    class Tower(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.table = tower

        def forward(self, features):
            return self.table(features["user_id"])

    ids, items = np.arange(1, 31), np.ones((30, 4), dtype=np.float32)
    path = export(None, trained.space, tmp_path / "b", query_tower=Tower(), candidates=(ids, items))
    with test_client_class(create_app(Recommender.load(path))) as c:
        r = c.get("/predict", params={"user_id": 1, "item_id": 3})
        assert r.status_code == 400 and "no rating head" in detail(r)
        assert c.get("/metadata").json()["rating_head"] is False


def test_batcher_isolates_a_failing_request():
    import asyncio

    from towerrec.serving.http import _Batcher

    class Fake:
        def __init__(self) -> None:
            self.batches: list[list[int]] = []

        def recommend_rows(self, users, ks, flags):
            self.batches.append(list(users))
            if -1 in users:
                raise ValueError("bad user")
            return [f"result {u}/{k}/{f}" for u, k, f in zip(users, ks, flags, strict=True)]

    fake = Fake()
    batcher = _Batcher(fake, max_batch=8)  # type: ignore[arg-type]

    async def main():
        tasks = [batcher.submit(u, 3, True) for u in (1, 2, -1, 4)]
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(main())
    assert results[0] == "result 1/3/True" and results[3] == "result 4/3/True"
    assert isinstance(results[2], ValueError)
    assert fake.batches[0] == [1, 2, -1, 4]  # scored together first, then one by one
    assert not batcher.running and not batcher.pending


def test_batcher_shares_a_large_backlog_among_parallel_batches():
    import asyncio
    import threading

    from towerrec.serving.http import MIN_SHARE, _Batcher

    class Fake:
        def __init__(self) -> None:
            self.sizes: list[int] = []
            self.threads: set[int] = set()
            self.lock = threading.Lock()

        def recommend_rows(self, users, ks, flags):
            with self.lock:
                self.sizes.append(len(users))
                self.threads.add(threading.get_ident())
            return [f"{u}/{k}" for u, k in zip(users, ks, strict=True)]

    fake = Fake()
    batcher = _Batcher(fake, max_batch=64, parallel=2)  # type: ignore[arg-type]
    backlog = 2 * MIN_SHARE + 16

    async def main():
        return await asyncio.gather(*(batcher.submit(u, 2, True) for u in range(backlog)))

    results = asyncio.run(main())
    assert results == [f"{u}/2" for u in range(backlog)]
    assert sorted(fake.sizes) == [backlog // 2, backlog // 2]  # split, not one batch of 64 + 16
    assert batcher.running == 0 and batcher.scoring == 0 and not batcher.pending

    # A backlog below two shares stays one batch: small batches amortise the corpus poorly.
    fake.sizes.clear()

    async def small():
        return await asyncio.gather(*(batcher.submit(u, 1, False) for u in range(MIN_SHARE)))

    assert asyncio.run(small()) == [f"{u}/1" for u in range(MIN_SHARE)]
    assert fake.sizes == [MIN_SHARE]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"user_id=42", ("42", 10, True)),
        (b"user_id=42&k=5&exclude_seen=false", ("42", 5, False)),
        (b"k=25&user_id=abc&exclude_seen=1", ("abc", 25, True)),
        (b"user_id=a%20b&exclude_seen=FALSE", ("a b", 10, False)),
        (b"", None),  # user_id missing
        (b"k=5", None),
        (b"user_id=", None),  # empty
        (b"user_id=1&k=0", None),  # out of range: the route words the error
        (b"user_id=1&k=26", None),
        (b"user_id=1&k=+5", None),  # unusual spellings go to the route
        (b"user_id=1&k=5.0", None),
        (b"user_id=1&exclude_seen=yes", None),
        (b"user_id=1&user_id=2", None),  # repeated
        (b"user_id=1&extra=2", None),  # unknown parameter
        (b"user_id=" + b"x" * 257, None),  # too long
    ],
)
def test_fast_path_takes_only_plainly_valid_queries(query, expected):
    from towerrec.serving.http import _parse_recommend_query

    assert _parse_recommend_query(query, largest_k=25) == expected


def test_fast_path_answers_exactly_as_the_route(rec, test_client_class):
    app, plain = create_app(rec, max_k=25), create_app(rec, max_k=25)
    plain.state.fast_recommend = None  # built without the fast path: every request is routed
    queries = [
        {"user_id": 1, "k": 5},
        {"user_id": 3, "k": 7, "exclude_seen": "false"},
        {"user_id": 2},
        {"user_id": 99_999, "k": 4},  # unknown: popularity fallback
    ]
    with test_client_class(app) as fast, test_client_class(plain) as route:
        for params in queries:
            a, b = fast.get("/recommend", params=params), route.get("/recommend", params=params)
            assert a.status_code == b.status_code == 200
            assert a.content == b.content
            assert a.headers["content-type"] == b.headers["content-type"]
            assert a.headers["content-length"] == b.headers["content-length"]
    assert type(app.middleware_stack).__name__ == "_FastRecommend"
    assert type(plain.middleware_stack).__name__ != "_FastRecommend"


def test_fast_path_passes_everything_else_to_the_app():
    import asyncio

    from towerrec.serving.http import _FastRecommend

    seen: list[str] = []
    sent: list[dict] = []

    async def app(scope, receive, send):
        seen.append(f"{scope['method']} {scope['path']}")

    async def answer(query: bytes):
        return b'{"ok":true}' if query == b"user_id=1" else None

    async def send(message):
        sent.append(message)

    fast = _FastRecommend(app, answer)

    def call(method, path, query=b""):
        scope = {"type": "http", "method": method, "path": path, "query_string": query}
        asyncio.run(fast(scope, None, send))

    call("GET", "/recommend", b"user_id=1")
    assert seen == [] and sent[0]["status"] == 200 and sent[1]["body"] == b'{"ok":true}'
    call("GET", "/recommend", b"user_id=2")  # the answer declines
    call("POST", "/recommend", b"user_id=1")
    call("GET", "/similar", b"user_id=1")
    assert seen == ["GET /recommend", "POST /recommend", "GET /similar"] and len(sent) == 2


def test_parallel_batches_setting(rec):
    from towerrec.serving.http import usable_cpus

    assert create_app(rec).state.parallel_batches == min(4, usable_cpus())
    assert create_app(rec, parallel_batches=3).state.parallel_batches == 3
    with pytest.raises(ValueError, match="'parallel_batches' parameter of create_app"):
        create_app(rec, parallel_batches=0)


def test_worker_factory_reads_its_settings_and_freezes_the_heap(bundle_path, monkeypatch):
    import gc

    from towerrec.serving.http import _app_from_env

    monkeypatch.setenv("TOWERREC_SERVE_BUNDLE", str(bundle_path))
    monkeypatch.setenv("TOWERREC_SERVE_MAX_K", "7")
    monkeypatch.setenv("TOWERREC_SERVE_PARALLEL_BATCHES", "2")
    try:
        app = _app_from_env()
        assert app.state.max_k == 7 and app.state.parallel_batches == 2
        assert gc.get_freeze_count() > 0  # no full collection walks the loaded bundle
    finally:
        gc.unfreeze()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"workers": 0}, "workers"), ({"parallel_batches": 0}, "parallel_batches")],
)
def test_serve_checks_its_settings_before_loading(bundle_path, kwargs, name):
    from towerrec.serving.http import serve

    with pytest.raises(ValueError, match=f"'{name}' parameter of serve must be a positive int"):
        serve(bundle_path, **kwargs)
