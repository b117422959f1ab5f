"""Adaptive sweeps against the full grid: the same S(ε) for how much of the compute?

    python benchmarks/adaptive_sweep.py                       # SmolLM2, three tasks, 40 steps a cell (≈ 1 h on 2 cores)
    python benchmarks/adaptive_sweep.py --quick               # 4 steps per cell, one task: that it runs
    python benchmarks/adaptive_sweep.py --analyse-only        # re-read finished folders, train nothing

For each task (a long repetition string, skip-k with k = 4, a persona behaviour file) and the full power-of-two grid
n ∈ {0, 1, 2, 4, 8, 16, 32, 64} × 3 seeds, the real command runs twice into one folder:

  1. `softeval distance --config TASK.yaml --adaptive`: the adaptive sweep at the config's ε (absolute and
     relative); its results.json is kept as adaptive_results.json (S, interval, the cells it asked for);
  2. the same command without --adaptive: the full grid, which trains only the cells the adaptive run skipped
     (the adaptive run's cells are reused, so the two are compared on identical cells).

Then, from the full folder's cells and without training, the adaptive decisions are replayed
(`distance.adaptive.replay`, the loop the sweep runs) for each ε of --absolute and --relative alone. Per task
and ε it prints S of the full grid and of the adaptive sweep with their 90 % intervals, and the token-steps each
spent (`adaptive.cell_token_steps`: rows × (n + example tokens) × steps; the plain model costs 0).

Same S: equal, or the adaptive interval contains the full grid's S and is no wider than the grid's (widths in
grid positions; "not reached" is the position after the grid). The full grid's interval resamples seed rows
(results.json); the adaptive one resamples each length's seeds on their own (its lengths have different seeds).

Early stopping (issue #32, item 3) is measured here, not used: from the full grid's held-out curves
(--eval-every), how often a cell that is already within ε of the best longer prompt's final mean loss at some
evaluation is still within ε at its end, and whether S would change had it stopped there.

It ends with

    TARGET adaptive_compute_ratio <x> need <= 0.33 PASS|FAIL    (Σ adaptive / Σ full token-steps, all tasks × ε)
    TARGET adaptive_same_S_fraction <y> need >= 0.9 PASS|FAIL   (share of tasks × ε with the same S)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "src"))

from peak import matmul_peak  # noqa: E402

from softeval.distance.adaptive import (AdaptiveSettings, Target, cell_token_steps, explored_curve,  # noqa: E402
                                        replay)
from softeval.distance.saturation import (NOT_REACHED, column_bootstrap_saturation, loss_matrix,  # noqa: E402
                                          saturation_point, saturation_summary)
from softeval.store import read_jsonl  # noqa: E402

PERSONA = ROOT.parent / "shared" / "data" / "behaviour" / "anthropic-evals" / "persona"
GRID = [0, 1, 2, 4, 8, 16, 32, 64]
NEED_RATIO = 0.33
NEED_SAME = 0.9
LONG_STRING = " the cat sat quietly on the old red mat by the door"


def task_configs(args) -> dict[str, dict]:
    """The three tasks' distance configs: 4 rows × --steps per cell (the behaviour task: half the steps, at the
    suite's lr), sized so that the three full grids fit in about an hour of this 2-core CPU."""
    common = {"model": args.model, "dtype": "float32", "precision": "fp32", "tokens": GRID, "seeds": args.seeds,
              "optim": {"max_steps": args.steps, "batch_size": 4, "lr": 0.1, "warmup_steps": 5},
              "eval_every": max(1, args.steps // 4), "checkpoint_every": max(1, args.steps // 4),
              "max_batch_tokens": 0, "num_samples": 0, "epsilon": 0.01, "epsilon_relative": 0.05}
    tasks = {
        "repetition_long": {**common, "task": {"name": "repetition", "options": {"text": LONG_STRING},
                                               "num_train": 256, "num_eval": 32, "context_tokens": 0,
                                               "target_tokens": 16}},
        "skip_k4": {**common, "task": {"name": "skip-k", "options": {"skip": 4}, "num_train": 256, "num_eval": 32,
                                       "context_tokens": 16, "target_tokens": 16}},
        "behaviour_narcissism": {**common, "optim": {**common["optim"], "max_steps": args.steps // 2, "lr": 0.2},
                                 "task": {"name": "behaviour", "data": str(PERSONA / "narcissism.jsonl"),
                                          "num_train": 200, "num_eval": 32,
                                          "options": {"direction": "towards"}}},
    }
    return {k: v for k, v in tasks.items() if not args.tasks or k in args.tasks}


def run_command(config: Path, out: Path, adaptive: bool) -> float:
    argv = [sys.executable, "-m", "softeval", "-q", "distance", "--config", str(config), "--out", str(out),
            "--no-report"] + (["--adaptive"] if adaptive else [])
    print(f"  $ {' '.join(argv[2:])}   (load {os.getloadavg()[0]:.2f})", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"softeval distance failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}")
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- analysis


def grid_cells(folder: Path) -> tuple[dict, int, dict]:
    """{(n, seed): loss} of the full folder's finished cells, the plan's example width and the config."""
    results = json.loads((folder / "results.json").read_text())
    losses = {(c["n"], c["seed"]): c["loss"] for c in results["cells"] if c.get("status") == "done"}
    width = int(json.loads((folder / "plan.json").read_text())["example_tokens"])
    return losses, width, results["config"]


def position(label: str | None, ns: list[int]) -> int | None:
    if label is None:
        return None
    return len(ns) if label == NOT_REACHED else ns.index(int(label))


def same_S(full: dict, adaptive: dict, ns: list[int]) -> bool:
    """Equal, or the adaptive interval holds the full grid's S and is no wider than the grid's."""
    if full["label"] == adaptive["label"]:
        return True
    f = position(str(full["S"]) if full["S"] is not None else NOT_REACHED, ns)
    lo, hi = (position(x, ns) for x in adaptive["interval90"])
    flo, fhi = (position(x, ns) for x in full["interval90"])
    if None in (lo, hi, flo, fhi):
        return False
    return lo <= f <= hi and (hi - lo) <= (fhi - flo)


def compare_at(losses: dict, width: int, cfg: dict, target: Target, seeds: int, samples: int,
               min_seeds: int = 2, confidence: float = 0.9) -> dict:
    steps, batch = cfg["optim"]["max_steps"], cfg["optim"]["batch_size"]
    cost = lambda n: cell_token_steps(n, steps, batch, width)  # noqa: E731
    ns = GRID
    cells = [{"n": n, "seed": s, "loss": v, "status": "done"} for (n, s), v in losses.items()]
    matrix = loss_matrix(ns, list(range(seeds)), cells)
    full = saturation_summary(ns, matrix, target.epsilon, target.mode, samples)
    full_out = {"S": full["S"], "label": full["label"], "interval90": full["bootstrap"]["interval90"],
                "token_steps": sum(cost(n) for n, _ in losses)}
    settings = AdaptiveSettings(tuple(ns), (target,), max_seeds=seeds, min_seeds=min_seeds, confidence=confidence,
                                bootstrap_samples=samples)
    rounds = replay(settings, lambda n, s: losses.get((n, s)), losses.get((0, 0)))
    asked = {d.cell for r in rounds for d in r}
    explored = explored_curve({c: losses[c] for c in asked | {(0, 0)} if c in losses})
    sat = saturation_point(explored.ns, explored.means, target.epsilon, target.mode)
    boot = column_bootstrap_saturation(explored.ns, explored.losses, target.epsilon, target.mode, samples)
    adaptive_out = {"S": sat.S, "label": sat.label if sat.reached else NOT_REACHED, "interval90": boot["interval90"],
                    "token_steps": sum(cost(n) for n, _ in asked), "rounds": len(rounds), "cells": len(asked)}
    full_out["label"] = full_out["label"] if full["reached"] else NOT_REACHED
    return {"epsilon": target.epsilon, "mode": target.mode, "full": full_out, "adaptive": adaptive_out,
            "ratio": adaptive_out["token_steps"] / full_out["token_steps"], "same_S": same_S(full_out, adaptive_out, ns)}


def eval_curves(folder: Path) -> dict:
    """{(n, seed): [(step, held-out loss), …]} from the full grid's cells' metrics.jsonl."""
    out = {}
    for cell in (folder / "cells").glob("n*_s*"):
        n, seed = (int(x) for x in cell.name[1:].split("_s"))
        out[(n, seed)] = [(r["step"], r["eval_loss"]) for r in read_jsonl(cell / "metrics.jsonl") if "eval_loss" in r]
    return out


def early_stop_check(losses: dict, curves: dict, cfg: dict, target: Target, seeds: int) -> dict:
    """Would "stop a cell once its held-out loss is within ε of the best longer length's final mean" have changed
    anything? Counts the cells it fires on before their last step, how often the final loss is still within ε,
    whether S moves when those cells keep their stopped value, and the steps it would save."""
    ns, steps = GRID, cfg["optim"]["max_steps"]
    means = {n: float(np.mean([v for (m, _), v in losses.items() if m == n])) for n in ns if any(m == n for m, _ in losses)}
    threshold = target.epsilon if target.mode == "absolute" else \
        target.epsilon * max(0.0, means[0] - min(means.values()))
    fired = held = saved = 0
    stopped = dict(losses)
    for (n, seed), curve in curves.items():
        longer = [means[m] for m in ns if m > n and m in means]
        if not longer:
            continue
        line = min(longer) + threshold
        hit = next(((t, v) for t, v in curve if t < steps and v <= line), None)
        if hit is None:
            continue
        fired += 1
        held += losses[(n, seed)] <= line
        saved += steps - hit[0]
        stopped[(n, seed)] = hit[1]
    total = sum(steps for n, _ in losses if n > 0)

    def S_of(values):
        mean = [float(np.mean([v for (m, _), v in values.items() if m == n])) for n in ns]
        return saturation_point(ns, mean, target.epsilon, target.mode).S

    return {"fired": fired, "held": held, "steps_saved_share": saved / total if total else 0.0,
            "S_unchanged": S_of(stopped) == S_of(losses)}


def analyse(out: Path, args) -> dict:
    report = {"tasks": {}}
    targets = [Target(e, "absolute") for e in args.absolute] + [Target(e, "relative") for e in args.relative]
    for name in task_configs(args):
        folder = out / name
        if not (folder / "results.json").exists():
            continue
        losses, width, cfg = grid_cells(folder)
        real = json.loads((out / f"{name}_adaptive_results.json").read_text())
        rows = [compare_at(losses, width, cfg, t, args.seeds, args.bootstrap) for t in targets]
        one_seed = [compare_at(losses, width, cfg, t, args.seeds, args.bootstrap, min_seeds=1) for t in targets]
        looser = {c: [compare_at(losses, width, cfg, t, args.seeds, args.bootstrap, confidence=c) for t in targets]
                  for c in args.confidences}
        curves = eval_curves(folder)
        early = [early_stop_check(losses, curves, cfg, t, args.seeds) for t in targets]
        report["tasks"][name] = {"rows": rows, "early_stop": early, "min_seeds_1": one_seed,
                                 "confidence": {str(c): rows_c for c, rows_c in looser.items()},
                                 "real_adaptive_run": {"token_steps": real["adaptive"]["token_steps"],
                                                       "saturation": {m: {"label": real["saturation"][m]["label"],
                                                                          "interval90": real["saturation"][m]["bootstrap"]["interval90"]}
                                                                      for m in ("absolute", "relative")},
                                                       "rounds": len(real["adaptive"]["rounds"]),
                                                       "skipped": real["adaptive"]["skipped"]}}
    return report


def print_report(report: dict) -> tuple[float, float]:
    adaptive_total = full_total = same = count = 0
    one = {"adaptive": 0, "full": 0, "same": 0}
    for name, task in report["tasks"].items():
        real = task["real_adaptive_run"]
        print(f"\n{name}: real --adaptive run: {real['rounds']} rounds, token-steps ratio "
              f"{real['token_steps']['ratio']:.2f}; S(abs) {real['saturation']['absolute']['label']} "
              f"{real['saturation']['absolute']['interval90']}, S(rel) {real['saturation']['relative']['label']} "
              f"{real['saturation']['relative']['interval90']}")
        print(f"  {'ε':>14}  {'full S [90%]':>22}  {'adaptive S [90%]':>22}  {'cells':>5}  {'ratio':>5}  same  "
              f"early stop fired/held, S kept, steps saved")
        for row, early in zip(task["rows"], task["early_stop"]):
            f, a = row["full"], row["adaptive"]
            eps = f"{row['epsilon']:g}" + (" nats" if row["mode"] == "absolute" else " of gain")
            print(f"  {eps:>14}  {f['label']:>6} [{f['interval90'][0]} … {f['interval90'][1]}]".ljust(40)
                  + f"  {a['label']:>6} [{a['interval90'][0]} … {a['interval90'][1]}]".ljust(24)
                  + f"  {a['cells']:>5}  {row['ratio']:>5.2f}  {'yes' if row['same_S'] else 'NO ':>4}  "
                  f"{early['fired']}/{early['held']}, {'yes' if early['S_unchanged'] else 'NO'}, "
                  f"{early['steps_saved_share']:.0%}")
            adaptive_total += a["token_steps"]
            full_total += f["token_steps"]
            same += row["same_S"]
            count += 1
        for row in task.get("min_seeds_1", []):
            one["adaptive"] += row["adaptive"]["token_steps"]
            one["full"] += row["full"]["token_steps"]
            one["same"] += row["same_S"]
    ratio = adaptive_total / full_total if full_total else float("nan")
    fraction = same / count if count else float("nan")
    for c in sorted({c for task in report["tasks"].values() for c in task.get("confidence", {})}, reverse=True):
        rows = [r for task in report["tasks"].values() for r in task["confidence"][c]]
        ratio_c = sum(r["adaptive"]["token_steps"] for r in rows) / sum(r["full"]["token_steps"] for r in rows)
        print(f"with the seed rule's interval at {float(c):.0%} (replayed): compute ratio {ratio_c:.2f}, same S "
              f"{sum(r['same_S'] for r in rows)}/{len(rows)}")
    if one["full"]:
        print(f"\nwith --adaptive-min-seeds 1 (replayed; S's interval then holds no seed spread at one-seed lengths): "
              f"compute ratio {one['adaptive'] / one['full']:.2f}, same S {one['same']}/{count}")
    return ratio, fraction


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--tasks", nargs="*", default=None, help="a subset of the task names")
    p.add_argument("--absolute", type=float, nargs="*", default=[0.003, 0.01, 0.03, 0.1])
    p.add_argument("--relative", type=float, nargs="*", default=[0.02, 0.05, 0.1])
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--confidences", type=float, nargs="*", default=[0.8, 0.6],
                   help="also replay with the seed rule's straddle interval at these levels (default rule: 0.9)")
    p.add_argument("--out", default="benchmarks/results/adaptive_sweep")
    p.add_argument("--quick", action="store_true", help="4 steps, one task, a scratch folder: that it runs")
    p.add_argument("--analyse-only", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.steps, args.tasks = 4, args.tasks or ["skip_k4"]
        args.out = str(Path(args.out) / "quick")
    out = (ROOT / args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    print(f"adaptive_sweep: {args.model}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"fp32 peak {matmul_peak().flops_per_wall_s / 1e9:.0f} GFLOP/s, load {os.getloadavg()[0]:.2f}")
    timings = {}
    if not args.analyse_only:
        for name, cfg in task_configs(args).items():
            config = out / "configs" / f"{name}.yaml"
            config.parent.mkdir(parents=True, exist_ok=True)
            config.write_text(yaml.safe_dump(cfg, sort_keys=False))
            folder = out / name
            if args.quick:
                shutil.rmtree(folder, ignore_errors=True)
            print(f"{name}:", flush=True)
            t_adaptive = run_command(config, folder, adaptive=True)
            shutil.copy(folder / "results.json", out / f"{name}_adaptive_results.json")
            t_rest = run_command(config, folder, adaptive=False)
            timings[name] = {"adaptive_wall_s": t_adaptive, "rest_of_grid_wall_s": t_rest}
            print(f"  adaptive {t_adaptive:.0f} s, the rest of the full grid {t_rest:.0f} s", flush=True)
    report = analyse(out, args)
    report["timings"] = timings
    report["settings"] = {k: v for k, v in vars(args).items()}
    ratio, fraction = print_report(report)
    report["targets"] = {"adaptive_compute_ratio": ratio, "adaptive_same_S_fraction": fraction}
    (out / "adaptive_sweep.json").write_text(json.dumps(report, indent=1))
    print(f"\nfp32 peak at the end {matmul_peak().flops_per_wall_s / 1e9:.0f} GFLOP/s, load {os.getloadavg()[0]:.2f}; "
          f"wrote {out / 'adaptive_sweep.json'}")
    print(f"TARGET adaptive_compute_ratio {ratio:.2f} need <= {NEED_RATIO} {'PASS' if ratio <= NEED_RATIO else 'FAIL'}")
    print(f"TARGET adaptive_same_S_fraction {fraction:.2f} need >= {NEED_SAME} "
          f"{'PASS' if fraction >= NEED_SAME else 'FAIL'}")


if __name__ == "__main__":
    main()
