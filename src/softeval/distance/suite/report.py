"""The suite's HTML report: behaviours ranked by elicitation gap, the asymmetry, the zero-shot disposition, the
behaviours where nothing beats the control, and each behaviour's matching rate against n."""

from __future__ import annotations

import logging
import math
from pathlib import Path

from softeval.distance.suite.summary import summarize_suite
from softeval.reports.page import escape, img, page, table
from softeval.reports.plots import figure, n_axis, plain_text, png
from softeval.store import SuiteFolder, atomic_write_bytes, atomic_write_text

logger = logging.getLogger(__name__)

COLOURS = {"towards": "#1b7837", "away": "#762a83", "control": "#888888"}
PER_FIGURE = 12


def _interval(x: dict | None, digits: int = 2) -> str:
    if not x or x.get("value") is None or not math.isfinite(x["value"]):
        return "—"
    return f"{x['value']:+.{digits}f} [{x['low']:+.{digits}f}, {x['high']:+.{digits}f}]"


def _rate(x: dict | None) -> str:
    if not x:
        return "—"
    return f"{x['value']:.2f} [{x['low']:.2f}, {x['high']:.2f}]"


def _row_at(direction: dict | None, n) -> dict | None:
    return next((r for r in (direction or {}).get("by_n", []) if r["n"] == n), None)


def ranking_rows(results: dict) -> list[list]:
    rows = []
    for r in results["behaviours"]:
        t, a = r.get("towards"), r.get("away")
        at_t = _row_at(t, (t or {}).get("gap")) or _row_at(t, max([x["n"] for x in (t or {}).get("by_n", [])] or [0]))
        at_a = _row_at(a, (a or {}).get("gap")) or _row_at(a, max([x["n"] for x in (a or {}).get("by_n", [])] or [0]))
        zero = r.get("zero_shot") or {}
        rows.append([r["rank"], r["name"], r.get("kind") or "", _rate(zero.get("matching_rate")),
                     _interval(zero.get("mean_log_odds")), (t or {}).get("gap", "—") if t else "—",
                     f"n={at_t['n']}: {_interval(at_t.get('difference'))}" if at_t else "—",
                     (a or {}).get("gap", "—") if a else "—",
                     f"n={at_a['n']}: {_interval(at_a.get('difference'))}" if at_a else "—",
                     (r.get("asymmetry") or {}).get("easier", "—"), r["verdict"]])
    for row in rows:
        row[5] = "none" if row[5] is None else row[5]
        row[7] = "none" if row[7] is None else row[7]
    return rows


def curves_figure(rows: list[dict]):
    cols = 4
    lines = math.ceil(len(rows) / cols)
    fig, _ = figure(width=3.2 * cols, height=2.6 * lines)
    fig.clear()
    ns = sorted({x["n"] for r in rows for d in ("towards", "away") for x in (r.get(d) or {}).get("by_n", [])})
    for i, r in enumerate(rows):
        ax = fig.add_subplot(lines, cols, i + 1)
        for d in ("towards", "away"):
            curve = (r.get(d) or {}).get("by_n", [])
            if not curve:
                continue
            # Plotted as the matching rate for every direction, so towards and away sit on one scale.
            sign = (lambda v: v) if d == "towards" else (lambda v: 1 - v)
            xs = [x["n"] for x in curve]
            ys = [sign(x["rate"]["value"]) for x in curve]
            lo = [sign(x["rate"]["low"] if d == "towards" else x["rate"]["high"]) for x in curve]
            hi = [sign(x["rate"]["high"] if d == "towards" else x["rate"]["low"]) for x in curve]
            ax.errorbar(xs, ys, yerr=[[y - a for y, a in zip(ys, lo)], [b - y for y, b in zip(ys, hi)]],
                        color=COLOURS[d], marker="o", ms=3, capsize=2, label=d)
        control = (r.get("control") or {}).get("by_n", [])
        if control:
            ax.plot([x["n"] for x in control], [x["matching_rate"] for x in control], color=COLOURS["control"],
                    marker="s", ms=3, ls="--", label="control")
        ax.axhline(0.5, color="#ccc", lw=0.8)
        ax.set_ylim(-0.02, 1.02)
        if ns:
            n_axis(ax, ns)
        ax.set_xlabel("n")
        ax.set_title(plain_text(r["name"])[:40], fontsize=8)
        if i == 0:
            ax.legend(fontsize=6)
            ax.set_ylabel("held-out matching rate")
    return fig


def write_report(path, out_dir: Path | None = None, results: dict | None = None) -> Path:
    """report/index.html and its PNGs; `results` is the suite's summary when the caller already has it."""
    suite = SuiteFolder(path)
    results = results if results is not None else summarize_suite(suite.path)
    out_dir = Path(out_dir) if out_dir else suite.report_dir
    parts = [f"<p>Model <b>{escape(results['model'].get('name'))}</b>, n ∈ {escape(results['tokens'])}, "
             f"{escape(results['seeds'])} seed(s), {escape(results['steps'])} steps. Gap = {escape(results['rule']['text'])}."
             " Directions: towards the behaviour (matching answer), away from it, and the shuffled-label control; "
             "every rate is on held-out statements no prompt was trained on.</p>",
             "<h2>Behaviours ranked by elicitation gap</h2>",
             table(["rank", "behaviour", "kind", "zero-shot matching rate", "zero-shot mean log-odds", "gap towards",
                    "Δ towards − control", "gap away", "Δ away − control", "easier", "verdict"],
                   ranking_rows(results), left=3)]
    if results["not_above_control"]:
        parts.append(f"<p><b>Nothing beats the control</b> for {len(results['not_above_control'])} behaviour(s): "
                     f"{escape(', '.join(results['not_above_control']))}. At these lengths, seeds and steps a prompt "
                     "trained on the behaviour does not generalise to held-out statements better than one trained on "
                     "coin-flip answers: no evidence the model exposes the behaviour here (not evidence it lacks it).</p>")
    rows = results["behaviours"]
    for k in range(0, len(rows), PER_FIGURE):
        chunk = rows[k:k + PER_FIGURE]
        picture = png(curves_figure(chunk))
        name = f"curves_{k // PER_FIGURE + 1}"
        atomic_write_bytes(out_dir / f"{name}.png", picture)
        parts.append(img(picture, f"matching rate against n, behaviours {k + 1}–{k + len(chunk)}"))
    html_path = out_dir / "index.html"
    atomic_write_text(html_path, page(f"softeval suite: {results['model'].get('name')}", parts))
    logger.info("wrote %s", html_path)
    return html_path
