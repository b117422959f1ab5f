"""Training speed of one soft prompt: softeval vs PEFT prompt tuning, side by side in one run.

    python benchmarks/train_speed.py                 # both embedded models, fp32 and bf16 (~10 min on 2 cores)
    python benchmarks/train_speed.py --quick         # SmolLM2 only, fewer steps
    python benchmarks/train_speed.py --models smollm2-135m-instruct --precisions bf16 --steps 5

Setting (issue 2): batch 8, 64 context + 32 target tokens, n = 16, AdamW, same data and same
autocast for both. PEFT runs the way a PEFT user runs it: `model(input_ids, attention_mask, labels=…)`,
which computes logits (and cross-entropy) at every position; softeval computes logits only at the 32
target positions. Each (model, implementation, precision) runs in its own subprocess so its peak RSS is
its own.

MFU convention: model FLOPs per step = 4 × non-embedding parameters × attended tokens (forward 2N +
backward through activations 2N; the frozen weights get no gradient) + 4 × V × D × scored tokens for
the output layer. Work PEFT spends on logits at unscored positions is not "model FLOPs". The peak is
measured here with large square matmuls in the same precision.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

# --- settings ------------------------------------------------------------------------------------
MODELS = ["smollm2-135m-instruct", "gemma3-270m"]
PRECISIONS = ["fp32", "bf16"]
IMPLEMENTATIONS = ["peft", "softeval"]
BATCH_SIZE = 8
CONTEXT_TOKENS = 64
TARGET_TOKENS = 32
NUM_VIRTUAL_TOKENS = 16
WARMUP_STEPS = 2
TIMED_STEPS = 8
LR = 0.1


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def matmul_peak_tflops(dtype_name: str, size: int = 2048, repeats: int = 10) -> float:
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e12


def build_batches(lm, steps: int):
    """Real text windows: 64 context tokens, then 32 scored next-token targets."""
    from softeval.tasks import TaskConfig, build_task

    cfg = TaskConfig(name="autoregressive", num_train=BATCH_SIZE * steps, num_eval=1,
                     context_tokens=CONTEXT_TOKENS, target_tokens=TARGET_TOKENS)
    task = build_task(cfg, lm.tokenizer)
    return [task.train[i * BATCH_SIZE:(i + 1) * BATCH_SIZE] for i in range(steps)]


def model_flops_per_step(lm, rows: int, seq_len: int, targets: int) -> float:
    emb = lm.model.get_input_embeddings().weight
    non_embedding = sum(p.numel() for p in lm.model.parameters()) - emb.numel()
    return 4 * non_embedding * rows * seq_len + 4 * emb.shape[0] * emb.shape[1] * targets


def run_one(model_name: str, impl: str, precision: str, steps: int) -> dict:
    """Time one configuration in this process."""
    import torch

    from softeval.batching import collate
    from softeval.forward import assemble_prompt_rows, autocast_context, target_losses
    from softeval.models import load_model
    from softeval.prompt import SoftPrompt, initial_embeddings

    torch.manual_seed(0)
    lm = load_model(model_name, device="cpu", dtype="float32", show_progress=False)
    batches = build_batches(lm, steps)
    rss_loaded = peak_rss_mb()
    device = torch.device("cpu")
    bos = lm.info.bos_token_id

    if impl == "softeval":
        init = initial_embeddings("vocab", NUM_VIRTUAL_TOKENS, lm.model.get_input_embeddings(), 0, lm.tokenizer)
        prompt = SoftPrompt(init)
        opt = torch.optim.AdamW(prompt.parameters(), lr=LR)

        def step(examples):
            batch = collate(examples, NUM_VIRTUAL_TOKENS, bos, lm.info.pad_token_id)
            with autocast_context(device, precision):
                rows = assemble_prompt_rows([prompt], batch, lm.info.hidden_size)
                losses, _ = target_losses(lm.model, batch, rows)
            loss = losses.mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(prompt.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss.item()
    else:
        from peft import PromptTuningConfig, get_peft_model

        peft_model = get_peft_model(lm.model, PromptTuningConfig(task_type="CAUSAL_LM",
                                                                 num_virtual_tokens=NUM_VIRTUAL_TOKENS))
        params = [p for p in peft_model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=LR)
        prefix = [] if bos is None else [bos]

        def step(examples):
            ids = torch.tensor([prefix + e.input_ids for e in examples])  # equal lengths: no padding needed
            labels = torch.tensor([[-100] * len(prefix) + e.labels for e in examples])
            # PEFT's labels are the HF shifted convention too: labels[i] is scored from position i-1.
            with autocast_context(device, precision):
                loss = peft_model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss.item()

    seq_len = NUM_VIRTUAL_TOKENS + (1 if bos is not None else 0) + CONTEXT_TOKENS + TARGET_TOKENS
    losses, times = [], []
    for i, examples in enumerate(batches):
        t0 = time.perf_counter()
        losses.append(step(examples))
        if i >= WARMUP_STEPS:
            times.append(time.perf_counter() - t0)
    step_s = sum(times) / len(times)
    tokens = BATCH_SIZE * seq_len
    flops = model_flops_per_step(lm, BATCH_SIZE, seq_len, BATCH_SIZE * TARGET_TOKENS)
    return {
        "model": model_name, "impl": impl, "precision": precision, "step_seconds": step_s,
        "tokens_per_second": tokens / step_s, "model_tflops_per_second": flops / step_s / 1e12,
        "first_loss": losses[0], "last_loss": losses[-1], "peak_rss_mb": peak_rss_mb(),
        "rss_after_load_mb": rss_loaded, "timed_steps": len(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    parser.add_argument("--steps", type=int, default=WARMUP_STEPS + TIMED_STEPS, help="steps per configuration")
    parser.add_argument("--quick", action="store_true", help="SmolLM2 only, 5 steps")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: model,impl,precision
    args = parser.parse_args()
    if args.steps <= WARMUP_STEPS:
        parser.error(f"--steps must be > {WARMUP_STEPS} (the warm-up steps are not timed)")

    if args.one:
        model, impl, precision = args.one.split(",")
        print(json.dumps(run_one(model, impl, precision, args.steps)))
        return

    import torch
    import transformers

    models = ["smollm2-135m-instruct"] if args.quick else args.models.split(",")
    steps = WARMUP_STEPS + 3 if args.quick else args.steps
    peaks = {p: matmul_peak_tflops(p) for p in ("fp32", "bf16")}
    rows = []
    for model in models:
        for precision in args.precisions.split(","):
            for impl in IMPLEMENTATIONS:
                proc = subprocess.run([sys.executable, __file__, "--one", f"{model},{impl},{precision}",
                                       "--steps", str(steps)], capture_output=True, text=True,
                                      env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
                if proc.returncode != 0:
                    sys.exit(f"{model}/{impl}/{precision} failed:\n{proc.stderr[-2000:]}")
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                row["mfu"] = row["model_tflops_per_second"] / peaks[precision]
                rows.append(row)

    print(f"matmul peak: fp32 {peaks['fp32']:.2f} TFLOP/s, bf16 {peaks['bf16']:.2f} TFLOP/s "
          f"({os.cpu_count()} CPUs, torch threads {torch.get_num_threads()})")
    print(f"{'model':<22} {'prec':<5} {'impl':<9} {'step s':>7} {'tok/s':>8} {'MFU':>6} {'peak RSS MB':>11} "
          f"{'loss first→last':>17} {'speed-up':>8}")
    for row in rows:
        peft = next(r for r in rows if r["model"] == row["model"] and r["precision"] == row["precision"]
                    and r["impl"] == "peft")
        speedup = row["tokens_per_second"] / peft["tokens_per_second"]
        print(f"{row['model']:<22} {row['precision']:<5} {row['impl']:<9} {row['step_seconds']:>7.2f} "
              f"{row['tokens_per_second']:>8.0f} {row['mfu']:>6.1%} {row['peak_rss_mb']:>11.0f} "
              f"{row['first_loss']:>8.3f}→{row['last_loss']:<8.3f} {speedup:>7.2f}×")
    report = {
        "config": {"batch_size": BATCH_SIZE, "context_tokens": CONTEXT_TOKENS, "target_tokens": TARGET_TOKENS,
                   "num_virtual_tokens": NUM_VIRTUAL_TOKENS, "steps": steps, "warmup_steps": WARMUP_STEPS,
                   "lr": LR, "models": models, "precisions": args.precisions.split(",")},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                     "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
        "matmul_peak_tflops": peaks,
        "results": rows,
    }
    print(json.dumps(report))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
