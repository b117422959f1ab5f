"""softeval stability: the same sweep over a grid of learning rate × batch size, and how S(ε) moves across it.

`run_grid` runs `distance.run` into OUT/lr{lr}_bs{bs}/ (resumable, the model loaded once); `analyze_grid` reads
the finished sweeps, flags unstable cells and grid points with the detectors of `stability.py`, and writes
stability.json plus report/ (S per grid point, an S heat map, loss vs lr with discontinuities ringed).
"""

from __future__ import annotations

import html
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from softeval.errors import ConfigError, SoftevalError
from softeval.reports.page import img, page, table
from softeval.reports.plots import figure, png
from softeval.distance.stability import (MIN_EXCESS, SCHEMA, SIGMAS, flag_cells, neighbour_outliers, read_curves,
                                robust_scale)
from softeval.store import SweepFolder, atomic_write_bytes, folder_lock, atomic_write_json, atomic_write_text, read_json

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- the lr × batch-size grid


def grid_overrides(lr: float, batch_size: int) -> list[str]:
    """The dotted overrides that put one grid point into a DistanceConfig: the one place that knows where the
    learning rate and the batch size live in the config."""
    return [f"optim.lr={lr!r}", f"optim.batch_size={int(batch_size)}"]


def grid_point(config: dict) -> tuple[float, int]:
    """(lr, batch size) from a stored DistanceConfig dict, flat or with an `optim` section."""
    section = config.get("optim") if isinstance(config.get("optim"), dict) else config
    return float(section["lr"]), int(section["batch_size"])


def point_folder(lr: float, batch_size: int) -> str:
    return f"lr{lr:g}_bs{int(batch_size)}"


def point_config(base, lr: float, batch_size: int, out: Path):
    """`base` (a DistanceConfig) at one grid point, writing into `out`."""
    from softeval.config import dotted_to_nested, instantiate, merge_into, to_dict

    cls = type(base)
    data = merge_into(cls, to_dict(base), dotted_to_nested(grid_overrides(lr, batch_size)))
    data = merge_into(cls, data, {"out": str(out)})
    return instantiate(cls, data)


def _check_grid(lrs, batch_sizes) -> tuple[list[float], list[int]]:
    errors = []
    lrs = sorted({float(v) for v in lrs})
    sizes = sorted({int(v) for v in batch_sizes})
    if not lrs or any(not (v > 0 and math.isfinite(v)) for v in lrs):
        errors.append(f"--lrs must be positive numbers, got {lrs}")
    if not sizes or any(v < 1 for v in sizes):
        errors.append(f"--batch-sizes must be positive integers, got {sizes}")
    if errors:
        raise ConfigError("; ".join(errors))
    return lrs, sizes


@dataclass
class GridResult:
    out_dir: Path
    summary: dict             # the content of stability.json
    report_path: Path | None


def run_grid(base, lrs, batch_sizes, out: str | Path, lm=None, report: bool = True, sigmas: float = SIGMAS,
             min_excess: float = MIN_EXCESS) -> GridResult:
    """Train `base` (a DistanceConfig) at every lr × batch size into OUT/lr{lr}_bs{bs}/, then `analyze_grid`.

    The model is loaded once for the whole grid. Each point is an ordinary distance sweep: re-running the same
    command skips finished points and cells and resumes the others."""
    from softeval.distance import sweep as distance
    from softeval.engine.models import load_model

    # --- setup
    lrs, sizes = _check_grid(lrs, batch_sizes)
    out = Path(out)
    points = [(lr, bs) for bs in sizes for lr in lrs]
    configs = {p: point_config(base, p[0], p[1], out / point_folder(*p)) for p in points}  # bad settings fail here
    with folder_lock(out, "stability grid"):  # each point's sweep also locks its own folder
        lm = lm or load_model(base.model, base.device, base.dtype, show_progress=base.show_progress)
        out.mkdir(parents=True, exist_ok=True)

        # --- loop
        for i, (lr, bs) in enumerate(points, start=1):
            logger.info("grid point %d/%d: lr %g, batch size %d", i, len(points), lr, bs)
            distance.run(configs[(lr, bs)], lm=lm)

        # --- save
        return _analyze(out, report, sigmas, min_excess)


