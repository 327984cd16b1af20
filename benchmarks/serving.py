"""Serving benchmark: index speed/recall (from `index_speed.py`) and an HTTP load test.

HTTP protocol: a bundle with a 100k-candidate synthetic corpus (dim 64, a Gaussian mixture
with 1,000 centres, from `_synthetic.py`) behind a MultitaskModel-sized query tower (a
user-embedding table of 10,000 users, each with 20 seen items to exclude) is served by
`towerrec serve` in a subprocess on a free 127.0.0.1 port. After /healthz answers and a short
warm-up, an `httpx.AsyncClient` keeps `--concurrency` requests in flight
(`GET /recommend?user_id=..&k=10`, random known users) until `--duration` seconds have passed
or `--max-requests` were sent, whichever comes first; then the server is stopped.
Latency is measured per request on the client, from send to parsed response.

    python benchmarks/serving.py --out serving.json            # index part + HTTP part
    python benchmarks/serving.py --skip-index --out http.json   # HTTP part only

Writes `{"index": [...], "http": {"concurrency", "requests", "errors", "rps", "p50_ms",
"p99_ms", ...}}` and prints tables: the index rows are those of `benchmarks/index_speed.py`
(imported and run with its own defaults, not duplicated here). Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthetic import gaussian_mixture


# ------------------------------------------------------------------------------------ index
def index_part(args: argparse.Namespace) -> dict[str, Any]:
    """Run `benchmarks/index_speed.py` (its protocol and defaults) -> its rows and checks.

    `--index-corpus` and `--index-args` are passed on to it; it prints its own tables.
    """
    import index_speed

    argv = ["--out", ""]
    if args.index_corpus:
        argv += ["--corpus", *map(str, args.index_corpus)]
    argv += shlex.split(args.index_args)
    with tempfile.TemporaryDirectory(prefix="towerrec-index-bench-") as tmp:
        argv[1] = str(Path(tmp) / "index.json")
        index_speed.main(argv)
        report = json.loads(Path(argv[1]).read_text())
    return report


# ------------------------------------------------------------------------------------ bundle
def build_bundle(
    folder: Path,
    *,
    items: int,
    users: int,
    dim: int,
    seen_per_user: int,
    index: str | None = None,
    seed: int = 0,
) -> Path:
    """Export a MultitaskModel bundle whose item/user embeddings come from one mixture."""
    import pandas as pd
    import torch

    from towerrec.features import FeatureSpace, Lookup
    from towerrec.models.movielens import MultitaskModel
    from towerrec.serving import export

    item_ids = np.arange(1, items + 1, dtype=np.int64)
    user_ids = np.arange(1, users + 1, dtype=np.int64)
    space = FeatureSpace({"user_id": Lookup(), "item_id": Lookup()}).fit(
        {"user_id": user_ids}, {"item_id": item_ids}
    )
    model = MultitaskModel(space["user_id"].size, space["item_id"].size, dim=dim)
    item_vectors = gaussian_mixture(items, dim, seed=seed)
    user_vectors = gaussian_mixture(users, dim, seed=seed + 1)
    with torch.no_grad():  # vocabulary order is 1..N (equal counts, ascending ids)
        model.item_model.weight[1:] = torch.from_numpy(item_vectors)
        model.user_model.weight[1:] = torch.from_numpy(user_vectors)
    rng = np.random.default_rng(seed)
    seen = pd.DataFrame(
        {
            "user_id": np.repeat(user_ids, seen_per_user),
            "item_id": rng.integers(1, items + 1, size=users * seen_per_user),
        }
    )
    titles = pd.DataFrame({"item_id": item_ids, "title": [f"Item {i}" for i in item_ids]})
    return export(model, space, folder / "bundle", items=titles, seen=seen, index=index)


# ------------------------------------------------------------------------------------ server
def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(bundle: Path, port: int, log: Path, extra: list[str]) -> subprocess.Popen[bytes]:
    """`towerrec serve BUNDLE` on 127.0.0.1:port as a subprocess (output to `log`)."""
    cmd = [sys.executable, "-m", "towerrec.cli", "serve", str(bundle), "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--log-level", "warning", *extra]
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)


def wait_healthy(base: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Poll GET /healthz until it answers 200 (bounded by `timeout` seconds)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"The server exited with status {proc.returncode} before serving (its output is "
                "printed above or in the server log)."
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"The server did not answer {base}/healthz within {timeout:.0f} s.")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """Interrupt the server (graceful shutdown), then kill it if it lingers."""
    if proc.poll() is None:
        proc.send_signal(2)  # SIGINT: uvicorn shuts down cleanly
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


async def load_test(
    base: str,
    users: list[int],
    *,
    concurrency: int,
    duration: float,
    max_requests: int,
    k: int,
    warmup: int,
    seed: int = 0,
) -> dict[str, Any]:
    """Keep `concurrency` GET /recommend requests in flight; stop at `duration` s or
    `max_requests` requests. -> counts, errors, requests/s, latency percentiles."""
    import httpx

    # One client (one keep-alive connection) per worker: httpcore's pool scans every
    # connection for every request, which costs ~10x more client CPU at 32 connections in one
    # pool, CPU the server shares on a small machine.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [
        httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0) for _ in range(concurrency)
    ]
    latencies: list[float] = []
    errors: list[str] = []
    issued = 0
    try:
        rng = random.Random(seed)
        for i in range(warmup):
            client = clients[i % concurrency]
            await client.get("/recommend", params={"user_id": rng.choice(users), "k": k})
        deadline = time.perf_counter() + duration

        async def worker(client: httpx.AsyncClient, worker_seed: int) -> None:
            nonlocal issued
            local = random.Random(worker_seed)
            while issued < max_requests and time.perf_counter() < deadline:
                issued += 1
                params = {"user_id": local.choice(users), "k": k}
                start = time.perf_counter()
                try:
                    response = await client.get("/recommend", params=params)
                    body = response.json()
                    ok = response.status_code == 200 and len(body["ids"]) == k
                    problem = "" if ok else f"{response.status_code}: {str(body)[:200]}"
                except (httpx.HTTPError, ValueError, KeyError) as e:
                    problem = repr(e)
                latencies.append(time.perf_counter() - start)
                if problem:
                    errors.append(problem)

        began = time.perf_counter()
        await asyncio.gather(*(worker(c, seed + 1 + i) for i, c in enumerate(clients)))
        elapsed = time.perf_counter() - began
    finally:
        for client in clients:
            await client.aclose()
    ms = np.asarray(latencies) * 1000.0
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": len(errors),
        "rps": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "seconds": elapsed,
        "k": k,
        "error_examples": errors[:5],
    }


def http_part(args: argparse.Namespace) -> dict[str, Any]:
    """Build the bundle, serve it in a subprocess, load-test it, stop it."""
    with tempfile.TemporaryDirectory(prefix="towerrec-serving-bench-") as tmp:
        folder = Path(tmp)
        began = time.perf_counter()
        bundle = build_bundle(
            folder,
            items=args.items,
            users=args.users,
            dim=args.dim,
            seen_per_user=args.seen_per_user,
            index=None if args.index == "brute_force" else args.index,
        )
        export_s = time.perf_counter() - began
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = folder / "server.log"
        extra = ["--workers", str(args.workers), "--threads", str(args.threads)]
        proc = start_server(bundle, port, log, extra)
        try:
            began = time.perf_counter()
            try:
                wait_healthy(base, proc, timeout=args.startup_timeout)
            except RuntimeError:  # e.g. the free port was taken meanwhile: one more try
                print(log.read_text(errors="replace")[-2000:], file=sys.stderr)
                port = free_port()
                base = f"http://127.0.0.1:{port}"
                proc = start_server(bundle, port, log, extra)
                wait_healthy(base, proc, timeout=args.startup_timeout)
            startup_s = time.perf_counter() - began
            result = asyncio.run(
                load_test(
                    base,
                    list(range(1, args.users + 1)),
                    concurrency=args.concurrency,
                    duration=args.duration,
                    max_requests=args.max_requests,
                    k=args.k,
                    warmup=args.warmup,
                )
            )
        finally:
            stop_server(proc)
            server_log = log.read_text(errors="replace")[-2000:]
    result.update(
        {
            "items": args.items,
            "users": args.users,
            "dim": args.dim,
            "index": args.index,
            "workers": args.workers,
            "threads": args.threads,
            "export_s": export_s,
            "startup_s": startup_s,
        }
    )
    if result["errors"]:
        result["server_log_tail"] = server_log
    return result


# ------------------------------------------------------------------------------------ output
def print_table(rows: list[dict[str, Any]], title: str) -> None:
    """Print dict rows as an aligned text table (columns from the first row)."""
    if not rows:
        return
    columns = [c for c in rows[0] if not isinstance(rows[0][c], list | dict)]

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.0f}"
        return str(v)

    table = [[cell(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(columns)]
    print(f"\n{title}")
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    for t in table:
        print("  ".join(v.rjust(w) for v, w in zip(t, widths, strict=True)))


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Write the JSON report (parent folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON report to write")
    parser.add_argument("--skip-index", action="store_true", help="skip the index part")
    parser.add_argument("--skip-http", action="store_true", help="skip the HTTP part")
    parser.add_argument(
        "--index-corpus",
        type=int,
        nargs="+",
        help="corpus sizes for the index part (default: index_speed.py's, 100k and 1M)",
    )
    parser.add_argument(
        "--index-args", default="", help="more arguments for index_speed.py, e.g. '--queries 300'"
    )
    parser.add_argument("--items", type=int, default=100_000, help="candidates in the bundle")
    parser.add_argument("--users", type=int, default=10_000, help="known users")
    parser.add_argument("--dim", type=int, default=64, help="embedding dimension")
    parser.add_argument(
        "--index",
        default="brute_force",
        choices=["brute_force", "flat", "hnsw", "ivf_flat", "ivf_pq"],
        help="the bundle's top-k index",
    )
    parser.add_argument("--seen-per-user", type=int, default=20, help="seen items per user")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--duration", type=float, default=20.0, help="load-test seconds")
    parser.add_argument("--max-requests", type=int, default=100_000, help="request cap")
    parser.add_argument("--warmup", type=int, default=200, help="warm-up requests")
    parser.add_argument("-k", type=int, default=10, help="k of each request")
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--threads", type=int, default=1, help="torch/BLAS threads per process")
    parser.add_argument("--startup-timeout", type=float, default=120.0, help="seconds")
    args = parser.parse_args(argv)

    report: dict[str, Any] = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        }
    }
    if not args.skip_index:
        index_report = index_part(args)
        report["index"] = index_report["index"]
        report["index_settings"] = index_report.get("settings")
        report["index_acceptance"] = index_report.get("acceptance")
        write_report(args.out, report)  # keep the index results if the HTTP part fails
    if not args.skip_http:
        report["http"] = http_part(args)
        print_table([report["http"]], "HTTP GET /recommend (k=10)")
        if report["http"]["errors"]:
            print("errors, e.g.:", report["http"]["error_examples"])
    write_report(args.out, report)
    print(f"\nWrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
