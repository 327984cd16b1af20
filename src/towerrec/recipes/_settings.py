"""Recipe settings from a dataclass of defaults and a dict of overrides, checked by name."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def recipe_settings(cls: type[T], overrides: dict[str, Any] | None, label: str) -> T:
    """`cls(**overrides)` after checking every override names a field of `cls`; `label`
    names the recipe in the error (e.g. "'best' deep-retrieval")."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(overrides or {}) - known
    if unknown:
        raise ValueError(
            f"Unknown setting(s) {sorted(unknown)} for the {label} recipe; known: {sorted(known)}."
        )
    return cls(**(overrides or {}))
