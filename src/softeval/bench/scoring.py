"""Per-sample records and per-mode metrics from lm-eval's logged samples.

Generative form, per item: the raw output, the strict and lenient parses, `format_ok` (strict parse
succeeded), `strict_correct`, `lenient_correct`. Log-likelihood form: the chosen choice and
`ll_correct`. Aggregates (with the standard error of a mean, as lm-eval reports):

  format_rate       share of outputs in the required format
  strict_acc        correct AND in format, over all items
  acc_given_format  correct among the format-following outputs (knowledge once the format is right)
  lenient_acc       correct under best-effort extraction, over all items
  ll_acc            log-likelihood accuracy (multiple choice; format-free)
  ll_acc_norm       the same with each choice's log-likelihood divided by its length in bytes (lm-eval's
                    acc_norm; present when the task's ll form lists it)

and, per (model, task, mode) with both forms, the OLMES-style best formulation (`best_of`):

  best_acc          max(strict_acc, ll_acc): letters as generated vs the ll form (cloze on ARC and spec
                    files, likelihood of the letters on MMLU/CSQA); ties go to the letters
  best_formulation  which one it came from: "letters", "cloze" or "letters_ll"
  best_metric       the metric behind it: strict_acc or ll_acc
"""

from __future__ import annotations

import math

from softeval.bench.parsing import gold_number, parse_letter, parse_number, parse_text, same_answer

GEN_METRICS = ("format_rate", "strict_acc", "acc_given_format", "lenient_acc")
LL_METRICS = ("ll_acc", "ll_acc_norm")
BEST_METRIC = "best_acc"


def gen_record(sample: dict, answer: str) -> dict:
    doc = sample["doc"]
    raw = sample["resps"][0][0] if sample.get("resps") else ""
    gold = str(doc.get("softeval_gold") or sample.get("target") or "")
    if answer == "number":
        gold = gold_number(gold) or gold
        parsed = parse_number(raw)
    elif answer == "letter":
        labels = list(doc.get("softeval_labels") or ["A", "B", "C", "D", "E"])
        parsed = parse_letter(raw, labels, list(doc.get("softeval_choices") or []))
    else:
        parsed = parse_text(raw, gold)
    return {"doc_id": sample["doc_id"], "output": raw, "gold": gold, "parsed_strict": parsed.strict,
            "parsed_lenient": parsed.lenient, "format_ok": parsed.format_ok,
            "strict_correct": parsed.format_ok and same_answer(answer, parsed.strict, gold),
            "lenient_correct": same_answer(answer, parsed.lenient, gold)}


def ll_record(sample: dict) -> dict:
    scores = [float(r[0]) for r in sample["filtered_resps"]]
    chosen = max(range(len(scores)), key=scores.__getitem__) if scores else None
    record = {"doc_id": sample["doc_id"], "gold": sample.get("target"), "choice": chosen,
              "loglikelihoods": scores, "ll_correct": bool(sample.get("acc", 0.0))}
    if "acc_norm" in sample:
        record["ll_correct_norm"] = bool(sample["acc_norm"])
    return record


def mean_stderr(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and its standard error; None where undefined (no values; one value has no spread), so
    results.json says "no number" in JSON rather than NaN."""
    n = len(values)
    if n == 0:
        return None, None
    mean = sum(values) / n
    if n < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def aggregate(gen: list[dict] | None, ll: list[dict] | None) -> dict:
    out: dict = {}

    def put(name, values):
        mean, se = mean_stderr([float(v) for v in values])
        out[name], out[f"{name}_stderr"], out[f"{name}_n"] = mean, se, len(values)

    if gen is not None:
        put("format_rate", [r["format_ok"] for r in gen])
        put("strict_acc", [r["strict_correct"] for r in gen])
        put("acc_given_format", [r["strict_correct"] for r in gen if r["format_ok"]])
        put("lenient_acc", [r["lenient_correct"] for r in gen])
    if ll is not None:
        put("ll_acc", [r["ll_correct"] for r in ll])
        if ll and all("ll_correct_norm" in r for r in ll):
            put("ll_acc_norm", [r["ll_correct_norm"] for r in ll])
    return out


def formulation(metric: str, answer: str, ll_formulation: str | None) -> str:
    """What a metric scores, in words a table can show: generated letters, cloze or likelihood letters."""
    if metric.startswith("ll_"):
        return {"letters": "letters_ll"}.get(ll_formulation or "", ll_formulation or "ll")
    if metric == BEST_METRIC:
        return "best"
    return "letters" if answer == "letter" else "generated"


def best_metric(strict_acc: float | None, ll_acc: float | None) -> str | None:
    """OLMES keeps the better of the multiple-choice (letters) and the cloze formulation: the metric to
    use, strict_acc on ties (the letters are the format the task asks for); None without both."""
    if strict_acc is None or ll_acc is None:
        return None
    return "ll_acc" if ll_acc > strict_acc else "strict_acc"


def best_of(metrics: dict, answer: str, ll_formulation: str | None) -> dict:
    """best_acc (± stderr, n), best_metric and best_formulation for one (model, task, mode); {} unless the
    task is multiple choice and both the generative and the ll form were scored."""
    if answer != "letter":
        return {}
    metric = best_metric(metrics.get("strict_acc"), metrics.get("ll_acc"))
    if metric is None:
        return {}
    return {BEST_METRIC: metrics[metric], f"{BEST_METRIC}_stderr": metrics.get(f"{metric}_stderr"),
            f"{BEST_METRIC}_n": metrics.get(f"{metric}_n"), "best_metric": metric,
            "best_formulation": formulation(metric, answer, ll_formulation)}


def item_scores(records: list[dict], metric: str) -> list[float]:
    """Per-item 0/1 vector behind an accuracy metric (for paired bootstrap of rankings)."""
    key = {"strict_acc": "strict_correct", "lenient_acc": "lenient_correct", "format_rate": "format_ok",
           "ll_acc": "ll_correct", "ll_acc_norm": "ll_correct_norm"}[metric]
    return [float(r[key]) for r in sorted(records, key=lambda r: r["doc_id"])]
