"""Numbers you can trust: an interrupted run ends exactly where an uninterrupted one does, and every bad input
gets a one-line error.

    python benchmarks/reliability.py                      # SmolLM2: 20 train, 5 sweep and 5 bench kills, catalogue
    python benchmarks/reliability.py --model /path/to/tiny-model --trials 2 --sweep-trials 1   # a quick smoke run
    python benchmarks/reliability.py --only catalogue

Everything goes through the real `softeval` console script, one subprocess per command, as a user runs it.

(a) train, killed: an uninterrupted `softeval train` gives the reference (run twice: the shorter wall time is T,
    and the two must agree). Each trial starts the same command, sends SIGKILL at a moment drawn uniformly from
    [0, T] (seeded; `--kill-window training` draws from [when config.json appeared, T]), then continues it the
    documented way until it exits 0: `softeval train --resume RUN_DIR`, or, if the kill came before RUN_DIR held
    a config.json (nothing to resume), the original command again. A trial is *identical* when the final
    prompt.safetensors tensors equal the reference's bit for bit, and has *no duplicates* when metrics.jsonl
    holds each (step, kind) record once and the same records as the reference (timing fields ignored).
(b) distance, killed: the same for a small sweep, continued by re-running the same command; per cell,
    cell.json's status/steps/loss/token_accuracy and the prompt tensors must equal the uninterrupted sweep's.
(c) bench, killed: a small `softeval bench` (a multiple-choice spec task this script writes, zero-shot and a
    tuned prompt with a curve point) is killed during tuning (between the tuning folder appearing and the final
    prompt snapshot) or during scoring (between that snapshot and the soft unit's file), alternately, and
    re-run with the same command; results.json must equal the uninterrupted run's (timing fields and the
    output folder's own path aside) and every per-item samples file must be byte-identical.
(d) the bad-input catalogue of benchmarks/bad_inputs.py: exit 2 (3 for a NaN loss), one line
    `softeval: error: ...` on stderr, no traceback, no existing file changed.

Output: benchmarks/results/reliability_<model>_<date>.json (resolved settings, versions, every trial and case),
then one line per target: `TARGET <name> <value> need <op> <threshold> PASS|FAIL`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bad_inputs  # noqa: E402  (benchmarks/ is not a package; the catalogue lives next to this script)

# --- settings ------------------------------------------------------------------------------------
MODEL = "smollm2-135m-instruct"
TRAIN_TRIALS = 20
SWEEP_TRIALS = 5
SEED = 0
KILL_WINDOW = "run"         # run: kill moment uniform over [0, T]; training: over [moment config.json appeared, T]
MAX_CONTINUATIONS = 3      # continuation attempts per trial before it counts as not finishing
COMMAND_TIMEOUT_S = 900    # any single softeval command (a hang is a failure, not a wait)
TASK = ["--task", "repetition", "--repeat-text", " hello", "task.num_train=16", "task.num_eval=4",
        "task.context_tokens=8", "task.target_tokens=4", "--precision", "fp32"]
TRAIN = ["--tokens", "4", "--steps", "12", "--checkpoint-every", "3", *TASK]
SWEEP = ["--tokens", "0,1,2", "--seeds", "2", "--steps", "8", "--checkpoint-every", "2", "--no-report", *TASK]
BENCH_TRIALS = 5
BENCH_STEPS = 14           # bench tunes with a checkpoint every 10 steps: a kill after step 10 resumes from it
BENCH = ["--modes", "zero,soft", "--forms", "gen", "--tokens", "4", "--steps", str(BENCH_STEPS), "--curve-steps", "5",
         "--limit", "6", "--max-gen-toks", "3", "--shots", "1", "--precision", "fp32", "--device", "cpu",
         "optim.batch_size=2", "num_bootstrap=0"]
TIMING_KEYS = {"seconds", "time", "wall_s", "elapsed", "tokens_per_s", "tok_s", "timestamp"}
CELL_KEYS = ("status", "steps", "loss", "token_accuracy", "num_targets")


# --- running softeval ----------------------------------------------------------------------------


def softeval_exe() -> str:
    beside = Path(sys.executable).with_name("softeval")
    found = str(beside) if beside.exists() else shutil.which("softeval")
    if not found:
        sys.exit("reliability.py: no `softeval` console script next to this Python or on PATH; pip install -e .")
    return found


def run_softeval(argv: list[str], cwd: Path, log: Path | None = None) -> tuple[int, str, float]:
    """Run to completion: (exit code, stderr, wall seconds)."""
    t0 = time.perf_counter()
    r = subprocess.run([softeval_exe(), *argv], cwd=cwd, capture_output=True, text=True, errors="replace",
                       timeout=COMMAND_TIMEOUT_S)
    if log is not None:
        with open(log, "a") as f:
            f.write(f"$ softeval {shlex.join(argv)}\n[exit {r.returncode}]\n{r.stderr[-4000:]}\n")
    return r.returncode, r.stderr, time.perf_counter() - t0


def run_watched(argv: list[str], cwd: Path, watch: Path, log: Path) -> tuple[int, str, float, float | None]:
    """Run to completion, noting when `watch` first exists: (exit code, stderr, wall s, s until `watch`)."""
    code, text, wall, seen = first_seen(argv, cwd, {"watch": (watch.parent, watch.name)}, log)
    return code, text, wall, seen.get("watch")


def run_and_kill(argv: list[str], cwd: Path, kill_after_s: float, log: Path) -> tuple[bool, int]:
    """Start a command and SIGKILL it after `kill_after_s`; (killed?, exit code)."""
    with open(log, "a") as f:
        f.write(f"$ softeval {shlex.join(argv)}   # SIGKILL after {kill_after_s:.2f}s\n")
        f.flush()
        proc = subprocess.Popen([softeval_exe(), *argv], cwd=cwd, stdout=subprocess.DEVNULL, stderr=f)
        try:
            proc.wait(timeout=kill_after_s)
            return False, proc.returncode
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            return True, proc.wait()


def describe(attempts: list[dict]) -> str:
    return " → ".join(f"{a['how']} exit {a['exit']}" for a in attempts) or "no continuation needed"


def last_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


# --- what a run left on disk ---------------------------------------------------------------------


def phase(run_dir: Path) -> str:
    """How far a killed run got, from its files."""
    if (run_dir / "results.json").exists():
        return "results written"
    if (run_dir / "prompt.safetensors").exists():
        return "prompt written"
    steps = sorted(int(s) for p in (run_dir / "checkpoints").glob("step_*")
                   if (s := p.name.split("_")[1].split(".")[0]).isdigit()) if (run_dir / "checkpoints").is_dir() else []
    if steps:
        return f"checkpoint step {steps[-1]}"
    if (run_dir / "config.json").exists():
        return "config, no checkpoint"
    return "run dir only" if run_dir.exists() else "nothing written"


def prompt_tensors(path: Path) -> dict[str, bytes] | None:
    """Each tensor's dtype, shape and raw bytes (a bit-for-bit comparison, NaN included)."""
    if not path.exists():
        return None
    import torch
    from safetensors.torch import load_file

    return {k: (str(t.dtype), tuple(t.shape), t.contiguous().view(-1).view(torch.uint8).numpy().tobytes())
            for k, t in load_file(str(path)).items()}


