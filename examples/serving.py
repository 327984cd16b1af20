"""The efficient-serving tutorial (exact vs approximate top-k, then a served bundle), in towerrec.

    python examples/serving.py --data-dir ../shared/data/ml-100k

Trains the retrieval model of the multitask tutorial (3 epochs), then:
1. answers "top 10 movies for user 42" with exact brute force and with FAISS HNSW / IVF-flat
   indexes over the movies, and compares them;
2. repeats the comparison over a corpus padded to 100,000 candidates (the movies plus random
   vectors shaped like them), where approximate search pays off: per-query time and the
   recall@10 of each index against the exact answers for every test user, at the default
   search width and a wider one;
3. exports a bundle (model, features, an HNSW index, titles, seen movies), loads it back as
   a `Recommender`, and asks it for recommendations, similar movies and an HTTP answer
   (FastAPI's in-process test client; `towerrec serve BUNDLE` serves the same app).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import towerrec as tr
from towerrec.recipes.multitask import run_multitask


def timed_topk(index: tr.index.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """[B, D] queries -> ([B, k] ids, milliseconds per query, one query at a time)."""
    index.query(queries[:1], k)  # warm-up
    began = time.perf_counter()
    ids = [index.query(q[None, :], k)[1][0] for q in queries]
    return np.stack(ids), 1000 * (time.perf_counter() - began) / len(queries)


def recall(got: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each exact top-k found in the approximate top-k."""
    return float(np.mean([len(set(g) & set(e)) / len(e) for g, e in zip(got, exact, strict=True)]))


def main(argv: list[str] | None = None) -> None:
    """Run the tutorial (arguments as on the command line)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", default=None, help="extracted ml-100k folder (default: download and cache)"
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--padded-corpus", type=int, default=100_000)
    args = parser.parse_args(argv)

    ml = tr.datasets.movielens("100k", data_dir=args.data_dir)
    result = run_multitask(
        ml,
        recipe="tfrs-parity",
        rating_weight=0.0,
        retrieval_weight=1.0,
        epochs=args.epochs,
        progress=False,
    )
    model, data = result.model, result.data
    print(f"Retrieval model: top-100 accuracy {result.metrics['top_100']:.3f} on the test split")

    # 1. Exact and approximate top-10 for one user over the movies.
    model.eval()
    with torch.no_grad():
        movies, movie_rows = model.candidate_corpus()
        users = data.space["user_id"].transform(sorted(set(data.test["user_id"])))
        queries = model.query_embeddings({"user_id": users}).numpy()
    titles = data.space["item_id"].inverse(movie_rows.numpy())
    keep = movie_rows.numpy() >= data.space["item_id"].num_special  # leave the OOV row out
    movies, titles = movies.numpy()[keep], titles[keep]
    user42 = model.query_embeddings({"user_id": data.space["user_id"].transform([42])})
    user42 = user42.detach().numpy()
    indexes = {
        "brute force": tr.index.BruteForce(),
        "FAISS HNSW": tr.index.Faiss("hnsw"),
        "FAISS IVF-flat": tr.index.Faiss("ivf_flat", nlist=40, nprobe=8),
    }
    print(f"\nTop-10 for user 42 over the {len(movies):,} movies:")
    exact_42: list[str] = []
    for name, index in indexes.items():
        ids = index.index(movies, titles).query(user42, 10)[1][0].tolist()
        exact_42 = exact_42 or ids
        print(f"  {name:<15} same as exact: {len(set(ids) & set(exact_42))}/10  first: {ids[0]}")

    # 2. A corpus padded to --padded-corpus candidates: where approximate search pays off.
    rng = np.random.default_rng(0)
    extra = args.padded_corpus - len(movies)
    noise = movies[rng.integers(0, len(movies), extra)] + rng.normal(
        0.0, movies.std(), (extra, movies.shape[1])
    ).astype(np.float32)
    big = np.concatenate([movies, noise])
    big_ids = np.concatenate([titles, np.array([f"padding {i}" for i in range(extra)])])
    print(f"\nOver {len(big):,} candidates, {len(queries)} test users, one query at a time:")
    exact, exact_ms = timed_topk(tr.index.BruteForce().index(big, big_ids), queries, 10)
    print(f"  {'brute force':<15} {exact_ms:6.3f} ms/query  recall@10 1.000")
    for name, index, setting, wider in (
        ("FAISS HNSW", tr.index.Faiss("hnsw"), "ef_search", 512),
        ("FAISS IVF-flat", tr.index.Faiss("ivf_flat"), "nprobe", 128),
    ):
        index.index(big, big_ids)
        for label in (name, f"  {setting}={wider}"):
            got, ms = timed_topk(index, queries, 10)
            print(f"  {label:<15} {ms:6.3f} ms/query  recall@10 {recall(got, exact):.3f}")
            setattr(index, setting, wider)  # search wider: slower, closer to exact

    # 3. One bundle, loaded back and served.
    with tempfile.TemporaryDirectory() as tmp:
        path = tr.serving.export(
            model,
            data.space,
            Path(tmp) / "bundle",
            items=data.items,
            seen=data.train,
            index="hnsw",
        )
        recommender = tr.serving.Recommender.load(path)
        print(f"\nBundle {path.name}: {recommender.num_candidates} movies, HNSW index")
        print("  user 42, seen movies left out:", recommender.recommend(42, k=3).ids)
        print("  an unknown user:", recommender.recommend(99_999, k=3).fallback, "fallback")
        similar = recommender.similar_items(exact_42[0], k=3)
        print(f"  similar to {exact_42[0]}:", similar.ids)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*starlette.testclient.*")
            from fastapi.testclient import TestClient
        with TestClient(tr.serving.create_app(recommender)) as client:
            body = client.get("/recommend", params={"user_id": 42, "k": 3}).json()
        print("  GET /recommend?user_id=42&k=3 ->", body["ids"])


if __name__ == "__main__":
    main()
