"""What docs/results.md may say, computed from the result folders: every table (a *block*) and every number in
its prose (a *value*), by key. scripts/results_page.py puts them between the page's markers and checks them.

A key is a kind and its arguments, separated by spaces; folder arguments are relative to the repository root:

    block:  sweep results/repetition/pee_smollm2-135m-instruct      the sweep's loss table (results_tables.py)
    value:  loss results/repetition/pee_smollm2-135m-instruct 1 min  the best seed's held-out loss at n = 1

`python scripts/results_page.py --keys` lists the kinds with their docstrings. Nothing here trains or loads
a model: sweeps are read from their results.json (summarised from the cells where a sweep has none yet),
bench runs from results.json and the per-item samples, cross-task verdicts from results/compare/bench.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import sys
from datetime import datetime
from functools import cache
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
sys.path[:0] = [str(ROOT / "src"), str(SCRIPTS)]

import results_tables as tables  # noqa: E402  (the table printers this page shares with the terminal)
from softeval.bench.scoring import named_by_formulation  # noqa: E402
from softeval.distance.plan import group_unit_name  # noqa: E402  (the unit log's name, as the sweep writes it)
from softeval.store import BenchFolder  # noqa: E402

# The across-task compare (`bash scripts/reproduce.sh compare_bench`): its runs are the bench runs of record, so
# the page's habit and cloze families cover the same runs as its format and ranking families.
BENCH_COMPARE = "results/compare/bench"


class Facts:
    """Blocks and values computed from the folders under `root`, each file read once."""

    def __init__(self, root: Path = ROOT):
        self.root = Path(root)
        self._json = cache(self._read_json)
        self._sweep = cache(self._read_sweep)
        self._arms = cache(self._folder_arms)
        self._habit = cache(self._habit_family)
        self._cloze = cache(self._cloze_family)
        self._suite = cache(self._read_suite)
        self._ar = cache(lambda folder, corpus: ar_control(self, folder, corpus=corpus))  # one bootstrap per row
        self._chess = cache(lambda a, b: chess_models(self, a, b))  # one bootstrap per pair of sweeps

    # ----------------------------------------------------------------------- reading
    def path(self, relative: str) -> Path:
        return self.root / relative

    def _read_json(self, relative: str) -> dict:
        return json.loads(self.path(relative).read_text())

    def json(self, relative: str) -> dict:
        return self._json(relative)

    def _read_sweep(self, folder: str) -> dict:
        """A sweep's results.json; a sweep without one (unfinished) summarised from its cells."""
        if self.path(folder + "/results.json").is_file():
            return self.json(folder + "/results.json")
        from softeval.distance.summary import summarize_sweep

        return summarize_sweep(self.path(folder))

    def sweep(self, folder: str) -> dict:
        return self._sweep(folder)

    def _read_suite(self, folder: str) -> dict:
        """A suite summarised from its files (softeval.distance.suite.summarize_suite: seeded, so repeatable)."""
        from softeval.distance.suite import summarize_suite

        return summarize_suite(self.path(folder))

    def suite(self, folder: str) -> dict:
        return self._suite(folder)

    def ar(self, folder: str, corpus: str | None = None) -> dict:
        return self._ar(folder, corpus)

    def chess(self, folder_a: str, folder_b: str) -> list[dict]:
        return self._chess(folder_a, folder_b)

    def bench(self, folder: str) -> dict:
        return self.json(folder + "/results.json")

    def bench_row(self, folder: str, model: str, mode: str) -> dict:
        doc = self.bench(folder)
        (task,) = {t for per_model in doc["results"].values() for t in per_model}
        return named_by_formulation(doc["results"][model][task][mode])

    def _folder_arms(self, folders: tuple[str, ...]):
        from softeval.bench.verdicts import folder_arms

        return folder_arms({f: (self.path(f), self.bench(f)) for f in folders})

    def findings(self, compare: str) -> dict:
        return self.json(compare + "/compare.json")["findings"]

    def choice_folders(self, compare: str = BENCH_COMPARE) -> tuple[str, ...]:
        """The compare's runs scored as multiple choice (a cloze accuracy in some row), in its order: the
        folders the habit and cloze families cover. GSM8K's answers are numbers, so it has neither."""
        def has_cloze(folder: str) -> bool:
            return any("ll_cloze_acc" in named_by_formulation(row)
                       for per_model in self.bench(folder)["results"].values()
                       for per_task in per_model.values() for row in per_task.values())

        return tuple(run["path"] for run in self.json(compare + "/compare.json")["runs"] if has_cloze(run["path"]))

    # ----------------------------------------------------------------------- families judged here
    def _habit_family(self, folders: tuple[str, ...]) -> list[dict]:
        """Every accuracy against its answer habit that the habit table shows (generated letters in zero, few
        and soft; cloze in every mode), over `folders`: one family. p is two-sided from the exact permutation
        z (softeval.bench.habit; normal approximation), adjusted by Holm over the family (softeval.stats.holm);
        the verdict words follow docs/bench.md's rule: "above/below habit" where p_holm ≤ α, else "cannot tell"."""
        from softeval.bench.modes import MODES
        from softeval.bench.verdicts import ALPHA
        from softeval.stats import holm

        cells = []
        for folder in folders:
            doc = self.bench(folder)
            for model in sorted(doc["results"]):
                for mode in MODES:
                    for metric in ("strict_acc", "ll_cloze_acc"):
                        if metric == "strict_acc" and mode == "soft_cloze":
                            continue
                        try:
                            row = self.bench_row(folder, model, mode)
                        except KeyError:
                            continue
                        if row.get(f"{metric}_over_habit") is None:
                            continue
                        z = row.get(f"{metric}_over_habit_z")
                        cells.append({"folder": folder, "model": model, "mode": mode, "metric": metric,
                                      "over": row[f"{metric}_over_habit"], "se": row.get(f"{metric}_over_habit_stderr"),
                                      "z": z, "p": None if z is None else math.erfc(abs(z) / math.sqrt(2))})
        tested = [c for c in cells if c["p"] is not None]
        for c, adjusted in zip(tested, holm([c["p"] for c in tested])):
            c["p_holm"] = adjusted
        for c in cells:
            c["m"] = len(tested)
            held = c["p"] is not None and c["p_holm"] <= ALPHA
            c["verdict"] = ("above habit" if c["over"] > 0 else "below habit") if held else "cannot tell"
        return cells

    def habit_family(self, folders: tuple[str, ...] | None = None) -> list[dict]:
        return self._habit(folders or self.choice_folders())

    def _cloze_family(self, folders: tuple[str, ...]) -> list[dict]:
        """soft_cloze's cloze accuracy against few, zero and soft's, per model and task: one family of paired
        comparisons judged by softeval.bench.verdicts (hierarchical bootstrap over items and tuning seeds, Holm)."""
        from softeval.bench import verdicts

        arm_of = self._arms(folders)
        family = []
        for folder in folders:
            doc = self.bench(folder)
            (task,) = {t for per_model in doc["results"].values() for t in per_model}
            for model in sorted(doc["results"]):
                for other in ("few", "zero", "soft"):
                    c = verdicts.compare_arms(arm_of(folder, model, task, "soft_cloze", "ll_cloze_acc"),
                                              arm_of(folder, model, task, other, "ll_cloze_acc"),
                                              f"cloze|{folder}|{model}|soft_cloze-{other}", names=("soft_cloze", other))
                    family.append({"folder": folder, "task": task, "model": model, "other": other, **c})
        return verdicts.judge(family)

    def cloze_family(self, folders: tuple[str, ...] | None = None) -> list[dict]:
        return self._cloze(folders or self.choice_folders())

    # ----------------------------------------------------------------------- dispatch
    def block(self, key: str) -> str:
        kind, *args = key.split()
        if kind not in BLOCKS:
            raise KeyError(f"unknown block kind '{kind}' (python scripts/results_page.py --keys)")
        return BLOCKS[kind](self, *args).rstrip("\n")

    def value(self, key: str) -> str:
        kind, *args = key.split()
        if kind not in VALUES:
            raise KeyError(f"unknown value kind '{kind}' (python scripts/results_page.py --keys)")
        return str(VALUES[kind](self, *args))


