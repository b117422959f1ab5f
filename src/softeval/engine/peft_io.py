"""PEFT prompt-tuning adapters: export a softeval prompt, import one trained with PEFT.

Format (what `PeftModel.from_pretrained` reads): a folder with `adapter_config.json`
(peft_type PROMPT_TUNING, task_type CAUSAL_LM, num_virtual_tokens, token_dim, …) and
`adapter_model.safetensors` holding one tensor `prompt_embeddings` of shape (n, D). softeval adds
`softeval_metadata.json` (the prompt's full metadata) and `README.md` (its prompt card).

PEFT puts the virtual tokens before everything, BOS included: softeval's `before_bos` placement.
An export must mean what was trained, so an `after_bos` prompt is exported only where the two
layouts are the same sequence, i.e. when the model's tokenizer adds no BOS (SmolLM2); otherwise the
export is refused with the command that trains a PEFT-compatible prompt. The format has no notion
of conditional prompts, so those cannot be exported.

An imported adapter has no softeval task: it is recorded as task "any" (usable with every task,
no --allow-mismatch needed) with its source on the card.

Written with plain json/safetensors: PEFT itself is only needed to *use* the adapter (and in tests).
"""

from __future__ import annotations

import json
import pickle
import shlex
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_save

from softeval.store.card import ANY_TASK, card_facts, render_card
from softeval.errors import SoftevalError
from softeval.engine.prompt import PEFT_KEY, PromptMetadata, SoftPrompt, read_prompt_file
from softeval.store import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json

PEFT_USAGE = """
## Use with PEFT

```python
from peft import PeftModel
from transformers import AutoModelForCausalLM
base = AutoModelForCausalLM.from_pretrained("{base}")   # the model on the card (same weights hash)
model = PeftModel.from_pretrained(base, "{folder}")
```

Or back into softeval: `softeval import-peft {folder} --out prompt.safetensors`.
"""


class PeftPlacementError(SoftevalError):
    """An after_bos prompt for a model with BOS: PEFT would place it elsewhere and score it differently."""


def _prompt_file(prompt_path: Path) -> Path:
    p = Path(prompt_path)
    return p / "prompt.safetensors" if p.is_dir() else p


def retrain_command(prompt_path: Path, meta: PromptMetadata) -> str:
    """The `softeval train` command that trains this prompt again with PEFT's placement (before BOS)."""
    prompt_file = _prompt_file(prompt_path)
    run_dir = prompt_file.parent
    if (run_dir / "config.json").is_file() and (run_dir / "model.json").is_file():
        # A train run folder: its resolved config is the exact recipe.
        out = f"{run_dir}-before_bos"
        return shlex.join(["softeval", "train", "--config", str(run_dir / "config.json"), "--placement", "before_bos",
                           "--out", out])
    command = ((meta.extra or {}).get("card") or {}).get("command")
    if command and shlex.split(command)[1:2] == ["train"]:
        words, kept, i = shlex.split(command), [], 0
        while i < len(words):
            w = words[i]
            if w == "--placement":
                i += 2
                continue
            if w.startswith("--placement="):
                i += 1
                continue
            if w == "--out" and i + 1 < len(words):
                kept += ["--out", words[i + 1] + "-before_bos"]
                i += 2
                continue
            kept.append(w)
            i += 1
        return shlex.join(kept + ["--placement", "before_bos"])
    task = (meta.task_spec or {}).get("task", "jsonl")
    return shlex.join(["softeval", "train", "--model", meta.model_name, "--task", str(task), "--tokens",
                       str(meta.num_virtual_tokens), "--steps", str(max(meta.steps, 0)), "--seed", str(meta.seed),
                       "--init", meta.init, "--placement", "before_bos"]) + " <your task's data flags>"


