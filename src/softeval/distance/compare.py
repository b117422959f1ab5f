"""distance.compare: several distance sweeps side by side (other models, tasks or settings).

Owns the sweep sections of compare.json, their plots and their page:
  * loss vs n, one line with error bars (std over seeds) per sweep;
  * S(ε) per sweep with its bootstrap interval over seeds, recomputed from the cells with ONE ε and one
    number of resamples for every sweep (a sweep's own ε may differ: S at different ε does not compare);
  * S against model size (parameters) when the models differ;
  * the share of the gap to the reference each n closes, for sweeps that have a reference;
  * the unstable cells (`stability.flag_cells`).
`softeval.compare` reads the runs, checks they were scored on one held-out set, lists the settings that differ
and assembles compare.json from these sections.
"""

from __future__ import annotations

import html
import math

import numpy as np

from softeval.distance.saturation import loss_matrix, saturation_summary
from softeval.errors import ConfigError
from softeval.reports.page import differences_table, img, page, table
from softeval.reports.plots import figure, loss_error_arms, maybe_log_y, n_axis, png, short_name


# --------------------------------------------------------------------------- the sweep sections


def resolve_epsilons(first: dict, epsilon: float | None, epsilon_relative: float | None,
                     bootstrap_samples: int) -> tuple[float, float]:
    """The one absolute and one relative ε every sweep's S is recomputed with (by default the first sweep's)."""
    first_cfg = first.get("config") or {}
    eps = float(epsilon if epsilon is not None else first_cfg.get("epsilon", 0.01))
    eps_rel = float(epsilon_relative if epsilon_relative is not None else first_cfg.get("epsilon_relative", 0.05))
    if not (eps >= 0 and eps_rel >= 0 and math.isfinite(eps) and math.isfinite(eps_rel)):
        raise ConfigError(f"--epsilon and --epsilon-relative must be non-negative numbers, got {eps}, {eps_rel}")
    if bootstrap_samples < 1:
        raise ConfigError(f"--bootstrap-samples must be >= 1, got {bootstrap_samples}")
    return eps, eps_rel


def recomputed_saturation(results: dict, epsilon: float, mode: str, samples: int) -> dict | None:
    """S(ε) of one sweep recomputed from its cells at the given ε (None: fewer than two n with a loss)."""
    tokens = list(results["tokens"])
    matrix = loss_matrix(tokens, list(results.get("seeds") or [0]), results.get("cells") or [])
    if len(tokens) < 2 or not np.isfinite(matrix).any():
        return None
    s = saturation_summary(tokens, matrix, epsilon, mode, samples)
    return {"S": s["S"], "label": s["label"], "reached": s["reached"], "threshold": s["threshold"],
            "per_seed": s["per_seed"], "interval90": s["bootstrap"].get("interval90", [None, None]),
            "distribution": s["bootstrap"].get("distribution", {})}


def sweep_sections(runs: list[dict], labels: list[str], eps: float, eps_rel: float,
                   bootstrap_samples: int) -> dict:
    """Per sweep: what it is, its loss curve, its S at the common ε, its gap closed and its flagged cells."""
    from softeval.distance.stability import flag_cells, read_curves

    res = [r["results"] for r in runs]
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
        saturation.append({"label": label, "absolute": recomputed_saturation(r, eps, "absolute", bootstrap_samples),
                           "relative": recomputed_saturation(r, eps_rel, "relative", bootstrap_samples)})
        ref = r.get("reference")
        if ref:
            closed = [row for row in r.get("per_n") or [] if row.get("gap_closed_mean") is not None]
            gaps.append({"label": label, "reference": ref.get("model"), "reference_loss": ref.get("loss"),
                         "gap": ref.get("gap"), "n": [row["n"] for row in closed],
                         "mean": [row["gap_closed_mean"] for row in closed],
                         "std": [row["gap_closed_std"] for row in closed]})
        flags += [{"sweep": label, **f} for f in flag_cells(r, read_curves(run["path"], r))]

    return {"sweeps": sweeps, "loss_vs_n": curves, "saturation": saturation, "gap_closed": gaps, "flags": flags}


