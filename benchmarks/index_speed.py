"""Top-k index speed and recall: BruteForce vs FAISS on Gaussian-mixture corpora.

For each corpus size (N x 64, drawn from a 1,000-centre Gaussian mixture, like trained
embeddings) and k=100 this measures, per index:
  - single-query latency p50/p99 (one query at a time, through `Index.query`),
  - batched throughput (queries/s with batches of --batch queries),
  - recall@k against BruteForce (the exact reference),
and the build time. FAISS `IndexFlatIP` is timed raw (no towerrec wrapper) as the exact
reference for BruteForce. Approximate indexes are run at several search settings
(HNSW `ef_search`, IVF `nprobe`) to show the recall/latency trade-off.

    python benchmarks/index_speed.py --out results/index_speed.json
    python benchmarks/index_speed.py --out /tmp/small.json --corpus 100000 --queries 300

Writes {"settings": ..., "index": [{"index", "params", "corpus", "k", "build_s", "p50_ms",
"p99_ms", "batch_qps", "recall_at_k"}], "acceptance": ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _synthetic import gaussian_mixture

import towerrec.index as ti


def latency_ms(search: Callable[[np.ndarray], Any], queries: np.ndarray) -> tuple[float, float]:
    """[Q, D] queries, one-query search -> (p50, p99) milliseconds over the queries."""
    for q in queries[:5]:  # warm-up
        search(q[None, :])
    times = np.empty(len(queries))
    for i, q in enumerate(queries):
        one = q[None, :]
        start = time.perf_counter()
        search(one)
        times[i] = time.perf_counter() - start
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


def throughput(search: Callable[[np.ndarray], Any], queries: np.ndarray, batch: int) -> float:
    """[Q, D] queries, batched search -> queries per second with batches of `batch`."""
    search(queries[: min(batch, 16)])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(queries), batch):
        search(queries[i : i + batch])
    return len(queries) / (time.perf_counter() - start)


def recall(got: np.ndarray, exact: np.ndarray) -> float:
    """[Q, k] returned ids, [Q, k] exact ids -> mean fraction of the exact top-k returned."""
    k = exact.shape[1]
    return float(np.mean([len(set(g) & set(e)) / k for g, e in zip(got, exact, strict=True)]))


def run_corpus(n: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Benchmark every index on one corpus size; returns the result rows."""
    t0 = time.perf_counter()
    mix = {"centres": args.centres, "spread": args.spread, "skew": args.skew, "centre_seed": 0}
    corpus = gaussian_mixture(n, args.dim, seed=1, **mix)
    queries = gaussian_mixture(args.queries, args.dim, seed=2, **mix)
    print(
        f"\n== corpus {n:,} x {args.dim}, {len(queries):,} queries, k={args.k} "
        f"(data {time.perf_counter() - t0:.1f}s)",
        flush=True,
    )
    lat_q = queries[: args.latency_queries]
    k = args.k
    rows: list[dict[str, Any]] = []

    def add(name: str, params: dict[str, Any], build_s: float, search, ids_of) -> None:
        got = ids_of(search(queries))
        p50, p99 = latency_ms(search, lat_q)
        qps = throughput(search, queries, args.batch)
        row = {
            "index": name,
            "params": params,
            "corpus": n,
            "k": k,
            "build_s": round(build_s, 2),
            "p50_ms": round(p50, 3),
            "p99_ms": round(p99, 3),
            "batch_qps": round(qps, 1),
            "recall_at_k": round(recall(got, exact), 4),
        }
        rows.append(row)
        print(_format_row(row), flush=True)

    # Exact reference: BruteForce.
    start = time.perf_counter()
    bf = ti.BruteForce().index(corpus)
    build = time.perf_counter() - start
    _, exact = bf.query(queries, k)
    add("brute_force", {}, build, lambda q, i=bf: i.query(q, k), lambda r: r[1])
    del bf

    import faiss

    start = time.perf_counter()
    flat = faiss.IndexFlatIP(args.dim)
    flat.add(corpus)
    build = time.perf_counter() - start
    add("faiss_flat_ip", {"raw": True}, build, lambda q, i=flat: i.search(q, k), lambda r: r[1])
    del flat

    if "hnsw" in args.kinds and n <= args.hnsw_max_corpus:
        start = time.perf_counter()
        hnsw = ti.Faiss("hnsw", M=args.hnsw_m, ef_construction=args.ef_construction).index(corpus)
        build = time.perf_counter() - start
        for ef in args.ef_search:
            hnsw.ef_search = ef
            params = {"M": args.hnsw_m, "ef_construction": args.ef_construction, "ef_search": ef}
            add("faiss_hnsw", params, build, lambda q, i=hnsw: i.query(q, k), lambda r: r[1])
        del hnsw

    variants = [("ivf_flat", {})] + [
        ("ivf_pq", {} if r is None else {"refine": r}) for r in [None, *args.pq_refine]
    ]
    for kind, extra in variants:
        if kind not in args.kinds:
            continue
        start = time.perf_counter()
        ivf = ti.Faiss(kind, nlist=args.nlist, **extra).index(corpus)
        build = time.perf_counter() - start
        lists = ivf._ivf  # the inverted-file index (inside a re-ranking wrapper with refine)
        nlist = int(lists.nlist)
        for nprobe in args.nprobe:
            if nprobe > nlist:
                continue
            ivf.nprobe = nprobe
            params = {"nlist": nlist, "nprobe": nprobe}
            if kind == "ivf_pq":
                params |= {"m": int(lists.pq.M), "nbits": int(lists.pq.nbits), **extra}
            add(f"faiss_{kind}", params, build, lambda q, i=ivf: i.query(q, k), lambda r: r[1])
        del ivf
    return rows