def export_peft(prompt_path: Path, out_dir: Path, model_info=None, model_config=None,
                base_model_name_or_path: str | None = None) -> Path:
    """Write a PEFT prompt-tuning adapter folder that scores exactly as the prompt did in softeval.

    `model_info` (the prompt's model) tells whether its tokenizer adds BOS; without it an `after_bos`
    prompt cannot be shown to be faithful and is refused.
    """
    tensors, meta = read_prompt_file(prompt_path)
    if meta.kind != "plain":
        raise SoftevalError(f"this prompt is conditional ({meta.kind} map from a {meta.condition_dim}-d condition); "
                            "PEFT's prompt-tuning format holds only plain prompts, so it cannot be exported")
    no_bos = model_info is not None and model_info.bos_token_id is None
    if meta.placement != "before_bos" and not no_bos:
        model = model_info.name if model_info is not None else meta.model_name
        raise PeftPlacementError(
            f"this prompt sits after BOS ({meta.placement}) but PEFT puts virtual tokens before BOS, and "
            f"{model}'s tokenizer adds a BOS, so the adapter would score differently; train a PEFT-compatible "
            f"prompt with: {retrain_command(prompt_path, meta)}")
    emb = tensors[PEFT_KEY]
    out_dir = Path(out_dir)
    base = base_model_name_or_path or meta.model_name
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
        "base_model_name_or_path": base,
        "revision": None,
        "inference_mode": True,
        "modules_to_save": None,
        "auto_mapping": None,
    }
    atomic_write_json(out_dir / "adapter_config.json", cfg)
    atomic_write_bytes(out_dir / "adapter_model.safetensors",
                       safetensors_save({PEFT_KEY: emb.contiguous()}, metadata={"format": "pt"}))
    atomic_write_json(out_dir / "softeval_metadata.json", {k: json.loads(v) for k, v in meta.to_strings().items()})
    note = "" if meta.placement == "before_bos" else (
        "\nTrained after BOS; this model's tokenizer adds no BOS, so PEFT's layout (virtual tokens first) is the "
        "same sequence and the adapter scores exactly as the prompt did.\n")
    atomic_write_text(out_dir / "README.md", render_card(meta) + note + PEFT_USAGE.format(base=base, folder=out_dir))
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


def adapter_model_name(adapter_dir: Path) -> str | None:
    """The model an adapter was made for: softeval's record if it exported it, else PEFT's base model."""
    adapter_dir = Path(adapter_dir)
    ours, cfg = adapter_dir / "softeval_metadata.json", adapter_dir / "adapter_config.json"
    if ours.is_file():
        return _model_field(ours, "model_name", "softeval prompt metadata")
    return _model_field(cfg, "base_model_name_or_path", "PEFT adapter config") if cfg.is_file() else None


def _model_field(path: Path, key: str, what: str) -> str | None:
    """A model name from one of an adapter's JSON files; a corrupt file is a user error naming the way out."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SoftevalError(f"{path} is not a readable {what} ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                            "pass the adapter's base model with --model") from None
    name = record.get(key) if isinstance(record, dict) else None
    if not isinstance(record, dict) or not isinstance(name, (str, type(None))):
        raise SoftevalError(f"{path} is not a {what} (expected a JSON object with a string '{key}'); "
                            "pass the adapter's base model with --model")
    return name


def metadata_for_import(cfg: dict, model_info, n: int, adapter_dir: Path | None = None,
                        command: str | None = None) -> PromptMetadata:
    from softeval.version import __version__

    source = f"PEFT adapter {Path(adapter_dir).resolve()}" if adapter_dir else "PEFT adapter"
    if cfg.get("base_model_name_or_path"):
        source += f" (base model {cfg['base_model_name_or_path']})"
    return PromptMetadata(
        model_name=model_info.name, model_sha256=model_info.weights_sha256,
        tokenizer_sha256=model_info.tokenizer_sha256, hidden_size=model_info.hidden_size, num_virtual_tokens=n,
        task_spec={"task": ANY_TASK, "source": source}, task_hash=ANY_TASK, init="peft", seed=-1, steps=-1,
        placement="before_bos", softeval_version=__version__,
        extra={"card": card_facts(command=command, source=source)},
    )
