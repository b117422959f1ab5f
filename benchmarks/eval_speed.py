"""Evaluation speed: softeval's lm-eval model vs plain `lm_eval --model hf`, side by side in one run (issue #12).

Both score the same requests: zero-shot log-likelihood forms of ARC-Easy (test), CommonsenseQA
(validation) and MMLU (test, first --mmlu-limit items of the 57 subjects in file order), from the task
config dicts softeval's `bench` uses (src/softeval/bench/task_configs, local files under --data-dir).

    lm-eval side   simple_evaluate(model=HFLM(pretrained=<softeval's cached safetensors folder>, batch_size=B))
    softeval side  simple_evaluate(model=SoftevalLM(lm=<same weights>, batch_size=B))   (no soft prompt)

Batch size cap B (--batch-size, default 8) for both: lm-eval runs B requests (one row each) per forward;
softeval runs at most B distinct contexts per prefix forward (their choices ride in one short
continuation forward) within its 4,096-token budget. Weights and precision are the same on both sides:
fp32 = float32 weights; bf16 = bfloat16 weights (softeval also under bf16 autocast, a no-op on them).
Two settings put lm-eval's default (fp32 weights) against a faster softeval, the issue's "bf16 where accuracy
parity holds": autocast = softeval's fp32 weights under bf16 autocast; bf16-weights = softeval's weights cast
once to bfloat16. Their speed-ups count only where the accuracy line passes too.

Timing: models are loaded and warmed up (a few items through each) before anything is timed; each
timed run is the wall-clock time of the model's `loglikelihood` call inside simple_evaluate (task
building, data loading and metrics excluded; `total_s` in the JSON includes them). --repeats R runs
lm-eval, softeval, lm-eval, softeval, ... and reports the median of the per-repeat speed-ups.

    python benchmarks/eval_speed.py --device cpu                       # everything (slow on CPU)
    python benchmarks/eval_speed.py --device cuda --models gemma3-270m smollm2-135m-instruct --tasks arc_easy \
        --limit 500 --precision bf16 --repeats 1
    python benchmarks/eval_speed.py --smoke                            # 8 ARC-Easy items, CPU, to check it runs

Ends with `TARGET eval_speedup_vs_lm_eval_<task>_<model> <x> need >= 2 PASS|FAIL` and
`TARGET eval_acc_delta_pts_<task>_<model> <d> need <= 0.1 PASS|FAIL` per (model, task); bf16 lines carry
`bf16_` after the metric name. Δacc is the larger of |Δ acc| and |Δ acc_norm| in points.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("arc_easy", "commonsense_qa", "mmlu")
MODELS = ("gemma3-270m", "smollm2-135m-instruct")

# --- settings
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--models", nargs="+", default=list(MODELS), help="embedded model names")
parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
parser.add_argument("--limit", type=int, default=None, help="items per task (default: all; MMLU: --mmlu-limit)")
parser.add_argument("--mmlu-limit", type=int, default=500, help="MMLU items (first N of the test files in order)")
parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "both", "autocast", "bf16-weights"),
                    help="fp32 / bf16: the same weights on both sides; autocast / bf16-weights: lm-eval's default "
                         "fp32 against softeval under bf16 autocast / with bf16 weights (counts only where the "
                         "accuracies agree)")
parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
parser.add_argument("--batch-size", type=int, default=8, help="batch size cap for both sides")
parser.add_argument("--repeats", type=int, default=1, help="timed runs per side, alternating")
parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
# ../shared/data next to the checkout, else shared/data inside it (how a copied working tree carries it)
DATA = next((p for p in (ROOT.parent / "shared" / "data", ROOT / "shared" / "data") if p.is_dir()),
            ROOT.parent / "shared" / "data")
parser.add_argument("--data-dir", default=str(DATA), help=f"original-layout data folder (default {DATA})")
parser.add_argument("--out", default=None, help="JSON results (default benchmarks/results/eval_speed_<device>_<date>.json; "
                                                "--smoke writes none unless given)")
parser.add_argument("--smoke", action="store_true", help="= --limit 8 --tasks arc_easy --repeats 1 (a quick check)")
args = parser.parse_args()
if args.smoke:
    args.limit, args.tasks, args.repeats = 8, ["arc_easy"], 1
if args.repeats < 1 or args.batch_size < 1:
    parser.error("--repeats and --batch-size must be >= 1")
if args.out is None and not args.smoke:
    args.out = str(ROOT / "benchmarks" / "results" / f"eval_speed_{args.device}_{datetime.date.today().isoformat()}.json")

import lm_eval  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from lm_eval.models.huggingface import HFLM  # noqa: E402

from softeval.bench.harness import quiet_git_hash, task_manager  # noqa: E402
from softeval.bench.lm_adapter import SoftevalLM  # noqa: E402
from softeval.bench.tasks import resolve_task# noqa: E402
from softeval.errors import SoftevalError  # noqa: E402
from softeval.engine.models import load_model  # noqa: E402

logging.getLogger("lm_eval").setLevel(logging.ERROR)
if args.threads:
    torch.set_num_threads(args.threads)
if args.device == "cuda" and not torch.cuda.is_available():
    sys.exit("--device cuda: no CUDA device visible")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class Timed:
    """Adds up the wall time of one model's loglikelihood calls (what lm-eval spends in the model)."""

    def __init__(self, lm):
        self.lm, self.seconds = lm, 0.0
        inner = lm.loglikelihood

        def loglikelihood(requests, *a, **k):
            t0 = time.perf_counter()
            out = inner(requests, *a, **k)
            if args.device == "cuda":
                torch.cuda.synchronize()
            self.seconds += time.perf_counter() - t0
            return out

        lm.loglikelihood = loglikelihood


