"""Serving: one exported bundle, a plain-Python `Recommender`, an HTTP service.

- `export(model, feature_space, path, ...)` writes a bundle folder; `load(path)` reads it
  (checked, never unpickled); `export_run(run_dir, output)` exports a saved training run.
- `Recommender.load(path)`: `recommend`, `predict`, `similar_items`.
- `create_app(recommender)` builds the FastAPI app (`pip install 'towerrec[serve]'`);
  `serve(bundle, host, port)` runs it with uvicorn.
- `register_model(name, cls)`: make a model class exportable as config + weights.
"""

from __future__ import annotations

from typing import Any

from towerrec.serving.bundle import Bundle, export, load
from towerrec.serving.recommender import (
    Recommendation,
    Recommender,
    UnknownItemError,
    UnknownUserError,
    UnsupportedError,
)
from towerrec.serving.registry import build_model, get_model_class, register_model

__all__ = [
    "Bundle",
    "Recommendation",
    "Recommender",
    "UnknownItemError",
    "UnknownUserError",
    "UnsupportedError",
    "build_model",
    "create_app",
    "export",
    "export_run",
    "get_model_class",
    "load",
    "register_model",
    "serve",
]


def __getattr__(name: str) -> Any:
    # The HTTP layer and the run exporter load on first use (FastAPI is an optional extra).
    if name in ("create_app", "serve"):
        from towerrec.serving import http

        return getattr(http, name)
    if name == "export_run":
        from towerrec.commands.export import export_run

        return export_run
    raise AttributeError(f"module 'towerrec.serving' has no attribute {name!r}")
