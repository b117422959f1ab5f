"""softeval's short spec for a JSONL/CSV benchmark file (docs/bench.md): read, validated and turned into lm-eval
task configs as data. Nothing in a spec file is rendered as a template or run: its texts reach lm-eval as data
columns printed verbatim."""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass
from pathlib import Path


from softeval.bench import layouts
from softeval.errors import ConfigError, DataError

from softeval.bench.forms import BenchTask

logger = logging.getLogger(__name__)

SPEC_KEYS = {"task", "kind", "files", "fields", "fewshot_split", "description"}
# Version of the prompts spec_task writes. 2: the ll form scores the choice texts (cloze), not the letters.
# (Adding the ll_letters form changed no prompt: the forms setting in the identity tells the runs apart.)
# 3: the description is printed verbatim (it was a Jinja template: `{{ }}` ran, `{{x}}` failed, \r\n became \n),
# a short answer is its text verbatim ("[1, 2]" was read as a list), and an item whose answer text is two of
# its choices is skipped (it stopped the run).
SPEC_PROMPTS = 3
ANSWER_TYPES = ("letter", "index", "text")
SPEC_FEATURES = {"softeval_question": "string", "softeval_labels": ["string"], "softeval_choices": ["string"],
                 "softeval_gold": "string", "softeval_source": "string", "softeval_description": "string"}
# A spec file is data: no text of it, nor of its data files, is ever a template. lm-eval renders a task's
# `description` and `doc_to_*` strings with Jinja (not sandboxed: `{{ cycler.__init__.__globals__.os }}`
# reaches the os module), so the spec's texts travel as values of the rows, never as template source: the
# templates below are softeval's own and only name columns. A Jinja variable's value is printed as it is,
# never rendered again; a bare column name (doc_to_target: softeval_gold) is returned as it is.
DESCRIPTION_FROM_ROW = "{{softeval_description}}"


@dataclass(frozen=True)
class SpecItem:
    where: str                 # "file.jsonl:12" for messages
    question: str
    choices: list[str]         # verbatim texts
    answer: str | None         # verbatim; None or "" = no gold (skipped and counted)


def spec_task(path: Path, spec: dict) -> BenchTask:
    """softeval's short spec for a JSONL/CSV file of questions → lm-eval configs.

        task: capitals               # name used in results
        kind: multiple_choice        # or short_answer
        files: {train: train.jsonl, test: test.jsonl}   # relative to this file; .csv and .json work too
        fields: {question: q, choices: options, answer: gold}
        # multiple choice: `choices` is a list field, or a list of column names ([A, B, C, D]);
        # `answer: {field: gold, type: letter|index|text}`: a letter, a 0-based index or the exact text of
        # the right choice. A bare `answer: gold` infers the type when exactly one reading fits every item.

    Files are read as text: every value is used verbatim ("1.50" stays "1.50", "null" is a choice text),
    with no type inference by pandas or pyarrow. Answers are checked here, before any model work.
    """
    kind, fields, name = _check_spec_keys(path, spec)
    answer_field, answer_type = _answer_field(path, fields["answer"], kind)
    files, eval_split = _spec_files(path, spec)
    description = spec.get("description")
    if description is not None and not isinstance(description, str):
        raise ConfigError(f"{path}: description must be text, got a {type(description).__name__}")
    items = {split: _read_spec_file(f, fields["question"], fields.get("choices"), answer_field)
             for split, f in files.items()}
    rows, skipped = _spec_rows(items, kind, answer_type)
    for split_rows in rows.values():
        for r in split_rows:
            r["softeval_description"] = description or ""
    # Keyed by role in the spec, not by file name: `files: {train: ../train/data.jsonl, test: ../test/data.jsonl}`
    # is two files with two hashes (a file name would be one key, and editing the training file would go unseen).
    data_files = {f"task:{name}:spec": str(path)}
    data_files.update({f"task:{name}:spec.files.{split}": str(f) for split, f in files.items()})
    base = _spec_base_config(path, spec, rows, files, eval_split, description)
    if kind == "short_answer":
        return BenchTask(name=name, answer="text", configs={"gen": _short_answer_config(base, name)}, source="spec",
                         data_files=data_files, identity={"spec_prompts": SPEC_PROMPTS})
    return BenchTask(name=name, answer="letter", configs=_multiple_choice_configs(base, name),
                     source="spec", data_files=data_files, identity={"spec_prompts": SPEC_PROMPTS},
                     skipped_items=_skip_counts(skipped), notes=_skip_notes(name, skipped))


