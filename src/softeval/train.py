"""Train soft prompts against a frozen model.

The loop trains one or more *lanes* at once. A lane is one prompt with its own examples, seed,
optimizer, schedule, step counter and run directory; rows of all active lanes share one forward and
backward pass (the model is read once per step for all of them). A plain `softeval train` is one
lane. Because lanes share no parameters and rows never interact, each lane's result equals training
it alone (up to fp32 reduction order).

Files per lane run directory:
  config.json          resolved TrainConfig
  model.json           ModelInfo of the model trained against
  metrics.jsonl        one record per step (train) and per evaluation (eval)
  checkpoints/step_N.pt  prompt, optimizer, scheduler, RNG, step (the data position is a pure
                       function of seed and step, so nothing else is needed to resume exactly)
  prompt.safetensors   the final prompt with its metadata
  results.json         final held-out metrics
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import signal
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from softeval import __version__
from softeval.batching import PLACEMENTS, Example, collate
from softeval.errors import ConfigError, InterruptedRun, NonFiniteLossError, SoftevalError
from softeval.evaluate import EvalResult, evaluate_prompt
from softeval.forward import assemble_prompt_rows, autocast_context, target_losses
from softeval.models import DEFAULT_MODEL, LoadedModel, load_model
from softeval.prompt import INITIALISERS, PromptMetadata, build_prompt, initial_embeddings, save_prompt
from softeval.store import append_jsonl, atomic_torch_save, atomic_write_json, read_jsonl, truncate_jsonl
from softeval.tasks import TaskConfig, TaskData, build_task

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
CHECKPOINTING = ("auto", "on", "off")
SCHEDULES = ("cosine", "constant", "linear")
CONDITIONAL_KINDS = ("linear", "mlp")


def optimisation_errors(cfg) -> list[str]:
    """Checks shared by every config that trains prompts (TrainConfig, DistanceConfig)."""
    errors = []
    if cfg.batch_size < 1:
        errors.append(f"batch_size must be >= 1, got {cfg.batch_size}")
    if not (cfg.lr > 0 and math.isfinite(cfg.lr)):
        errors.append(f"lr must be a positive number, got {cfg.lr}")
    if cfg.precision not in PRECISIONS:
        errors.append(f"precision must be one of {', '.join(PRECISIONS)}, got '{cfg.precision}'")
    if cfg.schedule not in SCHEDULES:
        errors.append(f"schedule must be one of {', '.join(SCHEDULES)}, got '{cfg.schedule}'")
    return errors


@dataclass(frozen=True)
class TrainConfig:
    model: str = DEFAULT_MODEL
    device: str = "auto"
    dtype: str = "auto"                 # weights dtype; see models.resolve_dtype
    precision: str = "auto"             # autocast: auto = bf16 where the hardware has fast bf16, else fp32
    task: TaskConfig = field(default_factory=TaskConfig)
    num_virtual_tokens: int = 16        # n, the number of soft-prompt vectors (--tokens)
    init: str = "vocab"                 # vocab | text | random | zeros
    init_text: str | None = None
    placement: str = "after_bos"        # after_bos (default) | before_bos (PEFT's layout)
    gradient_checkpointing: str = "auto"  # recompute layer activations in backward: ~1.5x step time, far less
                                          # memory; auto = on when a step would not fit in half the free memory
    conditional: str = "linear"         # map from condition to prompt, for tasks with conditions
    max_steps: int = 100
    batch_size: int = 8
    lr: float = 0.1                     # AdamW; prompt vectors sit at embedding scale, far above weight-tuning lrs
    weight_decay: float = 0.0
    warmup_steps: int = 10
    schedule: str = "cosine"            # cosine decays to 10% of lr at max_steps
    grad_clip: float = 1.0              # max global grad norm per lane; 0 disables
    seed: int = 0
    eval_every: int = 25                # held-out evaluation every K steps (0 = only at start and end)
    eval_batch_size: int = 16
    checkpoint_every: int = 25
    keep_checkpoints: int = 2
    out: str = "runs/train"
    show_progress: bool = True

    def __post_init__(self):
        errors = []
        if self.num_virtual_tokens < 1:
            errors.append(f"num_virtual_tokens (--tokens) must be >= 1 to train, got {self.num_virtual_tokens}")
        if self.max_steps < 0:
            errors.append(f"max_steps (--steps) must be >= 0, got {self.max_steps}")
        errors += optimisation_errors(self)
        if self.gradient_checkpointing not in CHECKPOINTING:
            errors.append(f"gradient_checkpointing must be one of {', '.join(CHECKPOINTING)}, "
                          f"got '{self.gradient_checkpointing}'")
        if self.placement not in PLACEMENTS:
            errors.append(f"placement must be one of {', '.join(PLACEMENTS)}, got '{self.placement}'")
        if self.init not in INITIALISERS:
            errors.append(f"init must be one of {', '.join(INITIALISERS)}, got '{self.init}'")
        if self.conditional not in CONDITIONAL_KINDS:
            errors.append(f"conditional must be one of {', '.join(CONDITIONAL_KINDS)}, got '{self.conditional}'")
        if self.init == "text" and not self.init_text:
            errors.append("init 'text' needs init_text (--init-text)")
        if self.eval_every < 0 or self.checkpoint_every < 0 or self.keep_checkpoints < 1:
            errors.append("eval_every and checkpoint_every must be >= 0 and keep_checkpoints >= 1")
        if errors:
            raise ConfigError("; ".join(errors))


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    initial_eval: dict
    final_eval: dict
    status: str  # done | failed
    prompt_path: Path | None
    task_metrics: dict = field(default_factory=dict)  # the task's own metrics (legal moves, valid paths…)


# --------------------------------------------------------------------------- precision


def cpu_has_fast_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(precision: str, device: torch.device, weights_dtype: torch.dtype) -> str:
    if precision != "auto":
        return precision
    if weights_dtype != torch.float32:
        return "fp32"  # the weights are already low precision; autocast adds nothing
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    if device.type == "cpu" and cpu_has_fast_bf16():
        return "bf16"
    return "fp32"


# --------------------------------------------------------------------------- data order


class StepSampler:
    """Batch indices as a pure function of (seed, step): epochs are seeded permutations.

    Resuming needs only the step counter, and a lane's data order does not depend on other lanes.
    """

    def __init__(self, num_examples: int, batch_size: int, seed: int):
        assert num_examples > 0
        self.n, self.batch_size, self.seed = num_examples, batch_size, seed
        self._perms: dict[int, list[int]] = {}

    def _perm(self, epoch: int) -> list[int]:
        if epoch not in self._perms:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perms = {epoch: torch.randperm(self.n, generator=g).tolist()}
        return self._perms[epoch]

    def indices(self, step: int) -> list[int]:
        start = step * self.batch_size
        return [self._perm(p // self.n)[p % self.n] for p in range(start, start + self.batch_size)]


def lr_factor(step: int, warmup: int, total: int, schedule: str) -> float:
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "linear":
        return 1.0 - 0.9 * progress
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


# --------------------------------------------------------------------------- lanes


@dataclass
class Lane:
    """One prompt being trained: its data, optimizer state, progress and run directory."""

    name: str
    prompt: nn.Module
    train_examples: list[Example]
    eval_examples: list[Example]
    cfg: TrainConfig
    run_dir: Path | None
    optimizer: torch.optim.Optimizer
    sampler: StepSampler
    step: int = 0
    status: str = "running"  # running | done | failed
    initial_eval: dict = field(default_factory=dict)
    last_eval: dict = field(default_factory=dict)
    message: str = ""

    @property
    def active(self) -> bool:
        return self.status == "running" and self.step < self.cfg.max_steps

    def set_lr(self) -> float:
        lr = self.cfg.lr * lr_factor(self.step, self.cfg.warmup_steps, self.cfg.max_steps, self.cfg.schedule)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr


def make_lane(name: str, prompt: nn.Module, task: TaskData, cfg: TrainConfig, run_dir: Path | None) -> Lane:
    if not task.train:
        raise ConfigError(f"lane '{name}': no training examples")
    optimizer = torch.optim.AdamW(prompt.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                  betas=(0.9, 0.999), eps=1e-8)
    return Lane(name=name, prompt=prompt, train_examples=task.train, eval_examples=task.eval, cfg=cfg,
                run_dir=run_dir, optimizer=optimizer, sampler=StepSampler(len(task.train), cfg.batch_size, cfg.seed))


def new_prompt(lm: LoadedModel, cfg: TrainConfig, condition_dim: int) -> nn.Module:
    init = initial_embeddings(cfg.init, cfg.num_virtual_tokens, lm.model.get_input_embeddings(), cfg.seed,
                              tokenizer=lm.tokenizer, text=cfg.init_text)
    return build_prompt(init, condition_dim, cfg.conditional, hidden=getattr(cfg, "conditional_hidden", 256),
                        seed=cfg.seed).to(next(lm.model.parameters()).device)


# --------------------------------------------------------------------------- checkpoints


CKPT_RE = re.compile(r"step_(\d+)\.pt$")


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CKPT_RE.search(p.name))]
    return sorted(found)


def save_checkpoint(lane: Lane) -> Path | None:
    if lane.run_dir is None:
        return None
    path = lane.run_dir / "checkpoints" / f"step_{lane.step:06d}.pt"
    atomic_torch_save(path, {
        "step": lane.step,
        "status": lane.status,
        "prompt": lane.prompt.state_dict(),
        "optimizer": lane.optimizer.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "initial_eval": lane.initial_eval,
        "last_eval": lane.last_eval,
        "softeval_version": __version__,
    })
    for _, old in list_checkpoints(lane.run_dir)[:-lane.cfg.keep_checkpoints]:
        old.unlink(missing_ok=True)
    return path


def restore_checkpoint(lane: Lane, path: Path) -> None:
    state = torch.load(path, map_location="cpu", weights_only=False)
    lane.prompt.load_state_dict(state["prompt"])
    lane.optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng_cpu"])
    lane.step = state["step"]
    lane.status = "done" if state.get("status") == "done" else "running"  # a finished lane stays finished
    lane.initial_eval = state.get("initial_eval", {})
    lane.last_eval = state.get("last_eval", {})
    if lane.run_dir is not None:
        # Metrics written after this checkpoint will be written again; drop them so the log has no duplicates.
        truncate_jsonl(lane.run_dir / "metrics.jsonl", lambda r: r.get("step", 0) <= lane.step)


def resume_lane(lane: Lane) -> bool:
    """Restore the newest checkpoint in the lane's run dir, if any."""
    if lane.run_dir is None:
        return False
    ckpts = list_checkpoints(lane.run_dir)
    if not ckpts:
        return False
    restore_checkpoint(lane, ckpts[-1][1])
    logger.info("lane %s: resumed from %s", lane.name, ckpts[-1][1])
    return True


