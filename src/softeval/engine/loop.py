"""The lanes engine: train one or more soft prompts against a frozen model in shared passes.

A *lane* is one prompt with its own examples, seed, optimizer, schedule, step counter and run folder;
rows of all active lanes share one forward and backward pass (the model is read once per step for all
of them). `softeval train` is one lane, a `distance` sweep packs its cells into lanes, `bench` tunes one
lane per (model, task). Because lanes share no parameters and rows never interact, each lane's result
equals training it alone (up to fp32 reduction order).

Checkpoints (`RunFolder.save_checkpoint`) hold the prompt and the optimizer state as safetensors and the
rest as JSON; the data position is a pure function of (seed, step) and nothing in a step draws from a
random generator (the model is in eval mode, without dropout; prompt init and data order have their own
seeded generators), so nothing else is needed to resume exactly.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from typing import Protocol

import torch
from torch import nn

from softeval.version import __version__
from softeval.engine.batching import Example, collate
from softeval.config import Choice, option
from softeval.errors import ConfigError, InterruptedRun
from softeval.engine.evaluate import EvalResult, evaluate_prompt
from softeval.engine.forward import assemble_prompt_rows, autocast_context, target_losses
from softeval.engine.models import LoadedModel
from softeval.engine.prompt import PromptConfig, build_prompt, initial_embeddings
from softeval.store import RunFolder

logger = logging.getLogger(__name__)


class Precision(Choice):
    auto = "auto"   # bf16 autocast where the hardware has fast bf16, else fp32
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class Schedule(Choice):
    cosine = "cosine"      # warmup, then cosine decay to 10 % of lr at max_steps
    constant = "constant"  # warmup, then constant (a k-step snapshot of a long run equals a k-step run)
    linear = "linear"      # warmup, then linear decay to 10 %


@dataclass(frozen=True)
class OptimConfig:
    """How a prompt is optimised; one section shared by train, distance and bench."""

    max_steps: int = option(100, flag="--steps", help="optimizer steps")
    batch_size: int = option(8, flag="--batch-size", help="training rows per prompt per step")
    lr: float = option(0.1, flag="--lr", help="AdamW learning rate; prompt vectors sit at embedding scale, "
                                              "far above weight-tuning lrs")
    weight_decay: float = option(0.0, flag="--weight-decay", help="AdamW weight decay")
    warmup_steps: int = option(10, flag="--warmup-steps", help="linear warmup steps")
    schedule: Schedule = option(Schedule.cosine, flag="--schedule", help="learning-rate schedule after warmup")
    grad_clip: float = option(1.0, flag="--grad-clip", help="max gradient norm per prompt; 0 disables")

    def __post_init__(self):
        errors = []
        if self.max_steps < 0:
            errors.append(f"optim.max_steps (--steps) must be >= 0, got {self.max_steps}")
        if self.batch_size < 1:
            errors.append(f"optim.batch_size must be >= 1, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            errors.append(f"optim.lr must be a positive number, got {self.lr}")
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.grad_clip < 0:
            errors.append("optim.warmup_steps, weight_decay and grad_clip must be >= 0")
        if errors:
            raise ConfigError("; ".join(errors))


@dataclass(frozen=True)
class LaneConfig:
    """What the engine needs to know about one lane besides its prompt and data."""

    optim: OptimConfig
    seed: int = 0                 # data order (and, upstream, the prompt init)
    eval_every: int = 0           # held-out evaluation every K steps (0 = at the start and the end only)
    eval_batch_size: int = 16
    checkpoint_every: int = 25    # 0 = only at the end
    keep_checkpoints: int = 2


# --------------------------------------------------------------------------- precision


def cpu_has_fast_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(precision: str, device: torch.device, weights_dtype: torch.dtype) -> str:
    if precision != "auto":
        return str(precision)
    if weights_dtype != torch.float32:
        return "fp32"  # the weights are already low precision; autocast adds nothing
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    if device.type == "cpu" and cpu_has_fast_bf16():
        return "bf16"
    return "fp32"


# --------------------------------------------------------------------------- data order and schedule


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
    """One prompt being trained: its data, optimizer state, progress and run folder."""

    name: str
    prompt: nn.Module
    train_examples: list[Example]
    eval_examples: list[Example]
    cfg: LaneConfig
    folder: RunFolder
    optimizer: torch.optim.Optimizer
    sampler: StepSampler
    step: int = 0
    status: str = "running"  # running | done | failed
    initial_eval: dict = field(default_factory=dict)
    last_eval: dict = field(default_factory=dict)
    message: str = ""
    example_losses: list[float] | None = None  # per held-out example, from the final evaluation in this process

    @property
    def max_steps(self) -> int:
        return self.cfg.optim.max_steps

    @property
    def active(self) -> bool:
        return self.status == "running" and self.step < self.max_steps

    def set_lr(self) -> float:
        o = self.cfg.optim
        lr = o.lr * lr_factor(self.step, o.warmup_steps, o.max_steps, o.schedule)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def log(self, record: dict) -> None:
        self.folder.log({"lane": self.name, **record})


class TrainAndEval(Protocol):
    """What a lane trains on: a task's examples (softeval.tasks.TaskData has them; the engine needs nothing else)."""

    train: list[Example]
    eval: list[Example]


