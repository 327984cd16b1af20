"""In-batch softmax cross-entropy computed in row chunks, with the gradient formed on the way.

The plain formulation materialises the `[B, C]` logits, their softmax and their gradient: three
large matrices that stream through memory several times. Here each chunk of rows is scored,
normalised and turned into its gradient while it is still in cache; the backward pass only
scales the gradients kept from the forward pass.
"""

from __future__ import annotations

from typing import Any

import torch


def _chunk_rows(num_candidates: int) -> int:
    # Keep a chunk of logits around 4 MiB of float32.
    return max(16, min(1024, (1 << 20) // max(num_candidates, 1)))


class _FusedInBatchSoftmax(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        query: torch.Tensor,
        candidate: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        positives: torch.Tensor | None,
    ) -> torch.Tensor:
        b = query.shape[0]
        need_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        grad_q = torch.empty_like(query) if need_grad else None
        grad_c = torch.zeros_like(candidate) if need_grad else None
        total = query.new_zeros((), dtype=torch.float64)
        step = _chunk_rows(candidate.shape[0])
        ct = candidate.T
        for start in range(0, b, step):
            stop = min(start + step, b)
            qc = query[start:stop]
            rows = torch.arange(stop - start)
            pos_idx = None if positives is None else positives[start:stop]
            cols = rows + start if pos_idx is None else pos_idx
            logits = qc @ ct
            if bias is not None:
                logits += bias
            # One fused, vectorised softmax per chunk; the loss is -log p(positive).
            probs = torch.softmax(logits, dim=1)
            p_pos = probs[rows, cols]
            row_loss = -torch.log(p_pos)
            tiny = p_pos < 1e-30
            if bool(tiny.any()):  # p underflowed: take those rows' loss from the logits
                row_loss[tiny] = (
                    torch.logsumexp(logits[tiny], dim=1) - logits[rows[tiny], cols[tiny]]
                )
            w = weight[start:stop]
            total += (row_loss * w).sum(dtype=torch.float64)
            if need_grad:
                # d loss / d logits = w * (softmax - onehot); the one-hot part is applied to the
                # matching rows directly instead of to the big matrix.
                probs.mul_(w[:, None])
                pos_c = candidate[cols]
                torch.mm(probs, candidate, out=grad_q[start:stop])  # type: ignore[index]
                grad_q[start:stop] -= w[:, None] * pos_c  # type: ignore[index]
                grad_c.addmm_(probs.T, qc)  # type: ignore[union-attr]
                if pos_idx is None:
                    grad_c[start:stop] -= w[:, None] * qc  # type: ignore[index]
                else:
                    grad_c.index_add_(0, pos_idx, w[:, None] * qc, alpha=-1.0)  # type: ignore[union-attr]
        ctx.save_for_backward(grad_q, grad_c)
        return total.to(query.dtype)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        grad_q, grad_c = ctx.saved_tensors
        gq = grad_q * grad_out if grad_q is not None and ctx.needs_input_grad[0] else None
        gc = grad_c * grad_out if grad_c is not None and ctx.needs_input_grad[1] else None
        return gq, gc, None, None, None


def fused_in_batch_softmax(
    query: torch.Tensor,
    candidate: torch.Tensor,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    positives: torch.Tensor | None = None,
) -> torch.Tensor:
    """[B, D] queries, [C, D] candidates, optional [B] weights, [C] logit offsets and [B]
    positive columns (default: row i's positive is candidate i) -> scalar summed softmax
    cross-entropy.
    """
    if weight is None:
        weight = query.new_ones(query.shape[0])
    return _FusedInBatchSoftmax.apply(
        query.contiguous(),
        candidate.contiguous(),
        weight.detach().to(query.dtype),
        None if bias is None else bias.detach().to(query.dtype),
        None if positives is None else positives.to(torch.int64),
    )