# --------------------------------------------------------------------------- the loop


@dataclass(frozen=True)
class LoopContext:
    model: nn.Module
    bos_id: int | None
    pad_id: int
    hidden_size: int
    device: torch.device
    precision: str
    placement: str
    checkpointing: bool = False  # activation checkpointing in the training forward (forward.activation_checkpointing)


def evaluate_lane(ctx: LoopContext, lane: Lane) -> EvalResult:
    return evaluate_prompt(ctx.model, lane.prompt, lane.eval_examples, bos_id=ctx.bos_id, pad_id=ctx.pad_id,
                           placement=ctx.placement, batch_size=lane.cfg.eval_batch_size, precision=ctx.precision)


def _log(lane: Lane, record: dict) -> None:
    if lane.run_dir is not None:
        append_jsonl(lane.run_dir / "metrics.jsonl", {"lane": lane.name, **record})


def _record_eval(ctx: LoopContext, lane: Lane) -> None:
    result = evaluate_lane(ctx, lane)
    lane.last_eval = {"step": lane.step, **result.to_dict()}
    if lane.step == 0 or not lane.initial_eval:
        lane.initial_eval = dict(lane.last_eval)
    _log(lane, {"step": lane.step, "eval_loss": result.loss, "eval_token_accuracy": result.token_accuracy})


