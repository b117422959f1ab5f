"""Answer habit: how much of a multiple-choice accuracy the model's favourite answers alone explain.

A small model that answers "C" to most questions scores whatever share of the gold answers is C, with no
knowledge at all; on a sample whose gold letters are uneven that share can sit well above 1/k. The habit
baseline is the accuracy the same answers would score if they were dealt to the items at random: keep how
often each answer was given, break its link to the question. Over all permutations of the answers among
the items, the number right S has

    E[S]   = Σ_L a_L b_L / n               (a_L: answers L given, b_L: gold answers L, n items)
    Var[S] = Σ_ij d_ij² / (n − 1)           (Hoeffding's combinatorial central limit theorem)

where d_ij = M_ij − M_i· − M_·j + M_·· is the doubly centred match matrix M_ij = [answer j == gold i].
`over_habit` = (S − E[S]) / n is the knowledge the habit does not explain, with that permutation standard
error; z = (S − E[S]) / √Var[S]. Exact, so no random permutations and no seed.

An answer outside the format (a generated reply with no letter) counts as its own answer, never right.
Several tuning seeds pool: S, E[S] and Var[S] add up (the seeds' prompts answer independently).
"""

from __future__ import annotations

import math
from collections import Counter

NO_ANSWER = "(none)"  # not a letter, and safe in markdown and HTML tables
# The accuracies whose per-item answers the habit baseline reads, by the samples' form.
HABIT_METRICS = {"strict_acc": "gen", "ll_letters_acc": "ll_letters", "ll_cloze_acc": "ll_cloze"}


def answers_and_golds(records: list[dict], form: str) -> list[tuple[str, str]]:
    """(answer, gold) per item from a form's sample records: the strictly parsed letter of a generated reply
    (NO_ANSWER where out of format), or the chosen choice of a log-likelihood form as its position's letter."""
    if form == "gen":
        return [(str(r["parsed_strict"]) if r["format_ok"] and r["parsed_strict"] is not None else NO_ANSWER,
                 str(r["gold"])) for r in records]
    return [(NO_ANSWER if r["choice"] is None else _letter(r["choice"]), _letter(r["gold"])) for r in records]


def _letter(index) -> str:
    """A choice's position as the letter options are listed under (0 → A); anything else as text."""
    return chr(ord("A") + index) if isinstance(index, int) and 0 <= index < 26 else str(index)


def permutation_moments(pairs: list[tuple[str, str]]) -> tuple[int, float, float]:
    """Observed right answers S, and E[S] and Var[S] when the answers are dealt to the items at random."""
    n = len(pairs)
    observed = sum(a == g for a, g in pairs)
    if n < 2:
        return observed, float(observed), 0.0
    given = Counter(a for a, _ in pairs)
    gold = Counter(g for _, g in pairs)
    grand = sum(given[label] * gold[label] for label in given) / n**2
    # d_ij depends only on (gold_i, answer_j), so sum over label pairs weighted by how many (i, j) have them.
    spread = sum(gold[g] * given[a] * ((g == a) - given[g] / n - gold[a] / n + grand) ** 2
                 for g in gold for a in given)
    return observed, n * grand, spread / (n - 1)


def habit_metrics(metric: str, per_seed: list[list[tuple[str, str]]]) -> dict:
    """`<metric>_habit` (accuracy the answer habit alone would score), `<metric>_over_habit` (accuracy minus
    it) with `_stderr` and `_z`, and the favourite answer with its share (`<metric>_top_answer`,
    `_top_share`), pooled over tuning seeds; {} without items."""
    pairs = [p for seed in per_seed for p in seed]
    if not pairs:
        return {}
    moments = [permutation_moments(seed) for seed in per_seed if seed]
    observed = sum(m[0] for m in moments)
    expected = sum(m[1] for m in moments)
    variance = sum(m[2] for m in moments)
    n = len(pairs)
    top, count = Counter(a for a, _ in pairs).most_common(1)[0]
    sd = math.sqrt(variance)
    return {f"{metric}_habit": expected / n, f"{metric}_over_habit": (observed - expected) / n,
            f"{metric}_over_habit_stderr": sd / n if sd > 0 else None,
            f"{metric}_over_habit_z": (observed - expected) / sd if sd > 0 else None,
            f"{metric}_top_answer": top, f"{metric}_top_share": count / n}


# How tables and the terminal name each metric's formulation.
FORMULATION_NAMES = {"strict_acc": "letters", "ll_letters_acc": "letters_ll", "ll_cloze_acc": "cloze"}


def habit_text(row: dict) -> str:
    """One (model, task, mode) row's accuracies against their habits, in points: "letters 27.0 vs habit 25.7
    (+1.3 ± 3.0), cloze …"; "" where the row has none."""
    parts = []
    for metric in HABIT_METRICS:
        if row.get(f"{metric}_habit") is None or row.get(metric) is None:
            continue
        se = row.get(f"{metric}_over_habit_stderr")
        parts.append(f"{FORMULATION_NAMES[metric]} {100 * row[metric]:.1f} vs habit {100 * row[f'{metric}_habit']:.1f} "
                     f"({100 * row[f'{metric}_over_habit']:+.1f}" + ("" if se is None else f" ± {100 * se:.1f}") + ")")
    return ", ".join(parts)
