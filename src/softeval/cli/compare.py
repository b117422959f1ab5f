"""softeval compare RUN… and softeval stability: several runs side by side; S(ε) over lr × batch size."""

from __future__ import annotations

import argparse
import webbrowser
from pathlib import Path

from softeval.cli.common import add_config_command_flags, config_from_args


def register(sub) -> None:
    p = sub.add_parser("compare", help="several distance sweeps (or bench runs) side by side",
                       description="Loss vs n per sweep, S(ε) with bootstrap intervals (one ε for all), S vs model "
                                   "size, gap closed, differing settings and unstable cells; for bench folders, "
                                   "mode × model × task tables and tuning curves. Reads only the runs' files.",
                       epilog='examples:\n  softeval compare runs/smollm2 runs/gemma --label smollm2 --label gemma --out runs/compare\n  softeval compare runs/bench_a runs/bench_b\n',
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN", help="--out folders of `softeval distance` or `softeval bench`")
    p.add_argument("--out", default="runs/compare", help="report folder (default runs/compare)")
    p.add_argument("--label", action="append", default=None, help="a name per run, in order (repeatable)")
    p.add_argument("--allow-different-eval", dest="allow_different_eval", action="store_true",
                   help="compare runs scored on different held-out sets (numbers then differ in meaning)")
    p.add_argument("--epsilon", type=float, default=None, help="absolute ε for S (default: the first sweep's)")
    p.add_argument("--epsilon-relative", dest="epsilon_relative", type=float, default=None,
                   help="relative ε for S (default: the first sweep's)")
    p.add_argument("--bootstrap-samples", dest="bootstrap_samples", type=int, default=1000)
    p.add_argument("--open", action="store_true", help="open the report in a web browser")
    p.set_defaults(handler=cmd_compare)

    s = sub.add_parser("stability", help="the same sweep over learning rate × batch size: discontinuities and how "
                                         "S(ε) moves",
                       description="With --lrs and/or --batch-sizes, trains the distance sweep (built like "
                                   "`softeval distance`: --config, flags, KEY=VALUE) at every grid point into "
                                   "OUT/lr{lr}_bs{bs}/ (re-run to resume), then analyses OUT; without them, only "
                                   "analyses the sweeps already in OUT.",
                       epilog='examples:\n  softeval stability --config configs/distance_quick.yaml --lrs 0.03,0.1,0.3 --batch-sizes 4,8 --out runs/stab\n  softeval stability --out runs/stab          # analyse the grid points already there\n',
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    from softeval.distance.config import DistanceConfig

    add_config_command_flags(s, DistanceConfig, skip=("--out",))  # the sweep, exactly as `softeval distance` takes it
    g = s.add_argument_group("grid")
    g.add_argument("--lrs", default=None, help="learning rates, comma-separated (e.g. 0.01,0.03,0.1)")
    g.add_argument("--batch-sizes", dest="batch_sizes", default=None, help="batch sizes, comma-separated (e.g. 4,8)")
    g.add_argument("--sigmas", type=float, default=None, help="discontinuity: robust σ above the neighbours (5)")
    g.add_argument("--min-excess", dest="min_excess", type=float, default=None,
                   help="discontinuity: at least this many nats/token above the neighbours (0.05)")
    s.add_argument("--out", required=True, help="grid folder")
    s.add_argument("--no-report", dest="no_report", action="store_true", help="skip the HTML reports")
    s.set_defaults(handler=cmd_stability, continue_hint="re-run the same command to continue")


def cmd_compare(args) -> int:
    from softeval.compare import compare, format_summary
    from softeval.store import check_writable_folder

    check_writable_folder(Path(args.out), "the comparison")
    result = compare(args.runs, args.out, labels=args.label, allow_different_eval=args.allow_different_eval,
                     epsilon=args.epsilon, epsilon_relative=args.epsilon_relative,
                     bootstrap_samples=args.bootstrap_samples)
    print(format_summary(result.summary))
    print(f"results: {result.out_dir / 'compare.json'}")
    print(f"report: {result.report_path}")
    if args.open:
        webbrowser.open(result.report_path.resolve().as_uri())
    return 0


def _numbers(text: str, kind, flag: str) -> list:
    from softeval.errors import ConfigError

    try:
        return [kind(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{flag} must be comma-separated {kind.__name__} values, got {text!r}") from None


def cmd_stability(args) -> int:
    from softeval.distance import config as distance
    from softeval.distance import grid as stability
    from softeval.distance.stability import MIN_EXCESS, SIGMAS
    from softeval.distance.grid import grid_point
    from softeval.store import check_writable_folder

    check_writable_folder(Path(args.out), "the stability grid")
    knobs = {"sigmas": SIGMAS if args.sigmas is None else args.sigmas,
             "min_excess": MIN_EXCESS if args.min_excess is None else args.min_excess}
    if args.lrs is None and args.batch_sizes is None:
        result = stability.analyze_grid(args.out, report=not args.no_report, **knobs)
    else:
        base = config_from_args(distance.DistanceConfig, args, {"report": False} if args.no_report else None)
        lr, batch_size = grid_point(distance.config_dict(base))
        lrs = _numbers(args.lrs, float, "--lrs") if args.lrs is not None else [lr]
        sizes = _numbers(args.batch_sizes, int, "--batch-sizes") if args.batch_sizes is not None else [batch_size]
        result = stability.run_grid(base, lrs, sizes, args.out, report=not args.no_report, **knobs)
    summary = result.summary
    for mode in ("absolute", "relative"):
        m = summary["movement"][mode]["all"]
        print(f"S ({mode}) over {len(summary['points'])} grid point(s): {', '.join(m['distinct'])}"
              f"{' (one value)' if m['stable'] else ''}")
    print(f"unstable points: {', '.join(summary['unstable_points']) or 'none'}")
    print(f"results: {result.out_dir / 'stability.json'}")
    if result.report_path:
        print(f"report: {result.report_path}")
    return 0
