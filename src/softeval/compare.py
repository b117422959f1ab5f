"""softeval compare: several distance sweeps (or several bench runs) side by side.

Reads only what the runs wrote (results.json, cells/*/metrics.jsonl); never loads a model, so it works on
folders copied from a cluster. Writes OUT/compare.json (strict JSON), OUT/index.html (self-contained) and the
PNGs next to it.

Distance sweeps (other models, tasks or settings):
  * loss vs n, one line with error bars (std over seeds) per sweep;
  * S(ε) per sweep with its bootstrap interval over seeds, recomputed from the cells with ONE ε and one
    number of resamples for every sweep (a sweep's own ε may differ: S at different ε does not compare);
  * S against model size (parameters) when the models differ;
  * the share of the gap to the reference each n closes, for sweeps that have a reference;
  * the settings that differ between the sweeps, and the unstable cells (`stability.flag_cells`).
Sweeps scored on different held-out sets (eval fingerprints) are refused unless `allow_different_eval`:
their losses are over different tokens, so a lower curve could just be an easier set.

Bench folders: a (task, model, mode, run) table of the bench metrics with standard errors and the
soft-prompt tuning curves per task; refused when one task was evaluated on different items in two runs.
"""

from __future__ import annotations

import html
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from softeval.bench.modes import FORMAT_MODES, MODES
from softeval.bench.ranking import short_model_name
from softeval.bench.scoring import named_by_formulation
from softeval.errors import ConfigError, DataError, SoftevalError
from softeval.distance.saturation import saturation_summary
from softeval.reports.page import CSS, img, slug, table
from softeval.reports.plots import figure, loss_error_arms, maybe_log_y, n_axis, png
from softeval.store import SweepFolder, atomic_write_bytes, atomic_write_json, atomic_write_text, read_json

logger = logging.getLogger(__name__)

SCHEMA = "softeval.compare/1"
BENCH_METRICS = ("format_rate", "strict_acc", "acc_given_format", "lenient_acc", "ll_letters_acc", "ll_cloze_acc",
                 "ll_cloze_acc_norm", "best_acc")
# Which formulation a bench row's best_acc comes from (letters, letters_ll, cloze).
BENCH_LABELS = ("best_formulation",)


@dataclass
class CompareResult:
    out_dir: Path
    summary: dict             # the content of compare.json
    report_path: Path


# --------------------------------------------------------------------------- reading runs


def load_run(path: str | Path) -> dict:
    """{kind: distance | bench, path, results} for a sweep or bench folder (or its results.json)."""
    path = Path(path)
    folder = path.parent if path.name == "results.json" else path
    file = folder / "results.json"
    if not file.exists() and (folder / "config.json").exists() and (folder / "cells").is_dir():
        from softeval.distance.sweep import summarize_sweep

        # An interrupted sweep: its summary from the finished cells, as `softeval report` does (marked incomplete).
        return {"kind": "distance", "path": folder, "results": summarize_sweep(folder)}
    if not file.exists():
        raise SoftevalError(f"{folder} has no results.json; pass the --out folder of a `softeval distance` "
                            "or `softeval bench` run")
    results = read_json(file, "results file")
    if isinstance(results, dict) and results.get("kind") == "distance":
        return {"kind": "distance", "path": folder, "results": results}
    if isinstance(results, dict) and {"results", "config"} <= set(results) and "models" in results["config"]:
        return {"kind": "bench", "path": folder, "results": results}
    raise SoftevalError(f"{file} is neither a distance sweep's nor a bench run's results.json")


def run_labels(paths: list[Path], labels: list[str] | None = None) -> list[str]:
    """Short unique names: the folder name, with its parent where two folders share a name."""
    if labels:
        if len(labels) != len(paths):
            raise ConfigError(f"{len(labels)} --label value(s) for {len(paths)} run(s); give one per run or none")
        if len(set(labels)) != len(labels):
            raise ConfigError(f"--label values repeat: {', '.join(labels)}")
        return list(labels)
    out = [p.resolve().name for p in paths]
    for depth in (2, 3):
        if len(set(out)) == len(out):
            break
        out = ["/".join(p.resolve().parts[-depth:]) for p in paths]
    if len(set(out)) != len(out):
        out = [f"{name}#{i + 1}" for i, name in enumerate(out)]
    return out


def differences(runs: list[dict]) -> dict[str, list]:
    """Dotted setting → value per run, for what can change a number (softeval.store.identity decides) and is not the
    same in every run: the config settings the policy counts, and the facts resolved where each run ran
    (weights and tokenizer hashes, weights dtype, precision) from its identity.json."""
    from softeval.bench.runner import BenchConfig
    from softeval.distance.sweep import DistanceConfig
    from softeval.store.identity import changes_numbers, differing, flatten, is_current

    rows = []
    for run in runs:
        cls = DistanceConfig if run["kind"] == "distance" else BenchConfig
        row = {k: v for k, v in flatten(run["results"].get("config") or {}).items() if changes_numbers(cls, k)}
        path = Path(run["path"]) / "identity.json"
        stored = read_json(path, "result identity") if path.exists() else None
        if is_current(stored):
            row.update({f"resolved.{k}": v for k, v in (stored.get("resolved") or {}).items()})
        rows.append(row)
    return differing(rows)


