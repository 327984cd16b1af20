"""The HTTP service: a thin FastAPI layer over `Recommender` (`pip install 'towerrec[serve]'`).

Endpoints (OpenAPI docs at `/docs`):

- `GET /recommend?user_id=42&k=10&exclude_seen=true` -> one user's top-k (query towers that
  read more raw columns take them as further parameters: `&timestamp=879024327`)
- `POST /recommend` with `{"user_ids": [42, 7], "k": 10, "exclude_seen": true}` -> a batch;
  `{"queries": [{"user_id": 42, "timestamp": 879024327}], ...}` for query towers that read
  more than the user id (`GET /metadata` lists their `query_columns`)
- `GET /similar?item_id=50&k=10` -> items similar to an item
- `GET /predict?user_id=42&item_id=50` -> a predicted rating (models with a rating head)
- `GET /healthz` -> liveness; `GET /metadata` -> the bundle manifest

Bad input (k outside 1..max_k or above the number of items, a wrong id type, a missing
parameter, a batch above max_batch) answers 422 with a message; unknown items 404; unknown
users get the popularity fallback, flagged `"fallback": "popular"`. Model work runs in
worker threads, never on the event loop; concurrent `GET /recommend` requests are scored
together in batches (one query-tower call, one index query each), up to `parallel_batches`
at once, so throughput grows with load instead of latency.

Speed (see `benchmarks/serving.py`): a well-formed `GET /recommend` is answered by a thin
ASGI layer in front of FastAPI (the framework's routing and validation cost more CPU than a
batched 100k-item search); anything else, bad input included, goes through the FastAPI
route. `serve` freezes the loaded heap out of the garbage collector, whose full collections
would otherwise pause the service for 100+ ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import json
import os
from pathlib import Path
from typing import Any

from towerrec.serving.recommender import (
    Recommendation,
    Recommender,
    UnknownItemError,
    UnknownUserError,
    UnsupportedError,
)

__all__ = ["create_app", "limit_threads", "serve", "usable_cpus"]

_HINT = "The HTTP service needs FastAPI and uvicorn: pip install 'towerrec[serve]'"
_ENV = "TOWERREC_SERVE_"
#: The most GET /recommend requests scored together in one batch.
MICRO_BATCH = 64
#: The fewest requests a batch is cut to when a backlog is shared among parallel batches.
MIN_SHARE = 32
#: Event-loop turns given to incoming requests before a batch is cut.
_COLLECT_SPINS = 4


def _import_fastapi() -> Any:
    try:
        import fastapi
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError(_HINT) from e
    return fastapi


class _Batcher:
    """Scores concurrent single-user requests together, in batches, in worker threads.

    Up to `parallel` batches are scored at once (the matrix products release the GIL, so one
    per core runs in parallel), and while one batch is scored the event loop answers the
    previous one and gathers the next. When a batch is cut, a large backlog is shared among
    the drainers not busy scoring (at most `max_batch` each, and at least `MIN_SHARE`: smaller
    batches pay for a pass over the corpus with too few queries).
    """

    def __init__(
        self, recommender: Recommender, max_batch: int = MICRO_BATCH, parallel: int = 1
    ) -> None:
        self.recommender = recommender
        self.max_batch = max_batch
        self.parallel = parallel
        self.pending: list[tuple[Any, int, bool, asyncio.Future[Recommendation]]] = []
        self.running = 0  # drain tasks alive
        self.scoring = 0  # of them, those scoring a batch now
        self.tasks: set[asyncio.Task[None]] = set()

    async def submit(self, user: Any, k: int, exclude_seen: bool) -> Recommendation:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Recommendation] = loop.create_future()
        self.pending.append((user, k, exclude_seen, future))
        if self.running < self.parallel:
            self.running += 1
            task = loop.create_task(self._drain())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return await future

    def _cut(self) -> list[tuple[Any, int, bool, asyncio.Future[Recommendation]]]:
        idle = max(1, self.running - self.scoring)
        size = min(self.max_batch, max(MIN_SHARE, -(-len(self.pending) // idle)))
        batch = self.pending[:size]
        del self.pending[:size]
        return batch

    async def _drain(self) -> None:
        try:
            while self.pending:
                # Let requests the server has already received reach the queue first, so
                # they join this batch instead of waiting for the next one.
                for _ in range(_COLLECT_SPINS):
                    if len(self.pending) >= self.max_batch:
                        break
                    await asyncio.sleep(0)
                batch = self._cut()
                if not batch:  # another drainer took them
                    break
                self.scoring += 1
                try:
                    await self._score(batch)
                finally:
                    self.scoring -= 1
        finally:
            self.running -= 1
            if not self.running:
                for *_, future in self.pending:  # only left after a cancellation
                    _settle(future, error=RuntimeError("The request batch was cancelled."))
                self.pending.clear()

    async def _score(self, batch: list[tuple[Any, int, bool, asyncio.Future[Any]]]) -> None:
        from starlette.concurrency import run_in_threadpool

        users = [b[0] for b in batch]
        ks = [b[1] for b in batch]
        flags = [b[2] for b in batch]
        try:
            results = await run_in_threadpool(self.recommender.recommend_rows, users, ks, flags)
        except asyncio.CancelledError:
            for *_, future in batch:
                _settle(future, error=RuntimeError("The request batch was cancelled."))
            raise
        except Exception:
            # One bad request must not fail the others: score them one by one.
            for user, k, flag, future in batch:
                try:
                    one = await run_in_threadpool(
                        self.recommender.recommend_rows, [user], [k], [flag]
                    )
                    _settle(future, result=one[0])
                except Exception as e:
                    _settle(future, error=e)
            return
        for (*_, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)


def _settle(
    future: asyncio.Future[Recommendation],
    result: Recommendation | None = None,
    error: BaseException | None = None,
) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]


#: The status each library error answers with (anything else is a 500).
_ERROR_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (UnknownItemError, 404),
    (UnknownUserError, 404),
    (UnsupportedError, 400),
    (ValueError, 422),
    (TypeError, 422),
)
#: The spellings of exclude_seen taken on the fast path (the route accepts a few more).
_FLAGS = {"true": True, "1": True, "false": False, "0": False}
_RECOMMEND_PARAMS = frozenset({"user_id", "k", "exclude_seen"})


def _parse_recommend_query(query: bytes, largest_k: int) -> tuple[str, int, bool] | None:
    """A GET /recommend query string -> (user_id, k, exclude_seen) when it is plainly valid,
    else None (a missing, repeated, unknown or out-of-range parameter, an unusual spelling)."""
    from urllib.parse import parse_qsl

    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    params = dict(pairs)
    if len(params) != len(pairs) or not params.keys() <= _RECOMMEND_PARAMS:
        return None
    user_id = params.get("user_id", "")
    k_text = params.get("k", "10")
    flag = _FLAGS.get(params.get("exclude_seen", "true").lower())
    if not 1 <= len(user_id) <= 256 or flag is None:
        return None
    if not (k_text.isascii() and k_text.isdigit() and len(k_text) <= 9):
        return None
    k = int(k_text)
    return (user_id, k, flag) if 1 <= k <= largest_k else None


def _columns(queries: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """[{column: value}] with the same columns in each -> {column: [values]}."""
    names = list(queries[0])
    for i, query in enumerate(queries):
        if set(query) != set(names):
            raise ValueError(
                f"Every query must have the same columns; query 0 has {sorted(names)} and "
                f"query {i} has {sorted(query)}."
            )
    return {name: [query[name] for query in queries] for name in names}


def _json_bytes(content: Any) -> bytes:
    """`content` as the JSON bytes `JSONResponse` sends (compact, UTF-8, no NaN)."""
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


class _FastRecommend:
    """ASGI middleware answering well-formed `GET /recommend` requests without the per-request
    machinery of routing, dependency resolution and response objects (most of a request's
    CPU time once scoring is batched). `answer(query_string)` gives the body, or None to pass
    the request on to the app's route, which then handles it as usual; the body is the one
    the route would send."""

    def __init__(self, app: Any, answer: Any) -> None:
        self.app = app
        self.answer = answer

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] == "/recommend":
            body = await self.answer(scope.get("query_string", b""))
            if body is not None:
                headers = [
                    (b"content-length", str(len(body)).encode("latin-1")),
                    (b"content-type", b"application/json"),
                ]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def _app_class(fastapi: Any) -> Any:
    """A FastAPI subclass whose outermost layer is `_FastRecommend` (where the app has set
    `state.fast_recommend`), so well-formed GET /recommend requests skip every middleware."""

    class App(fastapi.FastAPI):  # type: ignore[misc, name-defined]
        def build_middleware_stack(self) -> Any:
            stack = super().build_middleware_stack()
            answer = getattr(self.state, "fast_recommend", None)
            return stack if answer is None else _FastRecommend(stack, answer)

    return App


def usable_cpus() -> int:
    """The number of CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - platforms without affinity masks
        return max(1, os.cpu_count() or 1)


