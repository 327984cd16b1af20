"""Help texts: every command and every option documented; one real subprocess."""

from __future__ import annotations

import argparse
import subprocess
import sys

from towerrec.cli import build_parser

MINE = ("quickstart", "datasets", "train", "evaluate")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _check_options(parser: argparse.ArgumentParser, path: str) -> None:
    text = parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                assert name in text, (path, name)
                _check_options(sub, f"{path} {name}")
            continue
        for option in action.option_strings:
            assert option in text, (path, option)
        if not action.option_strings and action.dest != "help":
            assert (action.metavar or action.dest) in text, (path, action.dest)
        if action.dest != "help":
            assert action.help, (path, action.dest)


def test_every_command_and_option_is_in_the_help(cli):
    parser, broken = build_parser()
    assert not broken
    commands = _subparsers(parser)
    assert set(MINE) <= set(commands)
    top = cli("--help")
    assert top.code == 0
    for name in MINE:
        assert name in top.out
        _check_options(commands[name], name)
        shown = cli(name, "--help")
        assert shown.code == 0 and shown.out == commands[name].format_help()
    train_help = commands["train"].format_help()
    for key in ("task", "recipe", "variant", "data_dir", "seed", "[model]", "[train]", "COMPLETE"):
        assert key in train_help


def test_bad_config_in_a_real_process(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('task = "multitask"\n[model]\ndimm = 3\n')
    done = subprocess.run(
        [sys.executable, "-m", "towerrec.cli", "train", str(config), "-o", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("towerrec train: error: config: unknown key 'model.dimm'")
    assert done.stderr.count("\n") == 1 and not (tmp_path / "r").exists()
