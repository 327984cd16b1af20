"""The `towerrec` command line: a thin dispatcher over the modules in `towerrec.commands`.

`towerrec --help` lists the subcommands; `towerrec COMMAND --help` documents each one.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from towerrec import __version__
from towerrec.commands import discover

__all__ = ["build_parser", "main"]


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, BaseException]]:
    """-> (the `towerrec` parser with every command registered, {name: import error})."""
    parser = argparse.ArgumentParser(
        prog="towerrec",
        description=(
            "towerrec: two-tower retrieval and ranking recommenders. Train, evaluate, export a "
            "serving bundle, query it, and serve it over HTTP."
        ),
        epilog="Run 'towerrec COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"towerrec {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    modules, broken = discover()
    for module in modules:
        module.register(subparsers)
    return parser, broken


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with `argv` (default: `sys.argv[1:]`); return the exit status.

    Errors a user can fix (a missing file, a bad bundle, an invalid value) print one line,
    `towerrec COMMAND: error: ...`, and return 1 (set TOWERREC_DEBUG=1 for the traceback);
    usage errors return 2.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser, broken = build_parser()
    if args_list and args_list[0] in broken:
        error = broken[args_list[0]]
        print(
            f"towerrec {args_list[0]}: error: the command could not be loaded: {error!r}",
            file=sys.stderr,
        )
        return 1
    try:
        args = parser.parse_args(args_list)
    except SystemExit as e:  # --help, --version and usage errors
        return int(e.code) if isinstance(e.code, int) else (0 if e.code is None else 2)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        from towerrec.errors import TowerrecError

        expected = (TowerrecError, OSError, ValueError, TypeError, ImportError, LookupError)
        if not isinstance(e, expected) or os.environ.get("TOWERREC_DEBUG"):
            raise
        print(f"towerrec {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
