"""Two or more suites side by side (softeval compare): per behaviour the gaps and the difference from the
control per run, and how the runs rank the behaviours (Spearman over behaviours, with a bootstrap interval
over behaviours). Only behaviours every suite ran on the same file (by content hash) are compared."""

from __future__ import annotations

import math

import numpy as np

from softeval.errors import DataError
from softeval.reports.page import escape, img, page, table
from softeval.reports.plots import figure, png


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_vals = values[order]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def spearman(a, b) -> float | None:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 3:
        return None
    ra, rb = _ranks(a), _ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def spearman_interval(a, b, samples: int = 2000, confidence: float = 0.95, seed: int = 0) -> list[float] | None:
    """Percentile interval of Spearman's ρ over behaviours resampled with replacement (degenerate draws dropped)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 3:
        return None
    rng = np.random.default_rng(seed)
    draws = [spearman(a[idx], b[idx]) for idx in rng.integers(0, len(a), size=(samples, len(a)))]
    draws = [d for d in draws if d is not None]
    if not draws:
        return None
    tail = (1 - confidence) / 2
    return [float(np.quantile(draws, tail)), float(np.quantile(draws, 1 - tail))]


def headline(behaviour: dict, direction: str = "towards") -> dict | None:
    """The difference from the control at the direction's gap, else at its largest trained n."""
    curve = behaviour.get(direction) or {}
    rows = [r for r in curve.get("by_n", []) if "difference" in r and r["n"] > 0]
    if not rows:
        return None
    at = next((r for r in rows if r["n"] == curve.get("gap")), rows[-1])
    return {"n": at["n"], **at["difference"]}


def largest_common_difference(behaviour: dict, n: int, direction: str = "towards") -> float | None:
    row = next((r for r in (behaviour.get(direction) or {}).get("by_n", []) if r["n"] == n and "difference" in r),
               None)
    return row["difference"]["value"] if row else None


def compare_suites(runs: list[dict], labels: list[str]) -> dict:
    """compare.json content for suites."""
    by_run = [{b["name"]: b for b in r["results"]["behaviours"]} for r in runs]
    common = sorted(set.intersection(*(set(b) for b in by_run)))
    for name in common:
        hashes = {b[name].get("data_sha256") for b in by_run}
        if len(hashes) > 1:
            raise DataError(f"behaviour {name!r} was read from different files in these suites (content differs), "
                            "so its held-out statements differ; compare suites run on the same files")
    ns = [set(r["results"].get("tokens") or []) for r in runs]
    shared_n = sorted(set.intersection(*ns) - {0}) if ns else []
    n_max = shared_n[-1] if shared_n else None
    rows = []
    for name in common:
        row = {"behaviour": name, "runs": []}
        for label, b in zip(labels, by_run):
            info = b[name]
            zero = (info.get("zero_shot") or {}).get("matching_rate") or {}
            row["runs"].append({"label": label, "gap_towards": (info.get("towards") or {}).get("gap"),
                                "gap_away": (info.get("away") or {}).get("gap"), "zero_shot": zero.get("value"),
                                "headline": headline(info), "verdict": info.get("verdict"),
                                "difference_at_n_max": largest_common_difference(info, n_max) if n_max else None})
        rows.append(row)
    correlations = []
    for i in range(len(runs)):
        for j in range(i + 1, len(runs)):
            for key, what in (("difference_at_n_max", f"towards − control at n={n_max}"),
                              ("zero_shot", "zero-shot matching rate")):
                pairs = [(r["runs"][i][key], r["runs"][j][key]) for r in rows
                         if r["runs"][i][key] is not None and r["runs"][j][key] is not None
                         and all(math.isfinite(v) for v in (r["runs"][i][key], r["runs"][j][key]))]
                a, b = [p[0] for p in pairs], [p[1] for p in pairs]
                correlations.append({"runs": [labels[i], labels[j]], "quantity": what, "behaviours": len(pairs),
                                     "spearman": spearman(a, b), "interval": spearman_interval(a, b)})
    return {"kind": "suite", "runs": [{"label": lab, "path": str(r["path"]), "model": r["results"].get("model"),
                                       "rule": r["results"].get("rule", {}).get("text")}
                                      for lab, r in zip(labels, runs)],
            "behaviours": rows, "only_in_some": sorted(set().union(*(set(b) for b in by_run)) - set(common)),
            "n_max": n_max, "correlations": correlations, "differences": {}, "same_eval_set": True}


