"""Generation with a soft prompt through the KV cache.

The first forward pass runs the whole prefix ([BOS][soft × n][context]) as embeddings and fills the
cache; every later step feeds one token id. `use_cache=False` recomputes the full sequence each step
(slow, used to check the cache path: DESIGN.md invariant 4).
"""

from __future__ import annotations

import inspect
from typing import Callable

import torch
from torch import nn

from softeval.engine.batching import Example, collate
from softeval.errors import ConfigError
from softeval.engine.forward import assemble_prompt_rows, insert_soft_prompt


def _full_logits(model: nn.Module, batch, prompt_rows, **kwargs):
    embeds = insert_soft_prompt(model.get_input_embeddings()(batch.input_ids), batch.soft_slot, prompt_rows)
    # Only the last position's logits are needed. `logits_to_keep=1` would hand the head a strided view of the
    # hidden states, on which PyTorch's CPU matmul copies the head's weight once per row: 64 chess probes on
    # Gemma-3 (262k vocabulary) took 24 GB and were killed. An index tensor gathers a contiguous copy instead.
    last = torch.tensor([embeds.shape[1] - 1], device=embeds.device)
    return model(inputs_embeds=embeds, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
                 logits_to_keep=last, **kwargs)


def new_cache(model: nn.Module) -> dict:
    """A fresh KV cache as the keyword the model's forward takes.

    transformers 5 renamed `past_key_values` to `cache` (the old name warns) and wants a `Cache` object,
    not the legacy tuples; `DynamicCache(config=...)` also lays out sliding-window layers (Gemma 3).
    """
    from transformers import DynamicCache

    params = inspect.signature(model.forward).parameters
    name = "cache" if "cache" in params else "past_key_values"
    return {name: DynamicCache(config=model.config)}


def _pick(logits: torch.Tensor, temperature: float, top_p: float,
          generator: torch.Generator | list[torch.Generator] | None) -> torch.Tensor:
    """The next token per row: argmax, or a sample from the batch's generator or from each row's own one."""
    logits = logits.float()
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        keep = sorted_p.cumsum(dim=-1) - sorted_p < top_p
        sorted_p = sorted_p * keep
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    probs = probs / probs.sum(-1, keepdim=True)
    if isinstance(generator, list):
        # One draw per row from that row's generator: a row's sample does not depend on its batch partners.
        return torch.cat([torch.multinomial(probs[r], 1, generator=g) for r, g in enumerate(generator)])
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def has_input(context: list[int], prompt: nn.Module | None, bos_id: int | None) -> bool:
    """Whether a row gives the model anything to continue from: context tokens, soft tokens or a BOS.
    (An empty context, context_tokens 0, on a BOS-less tokenizer such as SmolLM2's, has none at n = 0.)"""
    return bool(context) or (prompt is not None and prompt.num_virtual_tokens > 0) or bos_id is not None