# --------------------------------------------------------------------------- distance sweeps


def loss_matrix(results: dict) -> tuple[list[int], np.ndarray]:
    """Seeds × n held-out losses from the finished cells (NaN where missing or failed); n = 0 fills every row,
    as in `distance.summarize_sweep`."""
    tokens = list(results["tokens"])
    seeds = list(results.get("seeds") or [0])
    row = {s: i for i, s in enumerate(seeds)}
    matrix = np.full((len(seeds), len(tokens)), np.nan)
    for c in results.get("cells") or []:
        if not SweepFolder.finished(c) or c["n"] not in tokens:
            continue
        j = tokens.index(c["n"])
        if c["n"] == 0:
            matrix[:, j] = c["loss"]
        elif c["seed"] in row:
            matrix[row[c["seed"]], j] = c["loss"]
    return tokens, matrix


def _saturation(results: dict, epsilon: float, mode: str, samples: int) -> dict | None:
    tokens, matrix = loss_matrix(results)
    if len(tokens) < 2 or not np.isfinite(matrix).any():
        return None
    s = saturation_summary(tokens, matrix, epsilon, mode, samples)
    return {"S": s["S"], "label": s["label"], "reached": s["reached"], "threshold": s["threshold"],
            "per_seed": s["per_seed"], "interval90": s["bootstrap"].get("interval90", [None, None]),
            "distribution": s["bootstrap"].get("distribution", {})}


def check_eval_sets(labels: list[str], prints: list, allow: bool, what: str) -> bool:
    """True when every run was scored on the same held-out set; else refuse (or, if allowed, say so)."""
    same = None not in prints and len(set(prints)) == 1
    if same or allow:
        return same
    listed = "; ".join(f"{label}: {str(p)[:12] if p else 'unknown'}" for label, p in zip(labels, prints))
    raise DataError(f"these {what} were scored on different held-out sets ({listed}), so their numbers are over "
                    "different items or tokens; compare runs of one task and tokenizer, or pass "
                    "--allow-different-eval to put them side by side anyway")


def compare_sweeps(runs: list[dict], labels: list[str], allow_different_eval: bool = False,
                   epsilon: float | None = None, epsilon_relative: float | None = None,
                   bootstrap_samples: int = 1000) -> dict:
    """compare.json content for distance sweeps (see the module docstring)."""
    from softeval.distance.stability import flag_cells, read_curves

    res = [r["results"] for r in runs]
    prints = [r["task"].get("eval_fingerprint") for r in res]
    same_eval = check_eval_sets(labels, prints, allow_different_eval, "sweeps")
    first_cfg = res[0].get("config") or {}
    eps = float(epsilon if epsilon is not None else first_cfg.get("epsilon", 0.01))
    eps_rel = float(epsilon_relative if epsilon_relative is not None else first_cfg.get("epsilon_relative", 0.05))
    if not (eps >= 0 and eps_rel >= 0 and math.isfinite(eps) and math.isfinite(eps_rel)):
        raise ConfigError(f"--epsilon and --epsilon-relative must be non-negative numbers, got {eps}, {eps_rel}")
    if bootstrap_samples < 1:
        raise ConfigError(f"--bootstrap-samples must be >= 1, got {bootstrap_samples}")

    sweeps, curves, saturation, gaps, flags = [], [], [], [], []
    for label, run, r in zip(labels, runs, res):
        model, task = r.get("model") or {}, r.get("task") or {}
        sweeps.append({"label": label, "path": str(run["path"]), "model": model.get("name"),
                       "weights_sha256": model.get("weights_sha256"), "num_parameters": model.get("num_parameters"),
                       "task": (r.get("config") or {}).get("task", {}).get("name"), "task_spec": task.get("spec"),
                       "eval_fingerprint": task.get("eval_fingerprint"), "num_eval_targets": task.get("num_eval_targets"),
                       "complete": r.get("complete"), "missing": r.get("missing") or [], "seeds": r.get("seeds"),
                       "own_epsilon": {"absolute": (r.get("config") or {}).get("epsilon"),
                                       "relative": (r.get("config") or {}).get("epsilon_relative")}})
        rows = [row for row in r.get("per_n") or [] if row.get("loss_mean") is not None]
        curves.append({"label": label, "n": [row["n"] for row in rows], "loss_mean": [row["loss_mean"] for row in rows],
                       "loss_std": [row["loss_std"] for row in rows], "loss_min": [row.get("loss_min") for row in rows],
                       "num_seeds": [row["num_seeds"] for row in rows]})
        saturation.append({"label": label, "absolute": _saturation(r, eps, "absolute", bootstrap_samples),
                           "relative": _saturation(r, eps_rel, "relative", bootstrap_samples)})
        ref = r.get("reference")
        if ref:
            closed = [row for row in r.get("per_n") or [] if row.get("gap_closed_mean") is not None]
            gaps.append({"label": label, "reference": ref.get("model"), "reference_loss": ref.get("loss"),
                         "gap": ref.get("gap"), "n": [row["n"] for row in closed],
                         "mean": [row["gap_closed_mean"] for row in closed],
                         "std": [row["gap_closed_std"] for row in closed]})
        flags += [{"sweep": label, **f} for f in flag_cells(r, read_curves(run["path"], r))]

    models = {s["weights_sha256"] or s["model"] for s in sweeps}
    by_size = None
    if len(models) > 1:
        by_size = [{"label": s["label"], "model": s["model"], "num_parameters": s["num_parameters"],
                    "task": s["task"], "absolute": sat["absolute"], "relative": sat["relative"]}
                   for s, sat in zip(sweeps, saturation)]
    return {
        "schema": SCHEMA, "kind": "distance", "same_eval_set": same_eval, "allow_different_eval": allow_different_eval,
        "epsilon": {"absolute": eps, "relative": eps_rel}, "bootstrap_samples": bootstrap_samples,
        "sweeps": sweeps, "differences": differences(runs),
        "loss_vs_n": curves, "saturation": saturation, "by_model_size": by_size, "gap_closed": gaps,
        "flags": flags,
    }


