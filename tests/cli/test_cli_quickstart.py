"""`towerrec quickstart`: end to end on synthetic files, and offline without data."""

from __future__ import annotations

import importlib
import json
import urllib.error

import pytest

from towerrec.commands import quickstart


@pytest.mark.usefixtures("fast_plots")
def test_quickstart_trains_evaluates_and_serves(cli, ml_dir, tmp_path, monkeypatch):
    # The real recipe's settings, made small (the recipe itself is the quickstart's).
    monkeypatch.setitem(quickstart.QUICKSTART, "model", {"dim": 8, "hidden": 16})
    monkeypatch.setitem(quickstart.QUICKSTART, "train", {"epochs": 2, "batch_size": 128})
    out = tmp_path / "q"
    result = cli("quickstart", "--data-dir", ml_dir, "--output", out, "--quiet")
    assert result.code == 0, result.err
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    lines = result.out.splitlines()
    row = next(line for line in lines if line.startswith("top-100 accuracy "))
    assert row.split()[-2:] == [f"{metrics['top_100']:.4f}", "0.2350"]
    rmse = next(line for line in lines if line.startswith("RMSE"))
    assert rmse.split()[-2:] == [f"{metrics['rmse']:.4f}", "1.1310"]
    assert "top-100 accuracy, seen excluded" in result.out
    assert result.out.count("Top 5 for user") == quickstart.USERS_SHOWN
    assert f"Run folder: {out}" in result.out and "towerrec serve" in result.out
    for name in ("config.toml", "bundle/manifest.json", "checkpoints/latest.pt", "COMPLETE"):
        assert (out / name).is_file(), name


def test_quickstart_offline_without_data_is_one_clear_line(cli, tmp_path, monkeypatch):
    movielens = importlib.import_module("towerrec.data.movielens")  # the module, not the function

    def offline(url):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(movielens, "_urlopen", offline)
    monkeypatch.setenv("TOWERREC_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "q"
    result = cli("quickstart", "--output", out, "-q")
    assert result.code == 1
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert result.err.startswith("towerrec quickstart: error: MovieLens 100k not found in")
    for hint in (str(tmp_path / "cache" / "ml-100k"), "ml-100k.zip", "--data-dir"):
        assert hint in result.err
    assert not out.exists()
