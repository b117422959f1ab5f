"""softeval report DIR: a self-contained HTML report (plus PNGs) from a sweep directory."""

from __future__ import annotations

import argparse
import webbrowser
from pathlib import Path



def register(sub) -> None:
    p = sub.add_parser("report", help="write an HTML report (plus PNGs) for a distance sweep directory",
                       description="Reads only the sweep's files (no model is loaded); works on partial sweeps.",
                       epilog='examples:\n  softeval report runs/distance_quick --open\n  softeval report runs/mine --out /tmp/mine-report\n',
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", help="the --out directory of a `softeval distance` run")
    p.add_argument("--out", default=None, help="report folder (default DIR/report)")
    p.add_argument("--open", action="store_true", help="open the report in a web browser")
    p.set_defaults(handler=cmd_report)


def cmd_report(args) -> int:
    from softeval.distance.summary import summarize_sweep
    from softeval.distance.report import write_report
    from softeval.store import SweepFolder, atomic_write_json, check_writable_folder

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