def evaluate(timed: Timed, cfg: dict, limit: int | None) -> dict:
    timed.seconds = 0.0
    t0 = time.perf_counter()
    with quiet_git_hash():
        out = lm_eval.simple_evaluate(model=timed.lm, tasks=[dict(cfg)], num_fewshot=0, limit=limit, log_samples=True,
                                      bootstrap_iters=0, task_manager=task_manager(), random_seed=0,
                                      numpy_random_seed=0, torch_random_seed=0, fewshot_random_seed=0,
                                      verbosity="ERROR")
    name = cfg["task"]
    res = out["results"][name]
    samples = out["samples"][name]
    return {"items": len(samples), "model_s": timed.seconds, "total_s": time.perf_counter() - t0,
            "acc": res.get("acc,none"), "acc_norm": res.get("acc_norm,none"),
            "loglik": {s["doc_id"]: [float(r[0][0]) for r in s["resps"]] for s in samples}}


# --- setup
first_load = load_average()
print(f"load average at start: {first_load}")
print(f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs), torch threads {torch.get_num_threads()}")
if args.device == "cuda":
    print(f"GPU: {torch.cuda.get_device_name()}")
print(f"versions: torch {torch.__version__}, transformers {transformers.__version__}, lm_eval {lm_eval.__version__}")
print(f"batch size cap {args.batch_size} (both), repeats {args.repeats}, limit {args.limit}, "
      f"MMLU limit {args.mmlu_limit}, device {args.device}")
# Each task's log-likelihood form that is identical to lm-eval's own task (ARC: cloze; MMLU, CommonsenseQA:
# letters), so both sides score the same requests.
try:
    resolved = {t: resolve_task(t, args.data_dir, soft=False) for t in args.tasks}
except SoftevalError as e:  # a missing --data-dir or file: one line, not a traceback
    sys.exit(f"eval_speed: {e}")
configs = {t: r.configs[r.lm_eval_form] for t, r in resolved.items()}
precisions = ["fp32", "bf16"] if args.precision == "both" else [args.precision]
# precision name → (lm-eval's weights dtype, softeval's weights dtype, softeval's compute precision)
SETTINGS = {"fp32": ("float32", "float32", "fp32"), "bf16": ("bfloat16", "bfloat16", "bf16"),
            "autocast": ("float32", "float32", "bf16"), "bf16-weights": ("float32", "bfloat16", "bf16")}
rows = []