def _fail_non_finite(lane: Lane, loss: float) -> None:
    """Stop a lane whose loss is NaN/inf; checkpoints taken at or after the bad parameters are set aside."""
    lane.status = "failed"
    kept = None
    if lane.run_dir is not None:
        for step, path in list_checkpoints(lane.run_dir):
            # The loss at this step was computed with the parameters saved at `lane.step`: those are bad.
            if step >= lane.step and step > 0:
                path.rename(path.with_suffix(".bad"))
        remaining = list_checkpoints(lane.run_dir)
        kept = remaining[-1][1] if remaining else None
    where = f"last good checkpoint kept: {kept}" if kept else "no good checkpoint to keep"
    lane.message = (f"non-finite loss ({loss}) at step {lane.step} in lane '{lane.name}'; stopped, {where}. "
                    "Try a lower --lr or --precision fp32")
    _log(lane, {"step": lane.step, "event": "non_finite_loss", "loss": str(loss)})


def train_step(ctx: LoopContext, lanes: list[Lane]) -> dict[str, float]:
    """One forward/backward over the rows of all active lanes, then each lane's optimizer step."""
    active = [lane for lane in lanes if lane.active]
    rows, lane_ids, num_soft = [], [], []
    for i, lane in enumerate(active):
        picked = [lane.train_examples[j] for j in lane.sampler.indices(lane.step)]
        rows += picked
        lane_ids += [i] * len(picked)
        num_soft += [lane.prompt.num_virtual_tokens] * len(picked)
    batch = collate(rows, num_soft, ctx.bos_id, ctx.pad_id, ctx.placement, lane_ids).to(ctx.device)
    with autocast_context(ctx.device, ctx.precision):
        prompt_rows = assemble_prompt_rows([lane.prompt for lane in active], batch, ctx.hidden_size)
        losses, _ = target_losses(ctx.model, batch, prompt_rows, ctx.checkpointing)  # (N,)
    target_lane = batch.lanes[batch.target_rows]
    sums = torch.zeros(len(active), device=ctx.device).index_add(0, target_lane, losses)
    counts = torch.bincount(target_lane, minlength=len(active)).clamp(min=1)
    lane_loss = sums / counts  # (L,) mean over each lane's own target tokens, as if trained alone
    finite = torch.isfinite(lane_loss)
    lane_loss_values = lane_loss.detach().tolist()
    if finite.any():
        lane_loss[finite].sum().backward()
    out = {}
    for i, lane in enumerate(active):
        loss_value = lane_loss_values[i]
        if not math.isfinite(loss_value):
            _fail_non_finite(lane, loss_value)
            lane.optimizer.zero_grad(set_to_none=True)
            continue
        params = [p for p in lane.prompt.parameters()]
        grad_norm = (torch.nn.utils.clip_grad_norm_(params, lane.cfg.grad_clip) if lane.cfg.grad_clip > 0
                     else torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])))
        lr = lane.set_lr()
        lane.optimizer.step()
        lane.optimizer.zero_grad(set_to_none=True)
        lane.step += 1
        out[lane.name] = loss_value
        _log(lane, {"step": lane.step, "train_loss": loss_value, "lr": lr, "grad_norm": float(grad_norm)})
    return out


