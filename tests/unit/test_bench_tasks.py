"""Task resolution, offline data loading, bad input, and the tuning/evaluation split (no real model)."""

import json
import pytest

from softeval.config import build_config
from softeval.bench import harness
from softeval.bench.tasks import known_tasks, resolve_task
from softeval.errors import ConfigError, DataError

from tests.conftest import write_jsonl



def test_unknown_task_lists_known_ones():
    with pytest.raises(ConfigError, match="unknown task 'arc_eazy'. Did you mean 'arc_easy'.*Available: .*gsm8k"):
        resolve_task("arc_eazy")
    assert {"arc_easy", "arc_challenge", "mmlu", "gsm8k", "commonsense_qa"} <= set(known_tasks())


def test_hub_configs_by_default():
    task = resolve_task("arc_easy")
    assert task.forms == ["gen", "ll_letters", "ll_cloze"] and task.source == "hub"
    assert task.configs["ll_cloze"]["dataset_path"] == task.configs["ll_letters"]["dataset_path"] == "allenai/ai2_arc"
    assert resolve_task("gsm8k").forms == ["gen"]


def test_data_dir_missing_a_split(tmp_path):
    folder = tmp_path / "arc" / "ARC-Easy"
    folder.mkdir(parents=True)
    (folder / "ARC-Easy-Train.jsonl").write_text("")
    with pytest.raises(DataError, match="no test split for arc_easy: expected arc/ARC-Easy/ARC-Easy-Test.jsonl"):
        resolve_task("arc_easy", tmp_path)


def _spec(tmp_path, train, test, kind="multiple_choice", answer="gold", suffix="jsonl", choices="options", extra=""):
    for name, rows in (("train", train), ("test", test)):
        if suffix == "csv":
            (tmp_path / f"{name}.csv").write_text(rows)
        else:
            write_jsonl(tmp_path / f"{name}.jsonl", rows)
    spec = tmp_path / "quiz.yaml"
    fields = {"question": "q", "answer": answer} | ({"choices": choices} if kind == "multiple_choice" else {})
    spec.write_text(json.dumps({"task": "quiz", "kind": kind, "files": {"train": f"train.{suffix}",
                                                                       "test": f"test.{suffix}"},
                                "fields": fields}) + extra)
    return spec


def _item(i, gold="B"):
    return {"q": f"What is item {i}?", "options": [f"x{i}", f"y{i}", f"z{i}"], "gold": gold}


def _golds(spec, split="test"):
    gen = harness.build_lm_eval_task(resolve_task(str(spec)).configs["gen"])
    docs = harness.eval_docs(gen) if split == "test" else harness.training_docs(gen)
    return [(d["softeval_choices"], d["softeval_gold"]) for d in docs]


def test_spec_items_without_gold_are_skipped_and_counted(tmp_path):
    no_field = {k: v for k, v in _item(5).items() if k != "gold"}
    test = [_item(0), _item(1, gold=None), _item(2, gold=""), _item(3, gold="C"), _item(4, gold="a"), no_field]
    task = resolve_task(str(_spec(tmp_path, [_item(10)], test)))
    gen = harness.build_lm_eval_task(task.configs["gen"])
    docs = harness.eval_docs(gen)
    assert [d["softeval_gold"] for d in docs] == ["B", "C", "A"]
    assert harness.skipped_without_gold(gen, "test") == 3
    with pytest.raises(DataError, match=r"^train.jsonl: no item has the answer field 'answer'"):
        resolve_task(str(_spec(tmp_path, [_item(10)], test, answer="answer")))
    assert harness.render_context(gen, docs[0]) == "Question: What is item 0?\nA. x0\nB. y0\nC. z0\nAnswer:"
    assert harness.render_target(gen, docs[0]) == " B"
    # the ll form is cloze: the question alone, the choice texts scored, gold the right text's index
    ll = harness.build_lm_eval_task(task.configs["ll_cloze"])
    doc = harness.eval_docs(ll)[0]
    assert ll.doc_to_choice(doc) == ["x0", "y0", "z0"] and ll.doc_to_target(doc) == 1
    assert harness.render_context(ll, doc) == "Question: What is item 0?\nAnswer:"
    assert harness.ll_formulation(ll) == "cloze"
    assert [m["metric"] for m in task.configs["ll_cloze"]["metric_list"]] == ["acc", "acc_norm"]
    # the letters ll form: the generative prompt (options listed), the letters scored, gold the right letter
    letters = harness.build_lm_eval_task(task.configs["ll_letters"])
    doc = harness.eval_docs(letters)[0]
    assert letters.doc_to_choice(doc) == ["A", "B", "C"] and letters.doc_to_target(doc) == 1
    assert harness.render_context(letters, doc) == harness.render_context(gen, docs[0])
    assert harness.ll_formulation(letters) == "letters"


NUMBERS = {"q": "What is 1 + 2?", "options": ["6", "3", "4", "9"], "gold": "3"}


@pytest.mark.parametrize("answer_type, gold", [("text", "B"), ("index", "D"), ("letter", None)])
def test_spec_answer_type_is_explicit(tmp_path, answer_type, gold):
    spec = _spec(tmp_path, [NUMBERS], [NUMBERS], answer={"field": "gold", "type": answer_type})
    if gold is None:
        with pytest.raises(DataError, match=r"^train.jsonl:1: answer '3' is not a letter A-D \(fields.answer.type is"):
            resolve_task(str(spec))
    else:
        assert _golds(spec) == [(["6", "3", "4", "9"], gold)]


