"""Checkpoints without pickle: tensors as safetensors, everything else as JSON in its header."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from softeval.store.files import (
    atomic_write_bytes,
    dumps_json,
)

# --------------------------------------------------------------------------- checkpoints (no pickle)

CHECKPOINT_KEY = "softeval_checkpoint"


class CorruptCheckpoint(Exception):
    """A checkpoint file that cannot be read back (truncated, not safetensors, missing metadata)."""


def write_checkpoint(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Tensors as safetensors, everything else as JSON in its header: loading can never run code."""
    from safetensors.torch import save as safetensors_save

    data = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, safetensors_save(data, metadata={CHECKPOINT_KEY: dumps_json(meta, indent=None)}))


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})[CHECKPOINT_KEY])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for truncated or foreign files
        raise CorruptCheckpoint(f"{path}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    return tensors, meta
