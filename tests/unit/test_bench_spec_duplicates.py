"""One odd item does not refuse a whole benchmark (issue 29, defect 19).

An item whose answer text is the text of two of its choices (['absorption', 'transpiration', 'evaporation',
'evaporation'], answer 'evaporation') has no one right letter: it is skipped, counted per split in
BenchTask.skipped_items and named in BenchTask.notes (which the runner writes to results.json and the log).
An answer that is no choice at all still stops the run with one line naming the item."""

import json

import pytest

from softeval.bench import harness
from softeval.bench.tasks import resolve_task
from softeval.errors import DataError
from tests.conftest import write_jsonl

ODD = {"q": "How does water leave a leaf?", "options": ["absorption", "transpiration", "evaporation", "evaporation"],
       "gold": "evaporation"}


def _item(i, gold=None):
    return {"q": f"Which is {i}?", "options": [f"w{i}", f"x{i}", f"y{i}", f"z{i}"], "gold": gold or f"x{i}"}


def _spec(tmp_path, train, test, answer="gold"):
    write_jsonl(tmp_path / "train.jsonl", train)
    write_jsonl(tmp_path / "test.jsonl", test)
    spec = tmp_path / "quiz.yaml"
    spec.write_text(json.dumps({"task": "quiz", "kind": "multiple_choice",
                                "files": {"train": "train.jsonl", "test": "test.jsonl"},
                                "fields": {"question": "q", "choices": "options", "answer": answer}}))
    return spec


@pytest.mark.parametrize("answer", ["gold", {"field": "gold", "type": "text"}])
def test_item_whose_answer_is_two_choices_is_skipped_and_counted(tmp_path, answer):
    test = [_item(0), ODD, _item(2), _item(3), ODD | {"q": "Again?"}]
    task = resolve_task(str(_spec(tmp_path, [_item(10), ODD], test, answer)))
    assert task.skipped_items == {"train": {"duplicate_answer_choices": 1}, "test": {"duplicate_answer_choices": 2}}
    assert len(task.notes) == 1
    note = task.notes[0]
    assert "\n" not in note and note.startswith("quiz: 3 item(s) skipped (train 1, test 2): the answer is the text "
                                                "of two or more choices")
    assert "test.jsonl:2: choices C and D are both 'evaporation'" in note
    gen = harness.build_lm_eval_task(task.configs["gen"])
    assert [d["softeval_source"] for d in harness.eval_docs(gen)] == ["test.jsonl:1", "test.jsonl:3", "test.jsonl:4"]
    assert [d["softeval_gold"] for d in harness.training_docs(gen)] == ["B"]
    assert harness.skipped_without_gold(gen, "test") == 0  # not counted twice as "no gold"


def test_many_such_items_are_summed_up_in_one_line(tmp_path):
    test = [_item(0)] + [ODD | {"q": f"Odd {i}?"} for i in range(5)]
    note = resolve_task(str(_spec(tmp_path, [_item(10)], test))).notes[0]
    assert "\n" not in note and note.endswith("; and 2 more)") and "quiz: 5 item(s) skipped (test 5)" in note


def test_an_answer_that_is_no_choice_still_stops_the_run_naming_the_item(tmp_path):
    bad = {"q": "Which?", "options": ["absorption", "evaporation", "evaporation"], "gold": "condensation"}
    with pytest.raises(DataError, match=r"^test.jsonl:2: answer 'condensation' is not a letter, a 0-based index or "
                                        r"the text of a choice \(choices: \['absorption', 'evaporation', 'evaporation'\]\)$"):
        resolve_task(str(_spec(tmp_path, [_item(10)], [_item(0), bad])))
    with pytest.raises(DataError, match=r"^test.jsonl:2: answer 'condensation' is not the text of a choice"):
        resolve_task(str(_spec(tmp_path, [_item(10)], [_item(0), bad], {"field": "gold", "type": "text"})))


def test_letter_answers_name_one_choice_and_are_kept(tmp_path):
    """With letters the file says which copy is right (as the built-in tasks and lm-eval score such items)."""
    task = resolve_task(str(_spec(tmp_path, [_item(10, "B")], [ODD | {"gold": "D"}, _item(1, "A")])))
    assert task.skipped_items == {} and task.notes == []
    gen = harness.build_lm_eval_task(task.configs["gen"])
    assert [d["softeval_gold"] for d in harness.eval_docs(gen)] == ["D", "A"]


def test_a_bench_run_goes_on_and_records_the_skipped_items(tiny_model_dir, tmp_path, caplog):
    """End to end (tuning and scoring on the tiny model): the run finishes, results.json and the log say
    which items were left out, and the spec's description, a template that would set an environment
    variable, is only text."""
    import logging
    import os

    from softeval.bench.config import BenchConfig
    from softeval.bench.runner import run
    from softeval.config import build_config

    flag = "SOFTEVAL_SPEC_DESCRIPTION_RAN"
    os.environ.pop(flag, None)
    spec = _spec(tmp_path, [_item(i) for i in range(10, 16)], [_item(0), ODD, _item(2)])
    raw = json.loads(spec.read_text())
    raw["description"] = "{{ cycler.__init__.__globals__.os.environ.setdefault('" + flag + "', '1') }}\n"
    spec.write_text(json.dumps(raw))
    cfg = build_config(BenchConfig, flags=dict(
        models=[str(tiny_model_dir)], tasks=[str(spec)], modes=["zero", "soft"], forms=["gen", "ll_cloze"],
        num_virtual_tokens=2, max_steps=2, batch_size=2, lr=0.05, warmup_steps=1, curve_steps=[], shots=1,
        max_gen_toks=2, device="cpu", dtype="float32", eval_batch_size=4, num_bootstrap=0, out=str(tmp_path / "out"),
        show_progress=False))
    with caplog.at_level(logging.WARNING):
        run(cfg)
    assert os.environ.pop(flag, None) is None
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    data = doc["data"]["quiz"]
    assert data["eval_items"] == 2 and data["skipped_no_gold"] == 0
    assert data["skipped_items"] == {"test": {"duplicate_answer_choices": 1}}
    assert any("test.jsonl:2: choices C and D are both 'evaporation'" in n for n in data["notes"])
    assert "quiz: 1 item(s) skipped (test 1)" in caplog.text