def plot_images(summary: dict) -> dict[str, bytes]:
    rows = summary["behaviours"]
    if not rows or summary.get("n_max") is None:
        return {}
    labels = [r["label"] for r in summary["runs"]]
    fig, ax = figure(width=max(6.4, 0.45 * len(rows) + 2), height=4.0)
    width = 0.8 / len(labels)
    for k, label in enumerate(labels):
        ys = [r["runs"][k]["difference_at_n_max"] for r in rows]
        ax.bar([i + k * width for i in range(len(rows))], [y if y is not None else 0 for y in ys], width=width,
               label=label)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(rows))])
    ax.set_xticklabels([r["behaviour"][:28] for r in rows], rotation=70, ha="right", fontsize=7)
    ax.set_ylabel(f"held-out rate, towards − control (n={summary['n_max']})")
    ax.axhline(0, color="#888", lw=0.8)
    ax.legend(fontsize=7)
    return {"suite_differences": png(fig)}


def render_html(summary: dict, images: dict[str, bytes]) -> str:
    labels = [r["label"] for r in summary["runs"]]
    headers = ["behaviour"] + [f"{lab}: {what}" for lab in labels for what in ("zero-shot", "gap →", "gap ←",
                                                                               "Δ at gap/max n")]
    body = []
    for r in summary["behaviours"]:
        cells = [r["behaviour"]]
        for run in r["runs"]:
            h = run["headline"]
            cells += [run["zero_shot"], "none" if run["gap_towards"] is None else run["gap_towards"],
                      "none" if run["gap_away"] is None else run["gap_away"],
                      f"n={h['n']}: {h['value']:+.2f} [{h['low']:+.2f}, {h['high']:+.2f}]" if h else "—"]
        body.append(cells)
    corr = [[" vs ".join(c["runs"]), c["quantity"], c["behaviours"], c["spearman"],
             "—" if not c["interval"] else f"[{c['interval'][0]:+.2f}, {c['interval'][1]:+.2f}]"]
            for c in summary["correlations"]]
    parts = ["<p>" + "<br>".join(f"<b>{escape(r['label'])}</b>: {escape((r.get('model') or {}).get('name'))}, "
                                 f"{escape(r['path'])}" for r in summary["runs"]) + "</p>",
             f"<p class='note'>Gap rule: {escape(summary['runs'][0].get('rule'))}.</p>",
             "<h2>Per behaviour</h2>", table(headers, body, left=1),
             "<h2>Do the runs rank behaviours alike?</h2>",
             table(["runs", "quantity", "behaviours", "Spearman ρ", "95% interval (behaviours resampled)"], corr,
                   left=2)]
    if summary["only_in_some"]:
        parts.append(f"<p class='note'>Not in every suite (left out): {escape(', '.join(summary['only_in_some']))}</p>")
    for name, picture in images.items():
        parts.append(img(picture, name))
    return page("softeval compare: behaviour suites", parts)


def summary_text(summary: dict) -> str:
    lines = [f"{len(summary['behaviours'])} behaviour(s) in every suite"]
    for c in summary["correlations"]:
        rho = "n/a" if c["spearman"] is None else f"{c['spearman']:+.2f}"
        ci = "" if not c["interval"] else f" [{c['interval'][0]:+.2f}, {c['interval'][1]:+.2f}]"
        lines.append(f"  {' vs '.join(c['runs'])}: Spearman ρ of {c['quantity']} over {c['behaviours']} "
                     f"behaviours = {rho}{ci}")
    return "\n".join(lines)