# --------------------------------------------------------------------------- bench runs


def _eval_docs(doc: dict, task: str) -> list[str] | None:
    """The content hashes of a task's evaluation documents in a bench run (None: written before they were
    recorded)."""
    hashes = ((doc.get("data") or {}).get(task) or {}).get("data_sha256") or {}
    found = sorted({v for k, v in hashes.items() if k.startswith("docs.") and k.endswith(".eval")})
    return found or None


def _bench_eval_identity(doc: dict, task: str, with_docs: bool) -> str:
    """What a bench run scored a task on: its split and items and, where every run recorded it, the content of
    the evaluation documents (two spec tasks of one name over different files are different eval sets)."""
    info = (doc.get("data") or {}).get(task) or {}
    keys = ("eval_split", "eval_items", "eval_items_from", "source", "skipped_no_gold")
    return json.dumps({**{k: info.get(k) for k in keys}, **({"eval_docs": _eval_docs(doc, task)} if with_docs else {})},
                      sort_keys=True)


def compare_bench(runs: list[dict], labels: list[str], allow_different_eval: bool = False) -> dict:
    """compare.json content for bench runs: one row per (task, model, mode, run), and the tuning curves."""
    docs = [r["results"] for r in runs]
    tasks = sorted({t for d in docs for per_task in d["results"].values() for t in per_task})
    same_eval = True
    for task in tasks:
        having = [(label, d) for label, d in zip(labels, docs) if any(task in m for m in d["results"].values())]
        if len(having) > 1:
            with_docs = all(_eval_docs(d, task) for _, d in having)
            ok = check_eval_sets([f"{label} ({task})" for label, _ in having],
                                 [_bench_eval_identity(d, task, with_docs) for _, d in having], allow_different_eval,
                                 f"bench runs of {task}")
            same_eval = same_eval and ok
    rows, curves = [], {}
    for label, d in zip(labels, docs):
        for model, per_task in d["results"].items():
            for task, per_mode in per_task.items():
                for mode, metrics in per_mode.items():
                    metrics = named_by_formulation(metrics)  # a run of an older softeval: ll_acc renamed
                    row = {"task": task, "model": model, "mode": mode, "run": label,
                           "num_fewshot": metrics.get("num_fewshot")}
                    for m in BENCH_METRICS:
                        if m in metrics:
                            row[m] = metrics[m]
                            row[f"{m}_stderr"] = metrics.get(f"{m}_stderr")
                            row[f"{m}_n"] = metrics.get(f"{m}_n")
                            if f"{m}_seed_std" in metrics:  # soft over several tuning seeds: their mean and std
                                row[f"{m}_seed_std"] = metrics[f"{m}_seed_std"]
                    if metrics.get("seeds"):
                        row["tuning_seeds"] = len(metrics["seeds"])
                    row.update({k: metrics[k] for k in BENCH_LABELS if k in metrics})
                    rows.append(row)
        for model, per_task in (d.get("curves") or {}).items():
            for task, points in per_task.items():
                curves.setdefault(task, []).append({
                    "run": label, "model": model, "steps": [p["step"] for p in points],
                    **{m: [p.get(m) for p in points] for m in ("format_rate", "strict_acc", "lenient_acc")},
                    **{f"{m}_seed_std": [p.get(f"{m}_seed_std") for p in points]
                       for m in ("format_rate", "strict_acc", "lenient_acc")
                       if any(f"{m}_seed_std" in p for p in points)}})
    order = {mode: i for i, mode in enumerate(MODES)}
    rows.sort(key=lambda r: (r["task"], r["model"], order.get(r["mode"], len(MODES)), r["run"]))
    return {"schema": SCHEMA, "kind": "bench", "same_eval_set": same_eval,
            "allow_different_eval": allow_different_eval,
            "runs": [{"label": label, "path": str(r["path"]), "models": d["config"].get("models"),
                      "tasks": d["config"].get("tasks"), "modes": d["config"].get("modes")}
                     for label, r, d in zip(labels, runs, docs)],
            "differences": differences(runs), "table": rows, "curves": curves,
            "findings": bench_findings(rows, paired_gaps(docs, labels))}


