"""softeval report DIR: a self-contained HTML report (plus PNGs) from a sweep or suite directory."""

from __future__ import annotations

import argparse
import webbrowser
from pathlib import Path



def register(sub) -> None:
    p = sub.add_parser("report", help="write an HTML report (plus PNGs) for a distance sweep or a suite",
                       description="Reads only the sweep's (or suite's) files (no model is loaded); works on partial "
                                   "ones.",
                       epilog='examples:\n  softeval report runs/distance_quick --open\n  softeval report runs/mine --out /tmp/mine-report\n',
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", help="the --out directory of a `softeval distance` or `softeval suite` run")
    p.add_argument("--out", default=None, help="report folder (default DIR/report)")
    p.add_argument("--open", action="store_true", help="open the report in a web browser")
    p.set_defaults(handler=cmd_report)


def cmd_report(args) -> int:
    from softeval.distance.summary import summarize_sweep
    from softeval.distance.report import write_report
    from softeval.store import SweepFolder, atomic_write_json, check_writable_folder

    from softeval.store import SuiteFolder

    suite = SuiteFolder(args.dir)
    if suite.behaviours_path.exists() and (suite.path / "sweeps").is_dir():
        from softeval.distance.suite import summarize_suite
        from softeval.distance.suite.report import write_report as write_suite_report

        out = Path(args.out) if args.out else suite.report_dir
        check_writable_folder(out, "the report")
        results = summarize_suite(suite.path)  # a partial suite: up to date
        atomic_write_json(suite.results_path, results)
        path = write_suite_report(suite.path, out, results=results)
        print(path)
        if args.open:
            webbrowser.open(path.resolve().as_uri())
        return 0
    sweep = SweepFolder(args.dir)
    out = Path(args.out) if args.out else sweep.report_dir
    check_writable_folder(out, "the report")
    # Re-summarise from the cells first, so a partial (interrupted) sweep gets an up-to-date results.json.
    atomic_write_json(sweep.results_path, summarize_sweep(sweep.path))
    path = write_report(sweep.path, out)
    print(path)
    if args.open:
        webbrowser.open(path.resolve().as_uri())
    return 0
