"""Subcommands of the `towerrec` command line, one module each.

A command module defines `NAME` (the subcommand), `HELP` (one line for `towerrec --help`),
`register(subparsers)` (adds its parser with `subparsers.add_parser(NAME, ...)` and sets
`func=run` as a default) and `run(args) -> int` (the exit status). Every module in this
package that defines `register` is found automatically, so adding a command means adding a
module; heavy imports belong inside `run`, so `towerrec --help` stays fast.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

__all__ = ["ORDER", "discover"]

#: Commands listed first in `towerrec --help`, in this order; others follow by name.
ORDER = ("quickstart", "datasets", "train", "evaluate", "export", "recommend", "serve")


def discover() -> tuple[list[ModuleType], dict[str, BaseException]]:
    """-> (command modules in help order, {module name: import error} for broken ones)."""
    modules: list[ModuleType] = []
    broken: dict[str, BaseException] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"{__name__}.{info.name}")
        except Exception as e:  # a broken command must not take the others down
            broken[info.name] = e
            continue
        if callable(getattr(module, "register", None)):
            modules.append(module)
    rank = {name: i for i, name in enumerate(ORDER)}
    modules.sort(key=lambda m: (rank.get(_name(m), len(ORDER)), _name(m)))
    return modules, broken


def _name(module: ModuleType) -> str:
    return str(getattr(module, "NAME", module.__name__.rsplit(".", 1)[-1]))