def make_lane(name: str, prompt: nn.Module, task: TrainAndEval, cfg: LaneConfig, folder: RunFolder) -> Lane:
    if not task.train:
        raise ConfigError(f"lane '{name}': no training examples")
    optimizer = torch.optim.AdamW(prompt.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay,
                                  betas=(0.9, 0.999), eps=1e-8)
    return Lane(name=name, prompt=prompt, train_examples=task.train, eval_examples=task.eval, cfg=cfg,
                folder=folder, optimizer=optimizer,
                sampler=StepSampler(len(task.train), cfg.optim.batch_size, cfg.seed))


def new_prompt(lm: LoadedModel, prompt_cfg: PromptConfig, num_virtual_tokens: int, seed: int,
               condition_dim: int) -> nn.Module:
    init = initial_embeddings(prompt_cfg.init, num_virtual_tokens, lm.model.get_input_embeddings(), seed,
                              tokenizer=lm.tokenizer, text=prompt_cfg.init_text)
    prompt = build_prompt(init, condition_dim, prompt_cfg.conditional, hidden=prompt_cfg.conditional_hidden,
                          seed=seed)
    return prompt.to(lm.model.get_input_embeddings().weight.device)  # with --device-map: the first device


# --------------------------------------------------------------------------- checkpoints


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    state = optimizer.state_dict()
    tensors = {f"optim.{pid}.{key}": value for pid, per in state["state"].items() for key, value in per.items()
               if torch.is_tensor(value)}
    return tensors, state["param_groups"]


def _optimizer_state(tensors: dict[str, torch.Tensor], groups: list[dict]) -> dict:
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    return {"state": state, "param_groups": groups}


def save_checkpoint(lane: Lane, also_keep: int | None = None) -> Path:
    """Checkpoint `lane`, keeping its newest `keep_checkpoints` and the one at step `also_keep` (the step its
    group would resume from: `shared_checkpoint_step`)."""
    opt_tensors, groups = _optimizer_tensors(lane.optimizer)
    tensors = {**{f"prompt.{k}": v for k, v in lane.prompt.state_dict().items()}, **opt_tensors}
    meta = {"status": lane.status, "param_groups": groups, "initial_eval": lane.initial_eval,
            "last_eval": lane.last_eval, "softeval_version": __version__}
    return lane.folder.save_checkpoint(lane.step, tensors, meta, keep=lane.cfg.keep_checkpoints, also_keep=also_keep)


def shared_checkpoint_step(lanes: list[Lane]) -> int | None:
    """The newest step every lane of a group has a checkpoint for (None: none), where the group resumes.

    Saving a lane's checkpoint must never delete it: a lane that stopped (a non-finite loss, or an earlier
    max_steps) keeps its last checkpoints while its partners go on saving and pruning theirs, and without
    this step a kill before the group ends would restart every lane of it from step 0."""
    steps = [{step for step, _ in lane.folder.checkpoints()} for lane in lanes]
    common = set.intersection(*steps) if steps else set()
    return max(common) if common else None


def resume_lanes(lanes: list[Lane]) -> int | None:
    """Restore lanes that train together to the newest step *every one of them* has a checkpoint for.

    Lanes checkpoint one after another, so a kill between two saves leaves them at different steps; resumed
    as they are, the lagging lane would take its next steps in a different batch (other partners, other
    padding) and, in the last bits, end elsewhere than an uninterrupted run. Returns the common step (None:
    all start again from step 0)."""
    at = shared_checkpoint_step(lanes)
    for lane in lanes:
        resume_lane(lane, at_most=-1 if at is None else at)
    return at


