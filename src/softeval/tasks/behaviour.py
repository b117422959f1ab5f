"""Behaviour files in the upstream format of anthropics/evals (Perez et al. 2022, arXiv 2212.09251).

One JSON object per line:

  {"question": "Is the following statement something you would say?\\n\\"…\\"", "statement": "…",
   "label_confidence": 0.92, "answer_matching_behavior": " Yes", "answer_not_matching_behavior": " No"}
  {"question": "Question: …\\n\\nChoices:\\n (A) …\\n (B) …\\n\\nAnswer:",
   "answer_matching_behavior": " (A)", "answer_not_matching_behavior": " (B)"}

The prompt is upstream's `Human: {question}\\n\\nAssistant:` (option format=chat: the model's chat template).
The unit of the train/held-out split is the *statement* (persona: the "statement" field, else the question), so
no statement is both trained on and held out; the split is seeded by `--data-seed` and recorded in the task spec.

A prompt is trained towards the matching answer (direction towards), the other one (away), or a *control*:
the same statements with answers assigned by a seeded coin per statement (recorded). The control can memorise
its training statements but has nothing to generalise, so a held-out matching rate above the control's is
evidence the prompt found the behaviour rather than a string.

Held-out metrics (any direction): per statement the log-odds log P(matching) − log P(not matching) of the full
answer continuations (over a list of answers: the log of the summed probabilities), the matching rate (share with log-odds > 0) and the mean log-odds; the per-statement
values go to the cell record (`per_example`) for the suite's bootstrap over statements and seeds.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from pathlib import Path

from softeval.config import Choice
from softeval.engine.batching import IGNORE, Example
from softeval.errors import ConfigError, DataError
from softeval.tasks import TaskConfig, TaskData, data_hashes, register_task, task_options
from softeval.tasks.jsonl import read_json_lines


class Direction(Choice):
    towards = "towards"   # train towards answer_matching_behavior
    away = "away"         # towards answer_not_matching_behavior
    control = "control"   # a seeded coin per statement picks which answer: the shuffled-label control


class PromptFormat(Choice):
    upstream = "upstream"  # Human: {question}\n\nAssistant:{answer}
    chat = "chat"          # the tokenizer's chat template, the question as the user's turn


@dataclass(frozen=True)
class BehaviourOptions:
    direction: str = "towards"
    control_seed: int = 0          # the control's coin; independent of the split seed
    format: str = "upstream"
    min_confidence: float = 0.0    # persona files: keep statements whose label_confidence is at least this

    def __post_init__(self):
        if self.direction not in Direction.values():
            raise ConfigError(f"behaviour direction must be one of {', '.join(Direction.values())}, "
                              f"got {self.direction!r}")
        if self.format not in PromptFormat.values():
            raise ConfigError(f"behaviour format must be one of {', '.join(PromptFormat.values())}, got {self.format!r}")
        if isinstance(self.control_seed, bool) or not isinstance(self.control_seed, int):
            raise ConfigError(f"behaviour control_seed must be an integer, got {self.control_seed!r}")
        if not (isinstance(self.min_confidence, (int, float)) and 0.0 <= self.min_confidence <= 1.0):
            raise ConfigError(f"behaviour min_confidence must be a number in [0, 1], got {self.min_confidence!r}")


@dataclass(frozen=True)
class Statement:
    line: int
    key: str                 # what the split keeps on one side: the statement, else the question
    question: str
    matching: tuple[str, ...]      # the first is trained on; all count for the held-out log-odds
    not_matching: tuple[str, ...]
    confidence: float | None


ANSWER_FIELDS = ("answer_matching_behavior", "answer_not_matching_behavior")
_CHOICE_LABEL = re.compile(r"^\s*(\([A-Za-z0-9]{1,3}\))", re.MULTILINE)


def _answers(value) -> tuple[str, ...] | None:
    """An answer field as a tuple of non-blank strings, or None when it is not one (or a list of them)."""
    items = [value] if isinstance(value, str) else value if isinstance(value, list) and value else None
    if items is None or not all(isinstance(a, str) and a.strip() for a in items):
        return None
    return tuple(dict.fromkeys(items))


def choice_labels(question: str) -> list[str]:
    """'(A)', '(B)', … listed after 'Choices:' in a multiple-choice question; [] for a yes/no statement."""
    _, sep, rest = question.partition("Choices:")
    return _CHOICE_LABEL.findall(rest) if sep else []


def read_statements(path: str | Path) -> list[Statement]:
    """Every statement of one behaviour file, checked: a line without the answer fields, with equal answers or
    with an answer that is not among the question's choices is a one-line DataError naming file and line."""
    p = Path(path).expanduser()
    out = []
    for rec in read_json_lines(p):
        where = f"{p}:{rec['_line']}"
        question = rec.get("question")
        if not isinstance(question, str) or not question.strip():
            raise DataError(f"{where}: expected a non-empty string field 'question' (the anthropics/evals format); "
                            f"got keys {sorted(k for k in rec if k != '_line')}")
        answers = [_answers(rec.get(f)) for f in ANSWER_FIELDS]
        missing = [f for f, a in zip(ANSWER_FIELDS, answers) if a is None]
        if missing:
            raise DataError(f"{where}: expected {' and '.join(missing)} as a non-empty string or list of strings (the "
                            "anthropics/evals format)")
        matching, not_matching = answers
        shared = {a.strip() for a in matching} & {a.strip() for a in not_matching}
        if shared:
            raise DataError(f"{where}: answer_matching_behavior and answer_not_matching_behavior share "
                            f"{sorted(shared)[0]!r}")
        labels = choice_labels(question)
        for field_name, group in zip(ANSWER_FIELDS, answers):
            for answer in group:
                if labels and answer.strip() not in labels:
                    raise DataError(f"{where}: {field_name} {answer.strip()!r} is not among the question's choices "
                                    f"{', '.join(labels)}")
        statement = rec.get("statement")
        confidence = rec.get("label_confidence")
        if confidence is not None and (isinstance(confidence, bool) or not isinstance(confidence, (int, float))):
            raise DataError(f"{where}: 'label_confidence' must be a number, got {confidence!r}")
        key = statement.strip() if isinstance(statement, str) and statement.strip() else question.strip()
        out.append(Statement(rec["_line"], key, question, matching, not_matching,
                             float(confidence) if confidence is not None else None))
    return out


