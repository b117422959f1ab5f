"""softeval eval | generate | export-peft | import-peft: using a saved prompt.

`eval` takes a task the way `train` and `distance` do (task flags, --config, KEY=VALUE overrides), on
top of the task recorded in the prompt's run folder; `eval_task_config` is that grammar, in one place.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path

from softeval.cli.common import (add_config_flags, add_model_flags, add_task_flags, deep_update, progress_enabled,
                                 task_option_flags)
from softeval.errors import ConfigError, SoftevalError

logger = logging.getLogger(__name__)

EVAL_EXAMPLES = """examples:
  softeval eval --prompt runs/mine                                  # the task it was trained on, held-out split
  softeval eval --prompt runs/mine --data held_out.jsonl            # every line of another file
  softeval eval --prompt runs/mine task.num_eval=64                 # KEY=VALUE overrides, as in train
  softeval eval --prompt imported.safetensors --config runs/mine/config.json   # a task from a config file
  softeval eval --prompt none --task repetition --repeat-text " hello"          # the plain model (n = 0)
  softeval eval --prompt sweep/cells/n16_s0 --config sweep/cells/n16_s0/config.json --task-metrics
                                                          # chess / pathfinding: legal moves, Elo check, validity
"""
GENERATE_EXAMPLES = """examples:
  softeval generate --prompt runs/mine --text "Country: Italy\\nCapital:"
  softeval generate --prompt runs/paths --condition 0,0 --text "Grid: ..."     # conditional prompt
"""
EXPORT_EXAMPLES = """examples:
  softeval export-peft --prompt runs/mine --out runs/mine-peft
  # then in Python: PeftModel.from_pretrained(base_model, "runs/mine-peft")
"""
IMPORT_EXAMPLES = """examples:
  softeval import-peft runs/mine-peft --out imported.safetensors
  softeval import-peft their-adapter/ --model smollm2-135m-instruct --out theirs.safetensors
  softeval eval --prompt theirs.safetensors --data my_task.jsonl      # usable on any task
"""


def _parser(sub, name: str, help: str, examples: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".", epilog=examples,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def register(sub) -> None:
    e = _parser(sub, "eval", "held-out loss and token accuracy of a trained prompt", EVAL_EXAMPLES)
    e.add_argument("--prompt", required=True, help="run directory or prompt .safetensors (or 'none' for n = 0)")
    add_model_flags(e)
    add_task_flags(e)
    e.add_argument("--batch-size", dest="batch_size", type=int, default=16)
    e.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    e.add_argument("--allow-mismatch", action="store_true", help="use the prompt even if model/task differ")
    e.add_argument("--json", action="store_true", help="print JSON")
    e.add_argument("--task-metrics", dest="task_metrics", action="store_true",
                   help="also compute the task's own metrics on the held-out split (chess: legal moves and the "
                        "Elo check; pathfinding: validity and extra moves); slower, as it generates")
    add_config_flags(e)
    e.set_defaults(handler=cmd_eval)

    gen = _parser(sub, "generate", "generate text with a trained prompt (KV-cached)", GENERATE_EXAMPLES)
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

    x = _parser(sub, "export-peft", "write a PEFT prompt-tuning adapter folder (with its prompt card)",
                EXPORT_EXAMPLES)
    x.add_argument("--prompt", required=True, help="run directory or prompt .safetensors")
    add_model_flags(x)
    x.add_argument("--out", required=True, help="adapter folder to write")
    x.add_argument("--allow-mismatch", action="store_true", help="export even if --model is not the prompt's model")
    x.set_defaults(handler=cmd_export)

    i = _parser(sub, "import-peft", "turn a PEFT prompt-tuning adapter into a softeval prompt file", IMPORT_EXAMPLES)
    i.add_argument("adapter", help="folder with adapter_config.json + adapter_model.safetensors")
    add_model_flags(i)
    i.add_argument("--out", required=True, help="output .safetensors path")
    i.set_defaults(handler=cmd_import)


# --------------------------------------------------------------------------- shared


def command_line(args: argparse.Namespace) -> str | None:
    """The command as the user typed it, for the prompt card (None when softeval runs inside another program)."""
    argv = getattr(args, "argv", None)
    if argv is None:
        # Only trust sys.argv when this process is the softeval command (console script, -m or -c run_main()).
        entry = Path(sys.argv[0])
        if not (entry.name in ("softeval", "-c") or entry.parent.name in ("softeval", "cli")):
            return None
        argv = sys.argv[1:]
    return shlex.join(["softeval", *argv])


def record_card(prompt_path: Path | None, held_out: dict, task_cfg, args: argparse.Namespace,
                precision: str = "auto") -> None:
    """Complete a freshly trained prompt's card: held-out score (and the autocast it was scored under, so
    `softeval eval --precision` can reproduce it), data file hashes, command line."""
    import torch

    from softeval.store.card import task_data_files
    from softeval.engine.prompt import add_card_facts
    from softeval.store import read_json
    from softeval.engine.loop import resolve_precision

    if prompt_path is None:
        return
    model = read_json(Path(prompt_path).parent / "model.json", "run model record")
    precision = resolve_precision(precision, torch.device(model["device"]), getattr(torch, model["dtype"]))
    add_card_facts(prompt_path, held_out={**held_out, "precision": precision}, data_files=task_data_files(task_cfg),
                   command=command_line(args))


def _read_meta(prompt_arg: str):
    from softeval.engine.prompt import read_prompt_file

    return None if prompt_arg.lower() == "none" else read_prompt_file(Path(prompt_arg))[1]


def _load_model(args, meta, config_model: str | None = None):
    """--model if given, else the model of --config, else the model recorded in the prompt's metadata."""
    from softeval.engine.models import DEFAULT_MODEL, load_model

    name = args.model or config_model or (meta.model_name if meta else None) or DEFAULT_MODEL
    return load_model(name, args.device or "auto", args.dtype or "auto", show_progress=progress_enabled(args))


