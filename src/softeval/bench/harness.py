"""Thin helpers over lm-eval's task objects: build them from config dicts, pick the evaluation
documents, and render documents exactly as lm-eval renders them for the model."""

from __future__ import annotations

import logging
import subprocess
from contextlib import contextmanager
from functools import lru_cache

from softeval.errors import DataError

logger = logging.getLogger(__name__)


class _NoCustomDatasetHint(logging.Filter):
    """softeval's spec tasks hand lm-eval their rows through `custom_dataset`; lm-eval answers every load of
    such a task with a hint about `--metadata` that does not apply to them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Custom kwargs can be passed to `--metadata`" not in record.getMessage()


@lru_cache(maxsize=1)
def task_manager():
    from lm_eval.tasks import TaskManager

    logging.getLogger("lm_eval.api.task").addFilter(_NoCustomDatasetHint())

    # Built-in lm-eval tasks are not indexed (13 s); softeval passes complete config dicts.
    return TaskManager(include_defaults=False)


def build_lm_eval_task(cfg: dict):
    """A ready lm-eval Task (dataset loaded) from a config dict."""
    import datasets

    try:
        loaded = task_manager().load([dict(cfg)])
    except (FileNotFoundError, datasets.exceptions.DatasetNotFoundError, ValueError) as exc:
        raise DataError(f"task {cfg.get('task')}: cannot load its data: {str(exc).splitlines()[0]}") from exc
    tasks = list(loaded["tasks"].values())
    assert len(tasks) == 1, loaded
    return tasks[0]


def eval_split(task) -> str:
    return task.config.test_split or task.config.validation_split


def eval_docs(task) -> list[dict]:
    return list(task.eval_docs)


def skipped_without_gold(task, split: str) -> int:
    """Items dropped by process_docs (no gold answer): raw split size minus processed size."""
    if split not in task.dataset:
        return 0
    raw = len(task.dataset[split])
    processed = {task.config.test_split: task.test_docs, task.config.validation_split: task.validation_docs,
                 task.config.training_split: task.training_docs}.get(split)
    return raw - len(processed()) if processed else 0


def training_docs(task) -> list[dict]:
    if not task.has_training_docs():
        raise DataError(f"task {task.config.task} has no training split; the soft mode tunes on it "
                        "(set training_split in the task config, or run --modes zero,few)")
    return list(task.training_docs())


def render_context(task, doc: dict) -> str:
    """The zero-shot context lm-eval builds for `doc` (description + doc_to_text)."""
    return task.fewshot_context(doc, num_fewshot=0)


def render_target(task, doc: dict) -> str:
    """The gold answer text as lm-eval's few-shot examples show it (target_delimiter + target)."""
    target = task.doc_to_target(doc)
    if isinstance(target, int) and task.config.output_type == "multiple_choice":
        target = task.doc_to_choice(doc)[target]
    elif isinstance(target, list):
        target = target[0]
    return task.config.target_delimiter + str(target)


def ll_formulation(task) -> str:
    """What a multiple_choice form scores: "letters" when every choice is a bare letter (lm-eval's mmlu:
    options listed in the prompt, the letter scored), else "cloze" (each choice's text scored as the
    continuation, lm-eval's arc_easy). Read from the rendered choices of the evaluation items, so a
    user's lm-eval YAML is classified like the built-in ones."""
    import string

    docs = eval_docs(task)[:20]
    letters = set(string.ascii_uppercase)
    if docs and all(str(c).strip() in letters for d in docs for c in task.doc_to_choice(d)):
        return "letters"
    return "cloze"


def doc_key(task, doc: dict) -> str:
    """What identifies an item for overlap checks: its rendered question."""
    return " ".join(task.doc_to_text(doc).split())


def one_sample_per_doc(samples: list[dict]) -> list[dict]:
    """lm-eval logs one sample per filter pipeline (GSM8K: strict-match and flexible-extract), all holding
    the same model output; softeval parses outputs itself, so keep one per item, ordered by doc_id."""
    by_doc: dict[int, dict] = {}
    for s in samples:
        by_doc.setdefault(s["doc_id"], s)
    return [by_doc[d] for d in sorted(by_doc)]


@contextmanager
def quiet_git_hash():
    """lm-eval's simple_evaluate records the git hash of the cwd by running `git describe` with its stderr
    inherited, so outside a git checkout every evaluation prints "fatal: not a git repository". Within this
    block lm-eval gets the same hash (or None) from the same command with git's stderr discarded."""
    import os

    import lm_eval.evaluator
    from lm_eval.loggers.utils import get_commit_from_path

    def git_hash() -> str | None:
        try:
            out = subprocess.run(["git", "describe", "--always"], capture_output=True, text=True, check=True)
        except (subprocess.CalledProcessError, FileNotFoundError):
            return get_commit_from_path(os.getcwd())  # lm-eval's own fallback
        return out.stdout.strip()

    original = lm_eval.evaluator.get_git_commit_hash
    lm_eval.evaluator.get_git_commit_hash = git_hash
    try:
        yield
    finally:
        lm_eval.evaluator.get_git_commit_hash = original
