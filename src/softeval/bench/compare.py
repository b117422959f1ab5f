"""bench.compare: several bench runs side by side.

Owns the bench sections of compare.json: a (task, model, mode, run) table of the bench metrics with standard
errors, the soft-prompt tuning curves per task, and the benchmark paper's two findings (is format-following
soft ≥ few ≥ zero; do the models rank the same in every mode, with each neighbour gap's uncertainty); and their
plots and page. `softeval.compare` reads the runs, refuses a task evaluated on different items in two runs
(`task_eval_sets` says what each run scored), lists the settings that differ and assembles compare.json.
"""

from __future__ import annotations

import html
import json
import math

from softeval.bench.modes import FORMAT_MODES, MODES
from softeval.bench.report import HEADINGS, SHOWN
from softeval.bench.scoring import named_by_formulation
from softeval.reports.page import differences_table, img, page, table
from softeval.reports.plots import figure, png, short_name

# Which formulation a row's best_acc comes from (letters, letters_ll, cloze): copied beside the metrics.
FORMULATION_KEYS = ("best_formulation",)
CURVE_METRICS = ("format_rate", "strict_acc", "lenient_acc")


# --------------------------------------------------------------------------- what each run scored


def eval_docs(doc: dict, task: str) -> list[str] | None:
    """The content hashes of a task's evaluation documents in a bench run (None: written before they were
    recorded)."""
    hashes = ((doc.get("data") or {}).get(task) or {}).get("data_sha256") or {}
    found = sorted({v for k, v in hashes.items() if k.startswith("docs.") and k.endswith(".eval")})
    return found or None


def eval_identity(doc: dict, task: str, with_docs: bool) -> str:
    """What a bench run scored a task on: its split and items and, where every run recorded it, the content of
    the evaluation documents (two spec tasks of one name over different files are different eval sets)."""
    info = (doc.get("data") or {}).get(task) or {}
    keys = ("eval_split", "eval_items", "eval_items_from", "source", "skipped_no_gold")
    return json.dumps({**{k: info.get(k) for k in keys}, **({"eval_docs": eval_docs(doc, task)} if with_docs else {})},
                      sort_keys=True)


def task_eval_sets(labels: list[str], docs: list[dict]) -> list[tuple[str, list[str], list[str]]]:
    """(task, 'run (task)' names, what each of those runs scored the task on) for every task in two or more
    runs: the content of the evaluation documents counts only where every such run recorded it."""
    tasks = sorted({t for d in docs for per_task in d["results"].values() for t in per_task})
    out = []
    for task in tasks:
        having = [(label, d) for label, d in zip(labels, docs) if any(task in m for m in d["results"].values())]
        if len(having) > 1:
            with_docs = all(eval_docs(d, task) for _, d in having)
            out.append((task, [f"{label} ({task})" for label, _ in having],
                        [eval_identity(d, task, with_docs) for _, d in having]))
    return out


# --------------------------------------------------------------------------- the bench sections


def run_rows(runs: list[dict], labels: list[str]) -> list[dict]:
    """What each compared run holds: its folder, models, tasks and modes."""
    return [{"label": label, "path": str(r["path"]), "models": r["results"]["config"].get("models"),
             "tasks": r["results"]["config"].get("tasks"), "modes": r["results"]["config"].get("modes")}
            for label, r in zip(labels, runs)]