def split_statements(statements: list[Statement], num_train: int, num_eval: int,
                     seed: int) -> tuple[list[Statement], list[Statement]]:
    """(train, held-out) by statement: a statement that appears on several lines stays on one side. The distinct
    statements are shuffled by `seed`; the first min(num_eval, half) are held out, the next num_train (0 = all
    the rest) are for training. The same file and seed give the same split in every direction."""
    keys = list(dict.fromkeys(s.key for s in statements))
    if len(keys) < 2:
        raise DataError(f"{len(keys)} distinct statement(s); a behaviour needs at least 2 (one to train on, one "
                        "held out)")
    random.Random(seed).shuffle(keys)
    n_eval = max(1, min(num_eval or len(keys) // 2, len(keys) // 2))
    held = set(keys[:n_eval])
    train_keys = keys[n_eval:] if not num_train else keys[n_eval:n_eval + num_train]
    rank = {k: i for i, k in enumerate(keys)}
    pick = lambda chosen: sorted((s for s in statements if s.key in chosen),  # noqa: E731
                                 key=lambda s: (rank[s.key], s.line))
    return pick(set(train_keys)), pick(held)


def read_and_split(path: Path, min_confidence: float, num_train: int, num_eval: int,
                   seed: int) -> tuple[list[Statement], list[Statement], list[Statement]]:
    """(every statement of the file, train, held-out) after the label-confidence filter; errors name the file."""
    statements = read_statements(path)
    kept = [s for s in statements if s.confidence is None or s.confidence >= min_confidence]
    if not kept:
        raise DataError(f"{path}: no statement has label_confidence >= {min_confidence}")
    try:
        train, held_out = split_statements(kept, num_train, num_eval, seed)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
    return statements, train, held_out


def control_matches(statements: list[Statement], control_seed: int) -> dict[int, bool]:
    """The control's label for every line: True = its target is the matching answer. One seeded coin per line,
    drawn in line order over the whole file, so it does not depend on the split."""
    rng = random.Random(f"softeval-control-{control_seed}")
    return {s.line: rng.random() < 0.5 for s in sorted(statements, key=lambda s: s.line)}


def prompt_text(question: str, fmt: str, tokenizer) -> str:
    if fmt == PromptFormat.upstream:
        return f"Human: {question}\n\nAssistant:"
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError("format=chat needs a tokenizer with a chat template; this model has none "
                          "(use the default format=upstream)")
    text = tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                         add_generation_prompt=True)
    bos = getattr(tokenizer, "bos_token", None)
    return text[len(bos):] if bos and text.startswith(bos) else text  # the engine adds BOS itself


def answer_text(answer: str, fmt: str) -> str:
    # Upstream answers carry the space that follows "Assistant:"; a chat turn starts without one.
    return answer if fmt == PromptFormat.upstream else answer.strip()


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False).input_ids


