"""PEFT prompt-tuning adapters: export a softeval prompt, import one trained with PEFT.

Format (what `PeftModel.from_pretrained` reads): a folder with `adapter_config.json`
(peft_type PROMPT_TUNING, task_type CAUSAL_LM, num_virtual_tokens, token_dim, …) and
`adapter_model.safetensors` holding one tensor `prompt_embeddings` of shape (n, D).

PEFT puts the virtual tokens before everything, BOS included; that is softeval's `before_bos`
placement. A prompt trained `after_bos` still exports, with a warning that PEFT will place it differently.
The format has no notion of conditional prompts, so those cannot be exported.

Written with plain json/safetensors: PEFT itself is only needed to *use* the adapter (and in tests).
"""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_save

from softeval.errors import SoftevalError
from softeval.prompt import PEFT_KEY, PromptMetadata, SoftPrompt, read_prompt_file
from softeval.store import atomic_write_bytes, atomic_write_json, read_json

logger = logging.getLogger(__name__)


def export_peft(prompt_path: Path, out_dir: Path, model_config=None, base_model_name_or_path: str | None = None) -> Path:
    tensors, meta = read_prompt_file(prompt_path)
    if meta.kind != "plain":
        raise SoftevalError(f"this prompt is conditional ({meta.kind} map from a {meta.condition_dim}-d condition); "
                            "PEFT's prompt-tuning format holds only plain prompts, so it cannot be exported")
    if meta.placement != "before_bos":
        logger.warning("prompt was trained with placement %s; PEFT inserts virtual tokens before BOS, so its "
                       "loss under PEFT will differ (train with --placement before_bos for an exact match)",
                       meta.placement)
    emb = tensors[PEFT_KEY]
    out_dir = Path(out_dir)
    cfg = {
        "peft_type": "PROMPT_TUNING",
        "task_type": "CAUSAL_LM",
        "num_virtual_tokens": int(emb.shape[0]),
        "token_dim": int(emb.shape[1]),
        "num_transformer_submodules": 1,
        "num_attention_heads": int(getattr(model_config, "num_attention_heads", 0) or 0) or None,
        "num_layers": int(getattr(model_config, "num_hidden_layers", 0) or 0) or None,
        "prompt_tuning_init": "RANDOM",
        "prompt_tuning_init_text": None,
        "tokenizer_name_or_path": None,
        "tokenizer_kwargs": None,
        "base_model_name_or_path": base_model_name_or_path or meta.model_name,
        "revision": None,
        "inference_mode": True,
        "modules_to_save": None,
        "auto_mapping": None,
    }
    atomic_write_json(out_dir / "adapter_config.json", cfg)
    atomic_write_bytes(out_dir / "adapter_model.safetensors",
                       safetensors_save({PEFT_KEY: emb.contiguous()}, metadata={"format": "pt"}))
    atomic_write_json(out_dir / "softeval_metadata.json", {k: json.loads(v) for k, v in meta.to_strings().items()})
    return out_dir


def import_peft(adapter_dir: Path) -> tuple[SoftPrompt, dict]:
    """Read a PEFT prompt-tuning adapter folder into a SoftPrompt (placement before_bos)."""
    adapter_dir = Path(adapter_dir)
    cfg_path = adapter_dir / "adapter_config.json"
    if not cfg_path.exists():
        raise SoftevalError(f"{adapter_dir} is not a PEFT adapter folder (no adapter_config.json)")
    cfg = read_json(cfg_path, "PEFT adapter config")
    if not isinstance(cfg, dict):
        raise SoftevalError(f"{cfg_path} is not a PEFT adapter config (expected a JSON object)")
    if cfg.get("peft_type") != "PROMPT_TUNING":
        raise SoftevalError(f"{adapter_dir} holds a {cfg.get('peft_type')} adapter; only PROMPT_TUNING can be imported")
    weights = adapter_dir / "adapter_model.safetensors"
    try:
        if weights.exists():
            with safe_open(str(weights), framework="pt") as f:
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        elif (weights := adapter_dir / "adapter_model.bin").exists():
            tensors = torch.load(weights, map_location="cpu", weights_only=True)
        else:
            raise SoftevalError(f"{adapter_dir} has no adapter_model.safetensors")
    except (SafetensorError, pickle.UnpicklingError, EOFError, RuntimeError) as exc:  # truncated or not a weights file
        raise SoftevalError(f"{weights} is not a readable adapter weights file ({str(exc).splitlines()[0]}); "
                            "export the adapter again") from exc
    if not isinstance(tensors, dict):
        raise SoftevalError(f"{weights} does not hold named tensors")
    key = next((k for k in tensors if k.endswith(PEFT_KEY)), None)
    if key is None:
        raise SoftevalError(f"{weights} has no '{PEFT_KEY}' tensor (keys: {', '.join(tensors)})")
    if tensors[key].dim() != 2:
        raise SoftevalError(f"{weights}: '{key}' has shape {tuple(tensors[key].shape)}; a prompt-tuning adapter "
                            "holds (num_virtual_tokens, token_dim)")
    return SoftPrompt(tensors[key].float()), cfg


def metadata_for_import(cfg: dict, model_info, n: int) -> PromptMetadata:
    from softeval import __version__

    return PromptMetadata(
        model_name=model_info.name, model_sha256=model_info.weights_sha256,
        tokenizer_sha256=model_info.tokenizer_sha256, hidden_size=model_info.hidden_size, num_virtual_tokens=n,
        task_spec={"task": "peft-import", "base_model_name_or_path": cfg.get("base_model_name_or_path")},
        task_hash="peft-import", init="peft", seed=-1, steps=-1, placement="before_bos",
        softeval_version=__version__,
    )
