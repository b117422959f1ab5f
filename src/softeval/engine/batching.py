"""Examples → padded batches with soft-prompt slots.

Each row is laid out left-padded as

    [pad … pad][BOS][soft × n][input_ids …]          (placement "after_bos", the default)
    [pad … pad][soft × n][BOS][input_ids …]          (placement "before_bos", PEFT's layout)

Labels follow the Hugging Face convention: `labels[i]` is the token the model should predict
after reading `input_ids[:i]` (so labels[i] == input_ids[i] for plain next-token prediction, and
-100 means "not scored"). Only the positions that predict a scored label get logits.

Rows may carry different n (one per lane): the extra left padding keeps positions contiguous.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from softeval.config import Choice

IGNORE = -100


class Placement(Choice):
    after_bos = "after_bos"    # [pad…][BOS][soft × n][input…] (softeval's default)
    before_bos = "before_bos"  # [pad…][soft × n][BOS][input…] (PEFT's prompt-tuning layout)


PLACEMENTS = Placement.values()


@dataclass
class Example:
    """One training/eval unit, already tokenized. `labels` is aligned with `input_ids` (HF convention)."""

    input_ids: list[int]
    labels: list[int]
    condition: list[float] | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        assert len(self.input_ids) == len(self.labels), (len(self.input_ids), len(self.labels))

    @property
    def num_targets(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE)


@dataclass
class Batch:
    input_ids: torch.Tensor       # (B, T) token ids; soft slots and pads hold pad_id
    attention_mask: torch.Tensor  # (B, T) 1 for BOS, soft slots and input tokens
    position_ids: torch.Tensor    # (B, T) contiguous from the first attended position
    soft_slot: torch.Tensor       # (B, T) slot number within the row's prompt, -1 elsewhere
    target_rows: torch.Tensor     # (N,) row of each scored position
    target_cols: torch.Tensor     # (N,) column whose logits predict the target
    target_ids: torch.Tensor      # (N,) target token ids
    lanes: torch.Tensor           # (B,) lane (prompt) index of each row
    conditions: torch.Tensor | None  # (B, C) or None
    num_soft: list[int]           # n per row

    def to(self, device) -> "Batch":
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}
        return Batch(**moved)

    @property
    def num_targets(self) -> int:
        return int(self.target_ids.numel())


def collate(examples: list[Example], num_soft: list[int] | int, bos_id: int | None, pad_id: int,
            placement: str = "after_bos", lanes: list[int] | None = None) -> Batch:
    """Build a left-padded batch. `num_soft` gives n per row (an int means the same n for all rows)."""
    assert placement in PLACEMENTS, placement
    rows = len(examples)
    num_soft = [num_soft] * rows if isinstance(num_soft, int) else list(num_soft)
    lanes = [0] * rows if lanes is None else list(lanes)
    assert len(num_soft) == rows and len(lanes) == rows

    layouts = []
    for ex, n in zip(examples, num_soft):
        bos = [] if bos_id is None else [bos_id]
        prefix_ids = bos + [pad_id] * n if placement == "after_bos" else [pad_id] * n + bos
        prefix_slot = [-1] * len(bos) + list(range(n)) if placement == "after_bos" else list(range(n)) + [-1] * len(bos)
        labels = list(ex.labels)
        if bos_id is None and labels:
            # Without BOS and with n = 0 nothing precedes input_ids[0]; never score it, for any n,
            # so every prompt length is scored on the same target tokens.
            labels[0] = IGNORE
        layouts.append((prefix_ids + list(ex.input_ids), prefix_slot + [-1] * len(ex.input_ids), len(prefix_ids), labels))

    width = max(len(ids) for ids, _, _, _ in layouts)
    input_ids = torch.full((rows, width), pad_id, dtype=torch.long)
    attention = torch.zeros((rows, width), dtype=torch.long)
    soft_slot = torch.full((rows, width), -1, dtype=torch.long)
    t_rows, t_cols, t_ids = [], [], []
    for r, (ids, slots, prefix_len, labels) in enumerate(layouts):
        pad = width - len(ids)
        input_ids[r, pad:] = torch.tensor(ids)
        attention[r, pad:] = 1
        soft_slot[r, pad:] = torch.tensor(slots)
        for i, label in enumerate(labels):
            if label != IGNORE:
                t_rows.append(r)
                t_cols.append(pad + prefix_len + i - 1)  # the position that has read input_ids[:i]
                t_ids.append(label)
    position_ids = (attention.cumsum(dim=1) - 1).clamp(min=0)
    conditions = None
    cond_dim = max((len(ex.condition) for ex in examples if ex.condition is not None), default=None)
    if cond_dim is not None:
        # Lanes may mix plain and conditional prompts (or conditions of different sizes): rows without
        # a condition get zeros, and each conditional prompt reads only its first condition_dim columns.
        conditions = torch.zeros(rows, cond_dim, dtype=torch.float32)
        for r, ex in enumerate(examples):
            if ex.condition is not None:
                conditions[r, :len(ex.condition)] = torch.tensor(ex.condition, dtype=torch.float32)
    return Batch(
        input_ids=input_ids,
        attention_mask=attention,
        position_ids=position_ids,
        soft_slot=soft_slot,
        target_rows=torch.tensor(t_rows, dtype=torch.long),
        target_cols=torch.tensor(t_cols, dtype=torch.long),
        target_ids=torch.tensor(t_ids, dtype=torch.long),
        lanes=torch.tensor(lanes, dtype=torch.long),
        conditions=conditions,
        num_soft=num_soft,
    )
