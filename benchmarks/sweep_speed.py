"""Sweep speed: prompt lengths × seeds trained (a) with PEFT cell by cell, (b) with softeval cell by cell,
(c) with softeval lanes (all cells in one forward/backward per step), timed side by side in one run.

    python benchmarks/sweep_speed.py                      # n ∈ {0,1,4,16,64} × 3 seeds × 50 steps, SmolLM2
    python benchmarks/sweep_speed.py --quick              # a few seconds' worth, to see that it runs
    python benchmarks/sweep_speed.py --tokens 1 16 --seeds 2 --steps 10 --out /tmp/sweep.json
    python benchmarks/sweep_speed.py --device cuda        # on a GPU: bf16 weights for all three methods

Every method trains the same cells on the same examples in the same order (softeval's StepSampler),
from the same initial prompt, with AdamW, warmup + cosine schedule and grad clipping alike, and scores
each cell on the same held-out examples before and after. PEFT runs the way a PEFT user would:
`PeftModel` with `PromptTuningConfig`, `model(input_ids, attention_mask, labels=...)`, fp32 on a CPU
and bf16 weights on a GPU (`--device cuda`, where PEFT users load bf16; softeval's `dtype auto` does too).
The run ends with `TARGET sweep_lanes_speedup_vs_peft <x> need >= 4` (wall time of the whole sweep).

Counting conventions (printed with the results):
  * n = 0 cells have nothing to train: each method evaluates them once (the plain model's held-out
    loss), and that evaluation is part of its wall time; they add no training tokens.
  * tokens = the real (non-pad) positions of the training rows: prompt + BOS + input tokens; the
    same count for every method, so tokens/s compare the work done, not the padding processed.
  * model FLOPs of a training step on a frozen model = 4 · P · tokens + 4 · V · D · targets
    (forward 2 and backward-to-the-input 2 FLOPs per weight per token; no weight gradients).
    P = parameters outside the embedding matrix (an embedding is a lookup); the output projection
    counts only at the scored positions, where softeval computes it. Attention scores are not counted.
  * MFU = model FLOPs of the training steps / training time / measured matmul peak (large square
    matmuls, best of several, at the same thread count), against both the fp32 and the bf16 peak.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peak import matmul_peak  # noqa: E402  (benchmarks/ is not a package)

# --- settings (the defaults are issue #6's sweep) --------------------------------------------------
MODEL = "smollm2-135m-instruct"
TOKENS = [0, 1, 4, 16, 64]        # prompt lengths n
SEEDS = 3                         # seeds 0..SEEDS-1 per length
STEPS = 50
BATCH_SIZE = 8
LR = 0.03
WARMUP_STEPS = 10
CONTEXT_TOKENS = 64               # autoregressive task on the text shipped with softeval:
TARGET_TOKENS = 32                # 64 tokens of context, 32 scored next tokens per example
NUM_TRAIN = 64
NUM_EVAL = 16
PRECISION = "auto"                # softeval's autocast for (b) and (c); PEFT (a) runs fp32
DTYPE = "auto"                    # weights dtype for (b) and (c); PEFT (a) loads fp32
METHODS = ["peft", "softeval", "lanes"]
NEED_LANES_SPEEDUP = 4.0          # issue #6/#12: lanes vs PEFT cell by cell, whole-sweep wall time
QUICK = dict(tokens=[0, 1, 4], seeds=1, steps=2, num_train=8, num_eval=4, context_tokens=16, target_tokens=8,
             peak_size=512)


@dataclass
class Settings:
    model: str = MODEL
    tokens: list = field(default_factory=lambda: list(TOKENS))
    seeds: int = SEEDS
    steps: int = STEPS
    batch_size: int = BATCH_SIZE
    lr: float = LR
    warmup_steps: int = WARMUP_STEPS
    context_tokens: int = CONTEXT_TOKENS
    target_tokens: int = TARGET_TOKENS
    num_train: int = NUM_TRAIN
    num_eval: int = NUM_EVAL
    precision: str = PRECISION
    dtype: str = DTYPE
    methods: list = field(default_factory=lambda: list(METHODS))
    max_batch_tokens: int | None = None
    threads: int | None = None
    device: str = "cpu"
    peak_size: int = 2048
    out: str = "runs/bench/sweep_speed.json"
    quick: bool = False


def parse_args() -> Settings:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=MODEL, help="embedded name or model folder (default %(default)s)")
    p.add_argument("--tokens", type=int, nargs="+", default=TOKENS, help="prompt lengths n")
    p.add_argument("--seeds", type=int, default=SEEDS, help="seeds per length")
    p.add_argument("--steps", type=int, default=STEPS, help="training steps per cell")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    p.add_argument("--precision", default=PRECISION, choices=["auto", "fp32", "bf16"], help="softeval autocast")
    p.add_argument("--dtype", default=DTYPE, choices=["auto", "float32", "bfloat16"], help="softeval weights dtype")
    p.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    p.add_argument("--max-batch-tokens", type=int, default=None, help="lane budget (default: from free memory)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--out", default=Settings.out, help="JSON results file")
    p.add_argument("--quick", action="store_true", help="tiny setting: " + json.dumps(QUICK))
    a = p.parse_args()
    s = Settings(model=a.model, tokens=a.tokens, seeds=a.seeds, steps=a.steps, batch_size=a.batch_size,
                 precision=a.precision, dtype=a.dtype, methods=a.methods, max_batch_tokens=a.max_batch_tokens,
                 threads=a.threads, device=a.device, out=a.out, quick=a.quick)
    return replace(s, **QUICK) if a.quick else s


# --- helpers -----------------------------------------------------------------------------------------


def synchronize() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


class Clock:
    """Wall and process-CPU seconds; CPU time is less sensitive to other users of a shared machine."""

    def __init__(self):
        self.wall = self.cpu = 0.0

    def __enter__(self):
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        synchronize()  # GPU work queued inside the block belongs to it
        self.wall += time.perf_counter() - self._w
        self.cpu += time.process_time() - self._c


def row_tokens(ex, n: int, has_bos: bool) -> int:
    return n + int(has_bos) + len(ex.input_ids)


# --- (a) PEFT, cell by cell ----------------------------------------------------------------------------


def peft_batch(examples, pad_id: int, device="cpu"):
    """Right-padded input_ids / attention_mask / labels (HF convention: the model shifts labels)."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for r, e in enumerate(examples):
        ids[r, :len(e.input_ids)] = torch.tensor(e.input_ids)
        mask[r, :len(e.input_ids)] = 1
        labels[r, :len(e.labels)] = torch.tensor(e.labels)
    return ids.to(device), mask.to(device), labels.to(device)


