"""Tasks: what behaviour a prompt is trained towards.

A task turns its config (and a tokenizer) into `TaskData`: tokenized train and held-out examples,
a JSON-able spec that identifies the behaviour (its hash is stored in every prompt), and optional
task metrics. Built-ins register themselves by name in `TASKS`. Tasks may import the engine (examples,
generation for their metrics), the store and the config; the instruments and `softeval.train` import them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from softeval.engine.batching import Example
from softeval.config import option
from softeval.errors import ConfigError, DataError, unknown_choice
from softeval.store.identity import DATA_WHY


@dataclass(frozen=True)
class TaskConfig:
    """Options shared by all tasks; task-specific ones go in `options` and are checked by the task."""

    name: str = option("jsonl", flag="--task", choices=lambda: available_tasks(),
                       help="task (`softeval tasks` lists them); jsonl = a behaviour file given by --data")
    data: str | None = option(None, flag="--data", help="behaviour file: JSONL with prompt/completion or text per "
                                                        "line (chess: PGN file)", identity=False, why=DATA_WHY)
    eval_data: str | None = option(None, flag="--eval-data", help="held-out file (default: a split of --data)",
                                   identity=False, why=DATA_WHY)
    corpus: str | None = option(None, flag="--corpus", help="UTF-8 text file for text tasks (default: text "
                                                            "shipped with softeval)", identity=False, why=DATA_WHY)
    num_train: int = option(256, flag="--num-train", help="training examples to build (text/procedural tasks)")
    num_eval: int = option(32, flag="--num-eval", help="held-out examples, the same for every prompt length")
    eval_fraction: float = option(0.1, flag="--eval-fraction", help="jsonl: share of lines held out when no "
                                                                    "--eval-data is given")
    context_tokens: int = option(64, flag="--context-tokens", help="text tasks: tokens of text before the scored part")
    target_tokens: int = option(32, flag="--target-tokens", help="text tasks: scored positions per example")
    max_length: int = option(512, help="jsonl: truncate longer examples (prompt side first)")
    seed: int = option(0, flag="--data-seed", help="data selection/split seed (independent of the prompt's seed)")
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        for key in ("num_train", "num_eval", "context_tokens", "target_tokens", "max_length"):
            if getattr(self, key) < 0:
                raise ConfigError(f"task.{key} must be >= 0, got {getattr(self, key)}")
        if not 0.0 <= self.eval_fraction < 1.0:
            raise ConfigError(f"task.eval_fraction must be in [0, 1), got {self.eval_fraction}")


@dataclass
class TaskData:
    train: list[Example]
    eval: list[Example]
    spec: dict                      # identifies the behaviour: settings + content hash of each data file, by role
    condition_dim: int = 0
    # (lm, prompt | None, eval_examples, placement="after_bos") -> dict of flat numbers, plus an optional
    # "by_condition" list of {"condition": [raw values], <numbers>}; stored in results.json by train.run
    metrics: Callable | None = None
    generation_contexts: list[list[int]] = field(default_factory=list)  # for report samples
    # Every file the task read, by role ("data", "eval_data", "corpus", "data.1"…), for result identity
    # (softeval.store.identity.result_identity); their content hashes are also in spec["data_sha256"].
    data_files: dict[str, Path] = field(default_factory=dict)

    @property
    def spec_hash(self) -> str:
        return spec_hash(self.spec)


def spec_hash(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def data_hashes(files: dict[str, Path]) -> dict[str, str]:
    """Content hash of each file a task read, keyed by role, not path: moving a file keeps its prompts valid,
    a different file (or a changed one) makes the task another one."""
    from softeval.store import hash_file

    return {role: hash_file(path) for role, path in sorted(files.items())}


def role_files(role: str, paths: list[Path]) -> dict[str, Path]:
    """Roles for the files behind one setting: 'data' for a single file, else 'data.0', 'data.1', … in read order."""
    if len(paths) == 1:
        return {role: paths[0]}
    return {f"{role}.{i}": p for i, p in enumerate(paths)}


TaskBuilder = Callable[[TaskConfig, object], TaskData]
TASKS: dict[str, TaskBuilder] = {}


def register_task(name: str):
    def wrap(fn: TaskBuilder) -> TaskBuilder:
        TASKS[name] = fn
        return fn

    return wrap


def build_task(cfg: TaskConfig, tokenizer) -> TaskData:
    _load_builtin_tasks()
    if cfg.name not in TASKS:
        raise ConfigError(unknown_choice("task", cfg.name, list(TASKS)))
    data = TASKS[cfg.name](cfg, tokenizer)
    if not data.train and cfg.num_train:
        raise DataError(f"task '{cfg.name}' produced no training examples; give it more data")
    if not data.eval:
        raise DataError(f"task '{cfg.name}' produced no held-out examples; raise num_eval or give it more data")
    return data


def task_options(cfg: TaskConfig, defaults: type) -> object:
    """Check `cfg.options` against a task's options dataclass, rejecting unknown keys."""
    known = set(defaults.__dataclass_fields__)
    unknown = sorted(set(cfg.options) - known)
    if unknown:
        raise ConfigError(f"task '{cfg.name}' has no option(s) {', '.join(unknown)}; "
                          f"its options are: {', '.join(sorted(known)) or 'none'}")
    return defaults(**cfg.options)


def available_tasks() -> list[str]:
    _load_builtin_tasks()
    return sorted(TASKS)


def _load_builtin_tasks() -> None:
    # Imported lazily so optional dependencies (python-chess) are only needed by their task.
    from softeval.tasks import behaviour, jsonl, text  # noqa: F401

    for optional in ("softeval.tasks.chess", "softeval.tasks.pathfinding"):
        try:
            __import__(optional)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("softeval"):
                continue
            raise


__all__ = ["TaskConfig", "TaskData", "TASKS", "register_task", "build_task", "available_tasks", "data_hashes",
           "role_files", "asdict"]
