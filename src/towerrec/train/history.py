"""Per-epoch training history: every metric, train and validation, saved as JSON or CSV."""

from __future__ import annotations

import csv
import io
import math
import os
from typing import Any

from towerrec._io import atomic_write_text, read_json, write_json


class History:
    """The logs of every epoch: `records` (a list of dicts with an "epoch" key).

    `history` gives `{metric: [value per epoch]}` aligned with `epochs`, with NaN where a metric
    was not computed that epoch (e.g. validation every 5 epochs). Validation metrics start with
    `val_`.
    """

    def __init__(self, records: list[dict[str, float]] | None = None) -> None:
        self.records: list[dict[str, float]] = [dict(r) for r in records or []]

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        """Record the logs of one epoch (1-based epoch number)."""
        self.records.append({"epoch": epoch, **{k: float(v) for k, v in logs.items()}})

    @property
    def epochs(self) -> list[int]:
        """Epoch numbers, 1-based."""
        return [int(r["epoch"]) for r in self.records]

    @property
    def metrics(self) -> list[str]:
        """Every metric name seen, in first-seen order."""
        names: list[str] = []
        for r in self.records:
            for k in r:
                if k != "epoch" and k not in names:
                    names.append(k)
        return names

    @property
    def history(self) -> dict[str, list[float]]:
        """{metric: [value per epoch]} with NaN where the metric is missing that epoch."""
        return {m: [r.get(m, math.nan) for r in self.records] for m in self.metrics}

    def __getitem__(self, metric: str) -> list[float]:
        return self.history[metric]

    def __len__(self) -> int:
        return len(self.records)

    def last(self, metric: str) -> float:
        """The most recent value of `metric` that was computed."""
        for r in reversed(self.records):
            if metric in r:
                return r[metric]
        raise KeyError(f"No epoch has a value for {metric!r}; metrics: {self.metrics}.")

    def best(self, metric: str, mode: str = "min") -> tuple[int, float]:
        """(epoch, value) of the best value of `metric` (`mode` "min" or "max")."""
        seen = [(int(r["epoch"]), r[metric]) for r in self.records if metric in r]
        if not seen:
            raise KeyError(f"No epoch has a value for {metric!r}; metrics: {self.metrics}.")
        pick = min if mode == "min" else max
        return pick(seen, key=lambda t: t[1])

    def to_dict(self) -> dict[str, Any]:
        """{"epochs": [...], "history": {metric: [...]}} with NaN written as null."""
        return {
            "epochs": self.epochs,
            "history": {
                m: [None if v != v else v for v in vals] for m, vals in self.history.items()
            },
        }

    def save_json(self, path: str | os.PathLike[str]) -> None:
        """Write the history as JSON (atomically)."""
        write_json(path, self.to_dict())

    def save_csv(self, path: str | os.PathLike[str]) -> None:
        """Write one row per epoch, one column per metric (empty where not computed)."""
        buf = io.StringIO()
        writer = csv.writer(buf)
        names = self.metrics
        writer.writerow(["epoch", *names])
        for r in self.records:
            writer.writerow([int(r["epoch"]), *("" if m not in r else repr(r[m]) for m in names)])
        atomic_write_text(path, buf.getvalue())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        """The inverse of `to_dict`."""
        epochs = data["epochs"]
        hist = data["history"]
        records: list[dict[str, float]] = []
        for i, e in enumerate(epochs):
            rec: dict[str, float] = {"epoch": e}
            for m, vals in hist.items():
                if vals[i] is not None:
                    rec[m] = vals[i]
            records.append(rec)
        return cls(records)

    @classmethod
    def load_json(cls, path: str | os.PathLike[str]) -> History:
        """Read a history written by `save_json`."""
        return cls.from_dict(read_json(path))

    def __repr__(self) -> str:
        return f"History(epochs={len(self)}, metrics={self.metrics})"
