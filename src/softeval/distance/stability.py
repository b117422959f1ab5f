"""Stability of a distance measurement: loss discontinuities, and how S(ε) moves over learning rate × batch size.

A sweep's loss curve L(n) is only as trustworthy as the optimisation behind each cell. An unlucky or unstable
cell shows up as a *discontinuity*: a loss far above its neighbours, or a training curve that jumps. The
detectors here are pure functions on numbers and records (no model, no files), so they are easy to test and
the reports (distance, compare, stability) call the same code.

Neighbour outliers (along n, or along lr). For an ordered series v_0 … v_K (missing points skipped) the
*excess* of point i over its neighbours is

    e_i = v_i − max(v_{i−1}, v_{i+1})     interior points
    e_K = v_K − v_{K−1}                   the last point (nothing after it to compare with)

and the first point is never judged: n = 0 is the plain model, and the smallest lr under-trains, so a high
value there is expected, not unstable. Point i is flagged when e_i > max(k·σ, min_excess), where σ is a robust
noise scale: 1.4826 × the median absolute deviation (MAD) of how far each seed's loss lies from the median of
its n (MAD, not the standard deviation, so the outliers being hunted do not inflate the yardstick). With one
seed there is no noise estimate and only the floor `min_excess` (nats/token) applies.

Seed outliers. A seed stuck on a plateau can sit far above the other seeds of its n while still below the n
before it (n = 1 against the plain model), where no neighbour test sees it. With ≥ 3 finished seeds at an n, a
cell is flagged when its loss exceeds their median by more than max(k·σ, min_excess, 10 % of the median); the
relative floor is there because σ is pooled over n and converged lengths pull it towards 0.

Training-curve spikes (metrics.jsonl). Train loss is noisy batch to batch, so a step is compared with the
medians of the `window` steps before and after it (a Hampel-style filter): residual r_t = loss_t − the higher
of the two medians, flagged when r_t > k·σ_r (σ_r = 1.4826 × MAD of the curve's residuals) and r_t >
`min_jump` × that median and r_t > `min_excess` (the same absolute floor as above: a converged curve at
1e-5 nats/token wobbling to 4e-5 is relatively large but means nothing). Consecutive flagged steps are one spike.

The grid driver trains the same sweep at every (lr, batch size) into OUT/lr{lr}_bs{bs}/ (each a normal
distance sweep folder: resumable, refused if its settings change) and `analyze_grid` summarises how S(ε) moves
across the grid and which grid points are unstable (outliers in lr at a fixed batch size and n).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from softeval.store import SweepFolder, read_jsonl

logger = logging.getLogger(__name__)

SCHEMA = "softeval.stability/1"
MAD_TO_SIGMA = 1.4826        # MAD × this estimates σ for normally distributed noise
SIGMAS = 5.0                 # k: how many robust σ above its neighbours a point must be
MIN_EXCESS = 0.05            # nats/token: below this no point is called a discontinuity, whatever σ is
SPIKE_WINDOW = 10            # steps on each side of a training-curve point for its baseline medians
SPIKE_SIGMAS = 6.0
SPIKE_MIN_JUMP = 0.25        # a spike is also ≥ 25% above its baseline median (batch noise rarely is)
SEED_MIN_RATIO = 0.10        # a seed outlier is also ≥ 10% above the median of its n's seeds


# --------------------------------------------------------------------------- pure detectors


def robust_scale(values) -> float:
    """1.4826 × median absolute deviation of the finite values (0.0 for fewer than two)."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if x.size < 2:
        return 0.0
    return float(MAD_TO_SIGMA * np.median(np.abs(x - np.median(x))))


def neighbour_excess(values, check_first: bool = False, check_last: bool = True) -> list[tuple[float, float] | None]:
    """(excess, baseline) per point of an ordered series, None where it is not judged (see the module docstring).

    Missing values (None, NaN) are skipped: a point's neighbours are the nearest points that have values.
    """
    vals = [None if v is None or not math.isfinite(v) else float(v) for v in values]
    present = [i for i, v in enumerate(vals) if v is not None]
    out: list[tuple[float, float] | None] = [None] * len(vals)
    for j, i in enumerate(present):
        left = vals[present[j - 1]] if j > 0 else None
        right = vals[present[j + 1]] if j + 1 < len(present) else None
        if left is None and (not check_first or right is None):
            continue
        if right is None and (not check_last or left is None):
            continue
        baseline = max(v for v in (left, right) if v is not None)
        out[i] = (vals[i] - baseline, baseline)
    return out


