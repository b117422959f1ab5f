"""softeval train (the commands that use a saved prompt are in cli/prompts.py)"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from softeval.cli.common import (TASK_FLAGS, add_config_flags, add_model_flags, add_task_flags, deep_update, given,
                                 task_option_flags)
from softeval.cli.prompts import record_card
from softeval.config import build_config, dotted_to_nested, merge_into
from softeval.errors import ConfigError, SoftevalError

TRAIN_FLAGS = {
    "model": "model", "device": "device", "dtype": "dtype", "precision": "precision", "tokens": "num_virtual_tokens",
    "init": "init", "init_text": "init_text", "placement": "placement", "conditional": "conditional",
    "steps": "max_steps",
    "batch_size": "batch_size", "lr": "lr", "warmup_steps": "warmup_steps", "schedule": "schedule",
    "grad_clip": "grad_clip", "seed": "seed", "eval_every": "eval_every", "checkpoint_every": "checkpoint_every",
    "out": "out", **TASK_FLAGS,
}


TRAIN_EXAMPLES = """examples:
  softeval train --data my_behaviour.jsonl --tokens 16 --steps 100 --out runs/mine
  softeval train --task repetition --repeat-text " hello" --tokens 16 task.num_train=512 lr=0.05
  softeval train --config configs/x.yaml --placement before_bos     # PEFT's layout (exports on any model)
  softeval train --resume runs/mine                                  # after Ctrl-C or a crash
"""


def register(sub) -> None:
    p = sub.add_parser("train", help="train a soft prompt on a behaviour dataset or task", epilog=TRAIN_EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_flags(p)
    add_task_flags(p)
    g = p.add_argument_group("prompt and optimisation")
    g.add_argument("--tokens", type=int, default=None, help="number of soft-prompt vectors n (default 16)")
    g.add_argument("--init", default=None, choices=["vocab", "text", "random", "zeros"], help="default vocab")
    g.add_argument("--init-text", dest="init_text", default=None)
    g.add_argument("--placement", default=None, choices=["after_bos", "before_bos"])
    g.add_argument("--conditional", default=None, choices=["linear", "mlp"],
                   help="condition → prompt map, for tasks with conditions (chess, pathfinding; default linear)")
    g.add_argument("--steps", type=int, default=None, help="optimizer steps (default 100)")
    g.add_argument("--batch-size", dest="batch_size", type=int, default=None)
    g.add_argument("--lr", type=float, default=None)
    g.add_argument("--warmup-steps", dest="warmup_steps", type=int, default=None)
    g.add_argument("--schedule", default=None, choices=["cosine", "constant", "linear"])
    g.add_argument("--grad-clip", dest="grad_clip", type=float, default=None)
    g.add_argument("--precision", default=None, choices=["auto", "fp32", "bf16", "fp16"])
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--eval-every", dest="eval_every", type=int, default=None)
    g.add_argument("--checkpoint-every", dest="checkpoint_every", type=int, default=None)
    p.add_argument("--out", default=None, help="run directory (default runs/train)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue an interrupted run exactly")
    add_config_flags(p)
    p.set_defaults(handler=cmd_train, continue_hint="continue with --resume RUN_DIR")


def cmd_train(args) -> int:
    import softeval.train as train_mod

    flags = deep_update(given(args, TRAIN_FLAGS), task_option_flags(args))
    if args.quiet:
        flags["show_progress"] = False
    if args.resume:
        run_dir = Path(args.resume)
        cfg_path = run_dir / "config.json"
        if not cfg_path.exists():
            raise SoftevalError(f"{run_dir} is not a softeval run directory (no config.json)")
        stored = json.loads(cfg_path.read_text())
        allowed = {"max_steps", "show_progress", "device", "eval_every", "checkpoint_every"}
        extra = set(flags) - allowed
        if extra:
            raise ConfigError(f"--resume continues the stored config; only --steps/--device/--eval-every/"
                              f"--checkpoint-every may change (got {', '.join(sorted(extra))})")
        data = merge_into(train_mod.TrainConfig, stored, {**flags, **dotted_to_nested(args.overrides)})
        data["out"] = str(run_dir)
        cfg = train_mod.config_from_dict(data)
        result = train_mod.run(cfg, resume=True)
    else:
        if "task" not in flags or "name" not in flags.get("task", {}):
            if not (args.config or any(o.startswith("task.name=") for o in args.overrides)):
                flags = deep_update(flags, {"task": {"name": "jsonl"}})
        if flags.get("task", {}).get("name", "jsonl") == "jsonl" and not flags.get("task", {}).get("data") \
                and not args.config:
            raise ConfigError("nothing to train on: pass --data FILE.jsonl or --task NAME (see `softeval tasks`)")
        cfg = build_config(train_mod.TrainConfig, args.config, args.overrides, flags)
        result = train_mod.run(cfg)
    i, f = result.initial_eval, result.final_eval
    print(f"held-out loss {i['loss']:.4f} → {f['loss']:.4f} nats/token, token accuracy "
          f"{i['token_accuracy']:.3f} → {f['token_accuracy']:.3f} after {result.steps} steps")
    record_card(result.prompt_path, f, cfg.task, args, cfg.precision)
    print(f"prompt: {result.prompt_path}")
    flat = {k: v for k, v in result.task_metrics.items() if isinstance(v, (int, float))}
    if flat:
        print("task metrics: " + ", ".join(f"{k} {v:.4g}" for k, v in flat.items()))
    return 0
