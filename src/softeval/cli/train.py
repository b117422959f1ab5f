"""softeval train | eval | generate | export-peft | import-peft"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from softeval.cli.common import (TASK_FLAGS, add_config_command_flags, add_model_flags, add_task_flags,
                                 config_from_args, deep_update, given, progress_enabled, task_option_flags)
from softeval.config import merge_into
from softeval.errors import ConfigError, SoftevalError

EXAMPLES = """examples:
  softeval train --data my_behaviour.jsonl --tokens 16 --steps 100 --out runs/mine
  softeval train --task repetition --repeat-text " hello" --tokens 16 optim.lr=0.05 task.num_train=512
  softeval train --resume runs/mine            # after Ctrl-C, a kill or a crash: continues exactly
"""


def register(sub) -> None:
    from softeval.train import TrainConfig

    p = sub.add_parser("train", help="train a soft prompt on a behaviour dataset or task", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_command_flags(p, TrainConfig)
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue an interrupted run exactly")
    p.set_defaults(handler=cmd_train, continue_hint="continue with --resume RUN_DIR")

    e = sub.add_parser("eval", help="held-out loss and token accuracy of a trained prompt")
    e.add_argument("--prompt", required=True, help="run directory or prompt .safetensors (or 'none' for n = 0)")
    add_model_flags(e)
    add_task_flags(e)
    e.add_argument("--batch-size", dest="batch_size", type=int, default=16)
    e.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    e.add_argument("--allow-mismatch", action="store_true", help="use the prompt even if model/task differ")
    e.add_argument("--json", action="store_true", help="print JSON")
    e.set_defaults(handler=cmd_eval)

    gen = sub.add_parser("generate", help="generate text with a trained prompt (KV-cached)")
    gen.add_argument("--prompt", required=True, help="run directory or prompt .safetensors (or 'none')")
    add_model_flags(gen)
    gen.add_argument("--text", action="append", required=True, help="context text (repeatable)")
    gen.add_argument("--max-new-tokens", dest="max_new_tokens", type=int, default=48)
    gen.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    gen.add_argument("--top-p", dest="top_p", type=float, default=1.0)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--condition", action="append", default=None, metavar="C1,C2,...",
                     help="normalised condition vector for a conditional prompt (one for all texts, or one per --text)")
    gen.add_argument("--allow-mismatch", action="store_true")
    gen.set_defaults(handler=cmd_generate)

    x = sub.add_parser("export-peft", help="write a PEFT prompt-tuning adapter folder")
    x.add_argument("--prompt", required=True)
    x.add_argument("--out", required=True)
    x.set_defaults(handler=cmd_export)

    i = sub.add_parser("import-peft", help="turn a PEFT prompt-tuning adapter into a softeval prompt file")
    i.add_argument("adapter", help="folder with adapter_config.json + adapter_model.safetensors")
    add_model_flags(i)
    i.add_argument("--out", required=True, help="output .safetensors path")
    i.set_defaults(handler=cmd_import)


def cmd_train(args) -> int:
    import softeval.train as train_mod
    from softeval.config import given_flags

    if args.resume:
        flags = deep_update(given_flags(args), task_option_flags(args))
        if args.quiet:
            flags["show_progress"] = False
        if args.config:
            raise ConfigError("--resume continues the stored config; drop --config")
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
    print(f"prompt: {result.prompt_path}")
    flat = {k: v for k, v in result.task_metrics.items() if isinstance(v, (int, float))}
    if flat:
        print("task metrics: " + ", ".join(f"{k} {v:.4g}" for k, v in flat.items()))
    return 0


def _load_prompt_arg(prompt_arg: str, lm, task_hash=None, allow_mismatch=False):
    from softeval.prompt import load_prompt

    if prompt_arg.lower() == "none":
        return None, None
    return load_prompt(Path(prompt_arg), lm.info, task_hash=task_hash, allow_mismatch=allow_mismatch)


def _model_for_prompt(args):
    """--model if given, else the model recorded in the prompt's metadata."""
    from softeval.models import DEFAULT_MODEL, load_model
    from softeval.prompt import read_prompt_file

    name = args.model
    if name is None and args.prompt.lower() != "none":
        name = read_prompt_file(Path(args.prompt))[1].model_name
    return load_model(name or DEFAULT_MODEL, args.device or "auto", args.dtype or "auto",
                      show_progress=progress_enabled(args))


