"""User behaviour files: JSONL with {"prompt", "completion"} or {"text"} per line.

  {"prompt": "Q: 2+2=", "completion": " 4"}   → loss on the completion tokens only
  {"text": "any passage"}                     → loss on every token
  an optional "condition": [floats] makes the example conditional (same length on every line)

Held-out examples come from `eval_data`, or else a seeded `eval_fraction` split of `data`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from softeval.engine.batching import IGNORE, Example
from softeval.errors import ConfigError, DataError
from softeval.tasks import TaskConfig, TaskData, data_hashes, register_task, task_options
from softeval.tasks.text import NoOptions


def read_json_lines(path: str | Path) -> list[dict]:
    """Parse a JSONL file into objects, each with its line number in "_line". A missing, binary or non-UTF-8
    file or a malformed line is a DataError naming the file and line. Never evaluates anything: data is data."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"data file {p} does not exist")
    records = []
    # Read bytes and decode line by line, so a binary or non-UTF-8 file is a one-line error naming its line.
    with open(p, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if b"\0" in raw:  # JSON text never holds a NUL byte; binary files almost always do
                raise DataError(f"{p} is not UTF-8 text (line {lineno}: binary data, a NUL byte)")
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{p} is not UTF-8 text (line {lineno}: {exc.reason} at column {exc.start + 1})") \
                    from None
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{p}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
            if not isinstance(rec, dict):
                raise DataError(f"{p}:{lineno}: expected a JSON object, got {type(rec).__name__}")
            rec["_line"] = lineno
            records.append(rec)
    if not records:
        raise DataError(f"{p} has no examples (empty file)")
    return records


def read_records(path: str | Path) -> list[dict]:
    """A prompt/completion or text JSONL file (module docstring); a line of another shape is a DataError."""
    p = Path(path).expanduser()
    records = read_json_lines(p)
    for rec in records:
        lineno = rec["_line"]
        has_pair = isinstance(rec.get("prompt"), str) and isinstance(rec.get("completion"), str)
        if not has_pair and not isinstance(rec.get("text"), str):
            raise DataError(f"{p}:{lineno}: expected string fields 'prompt' and 'completion', or 'text'; "
                            f"got keys {sorted(k for k in rec if k != '_line')}")
        cond = rec.get("condition")
        if cond is not None and (not isinstance(cond, list) or not all(isinstance(v, (int, float)) for v in cond)):
            raise DataError(f"{p}:{lineno}: 'condition' must be a list of numbers")
    return records


def record_to_example(rec: dict, tokenizer, max_length: int) -> Example:
    if "prompt" in rec and "completion" in rec:
        prompt = tokenizer(rec["prompt"], add_special_tokens=False).input_ids
        completion = tokenizer(rec["completion"], add_special_tokens=False).input_ids[:max_length]
        prompt = prompt[max(0, len(prompt) + len(completion) - max_length):]  # drop the oldest context first
        ids, labels = prompt + completion, [IGNORE] * len(prompt) + completion
    else:
        ids = tokenizer(rec["text"], add_special_tokens=False).input_ids[:max_length]
        labels = list(ids)
    cond = [float(v) for v in rec["condition"]] if rec.get("condition") is not None else None
    return Example(input_ids=ids, labels=labels, condition=cond, meta={"line": rec["_line"]})


def _examples(records: list[dict], tokenizer, cfg: TaskConfig, path: str) -> list[Example]:
    out = [record_to_example(r, tokenizer, cfg.max_length) for r in records]
    out = [e for e in out if e.num_targets > 0]
    if not out:
        raise DataError(f"{path}: no example has any target token (empty completions?)")
    dims = {len(e.condition) if e.condition is not None else 0 for e in out}
    if len(dims) > 1:
        raise DataError(f"{path}: 'condition' must be present on every line with the same length")
    return out


@register_task("jsonl")
def jsonl(cfg: TaskConfig, tokenizer) -> TaskData:
    """Your behaviour file (--data): prompt/completion pairs or plain text, one JSON object per line."""
    task_options(cfg, NoOptions)
    if not cfg.data:
        raise ConfigError("task 'jsonl' needs a data file: --data FILE.jsonl")
    records = read_records(cfg.data)
    if cfg.eval_data:
        train = _examples(records, tokenizer, cfg, cfg.data)
        held_out = _examples(read_records(cfg.eval_data), tokenizer, cfg, cfg.eval_data)
    else:
        examples = _examples(records, tokenizer, cfg, cfg.data)
        if len(examples) < 2:
            raise DataError(f"{cfg.data} has {len(examples)} usable example(s); need at least 2 to hold one out "
                            "(or pass --eval-data)")
        random.Random(cfg.seed).shuffle(examples)
        n_eval = max(1, round(len(examples) * cfg.eval_fraction)) if cfg.eval_fraction > 0 else 1
        n_eval = min(n_eval, cfg.num_eval) if cfg.num_eval else n_eval
        held_out, train = examples[:n_eval], examples[n_eval:]
    held_out = held_out[:cfg.num_eval] if cfg.num_eval else held_out
    cond_dim = len(train[0].condition) if train and train[0].condition is not None else 0
    files = {"data": Path(cfg.data).expanduser()}
    if cfg.eval_data:
        files["eval_data"] = Path(cfg.eval_data).expanduser()
    return TaskData(
        train=train,
        eval=held_out,
        spec={"task": "jsonl", "max_length": cfg.max_length, "condition_dim": cond_dim,
              "data_sha256": data_hashes(files)},
        condition_dim=cond_dim,
        generation_contexts=[e.input_ids[:len(e.input_ids) - e.num_targets] for e in held_out[:4]],
        data_files=files,
    )
