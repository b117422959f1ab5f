"""The identity policy: one answer, for every command, to "does this setting change a number?".

A config field says it where it is declared: `option(..., identity=False, why="...")` (or `section(...)` for
a nested config). A field that says nothing is part of the identity, so a field added later is covered by
default. `settings_identity(cfg)` reads that metadata for any command's config; `result_identity` adds what
was resolved at run time (the weights dtype and autocast precision that actually ran, never `auto`; the
weights and tokenizer hashes), the content hash of every data file by its role (never its path), and the
version of the code that turns model outputs into numbers (`SCORING_VERSION`). Every "same result?" question
(train's resume, distance's sweep, bench's units, compare's "what differs", stability's grid) asks this
module; no other list of setting names decides it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from softeval.config import plain

# The identity.json format: 1 was written by softeval before this policy (settings chosen by per-command
# lists, paths and labels like `auto` inside); such folders stay readable but are not continued.
POLICY = 2

# Bumped when the code that turns model outputs into a kind's numbers changes (answer parsers, scoring,
# prompt layouts, the evaluator), so that a grown or continued folder never mixes old-code and new-code results.
SCORING_VERSION = {"train": 1, "distance": 1, "bench": 1, "suite": 1}


# Why a setting changes no number: the reasons shared by several commands' fields.
MODEL_WHY = "the weights and tokenizer hashes of the model that loaded stand for the name or path"
DEVICE_WHY = "where it runs; the weights dtype and precision that actually ran are recorded instead"
DTYPE_WHY = "a label ('auto'); the weights dtype that actually loaded is recorded instead"
PRECISION_WHY = "a label ('auto'); the autocast precision that actually ran is recorded instead"
REPORTING_WHY = "what is reported and how often, not what is computed"
CHECKPOINT_WHY = "how often a run can be continued; a resumed run ends bit-identical to an uninterrupted one"
OUT_WHY = "where results are written"
DATA_WHY = "a path; the content hash of the file, keyed by its role, is recorded instead"
GROW_WHY = "the grid may grow or shrink between runs; each result records its own value"


def field_policy(f: dataclasses.Field) -> tuple[bool, str]:
    """(is part of the identity, why not) as declared on the field."""
    return bool(f.metadata.get("identity", True)), str(f.metadata.get("why", ""))


def settings_identity(cfg) -> dict:
    """`cfg` (any command's config dataclass) as plain data, without the fields declared identity=False."""
    out = {}
    for f in dataclasses.fields(cfg):
        if not field_policy(f)[0]:
            continue
        value = getattr(cfg, f.name)
        out[f.name] = settings_identity(value) if dataclasses.is_dataclass(value) else plain(value)
    return out


def free_settings(cls, prefix: str = "") -> dict[str, str]:
    """Dotted name → why, for every field of `cls` (nested sections included) that changes no number."""
    import typing

    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        counts, why = field_policy(f)
        if not counts:
            out[prefix + f.name] = why
        elif dataclasses.is_dataclass(hints[f.name]):
            out.update(free_settings(hints[f.name], f"{prefix}{f.name}."))
    return out


def changes_numbers(cls, dotted: str) -> bool:
    """Whether the (dotted) setting of `cls` is part of the identity; unknown names count (the safe side)."""
    free = free_settings(cls)
    parts = dotted.split(".")
    return not any(".".join(parts[:i]) in free for i in range(1, len(parts) + 1))


def result_identity(kind: str, settings: dict, resolved: dict | None = None,
                    data_files: dict[str, str | Path | None] | None = None,
                    data_hashes: dict[str, str] | None = None) -> dict:
    """What a result *is*: the settings that can change its numbers, the values resolved where it ran, the
    content hash of every data file it read (keyed by role: moving a file changes nothing) and the scoring
    code's version. Strict JSON: the same data in, the same dict out, on any machine."""
    from softeval.store import dumps_json, hash_file

    data = {role: hash_file(p) for role, p in sorted((data_files or {}).items()) if p is not None}
    data.update(data_hashes or {})
    identity = {"policy": POLICY, "kind": kind, "code": SCORING_VERSION[kind], "settings": settings,
                "resolved": resolved or {}, "data": dict(sorted(data.items()))}
    return json.loads(dumps_json(identity, indent=None))


def differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted 'key: old → new' lines for every leaf that differs (64-hex hashes shortened)."""
    out = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            show = lambda v: (v[:12] + "…") if isinstance(v, str) and len(v) == 64 else repr(v)  # noqa: E731
            out.append(f"{prefix}{key}: {show(a)} → {show(b)}")
    return out


def flatten(data: dict, prefix: str = "") -> dict:
    """{"task": {"name": "x"}} → {"task.name": "x"} (lists and empty dicts kept as values)."""
    out = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def differing(identities: list[dict]) -> dict[str, list]:
    """Dotted key → value per result, for the identity entries that are not the same in every result (what
    `softeval compare` shows as "what differs")."""
    flat = [flatten(i or {}) for i in identities]
    keys = sorted({k for f in flat for k in f})
    out = {}
    for key in keys:
        values = [f.get(key) for f in flat]
        if len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1:
            out[key] = values
    return out


def comparable_settings(cls, config: dict, folder: Path, leave_out: tuple[str, ...] = ()) -> dict:
    """One result as the flat row that `softeval compare` and the stability grid set side by side: its config's
    settings that can change a number (as `cls` declares them), and from the folder's identity.json the facts
    resolved where it ran and its data hashes. `leave_out` names settings the caller varies on purpose."""
    from softeval.store.files import read_json

    row = {k: v for k, v in flatten(config or {}).items() if changes_numbers(cls, k) and k not in leave_out}
    path = Path(folder) / "identity.json"
    stored = read_json(path, "result identity") if path.exists() else None
    if is_current(stored):
        row.update({f"resolved.{k}": v for k, v in (stored.get("resolved") or {}).items()})
        row.update({f"data.{k}": v for k, v in (stored.get("data") or {}).items()})
    return row


def is_current(identity: dict) -> bool:
    return isinstance(identity, dict) and identity.get("policy") == POLICY


__all__ = ["POLICY", "SCORING_VERSION", "MODEL_WHY", "DEVICE_WHY", "DTYPE_WHY", "PRECISION_WHY",
           "REPORTING_WHY", "CHECKPOINT_WHY", "OUT_WHY", "DATA_WHY", "GROW_WHY", "settings_identity", "free_settings", "changes_numbers", "result_identity",
           "differences", "differing", "flatten", "is_current", "field_policy", "comparable_settings"]