def cmd_eval(args) -> int:
    from softeval.evaluate import evaluate_prompt
    from softeval.prompt import read_prompt_file
    from softeval.tasks import build_task

    lm = _model_for_prompt(args)
    task_flags = deep_update(given(args, TASK_FLAGS), task_option_flags(args)).get("task", {})
    meta = read_prompt_file(Path(args.prompt))[1] if args.prompt.lower() != "none" else None
    if "name" not in task_flags:
        task_flags["name"] = meta.task_spec.get("task", "jsonl") if meta else "jsonl"
    task = build_task(merge_task(task_flags), lm.tokenizer)
    prompt, meta = _load_prompt_arg(args.prompt, lm, task.spec_hash, args.allow_mismatch)
    placement = meta.placement if meta else "after_bos"
    examples = task.eval if (task_flags.get("eval_data") or task_flags["name"] != "jsonl") else task.train + task.eval
    result = evaluate_prompt(lm.model, prompt, examples, bos_id=lm.info.bos_token_id, pad_id=lm.info.pad_token_id,
                             placement=placement, batch_size=args.batch_size, precision=args.precision)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(f"loss {result.loss:.4f} nats/token, token accuracy {result.token_accuracy:.3f} "
              f"over {result.num_targets} target tokens ({len(examples)} examples)")
    return 0


def merge_task(task_flags: dict):
    from softeval.config import instantiate
    from softeval.tasks import TaskConfig

    return instantiate(TaskConfig, merge_into(TaskConfig, {}, task_flags))


def cmd_generate(args) -> int:
    from softeval.generate import generate

    lm = _model_for_prompt(args)
    prompt, meta = _load_prompt_arg(args.prompt, lm, allow_mismatch=args.allow_mismatch)
    conditions = _parse_conditions(args.condition, len(args.text), meta.condition_dim if meta else 0)
    outs = generate(lm, prompt, args.text, max_new_tokens=args.max_new_tokens,
                    placement=meta.placement if meta else "after_bos", temperature=args.temperature,
                    top_p=args.top_p, seed=args.seed, conditions=conditions)
    for text, out in zip(args.text, outs):
        print(f"{text}\u2502{out}")
    return 0


def _parse_conditions(values: list[str] | None, num_texts: int, condition_dim: int) -> list[list[float]] | None:
    """--condition '0.5,-1' (repeatable) → one vector per text; checked against the prompt's condition_dim."""
    if not condition_dim:
        if values:
            raise ConfigError("--condition is only for conditional prompts; this prompt takes no condition")
        return None
    if not values:
        raise ConfigError(f"this prompt is conditional: pass --condition with {condition_dim} comma-separated "
                          "normalised values (see the task's docs for its normalisation)")
    if len(values) not in (1, num_texts):
        raise ConfigError(f"pass one --condition for all texts or one per --text ({num_texts}), got {len(values)}")
    try:
        vectors = [[float(v) for v in value.split(",")] for value in values]
    except ValueError:
        raise ConfigError(f"--condition expects comma-separated numbers, got {values}") from None
    if any(len(v) != condition_dim for v in vectors):
        raise ConfigError(f"--condition needs {condition_dim} values per vector, got {values}")
    return vectors * num_texts if len(vectors) == 1 else vectors


def cmd_export(args) -> int:
    from softeval.peft_io import export_peft

    out = export_peft(Path(args.prompt), Path(args.out))
    print(out)
    return 0


def cmd_import(args) -> int:
    from softeval.models import DEFAULT_MODEL, load_model
    from softeval.peft_io import import_peft, metadata_for_import
    from softeval.prompt import save_prompt

    prompt, cfg = import_peft(Path(args.adapter))
    lm = load_model(args.model or DEFAULT_MODEL, args.device or "auto", args.dtype or "auto",
                    show_progress=progress_enabled(args))
    if prompt.embeddings.shape[1] != lm.info.hidden_size:
        raise SoftevalError(f"adapter token_dim {prompt.embeddings.shape[1]} does not match {lm.info.name}'s "
                            f"hidden size {lm.info.hidden_size}")
    save_prompt(Path(args.out), prompt, metadata_for_import(cfg, lm.info, prompt.num_virtual_tokens))
    print(args.out)
    return 0
