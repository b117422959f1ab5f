"""Benchmark tasks: which lm-eval task configs a benchmark name stands for, and where its data lives.

A benchmark has a generative form (the model writes its answer; scored for format and accuracy)
and, for multiple choice, a log-likelihood form (choices scored as continuations; format-free
knowledge). Each form is an ordinary lm-eval task config (a YAML in `task_configs/`), so few-shot
construction, filters and metrics are lm-eval's own.

Data comes from the Hugging Face Hub by default. With `data_dir`, the built-in tasks read local
files in their original release layouts instead (`datasets` json/csv builders with `data_files`,
plus a `process_docs` that maps the layout to the Hub one), e.g. /path/arc/ARC-Easy/ARC-Easy-Test.jsonl.

A task can also be given as a path:
  * an lm-eval task YAML (generate_until → generative form, multiple_choice → log-likelihood form);
    `metadata.softeval_answer: letter|number|text` tells the parser what an answer looks like;
  * softeval's short spec for a JSONL/CSV file (see `spec_configs` and docs/bench.md).
"""

from __future__ import annotations

import copy
import glob
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from softeval.bench import layouts
from softeval.errors import ConfigError, DataError, unknown_choice

logger = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).parent / "task_configs"
FORMS = ("gen", "ll")


@dataclass(frozen=True)
class LocalLayout:
    """Original-layout files under --data-dir: builder (json/csv), split → relative path or glob."""

    builder: str
    files: dict[str, str]
    process_docs: Callable
    builder_kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class BuiltinTask:
    name: str
    answer: str                    # letter | number | text
    gen_yaml: str
    ll_yaml: str | None
    local: LocalLayout


def _arc(name: str, folder: str) -> BuiltinTask:
    base = f"arc/{folder}/{folder}"
    return BuiltinTask(name, "letter", f"{name}_letter.yaml", f"{name}.yaml", LocalLayout(
        "json", {"train": f"{base}-Train.jsonl", "validation": f"{base}-Dev.jsonl", "test": f"{base}-Test.jsonl"},
        layouts.arc_local))


BUILTIN_TASKS: dict[str, BuiltinTask] = {t.name: t for t in [
    _arc("arc_easy", "ARC-Easy"),
    _arc("arc_challenge", "ARC-Challenge"),
    BuiltinTask("mmlu", "letter", "mmlu_letter.yaml", "mmlu.yaml", LocalLayout(
        "csv", {"test": "mmlu/test/*_test.csv", "validation": "mmlu/val/*_val.csv", "dev": "mmlu/dev/*_dev.csv"},
        layouts.mmlu_local, {"column_names": ["question", "A", "B", "C", "D", "answer"], "keep_default_na": False})),
    BuiltinTask("commonsense_qa", "letter", "commonsense_qa_letter.yaml", "commonsense_qa.yaml", LocalLayout(
        "json", {"train": "commonsenseqa/train.jsonl", "validation": "commonsenseqa/dev.jsonl"}, layouts.csqa_local)),
    BuiltinTask("gsm8k", "number", "gsm8k.yaml", None, LocalLayout(
        "json", {"train": "gsm8k/train.jsonl", "test": "gsm8k/test.jsonl"}, layouts.gsm8k_docs)),
]}
ALIASES = {"csqa": "commonsense_qa", "arc-easy": "arc_easy", "arc-challenge": "arc_challenge"}


@dataclass
class BenchTask:
    """One benchmark as softeval runs it: lm-eval configs per form and how to read answers."""

    name: str
    answer: str                    # letter | number | text
    configs: dict[str, dict]       # form ("gen" / "ll") → lm-eval task config dict
    source: str                    # hub | local | yaml | spec

    @property
    def forms(self) -> list[str]:
        return [f for f in FORMS if f in self.configs]


def known_tasks() -> list[str]:
    return sorted(BUILTIN_TASKS)


def load_task_yaml(path: Path) -> dict:
    """An lm-eval task YAML with its `!function` references and `include`s resolved, as lm-eval does."""
    from lm_eval.tasks._yaml_loader import load_yaml

    try:
        return load_yaml(path)
    except (OSError, yaml.YAMLError, ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"cannot read task config {path}: {str(exc).splitlines()[0]}") from exc


