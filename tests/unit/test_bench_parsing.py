"""Strict and lenient answer parsers on crafted outputs (no model)."""

import pytest

from softeval.bench.parsing import gold_number, parse_letter, parse_number, parse_text, same_answer

LABELS = ["A", "B", "C", "D"]
CHOICES = ["the sun", "the moon", "a plant", "water"]


@pytest.mark.parametrize("output, strict, lenient", [
    (" C", "C", "C"),
    ("C", "C", "C"),
    (" (B)", "B", "B"),
    (" D.", "D", "D"),
    (" C) a plant", None, "C"),
    (" The answer is B because", None, "B"),
    (" water", None, "D"),
    (" A plant makes food", None, "C"),      # "A" is an article here: the choice text wins
    (" E", None, None),                      # not a valid label for this item
    (" c", None, None),                      # lower case is not the required format
    ("", None, None),
    (" I think so", None, None),
    (" The answer is a plant", None, "C"),   # "a" is an article, not the letter A; the choice text decides
    (" the answer is (b)", None, "B"),
    (" The answer is: d.", None, "D"),
    (" (C", None, "C"),                      # unbalanced brackets are not the strict format...
    (" C))", None, "C"),                     # ... but a person would still read C
    (" C)", "C", "C"),
    (" (C).", None, "C"),
])
def test_letter(output, strict, lenient):
    parsed = parse_letter(output, LABELS, CHOICES)
    assert parsed.strict == strict
    assert parsed.lenient == lenient
    assert parsed.format_ok == (strict is not None)


@pytest.mark.parametrize("output, strict, lenient", [
    (" She sells 9 eggs.\n#### 18", "18", "18"),
    (" 3 + 4 = 7 so #### 1,234.", "1234", "1234"),
    (" The total is $18.00", None, "18"),
    (" 5 apples and 7 pears, so 12", None, "12"),
    (" #### -3", "-3", "-3"),
    (" no idea", None, None),
    (" #### 1,2", None, "2"),                # "1,2" is not a number (lm-eval's filters read it as 12)
    (" He bought 1,2 and 3", None, "3"),
    (" we have 1,2", None, "2"),
    (" #### 12,\nsince", "12", "12"),         # sentence punctuation after the number
    (" The answer is 18.", None, "18"),
    (" $1,000 in total", None, "1000"),
])
def test_number(output, strict, lenient):
    parsed = parse_number(output)
    assert (parsed.strict, parsed.lenient) == (strict, lenient)


def test_gold_number_and_compare():
    assert gold_number("Janet sells 9 eggs.\n#### 18") == "18"
    assert gold_number("1,000") == "1000"
    assert same_answer("number", "18.0", "18")
    assert not same_answer("number", "17", "18")
    assert not same_answer("number", None, "18")


def test_text_answers():
    p = parse_text(" Paris\nQuestion: next", "Paris")
    assert p.strict == "Paris" and same_answer("text", p.strict, "paris")
    p = parse_text(" I believe the capital is Paris, of course, as everyone knows very well", "Paris")
    assert p.strict is None and p.lenient == "Paris"


# --------------------------------------------------------------------------- against lm-eval's own filters


def _lm_eval_gsm8k():
    """The installed lm-eval's gsm8k filters and exact-match normalisation, read from its YAML."""
    from pathlib import Path

    import lm_eval
    import yaml
    from lm_eval.filters.extraction import RegexFilter

    cfg = yaml.safe_load((Path(lm_eval.__file__).parent / "tasks" / "gsm8k" / "gsm8k.yaml").read_text())
    filters = {}
    for pipe in cfg["filter_list"]:
        regex = pipe["filter"][0]
        filters[pipe["name"]] = RegexFilter(regex["regex_pattern"], regex.get("group_select", 0))
    ignore = cfg["metric_list"][0]["regexes_to_ignore"]

    def correct(name, output, gold):
        import re

        pred = filters[name].apply([[output]], [{}])[0][0]
        norm = lambda s: (lambda t: [t := re.sub(r, "", t) for r in ignore][-1])(s).lower()  # noqa: E731
        return norm(pred) == norm(gold)

    return correct


# output, gold, (softeval strict, softeval lenient), (lm-eval strict-match, lm-eval flexible-extract)
GSM8K_CASES = [
    ("Step 1.\n#### 18", "18", (True, True), (True, True)),
    ("#### 1,234", "1234", (True, True), (True, True)),
    ("The answer is 18.", "18", (False, True), (False, True)),
    ("#### -3", "-3", (True, True), (True, True)),
    ("$1,000 in total", "1000", (False, True), (False, True)),
    # Where softeval deliberately differs: "1,2" is not twelve.
    ("#### 1,2", "12", (False, False), (True, True)),
    ("He has 1,2 apples", "12", (False, False), (False, True)),
]


@pytest.mark.parametrize("output, gold, ours, theirs", GSM8K_CASES)
def test_number_parser_against_lm_eval_filters(output, gold, ours, theirs):
    lm_eval_correct = _lm_eval_gsm8k()
    assert (lm_eval_correct("strict-match", output, gold), lm_eval_correct("flexible-extract", output, gold)) == theirs
    parsed = parse_number(output)
    assert (parsed.format_ok and same_answer("number", parsed.strict, gold),
            same_answer("number", parsed.lenient, gold)) == ours


LETTER_OUTPUTS = ["C", " C", "(C)", "C.", "C)", " C \n", "(C", "C))", "(C).", "c", "C D", "CC", "The answer is C", ""]


@pytest.mark.parametrize("output", LETTER_OUTPUTS)
def test_strict_letter_equals_the_task_yamls_strict_match(output):
    """softeval's strict letter and lm-eval's strict-match filter (the shipped *_letter.yaml regex) agree."""
    from lm_eval.filters.extraction import RegexFilter

    from softeval.bench.tasks import CONFIG_DIR, load_task_yaml

    pattern = load_task_yaml(CONFIG_DIR / "arc_easy_letter.yaml")["filter_list"][0]["filter"][0]["regex_pattern"]
    lm_eval_reads = RegexFilter(pattern, fallback="[invalid]").apply([[output]], [{}])[0][0]
    strict = parse_letter(output, LABELS, CHOICES).strict
    assert (strict or "[invalid]") == lm_eval_reads
