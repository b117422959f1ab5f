"""softeval report DIR: a self-contained HTML report (plus PNGs) from a sweep directory."""

from __future__ import annotations

import os
import webbrowser
from pathlib import Path

from softeval.errors import SoftevalError


def register(sub) -> None:
    p = sub.add_parser("report", help="write an HTML report (plus PNGs) for a distance sweep directory",
                       description="Reads only the sweep's files (no model is loaded); works on partial sweeps.")
    p.add_argument("dir", help="the --out directory of a `softeval distance` run")
    p.add_argument("--out", default=None, help="report folder (default DIR/report)")
    p.add_argument("--open", action="store_true", help="open the report in a web browser")
    p.set_defaults(handler=cmd_report)


def cmd_report(args) -> int:
    from softeval.report import write_report

    out = Path(args.out) if args.out else Path(args.dir) / "report"
    check_out_folder(out)
    path = write_report(Path(args.dir), out)
    print(path)
    if args.open:
        webbrowser.open(path.resolve().as_uri())
    return 0


def check_out_folder(folder: Path) -> None:
    """Refuse a report folder that cannot be made (below a regular file, or in a read-only folder) before any
    work, in one line instead of a traceback from the first write."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise SoftevalError(f"cannot write the report to {folder}: {existing} is a file, not a folder; "
                            "choose another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SoftevalError(f"cannot write the report to {folder}: {existing} is not writable; choose another --out")
