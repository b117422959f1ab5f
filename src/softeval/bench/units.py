"""One (model, task) unit of the grid: what it still lacks in OUT, and computing that: zero- and few-shot
through lm-eval, then per tuning seed the soft prompt (with its curve snapshots) and the soft_cloze prompt."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from softeval.bench import harness
from softeval.bench.config import BenchConfig
from softeval.bench.evaluate import gold_over_gen_cap, run_unit
from softeval.bench.identity import claim_unit_model, resolved_facts, unit_identity
from softeval.bench.modes import TUNED_MODES
from softeval.bench.prepare import prepare_tasks, task_modes
from softeval.bench.forms import BenchTask
from softeval.errors import DataError
from softeval.executors import Unit, cached_model
from softeval.store import BenchFolder, read_json


def curve_only_steps(cfg: BenchConfig) -> list[int]:
    """Curve points evaluated into their own files; the --steps point is the soft unit itself."""
    steps = sorted(set(cfg.curve_steps)) if "soft" in cfg.modes else []
    return [s for s in steps if s != cfg.optim.max_steps]


def seed_todo(units: Path, cfg: BenchConfig, seed: int, modes: list[str]) -> tuple[list[str], list[int]]:
    """One tuning seed's missing units among the tuned `modes`, and its missing curve points."""
    units = BenchFolder.seed_dir(units, seed, cfg.seed)
    return ([m for m in TUNED_MODES if m in modes and not (units / f"{m}.json").exists()],
            [s for s in curve_only_steps(cfg) if not BenchFolder.curve_unit(units, s).exists()])


def model_task_todo(out: Path, cfg: BenchConfig, model_name: str, task: str,
                    modes: list[str]) -> tuple[list[str], list[int]]:
    """The modes (of `modes`, the task's: task_modes) and curve steps some unit (some tuning seed for a tuned
    mode) still lacks."""
    units = BenchFolder(out).unit_dir(model_name, task)
    per_seed = [seed_todo(units, cfg, s, modes) for s in cfg.soft_seeds]
    missing_tuned = {m for tuned, _ in per_seed for m in tuned}
    return ([m for m in modes if (m in missing_tuned if m in TUNED_MODES else not (units / f"{m}.json").exists())],
            sorted({s for _, steps in per_seed for s in steps}))


def evaluate_model_task(cfg: BenchConfig, model_name: str, task_name: str, modes: list[str],
                        show_progress: bool = False) -> list[str]:
    """One unit of the grid: a model on a task in each of `modes` (the task's: task_modes). Zero- and few-shot,
    then per tuning seed ONE soft-prompt tuning run with snapshots at the curve steps, the soft mode at --steps
    and the curve, then per tuning seed the soft_cloze prompt. Each result is its own atomic file, so a re-run or
    a retried unit skips finished ones and each tuning resumes from its checkpoint. Returns the modes it
    evaluated."""
    from softeval.bench.lm_adapter import SoftevalLM

    from softeval.store.identity import differences

    out = Path(cfg.out)
    folder = BenchFolder(out)
    todo, todo_curve = model_task_todo(out, cfg, model_name, task_name, modes)
    if not todo and not todo_curve:
        return []
    [t], built = prepare_tasks(cfg, only=task_name)
    units, samples = folder.unit_dir(model_name, t.name), folder.samples_dir(model_name, t.name)
    # This node read the same data and resolves the same dtype and precision as the driver's identity says.
    recorded = read_json(units / "identity.json", "bench result identity")
    seen = unit_identity(cfg, t, built[t.name], resolved_facts(cfg))
    changed = differences(recorded, seen)
    if changed:
        raise DataError(f"unit {model_name} / {t.name} on this node sees other data or settings than the driver "
                        f"({'; '.join(changed)}); put the data on shared storage and pass --dtype/--precision")
    lm = cached_model(model_name, cfg.device, cfg.dtype, cfg.device_map)
    adapter = SoftevalLM(lm=lm, batch_size=cfg.eval_batch_size, precision=seen["resolved"]["precision"],
                         show_progress=False)
    claim_unit_model(units, {"model_sha256": lm.info.weights_sha256, "tokenizer_sha256": lm.info.tokenizer_sha256,
                             "weights_dtype": lm.info.dtype, "precision": seen["resolved"]["precision"]})
    share = gold_over_gen_cap(adapter, built[t.name].get("gen"))
    cut = {} if share is None else {"gold_over_gen_cap": share}
    done = []
    for mode in [m for m in ("zero", "few") if m in todo]:
        adapter.set_prompt(None)
        run_unit(adapter, t, mode, 0 if mode == "zero" else cfg.shots, t.forms, cfg, units / f"{mode}.json", samples,
                 cut)
        done.append(mode)
    if "soft" in todo or todo_curve:
        # Tuning renders the generative form; without it, the YAML's own (lm-eval's) ll form, else the first.
        tune_form = next(f for f in ("gen", t.lm_eval_form, *t.forms) if f in t.forms)
        for seed in cfg.soft_seeds:
            done += _soft_seed(cfg, adapter, t, built[t.name][tune_form], tune_form, model_name, seed, show_progress)
    if "soft_cloze" in todo:
        for seed in cfg.soft_seeds:
            done += _soft_cloze_seed(cfg, adapter, t, built[t.name]["ll_cloze"], model_name, seed, show_progress)
    adapter.set_prompt(None)
    return done


