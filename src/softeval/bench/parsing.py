"""Answer parsers that separate *format* from *knowledge*.

Every generated answer is read twice:

  * strictly: does the output follow the required format exactly (a bare choice letter such as
    "C" for multiple choice, "#### 42" for GSM8K)? If so, which answer does it give?
  * leniently: what answer does a best-effort reading find (a leading letter with trailing text,
    "the answer is C", the text of one choice, the last number in a worked solution)?

`format_ok` is the strict parse succeeding; strict accuracy counts only format-following correct
answers; lenient accuracy counts every answer a person would accept. The parsers are pure functions
of strings so they can be tested on crafted outputs without a model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ANSWER_KINDS = ("letter", "number", "text")


@dataclass(frozen=True)
class ParsedAnswer:
    strict: str | None    # answer under the strict format, None when the output does not follow it
    lenient: str | None   # best-effort answer, None when nothing answer-like was found

    @property
    def format_ok(self) -> bool:
        return self.strict is not None


# --------------------------------------------------------------------------- letters

# Strict: the whole (stripped) output is one capital letter, "C", "C.", "C)" or "(C)" (brackets balanced:
# "(C" and "C))" are not the format). The task YAMLs' strict-match regex is the same rule.
_LETTER_STRICT = re.compile(r"^(?:\(([A-Z])\)|([A-Z])[.)]?)$")
# "the answer is C": a capital letter, a bracketed one, or a lower-case one that ends the phrase ("… is b.").
# A lower-case letter followed by a word is an article ("the answer is a plant"), not an answer.
_LETTER_ANSWER_IS = re.compile(r"\b(?i:answer)\s*(?:(?i:is)|:)?\s*[:\-]?\s*"
                               r"(?:\(([A-Za-z])\)|([A-Z])(?![A-Za-z])|([a-z])(?=\s*(?:[.):,;!]|$)))")
_LETTER_LEADING_MARKED = re.compile(r"^\(?([A-Z])(?:\)|\.|:|$)")
_LETTER_LEADING_SPACE = re.compile(r"^([A-Z])\s")
_LETTER_ANYWHERE = re.compile(r"(?<![A-Za-z])\(?([A-Z])\)?(?![A-Za-z])")


def parse_letter(output: str, labels: list[str], choices: list[str] | None = None) -> ParsedAnswer:
    """Read a multiple-choice answer given the item's valid `labels` (e.g. A-D) and choice texts."""
    valid = {str(label).upper(): str(label) for label in labels}
    text = output.strip()
    strict = None
    m = _LETTER_STRICT.match(text)
    letter = m and (m.group(1) or m.group(2))
    if letter and letter in valid:
        strict = valid[letter]
    return ParsedAnswer(strict=strict, lenient=strict or _lenient_letter(text, valid, choices or []))


def _lenient_letter(text: str, valid: dict[str, str], choices: list[str]) -> str | None:
    first_line = text.splitlines()[0].strip() if text else ""
    m = _LETTER_ANSWER_IS.search(text)
    letter = m and next(g for g in m.groups() if g).upper()
    if letter and letter in valid:
        return valid[letter]
    m = _LETTER_LEADING_MARKED.match(first_line)
    if m and m.group(1) in valid:
        return valid[m.group(1)]
    found = _choice_by_text(text, list(valid.values()), choices)
    if found is not None:
        return found
    m = _LETTER_LEADING_SPACE.match(first_line)
    if m and m.group(1) in valid and m.group(1) != "A":  # "A plant ..." is an article, not an answer
        return valid[m.group(1)]
    for m in _LETTER_ANYWHERE.finditer(first_line):
        if m.group(1) in valid and m.group(1) not in ("A", "I"):
            return valid[m.group(1)]
    return None


def _normalize(s: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", s.lower())).strip()


def _choice_by_text(text: str, labels: list[str], choices: list[str]) -> str | None:
    """The one choice whose text the output starts with or contains (longest wins; ties: none)."""
    out = _normalize(text)
    if not out or len(choices) != len(labels):
        return None
    hits = [(len(_normalize(c)), label) for c, label in zip(choices, labels)
            if _normalize(c) and (out.startswith(_normalize(c)) or f" {_normalize(c)} " in f" {out} ")]
    if not hits:
        return None
    hits.sort(reverse=True)
    if len(hits) > 1 and hits[0][0] == hits[1][0]:
        return None
    return hits[0][1]


# --------------------------------------------------------------------------- numbers

_NUMBER_STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")  # lm-eval's gsm8k "strict-match" capture
# A number as people write it: commas only as thousands separators ("1,234", not "1,2"), optional decimals.
_NUMBER_TEXT = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d*)(?:\.\d+)?")
# Lenient search: "1,2" reads as the numbers 1 and 2 (lm-eval's flexible-extract reads it as 12).
_NUMBER_ANY = re.compile(r"(?<![\d.])-?\$?(?:\d{1,3}(?:,\d{3})+(?![\d])|\d+)(?:\.\d+)?")


def normalize_number(s: str | None) -> str | None:
    """'1,234.50' → '1234.5', '$18.' → '18'; None when the text is not one well-formed number
    ('1,2', '3.5.1', '')."""
    if s is None:
        return None
    s = s.replace("$", "").strip()
    s = re.sub(r"[.,]+$", "", s)  # sentence punctuation after the number ("… is 18.", "#### 12,")
    if not re.search(r"\d", s) or not _NUMBER_TEXT.fullmatch(s):
        return None
    value = float(s.replace(",", ""))
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return str(int(value)) if value == int(value) else repr(value)


def parse_number(output: str) -> ParsedAnswer:
    """GSM8K style: strict is the first `#### N`; lenient is that, else the last number in the output."""
    m = _NUMBER_STRICT.search(output)
    strict = normalize_number(m.group(1)) if m else None
    lenient = strict
    if lenient is None:
        numbers = _NUMBER_ANY.findall(output)
        lenient = normalize_number(numbers[-1]) if numbers else None
    return ParsedAnswer(strict=strict, lenient=lenient)


def gold_number(answer: str) -> str | None:
    """The gold number of a GSM8K answer ('… #### 18' → '18'); a bare number is accepted too."""
    m = re.search(r"####\s*(\-?[0-9\.\,\$]+)", answer)
    return normalize_number(m.group(1) if m else answer)


# --------------------------------------------------------------------------- short text answers


def normalize_text(s: str) -> str:
    """Lower-case, punctuation and articles removed, whitespace collapsed (SQuAD-style)."""
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", _normalize(s)).split())


def parse_text(output: str, gold: str) -> ParsedAnswer:
    """Short free-text answers: strict is the first line when it is a short answer (≤ 10 words);
    lenient is the gold answer when it appears anywhere in the output, else the first line."""
    first = output.strip().splitlines()[0].strip() if output.strip() else ""
    strict = first if first and len(first.split()) <= 10 else None
    g = normalize_text(gold)
    lenient = gold if g and f" {g} " in f" {normalize_text(output)} " else (first or None)
    return ParsedAnswer(strict=strict, lenient=lenient)


def same_answer(kind: str, predicted: str | None, gold: str) -> bool:
    if predicted is None:
        return False
    if kind == "number":
        return normalize_number(predicted) is not None and normalize_number(predicted) == normalize_number(gold)
    if kind == "text":
        return normalize_text(predicted) == normalize_text(gold)
    return predicted.strip().upper() == gold.strip().upper()
