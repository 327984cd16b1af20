"""Deep two-tower retrieval with feature-rich towers (TFRS's deep-retrieval tutorial and more).

The tutorial's towers, built from plain-data feature specs so a config file can describe them:

- query: user-id embedding (32) ‖ timestamp-bucket embedding (32) ‖ normalised timestamp (1)
  -> `MLP(layer_sizes)`;
- candidate: title-id embedding (32) ‖ mean of title-token embeddings (32) -> `MLP(layer_sizes)`.

`DeepRetrievalModel` keeps the candidate corpus (the candidate features of every item, from a
`FeatureSpace`-transformed items frame) as buffers, so `candidate_corpus()` needs no arguments
and a batch names its candidate by corpus row (`candidate_key`). Negatives: the in-batch softmax
of TFRS (optionally with logQ correction and removal of accidental hits), or the exact softmax
over the whole corpus (`negatives="corpus"`, cheap when the corpus is small, e.g. 1,682
movies).

Sequence features: `previous_items` gives each query the user's last k interactions before the
query time (a `{"type": "bag"}` feature: the mean of their embeddings), and a
`{"type": "history"}` feature the mean embedding of the user's whole history leaving the
example's own item out, so the model learns to predict an item from the others.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from towerrec._io import read_json, write_json
from towerrec.errors import ConfigError
from towerrec.features.discretize import Discretize
from towerrec.features.lookup import Lookup
from towerrec.features.normalize import Normalize
from towerrec.features.space import FeatureSpace
from towerrec.features.text import TextVectorizer
from towerrec.layers.embedding import Embedding
from towerrec.layers.features import FeatureConcat, Numeric
from towerrec.layers.mlp import MLP
from towerrec.layers.text import TextEmbedding
from towerrec.metrics.topk import FactorizedTopK
from towerrec.models.base import Batch, Model
from towerrec.tasks.retrieval import Retrieval

FeatureSpec = Mapping[str, Any]
_FEATURE_TYPES = ("embedding", "text", "bag", "numeric", "history")
_NEGATIVES = ("in_batch", "corpus")


# --------------------------------------------------------------------------------------------
# In-batch softmax with duplicate candidates grouped
# --------------------------------------------------------------------------------------------


def _chunk_rows(num_columns: int) -> int:
    # Keep a chunk of logits around 1 MiB of float32 (in cache while it is scored and used).
    return max(16, min(1024, (1 << 18) // max(num_columns, 1)))


class _GroupedSoftmax(torch.autograd.Function):
    """Summed softmax cross-entropy of [B, U] logits `q @ cuᵀ + bias`, with per-row positive
    column `target` and per-row offsets: the denominator's positive column gets
    `denominator_offset`, the positive's own logit `positive_offset`. Gradients are formed
    chunk by chunk in the forward pass (the logits never exist whole)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        query: torch.Tensor,
        cand: torch.Tensor,
        bias: torch.Tensor,
        target: torch.Tensor,
        denominator_offset: torch.Tensor | None,
        positive_offset: torch.Tensor,
        weight: torch.Tensor | None,
    ) -> torch.Tensor:
        b = query.shape[0]
        need_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        grad_q = torch.empty_like(query) if need_grad else None
        grad_c = torch.zeros_like(cand) if need_grad else None
        total = query.new_zeros((), dtype=torch.float64)
        step = _chunk_rows(cand.shape[0])
        ct = cand.T.contiguous()
        for start in range(0, b, step):
            stop = min(start + step, b)
            qc = query[start:stop]
            t = target[start:stop]
            rows = torch.arange(stop - start)
            logits = torch.addmm(bias[None, :], qc, ct)
            if denominator_offset is not None:
                logits[rows, t] += denominator_offset[start:stop]
            positive = logits[rows, t] + positive_offset[start:stop]
            peak = logits.amax(dim=1, keepdim=True)
            expd = logits.sub_(peak).exp_()
            norm = expd.sum(dim=1)
            per_row = peak.squeeze(1) + norm.log() - positive
            w = None if weight is None else weight[start:stop]
            total += (per_row if w is None else per_row * w).sum(dtype=torch.float64)
            if need_grad:
                scale = norm.reciprocal() if w is None else w / norm
                probs = expd.mul_(scale[:, None])
                probs[rows, t] -= 1.0 if w is None else w
                torch.mm(probs, cand, out=grad_q[start:stop])  # type: ignore[index]
                grad_c.addmm_(probs.T, qc)  # type: ignore[union-attr]
        ctx.save_for_backward(grad_q, grad_c)
        return total.to(query.dtype)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        grad_q, grad_c = ctx.saved_tensors
        gq = grad_q * grad_out if grad_q is not None and ctx.needs_input_grad[0] else None
        gc = grad_c * grad_out if grad_c is not None and ctx.needs_input_grad[1] else None
        return gq, gc, None, None, None, None, None


