"""Fair benchmark evaluation of base models with soft-prompt tuning (zero-shot, k-shot, soft).

    from softeval.bench import BenchConfig, run
    result = run(BenchConfig(models=["gemma3-270m"], tasks=["arc_easy"], data_dir="data", out="runs/bench"))

Everything lm-eval specific sits in `lm_adapter.py` (the model seam) and `harness.py` (task objects).
"""

from __future__ import annotations


def __getattr__(name):
    # Lazy: importing softeval.bench must not import lm-eval/torch for users who only parse answers.
    if name in ("BenchConfig", "BenchResult", "run"):
        from softeval.bench import runner

        return getattr(runner, name)
    raise AttributeError(name)


__all__ = ["BenchConfig", "BenchResult", "run"]
