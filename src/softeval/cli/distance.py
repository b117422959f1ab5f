"""softeval distance: prompt-length sweep, loss curve and saturation point S(ε)."""

from __future__ import annotations

from softeval.cli.common import (TASK_FLAGS, add_config_flags, add_model_flags, add_task_flags, deep_update, given,
                                 task_option_flags)
from softeval.config import build_config

DISTANCE_FLAGS = {
    "model": "model", "device": "device", "dtype": "dtype", "precision": "precision", "tokens": "tokens",
    "seeds": "seeds", "init": "init", "init_text": "init_text", "steps": "max_steps", "batch_size": "batch_size",
    "lr": "lr", "warmup_steps": "warmup_steps", "epsilon": "epsilon", "epsilon_relative": "epsilon_relative",
    "reference_model": "reference_model", "max_batch_tokens": "max_batch_tokens",
    "checkpoint_every": "checkpoint_every", "out": "out", **TASK_FLAGS,
}


def register(sub) -> None:
    p = sub.add_parser("distance", help="sweep prompt lengths × seeds: loss curve and saturation point S(ε)",
                       description="Train soft prompts of n = 0, 1, 4, … tokens (several seeds each), score them "
                                   "all on the same held-out examples, and report where more tokens stop helping. "
                                   "Re-running with the same --out continues an interrupted sweep.")
    add_model_flags(p)
    add_task_flags(p)
    g = p.add_argument_group("sweep")
    g.add_argument("--tokens", default=None, help="prompt lengths, comma-separated (default 0,1,4,16,64)")
    g.add_argument("--seeds", type=int, default=None, help="seeds per length (default 3)")
    g.add_argument("--steps", type=int, default=None, help="optimizer steps per cell (default 100)")
    g.add_argument("--batch-size", dest="batch_size", type=int, default=None, help="rows per cell per step")
    g.add_argument("--lr", type=float, default=None)
    g.add_argument("--warmup-steps", dest="warmup_steps", type=int, default=None)
    g.add_argument("--init", default=None, choices=["vocab", "text", "random", "zeros"])
    g.add_argument("--init-text", dest="init_text", default=None)
    g.add_argument("--precision", default=None, choices=["auto", "fp32", "bf16", "fp16"])
    g.add_argument("--epsilon", type=float, default=None, help="S(ε), absolute ε in nats/token (default 0.01)")
    g.add_argument("--epsilon-relative", dest="epsilon_relative", type=float, default=None,
                   help="S(ε), relative ε as a fraction of the total gain (default 0.05)")
    g.add_argument("--reference-model", dest="reference_model", default=None,
                   help="also score this model (same tokenizer) and report the share of the gap each n closes")
    g.add_argument("--max-batch-tokens", dest="max_batch_tokens", type=int, default=None,
                   help="train several cells in one pass while rows × padded length stays under this "
                        "(default: from half the free memory; 0 = one cell at a time)")
    g.add_argument("--checkpoint-every", dest="checkpoint_every", type=int, default=None)
    p.add_argument("--out", default=None, help="sweep directory (default runs/distance); re-run to resume")
    p.add_argument("--no-report", dest="no_report", action="store_true", help="skip the HTML report")
    add_config_flags(p)
    p.set_defaults(handler=cmd_distance, continue_hint="re-run the same command to continue")


def cmd_distance(args) -> int:
    import softeval.distance as distance

    flags = deep_update(given(args, DISTANCE_FLAGS), task_option_flags(args))
    if "tokens" in flags:
        flags["tokens"] = list(distance.parse_tokens(flags["tokens"]))  # a clear message for a bad list
    if args.quiet:
        flags["show_progress"] = False
    if args.no_report:
        flags["report"] = False
    cfg = build_config(distance.DistanceConfig, args.config, args.overrides, flags)
    result = distance.run(cfg)
    print(distance.format_table(result.results))
    print(f"results: {result.out_dir / 'results.json'}")
    if result.report_path:
        print(f"report: {result.report_path}")
    return 0
