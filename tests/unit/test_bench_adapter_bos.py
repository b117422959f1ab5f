"""add_bos_token=False governs every row the lm-eval adapter builds (issue 29, defect 11a).

The bug: the flag reached only `tok_encode`; `collate` and `generate_ids` were still given the tokenizer's BOS,
so every scored and generated row started with BOS whatever the flag said. The references here are hand
computations on the tiny model's plain forward pass, not the adapter's own output.
"""

import pytest
import torch
from lm_eval.api.instance import Instance

from softeval.bench import lm_adapter
from softeval.bench.lm_adapter import SoftevalLM

PAIRS = [("the quick brown", " fox"), ("the quick brown", " dog"), ("a stitch in", " time saves nine")]


def _logprobs(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)


def _first_tokens_of_rows(monkeypatch, module) -> list[int]:
    """Spy on `module.collate`: the first real (unpadded) token of every row it builds for the model."""
    firsts: list[int] = []
    real_collate = module.collate

    def spy(*args, **kwargs):
        batch = real_collate(*args, **kwargs)
        for ids, mask in zip(batch.input_ids, batch.attention_mask):
            firsts.append(int(ids[mask.bool()][0]))
        return batch

    monkeypatch.setattr(module, "collate", spy)
    return firsts


@pytest.mark.parametrize("prefix_sharing", [True, False])
def test_add_bos_token_false_scores_rows_without_bos(tiny_lm, monkeypatch, prefix_sharing):
    tok, bos = tiny_lm.tokenizer, tiny_lm.info.bos_token_id
    assert bos is not None  # the tiny tokenizer adds BOS by default, so the flag has something to turn off
    firsts = _first_tokens_of_rows(monkeypatch, lm_adapter)
    adapter = SoftevalLM(lm=tiny_lm, add_bos_token=False, prefix_sharing=prefix_sharing, show_progress=False)
    got = adapter.loglikelihood([Instance("loglikelihood", {}, p, i) for i, p in enumerate(PAIRS)], disable_tqdm=True)
    assert firsts and bos not in firsts
    for (ctx, cont), (lp, greedy) in zip(PAIRS, got):
        ids = tok(ctx + cont, add_special_tokens=False).input_ids
        n_ctx = len(tok(ctx, add_special_tokens=False).input_ids)
        logp = _logprobs(tiny_lm.model, ids)
        ref = sum(logp[i - 1, ids[i]].item() for i in range(n_ctx, len(ids)))
        with_bos = _logprobs(tiny_lm.model, [bos] + ids)
        assert abs(ref - sum(with_bos[i, ids[i]].item() for i in range(n_ctx, len(ids)))) > 1e-3  # BOS matters
        assert abs(lp - ref) < 1e-4
        assert greedy == all(logp[i - 1].argmax().item() == ids[i] for i in range(n_ctx, len(ids)))


def _greedy_by_hand(model, ids: list[int], steps: int, eos: int) -> list[int]:
    new: list[int] = []
    for _ in range(steps):
        nxt = int(_logprobs(model, ids + new)[-1].argmax())
        new.append(nxt)
        if nxt == eos:
            break
    return new


def test_add_bos_token_false_generates_without_bos(tiny_lm, monkeypatch):
    import importlib

    generation = importlib.import_module("softeval.engine.generate")  # the package's `generate` attribute is the function
    tok, bos, eos = tiny_lm.tokenizer, tiny_lm.info.bos_token_id, tiny_lm.info.eos_token_id
    firsts = _first_tokens_of_rows(monkeypatch, generation)
    contexts = ["the early bird", "a stitch in time"]
    requests = [Instance("generate_until", {}, (c, {"until": ["@@"], "max_gen_toks": 6}), i)
                for i, c in enumerate(contexts)]
    adapter = SoftevalLM(lm=tiny_lm, add_bos_token=False, show_progress=False)
    got = adapter.generate_until(requests, disable_tqdm=True)
    assert firsts and bos not in firsts
    # (The tiny random model's greedy text hardly depends on BOS: the rows above are what the flag decides.)
    for context, text in zip(contexts, got):
        ids = tok(context, add_special_tokens=False).input_ids
        assert text == tok.decode(_greedy_by_hand(tiny_lm.model, ids, 6, eos), skip_special_tokens=True)


def test_add_bos_token_false_rolling_windows_are_lm_evals(tiny_lm):
    """Rolling windows: the text without BOS after lm-eval's own prefix token (its convention for the first
    window, as HFLM's), nothing added by the adapter. A guard for the new BOS-less path of `example`."""
    tok = tiny_lm.tokenizer
    text = "all that glitters is not gold. the early bird"
    adapter = SoftevalLM(lm=tiny_lm, add_bos_token=False, show_progress=False)
    [total] = adapter.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, (text,), 0)], disable_tqdm=True)
    ids = [adapter.prefix_token_id] + tok(text, add_special_tokens=False).input_ids
    logp = _logprobs(tiny_lm.model, ids)
    assert abs(total - sum(logp[i - 1, ids[i]].item() for i in range(1, len(ids)))) < 1e-4
