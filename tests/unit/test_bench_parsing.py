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
