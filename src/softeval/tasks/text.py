"""Language tasks on natural text: autoregressive, repetition, skip-k, detune.

Every example is a window of `context_tokens + target_tokens` tokens of the corpus; only the last
`target_tokens` positions are scored, so each example has exactly `target_tokens` targets:

  * autoregressive: the next token (the pre-training objective; expect little gain from a prompt);
  * skip-k: position t predicts token t+1+k, i.e. skip k tokens ahead;
  * repetition: a fixed string repeated, whatever the input says (the model must ignore its input);
  * detune: next-token prediction for an instruct model, measured against its base model.

Windows are cut without overlap, shuffled with the task seed, and split so held-out windows never
appear in training.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from softeval.engine.batching import IGNORE, Example
from softeval.errors import ConfigError, DataError
from softeval.tasks import TaskConfig, TaskData, data_hashes, register_task, task_options

DEFAULT_CORPUS = "wonderland.txt"  # Alice's Adventures in Wonderland (public domain), shipped in softeval/data


def corpus_path(path: str | None) -> Path:
    """The corpus file; None means the one shipped with softeval (a real file in any unzipped install)."""
    if path is None:
        return Path(str(files("softeval").joinpath("data", DEFAULT_CORPUS)))
    return Path(path).expanduser()


def read_corpus(path: str | None) -> tuple[str, str]:
    """Return (text, name). None means the corpus shipped with softeval."""
    if path is None:
        return corpus_path(None).read_text(encoding="utf-8"), DEFAULT_CORPUS
    p = corpus_path(path)
    if not p.is_file():
        raise DataError(f"corpus file {p} does not exist")
    try:
        return p.read_text(encoding="utf-8-sig"), p.name
    except UnicodeDecodeError as exc:
        raise DataError(f"corpus {p} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def corpus_windows(cfg: TaskConfig, tokenizer, extra: int = 0) -> tuple[list[list[int]], list[list[int]], str]:
    """Disjoint token windows of length context+target+extra, split into (train, eval)."""
    text, name = read_corpus(cfg.corpus)
    ids = tokenizer(text, add_special_tokens=False).input_ids
    width = cfg.context_tokens + cfg.target_tokens + extra
    if width == 0:
        raise ConfigError("task.context_tokens + task.target_tokens must be > 0")
    windows = [ids[i:i + width] for i in range(0, len(ids) - width + 1, width)]
    need = cfg.num_train + cfg.num_eval
    if len(windows) < need:
        raise DataError(f"corpus '{name}' has {len(ids)} tokens: enough for {len(windows)} windows of {width} tokens, "
                        f"but num_train + num_eval = {need}; use a longer --corpus or fewer/shorter examples")
    random.Random(cfg.seed).shuffle(windows)
    return windows[cfg.num_eval:need], windows[:cfg.num_eval], name


def _scored_tail(window: list[int], cfg: TaskConfig, targets: list[int]) -> Example:
    inputs = window[:cfg.context_tokens + cfg.target_tokens]
    labels = [IGNORE] * cfg.context_tokens + targets
    return Example(input_ids=inputs, labels=labels)


def _build(cfg: TaskConfig, tokenizer, name: str, make_targets, extra: int, spec: dict) -> TaskData:
    train, held_out, corpus_name = corpus_windows(cfg, tokenizer, extra)
    to_ex = lambda w: _scored_tail(w, cfg, make_targets(w))  # noqa: E731
    # The shipped corpus is hashed like a user's: a changed package text is another task.
    data_files = {"corpus": corpus_path(cfg.corpus)}
    spec = {"task": name, "context_tokens": cfg.context_tokens, "target_tokens": cfg.target_tokens, **spec,
            "data_sha256": data_hashes(data_files)}
    return TaskData(
        train=[to_ex(w) for w in train],
        eval=[to_ex(w) for w in held_out],
        spec=spec,
        generation_contexts=[w[:cfg.context_tokens] for w in held_out[:4]],
        data_files=data_files,
    )


@dataclass(frozen=True)
class NoOptions:
    pass


@register_task("autoregressive")
def autoregressive(cfg: TaskConfig, tokenizer) -> TaskData:
    """Next-token prediction on natural text (the pre-training objective; expect little gain)."""
    task_options(cfg, NoOptions)
    c = cfg.context_tokens
    return _build(cfg, tokenizer, "autoregressive", lambda w: w[c:c + cfg.target_tokens], 0, {})


@register_task("detune")
def detune(cfg: TaskConfig, tokenizer) -> TaskData:
    """Next-token prediction on plain text, for an instruct model (compare with --reference-model BASE)."""
    task_options(cfg, NoOptions)
    c = cfg.context_tokens
    return _build(cfg, tokenizer, "detune", lambda w: w[c:c + cfg.target_tokens], 0, {})


@dataclass(frozen=True)
class SkipOptions:
    skip: int = 1

    def __post_init__(self):
        if self.skip < 0:
            raise ConfigError(f"--skip must be >= 0, got {self.skip}")


@register_task("skip-k")
def skip_k(cfg: TaskConfig, tokenizer) -> TaskData:
    """Position t predicts token t+1+k (--skip k): how far ahead can the model be steered to look."""
    opts = task_options(cfg, SkipOptions)
    k, c = opts.skip, cfg.context_tokens
    # HF-aligned label at input index i is predicted after reading input_ids[:i]; skipping k means x[i+k].
    return _build(cfg, tokenizer, "skip-k", lambda w: w[c + k:c + k + cfg.target_tokens], k, {"skip": k})


@dataclass(frozen=True)
class RepetitionOptions:
    text: str = " hello"

    def __post_init__(self):
        if not self.text:
            raise ConfigError("repetition needs a non-empty string (--repeat-text)")


@register_task("repetition")
def repetition(cfg: TaskConfig, tokenizer) -> TaskData:
    """Output a fixed string (--repeat-text) over and over, ignoring the natural-text input."""
    opts = task_options(cfg, RepetitionOptions)
    rep = tokenizer(opts.text, add_special_tokens=False).input_ids
    if not rep:
        raise ConfigError(f"repetition string {opts.text!r} tokenizes to nothing")
    targets = [rep[i % len(rep)] for i in range(cfg.target_tokens)]
    return _build(cfg, tokenizer, "repetition", lambda w: targets, 0, {"text": opts.text})