def _sweeps_in(out: Path) -> list[tuple[Path, dict]]:
    found = []
    for sub in sorted(p for p in Path(out).iterdir() if p.is_dir()):
        path = sub / "results.json"
        if path.exists():
            results = read_json(path, "distance sweep results")
            if not isinstance(results, dict):
                raise SoftevalError(f"{path} is not a sweep's results (a JSON {type(results).__name__}, not an "
                                    "object); restore it or move that folder out of the grid")
            if results.get("kind") == "distance":
                found.append((sub, results))
    return found


NO_S = "—"  # the label of a grid point whose S could not be computed (e.g. cells missing): not "not reached"


def _s_entry(results: dict, mode: str) -> dict:
    sat = (results.get("saturation") or {}).get(mode)
    # No threshold: fewer than two prompt lengths had a loss (failed or missing cells), so there is no S at all
    # (saturation.py still labels that "not reached").
    if not sat or sat.get("threshold") is None:
        return {"S": None, "label": NO_S, "reached": False, "interval90": [None, None], "epsilon": None}
    return {"S": sat["S"], "label": sat["label"], "reached": sat["reached"],
            "interval90": sat["bootstrap"].get("interval90", [None, None]), "epsilon": sat["epsilon"]}


def s_movement(entries: list[dict], tokens: list[int]) -> dict:
    """How S moves over a set of grid points: distinct values, range in grid steps, and two different counts:
    `not_reached` (S was computed and the grid's last step still gains more than ε) and `no_S` (S could not be
    computed at all, e.g. the sweep's cells are missing)."""
    labels = [e["label"] for e in entries]
    reached = [e["S"] for e in entries if e["reached"]]
    not_reached = sum(1 for e in entries if not e["reached"] and e["label"] != NO_S)
    pos = [tokens.index(s) if s in tokens else len(tokens) for s in reached] + [len(tokens)] * not_reached
    return {"distinct": sorted(set(labels), key=labels.index), "stable": len(set(labels)) <= 1,
            "S_min": min(reached, default=None), "S_max": max(reached, default=None),
            "not_reached": not_reached, "no_S": sum(1 for e in entries if e["label"] == NO_S),
            "spread_grid_steps": (max(pos) - min(pos)) if pos else None}


def lr_outliers(points: list[dict], sigmas: float = SIGMAS, min_excess: float = MIN_EXCESS) -> list[dict]:
    """Grid points whose mean loss at some n is far above their lr neighbours (same batch size, same n)."""
    scale = robust_scale([r for p in points for r in _seed_residuals(p["results"])])
    flags = []
    for bs in sorted({p["batch_size"] for p in points}):
        row = sorted((p for p in points if p["batch_size"] == bs), key=lambda p: p["lr"])
        tokens = sorted({n for p in row for n in p["results"].get("tokens", [])})
        for n in tokens:
            if n == 0:
                continue  # the plain model does not depend on lr
            series = [_loss_mean(p["results"], n) for p in row]
            for hit in neighbour_outliers(series, scale, sigmas, min_excess):
                p = row[hit["index"]]
                flags.append({"kind": "lr_neighbour", "folder": p["folder"], "lr": p["lr"], "batch_size": bs,
                              "n": n, "loss": hit["value"], "baseline": hit["baseline"], "excess": hit["excess"],
                              "threshold": hit["threshold"],
                              "message": f"mean loss at n = {n} is {hit['excess']:.4f} nats/token above the "
                                         f"neighbouring learning rates at batch size {bs}"})
    return flags