def _say_imported(meta) -> None:
    """An imported adapter is used on the user's task without a check: say so, on stderr (stdout is data)."""
    from softeval.store.card import ANY_TASK

    if meta is not None and meta.task_hash == ANY_TASK:
        print(f"prompt: task any, source: {meta.task_spec.get('source', 'PEFT adapter')}; "
              "no softeval task recorded, so it is used on this task without a task check", file=sys.stderr)


# --------------------------------------------------------------------------- eval


def recorded_task(prompt_arg: str) -> dict:
    """The task section of the run the prompt came from (its config.json), or {} for a bare prompt file."""
    from softeval.store import read_json

    if prompt_arg.lower() == "none":
        return {}
    p = Path(prompt_arg)
    run_dir = p if p.is_dir() else p.parent
    cfg = run_dir / "config.json"
    if not (cfg.is_file() and (run_dir / "model.json").is_file()):
        return {}
    task = read_json(cfg, "run config").get("task")
    return dict(task) if isinstance(task, dict) else {}


def eval_task_config(args: argparse.Namespace, meta) -> tuple[object, bool, str | None]:
    """The task `eval` scores on, written as `train` writes it. Layers, later wins: the task recorded with
    the prompt (its run's config.json, else the task name in its metadata), --config's task section,
    task flags, then KEY=VALUE overrides. Non-task keys are checked against train's schema (so a train
    command line's overrides are accepted) and otherwise unused: they say how the prompt was trained.

    Returns (TaskConfig, whether --data / task.data named the file to score, the model --config names)."""
    from softeval.store.card import ANY_TASK
    from softeval.config import dotted_to_nested, instantiate, load_yaml, merge_into
    from softeval.tasks import TaskConfig
    from softeval.train import TrainConfig

    data = merge_into(TaskConfig, {}, recorded_task(args.prompt))
    if not data and meta is not None and meta.task_hash != ANY_TASK and meta.task_spec.get("task"):
        data = {"name": meta.task_spec["task"]}
    config_model = None
    user_task: dict = {}
    if args.config:
        file = load_yaml(args.config)
        section = file.get("task") or {}
        if not isinstance(section, dict):  # `task: repetition` reads naturally but is not train's layout either
            raise ConfigError(f"{args.config}: config key 'task' expects a mapping, e.g. 'task: {{name: {section}}}' "
                              f"(or pass --task {section}), got {section!r}")
        user_task = merge_into(TaskConfig, user_task, section)
        config_model = file.get("model")
        if config_model is not None and not isinstance(config_model, str):
            raise ConfigError(f"{args.config}: config key 'model' expects a model name or path, got {config_model!r}")
    from softeval.config import given_flags

    flags = deep_update(given_flags(args), task_option_flags(args)).get("task", {})
    overrides = dotted_to_nested(args.overrides)
    merge_into(TrainConfig, {}, overrides)  # unknown keys: the same refusal (with a suggestion) as train
    named_file = "data" in flags or "data" in (overrides.get("task") or {})
    user_task = merge_into(TaskConfig, user_task, flags)
    user_task = merge_into(TaskConfig, user_task, overrides.get("task") or {})
    if "model" in overrides:
        config_model = str(overrides["model"])
    if "data" in user_task and "name" not in user_task and data.get("name") not in (None, "jsonl", "chess"):
        user_task["name"] = "jsonl"  # a behaviour file for a prompt trained on a built-in text task: score the file
    if user_task.get("name") not in (None, data.get("name")):
        data = {}  # another task: the recorded one's options do not carry over
    if "data" in user_task and "eval_data" not in user_task:
        data.pop("eval_data", None)  # a file the user names is what they want scored
    data = merge_into(TaskConfig, data, user_task)
    if not data.get("name") and not data.get("data"):
        if meta is not None and meta.task_hash == ANY_TASK:
            raise ConfigError("this prompt was imported from a PEFT adapter and has no softeval task: say what to "
                              "score it on with --data FILE.jsonl, --task NAME or --config RUN/config.json")
        raise ConfigError("nothing to evaluate on: pass --data FILE.jsonl or --task NAME (see `softeval tasks`)")
    return instantiate(TaskConfig, data), named_file, config_model