# --- run
for precision in precisions:
    hf_dtype, softeval_dtype, softeval_precision = SETTINGS[precision]
    for model_name in args.models:
        try:
            loaded = load_model(model_name, device=args.device, dtype=softeval_dtype, show_progress=False)
        except SoftevalError as e:  # an unknown model name or folder
            sys.exit(f"eval_speed: {e}")
        softeval = Timed(SoftevalLM(lm=loaded, batch_size=args.batch_size, precision=softeval_precision,
                                    show_progress=False))
        hf = Timed(HFLM(pretrained=loaded.info.path, batch_size=args.batch_size, device=args.device, dtype=hf_dtype))
        for side in (hf, softeval):  # warm-up: first calls pay for kernel selection, allocator growth, caches
            evaluate(side, configs[args.tasks[0]], 4)
        for task in args.tasks:
            limit = min(args.mmlu_limit, args.limit or args.mmlu_limit) if task == "mmlu" else args.limit
            runs = {"lm_eval": [], "softeval": []}
            for _ in range(args.repeats):
                runs["lm_eval"].append(evaluate(hf, configs[task], limit))
                runs["softeval"].append(evaluate(softeval, configs[task], limit))
            a, b = runs["lm_eval"][0], runs["softeval"][0]
            ratios = [x["model_s"] / y["model_s"] for x, y in zip(runs["lm_eval"], runs["softeval"])]
            deltas = [abs(a[m] - b[m]) * 100 for m in ("acc", "acc_norm") if a[m] is not None and b[m] is not None]
            max_ll = max(abs(x - y) for d in a["loglik"] for x, y in zip(a["loglik"][d], b["loglik"][d]))
            rows.append({
                "model": model_name, "precision": precision, "task": task, "items": a["items"],
                "lm_eval_s": statistics.median(r["model_s"] for r in runs["lm_eval"]),
                "softeval_s": statistics.median(r["model_s"] for r in runs["softeval"]),
                "speedup": statistics.median(ratios), "speedups": ratios,
                "lm_eval_total_s": [r["total_s"] for r in runs["lm_eval"]],
                "softeval_total_s": [r["total_s"] for r in runs["softeval"]],
                "lm_eval_acc": a["acc"], "softeval_acc": b["acc"],
                "lm_eval_acc_norm": a["acc_norm"], "softeval_acc_norm": b["acc_norm"],
                "acc_delta_pts": max(deltas), "max_abs_loglik_diff": max_ll})
        del softeval, hf, loaded
        if args.device == "cuda":
            torch.cuda.empty_cache()

# --- report
end_load = load_average()
print(f"load average at end: {end_load}")


def pct(x):
    return "-" if x is None else f"{x * 100:.2f}"


head = (f"{'model':<22} {'prec':<12} {'task':<15} {'items':>5} {'lm-eval s':>9} {'softeval s':>10} {'lm-eval it/s':>12} "
        f"{'softeval it/s':>13} {'speed-up':>8} {'lm-eval acc':>11} {'softeval acc':>12} {'lm-eval norm':>12} "
        f"{'softeval norm':>13} {'|Δacc| pts':>10} {'max|Δll|':>9}")
print(head)
for r in rows:
    print(f"{r['model']:<22} {r['precision']:<12} {r['task']:<15} {r['items']:>5} {r['lm_eval_s']:>9.2f} "
          f"{r['softeval_s']:>10.2f} {r['items'] / r['lm_eval_s']:>12.1f} {r['items'] / r['softeval_s']:>13.1f} "
          f"{r['speedup']:>7.2f}× {pct(r['lm_eval_acc']):>11} {pct(r['softeval_acc']):>12} "
          f"{pct(r['lm_eval_acc_norm']):>12} {pct(r['softeval_acc_norm']):>13} {r['acc_delta_pts']:>10.2f} "
          f"{r['max_abs_loglik_diff']:>9.1e}")
if args.out:
    summary = {"argv": sys.argv[1:], "date": datetime.datetime.now().isoformat(timespec="seconds"),
               "device": args.device, "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None,
               "cpu": cpu_model(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
               "load_average_start_end": [first_load, end_load], "batch_size": args.batch_size,
               "repeats": args.repeats, "limit": args.limit, "mmlu_limit": args.mmlu_limit,
               "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                            "lm_eval": lm_eval.__version__, "python": platform.python_version()},
               "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}")
for r in rows:
    tag = f"{'' if r['precision'] == 'fp32' else r['precision'] + '_'}{r['task']}_{r['model']}"
    print(f"TARGET eval_speedup_vs_lm_eval_{tag} {r['speedup']:.2f} need >= 2 "
          f"{'PASS' if r['speedup'] >= 2 else 'FAIL'}")
    print(f"TARGET eval_acc_delta_pts_{tag} {r['acc_delta_pts']:.2f} need <= 0.1 "
          f"{'PASS' if r['acc_delta_pts'] <= 0.1 else 'FAIL'}")
