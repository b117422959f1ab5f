"""The forward pass with soft prompts: the one place where prompt embeddings meet the model.

    token ids ──embed──▶ (B,T,D) ──insert prompt rows at soft slots──▶ decoder ──hidden at targets──▶ lm_head

Logits are computed only at the N scored positions: with a 262k vocabulary, a full (B,T,V)
logits tensor would dominate time and memory.
"""

from __future__ import annotations

import contextlib
import functools

import torch
import torch.utils.checkpoint
import torch.nn.functional as F
from torch import nn

from softeval.engine.batching import Batch
from softeval.engine.chunked_ce import CHUNK_ELEMENTS, chunked_linear_cross_entropy


def insert_soft_prompt(token_embeds: torch.Tensor, soft_slot: torch.Tensor, prompt_rows: torch.Tensor) -> torch.Tensor:
    """Replace the embeddings at soft slots with the row's prompt vectors; gradients flow to the prompt.

    token_embeds (B,T,D), soft_slot (B,T) with -1 for ordinary tokens, prompt_rows (B,P,D) fp32.
    """
    if prompt_rows.shape[1] == 0:
        return token_embeds
    batch, length, dim = token_embeds.shape
    index = soft_slot.clamp(min=0).unsqueeze(-1).expand(batch, length, dim)  # (B,T,D)
    gathered = torch.gather(prompt_rows, 1, index).to(token_embeds.dtype)  # (B,T,D)
    return torch.where((soft_slot >= 0).unsqueeze(-1), gathered, token_embeds)


def assemble_prompt_rows(prompts: list[nn.Module], batch: Batch, hidden_size: int) -> torch.Tensor:
    """Per-row prompt embeddings (B, n_max, D) for rows that belong to different lanes (prompts)."""
    rows = batch.lanes.shape[0]
    n_max = max(batch.num_soft) if batch.num_soft else 0
    device = batch.lanes.device
    if n_max == 0:
        return torch.zeros(rows, 0, hidden_size, device=device)
    if len(prompts) == 1:
        out = prompts[0](rows, batch.conditions)
        return out if out.shape[1] == n_max else F.pad(out, (0, 0, 0, n_max - out.shape[1]))
    pieces, order = [], []
    for lane, prompt in enumerate(prompts):
        idx = (batch.lanes == lane).nonzero(as_tuple=True)[0]
        if idx.numel() == 0:
            continue
        cond = batch.conditions[idx] if batch.conditions is not None else None
        if cond is not None and hasattr(prompt, "condition_dim"):
            cond = cond[:, :prompt.condition_dim]  # the batch's conditions are zero-padded to the widest lane
        if prompt is None or prompt.num_virtual_tokens == 0:
            piece = torch.zeros(idx.numel(), n_max, hidden_size, device=device)
        else:
            piece = prompt(idx.numel(), cond)  # (b, n_lane, D)
            piece = F.pad(piece, (0, 0, 0, n_max - piece.shape[1]))
        pieces.append(piece)
        order.append(idx)
    stacked = torch.cat(pieces)  # rows grouped by lane
    inverse = torch.empty(rows, dtype=torch.long, device=device)
    inverse[torch.cat(order)] = torch.arange(rows, device=device)
    return stacked[inverse]


def autocast_context(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    if precision == "fp16":
        return torch.autocast(device_type=device.type, dtype=torch.float16)
    return contextlib.nullcontext()


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The repeated transformer blocks (transformers marks them as GradientCheckpointingLayer)."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    return [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]


@contextlib.contextmanager
def activation_checkpointing(model: nn.Module, enabled: bool = True):
    """Keep only each decoder layer's input during the forward and recompute the rest in backward.

    For long prompts (n = 1024 on Gemma-3-270M) the saved activations otherwise dominate memory.
    The price is one more forward: with frozen weights the backward costs about one forward, so a
    step takes ~1.5x as long. transformers' own gradient checkpointing only acts in train() mode,
    and the model stays in eval(); so the layers' forward is wrapped here, for this context only.
    Recomputation is deterministic, so results equal the plain path (test_lanes).
    """
    layers = decoder_layers(model) if enabled else []
    for layer in layers:
        layer.forward = functools.partial(torch.utils.checkpoint.checkpoint, layer.forward, use_reentrant=False)
    try:
        yield
    finally:
        for layer in layers:
            del layer.forward  # back to the class's forward


def target_hidden(model: nn.Module, batch: Batch, prompt_rows: torch.Tensor, checkpointing: bool = False) -> torch.Tensor:
    """Final hidden states (N, D) at the scored positions only."""
    embed = model.get_input_embeddings()
    token_embeds = embed(batch.input_ids)  # (B,T,D), already scaled for Gemma
    inputs_embeds = insert_soft_prompt(token_embeds, batch.soft_slot, prompt_rows)
    with activation_checkpointing(model, checkpointing and torch.is_grad_enabled()):
        out = model.base_model(
            inputs_embeds=inputs_embeds,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            use_cache=False,
        )
    states = out.last_hidden_state  # (B, P+T, D); with --device-map the last layer may sit on another GPU
    return states[batch.target_rows.to(states.device), batch.target_cols.to(states.device)]  # (N, D)


def target_logits(model: nn.Module, batch: Batch, prompt_rows: torch.Tensor, checkpointing: bool = False) -> torch.Tensor:
    """Logits (N, V) at the scored positions only, in fp32."""
    hidden = target_hidden(model, batch, prompt_rows, checkpointing)
    # Back to the inputs' device (a no-op on one device), where the targets and the prompt live.
    return output_logits(model, hidden).to(batch.target_ids.device)


def output_logits(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """The output layer on chosen hidden states (N, D) → logits (N, V) in fp32, as the model's own head
    computes them (Gemma caps its final logits with tanh)."""
    logits = model.get_output_embeddings()(hidden).float()  # (N, V)
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def _chunkable_head(model: nn.Module) -> nn.Linear | None:
    """The output layer if chunked cross-entropy can replace it: a frozen, bias-free, materialised Linear."""
    head = model.get_output_embeddings()
    if (isinstance(head, nn.Linear) and head.bias is None and not head.weight.requires_grad
            and head.weight.device.type != "meta"):
        return head
    return None


def target_losses(model: nn.Module, batch: Batch, prompt_rows: torch.Tensor, checkpointing: bool = False,
                  chunk_rows: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-target cross-entropy (N,) and whether the argmax was right (N,).

    When the (N, V) logits would exceed `chunked_ce.CHUNK_ELEMENTS` (or `chunk_rows` is given) they are
    never materialised whole: see softeval.engine.chunked_ce. Both paths agree to fp32 rounding (tested).
    """
    head = _chunkable_head(model)
    num_targets = batch.target_ids.shape[0]
    if head is not None and (chunk_rows is not None or num_targets * head.weight.shape[0] > CHUNK_ELEMENTS):
        hidden = target_hidden(model, batch, prompt_rows, checkpointing).to(head.weight.device)
        cap = getattr(model.config, "final_logit_softcapping", None)
        losses, correct = chunked_linear_cross_entropy(hidden, head.weight, batch.target_ids.to(hidden.device),
                                                       softcap=cap, chunk_rows=chunk_rows)
        return losses.to(batch.target_ids.device), correct.to(batch.target_ids.device)
    logits = target_logits(model, batch, prompt_rows, checkpointing)
    losses = F.cross_entropy(logits, batch.target_ids, reduction="none")
    correct = logits.argmax(dim=-1) == batch.target_ids
    return losses, correct