def paired_gaps(docs: list[dict], labels: list[str]) -> dict[tuple, dict]:
    """The paired gaps a bench run measured between neighbouring models on its leaderboards (`gap_to_next`,
    from per-item scores on the same items), keyed (run, task, metric, mode, model a, model b) with diff = a − b,
    both ways round. A run written before softeval measured them has none, and its ties are judged unpaired."""
    gaps: dict[tuple, dict] = {}
    for label, d in zip(labels, docs):
        for task, per_metric in (d.get("rankings") or {}).items():
            for metric, entry in per_metric.items():
                for mode, board in (entry.get("leaderboards") or {}).items():
                    for row in board:
                        gap = row.get("gap_to_next")
                        if gap and gap.get("diff") is not None:
                            key = (label, task, metric, mode)
                            gaps[(*key, row["model"], gap["model"])] = gap
                            gaps[(*key, gap["model"], row["model"])] = {**gap, "diff": -gap["diff"]}
    return gaps



def ranked_modes(findings: dict) -> list[str]:
    """The modes some task's knowledge ranking has, in MODES order (the columns of a rankings table)."""
    present = {m for entry in findings.get("rankings", {}).values() for m in entry["leaderboards"]}
    return [m for m in MODES if m in present]


def format_order_holds(rates: dict) -> bool | None:
    """The benchmark paper's format claim for one model on one task: soft ≥ few ≥ zero in format-following.
    None when a mode's rate is missing."""
    if any(rates.get(m) is None for m in FORMAT_MODES):
        return None
    return rates["soft"] >= rates["few"] >= rates["zero"]


def bench_findings(table: list[dict], paired: dict[tuple, dict] | None = None) -> dict:
    """The benchmark paper's two questions over every compared task: does format-following go soft ≥ few ≥
    zero for each (task, model, run), and do the models rank the same in every mode? A ranking uses best_acc
    (the best formulation per model and mode, as OLMES) when the runs scored it, else strict_acc. Each pair of
    neighbours on a leaderboard gets its gap with an uncertainty (neighbour_gap); a mode where some gap is
    smaller than its uncertainty is marked tied, so "same order" is not read into noise."""
    from softeval.bench import ranking

    rates_of: dict[tuple, dict] = {}
    for r in table:
        rates_of.setdefault((r["task"], r["model"], r["run"]), {})[r["mode"]] = r.get("format_rate")
    order = [{"task": task, "model": model, "run": run, **{m: rates[m] for m in FORMAT_MODES}, "holds": holds}
             for (task, model, run), rates in sorted(rates_of.items())
             if (holds := format_order_holds(rates)) is not None]
    rankings: dict = {}
    for task in sorted({r["task"] for r in table}):
        rows = [r for r in table if r["task"] == task]
        metric = "best_acc" if any(r.get("best_acc") is not None for r in rows) else "strict_acc"
        runs_of = {}
        for r in rows:
            runs_of.setdefault(r["model"], set()).add(r["run"])
        name = lambda r: r["model"] if len(runs_of[r["model"]]) == 1 else f"{r['model']} @ {r['run']}"  # noqa: E731
        boards, gaps = {}, {}
        # Knowledge is ranked in every mode, soft_cloze too (its prompt tuned for the cloze formulation it scores).
        for mode in MODES:
            scored = {name(r): r for r in rows if r["mode"] == mode and r.get(metric) is not None}
            if len(scored) < 2:
                continue
            board = ranking.leaderboard({k: r[metric] for k, r in scored.items()})
            for row in board:
                row["formulation"] = scored[row["model"]].get("best_formulation") if metric == "best_acc" else None
            boards[mode] = board
            gaps[mode] = [{"upper": a["model"], "lower": b["model"],
                           **neighbour_gap(scored[a["model"]], scored[b["model"]], metric, paired or {})}
                          for a, b in zip(board, board[1:])]
        if boards:
            orders = {tuple(row["model"] for row in board) for board in boards.values()}
            rankings[task] = {"metric": metric, "leaderboards": boards, "same_order": len(orders) == 1,
                              "gaps": gaps, "tied_within_se": {m: any(g["tied"] for g in gs) for m, gs in gaps.items()}}
    return {"format_order": order, "rankings": rankings}


