"""Peak memory of one training step with long targets: full (N, V) logits vs chunked cross-entropy.

    python benchmarks/ce_memory.py                          # Gemma-3-270M, batch 8 × (16 soft + 32 context + 256 targets)
    python benchmarks/ce_memory.py --model smollm2-135m-instruct --target-tokens 64 --batch-size 2   # a quick look

GSM8K worked solutions give ~100-300 scored tokens per example; with Gemma-3's 262k vocabulary the
plain path holds the (N, V) logits in fp32, their softmax and its gradient (2 GB each for N = 2,048).
Each mode runs one forward + backward in its own subprocess, so `ru_maxrss` (peak resident memory) is
that mode's own; the figure compared is the step's growth over the loaded model (the model is the same
for both). On a GPU (`--device cuda`) the figure is torch.cuda.max_memory_allocated over the loaded model.

Threshold: by softeval.engine.packing's estimate (activations 4 B × layers × 4 × (hidden + intermediate) per
token, logits 3 × 4 B × V per scored token) the logits are ~75 % of this step's memory on Gemma-3, so
removing them should leave ≲ 0.35 of it; `need <= 0.6` leaves room for allocator slack while still
failing if the (N, V) tensors are back.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

MODEL = "gemma3-270m"
BATCH_SIZE = 8
NUM_VIRTUAL_TOKENS = 16
CONTEXT_TOKENS = 32
TARGET_TOKENS = 256
NEED_RATIO = 0.6


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_one(a: argparse.Namespace, mode: str) -> dict:
    import torch

    from softeval.engine import forward
    from softeval.engine.batching import collate
    from softeval.engine.loop import resolve_precision
    from softeval.engine.models import load_model
    from softeval.engine.prompt import SoftPrompt, initial_embeddings
    from softeval.tasks import TaskConfig, build_task

    # full: never chunk (the plain (N, V) logits path); chunked: always (chunks of chunked_ce.CHUNK_ELEMENTS)
    forward.CHUNK_ELEMENTS = 1 << 62 if mode == "full" else 0
    lm = load_model(a.model, device=a.device, dtype="auto", show_progress=False)
    device = lm.model.get_input_embeddings().weight.device
    precision = resolve_precision(a.precision, device, lm.model.get_input_embeddings().weight.dtype)
    task = build_task(TaskConfig(name="autoregressive", num_train=a.batch_size, num_eval=1,
                                 context_tokens=a.context_tokens, target_tokens=a.target_tokens), lm.tokenizer)
    prompt = SoftPrompt(initial_embeddings("vocab", NUM_VIRTUAL_TOKENS, lm.model.get_input_embeddings(), 0,
                                           lm.tokenizer).float())
    batch = collate(task.train, NUM_VIRTUAL_TOKENS, lm.info.bos_token_id, lm.info.pad_token_id).to(device)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        loaded = torch.cuda.max_memory_allocated() / 2**20
    else:
        loaded = rss_mb()
    t0 = time.perf_counter()
    with forward.autocast_context(device, precision):
        rows = forward.assemble_prompt_rows([prompt], batch, lm.info.hidden_size)
        losses, _ = forward.target_losses(lm.model, batch, rows)
    loss = losses.mean()
    loss.backward()
    grad_norm = float(prompt.embeddings.grad.norm())
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else rss_mb()
    return {"mode": mode, "loss": float(loss), "grad_norm": grad_norm, "targets": int(losses.numel()),
            "precision": precision, "loaded_mb": loaded, "peak_mb": peak, "step_mb": peak - loaded,
            "seconds": time.perf_counter() - t0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=MODEL)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    p.add_argument("--context-tokens", type=int, default=CONTEXT_TOKENS)
    p.add_argument("--target-tokens", type=int, default=TARGET_TOKENS)
    p.add_argument("--out", default=None, help="also write the JSON here")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: full | chunked
    a = p.parse_args()
    if a.one:
        print(json.dumps(run_one(a, a.one)))
        return
    forwarded = [f"--model={a.model}", f"--device={a.device}", f"--precision={a.precision}",
                 f"--batch-size={a.batch_size}", f"--context-tokens={a.context_tokens}",
                 f"--target-tokens={a.target_tokens}"]
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    rows = {}
    for mode in ("full", "chunked"):
        proc = subprocess.run([sys.executable, __file__, "--one", mode, *forwarded], capture_output=True, text=True,
                              env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
        if proc.returncode != 0:
            sys.exit(f"{mode} failed:\n{proc.stderr[-2000:]}")
        rows[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
        r = rows[mode]
        print(f"{mode:8s} {r['targets']} targets, {r['precision']}: model loaded {r['loaded_mb']:.0f} MB, peak "
              f"{r['peak_mb']:.0f} MB, step {r['step_mb']:.0f} MB, loss {r['loss']:.6f}, prompt grad norm "
              f"{r['grad_norm']:.6f}, {r['seconds']:.1f} s", flush=True)
    ratio = rows["chunked"]["step_mb"] / rows["full"]["step_mb"]
    same = abs(rows["chunked"]["loss"] - rows["full"]["loss"]) <= 1e-3 * max(1.0, abs(rows["full"]["loss"]))
    print(json.dumps({"config": vars(a), "results": rows, "ratio": ratio, "same_loss": same}))
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"config": vars(a), "results": rows, "ratio": ratio}, f, indent=2)
    model = a.model.replace("gemma3-270m", "gemma").replace("smollm2-135m-instruct", "smollm2")
    print(f"TARGET ce_peak_memory_ratio_{model} {ratio:.2f} need <= {NEED_RATIO} "
          f"{'PASS' if ratio <= NEED_RATIO and same else 'FAIL'}")


if __name__ == "__main__":
    main()