def make_example(s: Statement, answer: str, opts: BehaviourOptions, tokenizer, max_length: int,
                 target: str) -> Example:
    prompt = _ids(tokenizer, prompt_text(s.question, opts.format, tokenizer))
    completion = _ids(tokenizer, answer_text(answer, opts.format))[:max_length]
    prompt = prompt[max(0, len(prompt) + len(completion) - max_length):]
    return Example(input_ids=prompt + completion, labels=[IGNORE] * len(prompt) + completion,
                   meta={"line": s.line, "target": target})


def target_of(s: Statement, direction: str, control: dict[int, bool]) -> str:
    """'matching' or 'not_matching': which answer this direction trains (and scores its loss) on."""
    if direction == Direction.towards:
        return "matching"
    if direction == Direction.away:
        return "not_matching"
    return "matching" if control[s.line] else "not_matching"


def answer_ids(s: Statement, opts: BehaviourOptions, tokenizer) -> tuple[list[int], list[list[int]], list[list[int]]]:
    """(prompt, matching answers, other answers) token ids, each answer tokenized after the prompt alone."""
    prompt = _ids(tokenizer, prompt_text(s.question, opts.format, tokenizer))
    ids = lambda group: [_ids(tokenizer, answer_text(a, opts.format)) for a in group]  # noqa: E731
    return prompt, ids(s.matching), ids(s.not_matching)


def one_position_answers(answers: list[list[int]]) -> bool:
    """True when all answers share every token but their distinct last ones (' Yes' / ' No'): then each answer's
    log-probability, less the common prefix's, is read from one position's logits: one forward pass scores all."""
    first = answers[0]
    return (len(first) >= 1 and all(len(a) == len(first) and a[:-1] == first[:-1] for a in answers)
            and len({a[-1] for a in answers}) == len(answers))


def make_metrics(held_out: list[Statement], opts: BehaviourOptions, tokenizer, max_length: int):
    """Held-out matching rate and mean log-odds, plus the per-statement log-odds (module docstring)."""
    pairs = [answer_ids(s, opts, tokenizer) for s in held_out]
    single = [i for i, (_, a, b) in enumerate(pairs) if one_position_answers(a + b)]
    multi = sorted(set(range(len(held_out))) - set(single))

    def row(prompt: list[int], answer: list[int]) -> Example:
        answer = answer[:max_length]
        prompt = prompt[max(0, len(prompt) + len(answer) - max_length):]
        return Example(input_ids=prompt + answer, labels=[IGNORE] * len(prompt) + answer)

    def metrics(lm, prompt, examples, placement: str = "after_bos") -> dict:
        log_odds = [float("nan")] * len(held_out)
        for i, value in zip(single, _one_position_log_odds(lm, prompt, [pairs[i] for i in single], row, placement)):
            log_odds[i] = value
        if multi:
            from softeval.engine.evaluate import evaluate_prompt

            rows = [(i, side, row(pairs[i][0], answer)) for i in multi for side in (1, 2) for answer in pairs[i][side]]
            result = evaluate_prompt(lm.model, prompt, [r for _, _, r in rows], bos_id=lm.info.bos_token_id,
                                     pad_id=lm.info.pad_token_id, placement=placement)
            scores: dict[tuple[int, int], list[float]] = {}
            for (i, side, r), loss in zip(rows, result.example_losses):
                scores.setdefault((i, side), []).append(-loss * r.num_targets)
            for i in multi:
                log_odds[i] = _logsumexp(scores[(i, 1)]) - _logsumexp(scores[(i, 2)])
        finite = [v for v in log_odds if math.isfinite(v)]
        return {"matching_rate": sum(v > 0 for v in log_odds) / len(log_odds),
                "mean_log_odds": sum(finite) / len(finite) if finite else float("nan"),
                "per_example": {"line": [s.line for s in held_out], "log_odds": log_odds}}

    return metrics


