"""Scoring a cell on the sweep's one held-out set: the set's fingerprint, the plain model (n = 0), a trained
cell, and the reference model, each scored on the same examples and target tokens (DESIGN.md invariant 5)."""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import time

from softeval.distance.config import DistanceConfig
from softeval.engine.batching import collate
from softeval.engine.evaluate import evaluate_prompt
from softeval.engine.loop import Lane
from softeval.engine.models import LoadedModel, load_model
from softeval.errors import ModelError
from softeval.store import SweepFolder, atomic_write_json, read_json
from softeval.tasks import TaskData
from softeval.train import finalize_lane, task_metrics_of

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- the held-out set


def eval_fingerprint(examples, num_soft: int, bos_id: int | None, pad_id: int, placement: str) -> dict:
    """What a prompt of length `num_soft` is scored on: every example's tokens, condition and scored targets.

    The scored targets are read from the very batches the evaluator builds (collate), so two prompt
    lengths get the same fingerprint only if they predict the same tokens after the same inputs.
    """
    digest = hashlib.sha256()
    num_targets = 0
    for start in range(0, len(examples), 64):
        chunk = examples[start:start + 64]
        batch = collate(chunk, num_soft, bos_id, pad_id, placement)
        for i, ex in enumerate(chunk):
            digest.update(json.dumps([ex.input_ids, ex.condition]).encode())
            digest.update(json.dumps(batch.target_ids[batch.target_rows == i].tolist()).encode())
        num_targets += batch.num_targets
    return {"sha256": digest.hexdigest(), "num_examples": len(examples), "num_targets": num_targets}


def check_same_eval_set(task: TaskData, lm: LoadedModel, cfg: DistanceConfig) -> dict:
    """Fingerprint of the held-out set; refuses a grid in which two lengths would be scored differently."""
    prints = {n: eval_fingerprint(task.eval, n, lm.info.bos_token_id, lm.info.pad_token_id,
                                 str(cfg.prompt.placement))
              for n in cfg.tokens}
    distinct = {json.dumps(p, sort_keys=True) for p in prints.values()}
    assert len(distinct) == 1, f"prompt lengths would be scored on different targets: {prints}"
    return next(iter(prints.values()))


# --------------------------------------------------------------------------- scoring a cell


def task_metrics(task: TaskData, lm: LoadedModel, prompt, placement: str,
                 precision: str) -> tuple[dict, list, dict]:
    """Run the task's own metrics (if any), with the prompt's placement: flat numbers, per-condition rows, and
    per-example lists (a behaviour's log-odds per held-out statement, for bootstraps over statements)."""
    raw = task_metrics_of(lm, prompt, task, placement, precision)
    flat = {k: float(v) for k, v in raw.items()
            if k not in ("by_condition", "per_example") and isinstance(v, (int, float)) and not isinstance(v, bool)}
    per_example = {str(k): [float(v) if isinstance(v, (int, float)) else None for v in values]
                   for k, values in (raw.get("per_example") or {}).items()}
    by_condition = []
    for row in raw.get("by_condition") or []:
        cond = row.get("condition")
        cond = [float(c) for c in cond] if isinstance(cond, (list, tuple)) else [float(cond)]
        values = {k: float(v) for k, v in row.items()
                  if k != "condition" and isinstance(v, (int, float)) and not isinstance(v, bool)}
        by_condition.append({"condition": cond, **values})
    return flat, by_condition, per_example


def greedy_samples(task: TaskData, lm: LoadedModel, prompt, cfg: DistanceConfig) -> list[dict]:
    """Greedy continuations of the task's generation contexts (text tasks; none for conditional tasks)."""
    from softeval.engine.generate import generate_ids, has_input

    contexts = [c for c in task.generation_contexts[:cfg.num_samples] if has_input(c, prompt, lm.info.bos_token_id)]
    if not contexts or task.condition_dim or not cfg.sample_tokens:
        return []
    new = generate_ids(lm.model, prompt, contexts, bos_id=lm.info.bos_token_id, pad_id=lm.info.pad_token_id,
                       eos_id=lm.info.eos_token_id, placement=str(cfg.prompt.placement),
                       max_new_tokens=cfg.sample_tokens)
    decode = lambda ids: lm.tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731
    return [{"context": decode(c), "continuation": decode(ids)} for c, ids in zip(contexts, new)]


