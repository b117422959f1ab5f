"""Prompt cards: a short, human-readable account of what a saved prompt is.

A prompt file is only worth sharing if someone who did not train it can check what it means: which
model (and exact weights) it fits, which task and data it was trained on, how long it is, how far it
got, and how to reproduce it. The card says that in a dozen lines. It lives in two places:

  * in the prompt's own metadata (`meta.extra["card"]`: the facts the metadata fields do not already
    hold: held-out score, data file hashes, command line, source) and, rendered, under the header key
    `card` of the .safetensors file, so any safetensors reader shows it;
  * as README.md in an exported PEFT adapter folder (the file Hugging Face tools show for a folder).

Everything here is pure: `render_card` turns metadata into text, and nothing reads a model.
"""

from __future__ import annotations

from pathlib import Path

from softeval.store import hash_file

CARD_KEY = "card"  # header key of the rendered card in a prompt .safetensors file
ANY_TASK = "any"   # task_hash of a prompt with no softeval task (an imported PEFT adapter): fits every task


def card_facts(held_out: dict | None = None, data_files: dict[str, str | Path | None] | None = None,
               command: str | None = None, source: str | None = None) -> dict:
    """The card's own facts, stored under `meta.extra["card"]` (JSON; None values dropped)."""
    facts: dict = {}
    if held_out:
        facts["held_out"] = {k: held_out[k] for k in ("loss", "token_accuracy", "num_targets", "precision")
                             if held_out.get(k) is not None}
    data = {role: hash_file(p) for role, p in sorted((data_files or {}).items()) if p and Path(p).is_file()}
    if data:
        facts["data_sha256"] = data
    if command:
        facts["command"] = command
    if source:
        facts["source"] = source
    return facts


def task_data_files(task_cfg) -> dict[str, str | None]:
    """The files a task config reads, by role (their content hashes go on the card)."""
    return {f"task.{k}": getattr(task_cfg, k, None) for k in ("data", "eval_data", "corpus")}


def _short(sha: str | None) -> str:
    return (sha or "unknown")[:16]


def card_dict(meta) -> dict:
    """Everything the card shows, as one flat JSON-able dict (also what `softeval show --json` prints)."""
    facts = dict((meta.extra or {}).get("card") or {})
    spec = dict(meta.task_spec or {})
    return {
        "model": meta.model_name,
        "model_sha256": meta.model_sha256,
        "tokenizer_sha256": meta.tokenizer_sha256,
        "task": spec.get("task", "unknown"),
        "task_spec": spec,
        "task_hash": meta.task_hash,
        "data_sha256": facts.get("data_sha256", {}),
        "num_virtual_tokens": meta.num_virtual_tokens,
        "hidden_size": meta.hidden_size,
        "prompt_kind": meta.kind,
        "placement": meta.placement,
        "init": meta.init,
        "seed": meta.seed,
        "steps": meta.steps,
        "held_out": facts.get("held_out"),
        "softeval_version": meta.softeval_version,
        "command": facts.get("command"),
        "source": facts.get("source"),
    }


def render_card(meta) -> str:
    """The card as text: one fact per line, the same order every time."""
    c = card_dict(meta)
    spec = {k: v for k, v in c["task_spec"].items() if k != "task"}
    task = c["task"] if c["task_hash"] != ANY_TASK else "any (no softeval task recorded; evaluate it on yours)"
    kind = "plain" if c["prompt_kind"] == "plain" else f"conditional ({c['prompt_kind']} map)"
    lines = [
        "# softeval prompt card",
        f"prompt:     {c['num_virtual_tokens']} vectors x {c['hidden_size']} ({kind}), placement {c['placement']}",
        f"model:      {c['model']} (weights sha256 {_short(c['model_sha256'])}, "
        f"tokenizer sha256 {_short(c['tokenizer_sha256'])})",
        f"task:       {task}" + (f" {spec}" if spec and c["task_hash"] != ANY_TASK else ""),
        f"task hash:  {c['task_hash']}",
    ]
    if c["data_sha256"]:
        lines.append("data:       " + ", ".join(f"{role} sha256 {_short(sha)}" for role, sha in c["data_sha256"].items()))
    if c["steps"] is not None and c["steps"] >= 0:
        lines.append(f"training:   {c['steps']} steps, seed {c['seed']}, init {c['init']}")
    held = c["held_out"]
    if held and held.get("loss") is not None:
        acc = f", token accuracy {held['token_accuracy']:.4f}" if held.get("token_accuracy") is not None else ""
        how = f" ({held['precision']} autocast)" if held.get("precision") else ""
        lines.append(f"held-out:   loss {held['loss']:.4f} nats/token{acc}{how}")
    else:
        lines.append("held-out:   not recorded")
    if c["source"]:
        lines.append(f"source:     {c['source']}")
    lines.append(f"softeval:   {c['softeval_version']}")
    if c["command"]:
        lines.append(f"command:    {c['command']}")
    return "\n".join(lines) + "\n"