def train_lanes(ctx: LoopContext, lanes: list[Lane], show_progress: bool = True, desc: str = "train") -> None:
    """Train every lane to its max_steps (or failure). Evaluates, checkpoints and logs per lane.

    Ctrl-C writes a checkpoint for every lane, then raises InterruptedRun.
    """
    from tqdm.auto import tqdm

    for lane in lanes:
        if lane.step == 0 and not lane.initial_eval:
            _record_eval(ctx, lane)
    total = sum(lane.cfg.max_steps for lane in lanes)
    done = sum(min(lane.step, lane.cfg.max_steps) for lane in lanes)
    tokens_per_s = 0.0
    try:
        with tqdm(total=total, initial=done, desc=desc, disable=not show_progress, dynamic_ncols=True) as bar, \
                _deferred_interrupt() as interrupted:
            while any(lane.active for lane in lanes):
                if interrupted():
                    raise KeyboardInterrupt
                t0 = time.perf_counter()
                active_before = [lane for lane in lanes if lane.active]
                n_tokens = sum(lane.cfg.batch_size * (lane.prompt.num_virtual_tokens + _mean_len(lane))
                               for lane in active_before)
                step_losses = train_step(ctx, lanes)
                tokens_per_s = n_tokens / max(time.perf_counter() - t0, 1e-9)
                for lane in active_before:
                    if lane.status != "running":
                        continue
                    if lane.cfg.eval_every and lane.step % lane.cfg.eval_every == 0 and lane.step < lane.cfg.max_steps:
                        _record_eval(ctx, lane)
                    if lane.cfg.checkpoint_every and lane.step % lane.cfg.checkpoint_every == 0:
                        save_checkpoint(lane)
                    if lane.step >= lane.cfg.max_steps:
                        _finish_lane(ctx, lane)
                bar.update(len(step_losses))
                if step_losses:
                    shown = list(step_losses.values())
                    bar.set_postfix(loss=f"{sum(shown) / len(shown):.3f}", tok_s=f"{tokens_per_s:.0f}",
                                    lanes=len([lane for lane in lanes if lane.active]))
    except KeyboardInterrupt:
        saved = [str(save_checkpoint(lane)) for lane in lanes if lane.status == "running" and lane.run_dir]
        # How to continue depends on the command (train: --resume; distance, bench: re-run), so the CLI adds it.
        raise InterruptedRun("interrupted; checkpoint written" + (f" ({saved[0]})" if len(saved) == 1 else "")) from None
    for lane in lanes:
        if lane.status == "running" and lane.step >= lane.cfg.max_steps and not lane.last_eval.get("final"):
            _finish_lane(ctx, lane)


