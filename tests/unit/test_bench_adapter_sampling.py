"""Sampled generation (`do_sample: true`) is reproducible per request (issue 29, defect 11c).

The bug: one generator per batch drew every row's tokens, so a request's sample depended on which requests
were batched with it and in what order, and the adapter had no seed (a `seed` model arg was ignored).
"""

import pytest
import torch
from lm_eval.api.instance import Instance

from softeval.bench.lm_adapter import SoftevalLM
from softeval.engine.generate import generate_ids
from softeval.engine.prompt import SoftPrompt

SAMPLED = {"do_sample": True, "temperature": 1.0, "until": ["@@"], "max_gen_toks": 5}
CONTEXTS = ["the quick brown", "a stitch in time", "all that glitters is not", "the early"]


def _generate(adapter: SoftevalLM, contexts: list[str], gen_kwargs: dict = SAMPLED) -> list[str]:
    requests = [Instance("generate_until", {}, (c, dict(gen_kwargs)), i) for i, c in enumerate(contexts)]
    return adapter.generate_until(requests, disable_tqdm=True)


@pytest.mark.parametrize("n", [0, 2])
def test_a_sampled_answer_is_the_same_alone_and_in_any_batch(tiny_lm, n):
    torch.manual_seed(0)
    prompt = SoftPrompt(torch.randn(n, tiny_lm.info.hidden_size)) if n else None
    adapter = SoftevalLM(lm=tiny_lm, soft_prompt=prompt, show_progress=False)
    alone = [_generate(adapter, [c])[0] for c in CONTEXTS]
    assert _generate(adapter, CONTEXTS) == alone
    assert _generate(adapter, CONTEXTS[::-1]) == alone[::-1]
    capped = SoftevalLM(lm=tiny_lm, soft_prompt=prompt, batch_size=3, show_progress=False)
    assert _generate(capped, CONTEXTS) == alone
    assert len(set(alone)) == len(alone)  # real, distinct samples, not empty strings


def test_the_seed_model_arg_changes_samples_and_repeats_draw_different_samples(tiny_lm):
    seed0 = SoftevalLM(lm=tiny_lm, show_progress=False)
    seed1 = SoftevalLM.create_from_arg_string("seed=1", {"lm": tiny_lm, "show_progress": False})
    assert _generate(seed0, CONTEXTS) != _generate(seed1, CONTEXTS)
    assert _generate(SoftevalLM(lm=tiny_lm, seed=0, show_progress=False), CONTEXTS) == _generate(seed0, CONTEXTS)
    # lm-eval's `repeats: k` passes the same request k times for k samples: they must not be k copies.
    request = Instance("generate_until", {}, (CONTEXTS[0], dict(SAMPLED)), 0)
    first, second = seed0.generate_until([request, request], disable_tqdm=True)
    assert first != second
    assert first == seed0.generate_until([request], disable_tqdm=True)[0]


def test_greedy_generation_ignores_the_seed_and_equals_a_plain_greedy_run(tiny_lm):
    greedy = {"until": ["@@"], "max_gen_toks": 5}
    got = _generate(SoftevalLM(lm=tiny_lm, show_progress=False), CONTEXTS, greedy)
    assert _generate(SoftevalLM(lm=tiny_lm, seed=7, show_progress=False), CONTEXTS, greedy) == got
    tok, info = tiny_lm.tokenizer, tiny_lm.info
    for context, text in zip(CONTEXTS, got):
        [ids] = generate_ids(tiny_lm.model, None, [tok(context, add_special_tokens=False).input_ids],
                             bos_id=info.bos_token_id, pad_id=info.pad_token_id, eos_id=info.eos_token_id,
                             max_new_tokens=5)
        assert text == tok.decode(ids, skip_special_tokens=True)


def test_generate_ids_row_seeds_make_rows_independent(tiny_lm):
    """The generation layer itself: with one seed per row, a row draws the same tokens in any batch."""
    tok, info = tiny_lm.tokenizer, tiny_lm.info
    contexts = [tok(c, add_special_tokens=False).input_ids for c in CONTEXTS]
    kw = {"bos_id": info.bos_token_id, "pad_id": info.pad_token_id, "eos_id": info.eos_token_id,
          "max_new_tokens": 5, "temperature": 1.0}
    seeds = [11, 12, 13, 14]
    batched = generate_ids(tiny_lm.model, None, contexts, row_seeds=seeds, **kw)
    alone = [generate_ids(tiny_lm.model, None, [c], row_seeds=[s], **kw)[0] for c, s in zip(contexts, seeds)]
    assert batched == alone
    # Without row seeds the batch shares one generator (the `softeval generate` behaviour, kept).
    shared = generate_ids(tiny_lm.model, None, contexts, seed=11, **kw)
    assert shared == generate_ids(tiny_lm.model, None, contexts, seed=11, **kw)
    with pytest.raises(ValueError, match="row_seeds has 1 seeds for 4 contexts"):
        generate_ids(tiny_lm.model, None, contexts, row_seeds=[1], **kw)
