"""Hand-made distance sweep and bench folders for the compare and stability tests (no model, no training).

A sweep folder gets the files `softeval distance` writes (config.json, model.json, eval_set.json,
cells/*/cell.json, optional metrics.jsonl) with losses chosen by the test; results.json is then produced by
`distance.summarize_sweep`, the function that writes it for real sweeps, so the fixtures follow the schema."""

from __future__ import annotations

import json
from pathlib import Path

from softeval.config import build_config
from softeval.distance.config import DistanceConfig, config_dict
from softeval.distance.plan import cell_name
from softeval.distance.summary import summarize_sweep


def make_sweep(folder: Path, losses: dict[tuple[int, int], float | None], *, model: str = "tiny-70m",
               num_parameters: int = 70_000_000, fingerprint: str = "f" * 64, reference: dict | None = None,
               curves: dict[tuple[int, int], list[float]] | None = None, **flags) -> dict:
    """losses: {(n, seed): loss}; None = a failed cell. Returns the written results.json content."""
    folder = Path(folder)
    tokens = sorted({n for n, _ in losses})
    seeds = max(s for _, s in losses) + 1
    settings = {"model": model, "tokens": tokens, "seeds": seeds, "bootstrap_samples": 200, "out": str(folder),
                "task": {"name": "repetition"}, **flags}
    if reference:
        settings["reference_model"] = reference["model"]
    cfg = build_config(DistanceConfig, flags=settings)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config_dict(cfg)))
    (folder / "model.json").write_text(json.dumps({"name": model, "weights_sha256": f"w-{model}",
                                                   "num_parameters": num_parameters}))
    (folder / "eval_set.json").write_text(json.dumps({"sha256": fingerprint, "num_examples": 4, "num_targets": 32,
                                                      "task_spec": {"task": "repetition"}}))
    if reference:
        (folder / "reference.json").write_text(json.dumps({**reference, "eval_fingerprint": fingerprint}))
    for (n, seed), loss in losses.items():
        cell_dir = folder / "cells" / cell_name(n, seed)
        cell_dir.mkdir(parents=True, exist_ok=True)
        done = loss is not None
        (cell_dir / "cell.json").write_text(json.dumps({
            "name": cell_name(n, seed), "n": n, "seed": seed, "status": "done" if done else "failed",
            "steps": 0 if n == 0 else 10, "loss": loss, "token_accuracy": 0.5 if done else None, "num_targets": 32,
            "initial_loss": 6.0, "initial_token_accuracy": 0.1, "precision": "fp32", "eval_fingerprint": fingerprint,
            "task_metrics": {}, "condition_metrics": [], "samples": [], "seconds": 1.0,
            "message": "" if done else "non-finite loss at step 7"}))
        if curves and (n, seed) in curves:
            (cell_dir / "metrics.jsonl").write_text("".join(
                json.dumps({"step": i + 1, "train_loss": v}) + "\n" for i, v in enumerate(curves[(n, seed)])))
    results = summarize_sweep(folder)
    (folder / "results.json").write_text(json.dumps(results))
    return results


def smooth_curve(steps: int = 120, start: float = 5.0, end: float = 2.0, noise: float = 0.03, seed: int = 0):
    """A decaying training-loss curve with batch noise (deterministic)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    return list(end + (start - end) * np.exp(-t / 15) + rng.normal(0, noise, steps))


def make_bench(folder: Path, results: dict, curves: dict | None = None, eval_items: int = 50,
               models: list[str] | None = None, rankings: dict | None = None, **config) -> dict:
    """A bench folder's results.json as `bench.runner.run` writes it (results, curves, data, config)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tasks = sorted({t for per_task in results.values() for t in per_task})
    doc = {"results": results, "curves": curves or {}, "rankings": rankings or {},
           "data": {t: {"eval_split": "test", "eval_items": eval_items, "eval_items_available": 500,
                        "source": "local", "skipped_no_gold": 0} for t in tasks},
           "config": {"models": models or list(results), "tasks": tasks, "modes": ["zero", "few", "soft"],
                      "max_steps": 80, "batch_size": 8, "lr": 0.03, **config},
           "versions": {"softeval": "test"}}
    (folder / "results.json").write_text(json.dumps(doc))
    return doc