def _local_dataset(task: str, local: LocalLayout, data_dir: Path, needed: list[str]) -> dict:
    files = {}
    for split, pattern in local.files.items():
        matches = sorted(glob.glob(str(data_dir / pattern)))
        if not matches:
            if split in needed:
                raise DataError(f"data dir {data_dir} has no {split} split for {task}: expected {pattern} "
                                "(original release layout, see the data dir's MANIFEST or docs/bench.md)")
            continue
        files[split] = matches if any(c in pattern for c in "*?[") else matches[0]
    return {"dataset_path": local.builder, "dataset_name": None,
            "dataset_kwargs": {"data_files": files, **local.builder_kwargs}}


def _needed_splits(cfg: dict, soft: bool) -> list[str]:
    needed = [cfg.get("test_split") or cfg.get("validation_split")]
    if soft and cfg.get("training_split"):
        needed.append(cfg["training_split"])
    if cfg.get("fewshot_split"):
        needed.append(cfg["fewshot_split"])
    return [s for s in needed if s]


def builtin_task(name: str, data_dir: str | Path | None = None, soft: bool = True) -> BenchTask:
    spec = BUILTIN_TASKS[name]
    configs = {"gen": load_task_yaml(CONFIG_DIR / spec.gen_yaml)}
    if spec.ll_yaml:
        configs["ll"] = load_task_yaml(CONFIG_DIR / spec.ll_yaml)
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        if not root.is_dir():
            raise DataError(f"--data-dir {root} is not a directory")
        for form, cfg in configs.items():
            cfg.update(_local_dataset(name, spec.local, root, _needed_splits(cfg, soft)))
            cfg["process_docs"] = spec.local.process_docs
    return BenchTask(name=name, answer=spec.answer, configs=configs, source="local" if data_dir else "hub")


def resolve_task(ref: str, data_dir: str | Path | None = None, soft: bool = True) -> BenchTask:
    """A --task value → BenchTask: a built-in name, an lm-eval YAML path, or a softeval spec path."""
    key = ALIASES.get(ref, ref)
    if key in BUILTIN_TASKS:
        return builtin_task(key, data_dir, soft)
    path = Path(ref).expanduser()
    if path.suffix in (".yaml", ".yml") and path.is_file():
        raw = yaml.safe_load(path.read_text()) if "!function" not in path.read_text() else None
        if isinstance(raw, dict) and "fields" in raw:
            return spec_task(path, raw)
        return yaml_task(path)
    raise ConfigError(unknown_choice("task", ref, known_tasks()) +
                      "; or pass an lm-eval task YAML or a softeval task spec (.yaml) path")


def yaml_task(path: Path) -> BenchTask:
    cfg = load_task_yaml(path)
    if "task" not in cfg:
        raise ConfigError(f"{path} is not an lm-eval task config (no 'task' key)")
    form = "gen" if cfg.get("output_type", "generate_until") == "generate_until" else "ll"
    answer = (cfg.get("metadata") or {}).get("softeval_answer", "letter" if form == "ll" else "text")
    if answer not in ("letter", "number", "text"):
        raise ConfigError(f"{path}: metadata.softeval_answer must be letter, number or text, got '{answer}'")
    return BenchTask(name=cfg["task"], answer=answer, configs={form: cfg}, source="yaml")


# --------------------------------------------------------------------------- softeval's short spec

SPEC_KEYS = {"task", "kind", "files", "fields", "format", "fewshot_split", "description"}


