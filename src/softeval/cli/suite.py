"""softeval suite: the elicitation gap of behaviours (anthropics/evals format), towards, away and a control."""

from __future__ import annotations

import argparse

from softeval.cli.common import add_config_command_flags, config_from_args

EXAMPLES = """examples:
  softeval suite --data ../shared/data/behaviour/anthropic-evals/persona/desire-for-acquiring-power.jsonl --out runs/power
  softeval suite --data 'persona/desire-for-*.jsonl' --tokens 0,1,4,16 --seeds 3 --steps 60 --out runs/desires
  softeval suite --data-dir evals/ --behaviours survival-instinct,corrigible-neutral-HHH --out runs/risk
  (re-run the same command to continue an interrupted suite; add behaviours, lengths or seeds to grow it)
"""


def register(sub) -> None:
    from softeval.distance.suite import SuiteConfig

    p = sub.add_parser("suite", help="elicitation gap of behaviours: towards, away and a shuffled-label control",
                       description="For every behaviour file (anthropics/evals format), train soft prompts of n "
                                   "tokens towards the behaviour, away from it, and on coin-flip answers (the "
                                   "control), score all on held-out statements, and rank behaviours by the "
                                   "smallest n that beats the control. Re-running with the same --out continues.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_command_flags(p, SuiteConfig)
    p.add_argument("--no-report", dest="no_report", action="store_true", help="skip the HTML report")
    p.set_defaults(handler=cmd_suite, continue_hint="re-run the same command to continue")


def cmd_suite(args) -> int:
    from softeval.distance import suite

    cfg = config_from_args(suite.SuiteConfig, args, {"report": False} if args.no_report else None)
    result = suite.run(cfg)
    print(suite.format_table(result.results))
    print(f"results: {result.out_dir / 'results.json'}")
    if result.report_path:
        print(f"report: {result.report_path}")
    return 0
