"""softeval train: train one soft prompt on a behaviour (a task or a JSONL file) against a frozen model.

setup (config, model, task, run folder and its identity) → loop (the lanes engine, one lane) → save
(prompt.safetensors with its metadata, results.json) → TrainResult.

The run folder (`store.RunFolder`) holds config.json (resolved config), model.json, identity.json (the
settings and data hashes that can change the numbers), metrics.jsonl, checkpoints/, prompt.safetensors
and results.json. Re-running the same command, or `--resume RUN_DIR`, continues an unfinished run
exactly; a folder holding another identity is refused with the differences.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from softeval.version import __version__
from softeval.config import Choice, build_config, option, to_dict
from softeval.engine.loop import (LaneConfig, OptimConfig, Precision, loop_context, make_lane, new_prompt,
                             resolve_checkpointing, resume_lane, train_lanes)
from softeval.errors import ConfigError, NonFiniteLossError, SoftevalError
from softeval.store.identity import (CHECKPOINT_WHY, DEVICE_WHY, DTYPE_WHY, MODEL_WHY, OUT_WHY, PRECISION_WHY, REPORTING_WHY,
                               differences, free_settings, result_identity, settings_identity)
from softeval.engine.models import DEFAULT_MODEL, DTYPES, LoadedModel, load_model
from softeval.engine.prompt import PromptConfig, PromptMetadata, save_prompt
from softeval.store import RunFolder, atomic_write_json, check_writable_folder, claim_folder, folder_lock, read_json
from softeval.tasks import TaskConfig, TaskData, build_task

logger = logging.getLogger(__name__)


class Checkpointing(Choice):
    auto = "auto"  # on when a step would not fit in half the free memory
    on = "on"      # recompute layer activations in backward: ~1.5x step time, far less memory
    off = "off"


@dataclass(frozen=True)
class TrainConfig:
    model: str = option(DEFAULT_MODEL, flag="--model", help="embedded name, Hugging Face id, local folder or .gguf",
                       identity=False, why=MODEL_WHY)
    device: str = option("auto", flag="--device", help="auto, cpu, cuda, cuda:N or mps", identity=False, why=DEVICE_WHY)
    dtype: str = option("auto", flag="--dtype", choices=lambda: ["auto", *DTYPES],
                        help="weights dtype (auto: fp32 on CPU, bf16 on CUDA)", identity=False, why=DTYPE_WHY)
    precision: Precision = option(Precision.auto, flag="--precision", help="autocast precision", identity=False,
                                  why=PRECISION_WHY)
    task: TaskConfig = field(default_factory=TaskConfig)
    num_virtual_tokens: int = option(16, flag="--tokens", help="number of soft-prompt vectors n")
    prompt: PromptConfig = field(default_factory=PromptConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    seed: int = option(0, flag="--seed", help="prompt init and data order")
    gradient_checkpointing: Checkpointing = option(Checkpointing.auto, flag="--gradient-checkpointing",
                                                   help="activation checkpointing for long prompts", identity=False,
                                                   why="recomputes the same activations in backward: memory, not numbers")
    eval_every: int = option(25, flag="--eval-every", help="held-out evaluation every K steps (0 = start and end)",
                             identity=False, why=REPORTING_WHY)
    eval_batch_size: int = option(16, flag="--eval-batch-size", help="rows per evaluation batch")
    checkpoint_every: int = option(25, flag="--checkpoint-every", help="checkpoint every K steps", identity=False,
                                   why=CHECKPOINT_WHY)
    keep_checkpoints: int = option(2, help="checkpoints kept per run", identity=False, why=CHECKPOINT_WHY)
    metrics: list[str] = option(default_factory=list, flag="--metrics",
                                help="extra metric sinks besides metrics.jsonl: tensorboard, wandb (offline)",
                                identity=False, why=REPORTING_WHY)
    out: str = option("runs/train", flag="--out", help="run folder", identity=False, why=OUT_WHY)
    show_progress: bool = option(True, identity=False, why=REPORTING_WHY)

    def __post_init__(self):
        errors = []
        if self.num_virtual_tokens < 1:
            errors.append(f"num_virtual_tokens (--tokens) must be >= 1 to train, got {self.num_virtual_tokens}")
        if self.eval_every < 0 or self.checkpoint_every < 0 or self.keep_checkpoints < 1:
            errors.append("eval_every and checkpoint_every must be >= 0 and keep_checkpoints >= 1")
        if self.eval_batch_size < 1:
            errors.append(f"eval_batch_size must be >= 1, got {self.eval_batch_size}")
        if errors:
            raise ConfigError("; ".join(errors))

    def lane_config(self) -> LaneConfig:
        return LaneConfig(optim=self.optim, seed=self.seed, eval_every=self.eval_every,
                          eval_batch_size=self.eval_batch_size, checkpoint_every=self.checkpoint_every,
                          keep_checkpoints=self.keep_checkpoints)




@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    initial_eval: dict
    final_eval: dict
    status: str  # done | failed
    prompt_path: Path | None
    task_metrics: dict = field(default_factory=dict)  # the task's own metrics (legal moves, valid paths…)


def prompt_metadata(lm: LoadedModel, prompt_cfg: PromptConfig, seed: int, task: TaskData, prompt: nn.Module,
                    steps: int, extra: dict | None = None) -> PromptMetadata:
    return PromptMetadata(
        model_name=lm.info.name, model_sha256=lm.info.weights_sha256, tokenizer_sha256=lm.info.tokenizer_sha256,
        hidden_size=lm.info.hidden_size, num_virtual_tokens=prompt.num_virtual_tokens, task_spec=task.spec,
        task_hash=task.spec_hash, init=prompt_cfg.init, seed=seed, steps=steps, placement=str(prompt_cfg.placement),
        softeval_version=__version__, kind=getattr(prompt, "kind", "plain"),
        condition_dim=getattr(prompt, "condition_dim", 0),
        extra={"hidden": getattr(prompt, "hidden", 0), **(extra or {})},
    )


def model_facts(lm: LoadedModel, precision: str) -> dict:
    """The resolved values a result's numbers depend on: the weights and tokenizer that loaded, the weights dtype
    and the autocast precision that ran (never the labels 'auto')."""
    return {"model_sha256": lm.info.weights_sha256, "tokenizer_sha256": lm.info.tokenizer_sha256,
            "weights_dtype": lm.info.dtype, "precision": precision}


def run_identity(cfg: TrainConfig, lm: LoadedModel, task: TaskData, precision: str) -> dict:
    """What a train run's numbers depend on (softeval.store.identity): its settings, what resolved, the data."""
    return result_identity("train", settings_identity(cfg), model_facts(lm, precision),
                           getattr(task, "data_files", {}))