@torch.no_grad()
def generate_ids(model: nn.Module, prompt: nn.Module | None, contexts: list[list[int]], *, bos_id: int | None,
                 pad_id: int, eos_id: int | None = None, placement: str = "after_bos", max_new_tokens: int = 32,
                 temperature: float = 0.0, top_p: float = 1.0, seed: int = 0, use_cache: bool = True,
                 conditions: list[list[float]] | None = None, row_seeds: list[int] | None = None,
                 stop: Callable[[list[int]], bool] | None = None) -> list[list[int]]:
    """Continue each context; returns only the new token ids (stopping at eos, which is included).

    `stop(new_ids)` may end a row early (e.g. when its decoded text contains a stop string); the
    batch ends when every row has stopped. In greedy decoding a row that has stopped leaves the batch
    (and the KV cache), so it costs nothing more; rows never attend to each other, so the others'
    tokens are the same.

    Sampling draws from one generator seeded with `seed` for the whole batch (those rows stay to the end, so
    a seed draws the same tokens as before), so a row's tokens depend on the rows beside it. `row_seeds`
    (one per context) gives each row its own generator instead, so the same context and seed sample the
    same tokens alone or in any batch (lm-eval's sampled tasks); such rows leave the batch when they stop.
    """
    if row_seeds is not None and len(row_seeds) != len(contexts):
        raise ValueError(f"row_seeds has {len(row_seeds)} seeds for {len(contexts)} contexts")
    device = next(model.parameters()).device
    hidden = model.get_input_embeddings().weight.shape[1]
    n = prompt.num_virtual_tokens if prompt is not None else 0
    if not all(has_input(c, prompt, bos_id) for c in contexts):
        raise ConfigError("nothing to continue from: an empty context, no soft prompt, and a model whose "
                          "tokenizer adds no BOS token; give some context text")
    examples = [Example(input_ids=list(c), labels=[-100] * len(c),
                        condition=(conditions[i] if conditions else None)) for i, c in enumerate(contexts)]
    batch = collate(examples, n, bos_id, pad_id, placement).to(device)
    rows = len(contexts)
    prompt_rows = (assemble_prompt_rows([prompt], batch, hidden) if n
                   else torch.zeros(rows, 0, hidden, device=device))
    generator: torch.Generator | list[torch.Generator] | None = None
    if temperature > 0:
        generator = ([torch.Generator(device=device).manual_seed(s) for s in row_seeds] if row_seeds is not None
                     else torch.Generator(device=device).manual_seed(seed))
    out = [[] for _ in range(rows)]
    live = list(range(rows))  # the row of `out` each batch row writes to
    finished = torch.zeros(rows, dtype=torch.bool, device=device)
    mask, positions = batch.attention_mask, batch.position_ids
    ids, slots = batch.input_ids, batch.soft_slot

    # The cache object is filled in place by every forward, so the same one is passed each step.
    cache = new_cache(model) if use_cache else {}
    result = _full_logits(model, batch, prompt_rows, use_cache=use_cache, **cache)
    for _ in range(max_new_tokens):
        next_ids = _pick(result.logits[:, -1], temperature, top_p, generator)
        next_ids = torch.where(finished, torch.full_like(next_ids, pad_id), next_ids)
        for r, row in enumerate(live):
            if not finished[r]:
                out[row].append(int(next_ids[r]))
        if eos_id is not None:
            finished |= next_ids == eos_id
        if stop is not None:
            for r, row in enumerate(live):
                if not finished[r] and stop(out[row]):
                    finished[r] = True
        if bool(finished.all()):
            break
        if not isinstance(generator, torch.Generator) and bool(finished.any()):
            # Greedy rows, and sampled rows with their own generators, are independent of their partners.
            keep = (~finished).nonzero(as_tuple=True)[0]  # (B',)
            live = [live[r] for r in keep.tolist()]
            if isinstance(generator, list):
                generator = [generator[r] for r in keep.tolist()]
            finished, next_ids, mask, positions = finished[keep], next_ids[keep], mask[keep], positions[keep]
            ids, slots, prompt_rows = ids[keep], slots[keep], prompt_rows[keep]
            for past in cache.values():
                past.batch_select_indices(keep)
        batch_rows = len(live)
        mask = torch.cat([mask, torch.ones(batch_rows, 1, dtype=mask.dtype, device=device)], dim=1)
        positions = torch.cat([positions, positions[:, -1:] + 1], dim=1)
        ids = torch.cat([ids, next_ids[:, None]], dim=1)
        slots = torch.cat([slots, torch.full((batch_rows, 1), -1, dtype=slots.dtype, device=device)], dim=1)
        if use_cache:
            result = model(input_ids=next_ids[:, None], attention_mask=mask, position_ids=positions[:, -1:],
                           use_cache=True, **cache)
        else:
            batch.input_ids, batch.attention_mask, batch.position_ids, batch.soft_slot = ids, mask, positions, slots
            result = _full_logits(model, batch, prompt_rows, use_cache=False)
    return out


def generate(lm, prompt: nn.Module | None, text: str | list[str], max_new_tokens: int = 32, *,
             placement: str = "after_bos", temperature: float = 0.0, top_p: float = 1.0, seed: int = 0,
             stop_at_eos: bool = True, conditions: list[list[float]] | None = None) -> str | list[str]:
    """Generate continuations of `text` (a string or list of strings) with a soft prompt.

    A conditional prompt needs one normalised condition vector per text (`conditions`).
    """
    texts = [text] if isinstance(text, str) else list(text)
    contexts = [lm.tokenizer(t, add_special_tokens=False).input_ids for t in texts]
    new = generate_ids(lm.model, prompt, contexts, bos_id=lm.info.bos_token_id, pad_id=lm.info.pad_token_id,
                       eos_id=lm.info.eos_token_id if stop_at_eos else None, placement=placement,
                       max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed,
                       conditions=conditions)
    decoded = [lm.tokenizer.decode(ids, skip_special_tokens=True) for ids in new]
    return decoded[0] if isinstance(text, str) else decoded