def _tune(cfg: BenchConfig, adapter, lm_task, stop: bool, seed: int, steps: list[int], run_dir: Path, spec: dict,
          show_progress: bool) -> tuple[dict[int, Path], dict]:
    """One tuning seed's run on `lm_task`'s training split, rendered as that task is scored (with `stop`, each
    target followed by the few-shot delimiter); its prompt snapshots at `steps` and the tuning facts a unit
    records."""
    from softeval.bench import tuning
    from softeval.train import TrainConfig

    eval_keys = {harness.doc_key(lm_task, d) for d in harness.eval_docs(lm_task)}
    data = tuning.tuning_examples(lm_task, adapter, cfg.tuning_size, seed, eval_keys, stop=stop)
    train_cfg = TrainConfig(num_virtual_tokens=cfg.num_virtual_tokens, prompt=cfg.prompt,
                            optim=replace(cfg.optim, max_steps=max(steps)), seed=seed, eval_every=0,
                            checkpoint_every=10, keep_checkpoints=2, precision=adapter.precision,
                            eval_batch_size=cfg.eval_batch_size, show_progress=show_progress,
                            out=str(Path(cfg.out) / "train"))
    paths = tuning.tune_with_snapshots(adapter, data, train_cfg, steps, run_dir, spec, show_progress=show_progress)
    info = {"num_train": len(data.train), "overlap_removed": data.overlap_removed,
            "num_virtual_tokens": cfg.num_virtual_tokens, "batch_size": cfg.optim.batch_size}
    return paths, info


def _soft_seed(cfg: BenchConfig, adapter, t: BenchTask, gen_task, tune_form: str, model_name: str, seed: int,
               show_progress: bool) -> list[str]:
    """The soft mode of one tuning seed (prompt init and data order): one tuning run, snapshots at the curve
    steps and at --steps, each evaluated into its own unit in this seed's folders (BenchFolder.seed_dir)."""
    from softeval.bench import tuning

    folder = BenchFolder(cfg.out)
    soft_todo, todo_curve = seed_todo(folder.unit_dir(model_name, t.name), cfg, seed, ["soft"])
    if not soft_todo and not todo_curve:
        return []
    units, samples, train = folder.tuning_seed_dirs(model_name, t.name, "soft", seed, cfg.seed)
    # The soft prompt also learns where an answer stops (the delimiter after the target), as generation needs.
    paths, tuning_info = _tune(cfg, adapter, gen_task, True, seed,
                               sorted(set(cfg.curve_steps) | {cfg.optim.max_steps}), train,
                               {"task": t.name, "bench": True, "form": tune_form, "source": t.source}, show_progress)
    done = []
    if soft_todo:
        adapter.set_prompt(*tuning.load_snapshot(adapter, paths[cfg.optim.max_steps]))
        run_unit(adapter, t, "soft", 0, t.forms, cfg, units / "soft.json", samples,
                 {"steps": cfg.optim.max_steps, "prompt": str(paths[cfg.optim.max_steps]), "tuning": tuning_info})
        done.append("soft")
    for step in todo_curve:
        if step not in paths:
            continue
        adapter.set_prompt(*tuning.load_snapshot(adapter, paths[step]))
        run_unit(adapter, t, f"soft@{step}", 0, ["gen"] if "gen" in t.forms else [tune_form], cfg,
                 BenchFolder.curve_unit(units, step), samples / "curve",
                 {"steps": step, "prompt": str(paths[step]), "tuning": tuning_info})
        done.append(f"soft@{step}")
    return done


def _soft_cloze_seed(cfg: BenchConfig, adapter, t: BenchTask, cloze_task, model_name: str, seed: int,
                     show_progress: bool) -> list[str]:
    """The soft_cloze mode of one tuning seed: a prompt tuned --steps on the cloze rendering of the training
    split (the question alone → " answer text"), then the cloze form scored under it."""
    from softeval.bench import tuning

    folder = BenchFolder(cfg.out)
    units, samples, train = folder.tuning_seed_dirs(model_name, t.name, "soft_cloze", seed, cfg.seed)
    if (units / "soft_cloze.json").exists():
        return []
    steps = cfg.optim.max_steps
    # The cloze form scores the answer text alone, so that is all this prompt learns (no delimiter after it).
    paths, tuning_info = _tune(cfg, adapter, cloze_task, False, seed, [steps], train,
                               {"task": t.name, "bench": True, "form": "ll_cloze", "source": t.source}, show_progress)
    adapter.set_prompt(*tuning.load_snapshot(adapter, paths[steps]))
    run_unit(adapter, t, "soft_cloze", 0, ["ll_cloze"], cfg, units / "soft_cloze.json", samples,
             {"steps": steps, "prompt": str(paths[steps]), "tuning": tuning_info})
    return ["soft_cloze"]


def has_work(out: Path, cfg: BenchConfig, model_name: str, t: BenchTask) -> bool:
    """Whether some mode (of those that apply to the task) or curve point of (model, task) is missing in OUT."""
    return any(model_task_todo(out, cfg, model_name, t.name, task_modes(cfg, t)))


def model_task_unit(unit: Unit) -> list[str]:
    """The executors' entry point: one unit from its payload alone (it may run on another node)."""
    p = unit.payload
    return evaluate_model_task(p["cfg"], p["model"], p["task"], p["modes"], p["show_progress"])