def neighbour_gap(a: dict, b: dict, metric: str, paired: dict[tuple, dict]) -> dict:
    """Row a's score minus row b's (two models on one task in one mode), its uncertainty and whether the gap is
    within it. Paired when one run scored both models (its leaderboard's per-item gap): the paired standard
    error over items, combined with each tuned prompt's seed-mean standard error (seed std / √seeds), since a
    tuning seed moves every item at once. Otherwise, as for rows from different runs, unpaired: per row the
    larger of its item standard error and its tuning seeds' spread, combined."""
    gap = (paired.get((a["run"], a["task"], metric, a["mode"], a["model"], b["model"]))
           if a["run"] == b["run"] else None)

    def finite(v):
        return v is not None and math.isfinite(v)

    if gap is not None and finite(gap.get("paired_se")):
        from softeval.bench.ranking import lead_se, seed_mean_se

        diff = gap["diff"]
        se = lead_se(gap["paired_se"], *(seed_mean_se(r.get(f"{metric}_seed_std"), r.get("tuning_seeds") or 1)
                                         for r in (a, b)))
    else:
        def spread(r):
            return max([v for v in (r.get(f"{metric}_stderr"), r.get(f"{metric}_seed_std")) if finite(v)], default=0.0)
        diff, se, gap = a[metric] - b[metric], math.hypot(spread(a), spread(b)), None
    return {"diff": diff, "se": se, "paired": gap is not None, "tied": abs(diff) < se}


def gap_text(gap: dict) -> str:
    """'+4.8 ± 2.0 paired' (accuracy points): a neighbour gap and its uncertainty."""
    from softeval.bench.ranking import points_text

    return points_text(gap["diff"], gap["se"]) + (" paired" if gap["paired"] else "")


# --------------------------------------------------------------------------- figures


def _formulation_key(metric: str) -> str | None:
    """The row key naming the formulation behind a bench metric, shown beside its value."""
    return "best_formulation" if metric == "best_acc" else None


def plot_loss_vs_n(summary: dict) -> bytes | None:

    curves = [c for c in summary["loss_vs_n"] if c["n"]]
    if not curves:
        return None
    fig, ax = figure(7.0, 4.4)
    values = []
    for i, c in enumerate(curves):
        # A small multiplicative shift per sweep keeps overlapping error bars apart on the log-n axis.
        shift = 1 + 0.04 * (i - (len(curves) - 1) / 2)
        xs = [n * shift for n in c["n"]]
        arms = loss_error_arms(c["loss_mean"], c["loss_std"], c.get("loss_min"))
        ax.errorbar(xs, c["loss_mean"], yerr=arms, marker="o", capsize=3,
                    color=f"C{i % 10}", label=c["label"])
        values += c["loss_mean"]
    n_axis(ax, sorted({n for c in curves for n in c["n"]}))
    maybe_log_y(ax, values)
    ax.set_ylabel("held-out loss (nats/token)")
    ax.set_title("Loss vs prompt length (mean ± std over seeds; a bar reaching below 0 stops at the lowest seed)",
                 fontsize=9)
    ax.legend(fontsize=7)
    return png(fig)


def _s_position(entry: dict | None, tokens: list[int]) -> tuple[float | None, float, float]:
    """S and its 90% interval as plottable values (not reached → one grid step past the last n)."""
    if not entry:
        return None, 0.0, 0.0
    beyond = tokens[-1] * 2 if tokens and tokens[-1] > 0 else 1
    value = lambda label: beyond if label in (None, "not reached") else float(label)  # noqa: E731
    s = float(entry["S"]) if entry["reached"] else beyond
    lo, hi = (value(x) for x in entry["interval90"])
    return s, max(0.0, s - lo), max(0.0, hi - s)


def _param_label(count: int) -> str:
    return f"{count / 1e9:.3g}B" if count >= 1e9 else f"{count / 1e6:.3g}M"


