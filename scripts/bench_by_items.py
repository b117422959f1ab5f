"""Item-level readings of `softeval bench` folders, from their per-item samples: markdown tables, pasted
into docs/results.md as printed.

    python scripts/bench_by_items.py results/bench/mmlu_first200 --range algebra=0-99 --range anatomy=100-199
    python scripts/bench_by_items.py results/bench/arc_easy results/bench/commonsense_qa --paired soft_cloze:few,zero

--range: every (model, mode, formulation) accuracy split by ranges of doc ids (inclusive). A benchmark's first
N items are often not a cross-section (MMLU's test files are read in subject order), and a table should say
which part of the items a score comes from.
--paired: one mode against others in one formulation (--form, default cloze), as the mean per-item difference
with its paired standard error: every mode scores the same items, so their difference is far less noisy
than two accuracies side by side.
A tuned mode's tuning seeds are averaged per item.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

from softeval.bench.modes import MODES
from softeval.bench.ranking import paired_gap, points_text

# The per-item field that says whether an answer was right, by the samples file's form suffix.
CORRECT_FIELD = {"gen": "strict_correct", "ll_letters": "ll_correct", "ll_cloze": "ll_correct"}
FORM_NAMES = {"gen": "letters (generated)", "ll_letters": "letters, ll", "ll_cloze": "cloze, ll"}
SAMPLES_NAME = re.compile(r"^(?P<mode>[a-z_]+?)_(?P<form>gen|ll_letters|ll_cloze)\.jsonl$")


def parse_range(text: str) -> tuple[str, int, int]:
    match = re.fullmatch(r"(?P<name>[^=]+)=(?P<lo>\d+)-(?P<hi>\d+)", text)
    if not match or int(match["lo"]) > int(match["hi"]):
        raise argparse.ArgumentTypeError(f"a range is NAME=FIRST-LAST (doc ids, inclusive), got {text!r}")
    return match["name"], int(match["lo"]), int(match["hi"])


def item_scores(folder: Path) -> dict[tuple, list[dict[int, float]]]:
    """Per (model, task, mode, form): one {doc_id: 1.0 if right else 0.0} per tuning seed (seed_*/ below the
    task's samples folder); the format-saturation curve's samples are left out."""
    groups: dict[tuple, list[dict[int, float]]] = {}
    for path in sorted(folder.glob("samples/*/*/**/*.jsonl")):
        match = SAMPLES_NAME.match(path.name)
        if match is None or "curve" in path.parts:
            continue
        task_dir = path.parent.parent if path.parent.name.startswith("seed_") else path.parent
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        field = CORRECT_FIELD[match["form"]]
        groups.setdefault((task_dir.parent.name, task_dir.name, match["mode"], match["form"]), []).append(
            {r["doc_id"]: float(bool(r[field])) for r in rows})
    if not groups:
        raise SystemExit(f"bench_by_items: no per-item samples under {folder}/samples")
    return groups


def _seed_mean(per_seed: list[dict[int, float]]) -> dict[int, float]:
    """Each item's score averaged over the tuning seeds that scored it."""
    items = sorted(set().union(*per_seed))
    return {i: statistics.fmean(s[i] for s in per_seed if i in s) for i in items}


def _order(key: tuple) -> tuple:
    model, task, mode, form = key
    rank = {name: i for i, name in enumerate((*MODES, *CORRECT_FIELD))}
    return model, task, rank.get(mode, 99), rank[form]


def table(folder: Path, ranges: list[tuple[str, int, int]]) -> str:
    """Accuracy per model, task, mode and formulation over each range of doc ids; a tuned mode's seeds are
    averaged and counted."""
    lines = ["| model | task | mode | formulation | " + " | ".join(name for name, _, _ in ranges) + " |",
             "|" + "---|" * (4 + len(ranges))]
    for key, per_seed in sorted(item_scores(folder).items(), key=lambda kv: _order(kv[0])):
        model, task, mode, form = key
        scores = _seed_mean(per_seed)
        cells = []
        for _, lo, hi in ranges:
            inside = [v for i, v in scores.items() if lo <= i <= hi]
            cells.append(f"{100 * statistics.fmean(inside):.1f}" if inside else "—")
        seeds = f" ({len(per_seed)} seeds)" if len(per_seed) > 1 else ""
        lines.append(f"| {model} | {task} | {mode}{seeds} | {FORM_NAMES[form]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_table(folders: list[Path], form: str, mode: str, against: list[str]) -> str:
    """`mode` minus each mode in `against`, in one formulation, per (model, task): the mean per-item difference
    in accuracy points with its paired standard error (the items' differences' std / sqrt(n)). Pairing removes
    the items' own difficulty, which two unpaired standard errors count twice, so it resolves gaps that look
    like ties side by side. A tuned mode's items are first averaged over its seeds."""
    lines = ["| model | task | " + " | ".join(f"{mode} − {ref}" for ref in against) + " | items |",
             "|" + "---|" * (3 + len(against))]
    for folder in folders:
        groups = item_scores(folder)
        for model, task in sorted({(k[0], k[1]) for k in groups}):
            if (model, task, mode, form) not in groups:
                continue
            ours = _seed_mean(groups[model, task, mode, form])
            cells, count = [], len(ours)
            for ref in against:
                if (model, task, ref, form) not in groups:
                    cells.append("—")
                    continue
                theirs = _seed_mean(groups[model, task, ref, form])
                common = [i for i in ours if i in theirs]
                gap = paired_gap([ours[i] for i in common], [theirs[i] for i in common])
                cells.append(points_text(gap["diff"], gap["paired_se"]))
            lines.append(f"| {model} | {task} | " + " | ".join(cells) + f" | {count} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+", help="softeval bench output folders")
    parser.add_argument("--range", dest="ranges", type=parse_range, action="append",
                        help="NAME=FIRST-LAST: doc ids (inclusive) to score together; repeat for each range")
    parser.add_argument("--paired", metavar="MODE:REF[,REF…]",
                        help="MODE minus each REF mode per (model, task), paired over items (e.g. soft_cloze:few,zero)")
    parser.add_argument("--form", default="ll_cloze", choices=sorted(CORRECT_FIELD),
                        help="the formulation --paired compares (default ll_cloze)")
    args = parser.parse_args()
    for folder in args.folders:
        if not (folder / "samples").is_dir():
            parser.error(f"{folder} is not a bench folder (no samples/)")
    if bool(args.ranges) == bool(args.paired):
        parser.error("give either --range (one or more) or --paired")
    if args.ranges:
        print("\n\n".join(table(folder, args.ranges) for folder in args.folders))
        return
    mode, _, refs = args.paired.partition(":")
    if not mode or not refs:
        parser.error(f"--paired is MODE:REF[,REF…], got {args.paired!r}")
    print(paired_table(args.folders, args.form, mode, refs.split(",")))


if __name__ == "__main__":
    main()