def _seed_residuals(results: dict) -> list[float]:
    by_n: dict[int, list[float]] = {}
    for c in results.get("cells") or []:
        if SweepFolder.finished(c):
            by_n.setdefault(c["n"], []).append(float(c["loss"]))
    return [v - float(np.median(vs)) for vs in by_n.values() if len(vs) >= 2 for v in vs]


def _loss_mean(results: dict, n: int) -> float | None:
    for row in results.get("per_n") or []:
        if row["n"] == n:
            return row["loss_mean"]
    return None


GRID_AXES = ("optim.lr", "optim.batch_size")


def check_one_grid(sweeps: list[tuple[Path, dict]], out: Path) -> None:
    """A stability grid varies lr and batch size alone: refuse sweeps that differ in anything else that can change
    a number (softeval.store.identity: steps, init, weights, dtype, precision, data…) or in their grid of n, and two
    folders of one (lr, batch size)."""
    from softeval.distance.config import DistanceConfig
    from softeval.store.identity import comparable_settings, differing

    rows, seen = [], {}
    for folder, results in sweeps:
        config = results.get("config") or {}
        rows.append({**comparable_settings(DistanceConfig, config, folder, leave_out=GRID_AXES),
                     "tokens": config.get("tokens")})  # one sweep's grid of n, though a sweep may grow it
        point = grid_point(config)
        if point in seen:
            raise SoftevalError(f"{seen[point]} and {folder.name} under {out} are the same grid point (lr {point[0]:g}, "
                                f"batch size {point[1]}); keep one of them")
        seen[point] = folder.name
    differ = differing(rows)
    if differ:
        listed = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in list(differ.items())[:4])
        raise SoftevalError(f"the sweeps under {out} differ in more than lr and batch size ({listed}); a stability "
                            "grid compares one sweep's settings at several lr × batch sizes (use `softeval compare` "
                            "for other differences)")


def analyze_grid(out: str | Path, report: bool = True, sigmas: float = SIGMAS,
                 min_excess: float = MIN_EXCESS) -> GridResult:
    """stability.json (+ report/) from the sweeps under OUT: S(ε) per grid point, its movement, flags; under
    OUT's lock, so it never reads a grid another process is writing."""
    out = Path(out)
    if not out.is_dir():
        raise SoftevalError(f"{out} does not exist; run `softeval stability --out {out} --lrs … --batch-sizes …` "
                            "first")
    with folder_lock(out, "stability grid"):
        return _analyze(out, report, sigmas, min_excess)


def _analyze(out: Path, report: bool, sigmas: float, min_excess: float) -> GridResult:
    sweeps = _sweeps_in(out)
    if not sweeps:
        raise SoftevalError(f"{out} holds no finished distance sweeps (no */results.json); run `softeval stability "
                            "--lrs … --batch-sizes …` into it first")
    prints = {r["task"].get("eval_fingerprint") for _, r in sweeps}
    if len(prints) > 1:
        raise SoftevalError(f"the sweeps under {out} were scored on different held-out sets; a stability grid "
                            "varies only lr and batch size (use `softeval compare` for other settings)")
    check_one_grid(sweeps, out)

    points = []
    for folder, results in sweeps:
        lr, bs = grid_point(results["config"])
        flags = flag_cells(results, read_curves(folder, results), sigmas, min_excess)
        points.append({"folder": folder.name, "lr": lr, "batch_size": bs, "results": results,
                       "complete": results["complete"], "flags": flags,
                       "absolute": _s_entry(results, "absolute"), "relative": _s_entry(results, "relative")})
    lr_flags = lr_outliers(points, sigmas, min_excess)
    unstable = {f["folder"] for f in lr_flags} | {p["folder"] for p in points if p["flags"]}
    tokens = sorted({n for p in points for n in p["results"].get("tokens", [])})
    lrs = sorted({p["lr"] for p in points})
    sizes = sorted({p["batch_size"] for p in points})
    first = points[0]["results"]
    summary = {
        "schema": SCHEMA, "kind": "stability",
        "model": first.get("model", {}).get("name"), "task": (first.get("config") or {}).get("task"),
        "eval_fingerprint": next(iter(prints)), "lrs": lrs, "batch_sizes": sizes, "tokens": tokens,
        "thresholds": {"sigmas": sigmas, "min_excess": min_excess},
        "points": [{k: v for k, v in p.items() if k != "results"}
                   | {"loss_mean": {str(r["n"]): r["loss_mean"] for r in p["results"]["per_n"]},
                      "unstable": p["folder"] in unstable} for p in points],
        "movement": {mode: {"all": s_movement([p[mode] for p in points], tokens),
                            "stable_points": s_movement([p[mode] for p in points if p["folder"] not in unstable],
                                                        tokens)}
                     for mode in ("absolute", "relative")},
        "lr_flags": lr_flags,
        "unstable_points": sorted(unstable),
    }
    atomic_write_json(out / "stability.json", summary)
    report_path = write_grid_report(out, summary, points) if report else None
    logger.info("wrote %s", out / "stability.json")
    return GridResult(out_dir=out, summary=summary, report_path=report_path)