def plot_s_vs_size(summary: dict) -> bytes | None:
    from matplotlib.ticker import NullLocator


    rows = [r for r in summary["by_model_size"] or [] if r["num_parameters"]]
    if len(rows) < 2:
        return None
    tokens = sorted({n for c in summary["loss_vs_n"] for n in c["n"]})
    fig, ax = figure(6.4, 4.0)
    for k, (mode, marker) in enumerate((("absolute", "o"), ("relative", "s"))):
        for t, task in enumerate(sorted({str(r["task"]) for r in rows})):
            group = sorted((r for r in rows if str(r["task"]) == task and r[mode]), key=lambda r: r["num_parameters"])
            if not group:
                continue
            pos = [_s_position(r[mode], tokens) for r in group]
            eps = summary["epsilon"][mode]
            what = f"{eps:g} nats" if mode == "absolute" else f"{eps:.0%} of gain"
            ax.errorbar([r["num_parameters"] * (1 + 0.03 * k) for r in group], [p[0] for p in pos],
                        yerr=[[p[1] for p in pos], [p[2] for p in pos]], marker=marker, capsize=3,
                        linestyle="-" if mode == "absolute" else ":", color=f"C{t % 10}",
                        label=f"{task}: S(ε = {what})")
    ax.set_xscale("log")
    # Ticks at the models' own sizes, in millions: matplotlib's default 2×10^8-style minor labels overlap.
    sizes = sorted({r["num_parameters"] for r in rows})
    ax.set_xticks(sizes, [_param_label(v) for v in sizes])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(sizes[0] / 1.25, sizes[-1] * 1.25)
    ax.set_yscale("symlog", linthresh=1, linscale=0.6)
    ax.set_yticks(tokens)
    ax.set_yticklabels([str(n) for n in tokens])
    ax.set_xlabel("model parameters")
    ax.set_ylabel("S (soft tokens); top = not reached")
    ax.set_title("Saturation point vs model size (bars: 90% bootstrap over seeds)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return png(fig)


def plot_gap_closed(summary: dict) -> bytes | None:

    gaps = [g for g in summary["gap_closed"] if g["n"]]
    if not gaps:
        return None
    fig, ax = figure(6.4, 4.0)
    for i, g in enumerate(gaps):
        ax.errorbar(g["n"], g["mean"], yerr=[s or 0.0 for s in g["std"]], marker="o", capsize=3, color=f"C{i % 10}",
                    label=f"{g['label']} (ref {short_model_name(g['reference'])})")
    n_axis(ax, sorted({n for g in gaps for n in g["n"]}))
    ax.axhline(1.0, color="0.5", linestyle=":")
    ax.set_ylabel("share of the gap to the reference closed")
    ax.set_title("Gap closed by n soft tokens")
    ax.legend(fontsize=7)
    return png(fig)


def plot_bench_curves(summary: dict, task: str) -> bytes | None:

    curves = summary["curves"].get(task) or []
    if not curves:
        return None
    fig = figure(10.0, 3.6)[0]
    fig.clear()
    for k, metric in enumerate(("format_rate", "strict_acc", "lenient_acc")):
        ax = fig.add_subplot(1, 3, k + 1)
        for i, c in enumerate(curves):
            pts = [(s, v) for s, v in zip(c["steps"], c[metric]) if v is not None and math.isfinite(v)]
            if pts:
                ax.plot(*zip(*pts), marker="o", color=f"C{i % 10}", label=f"{c['run']}: {short_model_name(c['model'])}")
            band = [(s, v, e) for s, v, e in zip(c["steps"], c[metric], c.get(f"{metric}_seed_std") or [])
                    if v is not None and e is not None and math.isfinite(v) and math.isfinite(e)]
            if band:  # several tuning seeds: mean ± std across them
                xs, vs, es = zip(*band)
                ax.fill_between(xs, [v - e for v, e in zip(vs, es)], [v + e for v, e in zip(vs, es)],
                                color=f"C{i % 10}", alpha=0.15, lw=0)
        ax.set_xlabel("tuning step")
        ax.set_ylabel(metric)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(True, alpha=0.3)
        if k == 0:
            ax.legend(fontsize=6)
    fig.suptitle(f"{task}: soft-prompt tuning curves")
    return png(fig)


# --------------------------------------------------------------------------- HTML


def _differences_html(diff: dict, labels: list[str]) -> str:

    if not diff:
        return "<p class='note'>The runs share every setting that can change a number.</p>"
    rows = [[key, *[json.dumps(v, default=str) if isinstance(v, (list, dict)) else v for v in values]]
            for key, values in diff.items()]
    return table(["setting", *labels], rows, left=1 + len(labels))


def _s_cell(entry: dict | None) -> str:
    if not entry:
        return "—"
    lo, hi = entry["interval90"]
    seeds = ", ".join("—" if v is None else str(v) for v in entry["per_seed"])
    return f"{entry['label']} [{lo} … {hi}] (seeds: {seeds})"


def render_distance_html(summary: dict, images: dict[str, bytes]) -> str:
    from softeval.distance.report import flags_html

    labels = [s["label"] for s in summary["sweeps"]]
    title = "softeval compare: " + ", ".join(labels)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    if summary["same_eval_set"]:
        parts.append("<p class='note'>Every sweep was scored on the same held-out examples and target tokens "
                     f"(fingerprint {html.escape(str(summary['sweeps'][0]['eval_fingerprint'])[:12])}).</p>")
    else:
        parts.append("<p><b>Different held-out sets</b> (compared with --allow-different-eval): the losses are over "
                     "different tokens, so compare shapes and saturation points, not loss values.</p>")
    rows = [[s["label"], s["model"], s["num_parameters"], s["task"], s["path"],
             "yes" if s["complete"] else f"no ({len(s['missing'])} missing)"] for s in summary["sweeps"]]
    parts.append(table(["sweep", "model", "parameters", "task", "folder", "complete"], rows, left=2))
    parts.append("<h2>Settings that differ</h2>" + _differences_html(summary["differences"], labels))

    parts.append("<h2>Loss vs prompt length</h2>")
    if "loss_vs_n" in images:
        parts.append(img(images["loss_vs_n"], "loss vs n for every sweep"))
    ns = sorted({n for c in summary["loss_vs_n"] for n in c["n"]})
    rows = []
    for c in summary["loss_vs_n"]:
        by_n = {n: (m, s) for n, m, s in zip(c["n"], c["loss_mean"], c["loss_std"])}
        rows.append([c["label"], *[(f"{by_n[n][0]:.4f}" + (f" ± {by_n[n][1]:.4f}" if by_n[n][1] else ""))
                                   if n in by_n else None for n in ns]])
    parts.append(table(["sweep", *[f"n = {n}" for n in ns]], rows, left=1))

    eps = summary["epsilon"]
    parts.append("<h2>Saturation point S(ε)</h2>")
    parts.append(f"<p class='note'>Recomputed from every sweep's cells with the same ε (absolute {eps['absolute']:g} "
                 f"nats/token, relative {eps['relative']:.0%} of the total gain) and {summary['bootstrap_samples']} "
                 "bootstrap resamples of the seeds; brackets: 90% bootstrap interval.</p>")
    rows = [[s["label"], _s_cell(s["absolute"]), _s_cell(s["relative"])] for s in summary["saturation"]]
    parts.append(table(["sweep", "S absolute", "S relative"], rows, left=3))
    if "s_vs_model_size" in images:
        parts.append("<h2>Distance vs model size</h2>" + img(images["s_vs_model_size"], "S vs model size"))
    if summary["gap_closed"]:
        parts.append("<h2>Gap to the reference closed</h2>")
        if "gap_closed" in images:
            parts.append(img(images["gap_closed"], "gap closed vs n"))
        rows = [[g["label"], g["reference"], g["gap"],
                 ", ".join(f"n={n}: {m:.3f}" for n, m in zip(g["n"], g["mean"]))] for g in summary["gap_closed"]]
        parts.append(table(["sweep", "reference", "gap L(0) − L(ref)", "share closed"], rows, left=2))
    parts.append(flags_html(summary["flags"]))
    parts.append("</body></html>")
    return "\n".join(parts)


def _findings_html(findings: dict) -> str:
    from softeval.bench.ranking import leaderboard_text

    parts = []
    if findings.get("format_order"):
        rows = [[f["task"], f["model"], f["run"], *(f"{100 * f[m]:.1f}" for m in ("zero", "few", "soft")),
                 "holds" if f["holds"] else "does not hold"] for f in findings["format_order"]]
        parts += ["<h2>Format-following: soft ≥ few ≥ zero?</h2>",
                  table(["task", "model", "run", "zero (%)", "few (%)", "soft (%)", "soft ≥ few ≥ zero"], rows,
                         left=3)]
    if findings.get("rankings"):
        rows, modes = [], ranked_modes(findings)
        for task, entry in findings["rankings"].items():
            boards, noisy, gaps = entry["leaderboards"], entry["tied_within_se"], entry.get("gaps") or {}
            cells = [leaderboard_text(boards[m]) + "; gap " + ", ".join(gap_text(g) for g in gaps.get(m, []))
                     + (" (within one SE)" if noisy[m] else "") if m in boards else "—" for m in modes]
            rows.append([task, entry["metric"], *cells, "yes" if entry["same_order"] else "no"])
        parts += ["<h2>Knowledge rankings per mode</h2>",
                  "<p>Best first. best_acc is each model's best formulation in that mode (the one in brackets). "
                  "A gap is each model's lead over the next, in accuracy points, ± its standard error: “paired” "
                  "when one run scored both models on the same items (the per-item differences' standard error, "
                  "plus the tuning seeds' for a soft prompt), else the two rows' errors combined. “within one SE” "
                  "marks a mode where some gap is smaller than its error, so the order there is noise.</p>",
                  table(["task", "metric", *modes, "same order in every mode"], rows, left=2 + len(modes))]
    return "\n".join(parts)


def render_bench_html(summary: dict, images: dict[str, bytes]) -> str:
    from softeval.bench.report import HEADINGS

    labels = [r["label"] for r in summary["runs"]]
    title = "softeval compare (bench): " + ", ".join(labels)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    if not summary["same_eval_set"]:
        parts.append("<p><b>Different evaluation items</b> for some task (compared with --allow-different-eval).</p>")
    parts.append("<h2>Settings that differ</h2>" + _differences_html(summary["differences"], labels))
    parts.append(_findings_html(summary.get("findings") or {}))
    metrics = [m for m in BENCH_METRICS if any(m in r for r in summary["table"])]
    for task in sorted({r["task"] for r in summary["table"]}):
        parts.append(f"<h2>{html.escape(task)}</h2>")
        rows = []
        for r in (r for r in summary["table"] if r["task"] == task):
            cells = []
            for m in metrics:
                v, se = r.get(m), r.get(f"{m}_stderr")
                ok = lambda x: x is not None and math.isfinite(x)  # noqa: E731
                std = r.get(f"{m}_seed_std")
                cells.append(None if not ok(v) else f"{100 * v:.1f}" + (f" ± {100 * se:.1f}" if ok(se) else "")
                             + (f", std {100 * std:.1f}" if ok(std) else "")
                             + (f" ({r[label]})" if (label := _formulation_key(m)) and r.get(label) else ""))
            mode = r["mode"] + (f" ({r['tuning_seeds']} seeds)" if r.get("tuning_seeds") else "")
            rows.append([r["model"], mode, r["run"], *cells])
        parts.append(table(["model", "mode", "run", *[f"{HEADINGS.get(m, m)} (%)" for m in metrics]], rows, left=3))
        key = f"curves_{task}"
        if key in images:
            parts.append(img(images[key], f"{task} tuning curves"))
    parts.append("</body></html>")
    return "\n".join(parts)


# --------------------------------------------------------------------------- the command


def compare(paths: list[str | Path], out: str | Path, labels: list[str] | None = None,
            allow_different_eval: bool = False, epsilon: float | None = None, epsilon_relative: float | None = None,
            bootstrap_samples: int = 1000) -> CompareResult:
    """softeval compare: read the runs → check they compare → summary → compare.json, index.html, PNGs."""

    # --- setup
    if len(paths) < 2:
        raise ConfigError(f"compare needs at least two runs, got {len(paths)}")
    runs = [load_run(p) for p in paths]
    kinds = {r["kind"] for r in runs}
    if len(kinds) > 1:
        raise ConfigError("cannot compare distance sweeps with bench runs; pass runs of one kind")
    names = run_labels([r["path"] for r in runs], labels)
    out = Path(out)
    if out.resolve() in {r["path"].resolve() for r in runs}:
        raise ConfigError(f"--out {out} is one of the runs being compared; choose another folder")

    # --- summarise and draw
    if kinds == {"distance"}:
        summary = compare_sweeps(runs, names, allow_different_eval, epsilon, epsilon_relative, bootstrap_samples)
        images = {"loss_vs_n": plot_loss_vs_n(summary), "s_vs_model_size": plot_s_vs_size(summary),
                  "gap_closed": plot_gap_closed(summary)}
    else:
        summary = compare_bench(runs, names, allow_different_eval)
        images = {f"curves_{task}": plot_bench_curves(summary, task) for task in summary["curves"]}
    images = {k: v for k, v in images.items() if v is not None}

    # --- save
    atomic_write_json(out / "compare.json", summary)
    for name, picture in images.items():
        atomic_write_bytes(out / f"{slug(name)}.png", picture)
    page = render_distance_html(summary, images) if kinds == {"distance"} else render_bench_html(summary, images)
    path = out / "index.html"
    atomic_write_text(path, page)
    logger.info("wrote %s and %s", out / "compare.json", path)
    return CompareResult(out_dir=out, summary=summary, report_path=path)


def format_summary(summary: dict) -> str:
    """The few lines the CLI prints."""
    if summary["kind"] == "bench":
        lines = [f"{len(summary['table'])} rows over {len(summary['runs'])} bench runs"]
        findings = summary.get("findings") or {}
        for f in findings.get("format_order", []):
            lines.append(f"{f['task']} {f['model']} ({f['run']}): format zero {100 * f['zero']:.1f} %, few "
                         f"{100 * f['few']:.1f} %, soft {100 * f['soft']:.1f} %: soft ≥ few ≥ zero "
                         f"{'holds' if f['holds'] else 'does not hold'}")
        for task, entry in (findings.get("rankings") or {}).items():
            noisy = [m for m, t in entry["tied_within_se"].items() if t]
            gaps = "; ".join(f"{m} {', '.join(gap_text(g) for g in gs)}" for m, gs in (entry.get("gaps") or {}).items())
            lines.append(f"{task} ranking by {entry['metric']}: {'same' if entry['same_order'] else 'different'} "
                         "order across modes" + (f"; within one SE in {', '.join(noisy)}" if noisy else "")
                         + (f" (gaps: {gaps})" if gaps else ""))
        return "\n".join(lines)
    eps = summary["epsilon"]
    lines = [f"{'sweep':<30} {'S abs (' + format(eps['absolute'], 'g') + ') [90%]':>30} "
             f"{'S rel (' + format(eps['relative'], '.0%') + ') [90%]':>30}  flags"]
    for sat in summary["saturation"]:
        def fmt(e):
            return "—" if not e else f"{e['label']} [{e['interval90'][0]}…{e['interval90'][1]}]"
        nflags = sum(1 for f in summary["flags"] if f["sweep"] == sat["label"])
        lines.append(f"{sat['label'][:30]:<30} {fmt(sat['absolute']):>30} {fmt(sat['relative']):>30}  {nflags}")
    if not summary["same_eval_set"]:
        lines.append("note: the sweeps were scored on different held-out sets")
    return "\n".join(lines)


__all__ = ["compare", "compare_sweeps", "compare_bench", "load_run", "loss_matrix", "differences", "format_summary",
           "CompareResult"]
