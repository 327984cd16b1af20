"""`towerrec train` and `towerrec evaluate`: run folders, bad configs, resuming."""

from __future__ import annotations

import json
import tomllib

import pytest

from towerrec.runs import COMPLETE, is_complete
from towerrec.serving import Recommender

RUN_FILES = {
    "config.toml",
    "features.json",
    "items.csv",
    "interactions.csv",
    "checkpoints/latest.pt",
    "checkpoints/best.pt",
    "history.json",
    "history.csv",
    "metrics.json",
    "summary.txt",
    "plots/loss.png",
    COMPLETE,
}


def _files(folder):
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.usefixtures("fast_plots")
def test_train_multitask_writes_a_complete_servable_run(cli, tiny_config, tmp_path):
    out = tmp_path / "run"
    result = cli("train", tiny_config("multitask"), "--output", out, "--quiet")
    assert result.code == 0, result.err
    files = _files(out)
    assert files >= RUN_FILES
    assert {"bundle/manifest.json", "plots/top_100.png", "plots/rmse.png"} <= files
    assert "top-100 accuracy" in result.out and str(out) in result.out

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["bundle"] == "bundle"
    assert 0.0 <= metrics["metrics"]["top_100"] <= 1.0 and metrics["metrics"]["rmse"] > 0
    config = tomllib.loads((out / "config.toml").read_text())
    assert config["model"]["dim"] == 8 and config["train"]["epochs"] == 2
    assert config["model"]["name"] == "joint" and config["model"]["config"]["dim"] == 8
    marker = json.loads((out / COMPLETE).read_text())
    assert set(marker["files"]) == files - {COMPLETE}
    assert "Total params" in (out / "summary.txt").read_text()

    # The bundle serves, and `towerrec export` of the run folder gives the same bundle.
    rec = Recommender.load(out / "bundle")
    assert len(rec.recommend(1, k=3).ids) == 3
    assert cli("export", out, "--output", tmp_path / "again").code == 0
    again = Recommender.load(tmp_path / "again")
    assert again.recommend(1, k=3).ids == rec.recommend(1, k=3).ids

    # evaluate recomputes the recorded test metrics from the checkpoint.
    evaluated = cli("evaluate", out, "--json")
    assert evaluated.code == 0, evaluated.err
    recomputed = json.loads(evaluated.out)
    for key, value in metrics["metrics"].items():
        assert recomputed[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    table = cli("evaluate", out)
    assert "recorded" in table.out and "RMSE" in table.out


@pytest.mark.usefixtures("fast_plots")
@pytest.mark.parametrize("task", ["deep_retrieval", "deep_retrieval_best", "memory_efficient"])
def test_train_other_tasks(cli, tiny_config, tmp_path, task):
    out = tmp_path / task
    result = cli("train", tiny_config(task), "--output", out, "-q")
    assert result.code == 0, result.err
    assert _files(out) >= RUN_FILES
    metrics = json.loads((out / "metrics.json").read_text())
    key = "mae" if task == "memory_efficient" else "top_100"
    assert key in metrics["metrics"]
    if task == "deep_retrieval":  # the tutorial's towers read raw features: servable
        assert metrics["bundle"] == "bundle" and (out / "bundle" / "manifest.json").is_file()
        from towerrec.serving import Recommender

        rec = Recommender.load(out / "bundle")
        assert len(rec.recommend({"user_id": 1, "timestamp": 880000000}, k=3)) == 3
        # towerrec export re-exports the run folder; recommend takes the extra column.
        exported = cli("export", out, "--output", tmp_path / "again")
        assert exported.code == 0, exported.err
        shown = cli("recommend", tmp_path / "again", "-u", "1", "--feature", "timestamp=880000000")
        assert shown.code == 0 and "Top 10 for user 1" in shown.out, shown.err
        needs = cli("recommend", tmp_path / "again", "-u", "1")
        assert needs.code != 0 and "timestamp" in needs.err
    else:  # the best deep recipe reads each user's previous items; a rating-only model
        assert metrics["bundle"] is None
        assert ("previous" if task == "deep_retrieval_best" else "rating-only") in metrics[
            "bundle_skipped"
        ]
        assert not (out / "bundle").exists()
        if task == "deep_retrieval_best":
            refused = cli("export", out, "--output", tmp_path / "again")
            assert refused.code != 0 and "previous" in refused.err
            assert not (tmp_path / "again").exists()
    evaluated = json.loads(cli("evaluate", out, "--json").out)
    assert evaluated[key] == pytest.approx(metrics["metrics"][key], rel=1e-5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[model]\ndimm = 3\n", "unknown key 'model.dimm' (allowed: dim, hidden"),
        ("[train]\nepochs = 'ten'\n", "'train.epochs' must be an integer; got 'ten'"),
        ("seed = 1.5\n", "'seed' must be an integer"),
        ("bogus = 1\n", "unknown key 'bogus' (allowed: task, recipe, name, variant, data_dir"),
        ("[weights]\nrating = -1\n", "'weights.rating' must be >= 0"),
    ],
)
def test_bad_config_is_one_line_and_writes_nothing(cli, tmp_path, ml_dir, text, expected):
    config = tmp_path / "bad.toml"
    config.write_text(f'task = "multitask"\ndata_dir = "{ml_dir.as_posix()}"\n{text}')
    out = tmp_path / "run"
    result = cli("train", config, "--output", out)
    assert result.code == 1
    assert expected in result.err
    assert result.err.count("\n") == 1 and result.err.startswith("towerrec train: error: config:")
    assert not out.exists()


def test_bad_values_from_set_and_files(cli, tmp_path, ml_dir):
    config = tmp_path / "ok.toml"
    config.write_text('task = "multitask"\n')
    out = tmp_path / "run"
    cases = [
        (["--set", "data_dir=" + str(tmp_path / "nowhere")], "'data_dir' is"),
        (["--set", "recipe=fancy"], "'recipe' must be one of best, tfrs-parity; got 'fancy'"),
        (["--set", "task=dance"], "'task' must be one of multitask, deep_retrieval"),
        (["--set", "train.epochs=0", "--set", f"data_dir={ml_dir}"], "'train.epochs' must be >= 1"),
        (["--set", "nokey"], "--set needs KEY=VALUE"),
    ]
    for extra, expected in cases:
        result = cli("train", config, "--output", out, *extra)
        assert result.code == 1 and expected in result.err, (extra, result.err)
        assert result.err.count("\n") == 1
    missing = cli("train", tmp_path / "absent.toml", "--output", out)
    assert missing.code == 1 and "no file at" in missing.err
    (tmp_path / "broken.toml").write_text("task = \n")
    broken = cli("train", tmp_path / "broken.toml", "--output", out)
    assert broken.code == 1 and "not valid TOML" in broken.err
    (tmp_path / "empty.toml").write_text("")
    assert "missing key 'task'" in cli("train", tmp_path / "empty.toml", "-o", out).err
    assert not out.exists()


def test_missing_data_files_stop_before_the_run_folder(cli, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    config = tmp_path / "c.toml"
    config.write_text(f'task = "multitask"\ndata_dir = "{empty.as_posix()}"\n')
    result = cli("train", config, "--output", tmp_path / "run", "-q")
    assert result.code == 1 and "MovieLens 100k not found" in result.err
    assert result.err.count("\n") == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.usefixtures("fast_plots")
@pytest.mark.parametrize("task", ["multitask", "deep_retrieval_best", "memory_efficient"])
def test_resume_gives_the_uninterrupted_result(cli, tiny_config, tmp_path, task):
    config = tiny_config(task, epochs=2)
    full, part = tmp_path / "full", tmp_path / "part"
    assert cli("train", config, "-o", full, "-q").code == 0
    assert cli("train", config, "-o", part, "-q", "--set", "train.epochs=1").code == 0
    assert json.loads((part / "metrics.json").read_text())["epochs"] == 1
    resumed = cli("train", "--resume", part, "--set", "train.epochs=2", "-q")
    assert resumed.code == 0, resumed.err
    a = json.loads((full / "metrics.json").read_text())
    b = json.loads((part / "metrics.json").read_text())
    assert b["epochs"] == 2
    for key, value in a["metrics"].items():
        assert b["metrics"][key] == pytest.approx(value, rel=1e-6, abs=1e-7), key
    assert json.loads((full / "history.json").read_text())["history"]["loss"] == pytest.approx(
        json.loads((part / "history.json").read_text())["history"]["loss"], rel=1e-6
    )
    assert tomllib.loads((part / "config.toml").read_text())["train"]["epochs"] == 2
    assert is_complete(part)


@pytest.mark.usefixtures("fast_plots")
def test_a_failed_run_is_incomplete_and_resumable(cli, tiny_config, tmp_path, monkeypatch):
    import towerrec.runs

    out = tmp_path / "run"

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(towerrec.runs, "_summary_text", fail)
    result = cli("train", tiny_config("memory_efficient"), "-o", out, "-q")
    assert result.code == 1 and "disk full" in result.err
    assert (out / "checkpoints" / "latest.pt").is_file() and not is_complete(out)
    refused = cli("evaluate", out)
    assert refused.code == 1 and "--resume" in refused.err
    monkeypatch.undo()
    assert cli("train", "--resume", out, "-q").code == 0
    assert is_complete(out)


def test_resume_and_output_rules(cli, tiny_config, tmp_path, ml_dir):
    config = tiny_config("memory_efficient", epochs=1)
    out = tmp_path / "run"
    assert cli("train", config, "-o", out, "-q").code == 0
    for name in ("loss", "mse", "mae"):  # drawn for real here
        assert (out / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = cli("train", config, "-o", out, "-q")
    assert again.code == 1 and "--overwrite" in again.err
    changed = cli("train", "--resume", out, "--set", "model.base_dim=8")
    assert changed.code == 1 and "cannot change when resuming" in changed.err
    both = cli("train", config, "--resume", out)
    assert both.code == 1 and "leave out CONFIG.toml" in both.err
    assert cli("train").code == 1
    assert cli("train", "--resume", tmp_path / "nothing").code == 1
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("keep me")
    refused = cli("train", config, "-o", stranger, "--overwrite", "-q")
    assert refused.code == 1 and (stranger / "notes.txt").is_file()
