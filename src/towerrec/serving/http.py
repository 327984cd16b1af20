"""The HTTP service: a thin FastAPI layer over `Recommender` (`pip install 'towerrec[serve]'`).

Endpoints (OpenAPI docs at `/docs`):

- `GET /recommend?user_id=42&k=10&exclude_seen=true` -> one user's top-k
- `POST /recommend` with `{"user_ids": [42, 7], "k": 10, "exclude_seen": true}` -> a batch
- `GET /similar?item_id=50&k=10` -> items similar to an item
- `GET /predict?user_id=42&item_id=50` -> a predicted rating (models with a rating head)
- `GET /healthz` -> liveness; `GET /metadata` -> the bundle manifest

Bad input (k outside 1..max_k or above the number of items, a wrong id type, a missing
parameter, a batch above max_batch) answers 422 with a message; unknown items 404; unknown
users get the popularity fallback, flagged `"fallback": "popular"`. Model work runs in
worker threads, never on the event loop; concurrent `GET /recommend` requests are scored
together in one batch (one query-tower call, one index query) while the previous batch runs,
so throughput grows with load instead of latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
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

__all__ = ["create_app", "limit_threads", "serve"]

_HINT = "The HTTP service needs FastAPI and uvicorn: pip install 'towerrec[serve]'"
_ENV = "TOWERREC_SERVE_"
#: The most GET /recommend requests scored together in one batch.
MICRO_BATCH = 64
#: Event-loop turns given to incoming requests before a batch is cut.
_COLLECT_SPINS = 4


def _import_fastapi() -> Any:
    try:
        import fastapi
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError(_HINT) from e
    return fastapi


class _Batcher:
    """Scores concurrent single-user requests together, one batch at a time, in a thread."""

    def __init__(self, recommender: Recommender, max_batch: int = MICRO_BATCH) -> None:
        self.recommender = recommender
        self.max_batch = max_batch
        self.pending: list[tuple[Any, int, bool, asyncio.Future[Recommendation]]] = []
        self.running = False
        self.task: asyncio.Task[None] | None = None

    async def submit(self, user: Any, k: int, exclude_seen: bool) -> Recommendation:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Recommendation] = loop.create_future()
        self.pending.append((user, k, exclude_seen, future))
        if not self.running:
            self.running = True
            self.task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        from starlette.concurrency import run_in_threadpool

        try:
            while self.pending:
                # Let requests the server has already received reach the queue first, so
                # they join this batch instead of waiting for the next one.
                for _ in range(_COLLECT_SPINS):
                    if len(self.pending) >= self.max_batch:
                        break
                    await asyncio.sleep(0)
                batch = self.pending[: self.max_batch]
                del self.pending[: self.max_batch]
                users = [b[0] for b in batch]
                ks = [b[1] for b in batch]
                flags = [b[2] for b in batch]
                try:
                    results = await run_in_threadpool(
                        self.recommender.recommend_rows, users, ks, flags
                    )
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
                    continue
                for (*_, future), result in zip(batch, results, strict=True):
                    _settle(future, result=result)
        finally:
            self.running = False
            for *_, future in self.pending:  # only left after a cancellation
                _settle(future, error=RuntimeError("The request batch was cancelled."))
            self.pending.clear()


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


def create_app(
    recommender: Recommender | str | os.PathLike[str], max_k: int = 1000, max_batch: int = 1000
) -> Any:
    """A FastAPI app serving `recommender` (or the bundle at that path).

    `max_k` caps k (requests may ask for 1..min(max_k, number of items)); `max_batch` caps
    the number of user ids of a `POST /recommend`.
    """
    fastapi = _import_fastapi()
    from fastapi import Query, Request
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, Field, StrictInt, StrictStr

    for name, value in (("max_k", max_k), ("max_batch", max_batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"The '{name}' parameter of create_app must be a positive int. Got {value!r} "
                "instead."
            )
    if not isinstance(recommender, Recommender):
        recommender = Recommender.load(recommender)
    rec: Recommender = recommender
    batcher = _Batcher(rec)
    manifest = rec.manifest
    largest_k = min(max_k, rec.num_candidates)

    app = fastapi.FastAPI(
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

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse(status_code=status, content={"detail": message})

    @app.exception_handler(UnknownItemError)
    async def _unknown_item(request: Request, exc: UnknownItemError) -> JSONResponse:
        return error(404, str(exc))

    @app.exception_handler(UnknownUserError)
    async def _unknown_user(request: Request, exc: UnknownUserError) -> JSONResponse:
        return error(404, str(exc))

    @app.exception_handler(UnsupportedError)
    async def _unsupported(request: Request, exc: UnsupportedError) -> JSONResponse:
        return error(400, str(exc))

    @app.exception_handler(ValueError)
    async def _bad_value(request: Request, exc: ValueError) -> JSONResponse:
        return error(422, str(exc))

    @app.exception_handler(TypeError)
    async def _bad_type(request: Request, exc: TypeError) -> JSONResponse:
        return error(422, str(exc))

    def check_k(k: int) -> None:
        if not 1 <= k <= largest_k:
            raise ValueError(
                f"k must be between 1 and {largest_k} (the number of items, at most max_k="
                f"{max_k}). Got {k} instead."
            )

    k_query = Query(10, ge=1, le=max_k, description=f"Number of items, 1..{largest_k}.")
    user_query = Query(..., min_length=1, max_length=256, description="A raw user id.")
    item_query = Query(..., min_length=1, max_length=256, description="A raw item id.")

    @app.get("/recommend", summary="Top-k items for one user")
    async def recommend_one(
        user_id: str = user_query,
        k: int = k_query,
        exclude_seen: bool = Query(True, description="Leave out the user's training items."),
    ) -> Any:
        check_k(k)
        user = rec.coerce_user_id(user_id)
        result = await batcher.submit(user, k, exclude_seen)
        return JSONResponse(result.to_dict())

    class BatchRequest(BaseModel):
        user_ids: list[StrictInt | StrictStr] = Field(..., min_length=1)
        k: StrictInt = 10
        exclude_seen: bool = True

    def recommend_batch(request: Any) -> Any:
        if len(request.user_ids) > max_batch:
            raise ValueError(
                f"A batch may hold at most {max_batch} user ids (max_batch). Got "
                f"{len(request.user_ids)}; split it into smaller requests."
            )
        check_k(request.k)
        results = rec.recommend_rows(request.user_ids, request.k, request.exclude_seen)
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
    return create_app(
        os.environ[f"{_ENV}BUNDLE"],
        max_k=int(os.environ.get(f"{_ENV}MAX_K", "1000")),
        max_batch=int(os.environ.get(f"{_ENV}MAX_BATCH", "1000")),
    )


def serve(
    bundle: str | os.PathLike[str] | Recommender,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    workers: int = 1,
    max_k: int = 1000,
    max_batch: int = 1000,
    threads: int = 1,
    log_level: str = "info",
    access_log: bool = False,
) -> None:
    """Serve a bundle over HTTP with uvicorn until interrupted.

    `workers` > 1 starts that many processes, each loading the bundle; `threads` is the number
    of torch/BLAS threads per process (1 keeps many concurrent requests from oversubscribing
    the cores).
    """
    _import_fastapi()
    try:
        import uvicorn
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError(_HINT) from e
    for name, value in (("workers", workers), ("threads", threads), ("port", port)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (name != "port"):
            raise ValueError(
                f"The '{name}' parameter of serve must be a positive int. Got {value!r} instead."
            )
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": access_log,
    }
    if workers == 1:
        limit_threads(threads)
        app = create_app(bundle, max_k=max_k, max_batch=max_batch)
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
        }
    )
    uvicorn.run("towerrec.serving.http:_app_from_env", factory=True, workers=workers, **options)
