"""Held-out scoring: loss (nats/token) and token accuracy of a prompt on fixed examples."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from softeval.engine.batching import Example, collate
from softeval.engine.forward import assemble_prompt_rows, autocast_context, target_losses


@dataclass
class EvalResult:
    loss: float              # mean cross-entropy over all target tokens (nats/token)
    token_accuracy: float    # share of target tokens that are the argmax
    num_targets: int
    example_losses: list[float]  # mean loss per example, in input order

    def to_dict(self) -> dict:
        return {"loss": self.loss, "token_accuracy": self.token_accuracy, "num_targets": self.num_targets}


@torch.no_grad()
def evaluate_prompt(model: nn.Module, prompt: nn.Module | None, examples: list[Example], *, bos_id: int | None,
                    pad_id: int, placement: str = "after_bos", batch_size: int = 16,
                    precision: str = "fp32") -> EvalResult:
    """Score `examples` with `prompt` (None = the plain model, n = 0)."""
    device = next(model.parameters()).device
    hidden = model.get_input_embeddings().weight.shape[1]
    n = prompt.num_virtual_tokens if prompt is not None else 0
    prompts = [prompt] if prompt is not None else [None]
    total, correct, count = 0.0, 0, 0
    per_example: list[float] = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        batch = collate(chunk, n, bos_id, pad_id, placement).to(device)
        with autocast_context(device, precision):
            rows = assemble_prompt_rows(prompts, batch, hidden) if n else torch.zeros(len(chunk), 0, hidden, device=device)
            losses, hits = target_losses(model, batch, rows)
        losses = losses.double()
        total += losses.sum().item()
        correct += int(hits.sum().item())
        count += losses.numel()
        sums = torch.zeros(len(chunk), dtype=torch.float64, device=device).index_add_(0, batch.target_rows, losses)
        counts = torch.bincount(batch.target_rows, minlength=len(chunk)).clamp(min=1)
        per_example.extend((sums / counts).tolist())
    return EvalResult(loss=total / max(count, 1), token_accuracy=correct / max(count, 1), num_targets=count,
                      example_losses=per_example)
