"""Parity: softeval's lm-eval model (no prompt) vs plain `lm_eval --model hf` on the same task config.

Runs ARC-Easy test, zero-shot, log-likelihood accuracy, from the local original-layout files, with
both backends through lm-eval's `simple_evaluate`, then prints both accuracies and the largest
per-item log-likelihood difference. Must agree within ±0.1 accuracy points.

    python benchmarks/bench_parity.py --data-dir ../shared/data                  # full test (2,376 items)
    python benchmarks/bench_parity.py --data-dir ../shared/data --limit 200      # first 200 items
    python benchmarks/bench_parity.py --model gemma3-270m --limit 50
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

# --- settings
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", default="smollm2-135m-instruct", help="embedded name or local HF folder")
parser.add_argument("--task", default="arc_easy")
parser.add_argument("--data-dir", required=True, help="folder holding arc/ARC-Easy/… (original layout)")
parser.add_argument("--limit", type=int, default=None, help="first N test items (default: all)")
parser.add_argument("--batch-size", type=int, default=16)
parser.add_argument("--out", default=None, help="write the JSON summary here too")
args = parser.parse_args()

import lm_eval  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

import softeval.bench.lm_adapter  # noqa: E402,F401  (registers --model softeval)
from softeval.bench.harness import task_manager  # noqa: E402
from softeval.bench.tasks import resolve_task# noqa: E402
from softeval.engine.models import load_model  # noqa: E402

torch.set_num_threads(max(1, torch.get_num_threads()))
lm = load_model(args.model, device="cpu", dtype="float32", show_progress=False)
bench_task = resolve_task(args.task, args.data_dir)
task_cfg = bench_task.configs[bench_task.lm_eval_form]  # the ll form that is lm-eval's own task


def evaluate(model: str, model_args: dict) -> tuple[float, dict[int, list[float]], float]:
    t0 = time.time()
    out = lm_eval.simple_evaluate(model=model, model_args=model_args, tasks=[dict(task_cfg)], num_fewshot=0,
                                  limit=args.limit, batch_size=args.batch_size, device="cpu", log_samples=True,
                                  bootstrap_iters=0, task_manager=task_manager())
    name = task_cfg["task"]
    acc = out["results"][name]["acc,none"]
    per_item = {s["doc_id"]: [float(r[0][0]) for r in s["resps"]] for s in out["samples"][name]}
    return acc, per_item, time.time() - t0


# --- run both
hf_acc, hf_items, hf_s = evaluate("hf", {"pretrained": lm.info.path, "dtype": "float32"})
se_acc, se_items, se_s = evaluate("softeval", {"model": args.model, "dtype": "float32"})

# --- compare
max_diff = max(abs(a - b) for d in hf_items for a, b in zip(hf_items[d], se_items[d]))
agree = abs(hf_acc - se_acc) * 100 <= 0.1
summary = {
    "task": task_cfg["task"], "model": args.model, "model_path": lm.info.path, "limit": args.limit,
    "items": len(hf_items), "num_fewshot": 0,
    "lm_eval_hf_acc": hf_acc, "softeval_acc": se_acc, "difference_points": (se_acc - hf_acc) * 100,
    "max_abs_loglikelihood_diff": max_diff, "agree_within_0.1_points": agree,
    "seconds": {"hf": round(hf_s, 1), "softeval": round(se_s, 1)},
    "versions": {"lm_eval": lm_eval.__version__, "torch": torch.__version__, "transformers": transformers.__version__,
                 "python": platform.python_version(), "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
}
print(json.dumps(summary, indent=2))
print(f"lm_eval --model hf: acc {hf_acc * 100:.2f}   softeval: acc {se_acc * 100:.2f}   "
      f"({len(hf_items)} items, max |Δ loglik| {max_diff:.2e})")
if args.out:
    with open(args.out, "w") as f:
        json.dump(summary, f, indent=2)
sys.exit(0 if agree else 1)
