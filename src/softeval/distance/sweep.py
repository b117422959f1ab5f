"""softeval distance: train prompts of several lengths × seeds and find where more tokens stop helping.

For a model M and a behaviour (task) D, every cell (n, seed) trains one n-token prompt; n = 0 is the
plain model. All cells are scored on the same held-out examples and the same target tokens (DESIGN.md
invariant 5, checked by a fingerprint of the scored targets), so the curve L(M, D, n) compares like with
like. The saturation point S(ε) and its uncertainty come from `saturation.py`.

Sweep directory (`--out`, layout owned by `store.SweepFolder`):
  config.json          resolved DistanceConfig of the latest run
  identity.json        the settings and data hashes every cell's numbers depend on (store.claim_folder)
  model.json           ModelInfo of the model
  plan.json            which cells train together as lanes (fixed once; a resumed sweep reuses it)
  eval_set.json        the held-out set every cell is scored on (task spec, fingerprint, target count)
  reference.json       with --reference-model: the reference's loss on the same examples
  cells/n0/cell.json   the plain model
  cells/n16_s0/        one train lane run dir (config.json, metrics.jsonl, checkpoints/, prompt.safetensors,
                       results.json) plus cell.json
  results.json         the summary (docs/results-schema.md)
  report/              index.html + PNGs (softeval report)

A cell is finished when its cell.json exists; it is written atomically and last, and a finished cell is
never touched again. Re-running with the same --out skips finished cells and resumes the others from
their newest checkpoint; changing anything that affects a cell's numbers (a setting or a data file) is
refused with the differences. The grid (tokens, seeds), ε, the reference and the device may change.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from softeval import __version__
from softeval.engine.batching import collate
from softeval.config import option, section, to_dict
from softeval.engine.loop import (Lane, LaneConfig, OptimConfig, Precision, loop_context, make_lane, new_prompt,
                             resume_lanes, train_lanes)
from softeval.errors import ConfigError, DataError, ModelError, unknown_choice
from softeval.engine.evaluate import evaluate_prompt
from softeval.store.identity import (CHECKPOINT_WHY, DEVICE_WHY, DTYPE_WHY, GROW_WHY, MODEL_WHY, OUT_WHY, PRECISION_WHY,
                               REPORTING_WHY, result_identity, settings_identity)
from softeval.executors import ExecutorConfig, Executor, Unit, cached_model, cached_value, default_torch_threads, \
    forget_models, remember_model, run_units, unit_resources
from softeval.engine.models import DEFAULT_MODEL, DEVICE_MAPS, DTYPES, LoadedModel, load_model
from softeval.engine.packing import CellShape, plan_lane_groups
from softeval.engine.prompt import PromptConfig
from softeval.distance.saturation import (DEFAULT_ABSOLUTE_EPSILONS, DEFAULT_RELATIVE_EPSILONS, saturation_summary,
                                 sensitivity_table)
from softeval.store import SweepFolder, atomic_write_json, check_writable_folder, claim_folder, folder_lock, read_json
from softeval.tasks import TaskConfig, TaskData, available_tasks, build_task
from softeval.train import finalize_lane, model_facts, task_metrics_of

logger = logging.getLogger(__name__)

SCHEMA = "softeval.distance/1"
TOKENS_HELP = "a comma-separated list of non-negative integers like 0,1,4,16,64"

SUMMARY_WHY = "computed from the finished cells when the summary is written"
DEFAULT_MAX_BATCH_TOKENS = 8192  # fixed, not from free memory: the same sweep groups its cells alike everywhere


def parse_tokens(value) -> tuple[int, ...]:
    """'0,1,4' or [0, 1, 4] → (0, 1, 4), sorted and deduplicated; anything else is a ConfigError."""
    items = value.split(",") if isinstance(value, str) else value
    if isinstance(items, int) and not isinstance(items, bool):
        items = [items]
    try:
        items = list(items)
    except TypeError:
        raise ConfigError(f"--tokens must be {TOKENS_HELP}, got {value!r}") from None
    out = []
    for item in items:
        text = str(item).strip() if not isinstance(item, bool) else "x"
        if isinstance(item, float) or not text.isdigit():
            raise ConfigError(f"--tokens must be {TOKENS_HELP}, got {value!r} ({item!r} is not a non-negative integer)")
        out.append(int(text))
    if not out:
        raise ConfigError(f"--tokens must be {TOKENS_HELP}, got an empty list")
    return tuple(sorted(set(out)))


@dataclass(frozen=True)
class DistanceConfig:
    model: str = option(DEFAULT_MODEL, flag="--model", help="embedded name, Hugging Face id, local folder or .gguf",
                        identity=False, why=MODEL_WHY)
    device: str = option("auto", flag="--device", help="auto, cpu, cuda, cuda:N or mps", identity=False,
                         why=DEVICE_WHY)
    dtype: str = option("auto", flag="--dtype", choices=lambda: ["auto", *DTYPES], help="weights dtype",
                        identity=False, why=DTYPE_WHY)
    device_map: str | None = option(None, flag="--device-map", choices=lambda: list(DEVICE_MAPS),
                                    help="spread the frozen model over this node's GPUs (accelerate; models larger "
                                         "than one GPU, docs/cluster.md)", identity=False, why=DEVICE_WHY)
    precision: Precision = option(Precision.auto, flag="--precision",
                                  help="autocast for training and scoring (auto: bf16 where fast, else fp32)",
                                  identity=False, why=PRECISION_WHY)
    task: TaskConfig = field(default_factory=TaskConfig)
    tokens: tuple[int, ...] = option((0, 1, 4, 16, 64), flag="--tokens",
                                     help="the grid of prompt lengths n, comma-separated; 0 = the plain model",
                                     identity=False, why=GROW_WHY)
    seeds: int = option(3, flag="--seeds", help="seeds 0..seeds-1 per n > 0 (prompt init and data order)",
                        identity=False, why=GROW_WHY)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval_every: int = option(0, flag="--eval-every", help="held-out evaluation during training (0 = start and end)",
                             identity=False, why=REPORTING_WHY)
    eval_batch_size: int = option(16, flag="--eval-batch-size", help="rows per evaluation batch")
    checkpoint_every: int = option(25, flag="--checkpoint-every", help="a killed sweep resumes each cell from here",
                                   identity=False, why=CHECKPOINT_WHY)
    max_batch_tokens: int = option(DEFAULT_MAX_BATCH_TOKENS, flag="--max-batch-tokens",
                                   help="rows × padded length per step when cells share a pass (lanes); "
                                        "0 = one cell per pass", identity=False,
                                   why="which cells share a pass is fixed in plan.json when a cell is first planned")
    epsilon: float = option(0.01, flag="--epsilon", help="S(ε), absolute ε in nats/token", identity=False,
                            why=SUMMARY_WHY)
    epsilon_relative: float = option(0.05, flag="--epsilon-relative",
                                     help="S(ε), relative ε as a fraction of the total gain L(0) − min L",
                                     identity=False, why=SUMMARY_WHY)
    reference_model: str | None = option(None, flag="--reference-model",
                                         help="also score this model (same tokenizer) and report the share of the "
                                              "gap each n closes", identity=False,
                                         why="scored into reference.json, which records its own weights hash")
    num_samples: int = option(2, help="greedy samples per cell for the report (text tasks)", identity=False,
                              why="report samples only")
    sample_tokens: int = option(24, help="new tokens per sample", identity=False, why="report samples only")
    bootstrap_samples: int = option(1000, help="resamples of seeds for the uncertainty of S", identity=False,
                                    why=SUMMARY_WHY)
    metrics: list[str] = option(default_factory=list, flag="--metrics",
                                help="extra metric sinks per cell besides metrics.jsonl: tensorboard, wandb",
                                identity=False, why=REPORTING_WHY)
    out: str = option("runs/distance", flag="--out", help="sweep folder; re-run the same command to continue it",
                      identity=False, why=OUT_WHY)
    execution: ExecutorConfig = section(ExecutorConfig, identity=False,  # where the lane groups run (local / Ray)
                                        why="where the units run; the torch thread count is fixed in plan.json")
    report: bool = option(True, identity=False, why=REPORTING_WHY)  # write report/index.html at the end
    show_progress: bool = option(True, identity=False, why=REPORTING_WHY)

    def __post_init__(self):
        object.__setattr__(self, "tokens", parse_tokens(self.tokens))
        errors = []
        if self.seeds < 1:
            errors.append(f"seeds must be >= 1, got {self.seeds}")
        if self.optim.max_steps < 1:
            errors.append(f"optim.max_steps (--steps) must be >= 1, got {self.optim.max_steps}")
        for key in ("epsilon", "epsilon_relative"):
            value = getattr(self, key)
            if not (value >= 0 and math.isfinite(value)):
                errors.append(f"{key} must be a non-negative number, got {value}")
        for key in ("num_samples", "sample_tokens", "checkpoint_every", "eval_every", "max_batch_tokens"):
            if getattr(self, key) < 0:
                errors.append(f"{key} must be >= 0, got {getattr(self, key)}")
        if self.bootstrap_samples < 1:
            errors.append(f"bootstrap_samples must be >= 1, got {self.bootstrap_samples}")
        if self.eval_batch_size < 1:
            errors.append(f"eval_batch_size must be >= 1, got {self.eval_batch_size}")
        if errors:
            raise ConfigError("; ".join(errors))

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds))


@dataclass
class SweepResult:
    out_dir: Path
    results: dict               # the content of results.json
    report_path: Path | None
    cells_trained: int          # cells run (or resumed) by this call
    cells_skipped: int          # cells already finished before this call


# --------------------------------------------------------------------------- cells


cell_name = SweepFolder.cell_name


def plan_cells(cfg: DistanceConfig) -> list[tuple[int, int]]:
    """(n, seed) per cell. n = 0 has no randomness, so it is one cell (seed 0) shared by every seed."""
    return [(n, seed) for n in cfg.tokens for seed in ([0] if n == 0 else cfg.seed_list)]


def pack_cells(cells: list[tuple[int, int]], batch_size: int, example_tokens: int,
               max_batch_tokens: int) -> list[list[tuple[int, int]]]:
    """Group (n, seed) cells that train in one pass (lanes) with `packing.plan_lane_groups`: each step costs at
    most `max_batch_tokens` (rows × padded length) and wastes little on padding. 0 means one cell per pass;
    a cell that alone exceeds the budget still runs, alone."""
    if max_batch_tokens == 0:
        return [[cell] for cell in sorted(cells)]
    shapes = [CellShape(n, batch_size, example_tokens) for n, _ in cells]
    return [[cells[i] for i in group] for group in plan_lane_groups(shapes, max_batch_tokens)]


def lane_plan(sweep: SweepFolder, cfg: DistanceConfig, todo: list[tuple[int, int]], example_tokens: int,
              torch_threads: int | None = None) -> list:
    """Lane groups for the unfinished cells. The plan is fixed the first time a cell is planned (plan.json) and
    reused on every re-run, so a resumed or grown sweep trains each cell with the same partners as before
    (in bf16 a lane's numbers depend on what shares its batch), and with the same torch thread count."""
    plan = sweep.read(sweep.plan_path, "lane plan") or {}
    groups = [[tuple(c) for c in g] for g in plan.get("groups", [])]
    planned = {c for g in groups for c in g}
    new = [c for c in todo if c not in planned]
    if new or (groups and "torch_threads" not in plan):  # a plan from before the count was kept gets it now
        groups += pack_cells(new, cfg.optim.batch_size, example_tokens, cfg.max_batch_tokens) if new else []
        atomic_write_json(sweep.plan_path, {"max_batch_tokens": plan.get("max_batch_tokens", cfg.max_batch_tokens),
                                            "example_tokens": plan.get("example_tokens", example_tokens),
                                            "groups": groups, "torch_threads": plan.get("torch_threads", torch_threads)})
    wanted = set(todo)
    return [[c for c in g if c in wanted] for g in groups if any(c in wanted for c in g)]


def cell_lane_config(cfg: DistanceConfig, seed: int) -> LaneConfig:
    return LaneConfig(optim=cfg.optim, seed=seed, eval_every=cfg.eval_every, eval_batch_size=cfg.eval_batch_size,
                      checkpoint_every=cfg.checkpoint_every, keep_checkpoints=2)  # resume_lanes needs the one before


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


def task_metrics(task: TaskData, lm: LoadedModel, prompt, placement: str, precision: str) -> tuple[dict, list]:
    """Run the task's own metrics (if any), with the prompt's placement: flat numbers, and per-condition rows."""
    raw = task_metrics_of(lm, prompt, task, placement, precision)
    flat = {k: float(v) for k, v in raw.items()
            if k != "by_condition" and isinstance(v, (int, float)) and not isinstance(v, bool)}
    by_condition = []
    for row in raw.get("by_condition") or []:
        cond = row.get("condition")
        cond = [float(c) for c in cond] if isinstance(cond, (list, tuple)) else [float(cond)]
        values = {k: float(v) for k, v in row.items()
                  if k != "condition" and isinstance(v, (int, float)) and not isinstance(v, bool)}
        by_condition.append({"condition": cond, **values})
    return flat, by_condition


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
    flat, by_condition = task_metrics(task, lm, None, ctx.placement, ctx.precision)
    evaluation = result.to_dict()
    return sweep.write_cell(0, 0, {
        "status": "done", "steps": 0, "loss": evaluation["loss"], "token_accuracy": evaluation["token_accuracy"],
        "num_targets": evaluation["num_targets"], "initial_loss": evaluation["loss"],
        "initial_token_accuracy": evaluation["token_accuracy"], "precision": ctx.precision,
        "eval_fingerprint": fingerprint["sha256"], "task_metrics": flat, "condition_metrics": by_condition,
        "samples": greedy_samples(task, lm, None, cfg), "seconds": time.perf_counter() - t0,
        "message": "",
    })


def finish_trained_cell(sweep: SweepFolder, lane: Lane, task: TaskData, lm: LoadedModel, cfg: DistanceConfig, ctx,
                        seconds: float) -> dict:
    n, seed = lane.prompt.num_virtual_tokens, lane.cfg.seed
    finalize_lane(lm, lane, task, cfg.prompt, ctx.precision)
    done = lane.status == "done"
    flat, by_condition = task_metrics(task, lm, lane.prompt, ctx.placement, ctx.precision) if done else ({}, [])
    final, initial = lane.last_eval, lane.initial_eval
    fingerprint = eval_fingerprint(lane.eval_examples, n, ctx.bos_id, ctx.pad_id, ctx.placement)
    return sweep.write_cell(n, seed, {
        "status": lane.status, "steps": lane.step,
        "loss": final.get("loss") if done else None,
        "token_accuracy": final.get("token_accuracy") if done else None,
        "num_targets": final.get("num_targets"), "initial_loss": initial.get("loss"),
        "initial_token_accuracy": initial.get("token_accuracy"), "precision": ctx.precision,
        "eval_fingerprint": fingerprint["sha256"], "task_metrics": flat, "condition_metrics": by_condition,
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


# --------------------------------------------------------------------------- sweep directory


def config_dict(cfg: DistanceConfig) -> dict:
    return to_dict(cfg)


def config_from_dict(data: dict) -> DistanceConfig:
    from softeval.config import from_dict

    return from_dict(DistanceConfig, data)


def sweep_identity(cfg: DistanceConfig, lm: LoadedModel, task: TaskData, precision: str, eval_set: dict) -> dict:
    """Everything a cell's numbers depend on (softeval.store.identity): the settings, the resolved weights dtype and
    precision, the weights and tokenizer, the held-out set and the content of every data file the task read."""
    return result_identity("distance", settings_identity(cfg),
                           {**model_facts(lm, precision), "eval_set_sha256": eval_set["sha256"]},
                           getattr(task, "data_files", {}))


# --------------------------------------------------------------------------- summary


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean = float(np.mean(values))
    return mean, (float(np.std(values, ddof=1)) if len(values) > 1 else None)


def summarize_sweep(out_dir: Path, cfg: DistanceConfig | None = None) -> dict:
    """results.json content from the artifacts alone (no model): per cell, per n, S(ε), sensitivity."""
    sweep = SweepFolder(out_dir)
    if not sweep.config_path.exists():
        raise DataError(f"{sweep.path} is not a softeval distance sweep folder (no config.json); "
                        "pass the --out of a `softeval distance` run")
    if cfg is None:
        stored = read_json(sweep.config_path, "sweep config")
        if not isinstance(stored, dict):
            raise DataError(f"{sweep.config_path} is not a distance sweep config (not a JSON object); restore it "
                            "or re-run the sweep")
        cfg = config_from_dict(stored)
    model = sweep.read(sweep.model_path, "model record") or {}
    eval_set = sweep.read(sweep.eval_set_path, "held-out set record") or {}
    reference = sweep.read(sweep.reference_path, "reference record") if cfg.reference_model else None

    cells, missing = [], []
    for n, seed in plan_cells(cfg):
        record = sweep.read_cell(n, seed)
        if record is None:
            missing.append(cell_name(n, seed))
        else:
            cells.append(record)
    by_key = {(c["n"], c["seed"]): c for c in cells}
    done = SweepFolder.finished
    plain = by_key.get((0, 0))
    plain_loss = plain["loss"] if done(plain) else None
    gap = (plain_loss - reference["loss"]) if (reference and plain_loss is not None) else None

    def gap_closed(loss):
        if gap is None or gap <= 0:
            return None
        return (plain_loss - loss) / gap

    per_n = []
    for n in cfg.tokens:
        seeds = [0] if n == 0 else cfg.seed_list
        rows = [by_key.get((n, s)) for s in seeds]
        ok = [c for c in rows if done(c)]
        loss_mean, loss_std = _mean_std([c["loss"] for c in ok])
        acc_mean, acc_std = _mean_std([c["token_accuracy"] for c in ok])
        names = sorted({k for c in ok for k in c.get("task_metrics", {})})
        metrics = {}
        for name in names:
            # A metric a cell could not measure is stored as null (pathfinding's measured detour when no walk
            # reached the goal): it is left out of the mean, and num_seeds says how many cells were averaged.
            values = [c["task_metrics"].get(name) for c in ok]
            values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
            m, s = _mean_std(values)
            metrics[name] = {"mean": m, "std": s, "num_seeds": len(values)}
        closed = [g for g in (gap_closed(c["loss"]) for c in ok) if g is not None]
        closed_mean, closed_std = _mean_std(closed)
        per_n.append({
            "n": n, "num_seeds": len(ok), "deterministic": n == 0,
            "loss_mean": loss_mean, "loss_std": 0.0 if (n == 0 and ok) else loss_std,
            "loss_min": min((c["loss"] for c in ok), default=None),
            "loss_max": max((c["loss"] for c in ok), default=None),
            "token_accuracy_mean": acc_mean, "token_accuracy_std": 0.0 if (n == 0 and ok) else acc_std,
            "gap_closed_mean": closed_mean, "gap_closed_std": closed_std,
            "task_metrics": metrics,
            "failed": [c["name"] for c in rows if c is not None and c.get("status") != "done"],
        })

    # Seeds × n loss matrix; the plain model's value is shared by every seed's curve.
    matrix = np.full((cfg.seeds, len(cfg.tokens)), np.nan)
    for j, n in enumerate(cfg.tokens):
        for s in cfg.seed_list:
            cell = by_key.get((0 if n == 0 else n, 0 if n == 0 else s))
            if done(cell):
                matrix[s, j] = cell["loss"]
    saturation = None
    if len(cfg.tokens) >= 2 and np.isfinite(matrix).any():
        boot = cfg.bootstrap_samples
        saturation = {
            "absolute": saturation_summary(list(cfg.tokens), matrix, cfg.epsilon, "absolute", boot),
            "relative": saturation_summary(list(cfg.tokens), matrix, cfg.epsilon_relative, "relative", boot),
            "sensitivity": sensitivity_table(list(cfg.tokens), matrix, DEFAULT_ABSOLUTE_EPSILONS,
                                             DEFAULT_RELATIVE_EPSILONS, boot),
        }
    prints = sorted({c["eval_fingerprint"] for c in cells if c.get("eval_fingerprint")})
    return {
        "schema": SCHEMA,
        "kind": "distance",
        "softeval_version": __version__,
        "complete": not missing,
        "missing": missing,
        "model": {k: model.get(k) for k in ("name", "source", "weights_sha256", "tokenizer_sha256", "architecture",
                                            "num_parameters", "hidden_size", "vocab_size")},
        "task": {"spec": eval_set.get("task_spec"), "spec_hash": eval_set.get("task_spec_hash"),
                 "num_train": eval_set.get("num_train"), "num_eval": eval_set.get("num_examples"),
                 "num_eval_targets": eval_set.get("num_targets"), "eval_fingerprint": eval_set.get("sha256"),
                 "same_eval_set": len(prints) <= 1 and (not prints or prints[0] == eval_set.get("sha256"))},
        "config": config_dict(cfg),
        "tokens": list(cfg.tokens),
        "seeds": cfg.seed_list,
        "cells": [{k: v for k, v in c.items() if k != "samples"} for c in cells],
        "per_n": per_n,
        "reference": None if reference is None else {**reference, "gap": gap},
        "saturation": saturation,
    }


def format_table(results: dict) -> str:
    """The compact table the CLI prints at the end of a sweep."""
    ref = results.get("reference")
    head = f"{'n':>5} {'seeds':>5}  {'loss (nats/token)':>20}  {'token acc':>15}"
    head += f"  {'gap closed':>15}" if ref else ""
    lines = [head]
    fmt = lambda m, s, p: "—" if m is None else (f"{m:.{p}f}" + (f" ± {s:.{p}f}" if s else ""))  # noqa: E731
    for row in results["per_n"]:
        line = (f"{row['n']:>5} {row['num_seeds']:>5}  {fmt(row['loss_mean'], row['loss_std'], 4):>20}  "
                f"{fmt(row['token_accuracy_mean'], row['token_accuracy_std'], 3):>15}")
        if ref:
            line += f"  {fmt(row['gap_closed_mean'], row['gap_closed_std'], 3):>15}"
        lines.append(line)
    if ref:
        lines.append(f"reference {ref['model']}: loss {ref['loss']:.4f} nats/token")
    sat = results.get("saturation")
    if sat:
        for mode, unit in (("absolute", " nats/token"), ("relative", " of the total gain")):
            s = sat[mode]
            eps = f"{s['epsilon']:g}{unit}" if mode == "absolute" else f"{s['epsilon']:.0%}{unit}"
            seeds = ", ".join("—" if v is None else str(v) for v in s["per_seed"])
            lo, hi = s["bootstrap"].get("interval90", [None, None])
            lines.append(f"S(ε = {eps}) = {s['label']}   [per seed: {seeds}; 90% bootstrap over seeds: {lo} … {hi}]")
    if not results["complete"]:
        lines.append(f"incomplete: {len(results['missing'])} cell(s) missing ({', '.join(results['missing'][:6])})")
    return "\n".join(lines)


# --------------------------------------------------------------------------- setup and lane-group units


@dataclass(frozen=True)
class SweepSetup:
    """What the driver needs from the setup to plan the units: small, as it may come back from a Ray worker."""

    resuming: bool
    precision: str             # resolved where the units run; every unit trains and scores with it
    example_tokens: int        # widest training row (with BOS): the lane plan's width
    eval_sha256: str           # the held-out set's fingerprint; a unit on another node checks it sees the same
    num_examples: int
    num_targets: int
    model_name: str
    model_facts: dict          # weights/tokenizer hashes, weights dtype, precision: every unit must load the same


def check_task_choice(cfg: DistanceConfig) -> None:
    if cfg.task.name not in available_tasks():
        raise ConfigError(unknown_choice("task", cfg.task.name, available_tasks()))
    if cfg.task.name == "jsonl" and not cfg.task.data:
        raise ConfigError(f"task 'jsonl' needs a behaviour file: --data FILE.jsonl (or choose --task from "
                          f"{', '.join(available_tasks())})")


def sweep_model(cfg: DistanceConfig) -> LoadedModel:
    """The model, once per process (a Ray worker reuses it for its next lane group)."""
    return cached_model(cfg.model, cfg.device, cfg.dtype, cfg.device_map)


def sweep_task(cfg: DistanceConfig, lm: LoadedModel) -> TaskData:
    key = ("distance-task", json.dumps(to_dict(cfg.task), sort_keys=True), lm.info.tokenizer_sha256)
    return cached_value(key, lambda: build_task(cfg.task, lm.tokenizer))


def prepare_sweep(cfg: DistanceConfig) -> SweepSetup:
    """Claim the folder (the one identity check), write its records, score the reference and the plain model.
    Runs where the units run (in-process, or as a Ray task with a unit's resources), so that `precision: auto`
    and the weights dtype resolve for the units' hardware, not the driver's."""
    sweep = SweepFolder(cfg.out)
    lm = sweep_model(cfg)
    task = sweep_task(cfg, lm)
    if cfg.tokens != (0,) and not task.train:
        raise DataError(f"task '{cfg.task.name}' has no training examples; raise task.num_train or give more data")
    fingerprint = check_same_eval_set(task, lm, cfg)
    eval_record = {**fingerprint, "task_spec": task.spec, "task_spec_hash": task.spec_hash,
                   "num_train": len(task.train)}
    ctx = loop_context(lm, cfg.precision, cfg.prompt.placement)
    resuming = claim_folder(sweep.path, sweep_identity(cfg, lm, task, ctx.precision, fingerprint), "distance sweep")
    atomic_write_json(sweep.config_path, config_dict(cfg))
    if not sweep.model_path.exists():  # what first ran; the identity holds every later run to the same facts
        atomic_write_json(sweep.model_path, lm.info.to_dict())
    atomic_write_json(sweep.eval_set_path, eval_record)
    reference_record(sweep, cfg, lm, task, ctx, fingerprint)
    if 0 in cfg.tokens and sweep.read_cell(0, 0) is None:
        record = finish_plain_cell(sweep, task, lm, cfg, ctx, fingerprint)
        logger.info("n=0 (plain model): loss %.4f nats/token, token accuracy %.3f", record["loss"],
                    record["token_accuracy"])
    example_tokens = max((len(e.input_ids) for e in task.train), default=0) + (1 if ctx.bos_id is not None else 0)
    return SweepSetup(resuming=resuming, precision=ctx.precision, example_tokens=example_tokens,
                      eval_sha256=fingerprint["sha256"], num_examples=fingerprint["num_examples"],
                      num_targets=fingerprint["num_targets"], model_name=lm.info.name,
                      model_facts=model_facts(lm, ctx.precision))


def check_same_model(facts: dict, expected: dict | None, where: str) -> None:
    """A unit on another node must load what the sweep's identity records (weights, tokenizer, dtype), or its
    cells would mix, say, bf16-weight and fp32-weight numbers in one S(ε)."""
    from softeval.store.identity import differences

    changed = differences(expected, facts) if expected else []
    if changed:
        raise ModelError(f"{where} loaded another model than the sweep's ({'; '.join(changed)}); give every node the "
                         "same weights and pass --dtype explicitly (e.g. --dtype float32) so they load alike")


def train_lane_group(cfg: DistanceConfig, group: list[tuple[int, int]], precision: str, eval_sha256: str,
                     show_progress: bool = False, desc: str = "", expected_facts: dict | None = None) -> list[dict]:
    """One unit: train a lane group's cells together and write each cell (cell.json last). All lanes resume from
    the newest step they all have a checkpoint for (`engine.resume_lanes`), a cell finished by a killed earlier
    attempt included: it trains along again as its partners' batch-mate (so they end exactly where an
    uninterrupted run ends) but its files are not written again."""
    sweep = SweepFolder(cfg.out)
    lm = sweep_model(cfg)
    task = sweep_task(cfg, lm)
    ctx = loop_context(lm, precision, cfg.prompt.placement)
    check_same_model(model_facts(lm, precision), expected_facts, f"unit {desc or group}")
    seen = eval_fingerprint(task.eval, 0, ctx.bos_id, ctx.pad_id, ctx.placement)["sha256"]
    if seen != eval_sha256:
        raise DataError(f"this worker's held-out examples differ from the sweep's ({seen[:12]} vs {eval_sha256[:12]}): "
                        "a data file differs between the driver and this node; put the data on shared storage")
    finished = {(n, seed) for n, seed in group if sweep.read_cell(n, seed) is not None}
    if len(finished) == len(group):
        return []
    lanes, todo = [], []
    for n, seed in group:
        folder = sweep.run_folder(n, seed, cfg.metrics)
        if (n, seed) not in finished:
            atomic_write_json(folder.config_path, {**config_dict(cfg), "num_virtual_tokens": n, "seed": seed})
        lane = make_lane(cell_name(n, seed), new_prompt(lm, cfg.prompt, n, seed, task.condition_dim), task,
                         cell_lane_config(cfg, seed), folder)
        lanes.append(lane)
        if (n, seed) not in finished:
            todo.append(lane)
    resume_lanes(lanes)
    t0 = time.perf_counter()
    try:
        train_lanes(ctx, lanes, show_progress=show_progress, desc=desc)
    finally:
        for lane in lanes:
            lane.folder.close()
    seconds = time.perf_counter() - t0
    records = []
    for lane in todo:
        record = finish_trained_cell(sweep, lane, task, lm, cfg, ctx, seconds)
        if record["status"] == "done":
            logger.info("n=%d seed %d: loss %.4f → %.4f nats/token, token accuracy %.3f", record["n"], record["seed"],
                        record["initial_loss"], record["loss"], record["token_accuracy"])
        else:
            logger.warning("n=%d seed %d failed: %s", record["n"], record["seed"], record["message"])
        records.append({k: record[k] for k in ("name", "n", "seed", "status", "loss")})
    return records


def _setup_unit(unit: Unit) -> SweepSetup:
    return prepare_sweep(unit.payload["cfg"])


def _lane_group_unit(unit: Unit) -> list[dict]:
    p = unit.payload
    return train_lane_group(p["cfg"], p["group"], p["precision"], p["eval_sha256"], p["show_progress"], unit.name,
                            p.get("model_facts"))


def group_unit_name(group: list[tuple[int, int]]) -> str:
    """'n16_s0' for a one-cell group, 'n1_s0-n4_s2' (first and last cell) for more: unique, as every cell is in
    exactly one group, and a harmless file name for the unit's log."""
    first, last = cell_name(*group[0]), cell_name(*group[-1])
    return first if len(group) == 1 else f"{first}-{last}"


# --------------------------------------------------------------------------- the command


def run(cfg: DistanceConfig, lm: LoadedModel | None = None) -> SweepResult:
    """softeval distance, holding the sweep folder's lock (store.folder_lock): a second process on the same --out
    is refused in one line; units, local or on Ray, write inside the driver's lock."""
    check_writable_folder(cfg.out, "the sweep")
    with folder_lock(cfg.out, "distance sweep"):
        return _run_locked(cfg, lm)


def _run_locked(cfg: DistanceConfig, lm: LoadedModel | None = None) -> SweepResult:
    """softeval distance: setup (claim, n = 0) → lane-group units on the executor → summary → report.

    `lm` (already loaded, local executor only) saves loading the model again; Ray workers load their own.
    """
    # --- setup: everything a user can get wrong fails here, before any training
    check_task_choice(cfg)
    check_writable_folder(cfg.out, "the sweep")
    sweep = SweepFolder(cfg.out)
    for record, what in ((sweep.config_path, "sweep config"), (sweep.plan_path, "lane plan")):
        sweep.read(record, what)  # a damaged record means the folder is not what it seems: say so, touch nothing
    exe = cfg.execution
    common = dict(executor=exe.executor, address=exe.ray_address, max_retries=exe.max_retries)
    if lm is not None and exe.executor == Executor.local:
        remember_model(lm, cfg.model, cfg.device, cfg.dtype, cfg.device_map)
    cpus, gpus = unit_resources(exe, cfg.device)
    cells = plan_cells(cfg)
    finished_before = sum(1 for c in cells if sweep.read_cell(*c) is not None)
    # The setup writes the folder's identity first, so it logs to the driver only (a log file would make a new
    # folder look foreign to the identity check).
    [setup] = run_units([Unit("setup", {"cfg": cfg}, cpus, gpus)], _setup_unit, show_progress=False, **common)

    finished = {c for c in cells if sweep.read_cell(*c) is not None}
    todo = [c for c in cells if c not in finished and c[0] > 0]
    groups = lane_plan(sweep, cfg, todo, setup.example_tokens, default_torch_threads(exe))
    plan = sweep.read(sweep.plan_path, "lane plan") or {}
    planned, threads = plan.get("groups", []), plan.get("torch_threads")
    done_before = sum(1 for g in planned if all(tuple(c) in finished for c in g))
    logger.info("%s %d-cell sweep of %s on %s (%d held-out examples, %d targets, precision %s): %d finished, "
                "%d to train in %d unit(s) on the %s executor", "continuing" if setup.resuming else "starting",
                len(cells), setup.model_name, cfg.task.name, setup.num_examples, setup.num_targets, setup.precision,
                len(finished), len(todo), len(groups), exe.executor)

    # --- loop: one unit per lane group, the costliest first (steps × rows × padded width) so that the long
    # ones do not start last on a cluster; each unit writes its own cells
    width = lambda group: max(n for n, _ in group) + setup.example_tokens  # noqa: E731
    groups = sorted(groups, key=lambda g: -len(g) * width(g))
    inner_bars = cfg.show_progress and exe.executor == Executor.local
    units = [Unit(group_unit_name(g), {"cfg": cfg, "group": g, "precision": setup.precision,
                                       "eval_sha256": setup.eval_sha256, "model_facts": setup.model_facts,
                                       "show_progress": inner_bars}, cpus, gpus, torch_threads=threads)
             for g in groups]
    try:
        done = run_units(units, _lane_group_unit, log_dir=sweep.path / "logs", show_progress=cfg.show_progress,
                         desc="distance units", done_before=done_before, **common)
    finally:
        if exe.executor == Executor.local:
            forget_models()  # the caller's model stays theirs; the cache lets go of it
    trained = sum(len(records) for records in done)

    # --- save: from the files alone, whichever executor (or earlier run) wrote them
    results = summarize_sweep(sweep.path, cfg)
    if not results["task"]["same_eval_set"]:
        raise DataError(f"cells in {sweep.path} were scored on different held-out targets; choose another --out")
    atomic_write_json(sweep.results_path, results)
    report_path = None
    if cfg.report:
        from softeval.distance.report import write_report

        report_path = write_report(sweep.path)
    logger.info("wrote %s", sweep.results_path)
    return SweepResult(out_dir=sweep.path, results=results, report_path=report_path, cells_trained=trained,
                       cells_skipped=finished_before)


__all__ = ["DistanceConfig", "SweepResult", "run", "summarize_sweep", "format_table", "pack_cells", "parse_tokens",
           "eval_fingerprint"]
