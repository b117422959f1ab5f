"""Cloze beside letters (OLMES): a spec file's multiple-choice task is scored both as generated letters and as
cloze (each choice's text scored as the continuation); every table shows both and the better formulation,
named; rankings say which formulation they used."""

import json
import os

import pytest
import torch

from softeval.bench import scoring
from softeval.bench.runner import run

from tests.unit.test_bench_runner import _cfg, _quiz, _strict_load


def _cloze_loglikelihoods(model_dir, question: str, choices: list[str]) -> list[float]:
    """Sum of log P(" " + choice | "Question: …\\nAnswer:") per choice, straight from the HF model, with the
    context/continuation split lm-eval uses (encode the whole, cut at the context's length)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    context = f"Question: {question}\nAnswer:"
    out = []
    for choice in choices:
        whole = tok(context + " " + choice)["input_ids"]
        n_ctx = len(tok(context)["input_ids"])
        with torch.no_grad():
            logp = model(torch.tensor([whole])).logits[0].float().log_softmax(-1)
        out.append(sum(float(logp[i - 1, whole[i]]) for i in range(n_ctx, len(whole))))
    return out


def test_spec_task_scores_letters_and_cloze_side_by_side(tiny_model_dir, tmp_path, capsys):
    """Both forms run on a spec file; the ll form scores the choice TEXTS (checked against log-likelihoods
    computed here from the HF model); results.json (strict JSON) has letters, cloze and the best of them,
    named; every ranking names its formulation."""
    spec = _quiz(tmp_path / "quiz")
    (tmp_path / "models").mkdir()
    other = tmp_path / "models" / "twin"
    os.symlink(tiny_model_dir, other)
    models = [str(tiny_model_dir), str(other)]
    out = tmp_path / "out"
    result = run(_cfg(tiny_model_dir, spec, out, models=models, forms=["gen", "ll"], limit=3))
    doc = _strict_load((out / "results.json").read_text())

    # the cloze choice of each item = argmax of the texts' log-likelihoods, computed independently
    test = [json.loads(x) for x in (tmp_path / "quiz" / "test.jsonl").read_text().splitlines()]
    records = [json.loads(x) for x in (out / "samples").rglob("zero_ll.jsonl").__next__().read_text().splitlines()]
    for rec, item in zip(records, test):
        expected = _cloze_loglikelihoods(tiny_model_dir, item["q"], item["options"])
        assert rec["loglikelihoods"] == pytest.approx(expected, abs=1e-3)
        assert rec["ll_correct"] == (max(range(3), key=expected.__getitem__) == "ABC".index(item["gold"]))

    assert doc["data"]["quiz"]["ll_formulation"] == "cloze"
    from softeval.bench.report import summary

    for model in models:
        m = doc["results"][model]["quiz"]["zero"]
        assert m == result.results[model]["quiz"]["zero"]
        assert {"format_rate", "strict_acc", "lenient_acc", "ll_acc", "ll_acc_norm"} <= set(m)
        assert m["ll_acc"] == sum(r["ll_correct"] for r in records) / 3
        assert m["ll_formulation"] == "cloze"
        best = "ll_acc" if m["ll_acc"] > m["strict_acc"] else "strict_acc"
        assert (m["best_acc"], m["best_metric"]) == (m[best], best)
        assert m["best_formulation"] == ("cloze" if best == "ll_acc" else "letters")
        line = summary(m)
        assert f"ll_acc (cloze) {100 * m['ll_acc']:.1f}" in line and f"best_acc ({m['best_formulation']})" in line

    ranks = doc["rankings"]["quiz"]
    assert {k: v["formulation"] for k, v in ranks.items()} == {
        "strict_acc": "letters", "lenient_acc": "letters", "ll_acc": "cloze", "best_acc": "best"}
    chosen = ranks["best_acc"]["formulations"]["zero"]
    assert chosen == {model: doc["results"][model]["quiz"]["zero"]["best_formulation"] for model in models}
    for row in ranks["best_acc"]["leaderboards"]["zero"]:
        assert row["formulation"] == chosen[row["model"]]
        assert row["score"] == doc["results"][row["model"]]["quiz"]["zero"]["best_acc"]
    report = result.report_path.read_text()
    assert "<th>ll formulation</th><th>best from</th>" in report and "<td>cloze</td>" in report


@pytest.mark.parametrize("strict, ll, ll_formulation, metric, named", [
    (0.22, 0.516, "cloze", "ll_acc", "cloze"),          # small model: letters at chance, cloze informative
    (0.70, 0.516, "cloze", "strict_acc", "letters"),    # a model that follows the format
    (0.50, 0.50, "cloze", "strict_acc", "letters"),     # ties go to the letters
    (0.25, 0.40, "letters", "ll_acc", "letters_ll"),    # MMLU's ll form scores the letters
])
def test_best_formulation_picks_the_larger_and_names_it(strict, ll, ll_formulation, metric, named):
    metrics = {"strict_acc": strict, "strict_acc_stderr": 0.01, "strict_acc_n": 10,
               "ll_acc": ll, "ll_acc_stderr": 0.02, "ll_acc_n": 10}
    best = scoring.best_of(metrics, "letter", ll_formulation)
    assert best == {"best_acc": max(strict, ll), "best_acc_stderr": metrics[f"{metric}_stderr"], "best_acc_n": 10,
                    "best_metric": metric, "best_formulation": named}
    assert scoring.best_of({**metrics, "ll_acc": None}, "letter", ll_formulation) == {}  # one form: no best-of
    assert scoring.best_of(metrics, "number", None) == {}  # not multiple choice


def test_spec_results_of_letter_ll_prompts_are_not_reused(tiny_model_dir, tmp_path):
    """A spec's ll form scored the letters before; a unit folder written then must not pass for cloze."""
    from softeval.store import BenchFolder
    from softeval.errors import ConfigError
    from softeval.store import IDENTITY_FILE, read_json

    spec = _quiz(tmp_path / "quiz")
    out = tmp_path / "out"
    cfg = _cfg(tiny_model_dir, spec, out, forms=["ll"])
    run(cfg)
    ident = BenchFolder(out).unit_dir(str(tiny_model_dir), "quiz") / IDENTITY_FILE
    old = read_json(ident, "identity")
    old["settings"].pop("spec_prompts")
    ident.write_text(json.dumps(old))
    with pytest.raises(ConfigError, match=r"settings.spec_prompts: '<absent>' → 2"):
        run(cfg)