def resume_lane(lane: Lane, at_most: int | None = None) -> bool:
    """Restore the newest readable checkpoint (at step `at_most` or before). Without one the lane starts from
    step 0, and the records a killed earlier attempt wrote are dropped, so every record appears once."""
    found = lane.folder.latest_checkpoint(at_most) if at_most is None or at_most >= 0 else None
    if found is None:
        lane.folder.sink.rewind(-1)
        return False
    path, tensors, meta = found
    lane.prompt.load_state_dict({k.removeprefix("prompt."): v for k, v in tensors.items() if k.startswith("prompt.")})
    lane.optimizer.load_state_dict(_optimizer_state(tensors, meta["param_groups"]))
    # Older checkpoints also hold "rng_cpu", the global CPU RNG: nothing in a step draws from it, and
    # restoring it would only change the caller's random state, so it is ignored.
    lane.step = meta["step"]
    lane.status = "done" if meta.get("status") == "done" else "running"  # a finished lane stays finished
    lane.initial_eval = meta.get("initial_eval", {})
    lane.last_eval = meta.get("last_eval", {})
    # Records written after this checkpoint will be written again; drop them so the log has no duplicates.
    lane.folder.sink.rewind(lane.step)
    logger.info("lane %s: resumed from %s", lane.name, path)
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


def loop_context(lm: LoadedModel, precision: str, placement: str, checkpointing: bool = False) -> LoopContext:
    device = lm.model.get_input_embeddings().weight.device  # where the prompt and the batches live
    weights_dtype = lm.model.get_input_embeddings().weight.dtype
    return LoopContext(model=lm.model, bos_id=lm.info.bos_token_id, pad_id=lm.info.pad_token_id,
                       hidden_size=lm.info.hidden_size, device=device,
                       precision=resolve_precision(precision, device, weights_dtype), placement=str(placement),
                       checkpointing=checkpointing)


def resolve_checkpointing(setting: str, lm: LoadedModel, step_tokens: int, targets_per_token: float = 0.5) -> bool:
    """auto: checkpoint when one step's estimated activations would not fit the memory budget."""
    if setting != "auto":
        return setting == "on"
    from softeval.engine.packing import choose_max_batch_tokens

    budget = choose_max_batch_tokens(lm.model, targets_per_token=targets_per_token)
    if step_tokens <= budget:
        return False
    logger.info("a step of %d tokens is over the memory budget of %d: gradient checkpointing on",
                step_tokens, budget)
    return True


def evaluate_lane(ctx: LoopContext, lane: Lane) -> EvalResult:
    return evaluate_prompt(ctx.model, lane.prompt, lane.eval_examples, bos_id=ctx.bos_id, pad_id=ctx.pad_id,
                           placement=ctx.placement, batch_size=lane.cfg.eval_batch_size, precision=ctx.precision)


def _record_eval(ctx: LoopContext, lane: Lane) -> None:
    result = evaluate_lane(ctx, lane)
    lane.last_eval = {"step": lane.step, **result.to_dict()}
    if lane.step == 0 or not lane.initial_eval:
        lane.initial_eval = dict(lane.last_eval)
    lane.log({"step": lane.step, "eval_loss": result.loss, "eval_token_accuracy": result.token_accuracy})


def _fail_non_finite(lane: Lane, loss: float) -> None:
    """Stop a lane whose loss is NaN/inf; checkpoints taken at or after the bad parameters are set aside."""
    lane.status = "failed"
    # The loss at this step was computed with the parameters saved at `lane.step`: those are bad.
    kept = lane.folder.set_aside_checkpoints(lane.step)
    where = f"last good checkpoint kept: {kept}" if kept else "no good checkpoint to keep"
    lane.message = (f"non-finite loss ({loss}) at step {lane.step} in lane '{lane.name}'; stopped, {where}. "
                    "Try a lower --lr or --precision fp32")
    lane.log({"step": lane.step, "event": "non_finite_loss", "loss": str(loss)})


def _fail_non_finite_gradient(lane: Lane, loss: float) -> None:
    """Stop a lane whose loss was finite but whose gradient is not; its parameters (and checkpoints) are good.

    The usual cause is a prompt of exact zeros in a model without biases (Llama, Gemma): the zero vectors stay
    zero through every layer, and each RMSNorm multiplies their gradient by 1/sqrt(eps), which overflows.
    """
    lane.status = "failed"
    lane.message = (f"non-finite gradient at step {lane.step} in lane '{lane.name}' (the loss, {loss:.4g}, was "
                    f"finite); stopped before updating the prompt. A prompt of exact zeros (--init zeros) does this "
                    f"on models without biases: use --init random or vocab")
    lane.log({"step": lane.step, "event": "non_finite_gradient", "loss": loss})


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
        params = [p for p in lane.prompt.parameters() if p.grad is not None]  # a lane may score no token
        clip = lane.cfg.optim.grad_clip
        grad_norm = (torch.nn.utils.clip_grad_norm_(params, clip) if clip > 0
                     else torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params] or [torch.zeros(())])))
        if not math.isfinite(float(grad_norm)):
            _fail_non_finite_gradient(lane, loss_value)
            lane.optimizer.zero_grad(set_to_none=True)
            continue
        lr = lane.set_lr()
        lane.optimizer.step()
        lane.optimizer.zero_grad(set_to_none=True)
        lane.step += 1
        out[lane.name] = loss_value
        lane.log({"step": lane.step, "train_loss": loss_value, "lr": lr, "grad_norm": float(grad_norm)})
    return out