def table_rows(docs: list[dict], labels: list[str]) -> list[dict]:
    """One row per (task, model, mode, run) with each metric, its standard error, count and seed spread, sorted
    by task, model, mode (in MODES order) and run."""
    rows = []
    for label, d in zip(labels, docs):
        for model, per_task in d["results"].items():
            for task, per_mode in per_task.items():
                for mode, metrics in per_mode.items():
                    metrics = named_by_formulation(metrics)  # a run of an older softeval: ll_acc renamed
                    row = {"task": task, "model": model, "mode": mode, "run": label,
                           "num_fewshot": metrics.get("num_fewshot")}
                    for m in SHOWN:
                        if m in metrics:
                            row[m] = metrics[m]
                            row[f"{m}_stderr"] = metrics.get(f"{m}_stderr")
                            row[f"{m}_n"] = metrics.get(f"{m}_n")
                            if f"{m}_seed_std" in metrics:  # soft over several tuning seeds: their mean and std
                                row[f"{m}_seed_std"] = metrics[f"{m}_seed_std"]
                    if metrics.get("seeds"):
                        row["tuning_seeds"] = len(metrics["seeds"])
                    row.update({k: metrics[k] for k in FORMULATION_KEYS if k in metrics})
                    rows.append(row)
    order = {mode: i for i, mode in enumerate(MODES)}
    rows.sort(key=lambda r: (r["task"], r["model"], order.get(r["mode"], len(MODES)), r["run"]))
    return rows


def tuning_curves(docs: list[dict], labels: list[str]) -> dict[str, list[dict]]:
    """task → one soft-prompt tuning curve per (run, model): format rate and accuracies by step (± seed std)."""
    curves: dict[str, list[dict]] = {}
    for label, d in zip(labels, docs):
        for model, per_task in (d.get("curves") or {}).items():
            for task, points in per_task.items():
                curves.setdefault(task, []).append({
                    "run": label, "model": model, "steps": [p["step"] for p in points],
                    **{m: [p.get(m) for p in points] for m in CURVE_METRICS},
                    **{f"{m}_seed_std": [p.get(f"{m}_seed_std") for p in points]
                       for m in CURVE_METRICS if any(f"{m}_seed_std" in p for p in points)}})
    return curves


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


def plot_curves(summary: dict, task: str) -> bytes | None:
    """One task's tuning curves of every run and model: format rate, strict and lenient accuracy by step."""

    curves = summary["curves"].get(task) or []
    if not curves:
        return None
    fig = figure(10.0, 3.6)[0]
    fig.clear()
    for k, metric in enumerate(CURVE_METRICS):
        ax = fig.add_subplot(1, 3, k + 1)
        for i, c in enumerate(curves):
            pts = [(s, v) for s, v in zip(c["steps"], c[metric]) if v is not None and math.isfinite(v)]
            if pts:
                ax.plot(*zip(*pts), marker="o", color=f"C{i % 10}", label=f"{c['run']}: {short_name(c['model'])}")
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


def plot_images(summary: dict) -> dict[str, bytes]:
    """The tuning-curve PNG of every task that has curves, by name."""
    images = {f"curves_{task}": plot_curves(summary, task) for task in summary["curves"]}
    return {k: v for k, v in images.items() if v is not None}


# --------------------------------------------------------------------------- HTML


def _findings_html(findings: dict) -> str:
    """The format-order table and the per-mode leaderboards with their gaps."""
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


def render_html(summary: dict, images: dict[str, bytes]) -> str:
    """The comparison page: the settings that differ, the findings, and per task the metric table and curves."""
    labels = [r["label"] for r in summary["runs"]]
    parts = []
    if not summary["same_eval_set"]:
        parts.append("<p><b>Different evaluation items</b> for some task (compared with --allow-different-eval).</p>")
    parts.append("<h2>Settings that differ</h2>" + differences_table(summary["differences"], labels))
    parts.append(_findings_html(summary.get("findings") or {}))
    metrics = [m for m in SHOWN if any(m in r for r in summary["table"])]
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
    return page("softeval compare (bench): " + ", ".join(labels), parts)


def summary_text(summary: dict) -> str:
    """The few lines the CLI prints: rows compared, the format order per (task, model, run), ranking agreement."""
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


__all__ = ["task_eval_sets", "run_rows", "table_rows", "tuning_curves", "paired_gaps", "bench_findings",
           "neighbour_gap", "gap_text", "ranked_modes", "format_order_holds", "plot_curves", "plot_images",
           "render_html", "summary_text"]