# =========================================================================== blocks


def runs_block(f: Facts) -> str:
    """Every result folder the page reads: model and its checkpoint, the weights dtype the run resolved, the
    precision of its arithmetic, steps × batch, lr, seeds, and whether it is complete."""
    from softeval.engine.models import resolve_dtype

    import torch

    lines = ["| folder | model | checkpoint | weights | precision | steps × batch | lr | seeds | complete |",
             "|---|---|---|---|---|---|---|---|---|"]
    for marker in sorted(f.path("results").rglob("eval_set.json")):
        folder = str(marker.parent.relative_to(f.root))
        if "/suite/" in f"/{folder}/":  # a suite's sweeps: the suite section's own table
            continue
        res = f.sweep(folder)
        identity = f.json(folder + "/identity.json") if f.path(folder + "/identity.json").is_file() else {}
        # the precision that ran: today's identities hold it under "resolved" ("auto" is only a label),
        # older ones under "settings"
        precision = ((identity.get("resolved") or {}).get("precision") or (identity.get("settings") or {}).get("precision")
                     or res["config"].get("precision"))
        weights = f.json(folder + "/model.json").get("dtype", "?")
        optim = res["config"]["optim"]
        lines.append(f"| `{folder}` | {res['model']['name']} | {checkpoint(res['model']['name'])} | {weights} | "
                     f"{precision} | {optim['max_steps']} × "
                     f"{optim['batch_size']} | {optim['lr']:g} | {len(res['seeds'])} | "
                     f"{'yes' if res['complete'] else 'no'} |")
    for marker in sorted(f.path("results/bench").glob("*/results.json")):
        folder = str(marker.parent.relative_to(f.root))
        cfg = f.bench(folder)["config"]
        weights = str(resolve_dtype(cfg["dtype"], torch.device(cfg["device"] if cfg["device"] != "auto" else "cpu")))
        for model in cfg["models"]:
            if model not in f.bench(folder)["results"]:
                continue
            lines.append(f"| `{folder}` | {model} | {checkpoint(model)} | {weights.replace('torch.', '')} "
                         f"({cfg['dtype']}) | {cfg['precision']} | {cfg['optim']['max_steps']} × "
                         f"{cfg['optim']['batch_size']} | {cfg['optim']['lr']:g} | {cfg['tuning_seeds']} tuning | "
                         f"{'yes' if all(model in f.bench(folder)['results'] for model in cfg['models']) else 'no'} |")
    for marker in sorted(f.path("results/suite").glob("*/behaviours.json")):
        folder = str(marker.parent.relative_to(f.root))
        cfg, res = f.json(folder + "/config.json"), f.suite(folder)
        identity = next(marker.parent.glob("sweeps/*/*/identity.json"), None)  # what a sweep's cells resolved
        resolved = json.loads(identity.read_text()).get("resolved", {}) if identity else {}
        weights, precision = resolved.get("weights_dtype", "?"), resolved.get("precision", "?")
        complete = all(b.get("complete", True) for b in res["behaviours"])
        lines.append(f"| `{folder}` (suite) | {res['model'].get('name')} | {checkpoint(res['model'].get('name'))} | "
                     f"{weights} | {precision} | {cfg['optim']['max_steps']} × {cfg['optim']['batch_size']} | "
                     f"{cfg['optim']['lr']:g} | {cfg['seeds']} | {'yes' if complete else 'no'} |")
    return "\n".join(lines)


def checkpoint(model: str) -> str:
    """'Q4_1 GGUF, dequantized': the quantization of an embedded model's shipped GGUF file, from its file name."""
    from softeval.engine.models import EMBEDDED_MODELS

    spec = EMBEDDED_MODELS.get(model)
    if spec is None:
        return "—"
    found = re.search(r"q\d_[a-z0-9_]+?(?=\.gguf)", spec.gguf_parts[0].member, re.I)
    return f"{found.group(0).upper()} GGUF, dequantized" if found else "GGUF, dequantized"


def sweep_block(f: Facts, folder: str) -> str:
    """A sweep's loss table by n (results_tables.loss_table), chess and pathfinding with their task metrics."""
    res = f.sweep(folder)
    task = res["task"]["spec"].get("task")
    extra = tables.CHESS if task == "chess" else tables.PATHS if task == "pathfinding" else []
    return tables.loss_table(res, Path(folder), extra)  # shown as the page names it, whatever the root