def record_kind(record: dict) -> str:
    if "train_loss" in record:
        return "train"
    if "eval_loss" in record:
        return "eval"
    return "event:" + str(record.get("event", "?"))


def metric_records(path: Path) -> tuple[dict[tuple, dict], list[tuple], int]:
    """metrics.jsonl → ({(lane, step, kind): record without timing fields}, duplicated keys, unreadable lines)."""
    records, duplicates, bad = {}, [], 0
    if not path.exists():
        return records, duplicates, bad
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        key = (r.get("lane", ""), r.get("step"), record_kind(r))
        if key in records:
            duplicates.append(key)
        records[key] = {k: v for k, v in r.items() if k not in TIMING_KEYS}
    return records, duplicates, bad


def compare_run(run_dir: Path, ref_dir: Path) -> dict:
    """identical: prompt tensors bit-identical; no_duplicates: each (step, kind) once and the reference's records."""
    mine, ref = prompt_tensors(run_dir / "prompt.safetensors"), prompt_tensors(ref_dir / "prompt.safetensors")
    records, duplicates, bad = metric_records(run_dir / "metrics.jsonl")
    ref_records, _, _ = metric_records(ref_dir / "metrics.jsonl")
    missing = sorted(set(ref_records) - set(records), key=str)
    extra = sorted(set(records) - set(ref_records), key=str)
    differing = sorted((k for k in set(records) & set(ref_records) if records[k] != ref_records[k]), key=str)
    return {
        "identical": mine is not None and mine == ref,
        "prompt": "missing" if mine is None else ("identical" if mine == ref else "differs"),
        "no_duplicates": not duplicates and not bad and not missing and not extra and not differing,
        "duplicates": [list(k) for k in duplicates[:5]], "num_duplicates": len(duplicates), "torn_lines": bad,
        "missing": [list(k) for k in missing[:5]], "extra": [list(k) for k in extra[:5]],
        "differing": [list(k) for k in differing[:5]],
    }