def create_app(
    recommender: Recommender | str | os.PathLike[str],
    max_k: int = 1000,
    max_batch: int = 1000,
    parallel_batches: int | None = None,
) -> Any:
    """A FastAPI app serving `recommender` (or the bundle at that path).

    `max_k` caps k (requests may ask for 1..min(max_k, number of items)); `max_batch` caps
    the number of user ids of a `POST /recommend`. `parallel_batches` is how many batches of
    concurrent `GET /recommend` requests may be scored at once (default: one per usable CPU,
    at most 4).
    """
    fastapi = _import_fastapi()
    from fastapi import Query, Request
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, Field, StrictFloat, StrictInt, StrictStr
    from starlette.concurrency import run_in_threadpool

    if parallel_batches is None:
        parallel_batches = min(4, usable_cpus())
    limits = (("max_k", max_k), ("max_batch", max_batch), ("parallel_batches", parallel_batches))
    for name, value in limits:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"The '{name}' parameter of create_app must be a positive int. Got {value!r} "
                "instead."
            )
    if not isinstance(recommender, Recommender):
        recommender = Recommender.load(recommender)
    rec: Recommender = recommender
    batcher = _Batcher(rec, parallel=parallel_batches)
    manifest = rec.manifest
    largest_k = min(max_k, rec.num_candidates)

    app = _app_class(fastapi)(
        title="towerrec",
        version=str(manifest.get("towerrec_version", "")),
        description=(
            "Recommendations from a towerrec bundle: "
            f"{rec.num_candidates} items, model {manifest['model'].get('name') or 'custom'}."
        ),
    )
    app.state.recommender = rec
    app.state.max_k = max_k
    app.state.max_batch = max_batch
    app.state.parallel_batches = parallel_batches

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse(status_code=status, content={"detail": message})

    def answer_with(status: int) -> Any:
        async def handler(request: Request, exc: Exception) -> JSONResponse:
            return error(status, str(exc))

        return handler

    for kind, status in _ERROR_STATUS:
        app.add_exception_handler(kind, answer_with(status))

    def check_k(k: int) -> None:
        if not 1 <= k <= largest_k:
            raise ValueError(
                f"k must be between 1 and {largest_k} (the number of items, at most max_k="
                f"{max_k}). Got {k} instead."
            )

    k_query = Query(10, ge=1, le=max_k, description=f"Number of items, 1..{largest_k}.")
    user_query = Query(..., min_length=1, max_length=256, description="A raw user id.")
    item_query = Query(..., min_length=1, max_length=256, description="A raw item id.")

    async def recommend_one(
        request: Any,
        user_id: str = user_query,
        k: int = k_query,
        exclude_seen: bool = Query(True, description="Leave out the user's training items."),
    ) -> Any:
        """Query towers that read more than the user id take their other raw columns as
        further parameters (e.g. `&timestamp=879024327`; `GET /metadata` lists them)."""
        check_k(k)
        user = rec.coerce_user_id(user_id)
        extra = {
            column: [rec.coerce_query_value(column, request.query_params[column])]
            for column in rec.query_columns
            if column in request.query_params and column not in _RECOMMEND_PARAMS
        }
        if not extra:
            result = await batcher.submit(user, k, exclude_seen)
            return JSONResponse(result.to_dict())
        assert rec.bundle.user_feature is not None
        query = {rec.bundle.feature_space.column_of(rec.bundle.user_feature): [user], **extra}
        results = await run_in_threadpool(rec.recommend, query, k, exclude_seen)
        return JSONResponse(results[0].to_dict())

    # Request is imported here, not at module level, so its annotation is set here.
    recommend_one.__annotations__["request"] = Request
    app.get("/recommend", summary="Top-k items for one user")(recommend_one)

    async def recommend_fast(query: bytes) -> bytes | None:
        """The body GET /recommend would answer for `query`, or None to let the route answer
        (anything unusual or wrong: its validation and error messages stay the only ones)."""
        parsed = _parse_recommend_query(query, largest_k)
        if parsed is None:
            return None
        user_id, k, exclude_seen = parsed
        try:
            result = await batcher.submit(rec.coerce_user_id(user_id), k, exclude_seen)
            return _json_bytes(result.to_dict())
        except Exception:
            return None

    app.state.fast_recommend = recommend_fast

    class BatchRequest(BaseModel):
        user_ids: list[StrictInt | StrictStr] | None = Field(None, min_length=1)
        queries: list[dict[str, StrictInt | StrictFloat | StrictStr]] | None = Field(
            None, min_length=1
        )
        k: StrictInt = 10
        exclude_seen: bool = True

    def recommend_batch(request: Any) -> Any:
        if (request.user_ids is None) == (request.queries is None):
            raise ValueError(
                "Give either 'user_ids' (a list of user ids) or 'queries' (a list of raw query "
                f"features, each with the columns {rec.query_columns}), not both or neither."
            )
        rows = request.user_ids if request.queries is None else request.queries
        if len(rows) > max_batch:
            raise ValueError(
                f"A batch may hold at most {max_batch} users or queries (max_batch). Got "
                f"{len(rows)}; split it into smaller requests."
            )
        check_k(request.k)
        if request.queries is None:
            results = rec.recommend_rows(request.user_ids, request.k, request.exclude_seen)
        else:
            results = rec.recommend(_columns(request.queries), request.k, request.exclude_seen)
        return JSONResponse({"results": [r.to_dict() for r in results]})

    # The body model is local to the app, so its annotation is set here, not as a string.
    recommend_batch.__annotations__["request"] = BatchRequest
    app.post("/recommend", summary="Top-k items for a batch of users")(recommend_batch)

    @app.get("/similar", summary="Items similar to an item")
    def similar(
        item_id: str = item_query,
        k: int = k_query,
        metric: str = Query("cosine", pattern="^(cosine|dot)$"),
    ) -> Any:
        return JSONResponse(rec.similar_items(item_id, k, metric).to_dict())

    @app.get("/predict", summary="Predicted rating of a user for an item")
    def predict(user_id: str = user_query, item_id: str = item_query) -> Any:
        rating = rec.predict(user_id, item_id)
        return JSONResponse(
            {
                "user_id": rec.coerce_user_id(user_id),
                "item_id": rec.coerce_item_id(item_id),
                "rating": rating,
            }
        )

    @app.get("/healthz", summary="Liveness check")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "items": rec.num_candidates}

    @app.get("/metadata", summary="The bundle manifest and service limits")
    async def metadata() -> dict[str, Any]:
        return {
            "manifest": manifest,
            "items": rec.num_candidates,
            "rating_head": rec.has_rating_head,
            "user_id_type": rec.user_id_kind,
            "query_columns": rec.query_columns,
            "item_id_type": rec.item_id_kind,
            "max_k": largest_k,
            "max_batch": max_batch,
        }

    return app


