"""Document processors (lm-eval `process_docs`) for the built-in benchmark tasks.

Two jobs, both pure functions of a `datasets.Dataset`:

  * bring local files in their *original* release layout (ARC's `question.stem`, MMLU's headerless
    CSV, CommonsenseQA's nested `question`) into the Hugging Face Hub layout that the task templates
    are written against, so one template serves both sources;
  * add the fields softeval's answer parsers need (`softeval_gold`, `softeval_labels`,
    `softeval_choices`) and drop items without a gold answer (lm-eval cannot score them; the runner
    counts them as "skipped_no_gold" by comparing raw and processed split sizes).

Task YAMLs refer to these as `!function softeval.bench.layouts.<name>`.
"""

from __future__ import annotations

import re

LETTERS = "ABCDEFGHIJ"


def _letter_labels(labels: list[str]) -> list[str]:
    """ARC uses '1'-'4' for a few items; show and parse them as A-D like the rest."""
    return [LETTERS[int(x) - 1] if str(x).isdigit() and 1 <= int(x) <= len(LETTERS) else str(x) for x in labels]


def _mc_fields(labels: list[str], texts: list[str], gold_label: str | None) -> dict:
    raw_labels = [str(x) for x in labels]
    shown = _letter_labels(raw_labels)
    gold = shown[raw_labels.index(str(gold_label))] if gold_label is not None and str(gold_label) in raw_labels else ""
    return {"softeval_labels": shown, "softeval_choices": list(texts), "softeval_gold": gold}


# --------------------------------------------------------------------------- ARC


def _arc_hub_doc(doc: dict) -> dict:
    labels, texts = doc["choices"]["label"], doc["choices"]["text"]
    fields = _mc_fields(labels, texts, doc.get("answerKey"))
    shown = fields["softeval_labels"]
    return {"id": doc.get("id", ""), "question": doc["question"],
            "choices": {"text": list(texts), "label": shown},
            "answerKey": fields["softeval_gold"], **fields}


def arc_hub(dataset):
    """Hub layout (allenai/ai2_arc) → same layout with letter labels and softeval fields."""
    return dataset.map(_arc_hub_doc).filter(lambda d: d["softeval_gold"] != "")


def arc_local(dataset):
    """Official ARC-V1 jsonl (`question.stem`, `question.choices[{text,label}]`) → Hub layout."""
    def convert(doc):
        q = doc["question"]
        hub = {"id": doc.get("id", ""), "question": q["stem"], "answerKey": doc.get("answerKey") or "",
               "choices": {"text": [c["text"] for c in q["choices"]], "label": [c["label"] for c in q["choices"]]}}
        return _arc_hub_doc(hub)

    return dataset.map(convert, remove_columns=dataset.column_names).filter(lambda d: d["softeval_gold"] != "")


# --------------------------------------------------------------------------- MMLU


def _mmlu_hub_doc(doc: dict) -> dict:
    answer = doc["answer"]
    index = answer if isinstance(answer, int) else ("ABCD".index(str(answer).strip()) if str(answer).strip() in
                                                    ("A", "B", "C", "D") else -1)
    fields = _mc_fields(["A", "B", "C", "D"], doc["choices"], "ABCD"[index] if index >= 0 else None)
    return {"question": doc["question"], "subject": doc.get("subject", ""), "choices": list(doc["choices"]),
            "answer": index, **fields}


def mmlu_hub(dataset):
    return dataset.map(_mmlu_hub_doc).filter(lambda d: d["softeval_gold"] != "")


def mmlu_local(dataset):
    """Original hendrycks CSV (no header: question,A,B,C,D,answer_letter) → Hub layout."""
    from datasets import Value

    def convert(doc):
        return _mmlu_hub_doc({"question": str(doc["question"]), "answer": str(doc["answer"] or ""),
                              "choices": [str(doc[k]) for k in ("A", "B", "C", "D")]})

    # map keeps the CSV's string type for the re-used `answer` column, and lm-eval reads a string target of a
    # multiple_choice task as a choice's text ("1" is no choice: gold -100, every item wrong); the Hub has ints.
    converted = dataset.map(convert, remove_columns=dataset.column_names)
    return converted.cast_column("answer", Value("int64")).filter(lambda d: d["softeval_gold"] != "")


# --------------------------------------------------------------------------- CommonsenseQA


def _csqa_hub_doc(doc: dict) -> dict:
    labels, texts = doc["choices"]["label"], doc["choices"]["text"]
    fields = _mc_fields(labels, texts, doc.get("answerKey") or None)
    return {"id": doc.get("id", ""), "question": doc["question"], "question_concept": doc.get("question_concept", ""),
            "choices": {"label": list(labels), "text": list(texts)}, "answerKey": fields["softeval_gold"], **fields}


def csqa_hub(dataset):
    return dataset.map(_csqa_hub_doc).filter(lambda d: d["softeval_gold"] != "")


def csqa_local(dataset):
    """Official CommonsenseQA jsonl (nested `question.stem/choices`) → Hub layout (tau/commonsense_qa)."""
    def convert(doc):
        q = doc["question"]
        return _csqa_hub_doc({"id": doc.get("id", ""), "question": q["stem"],
                              "question_concept": q.get("question_concept", ""), "answerKey": doc.get("answerKey") or "",
                              "choices": {"label": [c["label"] for c in q["choices"]],
                                          "text": [c["text"] for c in q["choices"]]}})

    return dataset.map(convert, remove_columns=dataset.column_names).filter(lambda d: d["softeval_gold"] != "")


# --------------------------------------------------------------------------- GSM8K


def gsm8k_docs(dataset):
    """Hub and original layouts are the same (question, answer with a final `#### N` line)."""
    def add(doc):
        m = re.search(r"####\s*(\-?[0-9\.\,\$]+)", doc.get("answer") or "")
        return {"softeval_gold": m.group(1).replace(",", "").replace("$", "") if m else "",
                "softeval_labels": [], "softeval_choices": []}

    return dataset.map(add).filter(lambda d: d["softeval_gold"] != "")