def compare_sweep(out: Path, ref: Path) -> dict:
    """Per cell: cell.json's result fields and the prompt tensors, against the uninterrupted sweep."""
    problems = []
    for ref_cell in sorted((ref / "cells").glob("*/cell.json")):
        name = ref_cell.parent.name
        cell = out / "cells" / name / "cell.json"
        if not cell.exists():
            problems.append(f"{name}: no cell.json")
            continue
        a, b = json.loads(cell.read_text()), json.loads(ref_cell.read_text())
        differ = [k for k in CELL_KEYS if a.get(k) != b.get(k)]
        if differ:
            problems.append(f"{name}: " + ", ".join(f"{k} {a.get(k)!r} vs {b.get(k)!r}" for k in differ))
        if prompt_tensors(cell.parent / "prompt.safetensors") != prompt_tensors(ref_cell.parent / "prompt.safetensors"):
            problems.append(f"{name}: prompt tensors differ")
    return {"identical": not problems, "problems": problems[:10]}


# --- (a) and (b): kill, continue, compare --------------------------------------------------------


def continue_until_done(make_argv, cwd: Path, log: Path) -> tuple[bool, list[dict]]:
    attempts = []
    for _ in range(MAX_CONTINUATIONS):
        argv, how = make_argv()
        code, err, _ = run_softeval(argv, cwd, log)
        attempts.append({"how": how, "exit": code, "stderr": last_line(err)})
        if code == 0:
            return True, attempts
    return False, attempts


