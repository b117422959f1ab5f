"""Issue #12 (evaluation speed) on tiny models: prefix sharing, token-budget batches and generation that drops
stopped rows all give the scores and texts of the plain path (one row per request, each row alone)."""

from __future__ import annotations

import pytest
import torch

import softeval.bench.lm_adapter as lm_adapter
from softeval.bench.lm_adapter import SoftevalLM
from softeval.engine.generate import generate_ids
from softeval.engine.prefix_sharing import plan_batches
from softeval.engine.prompt import SoftPrompt

from conftest import build_tiny_tokenizer

CONTEXTS = ["the quick brown fox jumps", "a stitch", "all that glitters is not gold. the early bird",
            "the lazy dog. a stitch in time saves nine. all that", "the early"]
CHOICES = [" fox", " time saves nine", " is not gold", " catches the worm. the quick", " dog"]


class RecordingHook:
    def __init__(self):
        self.calls = []

    def add_partial(self, attr, req, res):
        self.calls.append((attr, req, res))


def _greedy_tokens(lm, prompt, placement, context_ids, k):
    """The model's own greedy continuation (k tokens), so some requests are all-argmax."""
    return generate_ids(lm.model, prompt, [context_ids], bos_id=lm.info.bos_token_id, pad_id=lm.info.pad_token_id,
                        placement=placement, max_new_tokens=k)[0]


def _requests(lm, prompt=None, placement="after_bos"):
    """Multiple-choice-like requests: contexts with 2-5 continuations of 1-6 tokens (interleaved, so the
    choices of one item are not neighbours), one with the greedy continuation, plus unique contexts."""
    tok = lm.tokenizer
    reqs = []
    for round_ in range(2):
        for c, ctx in enumerate(CONTEXTS):
            ctx_ids = tok(ctx).input_ids  # with BOS, as lm-eval encodes a context
            for j, choice in enumerate(CHOICES[round_ + c % 2::2]):
                reqs.append(((ctx, choice), ctx_ids, tok(choice, add_special_tokens=False).input_ids))
            if round_ == 0:
                body = lm.tokenizer(ctx, add_special_tokens=False).input_ids
                greedy = _greedy_tokens(lm, prompt, placement, body, 1 + c % 4)
                reqs.append(((ctx, "<greedy>"), ctx_ids, greedy))
    reqs.append((("unique", " a"), tok("all that glitters").input_ids, tok(" saves nine", add_special_tokens=False).input_ids))
    reqs.append((("unique1", " b"), tok("the lazy").input_ids, tok(" dog", add_special_tokens=False).input_ids[:1]))
    return reqs


def _score(lm, reqs, prompt=None, placement="after_bos", **kwargs):
    adapter = SoftevalLM(lm=lm, show_progress=False, soft_prompt=prompt, placement=placement, **kwargs)
    adapter.cache_hook = RecordingHook()
    out = adapter._loglikelihood_tokens(reqs, disable_tqdm=True)
    return out, adapter.cache_hook.calls


def _check_equal(got, ref):
    assert len(got) == len(ref)
    for (lp, greedy), (ref_lp, ref_greedy) in zip(got, ref):
        assert abs(lp - ref_lp) < 1e-4, (lp, ref_lp)
        assert greedy == ref_greedy


@pytest.mark.parametrize("n,placement", [(0, "after_bos"), (3, "after_bos"), (2, "before_bos")])
def test_prefix_sharing_equals_one_row_per_request(tiny_lm, monkeypatch, n, placement):
    torch.manual_seed(1)
    prompt = SoftPrompt(torch.randn(n, tiny_lm.info.hidden_size)) if n else None
    reqs = _requests(tiny_lm, prompt, placement)
    shared_calls = []
    real = lm_adapter.score_continuations
    monkeypatch.setattr(lm_adapter, "score_continuations",
                        lambda *a, **k: shared_calls.append(len(a[4])) or real(*a, **k))
    # A small budget: several batches, each with contexts of different lengths (left padding) and
    # continuations of different lengths (right padding).
    got, hooked = _score(tiny_lm, reqs, prompt, placement, max_batch_tokens=500, batch_size=3)
    assert sum(shared_calls) >= len(reqs) - 2 and 1 < len(shared_calls) < 6  # shared path, several contexts a batch
    ref, _ = _score(tiny_lm, reqs, prompt, placement, prefix_sharing=False, batch_size=1)
    _check_equal(got, ref)
    assert any(g for _, g in ref) and not all(g for _, g in ref)  # both argmax outcomes are compared
    # Every request's answer went to lm-eval's cache hook once, under its own key.
    assert sorted((r[1], r[2]) for r in hooked) == sorted((q[0], a) for q, a in zip(reqs, got))


def test_prefix_sharing_one_batch_equals_many(tiny_lm):
    reqs = _requests(tiny_lm)
    big, _ = _score(tiny_lm, reqs, max_batch_tokens=100_000)
    small, _ = _score(tiny_lm, reqs, max_batch_tokens=1)
    _check_equal(big, small)