def saturation_block(f: Facts, compare: str) -> str:
    """S(ε) of each sweep a `softeval compare` folder holds: absolute and relative, with the 90 % bootstrap
    interval over seeds and the S each seed alone gives."""
    doc = f.json(compare + "/compare.json")
    lines = ["| sweep | S(ε = {:g} nats) [90 %] | per seed | S(ε = {:g} of the gain) [90 %] | per seed |".format(
        doc["epsilon"]["absolute"], doc["epsilon"]["relative"]), "|---|---|---|---|---|"]
    for s in doc["saturation"]:
        cells = []
        for mode in ("absolute", "relative"):
            e = s[mode]
            lo, hi = e.get("interval90") or [None, None]
            shown = lo if lo == hi else f"{lo}–{hi}"
            cells += [f"{e['label']} [{shown}]", ", ".join("—" if x is None else str(x) for x in e["per_seed"])]
        lines.append(f"| {s['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sweep_task_label(spec: dict) -> str:
    """'repr of the repeated text', 'skip-k, k = 4' or the task's name: what tells two sweeps' columns apart."""
    if "text" in spec:
        return repr(spec["text"])
    if "skip" in spec:
        return f"{spec.get('task')}, k = {spec['skip']}"
    return str(spec.get("task"))


def sensitivity_block(f: Facts, *folders: str) -> str:
    """S at every ε the sweeps computed (results.json's saturation.sensitivity, absolute ε in nats/token), one
    column per sweep: S, and the S of each seed alone in brackets."""
    docs = {folder: f.sweep(folder) for folder in folders}
    eps = sorted({row["epsilon"] for d in docs.values() for row in d["saturation"]["sensitivity"]
                  if row["mode"] == "absolute"})
    names = [f"{d['model']['name']}, {sweep_task_label(d['task']['spec'])}" for d in docs.values()]
    lines = ["| ε (nats) | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
    for e in eps:
        cells = []
        for d in docs.values():
            row = next(r for r in d["saturation"]["sensitivity"] if r["mode"] == "absolute" and r["epsilon"] == e)
            cells.append(f"{row['label']} ({', '.join('—' if x is None else str(x) for x in row['per_seed'])})")
        lines.append(f"| {e:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def skip_block(f: Facts, model: str) -> str:
    """Loss by n and k of the skip-k sweeps of one model (results_tables.skip_table)."""
    sweeps = {}
    for marker in sorted(f.path("results/skip").glob(f"k*_{model}/eval_set.json")):
        res = f.sweep(str(marker.parent.relative_to(f.root)))
        sweeps[res["task"]["spec"]["skip"]] = res
    return tables.skip_table(sweeps)


def elo_block(f: Facts, folder: str) -> str:
    """The chess sweep's Elo check per cell (fp32 rescoring where the sweep has one: results.json's elo_check)."""
    return tables.elo_table(f.sweep(folder))


def conditions_block(f: Facts, folder: str) -> str:
    """Pathfinding: requested vs measured extra moves per n, from the walks that reached the goal."""
    return tables.condition_table(f.sweep(folder))


def stability_block(f: Facts, folder: str) -> str:
    """A stability grid (results_tables.stability_table)."""
    return tables.stability_table(f.json(folder + "/stability.json"), Path(folder))


def bench_scores_block(f: Facts, folder: str) -> str:
    """A bench run's accuracies per model and mode, every formulation (results_tables.bench_scores)."""
    return tables.bench_scores(f.bench(folder))


def bench_overview_block(f: Facts, *folders: str) -> str:
    """The benchmarks on one table: per task and model, format-following zero / few / soft and the best
    formulation's accuracy in each mode (± one run's standard error or the spread over tuning seeds). A model
    a task's folder has no results for yet shows "not finished"; a task without a folder, "not run"."""
    from softeval.bench.modes import MODES

    lines = ["| task | model | format: zero / few / soft | " + " | ".join(f"best acc, {m}" for m in MODES) + " |",
             "|---|---|---|" + "---|" * len(MODES)]
    for folder in folders:
        if not f.path(folder).is_dir():
            lines.append(f"| {folder.rsplit('/', 1)[-1]} | — | not run |" + " |" * len(MODES))
            continue
        started = f.path(folder + "/results.json").is_file()
        doc = f.bench(folder) if started else {"results": {}, "config": f.json(folder + "/config.json")}
        models = (doc.get("config") or {}).get("models") or sorted(doc["results"])
        for model in models:
            per_task = doc["results"].get(model)
            if not per_task:
                lines.append(f"| {folder.rsplit('/', 1)[-1]} | {model} | not finished |" + " |" * len(MODES))
                continue
            (task,) = per_task
            rows = {mode: named_by_formulation(per_task[task][mode]) for mode in MODES if mode in per_task[task]}
            fmt = " / ".join(tables.pct(rows[m], "format_rate").split(" ±")[0] if m in rows else "—"
                             for m in ("zero", "few", "soft"))
            best = [_best_shown(rows[m]) if m in rows else "—" for m in MODES]
            lines.append(f"| {task} | {model} | {fmt} | " + " | ".join(best) + " |")
    return "\n".join(lines)


def _best_shown(row: dict) -> str:
    """The best formulation's accuracy and its name; strict accuracy where a task has no other (GSM8K)."""
    if row.get("best_acc") is None:
        return "—" if row.get("strict_acc") is None else tables.pct(row, "strict_acc") + " (strict)"
    return tables.pct(row, "best_acc") + (f" ({row['best_formulation']})" if row.get("best_formulation") else "")


def bench_habit_block(f: Facts, folder: str) -> str:
    """A bench run's accuracies against their answer habit (results_tables.habit_lines)."""
    return tables.bench_habit(f.bench(folder))


def bench_curve_block(f: Facts, folder: str) -> str:
    """A bench run's format-saturation curve (results_tables.bench_curve)."""
    return tables.bench_curve(f.bench(folder))


def bench_format_block(f: Facts, compare: str) -> str:
    """soft > few > zero in format-following per task and model, each step judged by the verdict rule over the
    family `softeval compare` formed (its compare.json)."""
    from softeval.bench.verdicts import verdict_text

    found = f.findings(compare)
    lines = [f"Family: m = {found['family_size']['format_order']} steps.", "",
             "| task | model | zero | few | soft | soft > few | few > zero | soft > few > zero |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {o['task']} | {o['model']} | {100 * o['zero']:.1f} | {100 * o['few']:.1f} | {100 * o['soft']:.1f} | "
              + " | ".join(verdict_text(s) for s in o["steps"]) + f" | {o['verdict']} |" for o in found["format_order"]]
    return "\n".join(lines)


def bench_rankings_block(f: Facts, compare: str) -> str:
    """Each task's leaderboard per mode (best formulation per model and mode) and the leader's lead judged by
    the verdict rule over the family `softeval compare` formed (its compare.json)."""
    from softeval.bench.ranking import leaderboard_text
    from softeval.bench.verdicts import verdict_text

    found = f.findings(compare)
    lines = [f"Family: m = {found['family_size']['rankings']} neighbour gaps.", "",
             "| task | mode | ranked by | leaderboard | lead | verdict |", "|---|---|---|---|---|---|"]
    for task, entry in found["rankings"].items():
        for mode, board in entry["leaderboards"].items():
            for gap in entry["gaps"].get(mode, []):
                lines.append(f"| {task} | {mode} | {entry['metric']} | {leaderboard_text(board)} | "
                             f"{gap['upper']} over {gap['lower']} | {verdict_text(gap)} |")
    return "\n".join(lines)


def habit_verdicts_block(f: Facts) -> str:
    """Accuracy above its answer habit, across the multiple-choice tasks: points ± permutation error, z, and the
    verdict with Holm over the whole table (Facts._habit_family)."""
    from softeval.bench.modes import MODES

    cells = f.habit_family()
    by = {(c["folder"], c["model"], c["mode"], c["metric"]): c for c in cells}
    cols = [("strict_acc", m) for m in ("zero", "few", "soft")] + [("ll_cloze_acc", m) for m in MODES]
    heads = [f"{'letters' if k == 'strict_acc' else 'cloze'} {m}" for k, m in cols]
    lines = [f"Family: m = {cells[0]['m']} cells.", "", "| task | model | " + " | ".join(heads) + " |",
             "|" + "---|" * (len(cols) + 2)]
    for folder in sorted({c["folder"] for c in cells}):
        for model in sorted({c["model"] for c in cells if c["folder"] == folder}):
            row = []
            for metric, mode in cols:
                c = by.get((folder, model, mode, metric))
                row.append("—" if c is None else habit_text(c))
            lines.append(f"| {folder.rsplit('/', 1)[-1]} | {model} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def habit_text(c: dict) -> str:
    se = "" if c["se"] is None else f" ± {100 * c['se']:.1f}"
    z = "" if c["z"] is None else f", z {c['z']:+.2f}"
    return f"{100 * c['over']:+.1f}{se}{z}: {c['verdict']}"


def cloze_verdicts_block(f: Facts) -> str:
    """soft_cloze's cloze accuracy minus few, zero and soft's, each judged by the verdict rule over one family."""
    from softeval.bench.verdicts import verdict_text

    family = f.cloze_family()
    others = ("few", "zero", "soft")
    lines = [f"Family: m = {family[0]['m']} comparisons.", "",
             "| task | model | " + " | ".join(f"soft_cloze − {o}" for o in others) + " |", "|---|---|---|---|---|"]
    for task, model in dict.fromkeys((c["task"], c["model"]) for c in family):
        cells = {c["other"]: c for c in family if c["task"] == task and c["model"] == model}
        lines.append(f"| {task} | {model} | " + " | ".join(verdict_text(cells[o]) for o in others) + " |")
    return "\n".join(lines)


def subjects_block(f: Facts, folder: str, *ranges: str) -> str:
    """Accuracy per doc-id range (scripts/bench_by_items.py --range NAME=LO-HI), one row per mode and form."""
    import bench_by_items

    return bench_by_items.table(f.path(folder), [bench_by_items.parse_range(r.replace("_", " ")) for r in ranges])


def gsm8k_runs_block(f: Facts, first: str, second: str) -> str:
    """Each tuned GSM8K prompt in the first run (no stop string) and the second: format-following, how many of
    its formatted answers repeat `#### N` (the answer loop; counted in samples/…/soft_gen.jsonl), evaluation
    seconds (the unit's)."""
    lines = [("| model, seed | format, first → second (%) | formatted answers repeating `#### N`, first → second | "
              "evaluation seconds, first → second |"), "|---|---|---|---|"]
    for model in sorted(f.bench(second)["results"]):
        for seed in f.bench_row(second, model, "soft")["seeds"]:
            cells = []
            for run in (first, second):
                base = f.bench(run)["config"]["seed"]
                unit = BenchFolder.seed_dir(f.path(run) / "units" / model / "gsm8k", seed, base) / "soft.json"
                samples = BenchFolder.seed_dir(f.path(run) / "samples" / model / "gsm8k", seed, base) / "soft_gen.jsonl"
                if not unit.is_file():
                    cells.append(None)
                    continue
                records = [json.loads(line) for line in samples.read_text().splitlines() if line.strip()]
                formatted = [r for r in records if r["format_ok"]]
                looping = sum(r["output"].count("####") > 1 for r in formatted)
                cells.append((100 * len(formatted) / len(records), looping, json.loads(unit.read_text())["seconds"]))

            shown = [" → ".join("not run" if c is None else fmt.format(c[i]) for c in cells)
                     for i, fmt in enumerate(("{:.1f}", "{}", "{:.0f}"))]
            lines.append(f"| {model}, {seed} | " + " | ".join(shown) + " |")
    return "\n".join(lines)


def suite_block(f: Facts, folder: str) -> str:
    """A behaviour suite's ranking (results_tables.suite_table)."""
    return tables.suite_table(f.suite(folder), Path(folder))


def suite_compare_block(f: Facts, compare: str) -> str:
    """Two or more suites side by side from a `softeval compare` folder: each behaviour's zero-shot rate, gaps and
    towards − control difference at the largest shared n per run, then the rank correlations."""
    doc = f.json(compare + "/compare.json")
    labels = [r["label"] for r in doc["runs"]]
    n_max = doc["n_max"]
    head = " | ".join(f"{lab}: zero-shot | gap → | gap ← | towards − control at n={n_max}" for lab in labels)
    lines = [f"| behaviour | {head} |", "|---|" + "---|" * (4 * len(labels))]
    gap = lambda g: "none" if g is None else str(g)  # noqa: E731
    for row in doc["behaviours"]:
        cells = []
        for run in row["runs"]:
            diff = run["difference_at_n_max"]
            cells += ["—" if run["zero_shot"] is None else f"{run['zero_shot']:.2f}", gap(run["gap_towards"]),
                      gap(run["gap_away"]), "—" if diff is None else f"{diff:+.2f}"]
        lines.append(f"| {row['behaviour']} | " + " | ".join(cells) + " |")
    lines += ["", "| runs | quantity | behaviours | Spearman ρ [95% interval, behaviours resampled] |",
              "|---|---|---|---|"]
    for c in doc["correlations"]:
        lines.append(f"| {' vs '.join(c['runs'])} | {c['quantity']} | {c['behaviours']} | {_rho(c)} |")
    if doc.get("only_in_some"):
        lines += ["", f"Not in every suite: {', '.join(doc['only_in_some'])}."]
    return "\n".join(lines)


def _rho(c: dict) -> str:
    if c["spearman"] is None:
        return "n/a"
    interval = c.get("interval")
    return f"{c['spearman']:+.2f}" + (f" [{interval[0]:+.2f}, {interval[1]:+.2f}]" if interval else "")


AR_MARGIN = 0.08  # nats/token: the distance paper's "n = 0 and n = 64 within about ±0.08"


def _finished_cells(f: Facts, folder: str) -> list[dict]:
    """A sweep's finished cells, each read from its own cell.json (which keeps example_losses; results.json does not)."""
    return [c for c in (json.loads(p.read_text()) for p in sorted(f.path(folder).glob("cells/*/cell.json")))
            if c.get("status") == "done"]


def ar_control(f: Facts, folder: str, n: str = "64", corpus: str | None = None) -> dict:
    """L(n) − L(0) on the same held-out windows: each seed's difference, and its 95 % interval from the
    hierarchical bootstrap over windows and seeds (softeval.stats; 10,000 draws, seed 0). The rule: "within
    ±0.08" when the whole interval lies inside ±AR_MARGIN, "beyond ±0.08" when it lies wholly outside, "cannot
    tell" otherwise. One comparison per model, two in all, so no family adjustment is made. With `corpus`, the
    per-window losses are those of transfer/CORPUS/CELL.json: the sweep's prompts scored on another text."""
    import numpy as np

    from softeval.stats import percentile_interval, resampled_means

    cells = _finished_cells(f, folder)
    if corpus:  # the same prompts scored on another corpus by `softeval eval --json` (scripts/reproduce.sh)
        scored = {p.stem: json.loads(p.read_text()) for p in f.path(f"{folder}/transfer/{corpus}").glob("*.json")}
        cells = [{**c, "example_losses": scored.get(c["name"], {}).get("example_losses")} for c in cells]
    plain = next(c for c in cells if c["n"] == 0)
    trained = sorted((c for c in cells if c["n"] == int(n)), key=lambda c: c["seed"])
    if not trained or any(c.get("example_losses") is None for c in [plain, *trained]):
        raise KeyError(f"{folder}: cells without per-window losses (example_losses)")
    arm = np.array([c["example_losses"] for c in trained])
    base = np.array([plain["example_losses"]])
    draws_a, draws_b = resampled_means([arm, base], 10_000, np.random.default_rng(0))
    low, high = percentile_interval(draws_a - draws_b, 0.95)
    diff = float(arm.mean() - base.mean())
    verdict = ("within ±0.08" if -AR_MARGIN < low and high < AR_MARGIN else
               "beyond ±0.08" if high < -AR_MARGIN or low > AR_MARGIN else "cannot tell")
    return {"plain": float(base.mean()), "trained": float(arm.mean()), "diff": diff, "low": low, "high": high,
            "per_seed": [float(a.mean() - base.mean()) for a in arm], "seeds": len(trained),
            "windows": arm.shape[1], "verdict": verdict,
            "hours": _unit_seconds(f, folder, cells) / 3600}


def _chess_game_nats(f: Facts, folder: str) -> tuple[list[int], dict[int, list[list[float]]]]:
    """A chess sweep's held-out games: each game's number of moves, and per n one row per seed of each game's
    summed nats (example_losses × the game's move tokens). The per-game counts come from a cell's task metrics
    (per_example) or, for cells written before softeval kept them, from the Elo check's rescoring
    (elo_check/CELL.json, `softeval eval --task-metrics --json`): they belong to the games and the tokenizer,
    so one record serves every cell of the sweep. Each cell's weighted sum must give back its own loss per
    move, so counts that do not fit the cells are an error, not a number."""
    cells = [c for c in _finished_cells(f, folder) if c.get("example_losses")]
    records = [c.get("per_example") or {} for c in cells]
    records += [json.loads(p.read_text()).get("per_example") or {}
                for p in sorted(f.path(folder).glob("elo_check/*.json"))]
    counts = next((r for r in records if "moves" in r and "move_tokens" in r), None)
    if counts is None:
        raise KeyError(f"{folder}: no per-game move counts (per_example); rescore a cell with "
                       "`softeval eval --task-metrics --json` (scripts/reproduce.sh chess_elo_check_*)")
    moves, tokens = [int(x) for x in counts["moves"]], [int(x) for x in counts["move_tokens"]]
    by_n: dict[int, list[tuple[int, list[float]]]] = {}
    for c in cells:
        if len(c["example_losses"]) != len(moves) or sum(tokens) != c["num_targets"]:
            raise ValueError(f"{folder}: cell {c['name']} scored other games than its per-game move counts")
        nats = [loss * t for loss, t in zip(c["example_losses"], tokens)]
        own = (c.get("task_metrics") or {}).get("loss_per_move")
        if own is not None and not math.isclose(sum(nats) / sum(moves), own, rel_tol=1e-5):
            raise ValueError(f"{folder}: cell {c['name']}'s per-game nats give {sum(nats) / sum(moves):.6f} nats "
                             f"per move, its task metrics {own:.6f}")
        by_n.setdefault(c["n"], []).append((c["seed"], nats))
    return moves, {n: [nats for _, nats in sorted(rows)] for n, rows in sorted(by_n.items())}


def chess_models(f: Facts, folder_a: str, folder_b: str) -> list[dict]:
    """Two models' loss per move on the same held-out games, at every n both sweeps have: A − B with its 95 %
    interval from the hierarchical bootstrap over games and seeds (softeval.stats, 10,000 draws seeded by n),
    paired by game. Per move, not per token: the models' tokenizers cut the same moves into different numbers
    of tokens, so only the summed nats of a game are on one scale; a draw's loss per move is its games'
    nats over their moves. The rule is the bench rule (softeval.bench.verdicts): the n are one family, Holm
    adjusts their two-sided bootstrap p, and "holds" names the model lower where p_holm ≤ 0.05 and the interval
    excludes 0; "cannot tell" otherwise."""
    import numpy as np

    from softeval.bench.verdicts import ALPHA, CONFIDENCE, SAMPLES
    from softeval.stats import bootstrap_p, holm, percentile_interval, resampled_means

    (moves_a, games_a), (moves_b, games_b) = _chess_game_nats(f, folder_a), _chess_game_nats(f, folder_b)
    if moves_a != moves_b:
        raise ValueError(f"{folder_a} and {folder_b} scored different held-out games")
    names = [f.sweep(x)["model"]["name"] for x in (folder_a, folder_b)]
    moves = np.array([moves_a], dtype=np.float64)
    rows = []
    for n in sorted(set(games_a) & set(games_b)):
        arm_a, arm_b = np.array(games_a[n]), np.array(games_b[n])
        draw_a, draw_b, draw_moves = resampled_means([arm_a, arm_b, moves], SAMPLES, np.random.default_rng(n))
        diffs = (draw_a - draw_b) / draw_moves
        low, high = percentile_interval(diffs, CONFIDENCE)
        per_move_a, per_move_b = arm_a.mean() / moves.mean(), arm_b.mean() / moves.mean()
        rows.append({"n": n, "seeds": (len(arm_a), len(arm_b)), "a": float(per_move_a), "b": float(per_move_b),
                     "diff": float(per_move_a - per_move_b), "low": low, "high": high, "p": bootstrap_p(diffs)})
    for row, adjusted in zip(rows, holm([r["p"] for r in rows])):
        lower = names[0] if row["high"] < 0 else names[1] if row["low"] > 0 else None
        row.update(p_holm=adjusted, m=len(rows), games=len(moves_a),
                   verdict=f"holds: {lower} lower" if lower and adjusted <= ALPHA else "cannot tell")
    return rows


def chess_models_block(f: Facts, folder_a: str, folder_b: str) -> str:
    """Two chess sweeps' loss per move on the same games, compared at each n by the rule (chess_models)."""
    a, b = (f.sweep(x)["model"]["name"] for x in (folder_a, folder_b))
    lines = [f"| n | seeds | {a}, nats per move | {b}, nats per move | difference | 95 % interval | p_holm | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for r in f.chess(folder_a, folder_b):
        lines.append(f"| {r['n']} | {r['seeds'][0]}, {r['seeds'][1]} | {r['a']:.3f} | {r['b']:.3f} | "
                     f"{r['diff']:+.3f} | [{r['low']:+.3f}, {r['high']:+.3f}] | {r['p_holm']:.3g} | {r['verdict']} |")
    return "\n".join(lines)


def _done_in(log: Path) -> list[float]:
    """Seconds of each finished attempt a softeval log records ('done in N s'); none for a missing log."""
    return [float(x) for x in re.findall(r"done in ([\d.]+)s", log.read_text())] if log.is_file() else []


def _attempts_seconds(log: Path) -> float | None:
    """Wall time of every attempt a softeval unit log records, summed: each from its 'attempt starts' line to its
    last line; None when the log is missing or never says the unit finished ('done in'). A unit resumed from a
    checkpoint spreads its work over attempts, so the finished attempt's own 'done in' undercounts it; an attempt
    killed before it logged a second line counts nothing (a lower bound)."""
    if not log.is_file():
        return None
    total, start, last, finished = 0.0, None, None, False
    for line in log.read_text().splitlines():
        try:  # the unit log's format (softeval.executors): logging's default asctime first
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
        except ValueError:
            continue  # a continuation line (a traceback) carries no time of its own
        if "attempt starts" in line:
            if start is not None:
                total += (last - start).total_seconds()
            start = stamp
        finished = finished or re.search(r"done in [\d.]+s", line) is not None
        last = stamp
    if not finished:
        return None
    return total + ((last - start).total_seconds() if start is not None else 0.0)


def _unit_seconds(f: Facts, folder: str, cells: list[dict]) -> float:
    """Time the sweep's units took. A unit (plan.json's group of cells trained together) counts once: its wall
    time from its log (logs/FIRST-LAST.log, every attempt: _attempts_seconds), which holds the task metrics'
    generation too, else the time its cells record (training and scoring). Cells outside every group count
    their own time."""
    by_name = {(c["n"], c["seed"]): c.get("seconds", 0.0) for c in cells}
    groups = [g for g in (f.json(folder + "/plan.json").get("groups", [])
                          if f.path(folder + "/plan.json").is_file() else []) if g]
    total = 0.0
    for group in groups:
        logged = _attempts_seconds(f.path(f"{folder}/logs/{group_unit_name([tuple(c) for c in group])}.log"))
        total += logged if logged is not None else max(by_name.get(tuple(cell), 0.0) for cell in group)
    grouped = {tuple(cell) for group in groups for cell in group}
    return total + sum(v for k, v in by_name.items() if k not in grouped)


def ar_control_block(f: Facts, *folders: str) -> str:
    """The autoregressive control per model and corpus: L(0), L(64), their difference per seed and over seeds
    with its 95 % interval (windows and seeds resampled), and the verdict by the ±0.08 rule (ar_control). A
    folder written FOLDER@CORPUS reads the prompts' scores on another corpus (transfer/CORPUS)."""
    lines = ["| model | scored on | windows | L(0) | L(64), mean of seeds | L(64) − L(0) | per seed | "
             "95 % interval | verdict |", "|---|---|---|---|---|---|---|---|---|"]
    for key in folders:
        folder, _, corpus = key.partition("@")
        c, res = f.ar(folder, corpus or None), f.sweep(folder)
        lines.append(f"| {res['model']['name']} | {corpus or 'its own held-out windows'} | {c['windows']} | "
                     f"{c['plain']:.3f} | {c['trained']:.3f} | "
                     f"{c['diff']:+.3f} | {', '.join(f'{d:+.3f}' for d in c['per_seed'])} | "
                     f"[{c['low']:+.3f}, {c['high']:+.3f}] | {c['verdict']} |")
    return "\n".join(lines)


BLOCKS = {"runs": runs_block, "sweep": sweep_block, "saturation": saturation_block, "sensitivity": sensitivity_block,
          "skip": skip_block, "elo": elo_block, "conditions": conditions_block, "stability": stability_block,
          "bench-scores": bench_scores_block, "bench-habit": bench_habit_block, "bench-curve": bench_curve_block,
          "bench-format": bench_format_block, "bench-rankings": bench_rankings_block,
          "habit-verdicts": habit_verdicts_block, "cloze-verdicts": cloze_verdicts_block, "subjects": subjects_block,
          "gsm8k-runs": gsm8k_runs_block, "suite": suite_block, "suite-compare": suite_compare_block,
          "ar-control": ar_control_block, "bench-overview": bench_overview_block, "chess-models": chess_models_block}


# =========================================================================== values


def _per_n(f: Facts, folder: str, n: str) -> dict:
    return next(r for r in f.sweep(folder)["per_n"] if r["n"] == int(n))


def loss_value(f: Facts, folder: str, n: str, which: str = "mean", digits: str = "3") -> str:
    """Held-out loss at n: mean, min or max over seeds (results_tables.fmt)."""
    return tables.fmt(_per_n(f, folder, n)[f"loss_{which}"], int(digits))


def seed_loss_value(f: Facts, folder: str, n: str, seed: str, digits: str = "3") -> str:
    """One cell's held-out loss."""
    cell = next(c for c in f.sweep(folder)["cells"] if c["n"] == int(n) and c["seed"] == int(seed))
    return tables.fmt(cell["loss"], int(digits))


def metric_value(f: Facts, folder: str, n: str, name: str, digits: str = "2", scale: str = "1") -> str:
    """A task metric's mean over seeds at n (× scale)."""
    return tables.fmt(_per_n(f, folder, n)["task_metrics"][name]["mean"] * float(scale), int(digits))


def metric_range_value(f: Facts, folder: str, name: str, digits: str = "2", scale: str = "1") -> str:
    """A task metric's lowest and highest mean over the prompted lengths (n > 0): '44–53'."""
    values = [r["task_metrics"][name]["mean"] * float(scale) for r in f.sweep(folder)["per_n"]
              if r["n"] > 0 and name in r["task_metrics"]]
    return f"{tables.fmt(min(values), int(digits))}–{tables.fmt(max(values), int(digits))}"


def saturation_value(f: Facts, folder: str, mode: str = "absolute") -> str:
    """S(ε) of a sweep at its own ε: the label ('4', '> 16')."""
    return f.sweep(folder)["saturation"][mode]["label"]


def epsilon_count_value(f: Facts, folder_a: str, folder_b: str, mode: str = "absolute") -> str:
    """'5 of 6': at how many ε of the sensitivity table two sweeps' S are equal."""
    rows = [[r for r in f.sweep(x)["saturation"]["sensitivity"] if r["mode"] == mode] for x in (folder_a, folder_b)]
    same = sum(a["label"] == b["label"] for a, b in zip(*rows))
    return f"{same} of {len(rows[0])}"


def eps_reached_value(f: Facts, folder: str) -> str:
    """The smallest absolute ε of the sensitivity table at which S lies inside the grid ('0.03'), or 'none'."""
    reached = [r["epsilon"] for r in f.sweep(folder)["saturation"]["sensitivity"]
               if r["mode"] == "absolute" and r["reached"]]
    return f"{min(reached):g}" if reached else "none"


def per_seed_s_value(f: Facts, folder: str, mode: str = "absolute") -> str:
    """The S each seed alone gives at the sweep's ε: '1, 4, 1'."""
    return ", ".join("—" if x is None else str(x) for x in f.sweep(folder)["saturation"][mode]["per_seed"])


def bench_value(f: Facts, folder: str, model: str, mode: str, metric: str, spread: str = "") -> str:
    """A bench metric in % (one decimal); `spread`: ± the tuning seeds' std or one run's standard error."""
    row = f.bench_row(folder, model, mode)
    return tables.pct(row, metric) if spread else f"{100 * row[metric]:.1f}"


def seeds_value(f: Facts, folder: str, model: str, mode: str, metric: str) -> str:
    """Each tuning seed's value of a metric in %: '69.5, 43.5, 43.0' (from the units)."""
    row = f.bench_row(folder, model, mode)
    doc = f.bench(folder)
    (task,) = {t for per_model in doc["results"].values() for t in per_model}
    values = []
    for seed in row["seeds"]:
        units = f.path(folder) / "units" / model / task
        unit = BenchFolder.seed_dir(units, seed, doc["config"]["seed"]) / f"{mode}.json"
        values.append(f"{100 * named_by_formulation(json.loads(unit.read_text())['metrics'])[metric]:.1f}")
    return ", ".join(values)


def curve_value(f: Facts, folder: str, model: str, step: str, metric: str = "format_rate") -> str:
    """A format-saturation curve point in %."""
    doc = f.bench(folder)
    (task,) = {t for per_model in doc["results"].values() for t in per_model}
    point = next(p for p in doc["curves"][model][task] if p["step"] == int(step))
    return f"{100 * point[metric]:.1f}"


def habit_value(f: Facts, folder: str, model: str, mode: str, metric: str, what: str) -> str:
    """An answer-habit figure: over (points ± error), z, top (favourite answer), share (its share, %),
    count (how many answers it is, over every pooled answer)."""
    row = f.bench_row(folder, model, mode)
    if what == "over":
        se = row.get(f"{metric}_over_habit_stderr")
        return f"{100 * row[f'{metric}_over_habit']:+.1f}" + ("" if se is None else f" ± {100 * se:.1f}")
    if what == "z":
        return f"{row[f'{metric}_over_habit_z']:.2f}"
    if what == "top":
        return row[f"{metric}_top_answer"]
    if what == "share":
        return f"{100 * row[f'{metric}_top_share']:.0f}"
    if what == "habit":
        return f"{100 * row[f'{metric}_habit']:.1f}"
    raise KeyError(what)


def habit_count_value(f: Facts, metric: str, verdict: str) -> str:
    """'1 of 24': how many cells of one formulation in the habit family have a verdict ('held' = above or
    below habit)."""
    cells = [c for c in f.habit_family() if c["metric"] == metric]
    wanted = lambda v: v != "cannot tell" if verdict == "held" else v == verdict.replace("_", " ")  # noqa: E731
    hit = [c for c in cells if wanted(c["verdict"])]
    return f"{len(hit)} of {len(cells)}"


def habit_family_value(f: Facts, what: str = "m") -> str:
    """The habit family's size m."""
    return str(f.habit_family()[0]["m"])


def habit_max_value(f: Facts, metric: str) -> str:
    """The cell of one formulation furthest from its habit, by |z|: 'gemma3-270m few on mmlu, z 2.45'."""
    c = max((c for c in f.habit_family() if c["metric"] == metric and c["z"] is not None), key=lambda c: abs(c["z"]))
    return f"{c['model']} {c['mode']} on {c['folder'].rsplit('/', 1)[-1]}, {habit_text(c)}, p_holm {c['p_holm']:.2g}"


def cloze_count_value(f: Facts, other: str, verdict: str) -> str:
    """'2 of 8': of soft_cloze − OTHER over the tasks and models, how many have the verdict."""
    cells = [c for c in f.cloze_family() if c["other"] == other]
    return f"{sum(c['verdict'] == verdict.replace('_', ' ') for c in cells)} of {len(cells)}"


def cloze_verdict_value(f: Facts, task: str, model: str, other: str) -> str:
    """One soft_cloze − OTHER comparison's verdict text, judged within the whole cloze family."""
    from softeval.bench.verdicts import verdict_text

    return verdict_text(next(c for c in f.cloze_family() if (c["task"], c["model"], c["other"]) == (task, model, other)))


def cloze_range_value(f: Facts, other: str) -> str:
    """The range of the point differences soft_cloze − OTHER in points: '+0.0 to +5.0'."""
    from softeval.bench.verdicts import points

    diffs = [c["diff"] for c in f.cloze_family() if c["other"] == other]
    return f"{points(min(diffs))} to {points(max(diffs))}"


def format_verdict_value(f: Facts, compare: str, task: str, model: str, step: str = "chain") -> str:
    """The verdict of soft > few > zero (chain) or of one step ('soft>few', 'few>zero') from compare.json."""
    o = next(o for o in f.findings(compare)["format_order"] if o["task"] == task and o["model"] == model)
    if step == "chain":
        return o["verdict"]
    from softeval.bench.verdicts import verdict_text

    return verdict_text(next(s for s in o["steps"] if s["step"].replace(" ", "") == step))


def format_count_value(f: Facts, compare: str, step: str, verdict: str) -> str:
    """'8 of 10': how many (task, model) have the verdict for one step of the format order (or the chain)."""
    found = f.findings(compare)["format_order"]
    if step == "chain":
        hits = [o["verdict"] for o in found]
    else:
        hits = [s["verdict"] for o in found for s in o["steps"] if s["step"].replace(" ", "") == step]
    return f"{sum(v == verdict for v in hits)} of {len(hits)}"


def rank_verdict_value(f: Facts, compare: str, task: str, mode: str) -> str:
    """A leaderboard lead's verdict text from compare.json."""
    from softeval.bench.verdicts import verdict_text

    return verdict_text(f.findings(compare)["rankings"][task]["gaps"][mode][0])


def rank_count_value(f: Facts, compare: str, verdict: str) -> str:
    """'1 of 19': how many leads in the rankings family have the verdict."""
    gaps = [g for e in f.findings(compare)["rankings"].values() for gs in e["gaps"].values() for g in gs]
    return f"{sum(g['verdict'] == verdict.replace('_', ' ') for g in gaps)} of {len(gaps)}"


def family_value(f: Facts, compare: str, name: str) -> str:
    """A family's size m in compare.json."""
    return str(f.findings(compare)["family_size"][name])


def elo_value(f: Facts, folder: str, what: str) -> str:
    """The Elo check's data: median (median average Elo of the held-out games), low / high (the probe
    conditions), gap (high − low), wrong (effects whose 90 % interval lies below 0) and spanning (whose
    interval spans 0), out of all effects."""
    cells = [c for c in f.sweep(folder)["cells"] if "elo_effect_high_games" in (c.get("task_metrics") or {})]
    m = cells[0]["task_metrics"]
    if what in ("median", "low", "high", "gap"):
        values = {"median": m["elo_check_median_elo"], "low": m["elo_check_low_half_mean_elo"],
                  "high": m["elo_check_high_half_mean_elo"]}
        values["gap"] = values["high"] - values["low"]
        return f"{values[what]:,.0f}"
    effects = [(c["task_metrics"][f"elo_effect_{h}_games_lo90"], c["task_metrics"][f"elo_effect_{h}_games_hi90"])
               for c in cells for h in ("high", "low")]
    if what == "count":
        return str(len(effects))
    if what == "bf16-shift":  # the largest move between a cell's own (bf16) effect and its fp32 rescoring
        shifts = []
        for c in cells:
            own = json.loads((f.path(folder) / "cells" / c["name"] / "cell.json").read_text()).get("task_metrics") or {}
            shifts += [abs(own[k] - c["task_metrics"][k])
                       for k in ("elo_effect_high_games", "elo_effect_low_games") if k in own]
        return f"{max(shifts):.3f}"
    if what == "largest":
        return f"{max(abs(c['task_metrics'][f'elo_effect_{h}_games']) for c in cells for h in ('high', 'low')):.3f}"
    test = {"wrong": lambda lo, hi: hi < 0, "right": lambda lo, hi: lo > 0,
            "spanning": lambda lo, hi: lo <= 0 <= hi}[what]
    return str(sum(test(lo, hi) for lo, hi in effects))


def paths_value(f: Facts, folder: str, n: str, what: str) -> str:
    """Pathfinding walks at n over all seeds: reached (boards whose walk reached the goal, of all walked) or
    requested (for one requested extra E: 'E=8'), the measured extras of the boards that reached it."""
    from softeval.tasks.pathfinding import PathfindingOptions

    res = f.sweep(folder)
    boards = min(res["task"]["num_eval"], PathfindingOptions().max_metric_boards)
    cells = [c for c in res["cells"] if c["n"] == int(n) and c.get("status") == "done"]
    if what == "reached":
        return f"{round(sum(c['task_metrics']['goal_reached_rate'] for c in cells) * boards)} of {boards * len(cells)}"
    extra = float(what.split("=")[1])
    probes = [(c["seed"], p) for c in cells for p in c.get("condition_metrics") or [] if p["condition"][0] == extra]
    reached = [(seed, round(p["goal_reached_rate"] * boards), p["measured_extra"]) for seed, p in probes
               if p.get("measured_extra") is not None]
    return "; ".join(f"seed {s}: {k} board{'s' * (k != 1)}, {x:g} extra" for s, k, x in reached) or "no board"


def stability_value(f: Facts, folder: str, n: str, what: str) -> str:
    """A stability grid's losses at n over every point and seed: 'range' (min–max over cells), or
    'lr=X,bs=Y' (that point's seeds, comma-separated)."""
    from pathlib import Path as _P

    summary = f.json(folder + "/stability.json")
    values = []
    for pt in summary["points"]:
        if what != "range" and what != f"lr={pt['lr']:g},bs={pt['batch_size']}":
            continue
        res = f.sweep(str((f.root / folder / _P(pt["folder"]).name).relative_to(f.root)))
        values += [c["loss"] for c in res["cells"] if c["n"] == int(n) and c.get("status") == "done"]
    if what == "range":
        return f"{min(values):.2f}–{max(values):.2f}"
    return ", ".join(f"{v:.1f}" for v in values)


def checkpoint_value(f: Facts, model: str) -> str:
    """An embedded model's quantization: 'Q4_1'."""
    return checkpoint(model).split()[0]


# ----------------------------------------------------------------------- suites


def _suite_cells(f: Facts, folder: str):
    """Every finished trained cell (n > 0) of a suite: (behaviour, direction, cell.json)."""
    for path in sorted(f.path(folder).glob("sweeps/*/*/cells/*/cell.json")):
        cell = json.loads(path.read_text())
        if cell.get("status") == "done" and cell.get("n", 0) > 0:
            yield path.parts[-5], path.parts[-4], cell


def suite_hours_value(f: Facts, folder: str) -> str:
    """The CPU hours a suite's cells took (results.json's cell_seconds: each cell's own training and scoring)."""
    return f"{f.suite(folder)['cell_seconds'] / 3600:.1f}"


def suite_cells_value(f: Facts, folder: str) -> str:
    """How many trained cells (n > 0) a suite has finished."""
    return str(sum(1 for _ in _suite_cells(f, folder)))


SUITE_VERDICTS = {"nothing": lambda v: v == "nothing beats the control", "gap": lambda v: " at n=" in v,
                  "incomplete": lambda v: v.startswith("incomplete")}


def suite_verdicts_value(f: Facts, folder: str, verdict: str) -> str:
    """'12 of 12': how many behaviours have the verdict: nothing (beats the control), gap (some direction has one),
    incomplete."""
    rows = f.suite(folder)["behaviours"]
    return f"{sum(SUITE_VERDICTS[verdict](r['verdict']) for r in rows)} of {len(rows)}"


def suite_tests_value(f: Facts, folder: str) -> str:
    """The gap rule's family: every (behaviour, direction, trained n) compared with the control."""
    rows = f.suite(folder)["behaviours"]
    return str(sum((r.get(d) or {}).get("lengths_scanned", 0) for r in rows for d in ("towards", "away")))


def suite_zero_value(f: Facts, folder: str, what: str) -> str:
    """The zero-shot disposition over a suite's behaviours: 'range' of the matching rates ('0.47–0.59'), or
    'logodds-zero' (of how many the mean log-odds interval includes 0: '12 of 12')."""
    zero = [r["zero_shot"] for r in f.suite(folder)["behaviours"] if r.get("zero_shot")]
    if what == "range":
        rates = [z["matching_rate"]["value"] for z in zero]
        return f"{min(rates):.2f}–{max(rates):.2f}"
    inside = sum(z["mean_log_odds"]["low"] <= 0 <= z["mean_log_odds"]["high"] for z in zero)
    return f"{inside} of {len(zero)}"


def suite_logodds_value(f: Facts, folder: str) -> str:
    """'3 of 24': of the log-odds differences from the control at the largest n (both directions, every
    behaviour), how many intervals exclude 0."""
    res = f.suite(folder)
    n_max = max(res["tokens"])
    rows = [r["log_odds_difference"] for b in res["behaviours"] for d in ("towards", "away")
            for r in (b.get(d) or {}).get("by_n", []) if r["n"] == n_max and "log_odds_difference" in r]
    return f"{sum(not (x['low'] <= 0 <= x['high']) for x in rows)} of {len(rows)}"


def suite_halfwidth_value(f: Facts, folder: str) -> str:
    """The median half-width of the rate-difference intervals (direction − control) at the largest n: how large a
    difference the suite can resolve."""
    res = f.suite(folder)
    n_max = max(res["tokens"])
    widths = [(r["difference"]["high"] - r["difference"]["low"]) / 2 for b in res["behaviours"]
              for d in ("towards", "away") for r in (b.get(d) or {}).get("by_n", [])
              if r["n"] == n_max and "difference" in r]
    return f"{statistics.median(widths):.2f}"


def suite_loss_value(f: Facts, folder: str, which: str) -> str:
    """The median over a suite's trained cells (every direction) of the held-out answer loss before training
    ('initial') or after it ('final'), nats."""
    key = {"initial": "initial_loss", "final": "loss"}[which]
    return f"{statistics.median(cell[key] for _, _, cell in _suite_cells(f, folder)):.1f}"


def suite_spearman_value(f: Facts, compare: str, quantity: str) -> str:
    """A rank correlation between two suites from compare.json: quantity 'difference' (towards − control at the
    largest shared n) or 'zero' (zero-shot rate): '+0.12 [-0.50, +0.70]'."""
    doc = f.json(compare + "/compare.json")
    prefix = {"difference": "towards", "zero": "zero-shot"}[quantity]
    (c,) = [c for c in doc["correlations"] if c["quantity"].startswith(prefix)]
    return _rho(c)


def suite_speed_value(f: Facts, file: str, mode: str = "cell") -> str:
    """The median trained cells per hour of one mode ('lanes' or 'cell' by cell) in a suite_speed benchmark file."""
    runs = f.json(file)["runs"]
    want = "lanes" if mode == "lanes" else "cell by cell"
    return f"{statistics.median(r['cells_per_hour'] for r in runs if r['mode'] == want):.1f}"


def bench_minutes_value(f: Facts, folder: str, model: str) -> str:
    """Minutes a bench unit (one model on one task) ran: the 'done in N s' of each finished attempt in its log
    (logs/MODEL__TASK.log); an attempt stopped before it finished does not count."""
    (log,) = f.path(folder + "/logs").glob(f"{model}__*.log")
    seconds = sum(_done_in(log))
    return f"{seconds / 60:.0f}"


def ar_value(f: Facts, folder: str, what: str) -> str:
    """The autoregressive control (ar_control; FOLDER@CORPUS for its prompts on another corpus): diff, low,
    high (signed, 3 decimals), verdict, or hours of unit time (1 decimal)."""
    folder, _, corpus = folder.partition("@")
    c = f.ar(folder, corpus or None)
    return c["verdict"] if what == "verdict" else f"{c['hours']:.1f}" if what == "hours" else f"{c[what]:+.3f}"


def chess_models_value(f: Facts, folder_a: str, folder_b: str, what: str, n: str | None = None) -> str:
    """The two-model chess comparison (chess_models): holds ('3 of 5': how many n the rule decides) or, at one
    n, diff / low / high (signed, 3 decimals) or verdict."""
    rows = f.chess(folder_a, folder_b)
    if what == "holds":
        return f"{sum(r['verdict'].startswith('holds') for r in rows)} of {len(rows)}"
    row = next(r for r in rows if r["n"] == int(n))
    return row["verdict"] if what == "verdict" else f"{row[what]:+.3f}"


def repeat_chars_value(f: Facts, folder: str) -> str:
    """How many characters the repeated string of a repetition sweep has (its config's task text)."""
    return str(len(f.sweep(folder)["config"]["task"]["options"]["text"]))


def sweep_minutes_value(f: Facts, folder: str) -> str:
    """Minutes a distance sweep's units ran (_unit_seconds: each unit once, its log's wall time where it has one)."""
    return f"{_unit_seconds(f, folder, f.sweep(folder)['cells']) / 60:.0f}"


VALUES = {"loss": loss_value, "seed-loss": seed_loss_value, "metric": metric_value, "metric-range": metric_range_value,
          "S": saturation_value,
          "S-per-seed": per_seed_s_value, "eps-reached": eps_reached_value, "eps-same": epsilon_count_value, "bench": bench_value, "seeds": seeds_value,
          "curve": curve_value, "habit": habit_value, "habit-count": habit_count_value, "habit-m": habit_family_value,
          "habit-max": habit_max_value, "cloze-count": cloze_count_value, "cloze-verdict": cloze_verdict_value,
          "cloze-range": cloze_range_value,
          "format-verdict": format_verdict_value, "format-count": format_count_value,
          "rank-verdict": rank_verdict_value, "rank-count": rank_count_value, "family": family_value,
          "elo": elo_value, "paths": paths_value, "stability": stability_value, "checkpoint": checkpoint_value,
          "suite-hours": suite_hours_value, "suite-cells": suite_cells_value, "suite-verdicts": suite_verdicts_value,
          "suite-tests": suite_tests_value, "suite-zero": suite_zero_value, "suite-logodds": suite_logodds_value,
          "suite-loss": suite_loss_value, "suite-halfwidth": suite_halfwidth_value, "suite-spearman": suite_spearman_value, "suite-speed": suite_speed_value,
          "ar": ar_value, "bench-minutes": bench_minutes_value,
          "repeat-chars": repeat_chars_value, "chess-models": chess_models_value, "sweep-minutes": sweep_minutes_value}
