"""CLI: export a run folder, recommend from the bundle, help texts, and a real server process."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from towerrec.cli import main
from towerrec.serving import Recommender, export_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, make_run_folder) -> Path:
    folder = tmp_path_factory.mktemp("run") / "run"
    make_run_folder(folder)
    return folder


def test_export_and_recommend_from_a_run_folder(run_dir, tmp_path, capsys):
    out = tmp_path / "bundle"
    assert main(["export", str(run_dir), "--output", str(out)]) == 0
    assert "Wrote bundle" in capsys.readouterr().out
    rec = Recommender.load(out)
    manifest = rec.manifest
    assert manifest["parts"]["seen"] and manifest["parts"]["items"]
    assert manifest["model"]["name"] == "multitask"

    assert main(["recommend", str(out), "--user", "1", "-k", "3"]) == 0
    printed = capsys.readouterr().out
    expected = rec.recommend(1, k=3)
    assert "Top 3 for user 1" in printed and "title" in printed
    for title in expected.titles:
        assert title in printed
    assert main(["recommend", str(out), "-u", "1", "-u", "99999", "-k", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["ids"] == rec.recommend(1, k=2).ids
    assert rows[1]["fallback"] == "popular"
    assert main(["recommend", str(out), "--similar-to", "3", "-k", "2"]) == 0
    assert "similar to item 3" in capsys.readouterr().out


def test_export_run_reads_the_checkpoint_weights(run_dir, tmp_path):
    import torch

    from towerrec.train import load_checkpoint

    for ckpt in ("best", "latest"):
        path = export_run(run_dir, tmp_path / ckpt, checkpoint=ckpt)
        weights = load_checkpoint(run_dir / "checkpoints" / f"{ckpt}.pt")["model"]
        model = Recommender.load(path).bundle.model
        for name, tensor in model.state_dict().items():
            assert torch.equal(tensor, weights[name])


def test_export_from_a_checkpoint_file_and_toml_config(tmp_path, make_run_folder):
    run = tmp_path / "run"
    make_run_folder(run, config_format="toml")
    checkpoint = run / "checkpoints" / "latest.pt"
    assert main(["export", str(checkpoint), "-o", str(tmp_path / "b")]) == 0
    assert Recommender.load(tmp_path / "b").recommend(1, k=2).ids


def test_export_errors_are_one_line(tmp_path, run_dir, capsys):
    assert main(["export", str(tmp_path / "missing"), "-o", str(tmp_path / "b")]) == 1
    assert "towerrec export: error: No run folder" in capsys.readouterr().err
    assert main(["export", str(run_dir), "-o", str(tmp_path / "b")]) == 0
    assert main(["export", str(run_dir), "-o", str(tmp_path / "b")]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main(["export", str(run_dir), "-o", str(tmp_path / "b"), "--overwrite"]) == 0
    assert main(["recommend", str(tmp_path / "b"), "-u", "1", "-k", "0"]) == 2
    assert main(["recommend", str(tmp_path / "nothing"), "-u", "1"]) == 1
    assert "No bundle" in capsys.readouterr().err


def test_help_is_complete(capsys):
    assert main(["--help"]) == 0
    top = capsys.readouterr().out
    for command in ("export", "recommend", "serve"):
        assert command in top
    for command, options in {
        "export": ["RUN_DIR_OR_CHECKPOINT", "--output", "--checkpoint", "--index", "--overwrite"],
        "recommend": ["BUNDLE", "--user", "--similar-to", "-k", "--include-seen", "--json"],
        "serve": [
            "BUNDLE",
            "--host",
            "--port",
            "--workers",
            "--threads",
            "--parallel-batches",
            "--max-k",
        ],
    }.items():
        assert main([command, "--help"]) == 0
        text = capsys.readouterr().out
        for option in options:
            assert option in text, (command, option)
    assert main([]) == 2
    assert main(["no-such-command"]) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_server_process(bundle_path, tmp_path):
    port = _free_port()
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed in finally
    cmd = [sys.executable, "-m", "towerrec.cli", "serve", str(bundle_path), "--port", str(port)]
    proc = subprocess.Popen([*cmd, "--log-level", "warning"], stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not start within 60 s"
            time.sleep(0.2)
        r = httpx.get(f"{base}/recommend", params={"user_id": 1, "k": 5}, timeout=10)
        assert r.status_code == 200 and len(r.json()["titles"]) == 5
        assert r.json()["ids"] == Recommender.load(bundle_path).recommend(1, k=5).ids
        assert httpx.get(f"{base}/recommend", params={"user_id": 1, "k": 0}).status_code == 422
        assert httpx.get(f"{base}/healthz").status_code == 200  # still alive after bad input
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log.close()
    assert proc.returncode is not None


def test_table_does_not_repeat_ids_that_are_titles():
    from towerrec.commands.recommend import format_table
    from towerrec.serving import Recommendation

    same = Recommendation(ids=["Heat (1995)"], scores=[1.5], titles=["Heat (1995)"], user_id=1)
    assert format_table(same, "Top 1").splitlines()[-1].split() == ["1", "Heat", "(1995)", "1.5000"]
    other = Recommendation(ids=[6], scores=[1.5], titles=["Heat (1995)"], user_id=1)
    assert format_table(other, "Top 1").splitlines()[-1].endswith("Heat (1995)")


def test_feature_options_become_query_columns():
    from towerrec.commands.recommend import _feature_columns

    got = _feature_columns(["timestamp=879024327", "score=0.5", "city=Paris"], rows=2)
    assert got == {"timestamp": [879024327] * 2, "score": [0.5] * 2, "city": ["Paris"] * 2}
    with pytest.raises(ValueError, match="COLUMN=VALUE"):
        _feature_columns(["timestamp"], rows=1)
