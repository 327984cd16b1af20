"""Training curves as PNG files: metrics of one or several `History` objects against epoch.

Needs matplotlib (`pip install 'towerrec[plot]'`), imported on first use with the headless
`Agg` backend.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from towerrec.train.history import History

__all__ = ["history"]


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError(
            "towerrec.plot needs matplotlib, which is not installed: pip install 'towerrec[plot]'"
        ) from exc
    matplotlib.use("Agg")  # headless: write files, never open windows
    import matplotlib.pyplot as plt

    return plt


def _as_histories(histories: History | Sequence[History] | Mapping[str, History]) -> list[History]:
    if isinstance(histories, Mapping):
        histories = list(histories.values())
    items = [histories] if isinstance(histories, History) else list(histories)
    if not items or not all(isinstance(h, History) for h in items):
        raise TypeError(
            "The 'histories' parameter of towerrec.plot.history must be a History or a non-empty "
            f"list of History objects. Got {histories!r} instead."
        )
    return items


def _points(h: History, metric: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for epoch, value in zip(h.epochs, h.history.get(metric, []), strict=False):
        if value is not None and not math.isnan(value):
            xs.append(epoch)
            ys.append(value)
    return xs, ys


def history(
    histories: History | Sequence[History] | Mapping[str, History],
    metrics: str | Sequence[str] = ("loss",),
    path: str | os.PathLike[str] = "history.png",
    *,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    validation: bool = True,
    ylabel: str | None = None,
    dpi: int = 100,
) -> Path:
    """Draw `metrics` of each History against epoch into one PNG (one panel per metric).

    A metric named without the `val_` prefix draws its training curve (solid) and, with
    `validation`, its `val_` curve (dashed, markers: validation may run every few epochs); a
    metric named `val_...` draws only that curve. `labels` names the histories in the legend
    (default: the keys when `histories` is a dict, else "run 1", "run 2", ...). A metric no History has raises a `KeyError` listing the
    metrics present. Returns the path written.
    """
    items = _as_histories(histories)
    if labels is None and isinstance(histories, Mapping):
        labels = [str(k) for k in histories]
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    if not names or not all(isinstance(m, str) and m for m in names):
        raise ValueError(
            "The 'metrics' parameter of towerrec.plot.history must name at least one metric "
            f"(e.g. ['val_top_100']). Got {metrics!r} instead."
        )
    if labels is None:
        labels = [f"run {i + 1}" for i in range(len(items))]
    labels = list(labels)
    if len(labels) != len(items):
        raise ValueError(
            f"towerrec.plot.history got {len(labels)} labels for {len(items)} histories; give "
            "one label per History."
        )
    present = {m for h in items for m in h.metrics}
    for name in names:
        wanted = {name, f"val_{name}"} if validation and not name.startswith("val_") else {name}
        if not wanted & present:
            raise KeyError(
                f"No History has the metric {name!r}; metrics present: {sorted(present)}. Pick "
                "one of those (validation metrics start with 'val_')."
            )

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(6.4 * len(names), 4.4), squeeze=False)
    try:
        for ax, name in zip(axes[0], names, strict=True):
            colors = plt.rcParams["axes.prop_cycle"].by_key().get("color", [None])
            for i, (h, label) in enumerate(zip(items, labels, strict=True)):
                color = colors[i % len(colors)]
                curves = [(name, "-", "")]
                if validation and not name.startswith("val_"):
                    curves.append((f"val_{name}", "--", " (validation)"))
                for metric, style, suffix in curves:
                    xs, ys = _points(h, metric)
                    if not xs:
                        continue
                    ax.plot(
                        xs,
                        ys,
                        linestyle=style,
                        marker="o" if len(xs) <= 80 else None,
                        markersize=3,
                        color=color,
                        label=f"{label}{suffix}",
                    )
            ax.set_xlabel("epoch")
            ax.set_ylabel(ylabel or name)
            ax.set_title(title if title and len(names) == 1 else name)
            ax.grid(True, alpha=0.3)
            ax.legend()
        if title and len(names) > 1:
            fig.suptitle(title)
        fig.tight_layout()
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp.png")
        fig.savefig(tmp, dpi=dpi, format="png")
        os.replace(tmp, out)
    finally:
        plt.close(fig)
    return out