# ------------------------------------------------------------------------------------ running
def limit_threads(threads: int) -> None:
    """Use `threads` threads for torch and the BLAS numpy uses (best effort for the latter).

    A server answers many requests at once from a few worker threads; letting each matrix
    product also spread over every core oversubscribes the CPU, so 1 is the right setting
    for most deployments.
    """
    import torch

    torch.set_num_threads(threads)
    with contextlib.suppress(OSError, ValueError):
        for path in _loaded_blas_libraries():
            lib = ctypes.CDLL(path)
            for symbol in (
                "openblas_set_num_threads",
                "scipy_openblas_set_num_threads64_",
                "scipy_openblas_set_num_threads",
                "openblas_set_num_threads64_",
                "MKL_Set_Num_Threads",
            ):
                setter = getattr(lib, symbol, None)
                if setter is not None:
                    setter(ctypes.c_int(threads))
                    break


def _loaded_blas_libraries() -> list[str]:
    maps = Path("/proc/self/maps")
    if not maps.is_file():
        return []
    found = set()
    for line in maps.read_text().splitlines():
        path = line.split()[-1] if line.split() else ""
        name = os.path.basename(path).lower()
        if path.startswith("/") and ".so" in name and ("openblas" in name or "mkl_rt" in name):
            found.add(path)
    return sorted(found)