# --------------------------------------------------------------------------- stability report


def _plot_s_grid(summary: dict, mode: str) -> bytes:
    lrs, sizes, tokens = summary["lrs"], summary["batch_sizes"], summary["tokens"]
    grid = np.full((len(sizes), len(lrs)), np.nan)
    labels = {}
    for p in summary["points"]:
        i, j = sizes.index(p["batch_size"]), lrs.index(p["lr"])
        e = p[mode]
        grid[i, j] = tokens.index(e["S"]) if e["reached"] and e["S"] in tokens else len(tokens)
        labels[(i, j)] = e["label"] + (" !" if p["unstable"] else "")
    fig, ax = figure(max(3.6, 1.6 + 1.1 * len(lrs)), 1.8 + 0.7 * len(sizes))
    ax.imshow(grid, cmap="viridis", vmin=0, vmax=len(tokens), aspect="auto")
    for (i, j), text in labels.items():
        light = grid[i, j] > len(tokens) / 2  # viridis turns yellow at the top: dark text there
        ax.text(j, i, text, ha="center", va="center", color="black" if light else "white", fontsize=9)
    ax.set_xticks(range(len(lrs)), [f"{v:g}" for v in lrs])
    ax.set_yticks(range(len(sizes)), [str(v) for v in sizes])
    ax.set_xlabel("learning rate")
    ax.set_ylabel("batch size")
    ax.set_title(f"S(ε), {mode} ε\n(! = unstable point)", fontsize=9)
    return png(fig)


