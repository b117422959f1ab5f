"""Pack sweep cells into lane groups that fit a memory budget.

A sweep (prompt lengths × seeds × conditions) is a list of cells; each cell is one prompt to train.
Cells in one *group* train together as lanes (one forward/backward per step, `train.train_lanes`),
groups run one after another. A group's step costs about

    rows × padded width  tokens,   rows = Σ batch_size,   padded width = max(n + seq_len)

of activation memory, because `collate` left-pads every row to the widest row. So:

    groups = plan_lane_groups([CellShape(n, batch_size, seq_len), ...], max_batch_tokens)
    for group in groups:            # lists of indices into the cells you passed
        train_lanes(ctx, [lanes[i] for i in group])

`max_batch_tokens` is the user's `--max-batch-tokens`; when they give none, `choose_max_batch_tokens`
derives it from free memory (CPU: available RAM; CUDA: `torch.cuda.mem_get_info`) and
`estimate_bytes_per_token`, whose constants were measured on the embedded models (docs/performance.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import torch

from softeval.errors import ConfigError

logger = logging.getLogger(__name__)

# Measured peak-memory growth per (row × padded position) of one training step, in units of
# num_hidden_layers × (hidden_size + intermediate_size) values of 4 bytes (fp32 activations, SDPA
# attention, frozen weights: autograd keeps only what the prompt's gradient needs). See
# docs/performance.md for the measurements on SmolLM2-135M and Gemma-3-270M; bf16 autocast keeps
# a mix of bf16 and fp32 tensors and was not lower in practice, so the same constant is used.
ACTIVATION_VALUES_PER_LAYER = 4.0
# With activation checkpointing each layer's input is kept, plus one layer's activations and the
# gradients in flight while it is recomputed: measured ~4 hidden_size values per layer and position.
CHECKPOINTED_VALUES_PER_LAYER = 4.0
# Each scored position holds fp32 logits, their log-softmax and its gradient over the vocabulary.
LOGIT_COPIES_PER_TARGET = 3.0
DEFAULT_MEMORY_FRACTION = 0.5  # of free memory; the rest is headroom for the allocator and evaluation


@dataclass(frozen=True)
class CellShape:
    """What packing needs to know about one cell: prompt length, rows per step, longest example."""

    num_virtual_tokens: int
    batch_size: int
    seq_len: int  # longest training row without the prompt: BOS (if any) + input tokens

    @property
    def width(self) -> int:
        return self.num_virtual_tokens + self.seq_len

    @property
    def tokens(self) -> int:
        return self.batch_size * self.width


def cell_shape(num_virtual_tokens: int, batch_size: int, examples: Sequence, has_bos: bool) -> CellShape:
    """CellShape of a cell whose rows are drawn from `examples` (softeval `Example`s)."""
    longest = max((len(ex.input_ids) for ex in examples), default=0)
    return CellShape(num_virtual_tokens, batch_size, longest + int(has_bos))


def group_tokens(cells: Sequence[CellShape]) -> int:
    """Tokens one step of these cells processes together: rows × the widest row."""
    if not cells:
        return 0
    return sum(c.batch_size for c in cells) * max(c.width for c in cells)


def plan_lane_groups(cells: Sequence[CellShape], max_batch_tokens: int,
                     max_pad_fraction: float = 0.25) -> list[list[int]]:
    """Group cells (by index) so each group's step fits `max_batch_tokens` and wastes little on padding.

    Cells are taken widest first and added to the current group while the group's rows × padded
    width stays within the budget and the cell's rows are at most `max_pad_fraction` padding
    (padding costs compute: a 1-token prompt next to a 1024-token one would be mostly padding;
    so the whole group's padding share is bounded by it too). A cell that alone exceeds the budget
    gets a group of its own (its batch cannot be split here), with a warning. Groups come widest
    first; indices inside a group keep their input order.
    """
    if max_batch_tokens < 1:
        raise ConfigError(f"max_batch_tokens (--max-batch-tokens) must be >= 1, got {max_batch_tokens}")
    order = sorted(range(len(cells)), key=lambda i: (-cells[i].width, i))
    groups: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current:
            group_width = cells[current[0]].width  # the widest: cells come in decreasing width
            fits = group_tokens([cells[j] for j in current] + [cells[i]]) <= max_batch_tokens
            if not fits or 1 - cells[i].width / group_width > max_pad_fraction:
                groups.append(sorted(current))
                current = []
        if not current and cells[i].tokens > max_batch_tokens:
            logger.warning("cell with n=%d, batch %d, width %d needs %d tokens per step, over the budget of %d; "
                           "it runs alone", cells[i].num_virtual_tokens, cells[i].batch_size, cells[i].width,
                           cells[i].tokens, max_batch_tokens)
        current.append(i)
    if current:
        groups.append(sorted(current))
    return groups


# --------------------------------------------------------------------------- memory budget


def available_memory_bytes(device: torch.device | str) -> int:
    """Memory a new allocation can use now: free GPU memory (plus this process's cached blocks) or available RAM."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + cached)
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:  # Linux without psutil: MemAvailable counts reclaimable page cache, unlike SC_AVPHYS_PAGES
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def estimate_bytes_per_token(config, checkpointing: bool = False, targets_per_token: float = 0.5) -> float:
    """Peak training-step memory per (row × padded position) for a transformers model config.

    `targets_per_token` is the share of positions that are scored (logits are computed only there);
    with a 262k vocabulary they can cost more than the activations.
    """
    text = getattr(config, "text_config", None) or config
    layers, hidden = text.num_hidden_layers, text.hidden_size
    inter = getattr(text, "intermediate_size", None) or 4 * hidden
    per_layer = CHECKPOINTED_VALUES_PER_LAYER * hidden if checkpointing else ACTIVATION_VALUES_PER_LAYER * (hidden + inter)
    activations = 4.0 * layers * per_layer
    logits = 4.0 * LOGIT_COPIES_PER_TARGET * text.vocab_size * targets_per_token
    return activations + logits


def choose_max_batch_tokens(model: torch.nn.Module, device: torch.device | str | None = None,
                            checkpointing: bool = False, targets_per_token: float = 0.5,
                            fraction: float = DEFAULT_MEMORY_FRACTION) -> int:
    """A `max_batch_tokens` budget from the memory free now (the model itself is already loaded)."""
    if device is None:
        device = next(model.parameters()).device
    free = available_memory_bytes(device)
    per_token = estimate_bytes_per_token(model.config, checkpointing, targets_per_token)
    budget = max(1, int(fraction * free / per_token))
    logger.info("max_batch_tokens %d: %.1f GiB free on %s, ~%.0f KiB per token", budget, free / 2**30,
                device, per_token / 1024)
    return budget


__all__ = ["CellShape", "cell_shape", "group_tokens", "plan_lane_groups", "available_memory_bytes",
           "estimate_bytes_per_token", "choose_max_batch_tokens"]
