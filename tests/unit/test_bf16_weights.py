"""bf16 weights on a CPU (`--dtype bfloat16`): the frozen model is cast once and runs eager attention,
the prompt stays fp32 and trains like the fp32-weights + bf16-autocast path; fp32 models are unchanged."""

from __future__ import annotations

import torch

from softeval.config import build_config
from softeval.engine.models import load_model, resolve_attention
from softeval.engine.prompt import read_prompt_file
from softeval.tasks import TaskConfig
from softeval.train import TrainConfig, run

from conftest import write_jsonl


def _train(tmp_path, tiny_model_dir, name, **kw):
    data = write_jsonl(tmp_path / "d.jsonl", [{"prompt": f"the {w} fox", "completion": " jumps over the lazy dog."}
                                              for w in ["quick", "brown", "lazy", "early", "red", "old"] * 4])
    flags = dict(model=str(tiny_model_dir), device="cpu", num_virtual_tokens=4, max_steps=6, batch_size=4, lr=0.05,
                 eval_every=0, checkpoint_every=0, out=str(tmp_path / name), show_progress=False,
                 task=TaskConfig(name="jsonl", data=str(data), eval_fraction=0.25))
    flags.update(kw)
    result = run(build_config(TrainConfig, flags=flags))
    tensors, _ = read_prompt_file(result.prompt_path)
    return result, tensors["prompt_embeddings"]


def test_attention_choice():
    assert resolve_attention(torch.device("cpu"), torch.bfloat16) == "eager"
    assert resolve_attention(torch.device("cpu"), torch.float32) is None  # transformers' default: SDPA
    assert resolve_attention(torch.device("cuda"), torch.bfloat16) is None


def test_fp32_model_keeps_sdpa_and_bf16_model_runs_eager(tiny_model_dir):
    fp32 = load_model(str(tiny_model_dir), device="cpu", dtype="float32", show_progress=False)
    bf16 = load_model(str(tiny_model_dir), device="cpu", dtype="bfloat16", show_progress=False)
    assert fp32.model.config._attn_implementation == "sdpa"  # as before: fp32 results do not change
    assert bf16.model.config._attn_implementation == "eager"
    assert bf16.model.get_input_embeddings().weight.dtype == torch.bfloat16


def test_bf16_weights_train_the_prompt_like_bf16_autocast(tmp_path, tiny_model_dir):
    init = _train(tmp_path, tiny_model_dir, "init", max_steps=0, precision="fp32", dtype="float32")[1]
    ref_result, autocast = _train(tmp_path, tiny_model_dir, "autocast", precision="bf16", dtype="float32")
    result, weights = _train(tmp_path, tiny_model_dir, "weights", precision="auto", dtype="bfloat16")
    assert weights.dtype == torch.float32  # the prompt itself stays fp32
    moved = (autocast - init).norm()
    assert moved > 0.05
    # the two bf16 paths differ by bf16 rounding only: far less than the distance training moved the prompt
    assert (weights - autocast).norm() < 0.02 * moved
    assert abs(result.final_eval["loss"] - ref_result.final_eval["loss"]) < 0.02 * ref_result.final_eval["loss"]
