"""Per-sample records and per-mode metrics from lm-eval's logged samples.

Generative form, per item: the raw output, the strict and lenient parses, `format_ok` (strict parse
succeeded), `strict_correct`, `lenient_correct`. Log-likelihood forms: the chosen choice and
`ll_correct`. Aggregates (with the standard error of a mean, as lm-eval reports):

  format_rate        share of outputs in the required format
  strict_acc         correct AND in format, over all items (generated letters for multiple choice)
  acc_given_format   correct among the format-following outputs (knowledge once the format is right)
  lenient_acc        correct under best-effort extraction, over all items
  ll_letters_acc     log-likelihood accuracy of the letters, options listed (OLMES's multiple-choice
                     formulation; lm-eval's mmlu and commonsense_qa)
  ll_cloze_acc       log-likelihood accuracy of the choice texts after the question alone (OLMES's cloze
                     formulation; lm-eval's arc_easy)
  ll_*_acc_norm      the same with each choice's log-likelihood divided by its length in bytes (lm-eval's
                     acc_norm; present when the form lists it)

With several tuning seeds (`over_seeds`), the soft mode's row holds each metric's mean over the seeds,
`<metric>_seed_std` (sample std across seeds; None with one) and `<metric>_seeds` (each seed's value), its
`_stderr` the item stderr averaged over the seeds (one seed's item-sampling error).

And, per (model, task, mode) with at least two of them, the OLMES-style best formulation (`best_of`):

  best_acc           the largest of strict_acc, ll_letters_acc, ll_cloze_acc; ties go to the earlier
  best_formulation   which one it came from: "letters", "letters_ll" or "cloze"
  best_metric        the metric behind it
"""

from __future__ import annotations

import math

from softeval.bench.parsing import gold_number, parse_letter, parse_number, parse_text, same_answer

GEN_METRICS = ("format_rate", "strict_acc", "acc_given_format", "lenient_acc")
LL_METRICS = ("ll_letters_acc", "ll_cloze_acc", "ll_cloze_acc_norm")
BEST_METRIC = "best_acc"
# What each ll form scores, as tables name it.
FORMULATIONS = {"ll_letters": "letters_ll", "ll_cloze": "cloze"}
# The accuracies best_acc chooses among, in the order ties are broken (the letters the task asks for first).
BEST_CANDIDATES = ("strict_acc", "ll_letters_acc", "ll_cloze_acc")
# The form whose samples hold a metric's per-item scores.
FORM_OF = {"strict_acc": "gen", "lenient_acc": "gen", "format_rate": "gen",
           **{f"{f}_acc{norm}": f for f in FORMULATIONS for norm in ("", "_norm")}}


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


def aggregate(per_form: dict[str, list[dict]]) -> dict:
    """Metrics of one (model, task, mode) from each form's records (form → records)."""
    out: dict = {}
    gen = per_form.get("gen")

    def put(name, values):
        mean, se = mean_stderr([float(v) for v in values])
        out[name], out[f"{name}_stderr"], out[f"{name}_n"] = mean, se, len(values)

    if gen is not None:
        put("format_rate", [r["format_ok"] for r in gen])
        put("strict_acc", [r["strict_correct"] for r in gen])
        put("acc_given_format", [r["strict_correct"] for r in gen if r["format_ok"]])
        put("lenient_acc", [r["lenient_correct"] for r in gen])
    for form in FORMULATIONS:
        ll = per_form.get(form)
        if ll is not None:
            put(f"{form}_acc", [r["ll_correct"] for r in ll])
            if ll and all("ll_correct_norm" in r for r in ll):
                put(f"{form}_acc_norm", [r["ll_correct_norm"] for r in ll])
    return out