def train_trials(model: str, trials: int, work: Path, rng: random.Random, window: str) -> dict:
    work.mkdir(parents=True)
    base = ["train", "--model", model, *TRAIN, "-q"]
    refs, times, starts = [], [], []
    for i in range(2):  # two uninterrupted runs: the reference, and a check that a run repeats itself at all
        ref = work / f"reference{i}" / "run"
        code, err, seconds, config_s = run_watched([*base, "--out", str(ref)], work, ref / "config.json",
                                                   work / "reference.log")
        if code != 0:
            sys.exit(f"uninterrupted train failed (exit {code}): {last_line(err)}")
        refs.append(ref)
        times.append(seconds)
        starts.append(config_s or 0.0)
    # The shorter run sets T: machine load only ever slows a run, and a kill after the run ended tests nothing.
    wall, start = min(times), (min(starts) if window == "training" else 0.0)
    repeats = compare_run(refs[1], refs[0])
    print(f"train: uninterrupted run {wall:.1f}s (config.json after {min(starts):.1f}s); "
          f"repeats itself: {repeats['identical'] and repeats['no_duplicates']}; kills uniform over "
          f"[{start:.1f}, {wall:.1f}]s", flush=True)
    results = []
    for t in range(trials):
        folder = work / f"trial{t:02d}"
        folder.mkdir()
        run_dir, log = folder / "run", folder / "commands.log"
        first = [*base, "--out", str(run_dir)]
        kill_at = rng.uniform(start, wall)
        killed, code = run_and_kill(first, folder, kill_at, log)
        at_kill = phase(run_dir) if killed else "finished before the kill"

        def next_command():
            if (run_dir / "config.json").exists():
                return ["train", "--resume", str(run_dir), "-q"], "resume"
            return first, "rerun (nothing to resume)"

        finished, attempts = (True, []) if not killed and code == 0 else continue_until_done(next_command, folder, log)
        outcome = compare_run(run_dir, refs[0]) if finished else {"identical": False, "no_duplicates": False}
        results.append({"trial": t, "kill_after_s": round(kill_at, 3), "killed": killed, "phase_at_kill": at_kill,
                        "finished": finished, "continuations": attempts, **outcome})
        print(f"  trial {t:2d}: kill at {kill_at:5.1f}s ({at_kill}); "
              f"{describe(attempts)}; identical {outcome['identical']}, no duplicates {outcome['no_duplicates']}"
              + ("" if finished else f" [{attempts[-1]['stderr']}]"), flush=True)
    phases: dict[str, int] = {}
    for r in results:
        key = "checkpoint" if r["phase_at_kill"].startswith("checkpoint") else r["phase_at_kill"]
        phases[key] = phases.get(key, 0) + 1
    print(f"  killed at: {', '.join(f'{k} {v}' for k, v in sorted(phases.items()))}", flush=True)
    return {"uninterrupted_wall_s": round(wall, 2), "kill_window_s": [round(start, 2), round(wall, 2)],
            "reference_repeats_itself": repeats, "phases_at_kill": phases, "trials": results,
            "identical": sum(r["identical"] for r in results),
            "no_duplicates": sum(r["no_duplicates"] for r in results)}


def sweep_trials(model: str, trials: int, work: Path, rng: random.Random, window: str) -> dict:
    work.mkdir(parents=True)
    base = ["distance", "--model", model, *SWEEP, "-q"]
    ref = work / "reference" / "sweep"
    code, err, wall, config_s = run_watched([*base, "--out", str(ref)], work, ref / "config.json",
                                            work / "reference.log")
    if code != 0:
        sys.exit(f"uninterrupted distance failed (exit {code}): {last_line(err)}")
    start = (config_s or 0.0) if window == "training" else 0.0
    print(f"distance: uninterrupted sweep {wall:.1f}s (config.json after {config_s or 0:.1f}s); kills uniform "
          f"over [{start:.1f}, {wall:.1f}]s", flush=True)
    results = []
    for t in range(trials):
        folder = work / f"trial{t:02d}"
        folder.mkdir()
        out, log = folder / "sweep", folder / "commands.log"
        argv = [*base, "--out", str(out)]
        kill_at = rng.uniform(start, wall)
        killed, code = run_and_kill(argv, folder, kill_at, log)
        done_cells = len(list((out / "cells").glob("*/cell.json"))) if killed else None
        # Which checkpoint each unfinished cell had: lanes resumed at different steps batch differently.
        cells_at_kill = ({p.name: phase(p) for p in sorted((out / "cells").glob("*"))
                          if not (p / "cell.json").exists()} if killed and (out / "cells").is_dir() else {})
        finished, attempts = ((True, []) if not killed and code == 0
                              else continue_until_done(lambda: (argv, "rerun"), folder, log))
        outcome = compare_sweep(out, ref) if finished else {"identical": False, "problems": ["did not finish"]}
        results.append({"trial": t, "kill_after_s": round(kill_at, 3), "killed": killed,
                        "cells_done_at_kill": done_cells, "cells_at_kill": cells_at_kill, "finished": finished,
                        "continuations": attempts, **outcome})
        print(f"  trial {t}: kill at {kill_at:5.1f}s ({done_cells} cells done"
              + "".join(f", {k}: {v}" for k, v in cells_at_kill.items()) + "); "
              f"{describe(attempts)}; identical {outcome['identical']} {'; '.join(outcome['problems'][:2])}",
              flush=True)
    return {"uninterrupted_wall_s": round(wall, 2), "kill_window_s": [round(start, 2), round(wall, 2)],
            "trials": results,
            "identical": sum(r["identical"] for r in results)}