def test_spec_ambiguous_answer_is_refused_with_file_and_line(tmp_path):
    """"3" among ["6","3","4","9"] is index 3 ("9") or the text of B: the spec must say which."""
    agreeing = {"q": "What is 2 - 1?", "options": ["0", "1", "2"], "gold": "1"}  # index 1 and text "1": both B
    spec = _spec(tmp_path, [agreeing], [agreeing, NUMBERS])
    with pytest.raises(DataError, match=r"^test.jsonl:2: answer '3' is ambiguous: index → D \('9'\) or text → B"):
        resolve_task(str(spec))


def test_spec_answer_type_inferred_when_one_reading_fits(tmp_path):
    texts = _spec(tmp_path, [NUMBERS | {"gold": "6"}], [NUMBERS, NUMBERS | {"gold": "4"}])
    assert [g for _, g in _golds(texts)] == ["B", "C"] and [g for _, g in _golds(texts, "train")] == ["A"]
    # "6" cannot be an index of 4 choices, so only the text reading fits every item; a letter in one file and
    # a choice text in the other fit no single reading
    mixed = _spec(tmp_path, [_item(0, gold="B")], [_item(1, gold="y1")])
    with pytest.raises(DataError, match="answers mix letters, indices and choice texts .*type: letter.index.text"):
        resolve_task(str(mixed))
    with pytest.raises(DataError, match=r"^test.jsonl:1: answer 'w' is not a letter, a 0-based index or the text"):
        resolve_task(str(_spec(tmp_path, [_item(0)], [_item(1, gold="w")])))


def test_spec_texts_are_verbatim_csv(tmp_path):
    rows = "q,A,B,C,D,gold\nPick one,1.50,true,null,NA,1.50\nPick two,x,y,,,y\n"
    spec = _spec(tmp_path, rows, rows, answer={"field": "gold", "type": "text"}, suffix="csv",
                 choices=["A", "B", "C", "D"])
    assert _golds(spec) == [(["1.50", "true", "null", "NA"], "A"), (["x", "y"], "B")]


def test_spec_texts_are_verbatim_json(tmp_path):
    rows = ['{"q": "Pick", "options": [1.50, true, "null", 3], "gold": 1.50}']
    spec = _spec(tmp_path, rows, rows)
    assert _golds(spec) == [(["1.50", "true", "null", "3"], "A")]


def test_spec_empty_choice_before_others_is_refused(tmp_path):
    rows = "q,A,B,C,gold\nPick,x,,z,A\n"
    spec = _spec(tmp_path, rows, rows, suffix="csv", choices=["A", "B", "C"])
    with pytest.raises(DataError, match=r"^train.csv:2: choice 2 is empty but later ones are not"):
        resolve_task(str(spec))


def test_spec_format_key_is_refused(tmp_path):
    spec = _spec(tmp_path, [_item(0)], [_item(1)], extra="")
    raw = json.loads(spec.read_text()) | {"format": "letters"}
    spec.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="'format' is not supported"):
        resolve_task(str(spec))


def test_spec_bad_keys(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("task: t\nkind: essay\nfiles: {test: t.jsonl}\nfields: {question: q, answer: a}\n")
    with pytest.raises(ConfigError, match="kind must be multiple_choice or short_answer"):
        resolve_task(str(spec))


def test_tuning_data_never_overlaps_evaluation(tmp_path, tiny_lm):
    from softeval.bench.lm_adapter import SoftevalLM
    from softeval.bench.tuning import tuning_examples

    train = [_item(i) for i in range(20)] + [_item(100), _item(101)]  # two items repeat test items
    test = [_item(100), _item(101), _item(102)]
    task = resolve_task(str(_spec(tmp_path, train, test)))
    gen = harness.build_lm_eval_task(task.configs["gen"])
    eval_keys = {harness.doc_key(gen, d) for d in harness.eval_docs(gen)}
    adapter = SoftevalLM(lm=tiny_lm, show_progress=False)
    data = tuning_examples(gen, adapter, num_train=100, seed=0, eval_keys=eval_keys)
    assert data.overlap_removed == 2
    assert not set(data.train_keys) & eval_keys
    assert len(data.train) + len(data.held_out) == 20
    # the scored tokens are exactly the target as evaluation shows it (" B" and the few-shot delimiter)
    ex = data.train[0]
    scored = [t for t in ex.labels if t != -100]
    assert tiny_lm.tokenizer.decode(scored) == " B\n\n"


def test_curve_collects_every_evaluated_step(tmp_path):
    """A curve lists the requested steps found on disk plus steps an earlier, longer run evaluated."""
    from types import SimpleNamespace

    from softeval.bench.config import BenchConfig
    from softeval.bench.results import collect_results
    from softeval.store import atomic_write_json

    unit_dir = tmp_path / "units" / "m" / "q"
    metrics = {"format_rate": 0.5, "ll_cloze_acc": 0.1}
    for name, extra in [("soft", {"steps": 80, "tuning": {}}), ("curve_000010", {}), ("curve_000160", {})]:
        atomic_write_json(unit_dir / f"{name}.json", {"mode": name, "num_fewshot": 0, "lm_eval": {},
                                                      "metrics": metrics, **extra})
    cfg = build_config(BenchConfig, flags=dict(models=["m"], modes=["soft"], curve_steps=[0, 10, 80], max_steps=80))
    results, curves = collect_results(tmp_path, cfg, [SimpleNamespace(name="q", answer="letter")])
    assert [p["step"] for p in curves["m"]["q"]] == [10, 80, 160]  # step 0 was never evaluated
    assert "ll_cloze_acc" not in curves["m"]["q"][0] and results["m"]["q"]["soft"]["steps"] == 80