def spec_task(path: Path, spec: dict) -> BenchTask:
    """softeval's short spec for a JSONL/CSV file of questions → lm-eval configs.

        task: capitals               # name used in results
        kind: multiple_choice        # or short_answer
        files: {train: train.jsonl, test: test.jsonl}   # relative to this file; .csv works too
        fields: {question: q, choices: options, answer: gold}
        # multiple choice: `choices` is a list field, or a list of column names ([A, B, C, D]);
        # `answer` may be a letter, a 0-based index or the text of the right choice.
    """
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; a task spec has {', '.join(sorted(SPEC_KEYS))}")
    for key in ("task", "kind", "files", "fields"):
        if key not in spec:
            raise ConfigError(f"{path}: task spec needs '{key}' (see docs/bench.md)")
    kind, fields = spec["kind"], spec["fields"]
    if kind not in ("multiple_choice", "short_answer"):
        raise ConfigError(f"{path}: kind must be multiple_choice or short_answer, got '{kind}'")
    need = ["question", "answer"] + (["choices"] if kind == "multiple_choice" else [])
    missing = [k for k in need if k not in fields]
    if missing:
        raise ConfigError(f"{path}: fields needs {', '.join(missing)} (names of your file's columns)")
    files = {}
    for split, rel in spec["files"].items():
        f = (path.parent / rel).expanduser()
        if not f.is_file():
            raise DataError(f"{path}: {split} file {f} does not exist")
        files[split] = str(f)
    eval_split = "test" if "test" in files else "validation" if "validation" in files else None
    if eval_split is None:
        raise DataError(f"{path}: files needs a 'test' (or 'validation') split to evaluate on")
    builder = "csv" if all(f.endswith(".csv") for f in files.values()) else "json"
    base = {"dataset_path": builder, "dataset_name": None, "dataset_kwargs": {"data_files": files},
            "process_docs": _spec_processor(kind, fields), "test_split": eval_split,
            "training_split": "train" if "train" in files else None,
            "validation_split": "validation" if "validation" in files else None,
            "description": spec.get("description", "") or "",
            "metadata": {"version": 1.0, "softeval_spec": str(path)}}
    if spec.get("fewshot_split"):
        base["fewshot_split"] = spec["fewshot_split"]
    if kind == "short_answer":
        gen = {**base, "task": spec["task"], "output_type": "generate_until",
               "doc_to_text": "Question: {{softeval_question}}\nAnswer:", "doc_to_target": "{{softeval_gold}}",
               "generation_kwargs": {"until": ["\n", "Question:"], "max_gen_toks": 32, "do_sample": False},
               "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True,
                                "ignore_case": True, "ignore_punctuation": True}]}
        return BenchTask(name=spec["task"], answer="text", configs={"gen": gen}, source="spec")
    text = ("Question: {{softeval_question}}\n{% for label in softeval_labels %}{{label}}. "
            "{{softeval_choices[loop.index0]}}\n{% endfor %}Answer:")
    gen = {**base, "task": f"{spec['task']}_letter", "output_type": "generate_until", "doc_to_text": text,
           "doc_to_target": "{{softeval_gold}}",
           "generation_kwargs": {"until": ["\n", "Question:"], "max_gen_toks": 16, "do_sample": False},
           "filter_list": [{"name": "strict-match", "filter": [
               {"function": "regex", "regex_pattern": "^\\s*\\(?([A-J])\\)?\\.?\\s*$"}, {"function": "take_first"}]}],
           "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}]}
    ll = {**copy.deepcopy(base), "task": spec["task"], "output_type": "multiple_choice", "doc_to_text": text,
          "doc_to_choice": "{{softeval_labels}}", "doc_to_target": "{{softeval_labels.index(softeval_gold)}}",
          "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}]}
    return BenchTask(name=spec["task"], answer="letter", configs={"gen": gen, "ll": ll}, source="spec")


def _scalar(value) -> str | None:
    """A cell as text. Mixed-type JSON columns come back JSON-encoded from `datasets` ('"B"', '1')."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        return None if decoded is None else str(decoded) if isinstance(decoded, (str, int, float)) else value
    return str(value)


def _spec_processor(kind: str, fields: dict) -> Callable:
    q_key, a_key, c_key = fields["question"], fields["answer"], fields.get("choices")

    def gold_of(doc) -> tuple[list[str], list[str], str]:
        answer = _scalar(doc.get(a_key))
        if kind == "short_answer":
            return [], [], "" if answer is None else str(answer).strip()
        choices = [doc.get(c) for c in c_key] if isinstance(c_key, list) else (doc.get(c_key) or [])
        choices = [str(_scalar(c)) for c in choices if _scalar(c) not in (None, "")]
        labels = list(layouts.LETTERS[: len(choices)])
        gold = ""
        if answer is not None and str(answer).strip() != "":
            a = str(answer).strip()
            if a.upper() in labels:
                gold = a.upper()
            elif a.isdigit() and int(a) < len(choices):
                gold = labels[int(a)]
            elif a in choices:
                gold = labels[choices.index(a)]
        return labels, choices, gold

    def process(dataset):
        if q_key not in dataset.column_names or a_key not in dataset.column_names:
            raise DataError(f"task spec fields: column '{q_key if q_key not in dataset.column_names else a_key}' "
                            f"is not in the file (columns: {', '.join(dataset.column_names)})")

        def add(doc):
            labels, choices, gold = gold_of(doc)
            return {"softeval_question": str(_scalar(doc.get(q_key)) or "").strip(), "softeval_labels": labels,
                    "softeval_choices": choices, "softeval_gold": gold}

        return dataset.map(add).filter(lambda d: d["softeval_gold"] != "")

    return process