def peft_eval(model, examples, pad_id: int, batch_size: int = 16) -> float:
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(examples), batch_size):
            ids, mask, labels = peft_batch(examples[i:i + batch_size], pad_id, model.device)
            targets = int((labels[:, 1:] != -100).sum())
            total += model(input_ids=ids, attention_mask=mask, labels=labels).loss.item() * targets
            count += targets
    return total / max(count, 1)


def run_peft(s: Settings, lm, task, inits, train: Clock, evals: Clock) -> dict:
    from peft import PromptTuningConfig, TaskType, get_peft_model

    from softeval.engine.loop import StepSampler, lr_factor

    pad = lm.info.pad_token_id
    if lm.info.bos_token_id is not None:
        # PEFT's layout is [soft][BOS][input]; the examples carry no BOS, so add it as PEFT users' tokenizers do
        add_bos = lambda exs: [type(e)([lm.info.bos_token_id] + e.input_ids, [-100] + e.labels) for e in exs]  # noqa: E731
    else:
        add_bos = lambda exs: exs  # noqa: E731
    train_ex, eval_ex = add_bos(task.train), add_bos(task.eval)
    results = {}
    for (n, seed), init in inits.items():
        if n == 0:
            with evals:
                results[(n, seed)] = {"initial": peft_eval(lm.model, eval_ex, pad), "final": None}
            continue
        model = get_peft_model(lm.model, PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=n))
        embedding = model.prompt_encoder["default"].embedding
        with torch.no_grad():
            embedding.weight.copy_(init)  # the same initial prompt as softeval's
        optimizer = torch.optim.AdamW(embedding.parameters(), lr=s.lr, weight_decay=0.0, betas=(0.9, 0.999), eps=1e-8)
        sampler = StepSampler(len(train_ex), s.batch_size, seed)
        with evals:
            initial = peft_eval(model, eval_ex, pad)
        with train:
            for step in range(s.steps):
                ids, mask, labels = peft_batch([train_ex[j] for j in sampler.indices(step)], pad, s.device)
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(embedding.parameters(), 1.0)
                for g in optimizer.param_groups:
                    g["lr"] = s.lr * lr_factor(step, s.warmup_steps, s.steps, "cosine")
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        with evals:
            final = peft_eval(model, eval_ex, pad)
        results[(n, seed)] = {"initial": initial, "final": final, "last_train_loss": loss.item()}
        del model, optimizer  # prompt tuning adds no modules to the base model: the next cell wraps it afresh
    return results


