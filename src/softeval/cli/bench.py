"""softeval bench: zero-shot vs k-shot vs soft-prompt-tuned benchmark evaluation."""

from __future__ import annotations

from softeval.cli.common import add_config_flags, given, progress_enabled
from softeval.config import build_config

BENCH_FLAGS = {
    "model": "models", "task": "tasks", "modes": "modes", "forms": "forms", "shots": "shots", "tokens": "num_virtual_tokens",
    "steps": "max_steps", "batch_size": "batch_size", "lr": "lr", "curve_steps": "curve_steps",
    "num_train": "num_train", "limit": "limit", "max_gen_toks": "max_gen_toks", "data_dir": "data_dir",
    "reference": "reference", "device": "device", "dtype": "dtype", "precision": "precision",
    "eval_batch_size": "eval_batch_size", "seed": "seed", "out": "out",
}


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _ints(value: str) -> list[int]:
    return [int(v) for v in _csv(value)]


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmark models zero-shot, k-shot and with a tuned soft prompt",
                       description="Evaluate models on benchmarks in three modes (zero-shot, k-shot, soft prompt "
                                   "tuned on the training split) with format-following and accuracy reported "
                                   "separately, saturation curves and rank correlations. Tasks: arc_easy, "
                                   "arc_challenge, mmlu, gsm8k, commonsense_qa, an lm-eval task YAML or a softeval "
                                   "task spec (docs/bench.md).")
    p.add_argument("--model", action="append", default=None, help="model (repeatable): embedded name, HF id, folder")
    p.add_argument("--task", type=_csv, default=None, help="comma-separated tasks, e.g. arc_easy,gsm8k")
    p.add_argument("--modes", type=_csv, default=None, help="subset of zero,few,soft (default all)")
    p.add_argument("--forms", type=_csv, default=None, help="gen (generated answers), ll (log-likelihood); default both")
    p.add_argument("--shots", type=int, default=None, help="k for the few-shot mode (default 5)")
    p.add_argument("--tokens", type=int, default=None, help="soft-prompt length (default 10)")
    p.add_argument("--steps", type=int, default=None, help="tuning steps for the soft mode (default 80)")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=None, help="tuning batch (default 8)")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--curve-steps", dest="curve_steps", type=_ints, default=None,
                   help="saturation-curve steps (default 0,10,20,40,80,160; '' for none)")
    p.add_argument("--num-train", dest="num_train", type=int, default=None)
    p.add_argument("--limit", type=int, default=None, help="first N evaluation items per task")
    p.add_argument("--max-gen-toks", dest="max_gen_toks", type=int, default=None, help="cap generated tokens")
    p.add_argument("--data-dir", dest="data_dir", default=None, help="local data in original layouts (else the Hub)")
    p.add_argument("--reference", default=None, help="CSV/JSON reference ranking (model, score)")
    p.add_argument("--device", default=None, choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--dtype", default=None, choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--precision", default=None, choices=["fp32", "bf16", "fp16"])
    p.add_argument("--eval-batch-size", dest="eval_batch_size", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--out", default=None, help="output folder (default runs/bench); re-running skips finished units")
    p.add_argument("--list-tasks", action="store_true", help="list the built-in tasks and exit")
    add_config_flags(p)
    p.set_defaults(handler=cmd_bench, continue_hint="re-run the same command to continue")


def cmd_bench(args) -> int:
    if args.list_tasks:
        from softeval.bench.tasks import BUILTIN_TASKS

        for name, t in sorted(BUILTIN_TASKS.items()):
            forms = "generative + log-likelihood" if t.ll_yaml else "generative"
            print(f"{name:16s} {t.answer:7s} {forms}")
        return 0
    from softeval.bench.runner import BenchConfig, run

    flags = given(args, BENCH_FLAGS)
    if not progress_enabled(args):
        flags["show_progress"] = False
    cfg = build_config(BenchConfig, args.config, args.overrides, flags)
    result = run(cfg)
    for model, per_task in result.results.items():
        for task, per_mode in per_task.items():
            for mode, m in per_mode.items():
                parts = [f"{k} {100 * m[k]:.1f}" for k in ("format_rate", "strict_acc", "acc_given_format",
                                                            "lenient_acc", "ll_acc") if k in m and m[k] == m[k]]
                print(f"{model} {task} {mode}: " + ", ".join(parts))
    print(f"results: {result.out_dir / 'results.json'}")
    print(f"report: {result.report_path}")
    return 0