_COLUMNS = [
    ("index", 15),
    ("params", 46),
    ("corpus", 9),
    ("build_s", 8),
    ("p50_ms", 8),
    ("p99_ms", 8),
    ("batch_qps", 10),
    ("recall_at_k", 11),
]


def _format_row(row: dict[str, Any]) -> str:
    cells = []
    for name, width in _COLUMNS:
        value = row[name]
        if name == "params":
            value = ",".join(f"{k}={v}" for k, v in value.items())
        cells.append(f"{value!s:>{width}}" if name != "params" else f"{value:<{width}}")
    return " ".join(cells)


def acceptance(rows: list[dict[str, Any]], k: int) -> dict[str, Any]:
    """The targets this benchmark is meant to show, evaluated on the rows."""
    out: dict[str, Any] = {}
    largest = max(r["corpus"] for r in rows)
    by = {
        (r["index"], r["corpus"]): r for r in rows if r["index"] in ("brute_force", "faiss_flat_ip")
    }
    bf, flat = by[("brute_force", largest)], by[("faiss_flat_ip", largest)]
    out["brute_force_p50_not_slower_than_flat_ip"] = bf["p50_ms"] <= flat["p50_ms"]
    out["brute_force_batched_at_least_100_qps"] = bf["batch_qps"] >= 100
    approx = [
        r
        for r in rows
        if r["corpus"] == largest
        and r["index"] not in ("brute_force", "faiss_flat_ip")
        and r["recall_at_k"] >= 0.95
        and r["p50_ms"] <= 2.0
    ]
    out["faiss_recall_0.95_p50_2ms"] = bool(approx)
    out["faiss_fastest_at_recall_0.95"] = min(approx, key=lambda r: r["p50_ms"]) if approx else None
    out["corpus"] = largest
    out["k"] = k
    return out


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run every corpus size, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--corpus", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument(
        "--latency-queries",
        type=int,
        default=1000,
        help="how many of the queries are timed one at a time",
    )
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--centres", type=int, default=1000)
    parser.add_argument("--spread", type=float, default=0.5, help="cluster std / centre std")
    parser.add_argument("--skew", type=float, default=0.0, help="Zipf skew of cluster sizes")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--kinds", nargs="+", default=["hnsw", "ivf_flat", "ivf_pq"])
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=64)
    parser.add_argument("--ef-search", type=int, nargs="+", default=[100, 200, 400, 800])
    parser.add_argument(
        "--hnsw-max-corpus",
        type=int,
        default=200_000,
        help="skip HNSW above this corpus size (its build takes minutes on 2 cores)",
    )
    parser.add_argument("--nlist", type=int, default=None, help="IVF lists (default ~4 sqrt(N))")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    parser.add_argument(
        "--pq-refine",
        type=int,
        nargs="*",
        default=[8],
        help="IVF-PQ re-ranking factors to add to plain IVF-PQ (none: plain only)",
    )
    args = parser.parse_args(argv)

    import faiss
    import torch

    settings = {
        "dim": args.dim,
        "centres": args.centres,
        "spread": args.spread,
        "skew": args.skew,
        "queries": args.queries,
        "latency_queries": min(args.latency_queries, args.queries),
        "k": args.k,
        "batch": args.batch,
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "faiss": faiss.__version__,
        "faiss_threads": faiss.omp_get_max_threads(),
    }
    settings["load_average_start"] = [round(v, 2) for v in os.getloadavg()]
    print("settings:", json.dumps(settings))
    print(" ".join(f"{n:>{w}}" if n != "params" else f"{n:<{w}}" for n, w in _COLUMNS))
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for n in args.corpus:
        rows.extend(run_corpus(n, args))
    checks = acceptance(rows, args.k)
    settings["total_s"] = round(time.perf_counter() - start, 1)
    settings["load_average_end"] = [round(v, 2) for v in os.getloadavg()]

    print("\n" + " ".join(f"{n:>{w}}" if n != "params" else f"{n:<{w}}" for n, w in _COLUMNS))
    for row in rows:
        print(_format_row(row))
    print("\nacceptance:", json.dumps(checks))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"settings": settings, "index": rows, "acceptance": checks}, indent=2) + "\n"
    )
    print(f"wrote {out} in {settings['total_s']}s")


if __name__ == "__main__":
    main()
