"""The answer-habit baseline (softeval.bench.habit): exact permutation moments, a favourite letter that
explains an accuracy is not called knowledge, answers that track the gold are, and a bench run's rows and
report carry it for every letter formulation."""

import itertools
import json
import statistics

import pytest

from softeval.bench import habit


def _brute_force(pairs):
    golds = [g for _, g in pairs]
    counts = [sum(a == g for (a, _), g in zip(perm, golds)) for perm in itertools.permutations(pairs)]
    return statistics.mean(counts), statistics.pvariance(counts)


@pytest.mark.parametrize("pairs", [
    [("A", "A"), ("B", "A"), ("A", "B"), ("C", "C"), (habit.NO_ANSWER, "B"), ("A", "A")],
    [("C", "A"), ("C", "B"), ("C", "C"), ("C", "D"), ("D", "D"), ("C", "C"), ("B", "B")],
    [("A", "B"), ("B", "A")],
])
def test_moments_equal_the_mean_and_variance_over_every_permutation(pairs):
    observed, expected, variance = habit.permutation_moments(pairs)
    mean, var = _brute_force(pairs)
    assert observed == sum(a == g for a, g in pairs)
    assert expected == pytest.approx(mean) and variance == pytest.approx(var)


def test_a_favourite_letter_on_uneven_gold_is_habit_not_knowledge():
    # Always "C" where 40 % of the gold is C: 40 % accuracy, far above 1/4, and all of it habit.
    pairs = [("C", g) for g in "C" * 40 + "A" * 20 + "B" * 20 + "D" * 20]
    m = habit.habit_metrics("strict_acc", [pairs])
    assert m["strict_acc_habit"] == pytest.approx(0.40)
    assert m["strict_acc_over_habit"] == pytest.approx(0.0)
    assert m["strict_acc_over_habit_z"] is None  # one answer: every permutation scores the same
    assert (m["strict_acc_top_answer"], m["strict_acc_top_share"]) == ("C", 1.0)


def test_answers_that_follow_the_gold_stand_far_above_the_habit():
    golds = "ABCD" * 25
    m = habit.habit_metrics("strict_acc", [[(g, g) for g in golds]])
    assert m["strict_acc_habit"] == pytest.approx(0.25)
    assert m["strict_acc_over_habit"] == pytest.approx(0.75)
    assert m["strict_acc_over_habit_z"] > 10


def test_seeds_pool_and_out_of_format_replies_are_never_right():
    """Pooled over seeds, S, E[S] and Var[S] add up. The oracle is the enumeration of every permutation of each
    seed's answers (not permutation_moments, which habit_metrics itself calls), and the totals by hand."""
    seed_a = [("A", "A"), ("B", "B"), ("B", "A"), ("A", "B")]
    seed_b = [(habit.NO_ANSWER, "A"), ("A", "A"), ("A", "B"), ("B", "B")]
    pooled = habit.habit_metrics("strict_acc", [seed_a, seed_b])
    (mean_a, var_a), (mean_b, var_b) = _brute_force(seed_a), _brute_force(seed_b)
    # By hand: seed a deals two A and two B answers to two A and two B golds, E[S] = (2·2 + 2·2)/4 = 2; seed b
    # deals (none), A, A, B to golds A, A, B, B, E[S] = (2·2 + 1·2)/4 = 1.5. Both seeds got 2 right.
    assert (mean_a, mean_b) == (2, 1.5)
    assert pooled["strict_acc_habit"] == pytest.approx(3.5 / 8)
    assert pooled["strict_acc_over_habit"] == pytest.approx((2 + 2 - 3.5) / 8)
    assert pooled["strict_acc_over_habit_stderr"] == pytest.approx((var_a + var_b) ** 0.5 / 8)
    gen = [{"parsed_strict": "A", "format_ok": False, "gold": "A"}, {"parsed_strict": "B", "format_ok": True, "gold": "B"}]
    assert habit.answers_and_golds(gen, "gen") == [(habit.NO_ANSWER, "A"), ("B", "B")]
    ll = [{"choice": 3, "gold": 1}, {"choice": None, "gold": 0}]
    assert habit.answers_and_golds(ll, "ll_letters") == [("D", "B"), (habit.NO_ANSWER, "A")]
    assert habit.habit_metrics("strict_acc", [[]]) == {}


def test_a_bench_run_scores_each_letter_formulation_against_its_habit(tiny_model_dir, tmp_path):
    from softeval.bench.runner import run
    from softeval.store import read_jsonl

    from tests.unit.test_bench_runner import _cfg, _quiz

    spec = _quiz(tmp_path / "quiz")
    out = tmp_path / "out"
    result = run(_cfg(tiny_model_dir, spec, out, modes=["zero", "soft"], forms=["gen", "ll"], limit=3,
                      max_steps=2, tuning_seeds=2))
    doc = json.loads((out / "results.json").read_text())
    rows = doc["results"][str(tiny_model_dir)]["quiz"]
    samples = sorted((out / "samples").rglob("zero_ll_cloze.jsonl"))
    assert len(samples) == 1
    records = list(read_jsonl(samples[0]))
    picked = [r["choice"] for r in records]
    gold = [r["gold"] for r in records]
    by_hand = sum(picked.count(c) * gold.count(c) for c in set(picked)) / len(records) ** 2
    assert rows["zero"]["ll_cloze_acc_habit"] == pytest.approx(by_hand)
    for mode in ("zero", "soft"):
        for metric in habit.HABIT_METRICS:
            assert rows[mode][f"{metric}_over_habit"] == pytest.approx(
                rows[mode][metric] - rows[mode][f"{metric}_habit"]), (mode, metric)
    assert "Knowledge or answer habit?" in result.report_path.read_text()
    from softeval.cli.show import describe, render

    zero = rows["zero"]
    line = (f"habit:      {tiny_model_dir} quiz zero: letters {100 * zero['strict_acc']:.1f} vs habit "
            f"{100 * zero['strict_acc_habit']:.1f}")
    assert line in render(describe(out))


def test_habit_text_names_each_formulation_in_points():
    row = {"strict_acc": 0.33, "strict_acc_habit": 0.2637, "strict_acc_over_habit": 0.0663,
           "strict_acc_over_habit_stderr": 0.0271, "ll_cloze_acc": 0.25, "ll_cloze_acc_habit": 0.25,
           "ll_cloze_acc_over_habit": 0.0, "ll_cloze_acc_over_habit_stderr": None}
    assert habit.habit_text(row) == "letters 33.0 vs habit 26.4 (+6.6 ± 2.7), cloze 25.0 vs habit 25.0 (+0.0)"
    assert habit.habit_text({"strict_acc": 0.3}) == ""