def by_model_size(sweeps: list[dict], saturation: list[dict]) -> list[dict] | None:
    """S per sweep beside its model's size, when the sweeps are of more than one model (else None)."""
    models = {s["weights_sha256"] or s["model"] for s in sweeps}
    if len(models) <= 1:
        return None
    return [{"label": s["label"], "model": s["model"], "num_parameters": s["num_parameters"],
             "task": s["task"], "absolute": sat["absolute"], "relative": sat["relative"]}
            for s, sat in zip(sweeps, saturation)]


# --------------------------------------------------------------------------- figures


def plot_loss_vs_n(summary: dict) -> bytes | None:
    """Every sweep's mean loss vs n with its error bars, on one axis."""
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
    """A parameter count as an axis tick: 135M, 1.7B."""
    return f"{count / 1e9:.3g}B" if count >= 1e9 else f"{count / 1e6:.3g}M"


def plot_s_vs_size(summary: dict) -> bytes | None:
    """S (both ε modes) against parameters, one line per task; None unless two sized models are compared."""
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
    """The share of the gap to each sweep's reference closed at each n; None when no sweep has a reference."""
    gaps = [g for g in summary["gap_closed"] if g["n"]]
    if not gaps:
        return None
    fig, ax = figure(6.4, 4.0)
    for i, g in enumerate(gaps):
        ax.errorbar(g["n"], g["mean"], yerr=[s or 0.0 for s in g["std"]], marker="o", capsize=3, color=f"C{i % 10}",
                    label=f"{g['label']} (ref {short_name(g['reference'])})")
    n_axis(ax, sorted({n for g in gaps for n in g["n"]}))
    ax.axhline(1.0, color="0.5", linestyle=":")
    ax.set_ylabel("share of the gap to the reference closed")
    ax.set_title("Gap closed by n soft tokens")
    ax.legend(fontsize=7)
    return png(fig)


def plot_images(summary: dict) -> dict[str, bytes]:
    """The comparison's PNGs by name (a plot with nothing to show is left out)."""
    images = {"loss_vs_n": plot_loss_vs_n(summary), "s_vs_model_size": plot_s_vs_size(summary),
              "gap_closed": plot_gap_closed(summary)}
    return {k: v for k, v in images.items() if v is not None}


# --------------------------------------------------------------------------- HTML


def _s_cell(entry: dict | None) -> str:
    """S with its 90% interval and per-seed values, in one table cell."""
    if not entry:
        return "—"
    lo, hi = entry["interval90"]
    seeds = ", ".join("—" if v is None else str(v) for v in entry["per_seed"])
    return f"{entry['label']} [{lo} … {hi}] (seeds: {seeds})"


def render_html(summary: dict, images: dict[str, bytes]) -> str:
    """The comparison page: the sweeps, the settings that differ, loss vs n, S(ε), gap closed and flags."""
    from softeval.distance.report import flags_html

    labels = [s["label"] for s in summary["sweeps"]]
    parts = []
    if summary["same_eval_set"]:
        parts.append("<p class='note'>Every sweep was scored on the same held-out examples and target tokens "
                     f"(fingerprint {html.escape(str(summary['sweeps'][0]['eval_fingerprint'])[:12])}).</p>")
    else:
        parts.append("<p><b>Different held-out sets</b> (compared with --allow-different-eval): the losses are over "
                     "different tokens, so compare shapes and saturation points, not loss values.</p>")
    rows = [[s["label"], s["model"], s["num_parameters"], s["task"], s["path"],
             "yes" if s["complete"] else f"no ({len(s['missing'])} missing)"] for s in summary["sweeps"]]
    parts.append(table(["sweep", "model", "parameters", "task", "folder", "complete"], rows, left=2))
    parts.append("<h2>Settings that differ</h2>" + differences_table(summary["differences"], labels))

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
    return page("softeval compare: " + ", ".join(labels), parts)


def summary_text(summary: dict) -> str:
    """The few lines the CLI prints: S per sweep at the common ε, and its flagged cells."""
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


__all__ = ["resolve_epsilons", "recomputed_saturation", "sweep_sections", "by_model_size", "plot_loss_vs_n",
           "plot_s_vs_size", "plot_gap_closed", "plot_images", "render_html", "summary_text"]