def cmd_eval(args) -> int:
    from softeval.distance.cells import task_metrics
    from softeval.engine.evaluate import evaluate_prompt
    from softeval.engine.prompt import load_prompt
    from softeval.tasks import build_task

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    meta = _read_meta(args.prompt)
    task_cfg, user_data, config_model = eval_task_config(args, meta)
    lm = _load_model(args, meta, config_model)
    task = build_task(task_cfg, lm.tokenizer)
    prompt = None
    if meta is not None:
        prompt, meta = load_prompt(Path(args.prompt), lm.info, task_spec=task.spec,
                                   allow_mismatch=args.allow_mismatch)
    _say_imported(meta)
    data_sha256 = scored_and_trained_data(meta, task.spec)
    placement = meta.placement if meta else "after_bos"
    # A behaviour file named by --data is scored whole; otherwise the task's held-out split.
    whole_file = task_cfg.name == "jsonl" and user_data and not task_cfg.eval_data
    examples = task.train + task.eval if whole_file else task.eval
    result = evaluate_prompt(lm.model, prompt, examples, bos_id=lm.info.bos_token_id, pad_id=lm.info.pad_token_id,
                             placement=placement, batch_size=args.batch_size, precision=args.precision)
    metrics, by_condition, per_example = {}, [], {}
    if args.task_metrics:
        if task.metrics is None:
            raise ConfigError(f"task {task.spec.get('task')!r} has no task metrics beyond loss and token accuracy; "
                              "drop --task-metrics")
        metrics, by_condition, per_example = task_metrics(task, lm, prompt, placement, args.precision)
    if args.json:
        print(json.dumps({**result.to_dict(), "example_losses": result.example_losses,
                          "num_examples": len(examples), "task": task.spec,
                          "prompt_task": meta.task_spec.get("task") if meta else None, "data_sha256": data_sha256,
                          **({"task_metrics": metrics, "condition_metrics": by_condition, "per_example": per_example}
                             if args.task_metrics else {})}))
    else:
        print(f"loss {result.loss:.4f} nats/token, token accuracy {result.token_accuracy:.3f} "
              f"over {result.num_targets} target tokens ({len(examples)} examples)")
        for name, value in metrics.items():
            print(f"  {name:<48} {value:.6g}")
    return 0


def scored_and_trained_data(meta, scored_spec: dict) -> dict:
    """Which data was scored and which the prompt was trained on (content hashes by role), for the output;
    held-out data (same task kind, other files) is said on stderr in one line, as the result is about it."""
    from softeval.store.card import ANY_TASK

    scored = scored_spec.get("data_sha256") or {}
    trained = (meta.task_spec.get("data_sha256") or {}) if meta is not None and meta.task_hash != ANY_TASK else None
    if trained is not None and trained != scored:
        print(f"eval: scoring other data than the prompt was trained on (same task kind and format): trained on "
              f"{_short_hashes(trained)}, scoring {_short_hashes(scored)}", file=sys.stderr)
    return {"scored": scored, "trained": trained}