def over_seeds(per_seed: list[dict]) -> dict:
    """One row from several tuning seeds' `aggregate` rows (same keys): each metric's mean over the seeds that
    have a value, `_seed_std` and `_seeds`, `_stderr` averaged, `_n` kept where every seed has the same (the
    items) and averaged where not (acc_given_format counts each seed's format-following outputs)."""
    out: dict = {}
    for name in [k for k in per_seed[0] if f"{k}_stderr" in per_seed[0]]:
        values = [m.get(name) for m in per_seed]
        present = [float(v) for v in values if v is not None]
        mean, se = mean_stderr(present)
        errors = [float(m[f"{name}_stderr"]) for m in per_seed if m.get(f"{name}_stderr") is not None]
        ns = [m.get(f"{name}_n") for m in per_seed]
        out[name] = mean
        out[f"{name}_stderr"] = sum(errors) / len(errors) if errors else None
        out[f"{name}_n"] = ns[0] if len(set(ns)) == 1 else sum(ns) / len(ns)
        out[f"{name}_seed_std"] = None if se is None else se * math.sqrt(len(present))  # sample std, n − 1
        out[f"{name}_seeds"] = values
    return out


def formulation(metric: str, answer: str) -> str:
    """What a metric scores, in words a table can show: generated letters, cloze or likelihood letters."""
    if metric in FORM_OF and FORM_OF[metric] != "gen":
        return FORMULATIONS[FORM_OF[metric]]
    if metric == BEST_METRIC:
        return "best"
    return "letters" if answer == "letter" else "generated"


def best_metric(accs: dict[str, float | None], single: bool = False) -> str | None:
    """OLMES keeps the best of the multiple-choice (letters) and the cloze formulations: the metric to use
    among BEST_CANDIDATES present in `accs`, ties to the earlier (the letters are the format the task asks
    for); None with fewer than two, unless `single`: a mode that scores one formulation by design (soft_cloze:
    its prompt is tuned for cloze) stands in the best-of comparison with that one."""
    present = [m for m in BEST_CANDIDATES if accs.get(m) is not None]
    if len(present) < (1 if single else 2):
        return None
    return max(present, key=lambda m: (accs[m], -present.index(m)))


def best_of(metrics: dict, answer: str, single: bool = False) -> dict:
    """best_acc (± stderr, n), best_metric and best_formulation for one (model, task, mode); {} unless the
    task is multiple choice and at least two formulations were scored (one with `single`, see best_metric)."""
    if answer != "letter":
        return {}
    metric = best_metric(metrics, single)
    if metric is None:
        return {}
    # Over several tuning seeds the chosen metric is the best mean; its spread across seeds comes along.
    spread = {f"{BEST_METRIC}{k}": metrics[f"{metric}{k}"] for k in ("_seed_std", "_seeds")
              if f"{metric}{k}" in metrics}
    return {BEST_METRIC: metrics[metric], f"{BEST_METRIC}_stderr": metrics.get(f"{metric}_stderr"),
            f"{BEST_METRIC}_n": metrics.get(f"{metric}_n"), "best_metric": metric,
            "best_formulation": formulation(metric, answer), **spread}


def named_by_formulation(metrics: dict) -> dict:
    """A bench row of an older results.json, whose one ll form was `ll_acc` with its formulation in
    `ll_formulation`, with its ll metrics under today's names (ll_cloze_acc, ll_letters_acc), so tables can
    put old and new runs side by side. A current row is returned as is."""
    form = {"cloze": "ll_cloze", "letters": "ll_letters"}.get(metrics.get("ll_formulation"))
    if "ll_acc" not in metrics or form is None:
        return metrics
    out = {k: v for k, v in metrics.items() if k != "ll_formulation"}
    for key in [k for k in metrics if k.startswith("ll_acc")]:
        out[form + key[2:]] = out.pop(key)
    if out.get("best_metric") == "ll_acc":
        out["best_metric"] = f"{form}_acc"
    return out


def item_scores(records: list[dict], metric: str) -> list[float]:
    """Per-item 0/1 vector behind an accuracy metric (for paired bootstrap of rankings)."""
    key = {"strict_acc": "strict_correct", "lenient_acc": "lenient_correct", "format_rate": "format_ok"}.get(
        metric, "ll_correct_norm" if metric.endswith("_norm") else "ll_correct")
    return [float(r[key]) for r in sorted(records, key=lambda r: r["doc_id"])]