@contextlib.contextmanager
def _deferred_interrupt():
    """Turn the first Ctrl-C into a flag checked between steps, so a checkpoint never holds a prompt
    updated halfway through an optimizer step. A second Ctrl-C interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    hits = []

    def handler(signum, frame):
        hits.append(signum)
        if len(hits) > 1:
            raise KeyboardInterrupt
        logger.warning("interrupt received: finishing this step, writing a checkpoint (Ctrl-C again to abort)")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(hits)
    finally:
        signal.signal(signal.SIGINT, previous)


def _mean_len(lane: Lane) -> int:
    sample = lane.train_examples[: min(16, len(lane.train_examples))]
    return sum(len(e.input_ids) + 1 for e in sample) // max(1, len(sample))


def _finish_lane(ctx: LoopContext, lane: Lane) -> None:
    if lane.last_eval.get("step") != lane.step or not lane.last_eval.get("final"):
        result = evaluate_lane(ctx, lane)
        lane.last_eval = {"step": lane.step, "final": True, **result.to_dict()}
        _log(lane, {"step": lane.step, "eval_loss": result.loss, "eval_token_accuracy": result.token_accuracy})
    lane.status = "done"
    if lane.run_dir is not None and lane.cfg.checkpoint_every:
        save_checkpoint(lane)


# --------------------------------------------------------------------------- train command


def prompt_metadata(lm: LoadedModel, cfg: TrainConfig, task: TaskData, prompt: nn.Module, steps: int) -> PromptMetadata:
    kind = getattr(prompt, "kind", "plain")
    return PromptMetadata(
        model_name=lm.info.name, model_sha256=lm.info.weights_sha256, tokenizer_sha256=lm.info.tokenizer_sha256,
        hidden_size=lm.info.hidden_size, num_virtual_tokens=prompt.num_virtual_tokens, task_spec=task.spec,
        task_hash=task.spec_hash, init=cfg.init, seed=cfg.seed, steps=steps, placement=cfg.placement,
        softeval_version=__version__, kind=kind, condition_dim=getattr(prompt, "condition_dim", 0),
        extra={"hidden": getattr(prompt, "hidden", 0), "lr": cfg.lr, "batch_size": cfg.batch_size},
    )


def loop_context(lm: LoadedModel, precision: str, placement: str, checkpointing: bool = False) -> LoopContext:
    device = next(lm.model.parameters()).device
    weights_dtype = next(lm.model.parameters()).dtype
    return LoopContext(model=lm.model, bos_id=lm.info.bos_token_id, pad_id=lm.info.pad_token_id,
                       hidden_size=lm.info.hidden_size, device=device,
                       precision=resolve_precision(precision, device, weights_dtype), placement=placement,
                       checkpointing=checkpointing)


def resolve_checkpointing(setting: str, lm: LoadedModel, step_tokens: int, targets_per_token: float = 0.5) -> bool:
    """auto: checkpoint when one step's estimated activations would not fit the memory budget."""
    if setting != "auto":
        return setting == "on"
    from softeval.packing import choose_max_batch_tokens

    budget = choose_max_batch_tokens(lm.model, targets_per_token=targets_per_token)
    if step_tokens <= budget:
        return False
    logger.info("a step of %d tokens is over the memory budget of %d: gradient checkpointing on",
                step_tokens, budget)
    return True