# --- (b) softeval cell by cell and (c) lanes -------------------------------------------------------------


def run_softeval(s: Settings, lm, task, inits, groups: list[list[tuple[int, int]]], train: Clock,
                 evals: Clock) -> dict:
    from softeval.engine.evaluate import evaluate_prompt
    from softeval.engine.prompt import SoftPrompt
    import tempfile

    from softeval.config import build_config
    from softeval.engine.loop import loop_context, make_lane, train_step
    from softeval.store import RunFolder
    from softeval.train import TrainConfig

    ctx = loop_context(lm, s.precision, "after_bos")
    base = build_config(TrainConfig, flags=dict(max_steps=s.steps, batch_size=s.batch_size, lr=s.lr,
                                                warmup_steps=s.warmup_steps, eval_every=0, checkpoint_every=0,
                                                show_progress=False))
    scratch = Path(tempfile.mkdtemp(prefix="sweep_speed-"))
    evaluate = lambda prompt: evaluate_prompt(lm.model, prompt, task.eval, bos_id=ctx.bos_id, pad_id=ctx.pad_id,  # noqa: E731
                                              batch_size=16, precision=ctx.precision).loss
    results = {}
    for group in groups:
        trained = []  # (cell, lane)
        for n, seed in group:
            if n == 0:
                with evals:
                    results[(n, seed)] = {"initial": evaluate(None), "final": None}
                continue
            cfg = replace(base, num_virtual_tokens=n, seed=seed).lane_config()
            folder = RunFolder(scratch / f"n{n}-s{seed}-{len(results)}")
            trained.append(((n, seed), make_lane(f"n{n}-s{seed}", SoftPrompt(inits[(n, seed)]).to(ctx.device), task, cfg,
                                                 folder)))
        lanes = [lane for _, lane in trained]
        if not lanes:
            continue
        with evals:
            initial = [evaluate(lane.prompt) for lane in lanes]
        last_loss = {}
        with train:  # what train_lanes does per step, without its evaluations, checkpoints and progress bar
            while any(lane.active for lane in lanes):
                last_loss.update(train_step(ctx, lanes))
        with evals:
            for (cell, lane), first in zip(trained, initial):
                results[cell] = {"initial": first, "final": evaluate(lane.prompt), "last_train_loss": last_loss[lane.name]}
    return results


# --- main ---------------------------------------------------------------------------------------------