def resume_config(run_dir: Path, flags: dict | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """The stored config of RUN_DIR plus the changes a resume allows; any other change is refused."""
    from softeval.config import dotted_to_nested

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise SoftevalError(f"{run_dir} is not a softeval run folder (no config.json)")
    stored = read_json(run_dir / "config.json", "run config")
    changes = {**(flags or {}), **dotted_to_nested(overrides or [])}
    changes["out"] = str(run_dir)
    cfg = build_config(TrainConfig, base=stored, flags=changes)
    before = build_config(TrainConfig, base=stored, flags={"out": str(run_dir)})
    changed = differences(settings_identity(before), settings_identity(cfg))
    if changed:
        free = [name for name in free_settings(TrainConfig) if name != "out"]
        raise ConfigError(f"--resume continues the stored run; only settings that change no number may change "
                          f"({', '.join(free)}), got {'; '.join(changed)}; start a new run with another --out instead")
    return cfg


def finalize_lane(lm: LoadedModel, lane, task: TaskData, prompt_cfg: PromptConfig, precision: str,
                  extra: dict | None = None) -> Path | None:
    """Write the final prompt (with its card: held-out score under `precision`, data hashes) and results.json."""
    from softeval.store.card import card_facts

    prompt_path = None
    if lane.status == "done":
        prompt_path = lane.folder.prompt_path
        card = card_facts(held_out={**lane.last_eval, "precision": precision}, data_files=task.data_files)
        save_prompt(prompt_path, lane.prompt, prompt_metadata(lm, prompt_cfg, lane.cfg.seed, task, lane.prompt,
                                                              lane.step, {**(extra or {}), "card": card}))
    atomic_write_json(lane.folder.results_path, {
        "status": lane.status,
        "message": lane.message,
        "steps": lane.step,
        "num_virtual_tokens": lane.prompt.num_virtual_tokens,
        "seed": lane.cfg.seed,
        "initial_eval": lane.initial_eval,
        "final_eval": lane.last_eval,
        "task_spec": task.spec,
        "model": lm.info.name,
    })
    return prompt_path


def task_metrics_of(lm: LoadedModel, prompt: nn.Module | None, task: TaskData, placement: str,
                    precision: str = "fp32") -> dict:
    """The task's own metrics (legal moves, valid paths…) of a prompt, or {} for tasks without any; generated
    under the same autocast `precision` as training and scoring, which the result's identity records."""
    from softeval.engine.forward import autocast_context

    if task.metrics is None:
        return {}
    logger.info("computing %s task metrics", task.spec.get("task"))
    was_training = prompt.training if prompt is not None else False
    if prompt is not None:
        prompt.eval()
    device = lm.model.get_input_embeddings().weight.device
    with torch.no_grad(), autocast_context(device, precision):
        metrics = task.metrics(lm, prompt, task.eval, placement=str(placement)) or {}
    if prompt is not None:
        prompt.train(was_training)
    return metrics


def run(cfg: TrainConfig, resume: bool = False, lm: LoadedModel | None = None) -> TrainResult:
    """softeval train, holding the run folder's lock throughout: a second process on the same --out is refused
    in one line naming this one (store.folder_lock)."""
    with folder_lock(cfg.out, "train run"):
        return _run_locked(cfg, resume, lm)


def _run_locked(cfg: TrainConfig, resume: bool, lm: LoadedModel | None) -> TrainResult:
    """softeval train: setup → loop → save → result."""
    # --- setup
    check_writable_folder(cfg.out, "the run")  # before the model loads: a bad --out fails at once
    folder = RunFolder(cfg.out, cfg.metrics, name=Path(cfg.out).name, config=to_dict(cfg))
    lm = lm or load_model(cfg.model, cfg.device, cfg.dtype, show_progress=cfg.show_progress)
    task = build_task(cfg.task, lm.tokenizer)
    longest = max(len(ex.input_ids) for ex in task.train) + (lm.info.bos_token_id is not None)
    step_tokens = cfg.optim.batch_size * (cfg.num_virtual_tokens + longest)
    ctx = loop_context(lm, cfg.precision, cfg.prompt.placement,
                       resolve_checkpointing(cfg.gradient_checkpointing, lm, step_tokens))
    existing = claim_folder(folder.path, run_identity(cfg, lm, task, ctx.precision), "train run",
                            adopt=resume)
    previous = folder.read_results() if existing else None
    if previous and previous.get("status") == "done" and folder.prompt_path.exists():
        raise SoftevalError(f"{folder.path} already holds a run that finished; choose another --out "
                            "(or use its prompt.safetensors)")
    atomic_write_json(folder.config_path, to_dict(cfg))
    if not folder.model_path.exists():  # what first ran; the identity holds a continuation to the same facts
        atomic_write_json(folder.model_path, lm.info.to_dict())
    prompt = new_prompt(lm, cfg.prompt, cfg.num_virtual_tokens, cfg.seed, task.condition_dim)
    lane = make_lane("main", prompt, task, cfg.lane_config(), folder)
    if resume_lane(lane):
        logger.info("continuing %s from step %d", folder.path, lane.step)
    elif existing:
        logger.info("%s has no checkpoint yet: starting it again from step 0", folder.path)
    logger.info("training %d-token prompt on %s: %d train / %d held-out examples, precision %s",
                cfg.num_virtual_tokens, lm.info.name, len(task.train), len(task.eval), ctx.precision)

    # --- loop
    try:
        train_lanes(ctx, [lane], show_progress=cfg.show_progress)
    finally:
        folder.close()

    # --- save
    prompt_path = finalize_lane(lm, lane, task, cfg.prompt, ctx.precision,
                                {"lr": cfg.optim.lr, "batch_size": cfg.optim.batch_size})
    if lane.status == "failed":
        raise NonFiniteLossError(lane.message)
    logger.info("wrote %s", prompt_path)
    metrics = task_metrics_of(lm, lane.prompt, task, cfg.prompt.placement, ctx.precision)
    if metrics:
        atomic_write_json(folder.results_path, {**folder.read_results(), "task_metrics": metrics})
    return TrainResult(run_dir=folder.path, steps=lane.step, initial_eval=lane.initial_eval,
                       final_eval=lane.last_eval, status=lane.status, prompt_path=prompt_path, task_metrics=metrics)


__all__ = ["TrainConfig", "TrainResult", "run", "resume_config", "prompt_metadata", "finalize_lane",
           "task_metrics_of", "replace"]
