"""Cross-entropy through a frozen output layer without holding the (N, V) logits.

Scoring N target positions against Gemma-3's 262k vocabulary makes the plain path hold (N, V) fp32
logits, their softmax and its gradient at once: ~1 GB each for 1,000 targets. Here the rows are taken
`chunk_rows` at a time; each chunk's logits live only while that chunk is processed.

When the prompt needs a gradient, the forward also computes each chunk's gradient with respect to the
hidden states, (softmax − onehot) · dcap @ W, and keeps only that (N, D) result; the backward just
scales it by the incoming per-target gradient. Recomputing the logits in the backward instead would
cost one more (N, V, D) matmul per step (+50 % on the output layer, which is a third of a Gemma-3
step); precomputing costs nothing extra because the loss is a per-row scalar, so
d(g_i · loss_i)/dh_i = g_i · dloss_i/dh_i exactly. In `no_grad` evaluation no gradient is computed.

The output weight is frozen (softeval never trains the model): no gradient reaches it, and the
function refuses a weight that requires one.
"""

from __future__ import annotations

import torch

# One chunk's logits hold at most this many elements (256 MiB in fp32; 256 rows of Gemma-3), and the
# plain path runs below it: chunks of 64 rows measured ~8 % slower on the 256-target Gemma step (small matmuls).
CHUNK_ELEMENTS = 1 << 26


def default_chunk_rows(vocab_size: int) -> int:
    return max(1, CHUNK_ELEMENTS // vocab_size)


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    """losses (N,) fp32 and correct (N,) bool from hidden (N, D) and a frozen weight (V, D)."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, softcap: float | None,
                chunk_rows: int, with_grad: bool):
        assert not weight.requires_grad, "chunked cross-entropy gives no gradient to the output weight (frozen)"
        assert hidden.dtype == weight.dtype, (hidden.dtype, weight.dtype)
        rows = hidden.shape[0]
        losses = torch.empty(rows, dtype=torch.float32, device=hidden.device)
        correct = torch.empty(rows, dtype=torch.bool, device=hidden.device)
        grad = torch.empty_like(hidden, dtype=torch.float32) if with_grad else None
        # The matmuls run in the dtype they were given (the caller applies autocast's choice once);
        # autocast inside would re-cast the (V, D) weight for every chunk.
        with torch.autocast(hidden.device.type, enabled=False):
            for start in range(0, rows, chunk_rows):
                end = min(start + chunk_rows, rows)
                h, t = hidden[start:end], targets[start:end]
                logits = (h @ weight.T).float()  # (c, V)
                if softcap:
                    logits = torch.tanh(logits / softcap) * softcap
                lse = torch.logsumexp(logits, dim=-1)  # (c,)
                losses[start:end] = lse - logits.gather(1, t[:, None]).squeeze(1)
                correct[start:end] = logits.argmax(dim=-1) == t
                if with_grad:
                    g = torch.exp(logits - lse[:, None])  # softmax (c, V)
                    g[torch.arange(end - start, device=g.device), t] -= 1
                    if softcap:
                        g.mul_(1 - (logits / softcap).square())  # d(cap·tanh(z/cap))/dz = 1 − tanh²
                    grad[start:end] = (g.to(weight.dtype) @ weight).float()  # (c, D)
                    del g
                del logits
        if with_grad:
            ctx.save_for_backward(grad)
        ctx.hidden_dtype = hidden.dtype
        ctx.mark_non_differentiable(correct)
        return losses, correct

    @staticmethod
    def backward(ctx, grad_losses: torch.Tensor, _grad_correct):
        (grad,) = ctx.saved_tensors
        grad_hidden = (grad * grad_losses[:, None]).to(ctx.hidden_dtype)
        return grad_hidden, None, None, None, None, None


def chunked_linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                                 softcap: float | None = None,
                                 chunk_rows: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row cross-entropy of softcap(hidden @ weight.T) against `targets`, and whether the argmax hit.

    hidden (N, D) with or without grad; weight (V, D) frozen; targets (N,) long. Under autocast the
    matmuls run in autocast's dtype, as `nn.Linear` would; the loss arithmetic is fp32.
    """
    device_type = hidden.device.type
    if torch.is_autocast_enabled(device_type):
        dtype = torch.get_autocast_dtype(device_type)
    else:
        dtype = torch.promote_types(hidden.dtype, weight.dtype)
    with torch.no_grad():
        weight = weight.to(dtype)  # a no-op when the weights are already in this dtype
    chunk_rows = chunk_rows or default_chunk_rows(weight.shape[0])
    with_grad = torch.is_grad_enabled() and hidden.requires_grad
    return _ChunkedLinearCrossEntropy.apply(hidden.to(dtype), weight, targets, softcap, chunk_rows, with_grad)
