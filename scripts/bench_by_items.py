"""Accuracy of a `softeval bench` folder over named ranges of evaluation items, from its per-item samples.

    python scripts/bench_by_items.py results/bench/mmlu --range abstract_algebra=0-99 --range anatomy=100-199

A benchmark's first N items are often not a cross-section: MMLU's test files are read in subject order, so
its first 200 items are two subjects. This splits every (model, mode, formulation) accuracy by item range
(doc_id, inclusive), with a tuned mode's tuning seeds averaged, so a table can say which part of the items a
score comes from. Output is a markdown table, pasted into docs/results.md as printed.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

from softeval.bench.modes import MODES

# The per-item field that says whether an answer was right, by the samples file's form suffix.
CORRECT_FIELD = {"gen": "strict_correct", "ll_letters": "ll_correct", "ll_cloze": "ll_correct"}
FORM_NAMES = {"gen": "letters (generated)", "ll_letters": "letters, ll", "ll_cloze": "cloze, ll"}
SAMPLES_NAME = re.compile(r"^(?P<mode>[a-z_]+?)_(?P<form>gen|ll_letters|ll_cloze)\.jsonl$")


def parse_range(text: str) -> tuple[str, int, int]:
    match = re.fullmatch(r"(?P<name>[^=]+)=(?P<lo>\d+)-(?P<hi>\d+)", text)
    if not match or int(match["lo"]) > int(match["hi"]):
        raise argparse.ArgumentTypeError(f"a range is NAME=FIRST-LAST (doc ids, inclusive), got {text!r}")
    return match["name"], int(match["lo"]), int(match["hi"])


def accuracy_by_range(path: Path, ranges: list[tuple[str, int, int]]) -> list[float | None]:
    """One samples file's accuracy over each range (None where the file has no item in it)."""
    form = SAMPLES_NAME.match(path.name)["form"]
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    out = []
    for _, lo, hi in ranges:
        hits = [bool(r[CORRECT_FIELD[form]]) for r in rows if lo <= r["doc_id"] <= hi]
        out.append(sum(hits) / len(hits) if hits else None)
    return out


def table(folder: Path, ranges: list[tuple[str, int, int]]) -> str:
    """Rows per model, task, mode and formulation; a tuned mode's seeds (seed_*/ below the task's folder)
    are averaged and counted."""
    groups: dict[tuple, list[list[float | None]]] = {}
    for path in sorted(folder.glob("samples/*/*/**/*.jsonl")):
        match = SAMPLES_NAME.match(path.name)
        if match is None or "curve" in path.parts:
            continue
        task_dir = path.parent.parent if path.parent.name.startswith("seed_") else path.parent
        key = (task_dir.parent.name, task_dir.name, match["mode"], match["form"])
        groups.setdefault(key, []).append(accuracy_by_range(path, ranges))
    if not groups:
        raise SystemExit(f"bench_by_items: no per-item samples under {folder}/samples")
    lines = ["| model | task | mode | formulation | " + " | ".join(name for name, _, _ in ranges) + " |",
             "|" + "---|" * (4 + len(ranges))]
    order = {name: i for i, name in enumerate((*MODES, *CORRECT_FIELD))}
    for (model, task, mode, form), per_seed in sorted(
            groups.items(), key=lambda kv: (kv[0][0], kv[0][1], order.get(kv[0][2], 99), order[kv[0][3]])):
        cells = []
        for column in zip(*per_seed):
            values = [v for v in column if v is not None]
            cells.append(f"{100 * statistics.fmean(values):.1f}" if values else "—")
        seeds = f" ({len(per_seed)} seeds)" if len(per_seed) > 1 else ""
        lines.append(f"| {model} | {task} | {mode}{seeds} | {FORM_NAMES[form]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a softeval bench output folder")
    parser.add_argument("--range", dest="ranges", type=parse_range, action="append", required=True,
                        help="NAME=FIRST-LAST: doc ids (inclusive) to score together; repeat for each range")
    args = parser.parse_args()
    if not (args.folder / "samples").is_dir():
        parser.error(f"{args.folder} is not a bench folder (no samples/)")
    print(table(args.folder, args.ranges))


if __name__ == "__main__":
    main()