def finish_plain_cell(sweep: SweepFolder, task: TaskData, lm: LoadedModel, cfg: DistanceConfig, ctx,
                      fingerprint: dict) -> dict:
    """n = 0: the plain model on the held-out set, scored by the same evaluator as every trained cell."""
    t0 = time.perf_counter()
    result = evaluate_prompt(lm.model, None, task.eval, bos_id=ctx.bos_id, pad_id=ctx.pad_id, placement=ctx.placement,
                             batch_size=cfg.eval_batch_size, precision=ctx.precision)
    flat, by_condition, per_example = task_metrics(task, lm, None, ctx.placement, ctx.precision)
    evaluation = result.to_dict()
    return sweep.write_cell(0, 0, {
        "status": "done", "steps": 0, "loss": evaluation["loss"], "token_accuracy": evaluation["token_accuracy"],
        "num_targets": evaluation["num_targets"], "initial_loss": evaluation["loss"],
        "initial_token_accuracy": evaluation["token_accuracy"], "precision": ctx.precision,
        "eval_fingerprint": fingerprint["sha256"], "task_metrics": flat, "condition_metrics": by_condition,
        "per_example": per_example, "example_losses": result.example_losses,
        "samples": greedy_samples(task, lm, None, cfg), "seconds": time.perf_counter() - t0,
        "message": "",
    })


def finish_trained_cell(sweep: SweepFolder, lane: Lane, task: TaskData, lm: LoadedModel, cfg: DistanceConfig, ctx,
                        seconds: float) -> dict:
    n, seed = lane.prompt.num_virtual_tokens, lane.cfg.seed
    finalize_lane(lm, lane, task, cfg.prompt, ctx.precision)
    done = lane.status == "done"
    flat, by_condition, per_example = (task_metrics(task, lm, lane.prompt, ctx.placement, ctx.precision) if done
                                       else ({}, [], {}))
    final, initial = lane.last_eval, lane.initial_eval
    if done and lane.example_losses is None:  # finished before a resume: its last evaluation was not in this process
        lane.example_losses = evaluate_prompt(lm.model, lane.prompt, lane.eval_examples, bos_id=ctx.bos_id,
                                              pad_id=ctx.pad_id, placement=ctx.placement,
                                              batch_size=cfg.eval_batch_size, precision=ctx.precision).example_losses
    fingerprint = eval_fingerprint(lane.eval_examples, n, ctx.bos_id, ctx.pad_id, ctx.placement)
    return sweep.write_cell(n, seed, {
        "status": lane.status, "steps": lane.step,
        "loss": final.get("loss") if done else None,
        "token_accuracy": final.get("token_accuracy") if done else None,
        "num_targets": final.get("num_targets"), "initial_loss": initial.get("loss"),
        "initial_token_accuracy": initial.get("token_accuracy"), "precision": ctx.precision,
        "eval_fingerprint": fingerprint["sha256"], "task_metrics": flat, "condition_metrics": by_condition,
        "per_example": per_example, "example_losses": lane.example_losses if done else None,
        "samples": greedy_samples(task, lm, lane.prompt, cfg) if done else [], "seconds": seconds,
        "message": lane.message,
    })


# --------------------------------------------------------------------------- reference model


def score_reference(cfg: DistanceConfig, lm: LoadedModel, task: TaskData, ctx, fingerprint: dict) -> dict:
    """The reference model's loss on the same examples and target tokens (same tokenizer required)."""
    ref = load_model(cfg.reference_model, cfg.device, cfg.dtype, show_progress=False, device_map=cfg.device_map)
    if ref.info.tokenizer_sha256 != lm.info.tokenizer_sha256:
        raise ModelError(f"reference model '{cfg.reference_model}' uses a different tokenizer than '{cfg.model}', "
                         "so their losses are over different tokens; pass a reference that shares the tokenizer "
                         "(e.g. the base model of the same family)")
    ref_print = eval_fingerprint(task.eval, 0, ref.info.bos_token_id, ref.info.pad_token_id,
                                 str(cfg.prompt.placement))
    if ref_print != fingerprint:
        raise ModelError(f"reference model '{cfg.reference_model}' would be scored on different target tokens "
                         f"than '{cfg.model}' (its tokenizer adds BOS differently); pass a matching reference")
    result = evaluate_prompt(ref.model, None, task.eval, bos_id=ref.info.bos_token_id, pad_id=ref.info.pad_token_id,
                             placement=ctx.placement, batch_size=cfg.eval_batch_size, precision=ctx.precision)
    record = {"model": cfg.reference_model, "weights_sha256": ref.info.weights_sha256, **result.to_dict(),
              "eval_fingerprint": fingerprint["sha256"]}
    del ref
    gc.collect()
    return record


def reference_record(sweep: SweepFolder, cfg: DistanceConfig, lm: LoadedModel, task: TaskData, ctx,
                     fingerprint: dict) -> dict | None:
    if not cfg.reference_model:
        return None
    path = sweep.reference_path
    if path.exists():
        stored = read_json(path, "reference record")
        if stored.get("model") == cfg.reference_model and stored.get("eval_fingerprint") == fingerprint["sha256"]:
            return stored
    record = score_reference(cfg, lm, task, ctx, fingerprint)
    atomic_write_json(path, record)
    logger.info("reference %s: loss %.4f nats/token on the same %d targets", cfg.reference_model, record["loss"],
                record["num_targets"])
    return record