def _plot_loss_vs_lr(summary: dict, points: list[dict]) -> bytes:
    from matplotlib.ticker import NullLocator

    sizes = summary["batch_sizes"]
    fig = figure(5.0 * len(sizes), 3.6)[0]
    fig.clear()
    flagged = {(f["folder"], f["n"]) for f in summary["lr_flags"]}
    for k, bs in enumerate(sizes):
        ax = fig.add_subplot(1, len(sizes), k + 1)
        row = sorted((p for p in points if p["batch_size"] == bs), key=lambda p: p["lr"])
        for c, n in enumerate(summary["tokens"]):
            xs = [p["lr"] for p in row if _loss_mean(p["results"], n) is not None]
            ys = [_loss_mean(p["results"], n) for p in row if _loss_mean(p["results"], n) is not None]
            if not xs:
                continue
            ax.plot(xs, ys, marker="o", color=f"C{c % 10}", label=f"n={n}")
            bad = [(p["lr"], _loss_mean(p["results"], n)) for p in row if (p["folder"], n) in flagged]
            if bad:
                ax.scatter(*zip(*bad), s=160, facecolors="none", edgecolors="red", linewidths=2, zorder=5)
        ax.set_xscale("log")
        lrs = summary["lrs"]
        ax.set_xticks(lrs, [f"{v:g}" for v in lrs])
        ax.xaxis.set_minor_locator(NullLocator())  # only the grid's learning rates as ticks
        ax.set_xlabel("learning rate")
        ax.set_ylabel("held-out loss (nats/token)")
        ax.set_title(f"batch size {bs} (red ring: lr discontinuity)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    return png(fig)


def write_grid_report(out: Path, summary: dict, points: list[dict]) -> Path:
    from softeval.distance.report import flags_html

    images = {"s_grid_absolute": _plot_s_grid(summary, "absolute"),
              "s_grid_relative": _plot_s_grid(summary, "relative"),
              "loss_vs_lr": _plot_loss_vs_lr(summary, points)}
    report_dir = out / "report"
    for name, picture in images.items():
        atomic_write_bytes(report_dir / f"{name}.png", picture)
    title = f"softeval stability: {summary['model']} on {(summary['task'] or {}).get('name')}"
    parts = [f"<p class='note'>The same sweep (prompt lengths {html.escape(str(summary['tokens']))}) at every learning "
             f"rate × batch size; each point is a distance sweep folder under {html.escape(str(out))}. A point is "
             f"unstable when one of its cells is flagged (failed, far above its neighbours in n, a training-curve "
             f"spike) or its mean loss at some n lies far above the neighbouring learning rates "
             f"(more than max({summary['thresholds']['sigmas']:g} robust σ, {summary['thresholds']['min_excess']:g} "
             f"nats/token)).</p>"]
    parts.append("<h2>How S(ε) moves across the grid</h2>")
    rows = []
    for mode in ("absolute", "relative"):
        for which in ("all", "stable_points"):
            m = summary["movement"][mode][which]
            rows.append([mode, which.replace("_", " "), ", ".join(m["distinct"]), "yes" if m["stable"] else "no",
                         m["S_min"], m["S_max"], m["not_reached"], m["no_S"], m["spread_grid_steps"]])
    parts.append(table(["ε mode", "points", "S values", "one value", "S min", "S max", "not reached",
                         "no S (cells missing)", "spread (grid steps)"], rows, left=3))
    parts += [img(images["s_grid_absolute"], "S absolute over the grid"),
              img(images["s_grid_relative"], "S relative over the grid")]
    parts.append("<h2>Per grid point</h2>")
    rows = []
    for p in summary["points"]:
        a, r = p["absolute"], p["relative"]
        rows.append([p["folder"], p["lr"], p["batch_size"], "yes" if p["complete"] else "no",
                     f"{a['label']} [{a['interval90'][0]} … {a['interval90'][1]}]",
                     f"{r['label']} [{r['interval90'][0]} … {r['interval90'][1]}]",
                     len(p["flags"]), "UNSTABLE" if p["unstable"] else ""])
    parts.append(table(["folder", "lr", "batch size", "complete", "S absolute [90%]", "S relative [90%]",
                         "flagged cells", ""], rows, left=1))
    parts.append(img(images["loss_vs_lr"], "loss vs learning rate"))
    parts.append("<h2>Discontinuities in learning rate</h2>")
    if summary["lr_flags"]:
        parts.append(table(["folder", "n", "mean loss", "baseline", "excess", "detail"],
                            [[f["folder"], f["n"], f["loss"], f["baseline"], f["excess"], f["message"]]
                             for f in summary["lr_flags"]], left=1))
    else:
        parts.append("<p class='note'>None.</p>")
    parts.append(flags_html([{**f, "sweep": p["folder"]} for p in summary["points"] for f in p["flags"]]))
    path = report_dir / "index.html"
    atomic_write_text(path, page(title, parts))
    return path


__all__ = ["grid_overrides", "grid_point", "point_config", "run_grid", "analyze_grid", "lr_outliers",
           "s_movement", "GridResult"]
