"""Training speed of one soft prompt: softeval vs PEFT prompt tuning, side by side in one run.

    python benchmarks/train_speed.py                 # both embedded models, fp32 and bf16 (~10 min on 2 cores)
    python benchmarks/train_speed.py --quick         # SmolLM2 only, fewer steps
    python benchmarks/train_speed.py --models smollm2-135m-instruct --precisions bf16 --steps 5
    python benchmarks/train_speed.py --device cuda --precisions bf16   # GPU: bf16 weights, CUDA peak and memory

Setting (issue 2): batch 8, 64 context + 32 target tokens, n = 16, AdamW, same data and same
autocast for both. PEFT runs the way a PEFT user runs it: `model(input_ids, attention_mask, labels=…)`,
which computes logits (and cross-entropy) at every position; softeval computes logits only at the 32
target positions. Each (model, implementation, precision) runs in its own subprocess so its peak RSS is
its own.

The matmul peak is measured in the same process as the steps (so the same threads and the same
machine state), once before and once after them: bf16 and fp32 square matmuls of several sizes, best
of several repeats, the maximum taken. MFU uses the peak of the step's precision (bf16 for bf16). On
a CPU the process CPU time is reported too: with `--threads 1` it is what the step cost this core,
which other users of a shared machine disturb little. The run ends with TARGET lines (issue #12).

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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peak import matmul_peak  # noqa: E402  (benchmarks/ is not a package)

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
PEAK_SIZES = [1024, 2048, 4096]
PEAK_REPEATS = 3
NEED_MFU_CPU = 50                   # % of the bf16 matmul peak, softeval bf16 step on a CPU
NEED_MFU_GPU = 40                   # % of the bf16 matmul peak on a GPU
NEED_SPEEDUP = {"smollm2-135m-instruct": 1.5, "gemma3-270m": 2.0}  # softeval vs PEFT, same precision


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def synchronize(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def matmul_peaks(device: str, sizes: list[int], repeats: int) -> dict[str, float]:
    """Best TFLOP/s of square matmuls over `sizes` (wall), and per process-CPU second on a CPU."""
    import torch

    peaks = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        runs = [matmul_peak(dtype, size, repeats, device) for size in sizes]
        peaks[name] = max(r.flops_per_wall_s for r in runs) / 1e12
        if device == "cpu":
            peaks[f"{name}_per_cpu_s"] = max(r.flops_per_cpu_s for r in runs) / 1e12
    return peaks


def build_batches(lm, steps: int, batch_size: int, context_tokens: int, target_tokens: int):
    """Real text windows: `context_tokens` of context, then `target_tokens` scored next-token targets."""
    from softeval.tasks import TaskConfig, build_task

    cfg = TaskConfig(name="autoregressive", num_train=batch_size * steps, num_eval=1,
                     context_tokens=context_tokens, target_tokens=target_tokens)
    task = build_task(cfg, lm.tokenizer)
    return [task.train[i * batch_size:(i + 1) * batch_size] for i in range(steps)]


def model_flops_per_step(lm, rows: int, seq_len: int, targets: int) -> float:
    emb = lm.model.get_input_embeddings().weight
    non_embedding = sum(p.numel() for p in lm.model.parameters()) - emb.numel()
    return 4 * non_embedding * rows * seq_len + 4 * emb.shape[0] * emb.shape[1] * targets


def run_one(model_name: str, impl: str, precision: str, a: argparse.Namespace) -> dict:
    """Time one configuration in this process, with the matmul peak measured before and after the steps."""
    import torch

    from softeval.engine.batching import collate
    from softeval.engine.loop import resolve_precision
    from softeval.engine.forward import assemble_prompt_rows, autocast_context, target_losses
    from softeval.engine.models import load_model
    from softeval.engine.prompt import SoftPrompt, initial_embeddings

    if a.threads:
        torch.set_num_threads(a.threads)
    sizes = [int(x) for x in a.peak_sizes.split(",")]
    peak_before = matmul_peaks(a.device, sizes, a.peak_repeats)
    torch.manual_seed(0)
    device = torch.device(a.device)
    if impl == "softeval":
        # softeval's fast path for this precision: bf16 means the frozen model's weights in bf16 (`--dtype
        # bfloat16`: cast once at load, no per-step autocast weight casts; eager attention on a CPU), the
        # prompt and its optimizer in fp32; precision auto then adds no autocast
        dtype = "bfloat16" if precision == "bf16" else "float32"
        lm = load_model(model_name, device=a.device, dtype=dtype, show_progress=False)
        step_precision = resolve_precision("auto" if precision == "bf16" else precision, device,
                                           lm.model.get_input_embeddings().weight.dtype)
    else:
        # PEFT as its users run it: fp32 weights + autocast on a CPU, bf16 weights on a GPU
        dtype = "bfloat16" if (a.device == "cuda" and precision == "bf16") else "float32"
        lm = load_model(model_name, device=a.device, dtype=dtype, show_progress=False)
        step_precision = precision if dtype == "float32" else "fp32"
    batches = build_batches(lm, a.steps, a.batch_size, a.context_tokens, a.target_tokens)
    rss_loaded = peak_rss_mb()
    if a.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        mem_loaded = torch.cuda.max_memory_allocated() / 2**20
    bos = lm.info.bos_token_id

    if impl == "softeval" and a.compile:
        lm.model.model = torch.compile(lm.model.model)  # the decoder; target_hidden calls it as model.base_model
    if impl == "softeval":
        init = initial_embeddings("vocab", NUM_VIRTUAL_TOKENS, lm.model.get_input_embeddings(), 0, lm.tokenizer)
        prompt = SoftPrompt(init.float())
        opt = torch.optim.AdamW(prompt.parameters(), lr=LR)

        def step(examples):
            batch = collate(examples, NUM_VIRTUAL_TOKENS, bos, lm.info.pad_token_id).to(device)
            with autocast_context(device, step_precision):
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
            ids = torch.tensor([prefix + e.input_ids for e in examples], device=device)  # equal lengths: no padding
            labels = torch.tensor([[-100] * len(prefix) + e.labels for e in examples], device=device)
            # PEFT's labels are the HF shifted convention too: labels[i] is scored from position i-1.
            with autocast_context(device, step_precision):
                loss = peft_model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss.item()

    seq_len = NUM_VIRTUAL_TOKENS + (1 if bos is not None else 0) + a.context_tokens + a.target_tokens
    losses, walls, cpus = [], [], []
    for i, examples in enumerate(batches):
        synchronize(a.device)
        w, c = time.perf_counter(), time.process_time()
        losses.append(step(examples))  # .item() waits for the GPU
        if i >= WARMUP_STEPS:
            walls.append(time.perf_counter() - w)
            cpus.append(time.process_time() - c)
    peak_after = matmul_peaks(a.device, sizes, a.peak_repeats)
    peak = {k: max(peak_before[k], peak_after[k]) for k in peak_before}
    step_s, step_cpu_s = sum(walls) / len(walls), sum(cpus) / len(cpus)
    tokens = a.batch_size * seq_len
    flops = model_flops_per_step(lm, a.batch_size, seq_len, a.batch_size * a.target_tokens)
    peak_key = "bf16" if precision == "bf16" else "fp32"
    row = {
        "model": model_name, "impl": impl, "precision": precision, "device": a.device,
        "weights_dtype": str(lm.model.get_input_embeddings().weight.dtype).replace("torch.", ""),
        "step_precision": step_precision, "compiled": bool(a.compile and impl == "softeval"),
        "attn_implementation": lm.model.config._attn_implementation,
        "step_seconds": step_s, "step_cpu_seconds": step_cpu_s, "threads": torch.get_num_threads(),
        "tokens_per_second": tokens / step_s, "model_tflops_per_second": flops / step_s / 1e12,
        "mfu": flops / step_s / 1e12 / peak[peak_key],
        "matmul_peak_tflops": peak, "matmul_peak_before": peak_before, "matmul_peak_after": peak_after,
        "first_loss": losses[0], "last_loss": losses[-1], "peak_rss_mb": peak_rss_mb(),
        "rss_after_load_mb": rss_loaded, "timed_steps": len(walls),
    }
    if a.device == "cpu":
        row["mfu_by_cpu_time"] = flops / step_cpu_s / 1e12 / peak[f"{peak_key}_per_cpu_s"]
    else:
        row["cuda_peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
        row["cuda_memory_after_load_mb"] = mem_loaded
    return row


def target_lines(rows: list[dict], device: str) -> list[str]:
    """`TARGET name value need >= x PASS|FAIL` for the issue's goals."""
    lines = []
    for row in rows:
        if row["impl"] != "softeval":
            continue
        model, prec = row["model"], row["precision"]
        if prec == "bf16":
            name, need = (f"train_mfu_gpu_{model}", NEED_MFU_GPU) if device == "cuda" else (f"train_mfu_bf16_{model}", NEED_MFU_CPU)
            pct = 100 * row["mfu"]
            lines.append(f"TARGET {name} {pct:.1f} need >= {need} {'PASS' if pct >= need else 'FAIL'}")
        peft = next((r for r in rows if r["model"] == model and r["precision"] == prec and r["impl"] == "peft"), None)
        if peft is not None:
            x = row["tokens_per_second"] / peft["tokens_per_second"]
            need = NEED_SPEEDUP.get(model, 1.5)
            lines.append(f"TARGET train_speedup_vs_peft_{prec}_{model} {x:.2f} need >= {need:g} "
                         f"{'PASS' if x >= need else 'FAIL'}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    parser.add_argument("--impls", default=",".join(IMPLEMENTATIONS))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--steps", type=int, default=WARMUP_STEPS + TIMED_STEPS, help="steps per configuration")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--context-tokens", type=int, default=CONTEXT_TOKENS)
    parser.add_argument("--target-tokens", type=int, default=TARGET_TOKENS)
    parser.add_argument("--peak-sizes", default=",".join(map(str, PEAK_SIZES)), help="square matmul sizes for the peak")
    parser.add_argument("--peak-repeats", type=int, default=PEAK_REPEATS)
    parser.add_argument("--compile", action="store_true",
                        help="softeval only: torch.compile the decoder (opt-in: ~80 CPU-s to compile SmolLM2 on one "
                             "core for ~10 %% per step; the first, compiling step is a warm-up step)")
    parser.add_argument("--quick", action="store_true", help="SmolLM2 only, 5 steps")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: model,impl,precision
    args = parser.parse_args()
    if args.quick:
        args.models, args.steps = "smollm2-135m-instruct", WARMUP_STEPS + 3
    if args.steps <= WARMUP_STEPS:
        parser.error(f"--steps must be > {WARMUP_STEPS} (the warm-up steps are not timed)")

    if args.one:
        model, impl, precision = args.one.split(",")
        print(json.dumps(run_one(model, impl, precision, args)))
        return

    import torch
    import transformers

    load_start = os.getloadavg()
    print(f"load average at start: {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}", flush=True)
    models = args.models.split(",")
    forwarded = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                 if k in ("device", "steps", "batch_size", "context_tokens", "target_tokens", "peak_sizes",
                          "peak_repeats") or (k == "threads" and v)] + (["--compile"] if args.compile else [])
    rows = []
    for model in models:
        for precision in args.precisions.split(","):
            for impl in args.impls.split(","):
                proc = subprocess.run([sys.executable, __file__, "--one", f"{model},{impl},{precision}", *forwarded],
                                      capture_output=True, text=True,
                                      env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
                if proc.returncode != 0:
                    sys.exit(f"{model}/{impl}/{precision} failed:\n{proc.stderr[-2000:]}")
                rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
                print(f"  done {model} {impl} {precision}: {rows[-1]['step_seconds']:.2f} s/step", flush=True)
    load_end = os.getloadavg()

    peaks = {k: max(r["matmul_peak_tflops"][k] for r in rows) for k in rows[0]["matmul_peak_tflops"]}
    print(f"matmul peak (max over runs, before and after each): fp32 {peaks['fp32']:.2f} TFLOP/s, "
          f"bf16 {peaks['bf16']:.2f} TFLOP/s ({args.device}, {os.cpu_count()} CPUs, torch threads {rows[0]['threads']})")
    memory = "GPU peak MB" if args.device == "cuda" else "peak RSS MB"
    print(f"{'model':<22} {'prec':<5} {'impl':<9} {'weights':<8} {'attn':<6} {'step s':>7} {'cpu s':>7} {'tok/s':>8} "
          f"{'MFU':>6} {'MFU cpu':>7} {memory:>11} {'loss first→last':>17} {'speed-up':>8}")
    for row in rows:
        peft = next((r for r in rows if r["model"] == row["model"] and r["precision"] == row["precision"]
                     and r["impl"] == "peft"), None)
        speedup = f"{row['tokens_per_second'] / peft['tokens_per_second']:7.2f}×" if peft else "      —"
        mem = row.get("cuda_peak_memory_mb", row["peak_rss_mb"])
        mfu_cpu = f"{row['mfu_by_cpu_time']:7.1%}" if "mfu_by_cpu_time" in row else "      —"
        print(f"{row['model']:<22} {row['precision']:<5} {row['impl']:<9} {row['weights_dtype'][:8]:<8} "
              f"{row['attn_implementation'][:6]:<6} {row['step_seconds']:>7.2f} {row['step_cpu_seconds']:>7.2f} "
              f"{row['tokens_per_second']:>8.0f} {row['mfu']:>6.1%} {mfu_cpu} {mem:>11.0f} "
              f"{row['first_loss']:>8.3f}→{row['last_loss']:<8.3f} {speedup}")
    print(f"load average at end: {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}")
    report = {
        "config": {"batch_size": args.batch_size, "context_tokens": args.context_tokens,
                   "target_tokens": args.target_tokens, "num_virtual_tokens": NUM_VIRTUAL_TOKENS, "steps": args.steps,
                   "warmup_steps": WARMUP_STEPS, "lr": LR, "models": models, "precisions": args.precisions.split(","),
                   "device": args.device, "threads": args.threads, "peak_sizes": args.peak_sizes,
                   "peak_repeats": args.peak_repeats},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                     "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
        "load_average": {"start": list(load_start), "end": list(load_end)},
        "matmul_peak_tflops": peaks,
        "results": rows,
    }
    print(json.dumps(report))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
    for line in target_lines(rows, args.device):
        print(line)


if __name__ == "__main__":
    main()