def _check_spec_keys(path: Path, spec: dict) -> tuple[str, dict, str]:
    """The spec's keys, kind and fields checked (before any file is read); its kind, fields and task name."""
    if "format" in spec:
        raise ConfigError(f"{path}: 'format' is not supported by the short spec (its prompt is fixed: question, "
                          "lettered choices, 'Answer:'); for another layout write an lm-eval task YAML (docs/bench.md)")
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; a task spec has {', '.join(sorted(SPEC_KEYS))}")
    for key in ("task", "kind", "files", "fields"):
        if key not in spec:
            raise ConfigError(f"{path}: task spec needs '{key}' (see docs/bench.md)")
    kind, fields, name = spec["kind"], spec["fields"], str(spec["task"])
    if kind not in ("multiple_choice", "short_answer"):
        raise ConfigError(f"{path}: kind must be multiple_choice or short_answer, got '{kind}'")
    if not isinstance(fields, dict):
        raise ConfigError(f"{path}: fields must map question/choices/answer to your file's columns")
    need = ["question", "answer"] + (["choices"] if kind == "multiple_choice" else [])
    missing = [k for k in need if k not in fields]
    if missing:
        raise ConfigError(f"{path}: fields needs {', '.join(missing)} (names of your file's columns)")
    return kind, fields, name


def _spec_files(path: Path, spec: dict) -> tuple[dict[str, Path], str]:
    """split → data file (relative to the spec; each must exist and be .jsonl, .json or .csv), and the split to
    evaluate on (test, else validation)."""
    if not isinstance(spec["files"], dict) or not spec["files"]:
        raise ConfigError(f"{path}: files must map splits to files, e.g. {{train: train.jsonl, test: test.jsonl}}")
    files = {}
    for split, rel in spec["files"].items():
        f = (path.parent / str(rel)).expanduser()
        if not f.is_file():
            raise DataError(f"{path}: {split} file {f} does not exist")
        if f.suffix.lower() not in (".jsonl", ".json", ".csv"):
            raise ConfigError(f"{path}: {split} file {f.name} must be .jsonl, .json or .csv")
        files[split] = f
    eval_split = "test" if "test" in files else "validation" if "validation" in files else None
    if eval_split is None:
        raise DataError(f"{path}: files needs a 'test' (or 'validation') split to evaluate on")
    if spec.get("fewshot_split") and spec["fewshot_split"] not in files:
        raise ConfigError(f"{path}: fewshot_split '{spec['fewshot_split']}' is not one of files: {', '.join(files)}")
    return files, eval_split


def _spec_base_config(path: Path, spec: dict, rows: dict[str, list[dict]], files: dict[str, Path], eval_split: str,
                      description: str | None) -> dict:
    """The lm-eval config every form of a spec task shares: its dataset (the rows read, served by lm-eval's
    custom_dataset hook), splits and description."""

    def load(**_metadata):
        """lm-eval's custom_dataset hook: the rows read above, every column a string (list)."""
        import datasets

        features = datasets.Features({k: datasets.Sequence(datasets.Value("string")) if isinstance(v, list)
                                      else datasets.Value(v) for k, v in SPEC_FEATURES.items()})
        return datasets.DatasetDict({split: datasets.Dataset.from_list(r, features=features)
                                     for split, r in rows.items()})

    base = {"custom_dataset": load, "dataset_path": None, "dataset_name": None,
            "process_docs": _has_gold, "test_split": eval_split,
            "training_split": "train" if "train" in files else None,
            "validation_split": "validation" if "validation" in files else None,
            "description": DESCRIPTION_FROM_ROW if description else "",
            "metadata": {"version": 1.0, "softeval_spec": str(path)}}
    if spec.get("fewshot_split"):
        base["fewshot_split"] = spec["fewshot_split"]
    return base


def _short_answer_config(base: dict, name: str) -> dict:
    """A short-answer spec's one form: the answer generated after 'Answer:', scored by exact match."""
    return {**base, "task": name, "output_type": "generate_until",
            "doc_to_text": "Question: {{softeval_question}}\nAnswer:", "doc_to_target": "softeval_gold",
            "generation_kwargs": {"until": ["\n", "Question:"], "max_gen_toks": 32, "do_sample": False},
            "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True,
                             "ignore_case": True, "ignore_punctuation": True}]}


