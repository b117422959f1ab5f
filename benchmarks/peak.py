"""The peak FLOP/s of a square matmul on this machine, the one yardstick the speed scripts share.

A speed figure (MFU, cells per hour) only means something against a peak measured in the same run, on the
same threads and the same load, so each script calls `matmul_peak` at run time rather than quoting a number.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Peak:
    flops_per_wall_s: float
    flops_per_cpu_s: float  # per process-CPU second: less sensitive to other users of a shared machine


def matmul_peak(dtype=None, size: int = 1024, repeats: int = 5, device: str = "cpu") -> Peak:
    """Best of `repeats` size × size matmuls (`dtype` defaults to torch.float32), after one warm-up."""
    import torch  # here, so that importing a script stays light (--help)

    dtype = torch.float32 if dtype is None else dtype
    cuda = torch.device(device).type == "cuda"
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    a @ b  # warm-up (and cuBLAS / oneDNN setup)
    if cuda:
        torch.cuda.synchronize(device)
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        a @ b
        if cuda:
            torch.cuda.synchronize(device)
        best_wall, best_cpu = min(best_wall, time.perf_counter() - w), min(best_cpu, time.process_time() - c)
    flops = 2 * size**3
    return Peak(flops / best_wall, flops / max(best_cpu, 1e-9))
