"""examples/serving.py runs end to end on a small synthetic MovieLens folder."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from towerrec.data import write_movielens

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "serving.py"


def test_serving_example_runs(tmp_path, capsys):
    folder = write_movielens(tmp_path, "100k", num_users=60, num_items=80, num_ratings=2000)
    spec = importlib.util.spec_from_file_location("serving_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    example.main(["--data-dir", str(folder), "--epochs", "1", "--padded-corpus", "3000"])
    out = capsys.readouterr().out
    assert "brute force" in out and "recall@10 1.000" in out
    assert "FAISS HNSW" in out and "nprobe=128" in out
    assert "popular fallback" in out and "GET /recommend?user_id=42&k=3 ->" in out
    # The bundle's HTTP answer is the Recommender's answer.
    lines = dict(line.split(" -> ") for line in out.splitlines() if " -> " in line)
    served = lines["  GET /recommend?user_id=42&k=3"]
    direct = next(line for line in out.splitlines() if "seen movies left out" in line)
    assert served == direct.split(": ", 1)[1]