def _short_hashes(hashes: dict) -> str:
    return ", ".join(f"{role} {sha[:12]}" for role, sha in sorted(hashes.items())) or "none"


# --------------------------------------------------------------------------- generate


def cmd_generate(args) -> int:
    from softeval.engine.generate import generate
    from softeval.engine.prompt import load_prompt

    _check_sampling(args)
    meta = _read_meta(args.prompt)
    lm = _load_model(args, meta)
    prompt = None
    if meta is not None:
        prompt, meta = load_prompt(Path(args.prompt), lm.info, allow_mismatch=args.allow_mismatch)
    _say_imported(meta)
    conditions = _parse_conditions(args.condition, len(args.text), meta.condition_dim if meta else 0)
    outs = generate(lm, prompt, args.text, max_new_tokens=args.max_new_tokens,
                    placement=meta.placement if meta else "after_bos", temperature=args.temperature,
                    top_p=args.top_p, seed=args.seed, conditions=conditions)
    for text, out in zip(args.text, outs):
        print(f"{text}\u2502{out}")
    return 0


def _check_sampling(args) -> None:
    """Values generate would otherwise take silently (a negative length generates nothing, top-p 2 is top-p 1)."""
    errors = []
    if args.max_new_tokens < 1:
        errors.append(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    if not args.temperature >= 0:
        errors.append(f"--temperature must be >= 0 (0 = greedy), got {args.temperature}")
    if not 0 < args.top_p <= 1:
        errors.append(f"--top-p must be in (0, 1], got {args.top_p}")
    if errors:
        raise ConfigError("; ".join(errors))


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


# --------------------------------------------------------------------------- PEFT


def cmd_export(args) -> int:
    from softeval.engine.peft_io import export_peft
    from softeval.engine.prompt import load_prompt

    from softeval.store import check_writable_folder

    check_writable_folder(Path(args.out), "the adapter")
    meta = _read_meta(args.prompt)
    if meta is None:
        raise ConfigError("export-peft needs a trained prompt (--prompt RUN_DIR or FILE.safetensors)")
    if meta.kind == "plain":  # conditional prompts are refused by export_peft before any model work
        # The model tells whether its tokenizer adds BOS, i.e. whether PEFT's layout is the trained one.
        lm = _load_model(args, meta)
        load_prompt(Path(args.prompt), lm.info, allow_mismatch=args.allow_mismatch)  # the model is the prompt's
        out = export_peft(Path(args.prompt), Path(args.out), model_info=lm.info, model_config=lm.model.config)
    else:
        out = export_peft(Path(args.prompt), Path(args.out))
    print(out)
    print((Path(out) / "README.md").read_text().split("\n## ")[0].rstrip())
    return 0


def cmd_import(args) -> int:
    from softeval.engine.models import DEFAULT_MODEL, load_model
    from softeval.engine.peft_io import adapter_model_name, import_peft, metadata_for_import
    from softeval.engine.prompt import save_prompt

    from softeval.store import check_writable_folder

    check_writable_folder(Path(args.out).parent, "the prompt")
    prompt, cfg = import_peft(Path(args.adapter))
    name = args.model or adapter_model_name(Path(args.adapter)) or DEFAULT_MODEL
    lm = load_model(name, args.device or "auto", args.dtype or "auto", show_progress=progress_enabled(args))
    if prompt.embeddings.shape[1] != lm.info.hidden_size:
        raise SoftevalError(f"adapter token_dim {prompt.embeddings.shape[1]} does not match {lm.info.name}'s "
                            f"hidden size {lm.info.hidden_size}; pass the adapter's base model with --model")
    meta = metadata_for_import(cfg, lm.info, prompt.num_virtual_tokens, Path(args.adapter), command_line(args))
    save_prompt(Path(args.out), prompt, meta)
    print(args.out)
    print(f"task: any, source: {meta.task_spec['source']}; use it with eval/generate/lm-eval on any task "
          "(no --allow-mismatch needed)")
    return 0
