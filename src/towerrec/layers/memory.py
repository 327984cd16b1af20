"""Memory-efficient id embeddings: quotient-remainder, mixed-dimension and hashed tables.

All three are drop-in replacements for `towerrec.layers.Embedding`: `forward(ids [...]) ->
[..., output_dim]`, an `output_dim` property, and all state (tables, projections, the id -> rank
mapping) in the module's `state_dict`.

- `QREmbedding`: compositional embeddings from complementary partitions (Shi et al., 2020). Id
  `i` maps to `(i // num_buckets, i % num_buckets)`; the two rows are combined, so every id has
  its own vector from `ceil(N / num_buckets) + num_buckets` rows instead of `N`.
- `MixedDimEmbedding`: mixed-dimension embeddings (Ginart et al., 2021). Ids are grouped into
  blocks by popularity; each block has a table of its own width and a projection to `base_dim`.
  `frequency_blocks` and `alpha_power_dims` build the blocks and widths from id counts.
- `HashEmbedding`: open-vocabulary ids (any int64) hashed by `num_hashes` seeded functions into
  one shared table, the rows summed. Deterministic across processes and machines.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

Init = Literal["keras", "normal", "xavier"]
Combiner = Literal["mul", "add", "concat"]

_MASK64 = (1 << 64) - 1


def _check_int(name: str, owner: str, value: object, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(
            f"The '{name}' parameter of {owner} must be {kind}. Got {value!r} instead."
        )
    return value


def _init_table(weight: torch.Tensor, init: str, std: float, owner: str) -> None:
    with torch.no_grad():
        if init == "keras":
            nn.init.uniform_(weight, -0.05, 0.05)
        elif init == "normal":
            nn.init.normal_(weight, 0.0, std)
        elif init == "xavier":
            nn.init.xavier_uniform_(weight)
        else:
            raise ValueError(
                f"The 'init' parameter of {owner} must be one of 'keras', 'normal', 'xavier'. "
                f"Got {init!r} instead."
            )


def _check_ids(ids: torch.Tensor, size: int, owner: str) -> None:
    if ids.dtype.is_floating_point or ids.dtype == torch.bool or ids.is_complex():
        raise TypeError(
            f"{owner} expects integer ids; got a tensor of dtype {ids.dtype}. "
            "Map raw ids to integers first (towerrec.features.Lookup)."
        )
    if ids.numel() == 0:
        return
    lo, hi = torch.aminmax(ids)
    if int(lo) < 0 or int(hi) >= size:
        raise IndexError(
            f"{owner} got ids in [{int(lo)}, {int(hi)}] but has {size} embeddings; ids must lie "
            f"in [0, {size - 1}]. Size the layer from the fitted vocabulary (including its OOV "
            "bucket)."
        )


# --------------------------------------------------------------------------------------------
# Quotient-remainder
# --------------------------------------------------------------------------------------------


class QREmbedding(nn.Module):
    """[...] int ids in [0, num_embeddings) -> [..., dim]: quotient-remainder embedding.

    Id `i` looks up row `i // num_buckets` of a quotient table (`ceil(num_embeddings /
    num_buckets)` rows) and row `i % num_buckets` of a remainder table (`num_buckets` rows).
    The pair is unique per id, so each id gets its own vector: the two rows are combined by
    elementwise product (`"mul"`, the default and the Keras example's choice), sum (`"add"`) or
    concatenation (`"concat"`: each table then has `dim // 2` columns, so `dim` must be even).

    Parameters: `(ceil(N / num_buckets) + num_buckets) * table_dim`, with `table_dim = dim`
    (`mul`, `add`) or `dim // 2` (`concat`). With `num_buckets = ceil(sqrt(N))` that is at most
    `2 * num_buckets * dim`, exactly so when `N` is a perfect square (e.g. 1,000 ids, 32 buckets,
    dim 8: `(32 + 32) * 8 = 512` instead of 8,000).

    `num_buckets` is the number of REMAINDER rows, as in the Keras memory-efficient-embeddings
    example (`num_buckets = users // 50`). Unlike that example, whose quotient table also has
    `num_buckets` rows (too few whenever `N > num_buckets ** 2`), the quotient table here has
    exactly the rows the ids need. Both tables are initialised like Keras' `Embedding`
    (U(-0.05, 0.05)) by default.
    """

    def __init__(
        self,
        num_embeddings: int,
        dim: int,
        num_buckets: int,
        combiner: Combiner = "mul",
        *,
        init: Init = "keras",
        std: float = 0.05,
        sparse: bool = False,
    ) -> None:
        super().__init__()
        _check_int("num_embeddings", "QREmbedding", num_embeddings)
        _check_int("dim", "QREmbedding", dim)
        _check_int("num_buckets", "QREmbedding", num_buckets)
        if num_buckets > num_embeddings:
            raise ValueError(
                "The 'num_buckets' parameter of QREmbedding must not exceed num_embeddings "
                f"({num_embeddings}). Got {num_buckets} instead; use towerrec.layers.Embedding "
                "for a full table, or fewer buckets (e.g. ceil(sqrt(num_embeddings)))."
            )
        if combiner not in ("mul", "add", "concat"):
            raise ValueError(
                "The 'combiner' parameter of QREmbedding must be one of 'mul', 'add', 'concat'. "
                f"Got {combiner!r} instead."
            )
        if combiner == "concat" and dim % 2:
            raise ValueError(
                "The 'dim' parameter of QREmbedding must be even with combiner='concat' (each "
                f"table holds dim / 2 columns). Got {dim} instead; use an even dim or "
                "combiner='mul'."
            )
        self.num_embeddings = num_embeddings
        self.dim = dim
        self.num_buckets = num_buckets
        self.combiner = combiner
        table_dim = dim // 2 if combiner == "concat" else dim
        num_quotients = math.ceil(num_embeddings / num_buckets)
        self.quotient = nn.Embedding(num_quotients, table_dim, sparse=sparse)
        self.remainder = nn.Embedding(num_buckets, table_dim, sparse=sparse)
        _init_table(self.quotient.weight, init, std, "QREmbedding")
        _init_table(self.remainder.weight, init, std, "QREmbedding")

    @property
    def output_dim(self) -> int:
        """Size of the last dimension of the output."""
        return self.dim

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """[...] int64 ids -> [..., dim] float vectors."""
        _check_ids(ids, self.num_embeddings, "QREmbedding")
        q = self.quotient(torch.div(ids, self.num_buckets, rounding_mode="floor"))
        r = self.remainder(torch.remainder(ids, self.num_buckets))
        if self.combiner == "mul":
            return q * r
        if self.combiner == "add":
            return q + r
        return torch.cat([q, r], dim=-1)

    def extra_repr(self) -> str:
        return (
            f"{self.num_embeddings}, {self.dim}, num_buckets={self.num_buckets}, "
            f"combiner={self.combiner!r}"
        )


# --------------------------------------------------------------------------------------------
# Mixed dimensions
# --------------------------------------------------------------------------------------------


def frequency_blocks(
    counts: Sequence[int] | Sequence[float] | torch.Tensor,
    block_sizes: Sequence[int] | None = None,
    num_blocks: int | None = None,
) -> tuple[torch.Tensor, list[int]]:
    """[N] counts per id -> ([N] int64 rank of each id, block sizes): popularity blocks.

    Ids are ranked by count, most frequent first, ties broken by the smaller id (rank 0 is the
    most frequent id). Give either `block_sizes` (must sum to N; the first block holds the most
    popular ids) or `num_blocks`: then the blocks split the ranked ids so that each holds about
    the same share of all occurrences (every block at least one id), which gives few ids to the
    head blocks and many to the tail. With neither, one block holds everything.

    Example: `counts = [5, 50, 0, 50, 1]` ranks ids as 1, 3, 0, 4, 2 (tie 1/3 by id), so
    `rank_of_id = [2, 0, 4, 1, 3]`; `num_blocks=2` splits the 106 occurrences into halves:
    `block_sizes = [1, 4]`.
    """
    c = torch.as_tensor(counts, dtype=torch.float64).reshape(-1)
    n = c.numel()
    if n == 0:
        raise ValueError("frequency_blocks needs at least one id; got an empty 'counts'.")
    if bool((c < 0).any()) or not bool(torch.isfinite(c).all()):
        raise ValueError("The 'counts' parameter of frequency_blocks must be finite and >= 0.")
    if block_sizes is not None and num_blocks is not None:
        raise ValueError("frequency_blocks takes either 'block_sizes' or 'num_blocks', not both.")
    # Stable sort of -counts: descending count, ties in ascending id order.
    order = torch.sort(-c, stable=True).indices
    rank_of_id = torch.empty(n, dtype=torch.int64)
    rank_of_id[order] = torch.arange(n, dtype=torch.int64)
    if block_sizes is not None:
        sizes = [int(s) for s in block_sizes]
        if any(s < 1 for s in sizes) or sum(sizes) != n:
            raise ValueError(
                "The 'block_sizes' parameter of frequency_blocks must be positive ints summing "
                f"to the number of ids ({n}). Got {list(block_sizes)!r} (sum {sum(sizes)}) "
                "instead."
            )
        return rank_of_id, sizes
    if num_blocks is None:
        return rank_of_id, [n]
    _check_int("num_blocks", "frequency_blocks", num_blocks)
    if num_blocks > n:
        raise ValueError(
            f"The 'num_blocks' parameter of frequency_blocks must be at most the number of ids "
            f"({n}). Got {num_blocks} instead."
        )
    sorted_counts = c[order]
    total = float(sorted_counts.sum())
    if total <= 0:
        cuts = [round(n * b / num_blocks) for b in range(1, num_blocks)]
    else:
        cum = torch.cumsum(sorted_counts, 0)
        targets = torch.tensor([total * b / num_blocks for b in range(1, num_blocks)])
        # Each block ends where the running total comes closest to its share (first on ties).
        cuts = ((cum[None, :] - targets[:, None]).abs().argmin(dim=1) + 1).tolist()
    ends: list[int] = []
    prev = 0
    for b, cut in enumerate(cuts):
        # Keep every block non-empty and leave room for the blocks still to come.
        end = min(max(int(cut), prev + 1), n - (num_blocks - 1 - b))
        ends.append(end)
        prev = end
    ends.append(n)
    starts = [0, *ends[:-1]]
    return rank_of_id, [e - s for s, e in zip(starts, ends, strict=True)]


def alpha_power_dims(
    block_counts: Sequence[float] | torch.Tensor,
    base_dim: int,
    alpha: float = 0.3,
    min_dim: int = 1,
    *,
    block_sizes: Sequence[int] | None = None,
) -> list[int]:
    """Per-block embedding widths by the alpha-power rule of mixed-dimension embeddings.

    Block `i` has popularity `p_i`, the mean occurrence count (or probability) of one of its ids:
    `block_counts[i] / block_sizes[i]` when `block_sizes` is given (block_counts are then the
    blocks' total counts), else `block_counts[i]` itself. Widths are proportional to
    `p_i ** alpha`, scaled so the most popular block gets exactly `base_dim`:
    `d_i = max(min_dim, round(base_dim * (p_i / max(p)) ** alpha))`. `alpha = 0` gives every
    block `base_dim`; `alpha = 1` makes widths proportional to popularity.

    Hand-checkable example: three blocks of 10, 100 and 1,000 ids with 1,000 occurrences each
    have mean counts 100, 10 and 1, i.e. ratios 1, 0.1, 0.01 to the top block. With
    `base_dim=64, alpha=0.3`: 64, 64 * 0.1**0.3 = 32.08 -> 32, 64 * 0.01**0.3 = 16.08 -> 16,
    i.e. `[64, 32, 16]`; with `alpha=0.5`: 64, 20.24 -> 20, 6.4 -> 6, i.e. `[64, 20, 6]`.
    """
    p = torch.as_tensor(block_counts, dtype=torch.float64).reshape(-1)
    if p.numel() == 0:
        raise ValueError("alpha_power_dims needs at least one block; got empty 'block_counts'.")
    _check_int("base_dim", "alpha_power_dims", base_dim)
    _check_int("min_dim", "alpha_power_dims", min_dim)
    if min_dim > base_dim:
        raise ValueError(
            f"The 'min_dim' parameter of alpha_power_dims must not exceed base_dim ({base_dim}). "
            f"Got {min_dim} instead."
        )
    if not (isinstance(alpha, int | float) and math.isfinite(alpha) and alpha >= 0):
        raise ValueError(
            f"The 'alpha' parameter of alpha_power_dims must be a float >= 0. Got {alpha!r} "
            "instead."
        )
    if block_sizes is not None:
        sizes = torch.as_tensor(list(block_sizes), dtype=torch.float64)
        if sizes.numel() != p.numel() or bool((sizes < 1).any()):
            raise ValueError(
                "The 'block_sizes' parameter of alpha_power_dims must hold one positive size per "
                f"block ({p.numel()}). Got {list(block_sizes)!r} instead."
            )
        p = p / sizes
    if bool((p < 0).any()) or not bool(torch.isfinite(p).all()) or float(p.max()) <= 0:
        raise ValueError(
            "The 'block_counts' parameter of alpha_power_dims must be finite, >= 0 and not all "
            f"zero. Got {p.tolist()!r} instead."
        )
    ratio = p / p.max()
    dims = []
    for r in ratio.tolist():
        d = base_dim * r**alpha if r > 0 else 0.0
        dims.append(max(min_dim, min(base_dim, math.floor(d + 0.5))))
    return dims


class MixedDimEmbedding(nn.Module):
    """[...] int ids -> [..., base_dim]: mixed-dimension embedding over popularity blocks.

    Ids are mapped to popularity ranks (`rank_of_id[id]`, or the id itself when ids are already
    ranks, id 0 the most frequent). Block `b` covers ranks `[sum(block_sizes[:b]),
    sum(block_sizes[:b + 1]))`, has its own `block_sizes[b] x block_dims[b]` table and a
    bias-free linear projection to `base_dim` (no projection, and no parameters, when
    `block_dims[b] == base_dim`). The lookup is vectorised: `torch.bucketize` finds every id's
    block, one stable sort groups the ids by block, each block gathers and projects its group,
    and one `index_copy` restores the input order (no Python loop over ids; the Keras example
    instead looks every id up in every block and masks).

    Tables are initialised like Keras' `Embedding` (U(-0.05, 0.05)) with `init="keras"`,
    projections Glorot-uniform like Keras' `Dense`. Parameters: `sum(size_b * dim_b) +
    sum(dim_b * base_dim for blocks with dim_b < base_dim)`. Build one from id counts with
    `MixedDimEmbedding.from_counts`.
    """

    def __init__(
        self,
        block_sizes: Sequence[int],
        block_dims: Sequence[int],
        base_dim: int,
        *,
        rank_of_id: Sequence[int] | torch.Tensor | None = None,
        init: Init = "keras",
        std: float = 0.05,
    ) -> None:
        super().__init__()
        sizes = list(block_sizes)
        dims = list(block_dims)
        _check_int("base_dim", "MixedDimEmbedding", base_dim)
        if not sizes or any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in sizes):
            raise ValueError(
                "The 'block_sizes' parameter of MixedDimEmbedding must be a non-empty list of "
                f"positive ints. Got {block_sizes!r} instead."
            )
        if len(dims) != len(sizes) or any(
            not isinstance(d, int) or isinstance(d, bool) or not 1 <= d <= base_dim for d in dims
        ):
            raise ValueError(
                "The 'block_dims' parameter of MixedDimEmbedding must hold one int in "
                f"[1, base_dim={base_dim}] per block ({len(sizes)} blocks). Got {block_dims!r} "
                "instead."
            )
        self.block_sizes = sizes
        self.block_dims = dims
        self.base_dim = base_dim
        self.num_embeddings = sum(sizes)
        ends = torch.tensor(sizes, dtype=torch.int64).cumsum(0)
        self.register_buffer("_ends", ends, persistent=False)
        self.register_buffer("_starts", ends - torch.tensor(sizes), persistent=False)
        if rank_of_id is not None:
            ranks = torch.as_tensor(rank_of_id, dtype=torch.int64).reshape(-1).clone()
            n = self.num_embeddings
            if ranks.numel() != n or not torch.equal(
                torch.sort(ranks).values, torch.arange(n, dtype=torch.int64)
            ):
                raise ValueError(
                    "The 'rank_of_id' parameter of MixedDimEmbedding must be a permutation of "
                    f"0..{n - 1} (one rank per id, sum(block_sizes) = {n} ids). Got "
                    f"{ranks.numel()} values"
                    f"{' with repeats' if ranks.numel() == n else ''} instead; build it with "
                    "frequency_blocks(counts)."
                )
            self.register_buffer("rank_of_id", ranks)
        else:
            self.register_buffer("rank_of_id", None)
        self.tables = nn.ModuleList(nn.Embedding(s, d) for s, d in zip(sizes, dims, strict=True))
        self.projections = nn.ModuleList(
            nn.Identity() if d == base_dim else nn.Linear(d, base_dim, bias=False) for d in dims
        )
        for table in self.tables:
            _init_table(table.weight, init, std, "MixedDimEmbedding")
        for proj in self.projections:
            if isinstance(proj, nn.Linear):
                nn.init.xavier_uniform_(proj.weight)

    @classmethod
    def from_counts(
        cls,
        counts: Sequence[int] | Sequence[float] | torch.Tensor,
        base_dim: int,
        *,
        block_sizes: Sequence[int] | None = None,
        num_blocks: int | None = None,
        block_dims: Sequence[int] | None = None,
        alpha: float = 0.3,
        min_dim: int = 1,
        init: Init = "keras",
        std: float = 0.05,
    ) -> MixedDimEmbedding:
        """[N] counts per id -> a MixedDimEmbedding over ids 0..N-1 ranked by frequency.

        Blocks come from `frequency_blocks(counts, block_sizes, num_blocks)`; widths are
        `block_dims` if given, else `alpha_power_dims` of the blocks' mean counts.
        """
        rank_of_id, sizes = frequency_blocks(counts, block_sizes=block_sizes, num_blocks=num_blocks)
        if block_dims is None:
            c = torch.as_tensor(counts, dtype=torch.float64).reshape(-1)
            sorted_counts = torch.sort(c, descending=True, stable=True).values
            totals = [float(t.sum()) for t in torch.split(sorted_counts, sizes)]
            block_dims = alpha_power_dims(totals, base_dim, alpha, min_dim, block_sizes=sizes)
        return cls(sizes, list(block_dims), base_dim, rank_of_id=rank_of_id, init=init, std=std)

    @property
    def output_dim(self) -> int:
        """Size of the last dimension of the output."""
        return self.base_dim

    def block_of(self, ids: torch.Tensor) -> torch.Tensor:
        """[...] int ids -> [...] int64 block index of each id."""
        ranks = self.rank_of_id[ids] if self.rank_of_id is not None else ids
        return torch.bucketize(ranks, self._ends, right=True)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """[...] int64 ids -> [..., base_dim] float vectors."""
        _check_ids(ids, self.num_embeddings, "MixedDimEmbedding")
        flat = ids.reshape(-1)
        ranks = self.rank_of_id[flat] if self.rank_of_id is not None else flat
        if len(self.tables) == 1:
            out = self.projections[0](self.tables[0](ranks))
            return out.reshape(*ids.shape, self.base_dim)
        block = torch.bucketize(ranks, self._ends, right=True)
        # Group the ids by block (one stable sort), embed and project each group, then put the
        # rows back in input order with one index_copy: a handful of ops per block, whatever
        # the batch size.
        order = torch.argsort(block, stable=True)
        sorted_local = (ranks - self._starts[block])[order]
        per_block = torch.bincount(block, minlength=len(self.tables)).tolist()
        parts = [
            proj(table(chunk))
            for table, proj, chunk, n in zip(
                self.tables,
                self.projections,
                torch.split(sorted_local, per_block),
                per_block,
                strict=True,
            )
            if n
        ]
        vals = torch.cat(parts) if len(parts) > 1 else parts[0]
        out = vals.new_empty(flat.numel(), self.base_dim).index_copy(0, order, vals)
        return out.reshape(*ids.shape, self.base_dim)

    def extra_repr(self) -> str:
        return (
            f"block_sizes={self.block_sizes}, block_dims={self.block_dims}, "
            f"base_dim={self.base_dim}"
        )


# --------------------------------------------------------------------------------------------
# Hashing
# --------------------------------------------------------------------------------------------


def _splitmix64(x: int) -> int:
    """Python-int splitmix64 step (used only to derive constants from the seed)."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _signed(x: int) -> int:
    x &= _MASK64
    return x - (1 << 64) if x >= 1 << 63 else x


_MIX1 = _signed(0xBF58476D1CE4E5B9)
_MIX2 = _signed(0x94D049BB133111EB)


def _shr(x: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 viewed as unsigned 64-bit."""
    return (x >> s) & ((1 << (64 - s)) - 1)


class HashEmbedding(nn.Module):
    """[...] any int64 ids -> [..., dim]: the sum of `num_hashes` hashed rows of one table.

    Each of the `num_hashes` hash functions is `h_k(x) = mix64(a_k * x + b_k) mod num_buckets`
    in wrapping 64-bit arithmetic, where `a_k` (odd) and `b_k` come from `seed` through
    splitmix64 and `mix64` is the splitmix64 finaliser, all computed with torch tensor ops. The
    hashes are fixed functions of (id, seed, k): identical across processes, runs and machines
    (no Python `hash()`), so a model trained with them serves with them. All hashes index ONE
    shared `num_buckets x dim` table (parameters: `num_buckets * dim`); two ids share a vector
    only if all their hashes collide. Ids need no vocabulary: raw int ids, or the output of
    `towerrec.features.Hashing`, negative values included.
    """

    def __init__(
        self,
        num_buckets: int,
        dim: int,
        num_hashes: int = 2,
        seed: int = 0,
        *,
        init: Init = "keras",
        std: float = 0.05,
        sparse: bool = False,
    ) -> None:
        super().__init__()
        _check_int("num_buckets", "HashEmbedding", num_buckets)
        _check_int("dim", "HashEmbedding", dim)
        _check_int("num_hashes", "HashEmbedding", num_hashes)
        _check_int("seed", "HashEmbedding", seed, minimum=0)
        self.num_buckets = num_buckets
        self.dim = dim
        self.num_hashes = num_hashes
        self.seed = seed
        state = _splitmix64(seed)
        mult, add = [], []
        for _ in range(num_hashes):
            state = _splitmix64(state)
            mult.append(_signed(state | 1))
            state = _splitmix64(state)
            add.append(_signed(state))
        # Shaped [num_hashes, 1] to broadcast over flattened ids.
        self.register_buffer("_mult", torch.tensor(mult, dtype=torch.int64)[:, None], False)
        self.register_buffer("_add", torch.tensor(add, dtype=torch.int64)[:, None], False)
        self.table = nn.Embedding(num_buckets, dim, sparse=sparse)
        _init_table(self.table.weight, init, std, "HashEmbedding")

    @property
    def output_dim(self) -> int:
        """Size of the last dimension of the output."""
        return self.dim

    def buckets(self, ids: torch.Tensor) -> torch.Tensor:
        """[...] int ids -> [..., num_hashes] int64 rows in [0, num_buckets)."""
        if ids.dtype.is_floating_point or ids.dtype == torch.bool or ids.is_complex():
            raise TypeError(
                f"HashEmbedding expects integer ids; got a tensor of dtype {ids.dtype}."
            )
        z = ids.reshape(1, -1).to(torch.int64) * self._mult + self._add  # [H, n], wraps mod 2^64
        z = (z ^ _shr(z, 30)) * _MIX1
        z = (z ^ _shr(z, 27)) * _MIX2
        z = z ^ _shr(z, 31)
        rows = torch.remainder(_shr(z, 1), self.num_buckets)  # top 63 bits, non-negative
        return rows.t().reshape(*ids.shape, self.num_hashes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """[...] int64 ids -> [..., dim] float vectors."""
        return F.embedding(self.buckets(ids), self.table.weight, sparse=self.table.sparse).sum(-2)

    def extra_repr(self) -> str:
        return (
            f"num_buckets={self.num_buckets}, dim={self.dim}, num_hashes={self.num_hashes}, "
            f"seed={self.seed}"
        )
