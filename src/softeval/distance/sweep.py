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

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from softeval.config import to_dict
from softeval.distance.adaptive import AdaptiveSettings, Target, next_cells
from softeval.distance.cells import (check_same_eval_set, eval_fingerprint, finish_plain_cell, finish_trained_cell,
                                     reference_record)
from softeval.distance.config import DistanceConfig, config_dict
from softeval.distance.plan import cell_lane_config, cell_name, group_unit_name, lane_plan, plan_cells
from softeval.distance.summary import summarize_sweep
from softeval.engine.loop import Lane, loop_context, make_lane, new_prompt, resume_lanes, train_lanes
from softeval.engine.models import LoadedModel
from softeval.errors import ConfigError, DataError, ModelError, unknown_choice
from softeval.executors import (Executor, ExecutorConfig, Unit, cached_model, cached_value, default_torch_threads,
                                forget_models, remember_model, run_units, unit_resources)
from softeval.store import SweepFolder, atomic_write_json, check_writable_folder, claim_folder, folder_lock
from softeval.store.identity import result_identity, settings_identity
from softeval.tasks import TaskData, available_tasks, build_task
from softeval.train import model_facts

logger = logging.getLogger(__name__)

ADAPTIVE_SCHEMA = "softeval.adaptive/1"


@dataclass
class SweepResult:
    out_dir: Path
    results: dict               # the content of results.json
    report_path: Path | None
    cells_trained: int          # cells run (or resumed) by this call
    cells_skipped: int          # cells already finished before this call


# --------------------------------------------------------------------------- setup


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


def sweep_identity(cfg: DistanceConfig, lm: LoadedModel, task: TaskData, precision: str, eval_set: dict) -> dict:
    """Everything a cell's numbers depend on (softeval.store.identity): the settings, the resolved weights dtype and
    precision, the weights and tokenizer, the held-out set and the content of every data file the task read."""
    return result_identity("distance", settings_identity(cfg),
                           {**model_facts(lm, precision), "eval_set_sha256": eval_set["sha256"]},
                           getattr(task, "data_files", {}))


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


# --------------------------------------------------------------------------- one lane-group unit


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
    check_unit_matches_sweep(model_facts(lm, precision), expected_facts, task, ctx, eval_sha256,
                             f"unit {desc or group}")
    finished = {(n, seed) for n, seed in group if sweep.read_cell(n, seed) is not None}
    if len(finished) == len(group):
        return []
    lanes = group_lanes(sweep, cfg, lm, task, group, finished)
    resume_lanes(lanes)
    seconds = train_group(ctx, lanes, show_progress, desc)
    todo = [lane for lane, cell in zip(lanes, group) if cell not in finished]
    return [finish_group_cell(sweep, lane, task, lm, cfg, ctx, seconds) for lane in todo]


def check_same_model(facts: dict, expected: dict | None, where: str) -> None:
    """A unit on another node must load what the sweep's identity records (weights, tokenizer, dtype), or its
    cells would mix, say, bf16-weight and fp32-weight numbers in one S(ε)."""
    from softeval.store.identity import differences

    changed = differences(expected, facts) if expected else []
    if changed:
        raise ModelError(f"{where} loaded another model than the sweep's ({'; '.join(changed)}); give every node the "
                         "same weights and pass --dtype explicitly (e.g. --dtype float32) so they load alike")


def check_unit_matches_sweep(facts: dict, expected_facts: dict | None, task: TaskData, ctx, eval_sha256: str,
                             where: str) -> None:
    """A unit, perhaps on another node, adds cells only if it loaded the sweep's model and held-out set."""
    check_same_model(facts, expected_facts, where)
    seen = eval_fingerprint(task.eval, 0, ctx.bos_id, ctx.pad_id, ctx.placement)["sha256"]
    if seen != eval_sha256:
        raise DataError(f"this worker's held-out examples differ from the sweep's ({seen[:12]} vs {eval_sha256[:12]}): "
                        "a data file differs between the driver and this node; put the data on shared storage")


def group_lanes(sweep: SweepFolder, cfg: DistanceConfig, lm: LoadedModel, task: TaskData,
                group: list[tuple[int, int]], finished: set) -> list[Lane]:
    """One lane per cell of the group, in the group's order; an unfinished cell's run folder gets its config."""
    lanes = []
    for n, seed in group:
        folder = sweep.run_folder(n, seed, cfg.metrics)
        if (n, seed) not in finished:
            atomic_write_json(folder.config_path, {**config_dict(cfg), "num_virtual_tokens": n, "seed": seed})
        lanes.append(make_lane(cell_name(n, seed), new_prompt(lm, cfg.prompt, n, seed, task.condition_dim), task,
                               cell_lane_config(cfg, seed), folder))
    return lanes


