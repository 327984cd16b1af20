"""`towerrec serve BUNDLE --host 127.0.0.1 --port 8000`: serve a bundle over HTTP."""

from __future__ import annotations

import argparse
from typing import Any

from towerrec.commands._args import positive_int

__all__ = ["NAME", "register", "run"]

NAME = "serve"
HELP = "serve a bundle over HTTP (FastAPI + uvicorn; pip install 'towerrec[serve]')"


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535, got {value}")
    return value


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `serve` subcommand."""
    parser = subparsers.add_parser(
        NAME,
        help=HELP,
        description=(
            "Serve a bundle over HTTP until interrupted (Ctrl-C). Endpoints: GET /recommend"
            '?user_id=..&k=..&exclude_seen=.., POST /recommend {"user_ids": [...], "k": .., '
            '"exclude_seen": ..} (or "queries": [{raw query columns}] for towers that read more '
            "than the user id), GET /similar?item_id=..&k=.., GET /predict?user_id=..&"
            "item_id=.., GET /healthz, GET /metadata; OpenAPI docs at /docs."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("bundle", metavar="BUNDLE", help="a bundle folder (towerrec export)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=_port, default=8000, help="TCP port to listen on")
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="server processes, each loading the bundle",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        help="torch/BLAS threads per process (1 avoids oversubscribing cores under load)",
    )
    parser.add_argument(
        "--parallel-batches",
        type=positive_int,
        default=None,
        help="request batches each process scores at once (default: usable CPUs / workers, "
        "at most 4)",
    )
    parser.add_argument(
        "--max-k", type=positive_int, default=1000, help="largest k a request may ask for"
    )
    parser.add_argument(
        "--max-batch",
        type=positive_int,
        default=1000,
        help="most user ids in one POST /recommend",
    )
    parser.add_argument(
        "--log-level",
        choices=["critical", "error", "warning", "info", "debug"],
        default="info",
        help="uvicorn log level",
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Check the bundle, then run uvicorn until stopped."""
    from towerrec.serving.http import serve

    serve(
        args.bundle,
        args.host,
        args.port,
        workers=args.workers,
        max_k=args.max_k,
        max_batch=args.max_batch,
        threads=args.threads,
        parallel_batches=args.parallel_batches,
        log_level=args.log_level,
        access_log=args.access_log,
    )
    return 0