def _multiple_choice_configs(base: dict, name: str) -> dict[str, dict]:
    """A multiple-choice spec's three forms: the letter generated (gen), and OLMES's two log-likelihood
    formulations (ll_letters, ll_cloze)."""
    text = ("Question: {{softeval_question}}\n{% for label in softeval_labels %}{{label}}. "
            "{{softeval_choices[loop.index0]}}\n{% endfor %}Answer:")
    gen = {**base, "task": f"{name}_letter", "output_type": "generate_until", "doc_to_text": text,
           "doc_to_target": "softeval_gold",
           "generation_kwargs": {"until": ["\n", "Question:"], "max_gen_toks": 16, "do_sample": False},
           "filter_list": [{"name": "strict-match", "filter": [
               {"function": "regex", "regex_pattern": "^\\s*(?:\\(([A-J])\\)|([A-J])[.)]?)\\s*$"},
               {"function": "take_first"}]}],
           "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}]}
    # Two ll forms, OLMES's two formulations. Cloze (as lm-eval's arc_easy): the question alone, each choice's
    # text scored as the continuation. Letters: the generative form's prompt, the letters scored. Small models
    # answer letters at chance while cloze still separates them (OLMES keeps the better; docs/bench.md).
    cloze = {**copy.deepcopy(base), "task": name, "output_type": "multiple_choice",
             "doc_to_text": "Question: {{softeval_question}}\nAnswer:", "doc_to_choice": "softeval_choices",
             "doc_to_target": "{{softeval_labels.index(softeval_gold)}}",
             "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                             {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}]}
    letters = {**copy.deepcopy(base), "task": f"{name}_letters_ll", "output_type": "multiple_choice",
               "doc_to_text": text, "doc_to_choice": "{{softeval_labels}}",
               "doc_to_target": "{{softeval_labels.index(softeval_gold)}}",
               "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}]}
    return {"gen": gen, "ll_letters": letters, "ll_cloze": cloze}


def _has_gold(dataset):
    """Items without a gold answer cannot be scored; the runner counts them (raw minus processed size)."""
    return dataset.filter(lambda d: d["softeval_gold"] != "")


def _answer_field(path: Path, answer, kind: str) -> tuple[str, str | None]:
    if isinstance(answer, str):
        return answer, "text" if kind == "short_answer" else None
    if not isinstance(answer, dict) or set(answer) - {"field", "type"} or "field" not in answer:
        raise ConfigError(f"{path}: fields.answer is a column name or {{field: <column>, type: letter|index|text}}")
    kind_types = ANSWER_TYPES if kind == "multiple_choice" else ("text",)
    if answer.get("type") not in (None, *kind_types):
        raise ConfigError(f"{path}: fields.answer.type must be {' or '.join(kind_types)} for {kind}, "
                          f"got '{answer.get('type')}'")
    return str(answer["field"]), answer.get("type") or ("text" if kind == "short_answer" else None)


def _verbatim(value, where: str, what: str) -> str | None:
    """A cell as its literal text: JSON numbers keep their spelling (parsed as strings), true/false are
    written as in the file, null and "" are missing."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    raise DataError(f"{where}: {what} must be text, got a {type(value).__name__}")


def _read_spec_file(f: Path, q_key: str, c_key, a_key: str) -> list[SpecItem]:
    """Rows of a JSONL / JSON-array / CSV file as SpecItems, every value read as text."""
    if f.suffix.lower() == ".csv":
        if c_key is not None and not isinstance(c_key, list):
            raise ConfigError(f"{f.name}: in a CSV file, fields.choices is a list of columns, e.g. [A, B, C, D]")
        rows = _csv_rows(f)
    else:
        rows = _json_rows(f)
    items = []
    for where, row in rows:
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected an object with fields {q_key}, {a_key}")
        for key in [q_key] + (c_key if isinstance(c_key, list) else [c_key] if c_key else []):
            if key not in row:
                raise DataError(f"{where}: no field '{key}' (fields: {', '.join(map(str, row))})")
        if c_key is None:
            raw = []
        elif isinstance(c_key, list):
            raw = [row[c] for c in c_key]
        elif isinstance(row[c_key], list):
            raw = row[c_key]
        else:
            raise DataError(f"{where}: field '{c_key}' must be a list of choices")
        choices = [_verbatim(c, where, f"choice {i + 1}") for i, c in enumerate(raw)]
        while choices and choices[-1] in (None, ""):  # trailing empty columns: this item has fewer choices
            choices.pop()
        if any(c in (None, "") for c in choices):
            n = next(i for i, c in enumerate(choices) if c in (None, ""))
            raise DataError(f"{where}: choice {n + 1} is empty but later ones are not (it would shift the letters)")
        if len(choices) > len(layouts.LETTERS):
            raise DataError(f"{where}: {len(choices)} choices; at most {len(layouts.LETTERS)} are supported")
        # A missing answer field is an item without gold (skipped and counted), like an empty one ...
        items.append(SpecItem(where=where, question=(_verbatim(row[q_key], where, "the question") or "").strip(),
                              choices=choices, answer=_verbatim(row.get(a_key), where, "the answer")))
    if rows and not any(a_key in row for _, row in rows if isinstance(row, dict)):
        # ... but a field no item has is a misspelt name, not a file without answers.
        raise DataError(f"{f.name}: no item has the answer field '{a_key}' (fields.answer in the spec)")
    return items


def _json_rows(f: Path) -> list[tuple[str, object]]:
    def parse(text: str, where: str):
        try:
            return json.loads(text, parse_int=str, parse_float=str)
        except ValueError as exc:
            raise DataError(f"{where}: not valid JSON ({exc})") from None

    try:
        text = f.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"spec data file {f} is not UTF-8 text") from None
    if f.suffix.lower() == ".json" and text.lstrip().startswith("["):
        return [(f"{f.name} item {i + 1}", row) for i, row in enumerate(parse(text, f.name))]
    return [(f"{f.name}:{n}", parse(line, f"{f.name}:{n}"))
            for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _csv_rows(f: Path) -> list[tuple[str, dict]]:
    import csv

    with open(f, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        rows, start = [], 2
        for row in reader:
            rows.append((f"{f.name}:{start}", {k: v for k, v in row.items() if k is not None}))
            start = reader.line_num + 1
    return rows


def _text_hits(item: SpecItem) -> list[int]:
    """Indices of the choices whose text is the answer."""
    a = item.answer.strip()
    return [i for i, c in enumerate(item.choices) if c.strip() == a]


def _gold_as(item: SpecItem, answer_type: str) -> str | None:
    """The gold label under one reading of the answer, None when that reading does not fit the item. An
    answer that is the text of several choices fits the text reading (its first); _spec_rows skips it."""
    a = item.answer.strip()
    labels = layouts.LETTERS[:len(item.choices)]
    if answer_type == "letter":
        return a.upper() if len(a) == 1 and a.upper() in labels else None
    if answer_type == "index":
        return labels[int(a)] if a.isdigit() and int(a) < len(item.choices) else None
    hits = _text_hits(item)
    return labels[hits[0]] if hits else None


# Why _spec_rows leaves an item out (BenchTask.skipped_items), and what the note says of it.
DUPLICATE_ANSWER_CHOICES = "duplicate_answer_choices"
SKIP_REASONS = {DUPLICATE_ANSWER_CHOICES: "the answer is the text of two or more choices, so which letter is right "
                                          "is unknown"}


def _duplicate_answer(item: SpecItem) -> str | None:
    """'choices C and D are both 'evaporation'' when a text answer names several choices, else None."""
    hits = _text_hits(item)
    if len(hits) < 2:
        return None
    letters = [layouts.LETTERS[i] for i in hits]
    both = "both" if len(hits) == 2 else "all"
    return f"choices {', '.join(letters[:-1])} and {letters[-1]} are {both} '{item.choices[hits[0]]}'"


def _spec_rows(items: dict[str, list[SpecItem]], kind: str,
               answer_type: str | None) -> tuple[dict[str, list[dict]], dict[str, list[tuple[str, str, str]]]]:
    """Rows for lm-eval with the gold label resolved, and the items left out: reason → [(split, where, why)].
    A wrong answer stops the run with a one-line DataError naming the file and line; an item whose text answer
    is two identical choices cannot be scored (either letter would be right) and is left out, counted."""
    answered = [it for split in items.values() for it in split if it.answer is not None and it.answer.strip()]
    skip: dict[str, list[tuple[str, str, str]]] = {}
    left_out: set[int] = set()
    if kind == "multiple_choice":
        if answer_type is None:
            answer_type = _infer_answer_type(answered)
        for it in answered:
            if _gold_as(it, answer_type) is None:
                n = len(it.choices)
                expected = {"letter": f"a letter A-{layouts.LETTERS[max(n - 1, 0)]}",
                            "index": f"an index 0-{max(n - 1, 0)}",
                            "text": "the text of a choice"}[answer_type]
                raise DataError(f"{it.where}: answer '{it.answer}' is not {expected} "
                                f"(fields.answer.type is {answer_type}; choices: {it.choices})")
        if answer_type == "text":
            # Under letter or index answers the file names the right choice, so an item with two identical
            # choices is scored as written (as lm-eval does for the built-in tasks).
            for split, split_items in items.items():
                for it in split_items:
                    why = it.answer is not None and it.answer.strip() and _duplicate_answer(it)
                    if why:
                        skip.setdefault(DUPLICATE_ANSWER_CHOICES, []).append((split, it.where, why))
                        left_out.add(id(it))

    def row(it: SpecItem) -> dict:
        gold = "" if it.answer is None or not it.answer.strip() else (
            it.answer.strip() if kind == "short_answer" else _gold_as(it, answer_type))
        return {"softeval_question": it.question, "softeval_labels": list(layouts.LETTERS[:len(it.choices)]),
                "softeval_choices": it.choices, "softeval_gold": gold, "softeval_source": it.where}

    rows = {split: [row(it) for it in split_items if id(it) not in left_out] for split, split_items in items.items()}
    return rows, skip


def _skip_counts(skipped: dict[str, list[tuple[str, str, str]]]) -> dict[str, dict[str, int]]:
    """split → reason → number of items left out."""
    counts: dict[str, dict[str, int]] = {}
    for reason, entries in skipped.items():
        for split, _, _ in entries:
            per_split = counts.setdefault(split, {})
            per_split[reason] = per_split.get(reason, 0) + 1
    return counts


def _skip_notes(name: str, skipped: dict[str, list[tuple[str, str, str]]], shown: int = 3) -> list[str]:
    """One line per reason: how many items of which split, and the first few by file and line."""
    notes = []
    for reason, entries in skipped.items():
        per_split = _skip_counts({reason: entries})
        splits = ", ".join(f"{split} {counts[reason]}" for split, counts in per_split.items())
        examples = "; ".join(f"{where}: {why}" for _, where, why in entries[:shown])
        more = f"; and {len(entries) - shown} more" if len(entries) > shown else ""
        notes.append(f"{name}: {len(entries)} item(s) skipped ({splits}): {SKIP_REASONS[reason]} "
                     f"({examples}{more})")
    return notes


def _infer_answer_type(answered: list[SpecItem]) -> str:
    """The one reading (letter, index or text) that fits every answered item and that no other fitting
    reading contradicts; otherwise a one-line DataError asking for fields.answer.type."""
    fits = [t for t in ANSWER_TYPES if all(_gold_as(it, t) is not None for it in answered)]
    hint = "set fields: {answer: {field: <column>, type: letter|index|text}}"
    if not fits:
        for it in answered:
            if not any(_gold_as(it, t) for t in ANSWER_TYPES):
                raise DataError(f"{it.where}: answer '{it.answer}' is not a letter, a 0-based index or the text of "
                                f"a choice (choices: {it.choices})")
        first = {t: next(it for it in answered if _gold_as(it, t) is None) for t in ANSWER_TYPES}
        raise DataError("answers mix letters, indices and choice texts (" +
                        ", ".join(f"{first[t].where} is not {'an' if t == 'index' else 'a'} {t}" for t in ANSWER_TYPES) + f"); {hint}")
    for it in answered:
        readings = {t: _gold_as(it, t) for t in fits}
        if len(set(readings.values())) > 1:
            shown = " or ".join(f"{t} → {g} ('{it.choices[layouts.LETTERS.index(g)]}')" for t, g in readings.items())
            raise DataError(f"{it.where}: answer '{it.answer}' is ambiguous: {shown}; {hint}")
    return fits[0]
