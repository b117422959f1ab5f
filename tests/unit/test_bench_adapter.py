"""The lm-eval seam on the tiny model: scores equal a plain forward pass; generation honours `until`."""

import torch
from lm_eval.api.instance import Instance

from softeval.bench.lm_adapter import SoftevalLM
from softeval.engine.prompt import SoftPrompt


def _ll(adapter, pairs):
    reqs = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]
    return adapter.loglikelihood(reqs, disable_tqdm=True)


def test_loglikelihood_equals_plain_forward(tiny_lm):
    adapter = SoftevalLM(lm=tiny_lm, batch_size=2, show_progress=False)
    pairs = [("the quick brown", " fox"), ("a stitch in", " time saves nine"), ("all that", " glitters")]
    got = _ll(adapter, pairs)
    tok = tiny_lm.tokenizer
    for (ctx, cont), (lp, greedy) in zip(pairs, got):
        ids = tok(ctx + cont).input_ids  # the tiny tokenizer adds BOS, as HFLM would encode it
        n_ctx = len(tok(ctx).input_ids)
        with torch.no_grad():
            logp = torch.log_softmax(tiny_lm.model(torch.tensor([ids])).logits[0].float(), -1)
        ref = sum(logp[i - 1, ids[i]].item() for i in range(n_ctx, len(ids)))
        assert abs(lp - ref) < 1e-4
        assert greedy == all(logp[i - 1].argmax().item() == ids[i] for i in range(n_ctx, len(ids)))


def test_prompt_changes_scores_and_generation_stops(tiny_lm):
    adapter = SoftevalLM(lm=tiny_lm, show_progress=False)
    plain = _ll(adapter, [("the quick", " brown")])[0][0]
    adapter.set_prompt(SoftPrompt(torch.randn(3, tiny_lm.info.hidden_size)))
    assert adapter.num_virtual_tokens == 3 and _ll(adapter, [("the quick", " brown")])[0][0] != plain
    gen = [Instance("generate_until", {}, ("the quick", {"until": ["e"], "max_gen_toks": 12}), 0),
           Instance("generate_until", {}, ("all that", {"until": ["\n"], "max_gen_toks": 5}), 1)]
    outs = adapter.generate_until(gen, disable_tqdm=True)
    assert "e" not in outs[0]
    assert len(tiny_lm.tokenizer(outs[1], add_special_tokens=False).input_ids) <= 5


def test_one_record_per_item_when_a_task_has_several_filters(tiny_lm, tmp_path):
    """GSM8K has two filter pipelines; lm-eval logs each item once per filter. Scores must count items once."""
    import json

    from softeval.bench.config import BenchConfig
    from softeval.bench.evaluate import evaluate_form
    from softeval.bench.tasks import resolve_task

    (tmp_path / "gsm8k").mkdir()
    rows = [{"question": f"What is {i} plus {i}?", "answer": f"{i} + {i} = {2 * i}\n#### {2 * i}"} for i in range(6)]
    for split in ("train", "test"):
        (tmp_path / "gsm8k" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = resolve_task("gsm8k", str(tmp_path))
    adapter = SoftevalLM(lm=tiny_lm, batch_size=2, show_progress=False)
    records, native = evaluate_form(adapter, task, "gen", 0, BenchConfig(limit=3, max_gen_toks=3, num_bootstrap=0))
    assert [r["doc_id"] for r in records] == [0, 1, 2]
    assert {"exact_match,strict-match", "exact_match,flexible-extract"} <= set(native)


def test_a_generation_cap_shorter_than_the_gold_answers_is_measured_and_warned(tiny_lm, tmp_path, caplog):
    """GSM8K's worked answers end in '#### N': a cap that cuts them fails the format whatever the model knows."""
    import json
    import logging

    from softeval.bench.harness import build_lm_eval_task
    from softeval.bench.config import BenchConfig
    from softeval.bench.evaluate import gold_over_gen_cap, task_config
    from softeval.bench.tasks import resolve_task

    (tmp_path / "gsm8k").mkdir()
    short = [{"question": f"{i}+{i}?", "answer": f"#### {2 * i}"} for i in range(3)]
    long = [{"question": f"{i}*3?", "answer": " ".join(["then we add the three parts once more"] * 4) + f"\n#### {3 * i}"}
            for i in range(1)]
    for split in ("train", "test"):
        (tmp_path / "gsm8k" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in short + long))
    adapter = SoftevalLM(lm=tiny_lm, batch_size=2, show_progress=False)
    task = resolve_task("gsm8k", str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="softeval.bench.evaluate"):
        capped = build_lm_eval_task(task_config(task, "gen", BenchConfig(max_gen_toks=12, num_bootstrap=0)))
        assert gold_over_gen_cap(adapter, capped) == 0.25
    assert "25 % of its gold answers are longer than the 12 generated tokens" in caplog.text
    caplog.clear()
    roomy = build_lm_eval_task(task_config(task, "gen", BenchConfig(num_bootstrap=0)))   # the YAML's 256
    with caplog.at_level(logging.WARNING, logger="softeval.bench.evaluate"):
        assert gold_over_gen_cap(adapter, roomy) == 0.0
    assert "longer than" not in caplog.text
    assert gold_over_gen_cap(adapter, None) is None
