"""Serving benchmark: index speed/recall (from `index_speed.py`) and an HTTP load test.

HTTP protocol: for each `--index` (default: exact brute force, then FAISS IVF-flat), a bundle
with a 100k-candidate synthetic corpus (dim 64, a Gaussian mixture with 1,000 centres, from
`_synthetic.py`) behind a MultitaskModel-sized query tower (a user-embedding table of 10,000
users, each with 20 seen items to exclude) is exported, and its index's recall@k against
exact search is measured on 1,000 users. Then, `--repeats` times, `towerrec serve --workers N`
(default: one process per usable CPU) starts in a subprocess on a free 127.0.0.1 port; after
/healthz answers and a short warm-up, `--concurrency` keep-alive connections each keep one
request in flight (`GET /recommend?user_id=..&k=10`, random known users) until `--duration`
seconds have passed or `--max-requests` were sent; then the server is stopped. Latency is
measured per request on the client, from send to parsed JSON. The client (an httptools
parser on uvloop, ~0.1 ms of CPU per request) shares the machine with the server; the CPU
time each used per request is reported.

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
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _synthetic import gaussian_mixture

from towerrec.serving.http import usable_cpus


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


def served_recall(bundle: Path, users: int, k: int, sample: int = 1000, seed: int = 0) -> float:
    """Recall@k of the bundle's own index against exact brute force, over `sample` random
    known users with their seen items excluded: the quality an approximate bundle serves."""
    from dataclasses import replace

    from towerrec.index import BruteForce
    from towerrec.serving import Recommender

    served = Recommender.load(bundle)
    b = served.bundle
    exact = Recommender(replace(b, index=BruteForce().index(b.embeddings, b.candidate_ids)))
    ids = np.random.default_rng(seed).choice(np.arange(1, users + 1), size=sample, replace=False)
    chosen = ids.tolist()
    hits = 0
    for a, e in zip(served.recommend_rows(chosen, k), exact.recommend_rows(chosen, k), strict=True):
        hits += len(set(a.ids) & set(e.ids))
    return hits / (k * len(chosen))


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
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"The server exited with status {proc.returncode} before serving (its output is "
                "printed above or in the server log)."
            )
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{base}/healthz", timeout=1.0) as response,
        ):
            if response.status == 200:
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


def process_cpu_seconds(root: int | None) -> float:
    """CPU seconds (user + system) used so far by process `root` and its children (Linux
    /proc; 0.0 elsewhere or when `root` is None)."""
    if root is None or not Path("/proc").is_dir():
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}  # pid -> (parent pid, cpu seconds)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    family, grew = {root}, True
    while grew:
        grew = False
        for pid, (parent, _) in stats.items():
            if parent in family and pid not in family:
                family.add(pid)
                grew = True
    return sum(stats.get(pid, (0, 0.0))[1] for pid in family)


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection sending GETs, one at a time.

    Responses are parsed by httptools (the parser uvicorn uses). The load generator shares
    the machine with the server, so it must cost little: about 0.1 ms of CPU per request
    here, against about 1.5 ms for an httpx client.
    """

    def __init__(self, host: str) -> None:
        import httptools

        self.parser = httptools.HttpResponseParser(self)
        self.host = host.encode("ascii")
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.body: list[bytes] = []

    # protocol callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except Exception as e:  # a malformed response
            self._finish(error=e)

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(error=exc or ConnectionError("The server closed the connection."))

    # parser callbacks
    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self._finish(result=(self.parser.get_status_code(), b"".join(self.body)))

    def _finish(
        self, result: tuple[int, bytes] | None = None, error: BaseException | None = None
    ) -> None:
        waiter, self.waiter, self.body = self.waiter, None, []
        if waiter is not None and not waiter.done():
            if error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(result)  # type: ignore[arg-type]

    async def get(self, target: str) -> tuple[int, bytes]:
        """GET `target` -> (status, body)."""
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError("The connection is closed.")
        self.waiter = asyncio.get_running_loop().create_future()
        request = f"GET {target} HTTP/1.1\r\nHost: ".encode("ascii") + self.host + b"\r\n\r\n"
        self.transport.write(request)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect(host: str, port: int) -> Connection:
    """A new `Connection` to host:port."""
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(lambda: Connection(host), host, port)
    return protocol


