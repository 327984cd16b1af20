"""towerrec.plot.history: PNG files of training curves."""

from __future__ import annotations

import pytest

from towerrec import plot
from towerrec.train.history import History

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _history(offset: float) -> History:
    h = History()
    for epoch in range(1, 11):
        logs = {"loss": 10.0 / epoch + offset, "top_100": 0.02 * epoch}
        if epoch % 5 == 0:
            logs["val_top_100"] = 0.015 * epoch + offset
        h.append(epoch, logs)
    return h


def test_writes_a_png_for_several_histories(tmp_path) -> None:
    out = plot.history(
        [_history(0.0), _history(0.01), _history(0.02)],
        metrics=["top_100"],
        path=tmp_path / "sub" / "curves.png",
        labels=["[32]", "[64, 32]", "[128, 64, 32]"],
        title="top-100 accuracy",
    )
    data = out.read_bytes()
    assert out == tmp_path / "sub" / "curves.png"
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 5_000
    assert not list((tmp_path / "sub").glob(".*"))  # no temporary file left behind


def test_axes_labels_and_legend(tmp_path, monkeypatch) -> None:
    import matplotlib.figure

    seen = {}
    original = matplotlib.figure.Figure.savefig

    def spy(fig, *args, **kwargs):
        ax = fig.axes[0]
        seen["xlabel"] = ax.get_xlabel()
        seen["ylabel"] = ax.get_ylabel()
        seen["title"] = ax.get_title()
        seen["legend"] = [t.get_text() for t in ax.get_legend().get_texts()]
        seen["points"] = [len(line.get_xdata()) for line in ax.get_lines()]
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    plot.history({"a": _history(0.0), "b": _history(0.1)}, "top_100", tmp_path / "x.png", title="T")
    assert seen["xlabel"] == "epoch"
    assert seen["ylabel"] == "top_100"
    assert seen["title"] == "T"
    assert seen["legend"] == ["a", "a (validation)", "b", "b (validation)"]
    assert seen["points"] == [10, 2, 10, 2]  # validation every 5 epochs: NaNs skipped


def test_validation_only_metric_and_several_panels(tmp_path) -> None:
    out = plot.history(_history(0.0), ["val_top_100", "loss"], tmp_path / "y.png")
    assert out.read_bytes().startswith(PNG_MAGIC)


def test_missing_metric_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(KeyError, match=r"'top_5'.*metrics present: \['loss', 'top_100'"):
        plot.history(_history(0.0), ["top_5"], tmp_path / "z.png")
    assert not (tmp_path / "z.png").exists()


def test_bad_arguments(tmp_path) -> None:
    with pytest.raises(ValueError, match="one label per History"):
        plot.history([_history(0.0)], ["loss"], tmp_path / "a.png", labels=["a", "b"])
    with pytest.raises(TypeError, match="list of History"):
        plot.history([], ["loss"], tmp_path / "a.png")
    with pytest.raises(ValueError, match="at least one metric"):
        plot.history(_history(0.0), [], tmp_path / "a.png")


def test_missing_matplotlib_hint(tmp_path, monkeypatch) -> None:
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"pip install 'towerrec\[plot\]'"):
        plot.history(_history(0.0), ["loss"], tmp_path / "a.png")
    assert not (tmp_path / "a.png").exists()