def train_group(ctx, lanes: list[Lane], show_progress: bool, desc: str) -> float:
    """Train the lanes together to the end; the seconds it took. Every lane's files are closed, even on error."""
    t0 = time.perf_counter()
    try:
        train_lanes(ctx, lanes, show_progress=show_progress, desc=desc)
    finally:
        for lane in lanes:
            lane.folder.close()
    return time.perf_counter() - t0


def finish_group_cell(sweep: SweepFolder, lane: Lane, task: TaskData, lm: LoadedModel, cfg: DistanceConfig, ctx,
                      seconds: float) -> dict:
    """Score and write one trained cell, log it, and return the small record a unit sends back to the driver."""
    record = finish_trained_cell(sweep, lane, task, lm, cfg, ctx, seconds)
    if record["status"] == "done":
        logger.info("n=%d seed %d: loss %.4f → %.4f nats/token, token accuracy %.3f", record["n"], record["seed"],
                    record["initial_loss"], record["loss"], record["token_accuracy"])
    else:
        logger.warning("n=%d seed %d failed: %s", record["n"], record["seed"], record["message"])
    return {k: record[k] for k in ("name", "n", "seed", "status", "loss")}


def setup_unit(unit: Unit) -> SweepSetup:
    """A sweep's setup as an executor unit (payload: cfg)."""
    return prepare_sweep(unit.payload["cfg"])


def lane_group_unit(unit: Unit) -> list[dict]:
    """One lane group as an executor unit (payload: cfg, group, precision, eval_sha256, model_facts, …)."""
    p = unit.payload
    return train_lane_group(p["cfg"], p["group"], p["precision"], p["eval_sha256"], p["show_progress"], unit.name,
                            p.get("model_facts"))


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
    sweep = checked_sweep_folder(cfg)
    exe = cfg.execution
    if lm is not None and exe.executor == Executor.local:
        remember_model(lm, cfg.model, cfg.device, cfg.dtype, cfg.device_map)
    resources = unit_resources(exe, cfg.device)
    cells = plan_cells(cfg)
    finished_before = sum(1 for c in cells if sweep.read_cell(*c) is not None)
    # The setup writes the folder's identity first, so it logs to the driver only (a log file would make a new
    # folder look foreign to the identity check).
    [setup] = run_units([Unit("setup", {"cfg": cfg}, *resources)], setup_unit, show_progress=False,
                        **run_units_options(exe))

    # --- loop: one unit per lane group; each unit writes its own cells (--adaptive: round by round)
    if cfg.adaptive.enabled:
        trained = run_adaptive_rounds(cfg, sweep, setup, resources)
    else:
        units, done_before = lane_group_units(cfg, sweep, setup, cells, resources)
        trained = run_lane_group_units(cfg, sweep, units, done_before)

    # --- save: from the files alone, whichever executor (or earlier run) wrote them
    results = write_summary(sweep, cfg)
    report_path = None
    if cfg.report:
        from softeval.distance.report import write_report

        report_path = write_report(sweep.path)
    logger.info("wrote %s", sweep.results_path)
    return SweepResult(out_dir=sweep.path, results=results, report_path=report_path, cells_trained=trained,
                       cells_skipped=finished_before)


def checked_sweep_folder(cfg: DistanceConfig) -> SweepFolder:
    """The sweep folder, once the task choice, the folder's writability and its records have been checked."""
    check_task_choice(cfg)
    check_writable_folder(cfg.out, "the sweep")
    sweep = SweepFolder(cfg.out)
    for record, what in ((sweep.config_path, "sweep config"), (sweep.plan_path, "lane plan"),
                         (sweep.adaptive_path, "adaptive record")):
        sweep.read(record, what)  # a damaged record means the folder is not what it seems: say so, touch nothing
    return sweep


def run_units_options(exe: ExecutorConfig) -> dict:
    """Where and how `run_units` runs this sweep's units: the executor, the Ray address, retries."""
    return dict(executor=exe.executor, address=exe.ray_address, max_retries=exe.max_retries)


def lane_group_units(cfg: DistanceConfig, sweep: SweepFolder, setup: SweepSetup, cells: list[tuple[int, int]],
                     resources: tuple[float, float]) -> tuple[list[Unit], int]:
    """One unit per lane group of unfinished cells, the costliest first (steps × rows × padded width) so that
    the long ones do not start last on a cluster; and how many planned groups an earlier run finished."""
    exe = cfg.execution
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
    width = lambda group: max(n for n, _ in group) + setup.example_tokens  # noqa: E731
    groups = sorted(groups, key=lambda g: -len(g) * width(g))
    inner_bars = cfg.show_progress and exe.executor == Executor.local
    units = [Unit(group_unit_name(g), {"cfg": cfg, "group": g, "precision": setup.precision,
                                       "eval_sha256": setup.eval_sha256, "model_facts": setup.model_facts,
                                       "show_progress": inner_bars}, *resources, torch_threads=threads)
             for g in groups]
    return units, done_before