def write_bench_task(folder: Path) -> Path:
    """A small multiple-choice spec task (softeval's spec format): 40 tuning items, 8 evaluation items."""
    folder.mkdir(parents=True, exist_ok=True)
    colours = ["red", "blue", "green", "gold", "gray", "pink"]

    def item(i: int) -> dict:
        return {"q": f"Item {i} is painted which colour?", "options": [colours[(i + k) % 6] for k in range(3)],
                "gold": "ABC"[i % 3]}

    for name, rows in (("train.jsonl", range(40)), ("test.jsonl", range(100, 108))):
        (folder / name).write_text("".join(json.dumps(item(i)) + "\n" for i in rows))
    spec = folder / "colours.yaml"
    spec.write_text(json.dumps({"task": "colours", "kind": "multiple_choice",
                                "files": {"train": "train.jsonl", "test": "test.jsonl"},
                                "fields": {"question": "q", "choices": "options", "answer": "gold"}}))
    return spec


def comparable_results(out: Path) -> dict | None:
    """results.json with timing fields and the output folder's own path taken out (they differ by design)."""
    path = out / "results.json"
    if not path.exists():
        return None

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in TIMING_KEYS}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(json.loads(path.read_text().replace(str(out), "<OUT>")))


def compare_bench(out: Path, ref: Path) -> dict:
    problems = []
    if comparable_results(out) != comparable_results(ref):
        problems.append("results.json differs")
    for ref_file in sorted((ref / "samples").rglob("*.jsonl")):
        mine = out / ref_file.relative_to(ref)
        if not mine.exists() or mine.read_bytes() != ref_file.read_bytes():
            problems.append(f"{ref_file.relative_to(ref)} differs")
    return {"identical": not problems, "problems": problems[:10]}


