"""Issue #12 on the embedded models: prefix-shared scoring equals one row per request (fp32, 1e-4), with and
without a soft prompt, also for a Gemma-3 context longer than its 512-token sliding window; batched
generation (stopped rows dropped) equals generating each request alone."""

from __future__ import annotations

import pytest
import torch
from lm_eval.api.instance import Instance

from softeval.bench.lm_adapter import SoftevalLM
from softeval.engine.models import load_model
from softeval.engine.prompt import SoftPrompt

pytestmark = pytest.mark.integration

# ARC-Easy-style items (written here, so the test needs no data folder): question, choices.
ITEMS = [
    ("Which part of a plant takes in water from the soil?", [" roots", " leaves", " flowers", " seeds"]),
    ("What is the main source of energy for the water cycle?", [" the Sun", " the Moon", " wind", " volcanoes"]),
    ("Which of these is a mixture?", [" salt water", " pure gold", " oxygen gas", " distilled water"]),
    ("A student drops a ball. Which force pulls the ball to the ground?",
     [" gravity", " friction", " magnetism", " electricity"]),
]


def _items() -> list[tuple[str, list[str]]]:
    return [(f"Question: {q}\nAnswer:", choices) for q, choices in ITEMS]


def _long_item(lm, tokens: int) -> tuple[str, list[str]]:
    """A context of `tokens` tokens (> Gemma-3's 512-token sliding window), varied text, then a question."""
    facts = [f"In year {1800 + i} the town of {name} built {i % 7 + 2} new {thing}."
             for i, (name, thing) in enumerate(zip(["Ashford", "Brill", "Corran", "Dunmore", "Elsby"] * 40,
                                                   ["bridges", "schools", "mills", "wells", "roads", "farms"] * 40))]
    ids = lm.tokenizer(" ".join(facts), add_special_tokens=False).input_ids[:tokens]
    return (lm.tokenizer.decode(ids) + "\nQuestion: Which town built the first mills?\nAnswer:",
            [" Ashford", " Brill", " Corran"])


@pytest.mark.parametrize("model_name", ["smollm2-135m-instruct", "gemma3-270m"])
def test_prefix_sharing_and_generation_equal_the_plain_path(model_name):
    lm = load_model(model_name, device="cpu", dtype="float32", show_progress=False)
    items = _items()
    if model_name == "gemma3-270m":
        assert lm.model.config.sliding_window == 512
        items.append(_long_item(lm, 700))
    embed = lm.model.get_input_embeddings()
    word_rows = embed(torch.tensor(lm.tokenizer(" the answer is", add_special_tokens=False).input_ids[:3])).detach()
    for prompt in (None, SoftPrompt(word_rows.float())):
        shared = SoftevalLM(lm=lm, soft_prompt=prompt, batch_size=8, show_progress=False)
        plain = SoftevalLM(lm=lm, soft_prompt=prompt, batch_size=1, prefix_sharing=False, show_progress=False)
        reqs = [(ctx, choice) for ctx, choices in items for choice in choices]
        # The model's own greedy answer to each question, so argmax flags are compared both ways.
        greedy_text = plain.generate_until([Instance("generate_until", {}, (ctx, {"until": ["\n"], "max_gen_toks": 3}), i)
                                            for i, (ctx, _) in enumerate(items)], disable_tqdm=True)
        reqs += [(ctx, text) for (ctx, _), text in zip(items, greedy_text) if text]
        tokenized = [((c, x), *shared._encode_pair(c, x)) for c, x in reqs]
        if model_name == "gemma3-270m":
            assert max(len(t[1]) for t in tokenized) > 600
        got = shared._loglikelihood_tokens(tokenized, disable_tqdm=True)
        ref = plain._loglikelihood_tokens(tokenized, disable_tqdm=True)
        for (lp, g), (ref_lp, ref_g) in zip(got, ref):
            assert abs(lp - ref_lp) < 1e-4, (lp, ref_lp)
            assert g == ref_g
        assert any(g for _, g in ref)

        gen = [Instance("generate_until", {}, (ctx, {"until": ["\n", "."], "max_gen_toks": 12}), i)
               for i, (ctx, _) in enumerate(items)]
        assert shared.generate_until(gen, disable_tqdm=True) == plain.generate_until(gen, disable_tqdm=True)


def test_eval_speed_benchmark_runs_every_task(tmp_path):
    """benchmarks/eval_speed.py end to end on a few items of each task (SmolLM2): both sides score the same
    requests, so the fp32 accuracies agree and every TARGET line is printed."""
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import SHARED_DATA

    if not SHARED_DATA.is_dir():
        pytest.skip("needs ../shared/data")
    root = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, str(root / "benchmarks" / "eval_speed.py"), "--models", "smollm2-135m-instruct",
                        "--tasks", "arc_easy", "commonsense_qa", "mmlu", "--limit", "4", "--mmlu-limit", "4",
                        "--repeats", "1", "--data-dir", str(SHARED_DATA), "--out", str(tmp_path / "speed.json")],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    targets = [line.split() for line in r.stdout.splitlines() if line.startswith("TARGET ")]
    for task in ("arc_easy", "commonsense_qa", "mmlu"):
        delta = [t for t in targets if t[1] == f"eval_acc_delta_pts_{task}_smollm2-135m-instruct"]
        assert delta and float(delta[0][2]) == 0.0, r.stdout[-2000:]
        assert any(t[1] == f"eval_speedup_vs_lm_eval_{task}_smollm2-135m-instruct" for t in targets)