def grouped_in_batch_softmax(
    query: torch.Tensor,
    unique_candidates: torch.Tensor,
    target: torch.Tensor,
    counts: torch.Tensor,
    *,
    sampling_log_prob: torch.Tensor | None = None,
    remove_accidental_hits: bool = False,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """[B, D] queries, [U, D] distinct candidates of the batch, [B] each row's candidate (index
    into U), [U] how many rows have each candidate -> scalar summed in-batch softmax loss.

    Equal, value and gradient, to TFRS's in-batch softmax over the batch's B candidate rows
    (duplicates included), computed over the U distinct candidates: a candidate present n times
    adds `log n` to its logit. Options as TFRS: `sampling_log_prob` [U] (logQ correction:
    subtract each candidate's log sampling probability), `remove_accidental_hits` (other rows
    holding the positive's candidate leave the denominator), `weight` [B] per-row weights.
    Queries should already be divided by any temperature.
    """
    log_n = counts.to(query.dtype).log()
    bias = log_n if sampling_log_prob is None else log_n - sampling_log_prob.to(query.dtype)
    target = target.to(torch.int64)
    own = log_n[target]
    return _GroupedSoftmax.apply(
        query.contiguous(),
        unique_candidates.contiguous(),
        bias.detach().contiguous(),
        target,
        -own if remove_accidental_hits else None,
        torch.zeros_like(own) if remove_accidental_hits else -own,
        None if weight is None else weight.detach().to(query.dtype),
    )


# --------------------------------------------------------------------------------------------
# Feature layers
# --------------------------------------------------------------------------------------------


class HistoryBag(nn.Module):
    """[B] user ids, [B] item ids -> [B, dim]: mean embedding of the user's history items,
    leaving out the example's own item when the user's history holds it.

    The history is kept as CSR buffers (`set_history`: each user's items); every call sums the
    item embeddings of all users with one `embedding_bag` (O(interactions x dim), not per row)
    and subtracts the example's own item where present. Users without (other) history get zeros.
    """

    def __init__(self, num_users: int, num_items: int, dim: int, init_std: float = 0.05) -> None:
        super().__init__()
        self.num_users, self.num_items, self.dim = num_users, num_items, dim
        self.table = Embedding(num_items, dim, init="normal", std=init_std)
        self.register_buffer("indptr", torch.zeros(num_users + 1, dtype=torch.int64))
        self.register_buffer("items", torch.zeros(0, dtype=torch.int64))

    @property
    def output_dim(self) -> int:
        """Size of the last dimension of the output."""
        return self.dim

    def set_history(self, users: torch.Tensor, items: torch.Tensor) -> None:
        """[P] user ids, [P] item ids: the interactions each user's history is made of."""
        users = torch.as_tensor(users, dtype=torch.int64).reshape(-1)
        items = torch.as_tensor(items, dtype=torch.int64).reshape(-1)
        if users.numel() and (int(users.max()) >= self.num_users or int(users.min()) < 0):
            raise ValueError(f"HistoryBag.set_history got user ids outside [0, {self.num_users}).")
        if items.numel() and (int(items.max()) >= self.num_items or int(items.min()) < 0):
            raise ValueError(f"HistoryBag.set_history got item ids outside [0, {self.num_items}).")
        key = torch.unique(users * self.num_items + items)  # sorted by user, then item
        users, items = key // self.num_items, key % self.num_items
        counts = torch.bincount(users, minlength=self.num_users)
        indptr = torch.zeros(self.num_users + 1, dtype=torch.int64)
        indptr[1:] = torch.cumsum(counts, 0)
        self.indptr = indptr
        self.items = items

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any) -> None:
        # The history's length is data-dependent: take the saved buffer's shape.
        saved = state_dict.get(prefix + "items")
        if saved is not None:
            self.items = torch.empty_like(saved)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def contains(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """[B] user ids, [B] item ids -> [B] bool: whether the item is in the user's history."""
        keys = self._keys()
        if len(keys) == 0:
            return torch.zeros(users.shape, dtype=torch.bool)
        key = users * self.num_items + items
        pos = torch.searchsorted(keys, key).clamp(max=len(keys) - 1)
        return keys[pos] == key

    def _keys(self) -> torch.Tensor:
        # Sorted user * num_items + item of every interaction, derived once per history.
        cached = self.__dict__.get("_key_cache")
        if cached is not None and cached[0] is self.items:
            return cached[1]
        counts = self.indptr[1:] - self.indptr[:-1]
        owners = torch.repeat_interleave(torch.arange(self.num_users), counts)
        keys = owners * self.num_items + self.items
        self.__dict__["_key_cache"] = (self.items, keys)
        return keys

    def forward(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        """[B] user ids, optional [B] item ids to leave out -> [B, dim] history means."""
        users = users.reshape(-1).clamp(0, self.num_users - 1)
        weight = self.table.weight
        sums = F.embedding_bag(
            self.items, weight, self.indptr[:-1], mode="sum", include_last_offset=False
        )  # [num_users, dim]
        counts = (self.indptr[1:] - self.indptr[:-1]).to(weight.dtype)
        total = sums[users]
        n = counts[users]
        if items is not None:
            inside = self.contains(users, items.reshape(-1)).to(weight.dtype)
            total = total - inside[:, None] * weight[items.reshape(-1)]
            n = n - inside
        return total / n.clamp(min=1.0)[:, None]

    def extra_repr(self) -> str:
        return f"users={self.num_users}, items={self.num_items}, dim={self.dim}"


class _HistoryFeature(nn.Module):
    """Adapter: reads the user and item keys of a batch for a `HistoryBag` inside FeatureConcat."""

    def __init__(self, bag: HistoryBag, user_key: str, item_key: str) -> None:
        super().__init__()
        self.bag = bag
        self.user_key, self.item_key = user_key, item_key

    @property
    def output_dim(self) -> int:
        return self.bag.dim


def _check_spec(name: str, spec: object) -> dict[str, Any]:
    if not isinstance(spec, Mapping) or spec.get("type") not in _FEATURE_TYPES:
        raise ConfigError(
            f"Feature {name!r} needs a spec dict with 'type' one of {_FEATURE_TYPES}, e.g. "
            f"{{'type': 'embedding', 'size': 944, 'dim': 32}}. Got {spec!r} instead."
        )
    spec = dict(spec)
    kind = spec["type"]
    needed = {
        "embedding": ("size", "dim"),
        "text": ("size", "dim"),
        "bag": ("size", "dim"),
        "numeric": (),
    }.get(kind, ("num_users", "size", "dim"))
    for key in needed:
        value = spec.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(
                f"The {key!r} of feature {name!r} ({kind}) must be a positive int. Got "
                f"{value!r} instead."
            )
    return spec


def feature_layer(name: str, spec: FeatureSpec) -> nn.Module:
    """Build the module of one feature from its spec.

    - `{"type": "embedding", "size": n, "dim": d, "init": "keras"}`: [B] ids -> [B, d];
    - `{"type": "text", "size": n, "dim": d}`: [B, L] token ids (0 = padding) -> [B, d] mean;
    - `{"type": "bag", "size": n, "dim": d}`: the same for any bag of ids, e.g. the user's
      previous items (`previous_items`, ids shifted by one so 0 pads);
    - `{"type": "numeric", "width": 1}`: [B] or [B, w] numbers -> [B, w];
    - `{"type": "history", "num_users": u, "size": n, "dim": d, "user_key": "user_id",
      "item_key": "item"}`: the user's history items' mean embedding (see `HistoryBag`).
    """
    spec = _check_spec(name, spec)
    kind = spec["type"]
    if kind == "embedding":
        return Embedding(spec["size"], spec["dim"], init=spec.get("init", "keras"))
    if kind in ("text", "bag"):
        return TextEmbedding(spec["size"], spec["dim"], init=spec.get("init", "keras"))
    if kind == "numeric":
        return Numeric(spec.get("width", 1))
    bag = HistoryBag(spec["num_users"], spec["size"], spec["dim"], spec.get("init_std", 0.05))
    return _HistoryFeature(bag, spec.get("user_key", "user_id"), spec.get("item_key", "item"))


class _TowerInput(FeatureConcat):
    """FeatureConcat that also feeds history features (which read two batch keys)."""

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        parts = []
        for name, module in self.layers.items():
            if isinstance(module, _HistoryFeature):
                for key in (module.user_key, module.item_key):
                    if key not in batch:
                        raise KeyError(
                            f"The history feature {name!r} needs the batch key {key!r}; the "
                            f"batch has {sorted(batch)}."
                        )
                parts.append(module.bag(batch[module.user_key], batch[module.item_key]))
                continue
            if name not in batch:
                raise KeyError(
                    f"The tower needs the batch key {name!r}; the batch has {sorted(batch)}. "
                    "Transform that feature (FeatureSpace) into the batch."
                )
            parts.append(module(batch[name]))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)


# --------------------------------------------------------------------------------------------
# Towers
# --------------------------------------------------------------------------------------------


class Tower(nn.Module):
    """batch dict -> [B, layer_sizes[-1]]: named features embedded and concatenated, then
    `MLP(layer_sizes)` (ReLU on all but the last layer, Glorot init). Empty `layer_sizes`
    returns the concatenation itself.
    """

    def __init__(
        self,
        features: Mapping[str, FeatureSpec],
        layer_sizes: Sequence[int] = (32,),
        *,
        activation: str = "relu",
        dropout: float = 0.0,
        normalize: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(features, Mapping) or not features:
            raise ConfigError(
                f"A Tower needs a non-empty dict of feature name -> spec. Got {features!r}."
            )
        self.inputs = _TowerInput({n: feature_layer(n, s) for n, s in features.items()})
        sizes = list(layer_sizes)
        self.mlp: MLP | None = None
        if sizes:
            self.mlp = MLP(
                sizes, in_features=self.inputs.output_dim, activation=activation, dropout=dropout
            )
        self.normalize = normalize
        self.config = {
            "features": {n: dict(s) for n, s in features.items()},
            "layer_sizes": sizes,
            "activation": activation,
            "dropout": dropout,
            "normalize": normalize,
        }

    @property
    def output_dim(self) -> int:
        """Size of the tower's output."""
        return self.mlp.output_dim if self.mlp is not None else self.inputs.output_dim

    def history_bags(self) -> list[HistoryBag]:
        """The history features of this tower."""
        return [m for m in self.modules() if isinstance(m, HistoryBag)]

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """batch of [B, ...] features -> [B, output_dim]."""
        x = self.inputs(batch)
        if self.mlp is not None:
            x = self.mlp(x)
        return F.normalize(x, dim=-1) if self.normalize else x


class QueryModel(Tower):
    """The tutorial's query tower: batch of [B] `user_id`, [B] `timestamp_bucket`, [B]
    `timestamp_norm` -> [B, layer_sizes[-1]].

    user-id embedding (`dim`) ‖ timestamp-bucket embedding (`dim`) ‖ normalised timestamp (1)
    -> `MLP(layer_sizes)`.
    """

    def __init__(
        self,
        num_users: int,
        num_timestamp_buckets: int,
        layer_sizes: Sequence[int] = (32,),
        dim: int = 32,
    ) -> None:
        super().__init__(
            tutorial_query_features(num_users, num_timestamp_buckets, dim), layer_sizes
        )


class CandidateModel(Tower):
    """The tutorial's candidate tower: batch of [B] `title_id`, [B, L] `title_tokens` ->
    [B, layer_sizes[-1]].

    title-id embedding (`dim`) ‖ mean of the title's token embeddings (`dim`, padding masked)
    -> `MLP(layer_sizes)`.
    """

    def __init__(
        self, num_titles: int, num_tokens: int, layer_sizes: Sequence[int] = (32,), dim: int = 32
    ) -> None:
        super().__init__(tutorial_candidate_features(num_titles, num_tokens, dim), layer_sizes)


def tutorial_query_features(
    num_users: int, num_timestamp_buckets: int, dim: int = 32
) -> dict[str, dict[str, Any]]:
    """The tutorial's query feature specs (user id, timestamp bucket, normalised timestamp)."""
    return {
        "user_id": {"type": "embedding", "size": num_users, "dim": dim},
        "timestamp_bucket": {"type": "embedding", "size": num_timestamp_buckets, "dim": dim},
        "timestamp_norm": {"type": "numeric", "width": 1},
    }


def tutorial_candidate_features(
    num_titles: int, num_tokens: int, dim: int = 32
) -> dict[str, dict[str, Any]]:
    """The tutorial's candidate feature specs (title id, title tokens)."""
    return {
        "title_id": {"type": "embedding", "size": num_titles, "dim": dim},
        "title_tokens": {"type": "text", "size": num_tokens, "dim": dim},
    }


# --------------------------------------------------------------------------------------------
# Corpus buffers
# --------------------------------------------------------------------------------------------


class _Corpus(nn.Module):
    """The candidate features of every corpus row, as buffers (shapes set by `set`)."""

    def set(self, features: Mapping[str, torch.Tensor]) -> None:
        for name in list(self._buffers):
            del self._buffers[name]
        lengths = {k: len(v) for k, v in features.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"Every corpus feature needs one row per candidate; got {lengths}.")
        for name, value in features.items():
            self.register_buffer(name, torch.as_tensor(value).clone())

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any) -> None:
        names = [k[len(prefix) :] for k in state_dict if k.startswith(prefix)]
        for name in names:
            if "." not in name:
                self.register_buffer(name, torch.empty_like(state_dict[prefix + name]))
        super()._load_from_state_dict(state_dict, prefix, *args)

    def features(self) -> dict[str, torch.Tensor]:
        """{name: [N, ...] tensor}."""
        return dict(self._buffers.items())  # type: ignore[arg-type]

    def __len__(self) -> int:
        return next((len(v) for v in self._buffers.values() if v is not None), 0)


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


class DeepRetrievalModel(Model):
    """A two-tower retrieval model with feature-rich towers and a corpus kept in the model.

    `query_features` / `candidate_features` are feature specs (see `feature_layer`); both
    towers end in `MLP(layer_sizes)` (or their own `query_layer_sizes` / `candidate_layer_sizes`).
    A batch holds the query features and `candidate_key`: the corpus row of each example's
    candidate; candidate features are read from the corpus (`set_corpus`, a dict of `[N, ...]`
    tensors, e.g. `build_corpus(space, items)`).

    Training options (all plain data, recorded in `config`):

    - `negatives="in_batch"` (TFRS): softmax over the batch's candidates, summed. With
      `grouped` (default) the batch's duplicate candidates are collapsed into one column each
      with a `log(count)` offset, which gives exactly the same loss and gradients at a fraction
      of the cost (a batch of 2,048 MovieLens ratings holds about 800 distinct movies);
      `grouped=False` calls the `Retrieval` task instead. `logq_correction` subtracts each
      candidate's log sampling probability (its training frequency, `set_candidate_counts`);
      `remove_accidental_hits` leaves other rows holding the positive's candidate out.
      `negatives="corpus"`: the exact softmax over every corpus candidate.
    - `candidate_bias`: a learned per-candidate score offset (folded into the embeddings as
      an extra coordinate, so dot-product indexes serve it).
    - `temperature`, `dropout` (between dense layers), `l2` (on each batch's tower outputs),
      `normalize` (L2-normalised tower outputs, best with a temperature), `reduction` ("sum"
      as TFRS, or "mean"), `weight_key` (a batch key of per-example weights).

    Validation and `evaluate` update `FactorizedTopK` over the whole corpus (`candidate_corpus`,
    recomputed once per evaluation).
    """

    def __init__(
        self,
        query_features: Mapping[str, FeatureSpec],
        candidate_features: Mapping[str, FeatureSpec],
        layer_sizes: Sequence[int] = (32,),
        *,
        query_layer_sizes: Sequence[int] | None = None,
        candidate_layer_sizes: Sequence[int] | None = None,
        candidate_key: str = "item",
        negatives: str = "in_batch",
        logq_correction: bool = False,
        remove_accidental_hits: bool = False,
        candidate_bias: bool = False,
        temperature: float | None = None,
        dropout: float = 0.0,
        normalize: bool = False,
        l2: float = 0.0,
        reduction: str = "sum",
        grouped: bool = True,
        weight_key: str | None = None,
        ks: Sequence[int] = (1, 5, 10, 50, 100),
        corpus_chunk: int = 8192,
    ) -> None:
        super().__init__()
        if negatives not in _NEGATIVES:
            raise ConfigError(
                f"The 'negatives' parameter of DeepRetrievalModel must be one of {_NEGATIVES}. "
                f"Got {negatives!r} instead."
            )
        if not isinstance(l2, int | float) or l2 < 0:
            raise ConfigError(
                f"The 'l2' parameter of DeepRetrievalModel must be a number >= 0. Got {l2!r}."
            )
        q_sizes = list(layer_sizes if query_layer_sizes is None else query_layer_sizes)
        c_sizes = list(layer_sizes if candidate_layer_sizes is None else candidate_layer_sizes)
        self.config: dict[str, Any] = {
            "query_features": {n: dict(s) for n, s in query_features.items()},
            "candidate_features": {n: dict(s) for n, s in candidate_features.items()},
            "layer_sizes": list(layer_sizes),
            "query_layer_sizes": q_sizes,
            "candidate_layer_sizes": c_sizes,
            "candidate_key": candidate_key,
            "negatives": negatives,
            "logq_correction": logq_correction,
            "remove_accidental_hits": remove_accidental_hits,
            "candidate_bias": candidate_bias,
            "temperature": temperature,
            "dropout": dropout,
            "normalize": normalize,
            "l2": l2,
            "reduction": reduction,
            "grouped": grouped,
            "weight_key": weight_key,
            "ks": list(ks),
            "corpus_chunk": corpus_chunk,
        }
        self.query_model = Tower(query_features, q_sizes, dropout=dropout, normalize=normalize)
        self.candidate_model = Tower(
            candidate_features, c_sizes, dropout=dropout, normalize=normalize
        )
        if self.query_model.output_dim != self.candidate_model.output_dim:
            raise ConfigError(
                f"The query and candidate towers must end in the same size; got "
                f"{self.query_model.output_dim} and {self.candidate_model.output_dim}. Make the "
                "last entries of their layer sizes equal."
            )
        self.corpus = _Corpus()
        self.register_buffer("candidate_log_prob", torch.zeros(0))
        self.candidate_bias: nn.Parameter | None = None
        if candidate_bias:
            self.candidate_bias = nn.Parameter(torch.zeros(0))
        self.candidate_key = candidate_key
        self.negatives = negatives
        self.logq_correction = logq_correction
        self.temperature = temperature
        self.l2 = float(l2)
        self.reduction = reduction
        self.grouped = grouped
        self.weight_key = weight_key
        self.corpus_chunk = corpus_chunk
        self.retrieval_task = Retrieval(
            metrics=FactorizedTopK(self.candidate_corpus, ks=tuple(ks)),
            temperature=temperature,
            remove_accidental_hits=remove_accidental_hits,
            reduction=reduction,
        )

    # -- data held by the model -------------------------------------------------------------
    def set_corpus(self, features: Mapping[str, torch.Tensor]) -> DeepRetrievalModel:
        """{candidate feature: [N, ...] tensor}: the features of every corpus row (row = id).

        Resets the candidate biases and sampling probabilities to match the corpus size.
        """
        missing = [n for n in self.candidate_model.inputs.names if n not in features]
        if missing:
            raise KeyError(
                f"set_corpus needs every candidate feature; missing {missing} (got "
                f"{sorted(features)})."
            )
        self.corpus.set({n: features[n] for n in self.candidate_model.inputs.names})
        n = len(self.corpus)
        self.candidate_log_prob = torch.full((n,), -float(np.log(max(n, 1))))
        if self.candidate_bias is not None:
            self.candidate_bias = nn.Parameter(torch.zeros(n))
        return self

    def set_candidate_counts(self, counts: torch.Tensor) -> DeepRetrievalModel:
        """[N] interactions per corpus row (training data): the sampling probabilities used by
        `logq_correction`, and the initial candidate biases (log frequency) when present."""
        counts = torch.as_tensor(counts, dtype=torch.float64).reshape(-1)
        if len(counts) != len(self.corpus):
            raise ValueError(
                f"set_candidate_counts needs one count per corpus row ({len(self.corpus)}); "
                f"got {len(counts)}. Call set_corpus first."
            )
        prob = (counts + 1e-3) / (counts + 1e-3).sum()
        self.candidate_log_prob = prob.log().to(torch.float32)
        return self

    def set_history(self, users: torch.Tensor, items: torch.Tensor) -> DeepRetrievalModel:
        """[P] user ids, [P] corpus rows: the interactions behind every history feature."""
        bags = self.query_model.history_bags() + self.candidate_model.history_bags()
        if not bags:
            raise ValueError("This model has no history feature; nothing to set.")
        for bag in bags:
            bag.set_history(users, items)
        return self

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any) -> None:
        for name in ("candidate_log_prob", "candidate_bias"):
            saved = state_dict.get(prefix + name)
            if saved is None:
                continue
            if name == "candidate_bias" and self.candidate_bias is not None:
                self.candidate_bias = nn.Parameter(torch.empty_like(saved))
            elif name == "candidate_log_prob":
                self.candidate_log_prob = torch.empty_like(saved)
        super()._load_from_state_dict(state_dict, prefix, *args)

    # -- embeddings -------------------------------------------------------------------------
    def query_embeddings(self, batch: Batch) -> torch.Tensor:
        """batch of query features -> [B, D] query embeddings (D + 1 with candidate biases)."""
        q = self.query_model(batch)
        if self.candidate_bias is not None:
            q = torch.cat([q, torch.ones_like(q[:, :1])], dim=1)
        return q

    def candidate_embeddings(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Optional [B] corpus rows -> [B, D] (all rows: [N, D]) candidate embeddings."""
        feats = self.corpus.features()
        if not feats:
            raise ValueError(
                "DeepRetrievalModel has no corpus: call set_corpus(build_corpus(space, items))."
            )
        if rows is not None:
            feats = {k: v.index_select(0, rows) for k, v in feats.items()}
            c = self.candidate_model(feats)
        else:
            n = len(self.corpus)
            parts = [
                self.candidate_model({k: v[s : s + self.corpus_chunk] for k, v in feats.items()})
                for s in range(0, n, self.corpus_chunk)
            ]
            c = parts[0] if len(parts) == 1 else torch.cat(parts)
        if self.candidate_bias is not None:
            bias = self.candidate_bias if rows is None else self.candidate_bias[rows]
            c = torch.cat([c, bias[:, None]], dim=1)
        return c

    def candidate_corpus(self) -> tuple[torch.Tensor, torch.Tensor]:
        """-> ([N, D] every corpus candidate's embedding, [N] ids = corpus rows)."""
        return self.candidate_embeddings(), torch.arange(len(self.corpus))

    # -- loss -------------------------------------------------------------------------------
    def _penalty(self, q: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return q.pow(2).sum(dim=1).mean() + c.pow(2).sum(dim=1).mean()

    def _update_metrics(self, q: torch.Tensor, c: torch.Tensor, rows: torch.Tensor) -> None:
        for m in self.retrieval_task.metrics:
            if isinstance(m, FactorizedTopK):
                m.update(q, c, true_candidate_ids=rows)
            else:
                m.update(q, c)

    def compute_loss(self, batch: Batch, training: bool = False) -> torch.Tensor:
        """batch of query features and [B] `candidate_key` corpus rows -> scalar loss."""
        if self.candidate_key not in batch:
            raise KeyError(
                f"DeepRetrievalModel needs the batch key {self.candidate_key!r} (the corpus row "
                f"of each example's candidate); the batch has {sorted(batch)}."
            )
        rows = batch[self.candidate_key]
        q = self.query_embeddings(batch)
        n = len(self.corpus)
        compute = not training
        if self.negatives == "corpus":
            corpus = self.candidate_embeddings()
            qt = q if self.temperature is None else q / self.temperature
            weight = batch.get(self.weight_key) if self.weight_key else None
            # The exact softmax over the corpus: every candidate once, no correction.
            loss = grouped_in_batch_softmax(
                qt, corpus, rows, torch.ones(n, dtype=torch.int64), weight=weight
            )
            if self.reduction == "mean":
                loss = loss / len(rows)
            c = corpus.index_select(0, rows)
            if compute:
                self._update_metrics(q, c, rows)
        elif self.grouped:
            uniq, target, counts = torch.unique(rows, return_inverse=True, return_counts=True)
            cu = self.candidate_embeddings(uniq)
            c = cu.index_select(0, target)
            qt = q if self.temperature is None else q / self.temperature
            weight = batch.get(self.weight_key) if self.weight_key else None
            loss = grouped_in_batch_softmax(
                qt,
                cu,
                target,
                counts,
                sampling_log_prob=self.candidate_log_prob[uniq] if self.logq_correction else None,
                remove_accidental_hits=self.retrieval_task.remove_accidental_hits,
                weight=weight,
            )
            if self.reduction == "mean":
                loss = loss / len(rows)
            if compute:
                self._update_metrics(q, c, rows)
        else:
            if n <= len(rows):  # cheaper to run the tower over the corpus once and gather
                c = self.candidate_embeddings().index_select(0, rows)
            else:
                c = self.candidate_embeddings(rows)
            prob = self.candidate_log_prob[rows].exp() if self.logq_correction else None
            loss = self.retrieval_task(
                q,
                c,
                sample_weight=batch.get(self.weight_key) if self.weight_key else None,
                candidate_sampling_probability=prob,
                candidate_ids=rows,
                compute_metrics=compute,
            )
        if training and self.l2 > 0:
            loss = loss + self.l2 * self._penalty(q, c)
        return loss

    # -- serving ----------------------------------------------------------------------------
    def serving_features(self) -> dict[str, Any]:
        """The feature names `towerrec.serving.export` needs for this model: `query_features`
        (what the query tower reads), `user_feature` ("user_id" when the tower reads it) and
        `item_feature` (the corpus-row feature, `candidate_key`)."""
        names = list(self.query_model.inputs.names)
        return {
            "query_features": names,
            "user_feature": "user_id" if "user_id" in names else None,
            "item_feature": self.candidate_key,
        }

    # -- persistence ------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DeepRetrievalModel:
        """Build a model (untrained, no corpus) from `config`."""
        config = copy.deepcopy(dict(config))
        query_features = config.pop("query_features")
        candidate_features = config.pop("candidate_features")
        layer_sizes = config.pop("layer_sizes")
        return cls(query_features, candidate_features, layer_sizes, **config)

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write `config.json` and `weights.safetensors` (weights, corpus, history) to a folder."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_json(directory / "config.json", {"type": "DeepRetrievalModel", **self.config})
        tensors = {k: v.detach().contiguous().clone() for k, v in self.state_dict().items()}
        tmp = directory / ".weights.safetensors.tmp"
        save_file(tensors, str(tmp))
        os.replace(tmp, directory / "weights.safetensors")

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> DeepRetrievalModel:
        """Read a model written by `save`."""
        from safetensors.torch import load_file

        directory = Path(directory)
        config = read_json(directory / "config.json")
        if not isinstance(config, dict) or config.pop("type", None) != "DeepRetrievalModel":
            raise ConfigError(f"{directory / 'config.json'} is not a DeepRetrievalModel config.")
        model = cls.from_config(config)
        model.load_state_dict(load_file(str(directory / "weights.safetensors")))
        model.eval()
        return model


# --------------------------------------------------------------------------------------------
# Features and corpus from MovieLens frames
# --------------------------------------------------------------------------------------------


def tutorial_space(max_tokens: int = 10_000, num_timestamp_buckets: int = 1000) -> FeatureSpace:
    """The tutorial's features, unfitted: `user_id` (Lookup), `timestamp_bucket` (1,000
    `np.linspace` boundaries), `timestamp_norm` (Normalize), `item` (corpus row: Lookup of
    `item_id` without OOV), `title_id` (Lookup of titles), `title_tokens` (TextVectorizer).

    Fit it on the ratings (user ids, timestamps) and the items frame (item ids, titles):
    `tutorial_space().fit(ratings, items)`.
    """
    return FeatureSpace(
        {
            "user_id": Lookup(),
            "timestamp_bucket": Discretize(
                num_bins=num_timestamp_buckets, strategy="linspace", column="timestamp"
            ),
            "timestamp_norm": Normalize(column="timestamp"),
            "item": Lookup(num_oov_buckets=0, column="item_id"),
            "title_id": Lookup(column="title"),
            "title_tokens": TextVectorizer(max_tokens=max_tokens, column="title"),
        }
    )


def build_corpus(
    space: FeatureSpace,
    items: pd.DataFrame,
    names: Sequence[str] | None = None,
    item_feature: str = "item",
) -> dict[str, torch.Tensor]:
    """items frame -> {candidate feature: [N, ...] tensor}, row r holding the item whose
    `item_feature` id is r (so corpus rows and the batch's candidate ids agree).

    `names` are the candidate features to transform (default: every feature whose column the
    frame has, except `item_feature`). The `item_feature` Lookup must have no OOV bucket and
    every item must appear once.
    """
    lookup = space[item_feature]
    rows = space.transform(items, names=[item_feature])[item_feature]
    size = lookup.size
    if len(rows) != size or len(torch.unique(rows)) != size:
        raise ValueError(
            f"build_corpus needs each of the {size} ids of feature {item_feature!r} exactly once "
            f"in the items frame; got {len(rows)} rows with {len(torch.unique(rows))} distinct "
            "ids. Fit that Lookup (num_oov_buckets=0) on the items frame."
        )
    if names is None:
        cols = set(items.columns)
        names = [n for n in space.names if n != item_feature and space.column_of(n) in cols]
    feats = space.transform(items, names=list(names))
    order = torch.argsort(rows)
    return {k: v.index_select(0, order) for k, v in feats.items()}


def previous_items(
    history: pd.DataFrame,
    history_items: torch.Tensor | np.ndarray,
    queries: pd.DataFrame,
    k: int = 10,
    *,
    user_col: str = "user_id",
    time_col: str = "timestamp",
) -> torch.Tensor:
    """History frame ([P] users and times), [P] item ids, query frame ([Q] users and times) ->
    [Q, k] int64: ids + 1 of the user's last `k` history interactions strictly before the query
    time, most recent first, 0 where there are fewer (a `bag` feature of `size` items + 1).

    Strictly before: an interaction never sees itself (nor others of the same second), and a
    query only sees its past, as a recommender serving at that time would.
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"The 'k' parameter of previous_items must be a positive int. Got {k!r}.")
    items = np.asarray(
        history_items.cpu().numpy() if isinstance(history_items, torch.Tensor) else history_items
    ).astype(np.int64)
    if len(items) != len(history):
        raise ValueError(
            f"previous_items got {len(history)} history rows and {len(items)} item ids; give one "
            "item id per history row."
        )
    for frame, name in ((history, "history"), (queries, "queries")):
        for col in (user_col, time_col):
            if col not in frame.columns:
                raise KeyError(
                    f"previous_items: the {name} frame has no column {col!r} (columns: "
                    f"{list(frame.columns)})."
                )
    hu, qu = history[user_col].to_numpy(), queries[user_col].to_numpy()
    ht = history[time_col].to_numpy().astype(np.int64)
    qt = queries[time_col].to_numpy().astype(np.int64)
    out = np.zeros((len(queries), k), dtype=np.int64)
    if len(history) == 0 or len(queries) == 0:
        return torch.from_numpy(out)
    _, codes = np.unique(np.concatenate([hu, qu]), return_inverse=True)
    hc, qc = codes[: len(hu)].astype(np.int64), codes[len(hu) :].astype(np.int64)
    t0 = min(ht.min(), qt.min())
    span = int(max(ht.max(), qt.max()) - t0) + 1
    hkey = hc * span + (ht - t0)
    order = np.argsort(hkey, kind="stable")
    sorted_keys, sorted_items = hkey[order], items[order]
    pos = np.searchsorted(sorted_keys, qc * span + (qt - t0), side="left")
    start = np.searchsorted(sorted_keys, qc * span, side="left")
    idx = pos[:, None] - 1 - np.arange(k)[None, :]
    ok = idx >= start[:, None]
    out[ok] = sorted_items[idx[ok]] + 1
    return torch.from_numpy(out)


TUTORIAL_QUERY_KEYS = ("user_id", "timestamp_bucket", "timestamp_norm", "item")


def tutorial_datasets(
    ratings: pd.DataFrame,
    items: pd.DataFrame,
    train_fraction: float = 0.8,
    seed: int = 42,
) -> tuple[FeatureSpace, dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """MovieLens ratings and items frames -> (fitted space, corpus, train, test) as the tutorial.

    The ratings are shuffled with a seeded permutation and cut `train_fraction` / rest
    (`random_split`); the features are fitted on every rating and item (as the tutorial adapts
    its layers on the whole dataset); train and test hold `TUTORIAL_QUERY_KEYS`.
    """
    from towerrec.data.splits import random_split

    train_frame, test_frame = random_split(ratings, train=train_fraction, seed=seed)
    space = tutorial_space().fit(ratings, items)
    corpus = build_corpus(space, items, names=["title_id", "title_tokens"])
    keys = list(TUTORIAL_QUERY_KEYS)
    return (
        space,
        corpus,
        space.transform(train_frame, names=keys),
        space.transform(test_frame, names=keys),
    )


def tutorial_model(
    space: FeatureSpace,
    corpus: Mapping[str, torch.Tensor],
    layer_sizes: Sequence[int] = (32,),
    dim: int = 32,
) -> DeepRetrievalModel:
    """The tutorial's model for a fitted `tutorial_space()` and its `build_corpus` corpus."""
    model = DeepRetrievalModel(
        tutorial_query_features(space["user_id"].size, space["timestamp_bucket"].size, dim),
        tutorial_candidate_features(space["title_id"].size, space["title_tokens"].size, dim),
        layer_sizes,
    )
    return model.set_corpus(corpus)


__all__ = [
    "TUTORIAL_QUERY_KEYS",
    "CandidateModel",
    "DeepRetrievalModel",
    "HistoryBag",
    "QueryModel",
    "Tower",
    "build_corpus",
    "feature_layer",
    "grouped_in_batch_softmax",
    "previous_items",
    "tutorial_candidate_features",
    "tutorial_datasets",
    "tutorial_model",
    "tutorial_query_features",
    "tutorial_space",
]