def first_seen(argv: list[str], cwd: Path, patterns: dict[str, tuple[Path, str]], log: Path) -> tuple[int, str, float, dict]:
    """Run to completion, noting when each glob (folder, pattern) first matches: (exit, stderr, wall s, {name: s})."""
    t0 = time.perf_counter()
    seen: dict[str, float] = {}
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([softeval_exe(), *argv], cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        while proc.poll() is None:
            for name, (folder, pattern) in patterns.items():
                if name not in seen and folder.exists() and any(folder.glob(pattern)):
                    seen[name] = time.perf_counter() - t0
            time.sleep(0.02)
            if time.perf_counter() - t0 > COMMAND_TIMEOUT_S:
                proc.kill()
        wall = time.perf_counter() - t0
        err.seek(0)
        text = err.read()
    with open(log, "a") as f:
        f.write(f"$ softeval {shlex.join(argv)}\n[exit {proc.returncode}]\n{text[-4000:]}\n")
    return proc.returncode, text, wall, seen


def bench_trials(model: str, trials: int, work: Path, rng: random.Random) -> dict:
    work.mkdir(parents=True)
    spec = write_bench_task(work / "task")
    base = ["bench", "--model", model, "--task", str(spec), *BENCH, "-q"]
    refs, moments = [], []
    for i in range(2):  # the reference, and a check that a bench run repeats itself at all
        ref = work / f"reference{i}" / "out"
        code, err, wall, seen = first_seen(
            [*base, "--out", str(ref)], work,
            {"tuning": (ref / "train", "**/metrics.jsonl"),
             "snapshot": (ref / "train", f"**/prompt_step_{BENCH_STEPS:06d}.safetensors"),
             "soft_unit": (ref / "units", "**/soft.json")}, work / "reference.log")
        if code != 0:
            sys.exit(f"uninterrupted bench failed (exit {code}): {last_line(err)}")
        refs.append(ref)
        moments.append({**seen, "end": wall})
    repeats = compare_bench(refs[1], refs[0])
    m = {k: min(x.get(k, x["end"]) for x in moments) for k in ("tuning", "snapshot", "soft_unit", "end")}
    windows = {"tuning": (m["tuning"], m["snapshot"]), "scoring": (m["snapshot"], m["soft_unit"])}
    print(f"bench: uninterrupted run {m['end']:.1f}s; tuning {m['tuning']:.1f}–{m['snapshot']:.1f}s, soft scoring "
          f"{m['snapshot']:.1f}–{m['soft_unit']:.1f}s; repeats itself: {repeats['identical']}", flush=True)
    results = []
    for t in range(trials):
        during = "tuning" if t % 2 == 0 else "scoring"
        folder = work / f"trial{t:02d}"
        folder.mkdir()
        out, log = folder / "out", folder / "commands.log"
        argv = [*base, "--out", str(out)]
        kill_at = rng.uniform(*windows[during])
        killed, code = run_and_kill(argv, folder, kill_at, log)
        at_kill = ("soft unit written" if any((out / "units").glob("**/soft.json")) else
                   "final snapshot written" if any(out.glob(f"train/**/prompt_step_{BENCH_STEPS:06d}.safetensors"))
                   else "tuning") if killed else "finished before the kill"
        finished, attempts = ((True, []) if not killed and code == 0
                              else continue_until_done(lambda: (argv, "rerun"), folder, log))
        outcome = compare_bench(out, refs[0]) if finished else {"identical": False, "problems": ["did not finish"]}
        results.append({"trial": t, "during": during, "kill_after_s": round(kill_at, 3), "killed": killed,
                        "phase_at_kill": at_kill, "finished": finished, "continuations": attempts, **outcome})
        print(f"  trial {t}: kill during {during} at {kill_at:5.1f}s ({at_kill}); {describe(attempts)}; "
              f"identical {outcome['identical']} {'; '.join(outcome['problems'][:2])}", flush=True)
    return {"uninterrupted_wall_s": round(m["end"], 2), "windows_s": {k: [round(a, 2), round(b, 2)]
                                                                     for k, (a, b) in windows.items()},
            "reference_repeats_itself": repeats, "trials": results,
            "identical": sum(r["identical"] for r in results)}


# --- (d): the catalogue --------------------------------------------------------------------------


def catalogue(model: str, work: Path, keep: bool) -> dict:
    def run_cli(argv, cwd):
        code, err, _ = run_softeval(argv, cwd)
        return code, err

    fx = bad_inputs.Fixtures(work / "shared", model, lambda argv, cwd: run_cli(argv, cwd)[0])
    fx.root.mkdir(parents=True)
    rows = []
    print(f"\n{'case':<42} {'exit':>4}  {'first stderr line':<90} result")
    for case in bad_inputs.CASES:
        folder = work / case.name
        try:
            outcome = bad_inputs.run_case(case, folder, fx, run_cli)
        except bad_inputs.Skip as exc:
            rows.append({"case": case.name, "skipped": str(exc)})
            print(f"{case.name:<42} {'-':>4}  {'(skipped: ' + str(exc) + ')':<90} SKIP", flush=True)
            continue
        finally:
            if not keep:
                shutil.rmtree(folder, ignore_errors=True)
        rows.append({"case": case.name, "argv": case.argv, "exit": outcome.code, "first_line": outcome.first_line,
                     "passed": outcome.passed, "problems": outcome.problems, "known_defect": case.defect,
                     "traceback": "traceback" in outcome.problems})
        verdict = "PASS" if outcome.passed else "FAIL (" + "; ".join(outcome.problems) + ")"
        print(f"{case.name:<42} {outcome.code:>4}  {outcome.first_line[:90]:<90} {verdict}", flush=True)
    ran = [r for r in rows if "skipped" not in r]
    return {"cases": rows, "clean": sum(r["passed"] for r in ran), "ran": len(ran),
            "tracebacks": sum(r["traceback"] for r in ran)}


# --- main ----------------------------------------------------------------------------------------


def versions() -> dict:
    import torch
    import transformers

    import softeval

    return {"softeval": softeval.__version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def target(name: str, value: int, op: str, threshold: int) -> str:
    ok = {">=": value >= threshold, "==": value == threshold, "<=": value <= threshold}[op]
    return f"TARGET {name} {value} need {op} {threshold} {'PASS' if ok else 'FAIL'}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default=MODEL, help=f"embedded name or local model folder (default {MODEL})")
    p.add_argument("--trials", type=int, default=TRAIN_TRIALS, help=f"train kill trials (default {TRAIN_TRIALS})")
    p.add_argument("--sweep-trials", type=int, default=SWEEP_TRIALS,
                   help=f"distance kill trials (default {SWEEP_TRIALS})")
    p.add_argument("--bench-trials", type=int, default=BENCH_TRIALS,
                   help=f"bench kill trials, alternately during tuning and scoring (default {BENCH_TRIALS})")
    p.add_argument("--seed", type=int, default=SEED, help="seeds the kill moments")
    p.add_argument("--kill-window", choices=["run", "training"], default=KILL_WINDOW,
                   help="run: kill uniformly over the whole run (default); training: only after config.json exists")
    p.add_argument("--only", default="train,sweep,bench,catalogue",
                   help="comma-separated subset of train,sweep,bench,catalogue")
    p.add_argument("--work", default=None, help="working folder (default: a temporary one, deleted afterwards)")
    p.add_argument("--out", default=None, help="JSON results path (default benchmarks/results/reliability_….json)")
    args = p.parse_args()
    parts = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = parts - {"train", "sweep", "bench", "catalogue"}
    if unknown:
        p.error(f"--only: unknown part(s) {', '.join(sorted(unknown))}")

    keep = args.work is not None
    work = Path(args.work) if keep else Path(tempfile.mkdtemp(prefix="softeval-reliability-"))
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    report: dict = {"config": {"model": args.model, "train_trials": args.trials, "sweep_trials": args.sweep_trials,
                               "bench_trials": args.bench_trials, "bench_args": BENCH,
                               "seed": args.seed, "kill_window": args.kill_window, "parts": sorted(parts),
                               "train_args": TRAIN, "sweep_args": SWEEP,
                               "max_continuations": MAX_CONTINUATIONS, "timing_keys_ignored": sorted(TIMING_KEYS),
                               "softeval": softeval_exe()},
                    "versions": versions(), "date": datetime.date.today().isoformat()}
    t0 = time.perf_counter()
    try:
        if "train" in parts:
            report["train_kill"] = train_trials(args.model, args.trials, work / "train", rng, args.kill_window)
        if "sweep" in parts:
            report["sweep_kill"] = sweep_trials(args.model, args.sweep_trials, work / "sweep", rng, args.kill_window)
        if "bench" in parts:
            report["bench_kill"] = bench_trials(args.model, args.bench_trials, work / "bench", rng)
        if "catalogue" in parts:
            report["catalogue"] = catalogue(args.model, work / "catalogue", keep)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    report["wall_s"] = round(time.perf_counter() - t0, 1)

    slug = Path(args.model).name if Path(args.model).exists() else args.model
    out = Path(args.out) if args.out else (Path(__file__).resolve().parent / "results" /
                                           f"reliability_{slug}_{report['date']}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    print(f"\nresults: {out}")

    lines = []
    if "train_kill" in report:
        r = report["train_kill"]
        lines += [target("train_kill_identical", r["identical"], "==", args.trials),
                  target("train_kill_no_duplicates", r["no_duplicates"], "==", args.trials)]
    if "sweep_kill" in report:
        lines.append(target("sweep_kill_identical", report["sweep_kill"]["identical"], "==", args.sweep_trials))
    if "bench_kill" in report:
        lines.append(target("bench_kill_identical", report["bench_kill"]["identical"], "==", args.bench_trials))
    if "catalogue" in report:
        c = report["catalogue"]
        lines += [target("catalogue_clean", c["clean"], ">=", 150),
                  target("catalogue_tracebacks", c["tracebacks"], "==", 0)]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