@pytest.fixture(scope="module")
def tiny_gemma(tmp_path_factory):
    """A tiny Gemma-3 with a 6-token sliding window on its first layer and capped final logits."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from softeval.engine.models import load_model

    tok = build_tiny_tokenizer()
    torch.manual_seed(0)
    cfg = Gemma3TextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, head_dim=8, query_pre_attn_scalar=8,
                           max_position_embeddings=512, sliding_window=6,
                           layer_types=["sliding_attention", "full_attention"], final_logit_softcapping=3.0,
                           bos_token_id=1, eos_token_id=2, pad_token_id=0)
    model = Gemma3ForCausalLM(cfg)
    with torch.no_grad():  # random weights give near-uniform logits; make them large enough for the cap to bite
        model.lm_head.weight.mul_(40.0)
    path = tmp_path_factory.mktemp("tiny-gemma3")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return load_model(str(path), device="cpu", dtype="float32", show_progress=False)


def test_sliding_window_contexts_longer_than_the_window(tiny_gemma):
    lm = tiny_gemma
    reqs = _requests(lm)
    assert max(len(r[1]) for r in reqs) > 3 * 6  # most contexts are longer than the window
    got, _ = _score(lm, reqs, max_batch_tokens=500)
    ref, _ = _score(lm, reqs, prefix_sharing=False, batch_size=1)
    _check_equal(got, ref)
    # Independently: the model's own forward (its head, its softcap) on the whole sequence.
    for (_, ctx, cont), (lp, greedy) in zip(reqs, got):
        ids = list(ctx) + list(cont)
        with torch.no_grad():
            logp = torch.log_softmax(lm.model(torch.tensor([ids])).logits[0].float(), -1)
        span = range(len(ctx), len(ids))
        assert abs(lp - sum(logp[i - 1, ids[i]].item() for i in span)) < 1e-4
        assert greedy == all(logp[i - 1].argmax().item() == ids[i] for i in span)
    with torch.no_grad():  # the cap matters here: without it, these logits would differ
        raw = lm.model.model(torch.tensor([reqs[0][1]])).last_hidden_state[0, -1] @ lm.model.lm_head.weight.T
    assert raw.abs().max() > 3.0


def test_plan_batches_respects_budget_and_cap():
    shapes = [(5, 0, 0), (9, 2, 3), (2, 0, 0), (9, 0, 0), (7, 4, 1), (1, 0, 0)]
    batches = plan_batches(shapes, max_tokens=20, max_rows=2)
    assert sorted(i for b in batches for i in b) == list(range(len(shapes)))
    order = [i for b in batches for i in b]
    assert [shapes[i][0] for i in order] == sorted((s[0] for s in shapes), reverse=True)  # longest first
    # (9,2,3)+(9,0,0) would cost 2*9 + 2*3 = 24 > 20; (9,0,0)+(7,4,1) 2*9 + 4*1 = 22 > 20;
    # (7,4,1)+(5,0,0) 2*7 + 4*1 = 18 fits, a third row would pass the cap of 2; (2,0,0)+(1,0,0) = 4
    assert batches == [[1], [3], [4, 0], [2, 5]]
    assert plan_batches([(50, 0, 0), (3, 0, 0)], max_tokens=10) == [[0], [1]]  # over budget alone: alone
    assert plan_batches([(3, 0, 0)] * 5, max_tokens=100) == [[0, 1, 2, 3, 4]]  # no cap: the budget alone


def _stop(new_ids):
    return len(new_ids) >= 1 + new_ids[0] % 6  # rows stop after 1-6 tokens, decided by their own output


@pytest.mark.parametrize("n", [0, 3])
def test_generation_drops_stopped_rows_and_keeps_outputs(tiny_lm, n):
    torch.manual_seed(2)
    prompt = SoftPrompt(torch.randn(n, tiny_lm.info.hidden_size)) if n else None
    contexts = [tiny_lm.tokenizer(c, add_special_tokens=False).input_ids for c in CONTEXTS]
    kwargs = dict(bos_id=tiny_lm.info.bos_token_id, pad_id=tiny_lm.info.pad_token_id, eos_id=None,
                  max_new_tokens=6, stop=_stop)
    rows_seen = []
    hook = tiny_lm.model.model.register_forward_pre_hook(
        lambda module, args, kw: rows_seen.append(next(v for v in (kw.get("input_ids"), kw.get("inputs_embeds"))
                                                       if v is not None).shape[0]), with_kwargs=True)
    try:
        batched = generate_ids(tiny_lm.model, prompt, contexts, **kwargs)
    finally:
        hook.remove()
    alone = [generate_ids(tiny_lm.model, prompt, [c], **kwargs)[0] for c in contexts]
    no_cache = generate_ids(tiny_lm.model, prompt, contexts, use_cache=False, **kwargs)
    assert batched == alone == no_cache
    lengths = sorted(len(o) for o in batched)
    assert lengths[0] < lengths[-1]  # rows stop at different steps
    # Each forward after the first runs only the rows still generating: after step s, those longer than s.
    assert rows_seen == [len(contexts)] + [sum(1 for k in lengths if k > s) for s in range(1, lengths[-1])]


def test_generate_until_batched_equals_one_by_one(tiny_lm):
    from lm_eval.api.instance import Instance

    torch.manual_seed(3)
    prompt = SoftPrompt(torch.randn(2, tiny_lm.info.hidden_size))
    gen = [Instance("generate_until", {}, (c, {"until": ["e", "\n"], "max_gen_toks": 6 + i}), i)
           for i, c in enumerate(CONTEXTS * 2)]
    batched = SoftevalLM(lm=tiny_lm, soft_prompt=prompt, show_progress=False).generate_until(gen, disable_tqdm=True)
    single = SoftevalLM(lm=tiny_lm, soft_prompt=prompt, batch_size=1, show_progress=False).generate_until(
        gen, disable_tqdm=True)
    assert batched == single


@pytest.mark.parametrize("args", [{"max_batch_tokens": "abc"}, {"max_batch_tokens": 0}, {"batch_size": "x"},
                                  {"prefix_sharing": "maybe"}])
def test_bad_model_args_are_one_line_errors_before_any_model_loads(args):
    from softeval.errors import ConfigError

    # A model name that does not exist: the argument check must come first.
    with pytest.raises(ConfigError, match=next(iter(args))):
        SoftevalLM(model="no-such-model-anywhere", **args)