def _app_from_env() -> Any:
    """App factory for uvicorn worker processes: reads the bundle path and limits from env."""
    limit_threads(int(os.environ.get(f"{_ENV}THREADS", "1")))
    app = create_app(
        os.environ[f"{_ENV}BUNDLE"],
        max_k=int(os.environ.get(f"{_ENV}MAX_K", "1000")),
        max_batch=int(os.environ.get(f"{_ENV}MAX_BATCH", "1000")),
        parallel_batches=int(os.environ.get(f"{_ENV}PARALLEL_BATCHES", "1")),
    )
    _freeze_heap()
    return app


def _freeze_heap() -> None:
    """Move every object alive now (the loaded bundle, torch, pandas) out of the garbage
    collector's reach: a full collection would otherwise walk them all, a pause of 100+ ms
    in the middle of serving."""
    gc.collect()
    gc.freeze()


def serve(
    bundle: str | os.PathLike[str] | Recommender,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    workers: int = 1,
    max_k: int = 1000,
    max_batch: int = 1000,
    threads: int = 1,
    parallel_batches: int | None = None,
    log_level: str = "info",
    access_log: bool = False,
) -> None:
    """Serve a bundle over HTTP with uvicorn until interrupted.

    `workers` > 1 starts that many processes, each loading the bundle; `threads` is the number
    of torch/BLAS threads per process (1 keeps many concurrent requests from oversubscribing
    the cores); `parallel_batches` is how many request batches each process scores at once
    (default: the usable CPUs shared among the workers, at most 4 each).
    """
    _import_fastapi()
    try:
        import uvicorn
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError(_HINT) from e
    checks = [("workers", workers), ("threads", threads), ("port", port)]
    if parallel_batches is not None:
        checks.append(("parallel_batches", parallel_batches))
    for name, value in checks:
        if isinstance(value, bool) or not isinstance(value, int) or value < (name != "port"):
            raise ValueError(
                f"The '{name}' parameter of serve must be a positive int. Got {value!r} instead."
            )
    if parallel_batches is None:
        parallel_batches = max(1, min(4, usable_cpus() // workers))
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": access_log,
    }
    if workers == 1:
        limit_threads(threads)
        app = create_app(
            bundle, max_k=max_k, max_batch=max_batch, parallel_batches=parallel_batches
        )
        _freeze_heap()
        uvicorn.run(app, **options)
        return
    if isinstance(bundle, Recommender):
        bundle = bundle.bundle.path
    from towerrec.serving.bundle import verify

    verify(bundle)  # fail here, once, rather than in every worker
    os.environ.update(
        {
            f"{_ENV}BUNDLE": str(Path(bundle).resolve()),
            f"{_ENV}MAX_K": str(max_k),
            f"{_ENV}MAX_BATCH": str(max_batch),
            f"{_ENV}THREADS": str(threads),
            f"{_ENV}PARALLEL_BATCHES": str(parallel_batches),
        }
    )
    uvicorn.run("towerrec.serving.http:_app_from_env", factory=True, workers=workers, **options)