def run_lane_group_units(cfg: DistanceConfig, sweep: SweepFolder, units: list[Unit], done_before: int) -> int:
    """Run the units on the executor (logs in the sweep's logs/); how many cells they trained."""
    exe = cfg.execution
    try:
        done = run_units(units, lane_group_unit, log_dir=sweep.path / "logs", show_progress=cfg.show_progress,
                         desc="distance units", done_before=done_before, **run_units_options(exe))
    finally:
        if exe.executor == Executor.local:
            forget_models()  # the caller's model stays theirs; the cache lets go of it
    return sum(len(records) for records in done)


def adaptive_settings(cfg: DistanceConfig) -> AdaptiveSettings:
    """The decision rule's settings: the grid, the two ε the summary reports, the seed budget."""
    return AdaptiveSettings(tokens=cfg.tokens, targets=(Target(cfg.epsilon, "absolute"),
                                                        Target(cfg.epsilon_relative, "relative")),
                            max_seeds=cfg.seeds, min_seeds=cfg.adaptive.min_seeds,
                            coarse_factor=cfg.adaptive.coarse_factor, bootstrap_samples=cfg.bootstrap_samples)


def read_rounds(sweep: SweepFolder) -> list[dict]:
    record = sweep.read(sweep.adaptive_path, "adaptive record") or {}
    rounds = record.get("rounds", [])
    if not isinstance(rounds, list) or not all(isinstance(r, dict) and isinstance(r.get("cells"), list)
                                               for r in rounds):
        raise DataError(f"{sweep.adaptive_path} is not an adaptive sweep record; restore it or choose another --out")
    return rounds


def write_rounds(sweep: SweepFolder, rounds: list[dict], settled: bool) -> None:
    atomic_write_json(sweep.adaptive_path, {"schema": ADAPTIVE_SCHEMA, "rounds": rounds, "settled": settled})


def run_adaptive_rounds(cfg: DistanceConfig, sweep: SweepFolder, setup: SweepSetup,
                        resources: tuple[float, float]) -> int:
    """--adaptive: decide a round from the finished cells (distance/adaptive.py), record it in adaptive.json,
    train it, repeat until every target is settled. A round is recorded before it trains, so a killed sweep
    first finishes the recorded round and then decides exactly as an uninterrupted one would (decisions read
    only the cells of recorded rounds and the plain model, never cells another run added)."""
    settings = adaptive_settings(cfg)
    rounds = read_rounds(sweep)
    trained = 0
    while True:
        asked = [(c["n"], c["seed"]) for r in rounds for c in r["cells"]]
        records = {c: sweep.read_cell(*c) for c in {*asked, (0, 0)}}  # each cell.json read once per round
        pending = [c for c in asked if records[c] is None]
        if not pending:
            losses = {c: record["loss"] for c, record in records.items() if SweepFolder.finished(record)}
            decisions = next_cells(settings, losses, set(asked))
            if not decisions:
                write_rounds(sweep, rounds, settled=True)
                return trained
            rounds.append({"round": len(rounds) + 1, "settings": settings.to_dict(),
                           "cells": [{"n": d.n, "seed": d.seed, "reason": d.reason} for d in decisions]})
            write_rounds(sweep, rounds, settled=False)
            pending = [d.cell for d in decisions]
            logger.info("adaptive round %d: %s", len(rounds),
                        "; ".join(f"{cell_name(d.n, d.seed)} ({d.reason})" for d in decisions))
        units, _ = lane_group_units(cfg, sweep, setup, pending, resources)
        trained += run_lane_group_units(cfg, sweep, units, 0)


def write_summary(sweep: SweepFolder, cfg: DistanceConfig) -> dict:
    """results.json from the cells on disk; refused if cells were scored on different held-out targets."""
    results = summarize_sweep(sweep.path, cfg)
    if not results["task"]["same_eval_set"]:
        raise DataError(f"cells in {sweep.path} were scored on different held-out targets; choose another --out")
    atomic_write_json(sweep.results_path, results)
    return results


__all__ = ["SweepResult", "SweepSetup", "prepare_sweep", "run", "train_lane_group", "setup_unit", "lane_group_unit",
           "checked_sweep_folder", "lane_group_units", "run_units_options", "write_summary"]
