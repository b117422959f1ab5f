"""The softeval step of the protocol: tune a soft prompt on the task's *training* split, rendered
exactly as evaluation renders it, with checkpoints at the saturation-curve steps of ONE run.

An example is the zero-shot context lm-eval builds (description + doc_to_text) followed by the
target as lm-eval's few-shot examples show it (target_delimiter + doc_to_target + fewshot_delimiter,
e.g. "… Answer:" → " C\n\n"), tokenized by the same adapter that evaluates: the prompt learns the
answer *format* that the generative scorer expects, and where to stop. Where the delimiter does not itself
stop generation (GSM8K stops at "Question:", and its worked answers hold single newlines), the target also
ends with the first stop string, as the next few-shot example would begin ("… #### 18\n\nQuestion:"):
without it a tuned prompt answers and then runs on to the token cap, repeating itself.

Schedule: constant learning rate after warmup, so the snapshot after k steps of a long run equals
a k-step run on the same examples (the data order is a pure function of seed and step) and one run
serves both the soft mode (k = --steps) and every point of the saturation curve. The examples are
--steps × batch (BenchConfig.tuning_size), never sized by the curve: a curve longer than --steps
cycles through them again in the same seeded order.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, replace
from pathlib import Path

from softeval.engine.batching import Example
from softeval.bench import harness
from softeval.errors import DataError
from softeval.engine.prompt import load_prompt, save_prompt
from softeval.tasks import TaskData
from softeval.engine.loop import evaluate_lane, loop_context, make_lane, new_prompt, resume_lane, train_lanes
from softeval.store import RunFolder
from softeval.train import TrainConfig, prompt_metadata

logger = logging.getLogger(__name__)

HELD_OUT = 8  # training-split items kept out of tuning to watch held-out loss


@dataclass
class TuningData:
    train: list[Example]
    held_out: list[Example]
    overlap_removed: int   # training items whose rendered question equals an evaluation item's
    train_keys: list[str]  # rendered questions of the tuning items (for the no-overlap check)


def stop_suffix(task, eos_text: str) -> str:
    """What a tuned prompt must write after the few-shot delimiter for generation to stop: nothing when the
    task is not generative or the delimiter holds one of its stop strings (letters: "\n" in "\n\n"), else
    its first stop string, or `eos_text` when it names none (lm-eval then stops at the end-of-text token)."""
    if task.config.output_type != "generate_until":
        return ""
    until = (task.config.generation_kwargs or {}).get("until") or []
    until = [u for u in ([until] if isinstance(until, str) else until) if u]
    delimiter = task.config.fewshot_delimiter or ""
    if any(u in delimiter for u in until):
        return ""
    return until[0] if until else eos_text


def tuning_examples(task, adapter, num_train: int, seed: int, eval_keys: set[str], stop: bool = True) -> TuningData:
    """Training-split documents → Examples (context tokens + scored target tokens). With `stop` the target
    ends with the few-shot delimiter (and, where that does not stop generation, the task's stop string: see
    stop_suffix), so the prompt also learns where a generated answer ends."""
    docs = harness.training_docs(task)
    keyed = [(harness.doc_key(task, d), d) for d in docs]
    kept = [(k, d) for k, d in keyed if k not in eval_keys]
    removed = len(keyed) - len(kept)
    if removed:
        logger.warning("%s: %d training items repeat an evaluation item; left out of tuning", task.config.task, removed)
    if len(kept) < 2:
        raise DataError(f"task {task.config.task}: its training split has {len(kept)} usable items; "
                        "soft-prompt tuning needs more")
    random.Random(seed).shuffle(kept)
    held = kept[:min(HELD_OUT, len(kept) // 4)]
    chosen = kept[len(held):len(held) + num_train]

    ending = task.config.fewshot_delimiter + stop_suffix(task, adapter.eos_text) if stop else ""

    def encode(doc) -> Example:
        context = harness.render_context(task, doc)
        target = harness.render_target(task, doc) + ending
        ctx_enc, cont_enc = adapter._encode_pair(context, target)
        return adapter.example(ctx_enc, cont_enc)

    return TuningData(train=[encode(d) for _, d in chosen], held_out=[encode(d) for _, d in held],
                      overlap_removed=removed, train_keys=[k for k, _ in chosen])


def snapshot_path(run_dir: Path, step: int) -> Path:
    return run_dir / f"prompt_step_{step:06d}.safetensors"


def tune_with_snapshots(adapter, data: TuningData, cfg: TrainConfig, snapshot_steps: list[int], run_dir: Path,
                        spec: dict, show_progress: bool = True) -> dict[int, Path]:
    """Train one prompt to max(snapshot_steps); save the prompt at each of those steps.

    Resumable: snapshots already on disk are kept and training continues from the newest checkpoint.
    """
    lm = adapter.lm
    steps = sorted(set(snapshot_steps))
    paths = {s: snapshot_path(run_dir, s) for s in steps}
    if all(p.exists() for p in paths.values()):
        return paths
    run_dir.mkdir(parents=True, exist_ok=True)
    task_data = TaskData(train=data.train, eval=data.held_out or data.train[:2], spec=spec)
    ctx = loop_context(lm, cfg.precision, cfg.prompt.placement)
    prompt = new_prompt(lm, cfg.prompt, cfg.num_virtual_tokens, cfg.seed, 0)
    lane_cfg = cfg.lane_config()
    with_steps = lambda k: replace(lane_cfg, optim=replace(lane_cfg.optim, max_steps=k))  # noqa: E731
    lane = make_lane(spec.get("task", "bench"), prompt, task_data, with_steps(max(steps)), RunFolder(run_dir))
    resume_lane(lane)
    for target in steps:
        if paths[target].exists() and lane.step >= target:
            continue
        if lane.step < target:
            lane.cfg = with_steps(target)
            lane.status = "running"
            train_lanes(ctx, [lane], show_progress=show_progress, desc=f"tune {spec.get('task')} → step {target}")
        if lane.status == "failed":
            raise DataError(lane.message)
        if lane.step != target:
            # Resumed past this step (a crash between checkpoint and snapshot, or a curve step added after the
            # run): only a fresh run from step 0 can make it, so say how rather than silently tune again.
            logger.warning("no snapshot at step %d (resumed at step %d); that curve point is skipped: delete %s to "
                           "tune again from step 0 and fill it", target, lane.step, RunFolder(run_dir).checkpoint_dir)
            paths.pop(target)
            continue
        save_prompt(paths[target], lane.prompt, prompt_metadata(lm, cfg.prompt, cfg.seed, task_data, lane.prompt,
                                                                lane.step))
        if lane.last_eval.get("step") != lane.step:  # step 0, or resumed here: nothing evaluated this prompt yet
            lane.last_eval = {"step": lane.step, **evaluate_lane(ctx, lane).to_dict()}
        logger.info("saved %s (held-out loss %.4f)", paths[target], lane.last_eval["loss"])
    return paths


def load_snapshot(adapter, path: Path):
    prompt, meta = load_prompt(path, adapter.lm.info)
    return prompt.to(adapter.device), meta.placement