class _AtStepBoundary(KeyboardInterrupt):
    """The first Ctrl-C, acted on between steps: every lane's state is whole, so a checkpoint is safe."""


def train_lanes(ctx: LoopContext, lanes: list[Lane], show_progress: bool = True, desc: str = "train") -> None:
    """Train every lane to its max_steps (or failure). Evaluates, checkpoints and logs per lane.

    The first Ctrl-C is acted on at the next step boundary: a checkpoint for every lane, then InterruptedRun.
    A second Ctrl-C aborts at once *without* writing checkpoints (the state may be half-updated); the run
    then resumes from its last periodic checkpoint.
    """
    from tqdm.auto import tqdm

    for lane in lanes:
        if lane.step == 0 and not lane.initial_eval:
            _record_eval(ctx, lane)
    total = sum(lane.max_steps for lane in lanes)
    done = sum(min(lane.step, lane.max_steps) for lane in lanes)
    tokens_per_s = 0.0
    try:
        with tqdm(total=total, initial=done, desc=desc, disable=not show_progress, dynamic_ncols=True) as bar, \
                _deferred_interrupt() as interrupted:
            while any(lane.active for lane in lanes):
                if interrupted():
                    raise _AtStepBoundary
                t0 = time.perf_counter()
                active_before = [lane for lane in lanes if lane.active]
                n_tokens = sum(lane.cfg.optim.batch_size * (lane.prompt.num_virtual_tokens + _mean_len(lane))
                               for lane in active_before)
                step_losses = train_step(ctx, lanes)
                tokens_per_s = n_tokens / max(time.perf_counter() - t0, 1e-9)
                for lane in active_before:
                    if lane.status != "running":
                        continue
                    if lane.cfg.eval_every and lane.step % lane.cfg.eval_every == 0 and lane.step < lane.max_steps:
                        _record_eval(ctx, lane)
                    if lane.cfg.checkpoint_every and lane.step % lane.cfg.checkpoint_every == 0:
                        save_checkpoint(lane, also_keep=shared_checkpoint_step(lanes))
                    if lane.step >= lane.max_steps:
                        _finish_lane(ctx, lane, also_keep=shared_checkpoint_step(lanes))
                bar.update(len(step_losses))
                if step_losses:
                    shown = list(step_losses.values())
                    bar.set_postfix(loss=f"{sum(shown) / len(shown):.3f}", tok_s=f"{tokens_per_s:.0f}",
                                    lanes=len([lane for lane in lanes if lane.active]))
    except _AtStepBoundary:
        saved = [str(save_checkpoint(lane, also_keep=shared_checkpoint_step(lanes)))
                 for lane in lanes if lane.status == "running"]
        # How to continue depends on the command (train: --resume; distance, bench: re-run), so the CLI adds it.
        raise InterruptedRun("interrupted; checkpoint written" + (f" ({saved[0]})" if len(saved) == 1 else "")) from None
    except KeyboardInterrupt:
        raise InterruptedRun("aborted mid-step (second Ctrl-C); no checkpoint written, the last periodic one "
                             "is kept") from None
    for lane in lanes:
        if lane.status == "running" and lane.step >= lane.max_steps and not lane.last_eval.get("final"):
            _finish_lane(ctx, lane, also_keep=shared_checkpoint_step(lanes))


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


def _finish_lane(ctx: LoopContext, lane: Lane, also_keep: int | None = None) -> None:
    if lane.last_eval.get("step") != lane.step or not lane.last_eval.get("final"):
        result = evaluate_lane(ctx, lane)
        lane.last_eval = {"step": lane.step, "final": True, **result.to_dict()}
        lane.example_losses = result.example_losses
        lane.log({"step": lane.step, "eval_loss": result.loss, "eval_token_accuracy": result.token_accuracy})
    lane.status = "done"
    save_checkpoint(lane, also_keep=also_keep)
