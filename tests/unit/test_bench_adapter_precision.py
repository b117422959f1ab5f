"""The adapter's precision is resolved once and governs scoring and generation alike (issue 29, defect 4).

The bugs: `precision='auto'` stayed the label 'auto' on the adapter, which `autocast_context` reads as fp32,
while tuning resolved it to bf16 on hardware with fast bf16; and generated answers never ran under autocast,
even with precision bf16.
"""

import pytest
import torch
from lm_eval.api.instance import Instance

import softeval.engine.loop
from softeval.bench.lm_adapter import SoftevalLM
from softeval.engine.loop import Precision
from softeval.errors import ConfigError


@pytest.mark.parametrize("fast_bf16, expected", [(True, "bf16"), (False, "fp32")])
@pytest.mark.parametrize("label", ["auto", Precision.auto])
def test_auto_precision_is_resolved_when_the_adapter_is_made(tiny_lm, monkeypatch, fast_bf16, expected, label):
    monkeypatch.setattr(softeval.engine.loop, "cpu_has_fast_bf16", lambda: fast_bf16)
    adapter = SoftevalLM(lm=tiny_lm, precision=label, show_progress=False)
    assert adapter.precision == expected and type(adapter.precision) is str
    assert adapter.get_model_info()["precision"] == expected


def test_an_explicit_precision_is_kept_and_a_wrong_one_refused(tiny_lm):
    assert SoftevalLM(lm=tiny_lm, precision=Precision.bf16, show_progress=False).precision == "bf16"
    assert SoftevalLM(lm=tiny_lm, show_progress=False).precision == "fp32"
    with pytest.raises(ConfigError, match="unknown precision 'bf32'"):
        SoftevalLM(model="no-such-model-anywhere", precision="bf32")


def test_generation_runs_under_the_same_autocast_as_scoring(tiny_lm):
    """Every forward of the model, in scoring and in generation, sees bf16 autocast on (precision bf16)."""
    seen: dict[str, list[bool]] = {"loglikelihood": [], "generate_until": []}
    current = []
    hook = tiny_lm.model.model.register_forward_pre_hook(  # the decoder: scoring runs it without the LM head
        lambda module, args: seen[current[-1]].append(
            torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16))
    adapter = SoftevalLM(lm=tiny_lm, precision="bf16", show_progress=False)
    try:
        current.append("loglikelihood")
        adapter.loglikelihood([Instance("loglikelihood", {}, ("the quick brown", " fox"), 0)], disable_tqdm=True)
        current.append("generate_until")
        adapter.generate_until([Instance("generate_until", {}, ("the quick", {"until": ["@@"], "max_gen_toks": 3}), 0)],
                               disable_tqdm=True)
    finally:
        hook.remove()
    assert seen["loglikelihood"] and all(seen["loglikelihood"])
    assert seen["generate_until"] and all(seen["generate_until"])