def neighbour_outliers(values, scale: float = 0.0, sigmas: float = SIGMAS, min_excess: float = MIN_EXCESS,
                       check_first: bool = False, check_last: bool = True) -> list[dict]:
    """Points far above their neighbours: [{index, value, baseline, excess, threshold}]."""
    threshold = max(sigmas * scale, min_excess)
    out = []
    for i, judged in enumerate(neighbour_excess(values, check_first, check_last)):
        if judged is not None and judged[0] > threshold:
            out.append({"index": i, "value": float(values[i]), "baseline": judged[1], "excess": judged[0],
                        "threshold": threshold})
    return out


def _side_medians(x: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Median of the `window` points before and of the `window` points after each point (NaN where none)."""
    before, after = np.full_like(x, np.nan), np.full_like(x, np.nan)
    for i in range(len(x)):
        if i > 0:
            before[i] = np.median(x[max(0, i - window):i])
        if i + 1 < len(x):
            after[i] = np.median(x[i + 1:i + 1 + window])
    return before, after


def training_spikes(steps, losses, window: int = SPIKE_WINDOW, sigmas: float = SPIKE_SIGMAS,
                    min_jump: float = SPIKE_MIN_JUMP, min_excess: float = MIN_EXCESS) -> list[dict]:
    """Spikes in one training curve: [{step, loss, baseline, excess, threshold}], one per run of flagged steps.

    Non-finite losses are spikes by definition (the optimiser blew up there)."""
    pairs = [(int(s), None if v is None else float(v)) for s, v in zip(steps, losses)]
    blown = [s for s, v in pairs if v is None or not math.isfinite(v)]
    finite = [(s, v) for s, v in pairs if v is not None and math.isfinite(v)]
    flagged: list[dict] = [{"step": s, "loss": None, "baseline": None, "excess": None, "threshold": None}
                           for s in blown]
    if len(finite) >= 5:
        st = np.array([s for s, _ in finite])
        x = np.array([v for _, v in finite])
        before, after = _side_medians(x, window)
        # The higher of the two sides is the baseline: on a falling curve the steps before a point are above it,
        # so descent itself is never a spike; a spike stands above both sides. The first step has no before-side
        # (the initial loss is high by nature) and is not judged.
        base = np.where(np.isnan(after), before, np.fmax(before, after))
        resid = x - base
        scale = robust_scale(resid[1:])
        for i in range(1, len(x)):
            threshold = max(sigmas * scale, min_jump * abs(base[i]), min_excess)
            if resid[i] > threshold:
                flagged.append({"step": int(st[i]), "loss": float(x[i]), "baseline": float(base[i]),
                                "excess": float(resid[i]), "threshold": float(threshold)})
    # Consecutive flagged steps (in the logged order) are one spike; keep its worst point (non-finite first).
    order = {s: i for i, (s, _) in enumerate(pairs)}
    flagged.sort(key=lambda f: order[f["step"]])
    groups: list[list[dict]] = []
    for f in flagged:
        if groups and order[f["step"]] == order[groups[-1][-1]["step"]] + 1:
            groups[-1].append(f)
        else:
            groups.append([f])
    worst = lambda f: math.inf if f["excess"] is None else f["excess"]  # noqa: E731
    return [{**max(g, key=worst), "first_step": g[0]["step"], "last_step": g[-1]["step"]} for g in groups]


# --------------------------------------------------------------------------- one sweep


def _losses_by_n(cells: list[dict]) -> dict[int, list[tuple[dict, float]]]:
    """The finished cells of each n, with their held-out losses."""
    by_n: dict[int, list[tuple[dict, float]]] = {}
    for c in cells:
        if SweepFolder.finished(c):
            by_n.setdefault(c["n"], []).append((c, float(c["loss"])))
    return by_n


def seed_noise(cells: list[dict]) -> float:
    """Robust σ of a cell's loss around the median of its n (pooled over n with ≥ 2 finished seeds)."""
    resid = [v - float(np.median([w for _, w in group])) for group in _losses_by_n(cells).values()
             if len(group) >= 2 for _, v in group]
    return robust_scale(resid)


def _medians_by_n(cells: list[dict], tokens: list[int]) -> list[float | None]:
    by_n = _losses_by_n(cells)
    return [float(np.median([v for _, v in by_n[n]])) if n in by_n else None for n in tokens]


def flag_cells(results: dict, curves: dict | None = None, sigmas: float = SIGMAS,
               min_excess: float = MIN_EXCESS) -> list[dict]:
    """Unstable cells of one distance sweep (its results.json content), as JSON-able records.

    kinds: `failed` (non-finite loss), `n_neighbour` (held-out loss far above the neighbouring prompt lengths'
    median losses), `seed_outlier` (far above the median of the other seeds at its n), `training_spike` (a jump
    in the cell's training curve; needs `curves`, as {(n, seed): {"train": [(step, loss), …]}} from
    `read_curves` or `report.load_sweep`)."""
    cells = results.get("cells") or []
    tokens = list(results.get("tokens") or sorted({c["n"] for c in cells}))
    flags = []
    for c in cells:
        if c.get("status") != "done":
            flags.append({"cell": c["name"], "n": c["n"], "seed": c["seed"], "kind": "failed",
                          "message": c.get("message") or f"status {c.get('status')}"})
    scale = seed_noise(cells)
    medians = _medians_by_n(cells, tokens)
    index = {n: i for i, n in enumerate(tokens)}
    for c in cells:
        if not SweepFolder.finished(c) or c["n"] not in index:
            continue
        series = list(medians)
        series[index[c["n"]]] = float(c["loss"])  # this cell against its neighbours' typical loss
        for hit in neighbour_outliers(series, scale, sigmas, min_excess):
            if hit["index"] == index[c["n"]]:
                flags.append({"cell": c["name"], "n": c["n"], "seed": c["seed"], "kind": "n_neighbour",
                              "loss": hit["value"], "baseline": hit["baseline"], "excess": hit["excess"],
                              "threshold": hit["threshold"],
                              "message": f"held-out loss {hit['value']:.4f} is {hit['excess']:.4f} nats/token above "
                                         f"its neighbouring prompt lengths (threshold {hit['threshold']:.4f})"})
    # A seed stuck on a plateau sits far above the other seeds of its n even when it is below the n before it
    # (n = 1 against the plain model), which the neighbour test cannot see. Needs three seeds: of two, the
    # median cannot say which one is off.
    for n, group in sorted(_losses_by_n(cells).items()):
        if len(group) < 3:
            continue
        median = float(np.median([v for _, v in group]))
        # σ is pooled over n, and converged prompt lengths pull it towards 0, while seeds at a high loss differ
        # by more: the relative floor keeps ordinary seed spread there from being called a plateau.
        threshold = max(sigmas * scale, min_excess, SEED_MIN_RATIO * abs(median))
        for c, loss in group:
            excess = loss - median
            if excess > threshold:
                flags.append({"cell": c["name"], "n": n, "seed": c["seed"], "kind": "seed_outlier",
                              "loss": loss, "baseline": median, "excess": excess, "threshold": threshold,
                              "message": f"held-out loss {loss:.4f} is {excess:.4f} nats/token above the median "
                                         f"of the {len(group)} seeds at n = {n} (threshold {threshold:.4f})"})
    for (n, seed), curve in sorted((curves or {}).items()):
        train = curve.get("train") or []
        if not train:
            continue
        steps, losses = zip(*train)
        for spike in training_spikes(steps, losses, min_excess=min_excess):
            what = ("a non-finite training loss" if spike["loss"] is None else
                    f"training loss {spike['loss']:.4f} vs nearby median {spike['baseline']:.4f}")
            name = "n0" if n == 0 else f"n{n}_s{seed}"
            flags.append({"cell": name, "n": n, "seed": seed, "kind": "training_spike", "step": spike["step"],
                          "last_step": spike["last_step"], "loss": spike["loss"], "baseline": spike["baseline"],
                          "excess": spike["excess"], "threshold": spike["threshold"],
                          "message": f"{what} at step {spike['step']}"
                                     + (f" (steps {spike['first_step']}–{spike['last_step']})"
                                        if spike["last_step"] != spike["first_step"] else "")})
    return flags


def read_curves(sweep_dir: Path, results: dict) -> dict:
    """{(n, seed): {"train": [(step, loss)]}} from each finished cell's metrics.jsonl (no model)."""
    curves = {}
    for c in results.get("cells") or []:
        train = [(r["step"], r["train_loss"]) for r in read_jsonl(Path(sweep_dir) / "cells" / c["name"] / "metrics.jsonl")
                 if "train_loss" in r and "step" in r]
        if train:
            curves[(c["n"], c["seed"])] = {"train": train}
    return curves


__all__ = ["robust_scale", "neighbour_excess", "neighbour_outliers", "training_spikes", "seed_noise", "flag_cells",
           "read_curves"]
