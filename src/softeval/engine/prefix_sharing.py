"""Score several continuations of one context with the context run once, and plan batches by tokens.

A multiple-choice item scores each choice as a continuation of the same context. Run one row per
choice and the context is computed once per choice; here it runs once, through a KV cache:

    prefix forward        [pad…][BOS][soft × n] ctx…             one row per distinct context (left-padded)
                          └ logits at the last column score every continuation's first token
    continuation forward  cache rows repeated per continuation; c0 c1 … c(k-2) [pad…] (right-padded)
                          └ logits at column j score c(j+1)

Positions continue from each row's last prefix position and the mask is the prefix mask followed by
the continuation's, so each score equals the one-row-per-request forward (`forward.target_logits`),
tested to 1e-4 in fp32. That also holds past a sliding window (Gemma-3's local layers): the window
is applied to columns, and in both layouts a row's columns and positions differ by the same offset.
Continuations of one token (letter answers) need no continuation forward at all.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from softeval.engine.batching import Batch
from softeval.engine.forward import insert_soft_prompt, output_logits
from softeval.engine.generate import new_cache


def plan_batches(shapes: list[tuple[int, int, int]], max_tokens: int, max_rows: int | None = None) -> list[list[int]]:
    """Cut items into batches within a token budget, longest first so rows of a batch are alike in length.

    `shapes[i]` = (width, continuation rows, continuation width): item i adds one row of `width` tokens
    to the first forward and `continuation rows` rows to the second (0 for a plain row). A batch costs
    rows × widest + continuation rows × widest continuation (its padded tokens); it grows while that
    stays within `max_tokens` and its rows within `max_rows`. An item over the budget alone runs alone.
    """
    order = sorted(range(len(shapes)), key=lambda i: (-shapes[i][0], -shapes[i][2], i))
    batches: list[list[int]] = []
    current: list[int] = []
    widest = cont_rows = cont_widest = 0
    for i in order:
        width, rows, cont_width = shapes[i]
        if current:
            grown = (len(current) + 1) * widest + (cont_rows + rows) * max(cont_widest, cont_width)
            if grown > max_tokens or (max_rows is not None and len(current) + 1 > max_rows):
                batches.append(current)
                current = []
        if not current:
            widest, cont_rows, cont_widest = width, 0, 0
        current.append(i)
        cont_rows += rows
        cont_widest = max(cont_widest, cont_width)
    if current:
        batches.append(current)
    return batches


def score_continuations(model: nn.Module, prefix: Batch, prompt_rows: torch.Tensor, owners: list[int],
                        continuations: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of log-probs (K,) float64 and whether every token is the argmax (K,) bool, per continuation.

    `prefix` holds one left-padded row per context (no targets); continuation k (non-empty token ids)
    continues row `owners[k]`.
    """
    device = prefix.input_ids.device
    base = model.base_model
    cache = new_cache(base)
    embeds = insert_soft_prompt(model.get_input_embeddings()(prefix.input_ids), prefix.soft_slot, prompt_rows)
    out = base(inputs_embeds=embeds, attention_mask=prefix.attention_mask, position_ids=prefix.position_ids,
               use_cache=True, **cache)
    # Left padding: the last column holds every row's last prefix token.
    first = output_logits(model, out.last_hidden_state[:, -1]).to(device)  # (G, V)
    owner = torch.tensor(owners, dtype=torch.long, device=device)  # (K,)
    first_ids = torch.tensor([c[0] for c in continuations], dtype=torch.long, device=device)  # (K,)
    sums = F.log_softmax(first, dim=-1)[owner, first_ids].double()  # (K,)
    misses = (first.argmax(dim=-1)[owner] != first_ids).long()  # (K,)

    longer = [k for k, c in enumerate(continuations) if len(c) > 1]
    if not longer:
        return sums, misses == 0
    width = max(len(continuations[k]) for k in longer) - 1
    ids = torch.full((len(longer), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(longer), width), dtype=prefix.attention_mask.dtype)
    t_rows, t_cols, t_ids = [], [], []
    for r, k in enumerate(longer):
        cont = continuations[k]
        ids[r, :len(cont) - 1] = torch.tensor(cont[:-1])
        mask[r, :len(cont) - 1] = 1
        t_rows += [r] * (len(cont) - 1)
        t_cols += range(len(cont) - 1)
        t_ids += cont[1:]
    rows = owner[torch.tensor(longer, device=device)]  # (L,) prefix row of each continuation row
    for past in cache.values():
        past.batch_select_indices(rows)  # one copy of its context's keys and values per continuation
    attention = torch.cat([prefix.attention_mask[rows], mask.to(device)], dim=1)  # (L, W + width)
    positions = prefix.position_ids[rows, -1:] + 1 + torch.arange(width, device=device)  # (L, width)
    out = base(input_ids=ids.to(device), attention_mask=attention, position_ids=positions, use_cache=True, **cache)
    states = out.last_hidden_state
    hidden = states[torch.tensor(t_rows, device=states.device), torch.tensor(t_cols, device=states.device)]
    logits = output_logits(model, hidden).to(device)  # (N, V)
    targets = torch.tensor(t_ids, dtype=torch.long, device=device)
    lp = F.log_softmax(logits, dim=-1).gather(1, targets[:, None]).squeeze(1).double()  # (N,)
    which = torch.tensor(longer, device=device)[torch.tensor(t_rows, device=device)]  # (N,) continuation of each
    sums.index_add_(0, which, lp)
    misses.index_add_(0, which, (logits.argmax(dim=-1) != targets).long())
    return sums, misses == 0