async def load_test(
    host: str,
    port: int,
    users: list[int],
    *,
    concurrency: int,
    duration: float,
    max_requests: int,
    k: int,
    warmup: int,
    server_pid: int | None = None,
    timeout: float = 30.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Keep `concurrency` GET /recommend requests in flight, one keep-alive connection each;
    stop at `duration` s or `max_requests` requests. -> counts, errors, requests/s, latency
    percentiles, and the CPU time the client and the server used per request."""
    connections = [await connect(host, port) for _ in range(concurrency)]
    latencies: list[float] = []
    errors: list[str] = []
    issued = 0

    async def one(conn: Connection, user: int) -> tuple[Connection, str]:
        """One request -> (the connection to use next, a problem or "")."""
        try:
            status, body = await asyncio.wait_for(
                conn.get(f"/recommend?user_id={user}&k={k}"), timeout
            )
            answer = json.loads(body)
            if status == 200 and len(answer["ids"]) == k:
                return conn, ""
            return conn, f"{status}: {body[:200]!r}"
        except (OSError, TimeoutError, ValueError, KeyError, TypeError) as e:
            conn.close()  # start afresh after a failure
            with contextlib.suppress(OSError):
                conn = await connect(host, port)
            return conn, repr(e)

    try:
        rng = random.Random(seed)
        for i in range(warmup):
            conn = connections[i % concurrency]
            connections[i % concurrency], _ = await one(conn, rng.choice(users))
        deadline = time.perf_counter() + duration

        async def worker(slot: int) -> None:
            nonlocal issued
            local = random.Random(seed + 1 + slot)
            while issued < max_requests and time.perf_counter() < deadline:
                issued += 1
                start = time.perf_counter()
                connections[slot], problem = await one(connections[slot], local.choice(users))
                latencies.append(time.perf_counter() - start)
                if problem:
                    errors.append(problem)

        began = time.perf_counter()
        cpu_began = time.process_time()
        server_began = process_cpu_seconds(server_pid)
        await asyncio.gather(*(worker(slot) for slot in range(concurrency)))
        elapsed = time.perf_counter() - began
        client_cpu = time.process_time() - cpu_began
        server_cpu = process_cpu_seconds(server_pid) - server_began
    finally:
        for conn in connections:
            conn.close()
    ms = np.asarray(latencies) * 1000.0
    count = max(len(latencies), 1)
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
        "client_cpu_ms": 1000.0 * client_cpu / count,
        "server_cpu_ms": 1000.0 * server_cpu / count,
        "k": k,
        "error_examples": errors[:5],
    }


def run_load_test(**kwargs: Any) -> dict[str, Any]:
    """`load_test` on uvloop's event loop where it is installed (a cheaper client)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(load_test(**kwargs))
    return uvloop.run(load_test(**kwargs))


def serve_and_load(bundle: Path, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Serve `bundle` in a subprocess, load-test it, stop it -> the load test's row."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = folder / "server.log"
    extra = ["--workers", str(args.workers), "--threads", str(args.threads)]
    if args.parallel_batches:
        extra += ["--parallel-batches", str(args.parallel_batches)]
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
        result = run_load_test(
            host="127.0.0.1",
            port=port,
            users=list(range(1, args.users + 1)),
            concurrency=args.concurrency,
            duration=args.duration,
            max_requests=args.max_requests,
            k=args.k,
            warmup=args.warmup,
            server_pid=proc.pid,
        )
    finally:
        stop_server(proc)
        server_log = log.read_text(errors="replace")[-2000:]
    result["startup_s"] = startup_s
    if result["errors"]:
        result["server_log_tail"] = server_log
    return result


def http_part(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """For each `--index`: export a bundle, then `--repeats` times serve it and load-test it.
    -> (every run, one row per index with the median of its runs)."""
    runs: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    for index in args.index:
        with tempfile.TemporaryDirectory(prefix="towerrec-serving-bench-") as tmp:
            folder = Path(tmp)
            began = time.perf_counter()
            bundle = build_bundle(
                folder,
                items=args.items,
                users=args.users,
                dim=args.dim,
                seen_per_user=args.seen_per_user,
                index=None if index == "brute_force" else index,
            )
            export_s = time.perf_counter() - began
            recall = served_recall(bundle, args.users, args.k, sample=min(1000, args.users))
            settings = {
                "index": index,
                "recall_at_k": recall,
                "items": args.items,
                "users": args.users,
                "dim": args.dim,
                "workers": args.workers,
                "threads": args.threads,
                "export_s": export_s,
            }
            mine = []
            for repeat in range(args.repeats):
                row = {"index": index, "run": repeat + 1, **serve_and_load(bundle, folder, args)}
                row.update(settings)
                print_table([row], f"HTTP GET /recommend, {index} bundle, run {repeat + 1}")
                if row["errors"]:
                    print("errors, e.g.:", row["error_examples"])
                mine.append(row)
        runs += mine
        median = {c: float(np.median([r[c] for r in mine])) for c in _MEDIAN_COLUMNS}
        summary.append(
            {
                "index": index,
                "concurrency": args.concurrency,
                "runs": len(mine),
                "requests": int(sum(r["requests"] for r in mine)),
                "errors": int(sum(r["errors"] for r in mine)),
                "recall_at_k": mine[0]["recall_at_k"],
                **median,
                "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            }
        )
    return runs, summary


_MEDIAN_COLUMNS = ("rps", "p50_ms", "p90_ms", "p99_ms", "max_ms", "client_cpu_ms", "server_cpu_ms")


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
        nargs="+",
        default=["brute_force", "ivf_flat"],
        choices=["brute_force", "flat", "hnsw", "ivf_flat", "ivf_pq"],
        help="the bundle's top-k index; one HTTP test per value (the first is the 'http' row)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="HTTP runs per index (a fresh server each)"
    )
    parser.add_argument("--seen-per-user", type=int, default=20, help="seen items per user")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--duration", type=float, default=20.0, help="load-test seconds")
    parser.add_argument("--max-requests", type=int, default=100_000, help="request cap")
    parser.add_argument("--warmup", type=int, default=200, help="warm-up requests")
    parser.add_argument("-k", type=int, default=10, help="k of each request")
    parser.add_argument(
        "--workers",
        type=int,
        default=usable_cpus(),
        help="server processes (default: one per usable CPU, the recommended deployment)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch/BLAS threads per process")
    parser.add_argument(
        "--parallel-batches",
        type=int,
        default=None,
        help="request batches scored at once per server process (default: the server's)",
    )
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
        runs, summary = http_part(args)
        report["http"] = summary[0]
        report["http_by_index"] = summary
        report["http_runs"] = runs
        print_table(summary, f"HTTP GET /recommend (k={args.k}), medians of {args.repeats} runs")
        for row in summary:
            ok = row["errors"] == 0 and row["p99_ms"] <= 50.0
            print(
                f"  {row['index']}: {row['errors']} errors, median p99 {row['p99_ms']:.1f} ms "
                f"-> {'meets' if ok else 'misses'} 0 errors and p99 <= 50 ms"
            )
    write_report(args.out, report)
    print(f"\nWrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
