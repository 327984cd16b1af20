"""`towerrec datasets download|info`."""

from __future__ import annotations

import datetime as dt
import importlib
import urllib.error

from towerrec.commands import datasets
from towerrec.data import VARIANTS, movielens, write_movielens


def test_the_command_knows_every_release():
    assert datasets.VARIANTS == VARIANTS


def test_info_prints_counts_and_ranges(cli, ml_dir):
    result = cli("datasets", "info", "100k", "--data-dir", ml_dir)
    assert result.code == 0, result.err
    ratings = movielens("100k", data_dir=ml_dir).ratings
    text = result.out
    assert f"users         {ratings['user_id'].nunique()} " in text
    assert f"items         {ratings['item_id'].nunique()} rated" in text
    assert f"ratings       {len(ratings)} " in text
    low, high = ratings["rating"].min(), ratings["rating"].max()
    assert f"rating range  {low:g} to {high:g}" in text
    first = dt.datetime.fromtimestamp(int(ratings["timestamp"].min()), dt.UTC).date()
    last = dt.datetime.fromtimestamp(int(ratings["timestamp"].max()), dt.UTC).date()
    assert f"time range    {first} to {last}" in text


def test_download_skips_a_cached_release_and_fails_cleanly_offline(cli, tmp_path, monkeypatch):
    ml = importlib.import_module("towerrec.data.movielens")  # the module, not the function

    cache = tmp_path / "cache"
    write_movielens(cache, "100k", num_users=5, num_items=4, num_ratings=10)
    result = cli("datasets", "download", "100k", "--cache-dir", cache)
    assert result.code == 0 and "already in the cache" in result.out

    def offline(url):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(ml, "_urlopen", offline)
    failed = cli("datasets", "download", "1m", "--cache-dir", cache)
    assert failed.code == 1 and failed.err.count("\n") == 1 and "no network" in failed.err
    assert not (cache / "ml-1m").exists()
    missing = cli("datasets", "info", "1m", "--cache-dir", cache)
    assert missing.code == 1 and "MovieLens 1m not found" in missing.err
    assert cli("datasets", "info", "2k").code == 2
    assert cli("datasets").code == 2
