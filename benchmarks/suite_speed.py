"""Suite throughput: trained cells per hour of `softeval suite`, lanes vs one cell at a time, so users can plan.

    python benchmarks/suite_speed.py                 # SmolLM2, the protocol of docs/results.md's suite runs
    python benchmarks/suite_speed.py --pairs 1 --steps 2 --num-eval 8      # a quick look
    python benchmarks/suite_speed.py --model gemma3-270m --out benchmarks/results/suite_speed_gemma.json

Each measured run is the real command (`softeval suite …` in a subprocess) on a fresh folder: two (or, with
`--behaviours 1`, one) persona behaviours × towards/away/control × n ∈ {0, 1, 4, 16} × 1 seed, 12 steps of batch 4, 32 held-out statements.
Runs alternate A B A B … (A = lanes, `--max-batch-tokens 8192`; B = one cell per pass, `--max-batch-tokens 0`);
the medians of `--pairs` pairs are reported with the load average before each run and the fp32 matmul peak
measured in this process at the start and the end (a figure counts only on a quiet machine).

A trained cell is one (behaviour, direction, n > 0, seed); the n = 0 cells (scoring only) are included in the
wall time. Cells per hour = trained cells / wall hours, model loading and every held-out scoring included:
what a user's suite of the same shape will see on this machine. It ends with

    TARGET suite_cells_per_hour <x> need >= 100 PASS|FAIL      (the faster mode; 100/h ≈ the 12-behaviour,
                                                               3-seed suite of 324 cells in ~3 h)
    TARGET suite_lanes_speedup <x> need >= 1.0 PASS|FAIL       (median of lanes/cell-by-cell speed ratios)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peak import matmul_peak  # noqa: E402  (benchmarks/ is not a package)

ROOT = Path(__file__).resolve().parents[1]
PERSONA = ROOT.parent / "shared" / "data" / "behaviour" / "anthropic-evals" / "persona"
BEHAVIOURS = ["agreeableness", "narcissism"]
NEED_CELLS_PER_HOUR = 100.0
NEED_LANES_SPEEDUP = 1.0


def suite_argv(args, data_dir: Path, out: Path, lanes: bool) -> list[str]:
    return [sys.executable, "-m", "softeval", "-q", "suite", "--model", args.model, "--data", str(data_dir),
            "--tokens", "0,1,4,16", "--seeds", str(args.seeds), "--steps", str(args.steps), "--batch-size", "4",
            "--lr", "0.2", "--warmup-steps", "1", "--num-eval", str(args.num_eval), "--num-train", "200",
            "--max-batch-tokens", "8192" if lanes else "0", "--no-report", "--out", str(out)]


def one_run(args, data_dir: Path, lanes: bool) -> dict:
    out = Path(tempfile.mkdtemp(prefix="suite_speed_"))
    shutil.rmtree(out)
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(suite_argv(args, data_dir, out, lanes), capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"softeval suite failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    results = json.loads((out / "results.json").read_text())
    shutil.rmtree(out, ignore_errors=True)
    cells = args.behaviours * 3 * 3 * args.seeds
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"mode": "lanes" if lanes else "cell by cell", "wall_s": wall, "cpu_s": cpu, "load_before": load,
            "trained_cells": cells, "cells_per_hour": cells / wall * 3600,
            "behaviours": [b["name"] for b in results["behaviours"]]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--pairs", type=int, default=3, help="A B pairs (median over them)")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--num-eval", dest="num_eval", type=int, default=32)
    p.add_argument("--behaviours", type=int, default=2, choices=[1, 2], help="how many persona files (1 halves the time)")
    p.add_argument("--out", default=None, help="write the measurements as JSON here")
    args = p.parse_args()
    if not PERSONA.is_dir():
        raise SystemExit(f"{PERSONA} not found: the benchmark reads two persona files from ../shared/data")
    data_dir = Path(tempfile.mkdtemp(prefix="suite_speed_data_"))
    for name in BEHAVIOURS[:args.behaviours]:
        shutil.copy(PERSONA / f"{name}.jsonl", data_dir / f"{name}.jsonl")
    peak_start = matmul_peak().flops_per_wall_s
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; fp32 matmul peak "
          f"{peak_start / 1e9:.0f} GFLOP/s; load average {os.getloadavg()[0]:.2f}", flush=True)
    runs = []
    for pair in range(args.pairs):
        for lanes in (True, False):
            run = one_run(args, data_dir, lanes)
            runs.append(run)
            print(f"pair {pair + 1} {run['mode']:<12} wall {run['wall_s']:7.1f} s  cpu {run['cpu_s']:7.1f} s  "
                  f"{run['cells_per_hour']:6.1f} cells/h  (load before {run['load_before']:.2f})", flush=True)
    peak_end = matmul_peak().flops_per_wall_s
    lanes_rates = [r["cells_per_hour"] for r in runs if r["mode"] == "lanes"]
    cell_rates = [r["cells_per_hour"] for r in runs if r["mode"] != "lanes"]
    ratios = [a / b for a, b in zip(lanes_rates, cell_rates)]
    best = max(statistics.median(lanes_rates), statistics.median(cell_rates))
    speedup = statistics.median(ratios)
    per_cell = 3600 / best
    print(f"median: lanes {statistics.median(lanes_rates):.1f} cells/h, cell by cell {statistics.median(cell_rates):.1f}"
          f" cells/h; fp32 peak at the end {peak_end / 1e9:.0f} GFLOP/s")
    print(f"planning: ~{per_cell:.0f} s per trained cell at this shape (12 steps × batch 4, {args.num_eval} held-out "
          f"statements): 12 behaviours × 3 directions × 3 lengths × 3 seeds = 324 cells ≈ {324 * per_cell / 3600:.1f} h")
    if args.out:
        Path(args.out).write_text(json.dumps({"model": args.model, "runs": runs, "peak_fp32_start": peak_start,
                                              "peak_fp32_end": peak_end, "steps": args.steps,
                                              "num_eval": args.num_eval, "behaviours": BEHAVIOURS[:args.behaviours]}, indent=2))
    print(f"TARGET suite_cells_per_hour {best:.1f} need >= {NEED_CELLS_PER_HOUR:g} "
          f"{'PASS' if best >= NEED_CELLS_PER_HOUR else 'FAIL'}")
    print(f"TARGET suite_lanes_speedup {speedup:.2f} need >= {NEED_LANES_SPEEDUP:g} "
          f"{'PASS' if speedup >= NEED_LANES_SPEEDUP else 'FAIL'}")


if __name__ == "__main__":
    main()
