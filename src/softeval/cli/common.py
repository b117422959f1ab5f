"""Flags shared by several commands."""

from __future__ import annotations

import argparse

from softeval.engine.models import DEFAULT_MODEL


def add_model_flags(p: argparse.ArgumentParser, multiple: bool = False) -> None:
    if multiple:
        p.add_argument("--model", action="append", default=None,
                       help=f"model: embedded name, HF id, local folder or .gguf (repeatable; default {DEFAULT_MODEL})")
    else:
        p.add_argument("--model", default=None,
                       help=f"embedded name, Hugging Face id, local folder or .gguf file (default {DEFAULT_MODEL})")
    p.add_argument("--device", default=None, choices=["auto", "cpu", "cuda", "mps"], help="default auto")
    p.add_argument("--dtype", default=None, choices=["auto", "float32", "bfloat16", "float16"],
                   help="weights dtype (default auto: fp32 on CPU, bf16 on CUDA)")


def add_config_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="YAML config file (see configs/)")
    p.add_argument("overrides", nargs="*", default=[], metavar="KEY=VALUE",
                   help="dotted config overrides, e.g. task.num_train=512 lr=0.01")


def progress_enabled(args: argparse.Namespace) -> bool:
    return not getattr(args, "quiet", False)


def add_task_flags(p: argparse.ArgumentParser) -> None:
    """The task section's flags (generated from TaskConfig) plus the task-option shortcuts, for commands
    whose config is not a whole TrainConfig (eval)."""
    from softeval.config import add_dataclass_flags
    from softeval.tasks import TaskConfig

    add_dataclass_flags(p, TaskConfig, prefix="task.", groups={"task": "task"})
    _add_task_option_flags(p)


def _add_task_option_flags(p: argparse.ArgumentParser) -> None:
    g = next((a for a in p._action_groups if a.title == "task"), p)
    g.add_argument("--repeat-text", dest="repeat_text", default=None, help="repetition: the string to repeat")
    g.add_argument("--skip", type=int, default=None, help="skip-k: how many tokens to skip")


def task_option_flags(args: argparse.Namespace) -> dict:
    opts = {}
    if getattr(args, "repeat_text", None) is not None:
        opts["text"] = args.repeat_text
    if getattr(args, "skip", None) is not None:
        opts["skip"] = args.skip
    return {"task": {"options": opts}} if opts else {}


def deep_update(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = deep_update(out.get(k) or {}, v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# --------------------------------------------------------------------------- generated flags

SECTION_TITLES = {"task": "task", "prompt": "prompt", "optim": "optimisation", "execution": "execution (docs/cluster.md)"}


def add_config_command_flags(p: argparse.ArgumentParser, cls, skip: tuple[str, ...] = ()) -> None:
    """Every flag of config class `cls` (generated from its field metadata), the task-option shortcuts, `--config`
    and KEY=VALUE overrides: the one grammar of commands that take a config."""
    from softeval.config import add_dataclass_flags

    add_dataclass_flags(p, cls, skip=skip, groups=SECTION_TITLES)
    _add_task_option_flags(p)
    add_config_flags(p)


def config_from_args(cls, args: argparse.Namespace, extra: dict | None = None):
    """YAML (--config), then the flags given, then KEY=VALUE overrides, into `cls`."""
    from softeval.config import build_config, given_flags

    flags = deep_update(given_flags(args), extra or {})
    task_options = task_option_flags(args)
    if task_options:
        flags = deep_update(flags, task_options)
    if getattr(args, "quiet", False) and "show_progress" in getattr(cls, "__dataclass_fields__", {}):
        flags["show_progress"] = False
    return build_config(cls, args.config, args.overrides, flags)