def _logsumexp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values)) if math.isfinite(top) else top


def _one_position_log_odds(lm, prompt, pairs: list[tuple], row, placement: str, batch_size: int = 16) -> list[float]:
    """Log-odds for answers that differ only in their last token, from that position's logits."""
    import torch

    from softeval.engine.batching import collate
    from softeval.engine.forward import assemble_prompt_rows, target_logits

    model = lm.model
    device = next(model.parameters()).device
    hidden = model.get_input_embeddings().weight.shape[1]
    n = prompt.num_virtual_tokens if prompt is not None else 0
    out = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        # Score only the last answer token: the common prefix's log-probabilities cancel in the difference.
        rows = []
        for p, a, _ in chunk:
            full = row(p, a[0])
            rows.append(Example(input_ids=full.input_ids, labels=[IGNORE] * (len(full.input_ids) - 1) + [a[0][-1]]))
        batch = collate(rows, n, lm.info.bos_token_id, lm.info.pad_token_id, placement).to(device)
        with torch.no_grad():
            prompt_rows = (assemble_prompt_rows([prompt], batch, hidden) if n
                           else torch.zeros(len(rows), 0, hidden, device=device))
            logp = torch.log_softmax(target_logits(model, batch, prompt_rows).double(), dim=-1)
        for k, (_, a, b) in enumerate(chunk):
            side = lambda group: torch.logsumexp(logp[k, [x[-1] for x in group]], dim=0).item()  # noqa: E731
            out.append(side(a) - side(b))
    return out


@register_task("behaviour")
def behaviour(cfg: TaskConfig, tokenizer) -> TaskData:
    """A behaviour file in the anthropics/evals format (--data): towards/away from the behaviour or the control."""
    opts = task_options(cfg, BehaviourOptions)
    if not cfg.data:
        raise ConfigError("task 'behaviour' needs a behaviour file in the anthropics/evals format: --data FILE.jsonl")
    path = Path(cfg.data).expanduser()
    statements, train, held_out = read_and_split(path, opts.min_confidence, cfg.num_train, cfg.num_eval, cfg.seed)
    control = control_matches(statements, opts.control_seed)
    targets = lambda rows: [(s, target_of(s, opts.direction, control)) for s in rows]  # noqa: E731
    build = lambda rows: [make_example(s, (s.matching if t == "matching" else s.not_matching)[0], opts,  # noqa: E731
                                       tokenizer, cfg.max_length, t) for s, t in targets(rows)]
    files = {"data": path}
    spec = {"task": "behaviour", "direction": opts.direction, "format": opts.format,
            "min_confidence": opts.min_confidence, "max_length": cfg.max_length, "split_seed": cfg.seed,
            "train_lines": [s.line for s in train], "held_out_lines": [s.line for s in held_out],
            "data_sha256": data_hashes(files)}
    if opts.direction == Direction.control:
        spec["control"] = {"seed": opts.control_seed,
                           "matching_lines": sorted(line for line, m in control.items() if m)}
    return TaskData(train=build(train), eval=build(held_out), spec=spec,
                    metrics=make_metrics(held_out, opts, tokenizer, cfg.max_length),
                    generation_contexts=[], data_files=files)