def config_to_dict(cfg: TrainConfig) -> dict:
    return asdict(cfg)


def config_from_dict(data: dict) -> TrainConfig:
    data = dict(data)
    data["task"] = TaskConfig(**data.get("task", {}))
    return TrainConfig(**data)


def finalize_lane(lm: LoadedModel, lane: Lane, task: TaskData) -> Path | None:
    """Write the final prompt and results.json of a finished lane."""
    if lane.run_dir is None:
        return None
    prompt_path = None
    if lane.status == "done":
        prompt_path = lane.run_dir / "prompt.safetensors"
        save_prompt(prompt_path, lane.prompt, prompt_metadata(lm, lane.cfg, task, lane.prompt, lane.step))
    atomic_write_json(lane.run_dir / "results.json", {
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


def run(cfg: TrainConfig, resume: bool = False, lm: LoadedModel | None = None) -> TrainResult:
    """softeval train: setup → loop → save → result."""
    # --- setup
    run_dir = Path(cfg.out)
    if not resume and list_checkpoints(run_dir):
        raise SoftevalError(f"{run_dir} already holds a run; pass --resume {run_dir} to continue it "
                            "or choose another --out")
    lm = lm or load_model(cfg.model, cfg.device, cfg.dtype, show_progress=cfg.show_progress)
    task = build_task(cfg.task, lm.tokenizer)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "config.json", config_to_dict(cfg))
    atomic_write_json(run_dir / "model.json", lm.info.to_dict())
    longest = max(len(ex.input_ids) for ex in task.train) + (lm.info.bos_token_id is not None)
    step_tokens = cfg.batch_size * (cfg.num_virtual_tokens + longest)
    ctx = loop_context(lm, cfg.precision, cfg.placement,
                       resolve_checkpointing(cfg.gradient_checkpointing, lm, step_tokens))
    prompt = new_prompt(lm, cfg, task.condition_dim)
    lane = make_lane("main", prompt, task, cfg, run_dir)
    if resume and not resume_lane(lane):
        raise SoftevalError(f"{run_dir} has no checkpoint to resume from")
    logger.info("training %d-token prompt on %s: %d train / %d held-out examples, precision %s",
                cfg.num_virtual_tokens, lm.info.name, len(task.train), len(task.eval), ctx.precision)

    # --- loop
    train_lanes(ctx, [lane], show_progress=cfg.show_progress)

    # --- save
    prompt_path = finalize_lane(lm, lane, task)
    if lane.status == "failed":
        raise NonFiniteLossError(lane.message)
    logger.info("wrote %s", prompt_path)
    task_metrics = record_task_metrics(lm, lane, task)
    return TrainResult(run_dir=run_dir, steps=lane.step, initial_eval=lane.initial_eval, final_eval=lane.last_eval,
                       status=lane.status, prompt_path=prompt_path, task_metrics=task_metrics)


def record_task_metrics(lm: LoadedModel, lane: Lane, task: TaskData) -> dict:
    """Task-specific metrics of the trained prompt, added to results.json (after the prompt is safely saved)."""
    if task.metrics is None:
        return {}
    logger.info("computing %s task metrics", task.spec.get("task"))
    was_training = lane.prompt.training
    lane.prompt.eval()
    with torch.no_grad():
        metrics = task.metrics(lm, lane.prompt, task.eval, placement=lane.cfg.placement)
    lane.prompt.train(was_training)
    if lane.run_dir is not None:
        path = lane.run_dir / "results.json"
        results = json.loads(path.read_text())
        atomic_write_json(path, {**results, "task_metrics": metrics})
    return metrics


def resume_config(run_dir: Path, **overrides) -> TrainConfig:
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise SoftevalError(f"{run_dir} is not a softeval run directory (no config.json)")
    cfg = config_from_dict(json.loads(path.read_text()))
    return replace(cfg, out=str(run_dir), **{k: v for k, v in overrides.items() if v is not None})


__all__ = ["TrainConfig", "TrainResult", "run", "train_lanes", "make_lane", "Lane", "LoopContext", "read_jsonl"]
