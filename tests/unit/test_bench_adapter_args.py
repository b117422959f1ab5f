"""Model args arrive as lm-eval parses `--model_args` (issue 29, defect 11b), and `softeval-lm-eval` without
--device runs on a machine without a GPU (defect 14).

lm-eval's `create_from_arg_string` turns `key=value` text into Python values with `handle_arg_string`:
'True'/'false' → bool, '1'/'0' → int, 'none' → None. The old `add_bos_token` check compared `str(value)` with
'true', so `add_bos_token=1` (int 1 after lm-eval's parsing) silently meant False, while `prefix_sharing=1`
meant True; and without --device lm-eval asks for cuda:0, which ended in a ModelError traceback on a CPU box.
"""

import logging

import pytest
import torch

from softeval.bench.lm_adapter import SoftevalLM, lm_eval_main
from softeval.errors import ConfigError, ModelError


def _from_cli(arg_string: str, **extra) -> SoftevalLM:
    """The adapter as lm-eval's CLI makes it: the model_args string parsed by lm-eval itself."""
    return SoftevalLM.create_from_arg_string(arg_string, {"show_progress": False, **extra})


@pytest.mark.parametrize("text, expected", [("True", True), ("true", True), ("TRUE", True), ("1", True),
                                            ("False", False), ("false", False), ("0", False), ("none", None)])
def test_add_bos_token_reads_what_lm_eval_passes(tiny_lm, text, expected):
    assert _from_cli(f"add_bos_token={text}", lm=tiny_lm).add_bos_token is expected


@pytest.mark.parametrize("text, expected", [("True", True), ("1", True), ("false", False), ("0", False)])
def test_flags_mean_the_same_whichever_flag(tiny_lm, text, expected):
    adapter = _from_cli(f"prefix_sharing={text},add_bos_token={text}", lm=tiny_lm)
    assert adapter.prefix_sharing is expected and adapter.add_bos_token is expected


@pytest.mark.parametrize("arg", ["add_bos_token=maybe", "add_bos_token=2", "prefix_sharing=yes",
                                 "prefix_sharing=none", "allow_mismatch=sure"])
def test_a_flag_that_is_not_true_or_false_is_a_one_line_error(arg):
    # Checked before the model loads: the model name does not exist.
    with pytest.raises(ConfigError, match=f"model arg {arg.split('=')[0]} must be true, false, 1, 0"):
        _from_cli(f"model=no-such-model-anywhere,{arg}")


def test_no_cuda_device_falls_back_to_the_cpu_with_one_warning(tiny_model_dir, monkeypatch, caplog):
    """lm-eval's CLI passes device='cuda:0' when --device is not given (EvaluatorConfig's default)."""
    from lm_eval.config.evaluate_config import EvaluatorConfig

    default_device = EvaluatorConfig().device
    assert default_device.startswith("cuda")  # what arrives here without --device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="softeval.bench.lm_adapter"):
        adapter = _from_cli(f"model={tiny_model_dir},dtype=float32", device=default_device)
    assert adapter.device.type == "cpu"
    [warning] = [r for r in caplog.records if r.name == "softeval.bench.lm_adapter"]
    assert "no CUDA device" in warning.getMessage() and "\n" not in warning.getMessage()


def test_softeval_lm_eval_ends_a_softeval_error_in_one_line(monkeypatch, capsys):
    import lm_eval.__main__

    def failing_cli():
        raise ModelError("could not load model 'no-such-model' (a Hub id): not found")

    monkeypatch.setattr(lm_eval.__main__, "cli_evaluate", failing_cli)
    with pytest.raises(SystemExit) as exit_info:
        lm_eval_main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == "softeval-lm-eval: error: could not load model 'no-such-model' (a Hub id): not found\n"
