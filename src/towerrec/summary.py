"""A Keras-style table of a model's modules, output shapes and parameter counts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import UninitializedParameter


def _shape_text(value: Any) -> str:
    """The shape of a module output: `[128, 64]`, tuples/lists joined, dicts by key."""
    if isinstance(value, torch.Tensor):
        return "[" + ", ".join(str(s) for s in value.shape) + "]"
    if isinstance(value, tuple | list):
        parts = [_shape_text(v) for v in value]
        return "(" + ", ".join(p for p in parts if p) + ")" if parts else ""
    if isinstance(value, dict):
        parts = [f"{k}: {_shape_text(v)}" for k, v in value.items()]
        return "{" + ", ".join(parts) + "}"
    return ""


def _walk(
    module: nn.Module, prefix: str, level: int, depth: int | None
) -> Iterator[tuple[str, int, nn.Module]]:
    for name, child in module.named_children():
        path = f"{prefix}.{name}" if prefix else name
        yield path, level, child
        if depth is None or level + 1 < depth:
            yield from _walk(child, path, level + 1, depth)


def _count(params: list[nn.Parameter]) -> tuple[int, int, bool]:
    """(total, trainable, has uninitialised lazy parameters) over unique parameters."""
    total = trainable = 0
    lazy = False
    for p in params:
        if isinstance(p, UninitializedParameter):
            lazy = True
            continue
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return total, trainable, lazy


def _unique_params(module: nn.Module) -> list[nn.Parameter]:
    return list({id(p): p for p in module.parameters()}.values())


def _run_example(
    model: nn.Module,
    example: Any,
    forward: Callable[[nn.Module, Any], Any] | None,
) -> None:
    if forward is not None:
        forward(model, example)
    elif isinstance(example, dict) and hasattr(model, "compute_loss"):
        model.compute_loss(example, training=False)
        if hasattr(model, "reset_metrics"):
            model.reset_metrics()
    elif isinstance(example, dict):
        model(example)
    elif isinstance(example, tuple | list):
        model(*example)
    else:
        model(example)


def summary(
    model: nn.Module,
    input_example: Any = None,
    *,
    depth: int | None = 2,
    forward: Callable[[nn.Module, Any], Any] | None = None,
) -> str:
    """A printable table of `model`'s modules: name, type, output shape, parameters, trainable.

    Rows are the model's children and their children (`depth=2`; `depth=1` shows only the
    children, `depth=None` every module down to the leaves), indented by nesting. A row's
    parameter count includes everything inside it, so nested rows repeat their parent's share;
    the totals at the bottom count each parameter once and equal
    `sum(p.numel() for p in model.parameters())`. "Trainable" reads yes, no, "-" (no
    parameters) or, for a partly frozen module, the number of trainable parameters.

    With an `input_example`, the model is run once on it (eval mode, no gradients, training
    modes restored afterwards) with forward hooks recording every shown module's output shape:
    a batch dict goes to `model.compute_loss(batch, training=False)` when the model has one
    (its metrics are then reset), else to `model(batch)`; a tuple is unpacked into
    `model(*example)`; anything else is passed as `model(example)`. `forward(model, example)`
    overrides how the model is run. A module called several times with different output shapes
    shows "multiple". Running the example also materialises lazily-sized layers, whose
    parameters otherwise show as "?" and are left out of the totals.
    """
    if depth is not None and (not isinstance(depth, int) or isinstance(depth, bool) or depth < 1):
        raise ValueError(
            f"The 'depth' parameter of summary must be a positive int or None. Got {depth!r} "
            "instead."
        )
    rows = list(_walk(model, "", 0, depth))
    shapes: dict[int, list[str]] = {}
    if input_example is not None:
        handles = []
        for _, _, module in rows:
            key = id(module)
            if key in shapes:
                continue
            shapes[key] = []

            def hook(_m: nn.Module, _inp: Any, out: Any, key: int = key) -> None:
                shapes[key].append(_shape_text(out))

            handles.append(module.register_forward_hook(hook))
        modes = [(m, m.training) for m in model.modules()]
        try:
            model.eval()
            with torch.no_grad():
                _run_example(model, input_example, forward)
        finally:
            for h in handles:
                h.remove()
            for m, mode in modes:
                m.training = mode

    header = ("Module (type)", "Output shape", "Param #", "Trainable")
    table: list[tuple[str, str, str, str]] = []
    for path, level, module in rows:
        name = "  " * level + f"{path.rsplit('.', 1)[-1]} ({type(module).__name__})"
        seen = shapes.get(id(module), [])
        distinct = list(dict.fromkeys(seen))
        shape = distinct[0] if len(distinct) == 1 else ("multiple" if distinct else "")
        total, trainable, lazy = _count(_unique_params(module))
        if lazy:
            count, train = "?", "?"
        else:
            count = f"{total:,}"
            if total == 0:
                train = "-"
            elif trainable == total:
                train = "yes"
            elif trainable == 0:
                train = "no"
            else:
                train = f"{trainable:,}"
        table.append((name, (shape or "-") if input_example is not None else "", count, train))

    total, trainable, lazy = _count(_unique_params(model))
    nbytes = sum(
        p.numel() * p.element_size()
        for p in _unique_params(model)
        if not isinstance(p, UninitializedParameter)
    )
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(4)]
    if input_example is None:
        widths[1] = 0
    sep = "  "

    def line(cells: tuple[str, str, str, str]) -> str:
        parts = [cells[0].ljust(widths[0])]
        if widths[1]:
            parts.append(cells[1].ljust(widths[1]))
        parts += [cells[2].rjust(widths[2]), cells[3].rjust(widths[3])]
        return sep.join(parts).rstrip()

    width = sum(widths) + len(sep) * (3 if widths[1] else 2)
    out = [f'Model: "{type(model).__name__}"', "=" * width, line(header), "-" * width]
    out += [line(r) for r in table] or ["(no child modules)"]
    out += [
        "=" * width,
        f"Total params: {total:,}" + (" (+ uninitialised lazy parameters)" if lazy else ""),
        f"Trainable params: {trainable:,}",
        f"Non-trainable params: {total - trainable:,}",
        f"Parameter memory: {nbytes / 2**20:.2f} MiB",
    ]
    return "\n".join(out)
