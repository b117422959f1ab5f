"""softeval train (the commands that use a saved prompt are in cli/prompts.py)"""

from __future__ import annotations

import argparse
from pathlib import Path

from softeval.cli.common import add_config_command_flags, config_from_args, deep_update, task_option_flags
from softeval.cli.prompts import record_card
from softeval.errors import ConfigError

EXAMPLES = """examples:
  softeval train --data my_behaviour.jsonl --tokens 16 --steps 100 --out runs/mine
  softeval train --task repetition --repeat-text " hello" --tokens 16 optim.lr=0.05 task.num_train=512
  softeval train --config configs/x.yaml --placement before_bos     # PEFT's layout (exports on any model)
  softeval train --resume runs/mine            # after Ctrl-C, a kill or a crash: continues exactly
"""


def register(sub) -> None:
    from softeval.train import TrainConfig

    p = sub.add_parser("train", help="train a soft prompt on a behaviour dataset or task", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_command_flags(p, TrainConfig)
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue an interrupted run exactly")
    p.set_defaults(handler=cmd_train, continue_hint="continue with --resume RUN_DIR")


def cmd_train(args) -> int:
    import softeval.train as train_mod
    from softeval.config import given_flags

    if args.resume:
        flags = deep_update(given_flags(args), task_option_flags(args))
        if args.quiet:
            flags["show_progress"] = False
        if args.config:
            raise ConfigError("--resume continues the stored config; drop --config")
        _refuse_config_not_object(Path(args.resume))
        cfg = train_mod.resume_config(Path(args.resume), flags, args.overrides)
        result = train_mod.run(cfg, resume=True)
    else:
        cfg = config_from_args(train_mod.TrainConfig, args)
        if cfg.task.name == "jsonl" and not cfg.task.data:
            raise ConfigError("nothing to train on: pass --data FILE.jsonl or --task NAME (see `softeval tasks`)")
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


def _refuse_config_not_object(run_dir: Path) -> None:
    """A run's config.json that is JSON but not an object (damaged by hand or a tool) is a one-line error."""
    from softeval.store import read_json

    path = run_dir / "config.json"
    if path.is_file() and not isinstance(stored := read_json(path, "run config"), dict):
        raise ConfigError(f"{path} holds a JSON {type(stored).__name__}, not a run config; restore it or start a "
                          "new run with another --out")
