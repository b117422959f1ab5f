"""--limit-from spread: --limit items at even steps over the evaluation split, not its first N."""

from __future__ import annotations

import json

import pytest

from softeval.bench.config import BenchConfig
from softeval.bench.evaluate import eval_indices
from softeval.bench.identity import identity_settings
from softeval.bench.runner import run
from softeval.compare import compare_bench, load_run
from softeval.errors import SoftevalError
from tests.conftest import write_jsonl
from tests.unit.test_bench_runner import _cfg


def _ordered_quiz(folder, num_test=10):
    """A quiz whose test items are told apart by their gold letter's pattern (item i: "ABC"[i % 3])."""
    folder.mkdir(parents=True, exist_ok=True)
    words = ["red", "blue", "green", "gold", "gray", "pink"]

    def item(i):
        return {"q": f"Which colour is item {i}?", "options": [words[i % 6], words[(i + 1) % 6], words[(i + 2) % 6]],
                "gold": "ABC"[i % 3]}

    write_jsonl(folder / "train.jsonl", [item(i) for i in range(100, 112)])
    write_jsonl(folder / "test.jsonl", [item(i) for i in range(num_test)])
    spec = folder / "quiz.yaml"
    spec.write_text(json.dumps({"task": "quiz", "kind": "multiple_choice",
                                "files": {"train": "train.jsonl", "test": "test.jsonl"},
                                "fields": {"question": "q", "choices": "options", "answer": "gold"}}))
    return spec


def test_spread_indices_step_evenly_from_the_first_item():
    spread = BenchConfig(limit=4, limit_from="spread")
    assert eval_indices(10, spread) == [0, 2, 5, 7]
    assert eval_indices(14042, BenchConfig(limit=200, limit_from="spread"))[:3] == [0, 70, 140]
    assert len(set(eval_indices(201, BenchConfig(limit=200, limit_from="spread")))) == 200
    # lm-eval's own --limit (first N), no limit, or a limit that takes every item: nothing to pick.
    assert eval_indices(10, BenchConfig(limit=4)) is None
    assert eval_indices(10, BenchConfig(limit_from="spread")) is None
    assert eval_indices(4, spread) is None


def test_the_default_leaves_every_earlier_folder_identity_as_it_was():
    assert "limit_from" not in identity_settings(BenchConfig(limit=200))
    assert "limit_from" not in identity_settings(BenchConfig(limit_from="spread"))  # every item either way
    assert identity_settings(BenchConfig(limit=200, limit_from="spread"))["limit_from"] == "spread"


def test_an_unknown_limit_from_is_a_config_error():
    with pytest.raises(SoftevalError, match="limit_from"):
        BenchConfig(limit=3, limit_from="random")


def test_spread_scores_items_across_the_split_and_keeps_their_place(tiny_model_dir, tmp_path):
    spec = _ordered_quiz(tmp_path / "quiz")
    golds = {}
    for how in ("first", "spread"):
        out = tmp_path / how
        result = run(_cfg(tiny_model_dir, spec, out, forms=["gen", "ll"], limit=4, limit_from=how))
        task_dir = next((out / "samples").glob("*/quiz"))
        for form in ("gen", "ll_letters", "ll_cloze"):
            rows = [json.loads(line) for line in (task_dir / f"zero_{form}.jsonl").read_text().splitlines()]
            golds[how, form] = [(r["doc_id"], r["gold"]) for r in rows]
        data = result.results and json.loads((out / "results.json").read_text())["data"]["quiz"]
        assert data["eval_items"] == 4 and data.get("eval_items_from") == (None if how == "first" else "spread")
    # Items 0, 2, 5, 7 of 10 (golds A, C, C, B), each under its place in the split, in every form.
    assert golds["spread", "gen"] == [(0, "A"), (2, "C"), (5, "C"), (7, "B")]
    assert golds["first", "gen"] == [(0, "A"), (1, "B"), (2, "C"), (3, "A")]
    for form in ("ll_letters", "ll_cloze"):
        assert [d for d, _ in golds["spread", form]] == [0, 2, 5, 7]
        assert [d for d, _ in golds["first", form]] == [0, 1, 2, 3]
    # Four items either way, but not the same four: compare refuses to set the runs side by side unless asked.
    runs = [load_run(tmp_path / how) for how in ("first", "spread")]
    with pytest.raises(SoftevalError, match="allow-different-eval"):
        compare_bench(runs, ["first", "spread"])
    assert compare_bench(runs, ["first", "spread"], allow_different_eval=True)["same_eval_set"] is False


def test_a_folder_of_the_first_items_refuses_a_spread_run(tiny_model_dir, tmp_path):
    spec = _ordered_quiz(tmp_path / "quiz")
    run(_cfg(tiny_model_dir, spec, tmp_path / "out", limit=4))
    with pytest.raises(SoftevalError, match="limit_from"):
        run(_cfg(tiny_model_dir, spec, tmp_path / "out", limit=4, limit_from="spread"))