def main() -> None:
    s = parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress lines show up when tee'd to a file
    import transformers

    from softeval.engine.models import load_model
    from softeval.engine.packing import CellShape, choose_max_batch_tokens, plan_lane_groups
    from softeval.engine.prompt import initial_embeddings
    from softeval.tasks import TaskConfig, build_task
    from softeval.engine.loop import loop_context

    if s.threads:
        torch.set_num_threads(s.threads)
    peak_fp32 = matmul_peak(torch.float32, s.peak_size, device=s.device)
    peak_bf16 = matmul_peak(torch.bfloat16, s.peak_size, device=s.device)
    # wall peaks for MFU by wall time; CPU-second peaks for MFU by CPU time, which a busy shared machine
    # disturbs much less (with one thread, CPU seconds are the seconds the core worked for us)
    peak = {"fp32": peak_fp32.flops_per_wall_s, "bf16": peak_bf16.flops_per_wall_s,
            "fp32_per_cpu_s": peak_fp32.flops_per_cpu_s, "bf16_per_cpu_s": peak_bf16.flops_per_cpu_s}
    lm = load_model(s.model, device=s.device, dtype=s.dtype, show_progress=False)
    # PEFT's model: fp32 on a CPU (as before), on a GPU the same bf16 weights a PEFT user would load
    peft_dtype = lm.info.dtype if s.device == "cuda" else "float32"
    lm32 = lm if lm.info.dtype == peft_dtype else load_model(s.model, device=s.device, dtype=peft_dtype,
                                                             show_progress=False)
    task = build_task(TaskConfig(name="autoregressive", num_train=s.num_train, num_eval=s.num_eval,
                                 context_tokens=s.context_tokens, target_tokens=s.target_tokens), lm.tokenizer)
    has_bos = lm.info.bos_token_id is not None
    cells = [(n, seed) for n in s.tokens for seed in range(s.seeds)]
    # The same initial prompt for every method: softeval's default init (sampled vocabulary embeddings).
    inits = {(n, seed): initial_embeddings("vocab", n, lm32.model.get_input_embeddings(), seed,
                                           tokenizer=lm.tokenizer).float().cpu() for n, seed in cells}

    # work counted for tokens/s and MFU (see the module docstring)
    from softeval.engine.loop import StepSampler

    tokens = targets = 0
    for n, seed in cells:
        if n == 0:
            continue
        sampler = StepSampler(len(task.train), s.batch_size, seed)
        for step in range(s.steps):
            rows = [task.train[j] for j in sampler.indices(step)]
            tokens += sum(row_tokens(e, n, has_bos) for e in rows)
            targets += sum(e.num_targets for e in rows)
    emb = lm32.model.get_input_embeddings().weight
    params = sum(p.numel() for p in lm32.model.parameters()) - emb.numel()
    if not lm32.model.config.tie_word_embeddings:
        params -= lm32.model.get_output_embeddings().weight.numel()
    model_flops = 4 * params * tokens + 4 * emb.shape[0] * emb.shape[1] * targets

    longest = max(len(e.input_ids) for e in task.train) + int(has_bos)
    shapes = [CellShape(n, s.batch_size, longest) for n, _ in cells]
    budget = s.max_batch_tokens or choose_max_batch_tokens(lm.model)
    lane_groups = [[cells[i] for i in g] for g in plan_lane_groups(shapes, budget)]

    print(f"sweep: n ∈ {s.tokens} × {s.seeds} seeds × {s.steps} steps, batch {s.batch_size}, model {s.model}, "
          f"threads {torch.get_num_threads()}, device {s.device}, softeval precision "
          f"{loop_context(lm, s.precision, 'after_bos').precision} / weights {lm.info.dtype}; PEFT {lm32.info.dtype}")
    print(f"matmul peak: fp32 {peak['fp32'] / 1e9:.1f} GFLOP/s, bf16 {peak['bf16'] / 1e9:.1f} GFLOP/s (per CPU second: "
          f"{peak['fp32_per_cpu_s'] / 1e9:.1f} / {peak['bf16_per_cpu_s'] / 1e9:.1f}); "
          f"{tokens} training tokens, {model_flops / 1e12:.2f} model TFLOP; lane groups {[len(g) for g in lane_groups]}"
          f" (budget {budget} tokens)")
    load = lambda: list(__import__("os").getloadavg())  # noqa: E731

    # --- run the methods
    report = {}
    for method in s.methods:
        train, evals, load_before = Clock(), Clock(), load()
        if method == "peft":
            results = run_peft(s, lm32, task, inits, train, evals)
        elif method == "softeval":
            results = run_softeval(s, lm, task, inits, [[c] for c in cells], train, evals)
        else:
            results = run_softeval(s, lm, task, inits, lane_groups, train, evals)
        wall = train.wall + evals.wall
        report[method] = {
            "wall_s": wall, "cpu_s": train.cpu + evals.cpu, "train_wall_s": train.wall, "train_cpu_s": train.cpu,
            "eval_wall_s": evals.wall, "tokens_per_s": tokens / max(train.wall, 1e-9),
            "mfu_fp32": model_flops / max(train.wall, 1e-9) / peak["fp32"],
            "mfu_bf16": model_flops / max(train.wall, 1e-9) / peak["bf16"],
            "mfu_bf16_by_cpu_time": model_flops / max(train.cpu, 1e-9) / peak["bf16_per_cpu_s"],
            "mfu_fp32_by_cpu_time": model_flops / max(train.cpu, 1e-9) / peak["fp32_per_cpu_s"],
            "load_avg_before": load_before, "load_avg_after": load(),
            "cells": {f"n{n}-s{seed}": r for (n, seed), r in results.items()},
        }
        r = report[method]
        print(f"({'abc'[METHODS.index(method)]}) {method:9s} wall {wall:8.1f}s (train {train.wall:8.1f}s, "
              f"eval {evals.wall:6.1f}s, cpu {r['cpu_s']:8.1f}s)  {r['tokens_per_s']:7.0f} tok/s  "
              f"MFU {100 * r['mfu_fp32']:5.1f}% of fp32 peak, {100 * r['mfu_bf16']:5.1f}% of bf16 peak "
              f"(by CPU time: {100 * r['mfu_fp32_by_cpu_time']:5.1f}% / {100 * r['mfu_bf16_by_cpu_time']:5.1f}%)")

    # --- compare
    if "peft" in report:
        for method in ("softeval", "lanes"):
            if method in report:
                print(f"speed-up of {method} over peft: {report['peft']['wall_s'] / report[method]['wall_s']:.2f}x wall,"
                      f" {report['peft']['train_wall_s'] / report[method]['train_wall_s']:.2f}x training,"
                      f" {report['peft']['cpu_s'] / report[method]['cpu_s']:.2f}x CPU time")
    agreement = {}
    names = list(report)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            diffs = [abs(report[a]["cells"][k]["final"] - report[b]["cells"][k]["final"])
                     for k in report[a]["cells"] if report[a]["cells"][k]["final"] is not None]
            if diffs:
                agreement[f"{a}-{b}"] = {"max_abs_final_loss_diff": max(diffs), "mean_abs": sum(diffs) / len(diffs)}
                print(f"final held-out loss, {a} vs {b}: max |diff| {max(diffs):.4f}, mean {sum(diffs) / len(diffs):.4f}"
                      f" over {len(diffs)} cells")
    out = {
        "config": asdict(s), "resolved": {"budget_tokens": budget, "lane_groups": lane_groups,
                                          "softeval_precision": loop_context(lm, s.precision, "after_bos").precision,
                                          "softeval_weights_dtype": lm.info.dtype, "threads": torch.get_num_threads(),
                                          "attn_implementation": lm.model.config._attn_implementation},
        "work": {"training_tokens": tokens, "targets": targets, "non_embedding_params": params, "model_flops": model_flops,
                 "n0_cells": "evaluated once, no training; their eval time is in each method's wall time"},
        "peak_flops": peak, "methods": report, "agreement": agreement,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "peft": __import__("peft").__version__ if "peft" in s.methods else None,
                     "python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                     "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
    }
    Path(s.out).parent.mkdir(parents=True, exist_ok=True)
    Path(s.out).write_text(json.dumps(out, indent=2, default=str))
    print(f"wrote {s.out}")
    if "peft" in report and "lanes" in report:
        x = report["peft"]["wall_s"] / report["lanes"]["wall_s"]
        print(f"TARGET sweep_lanes_speedup_vs_peft {x:.2f} need >= {NEED_LANES_SPEEDUP:g} "
              f"{'PASS' if x >= NEED_LANES_SPEEDUP else 'FAIL'}")


if __name__ == "__main__":
    main()
