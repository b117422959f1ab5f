"""softeval suite: many behaviours × directions × n × seeds, one distance sweep each, into one folder.

Every behaviour file is checked before anything trains. Each (behaviour, direction) is a `softeval distance`
sweep under sweeps/<behaviour>/<direction>/, with its own identity, lane plan and resumable cells. The suite
sets every sweep up (claim, n = 0), then hands all their lane groups to the executor at once, so on Ray a
cluster works on every behaviour together; the suite folder adds its own identity (the shared settings), the list
of behaviours and, from the cell files alone, the summary (summary.py) and report. Re-running the same command
continues a killed suite; adding behaviours, directions, lengths or seeds grows it.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

from softeval.distance.suite.config import SuiteConfig, config_dict, find_behaviours, sweep_config
from softeval.distance.suite.summary import summarize_suite
from softeval.engine.models import LoadedModel
from softeval.errors import DataError
from softeval.executors import Executor
from softeval.store import (SuiteFolder, atomic_write_json, check_writable_folder, claim_folder, folder_lock,
                            hash_file, safe_name)
from softeval.store.identity import result_identity, settings_identity
from softeval.tasks.behaviour import read_and_split

logger = logging.getLogger(__name__)


@dataclass
class SuiteResult:
    out_dir: Path
    results: dict
    report_path: Path | None
    sweeps_run: int


def check_behaviours(cfg: SuiteConfig, files: dict[str, Path]) -> dict[str, dict]:
    """Read and split every file before any training: a bad file fails the suite in one line, up front."""
    names: dict[str, str] = {}
    record = {}
    for name, path in files.items():
        folder = safe_name(name, 120)
        if folder in names:
            raise DataError(f"behaviours {names[folder]!r} and {name!r} would share the folder sweeps/{folder}; "
                            "rename one file")
        names[folder] = name
        statements, train, held = read_and_split(path, cfg.min_confidence, cfg.num_train, cfg.num_eval,
                                                 cfg.split_seed)
        kind = "multiple choice" if any("Choices:" in s.question for s in statements) else "yes/no"
        record[name] = {"file": str(path), "sha256": hash_file(path), "kind": kind,
                        "statements": {"lines": len(statements), "train": len(train), "held_out": len(held)}}
    return record


def run(cfg: SuiteConfig, lm: LoadedModel | None = None) -> SuiteResult:
    """softeval suite, holding the suite folder's lock (each sweep also takes its own)."""
    check_writable_folder(cfg.out, "the suite")
    files = find_behaviours(cfg)
    checked = check_behaviours(cfg, files)
    with folder_lock(cfg.out, "behaviour suite"):
        return _run_locked(cfg, files, checked, lm)


def _run_locked(cfg: SuiteConfig, files: dict[str, Path], checked: dict[str, dict],
                lm: LoadedModel | None) -> SuiteResult:
    suite = SuiteFolder(cfg.out)
    claim_folder(suite.path, result_identity("suite", settings_identity(cfg)), "behaviour suite")
    atomic_write_json(suite.config_path, config_dict(cfg))
    known = suite.read(suite.behaviours_path, "suite behaviours") or {}
    changed = [name for name, info in checked.items()
               if isinstance(known.get(name), dict) and known[name].get("sha256") != info["sha256"]]
    if changed:
        raise DataError(f"{suite.path} holds behaviour {changed[0]!r} read from other content (its file changed or "
                        "another file has its name); give the original file, or choose another --out")
    atomic_write_json(suite.behaviours_path, {**known, **checked})
    if lm is None and cfg.execution.executor == Executor.local:
        from softeval.engine.models import load_model

        lm = load_model(cfg.model, cfg.device, cfg.dtype, show_progress=cfg.show_progress)
    jobs = [(name, d) for name in files for d in cfg.directions]
    logger.info("suite of %d behaviour(s) × %d direction(s) on %s: n ∈ %s, %d seed(s), %d steps", len(files),
                len(cfg.directions), cfg.model, list(cfg.tokens), cfg.seeds, cfg.optim.max_steps)
    configs = [sweep_config(cfg, files[name], d, suite.sweep_dir(name, d)) for name, d in jobs]
    run_sweeps(cfg, suite, [f"{name}.{d}" for name, d in jobs], configs, lm)
    results = summarize_suite(suite.path)
    atomic_write_json(suite.results_path, results)
    report_path = None
    if cfg.report:
        from softeval.distance.suite.report import write_report

        report_path = write_report(suite.path, results=results)
    return SuiteResult(out_dir=suite.path, results=results, report_path=report_path, sweeps_run=len(jobs))


def run_sweeps(cfg: SuiteConfig, suite: SuiteFolder, names: list[str], configs: list, lm: LoadedModel | None) -> None:
    """Set up every sweep (each under its own folder lock, held to the end), then run all their lane groups as one
    list of executor units (logs in OUT/logs/), then write each sweep's summary: `softeval distance`'s phases,
    with the units of every sweep side by side."""
    from softeval.distance import sweep as distance_sweep
    from softeval.distance.plan import plan_cells
    from softeval.executors import Unit, forget_models, remember_model, run_units, unit_resources

    exe = cfg.execution
    options = distance_sweep.run_units_options(exe)
    if lm is not None and exe.executor == Executor.local:
        remember_model(lm, cfg.model, cfg.device, cfg.dtype, None)
    resources = unit_resources(exe, cfg.device)
    units, done_before, folders = [], 0, []
    try:
        with ExitStack() as locks:
            bar = _progress(len(configs), cfg.show_progress, "suite setup")
            for name, dcfg in zip(names, configs):
                sweep = distance_sweep.checked_sweep_folder(dcfg)
                locks.enter_context(folder_lock(dcfg.out, "distance sweep"))
                [setup] = run_units([Unit("setup", {"cfg": dcfg}, *resources)], distance_sweep.setup_unit,
                                    show_progress=False, **options)
                mine, done = distance_sweep.lane_group_units(dcfg, sweep, setup, plan_cells(dcfg), resources)
                units += [replace(u, name=f"{name}.{u.name}") for u in mine]
                done_before += done
                folders.append((sweep, dcfg))
                if bar is not None:
                    bar.update(1)
            if bar is not None:
                bar.close()
            run_units(units, distance_sweep.lane_group_unit, log_dir=suite.path / "logs",
                      show_progress=cfg.show_progress, desc="suite units", done_before=done_before, **options)
            for sweep, dcfg in folders:
                distance_sweep.write_summary(sweep, dcfg)
    finally:
        if exe.executor == Executor.local:
            forget_models()


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="sweep")
