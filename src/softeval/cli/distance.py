"""softeval distance: prompt-length sweep, loss curve and saturation point S(ε)."""

from __future__ import annotations

import argparse

from softeval.cli.common import add_config_command_flags, config_from_args

EXAMPLES = """examples:
  softeval distance --config configs/distance_quick.yaml
  softeval distance --task jsonl --data my_behaviour.jsonl --tokens 0,1,4,16,64 --seeds 3 --steps 100 --out runs/mine
  softeval distance --task skip-k --skip 4 --corpus my_text.txt optim.lr=0.05 --out runs/skip4
  (re-run the same command to continue an interrupted sweep)
"""


def register(sub) -> None:
    from softeval.distance.config import DistanceConfig

    p = sub.add_parser("distance", help="sweep prompt lengths × seeds: loss curve and saturation point S(ε)",
                       description="Train soft prompts of n = 0, 1, 4, … tokens (several seeds each), score them "
                                   "all on the same held-out examples, and report where more tokens stop helping. "
                                   "Re-running with the same --out continues an interrupted sweep.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_command_flags(p, DistanceConfig)
    p.add_argument("--no-report", dest="no_report", action="store_true", help="skip the HTML report")
    p.set_defaults(handler=cmd_distance, continue_hint="re-run the same command to continue")


def cmd_distance(args) -> int:
    import softeval.distance as distance

    cfg = config_from_args(distance.DistanceConfig, args, {"report": False} if args.no_report else None)
    result = distance.run(cfg)
    print(distance.format_table(result.results))
    print(f"results: {result.out_dir / 'results.json'}")
    if result.report_path:
        print(f"report: {result.report_path}")
    return 0
