"""DESIGN.md invariants 1-4 and 6-8 on a tiny random model (invariant 5 lives with the distance sweep)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import torch.nn.functional as F

from softeval.config import build_config
from softeval.engine.batching import IGNORE, Example, collate
from softeval.errors import PromptMismatchError
from softeval.engine.evaluate import evaluate_prompt
from softeval.engine.forward import target_losses
from softeval.engine.generate import generate_ids
from softeval.engine.prompt import SoftPrompt, load_prompt, read_prompt_file
from softeval.tasks import TaskConfig
from softeval.train import TrainConfig, run

from conftest import write_jsonl


def weights_digest(model) -> str:
    h = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def qa_records(n=24):
    return [{"prompt": f"the {w} fox", "completion": " jumps over the lazy dog."}
            for w in ["quick", "brown", "lazy", "early", "red", "old"] * (n // 6)]


def train_cfg(tmp_path, tiny_model_dir, data, **kw) -> TrainConfig:
    base = dict(model=str(tiny_model_dir), device="cpu", precision="fp32", num_virtual_tokens=4, max_steps=8,
                batch_size=4, lr=0.05, eval_every=0, checkpoint_every=4, out=str(tmp_path / "run"),
                show_progress=False, task=TaskConfig(name="jsonl", data=str(data), eval_fraction=0.25))
    base.update(kw)
    return build_config(TrainConfig, flags=base)


# --- invariant 1: the model is frozen -------------------------------------------------------------


def test_model_frozen_and_unchanged_by_training(tmp_path, tiny_lm, tiny_model_dir):
    data = write_jsonl(tmp_path / "d.jsonl", qa_records())
    assert not any(p.requires_grad for p in tiny_lm.model.parameters())
    before = weights_digest(tiny_lm.model)
    result = run(train_cfg(tmp_path, tiny_model_dir, data), lm=tiny_lm)
    assert result.status == "done"
    assert not any(p.requires_grad for p in tiny_lm.model.parameters())
    assert weights_digest(tiny_lm.model) == before


def test_only_prompt_gets_gradients(tiny_lm):
    ex = Example(input_ids=[5, 6, 7, 8], labels=[IGNORE, 6, 7, 8])
    prompt = SoftPrompt(torch.randn(3, tiny_lm.info.hidden_size))
    batch = collate([ex], 3, tiny_lm.info.bos_token_id, tiny_lm.info.pad_token_id)
    losses, _ = target_losses(tiny_lm.model, batch, prompt(1))
    losses.mean().backward()
    assert prompt.embeddings.grad is not None and prompt.embeddings.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny_lm.model.parameters())


# --- invariant 2: a 0-token prompt is the plain model ---------------------------------------------


def test_zero_token_prompt_equals_plain_model(tiny_lm):
    tok, model = tiny_lm.tokenizer, tiny_lm.model
    texts = ["the quick brown fox jumps", "a stitch in time saves nine. all that"]
    examples = []
    for t in texts:
        ids = tok(t, add_special_tokens=False).input_ids
        examples.append(Example(input_ids=ids, labels=list(ids)))
    ours = evaluate_prompt(model, None, examples, bos_id=tiny_lm.info.bos_token_id, pad_id=tiny_lm.info.pad_token_id)
    empty = evaluate_prompt(model, SoftPrompt(torch.zeros(0, tiny_lm.info.hidden_size)), examples,
                            bos_id=tiny_lm.info.bos_token_id, pad_id=tiny_lm.info.pad_token_id)
    # Reference: Hugging Face's own forward over full logits, one unpadded example at a time.
    total, count = 0.0, 0
    for t in texts:
        ids = tok(t, return_tensors="pt").input_ids  # with BOS
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, :-1]
        losses = F.cross_entropy(logits, ids[0, 1:], reduction="none")
        total += losses.sum().item()
        count += losses.numel()
    assert ours.loss == pytest.approx(total / count, abs=1e-6)
    assert empty.loss == pytest.approx(ours.loss, abs=1e-7)


# --- invariant 3: batch invariance ----------------------------------------------------------------


def test_loss_same_alone_and_in_padded_batch(tiny_lm):
    torch.manual_seed(0)
    prompt = SoftPrompt(torch.randn(5, tiny_lm.info.hidden_size) * 0.05)
    short = Example(input_ids=[10, 11, 12], labels=[IGNORE, 11, 12])
    long = Example(input_ids=list(range(20, 45)), labels=[IGNORE] * 5 + list(range(25, 45)))
    kw = dict(bos_id=tiny_lm.info.bos_token_id, pad_id=tiny_lm.info.pad_token_id)
    alone = evaluate_prompt(tiny_lm.model, prompt, [short], **kw)
    together = evaluate_prompt(tiny_lm.model, prompt, [long, short, long], **kw)
    assert together.example_losses[1] == pytest.approx(alone.example_losses[0], abs=1e-5)


# --- invariant 4: KV-cache generation equals recomputation ----------------------------------------


@pytest.mark.parametrize("placement", ["after_bos", "before_bos"])
def test_kv_cache_generation_matches_full_recompute(tiny_lm, placement):
    torch.manual_seed(1)
    prompt = SoftPrompt(torch.randn(4, tiny_lm.info.hidden_size) * 0.5)
    contexts = [[10, 11, 12], [20, 21, 22, 23, 24, 25, 26]]
    kw = dict(bos_id=tiny_lm.info.bos_token_id, pad_id=tiny_lm.info.pad_token_id, placement=placement,
              max_new_tokens=12)
    cached = generate_ids(tiny_lm.model, prompt, contexts, use_cache=True, **kw)
    full = generate_ids(tiny_lm.model, prompt, contexts, use_cache=False, **kw)
    assert cached == full
    assert all(len(c) == 12 for c in cached)
    # and batched generation equals one-at-a-time generation
    single = [generate_ids(tiny_lm.model, prompt, [c], use_cache=True, **kw)[0] for c in contexts]
    assert single == cached


def test_generation_hands_the_head_contiguous_hidden_states(tiny_lm):
    """The prefill keeps only the last position's logits through an index, not `logits_to_keep=1`: a strided
    hidden-state view makes PyTorch's CPU matmul copy the head's weight once per row (24 GB on Gemma-3)."""
    seen = []
    head = tiny_lm.model.get_output_embeddings()
    hook = head.register_forward_hook(lambda module, args, out: seen.append(args[0].is_contiguous()))
    try:
        prompt = SoftPrompt(torch.zeros(2, tiny_lm.info.hidden_size))
        generate_ids(tiny_lm.model, prompt, [[10, 11, 12], [20, 21, 22, 23]], bos_id=tiny_lm.info.bos_token_id,
                     pad_id=tiny_lm.info.pad_token_id, max_new_tokens=3)
    finally:
        hook.remove()
    assert seen and all(seen), seen


def test_kv_cache_generation_emits_no_deprecation_warning(tiny_lm, caplog):
    """transformers 5 warns on the legacy `past_key_values` keyword/tuples; generate passes a Cache object."""
    import logging
    import warnings

    prompt = SoftPrompt(torch.zeros(2, tiny_lm.info.hidden_size))
    kw = dict(bos_id=tiny_lm.info.bos_token_id, pad_id=tiny_lm.info.pad_token_id, max_new_tokens=4)
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        generate_ids(tiny_lm.model, prompt, [[10, 11, 12]], use_cache=True, **kw)
    messages = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "past_key_values" in m or "deprecated" in m], messages


# --- invariant 6: PEFT round trip ----------------------------------------------------------------


def test_peft_export_loads_in_peft_with_same_loss(tmp_path, tiny_lm, tiny_model_dir):
    peft = pytest.importorskip("peft")
    from transformers import AutoModelForCausalLM

    from softeval.engine.peft_io import export_peft, import_peft

    data = write_jsonl(tmp_path / "d.jsonl", qa_records())
    result = run(train_cfg(tmp_path, tiny_model_dir, data, placement="before_bos", max_steps=4), lm=tiny_lm)
    adapter = export_peft(result.prompt_path, tmp_path / "adapter")
    prompt, meta = load_prompt(result.prompt_path, tiny_lm.info)

    tok = tiny_lm.tokenizer
    ids = tok("the quick fox jumps over the lazy dog.", return_tensors="pt").input_ids  # with BOS
    ex = Example(input_ids=ids[0, 1:].tolist(), labels=ids[0, 1:].tolist())
    ours = evaluate_prompt(tiny_lm.model, prompt, [ex], bos_id=tiny_lm.info.bos_token_id,
                           pad_id=tiny_lm.info.pad_token_id, placement="before_bos")

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    peft_model = peft.PeftModel.from_pretrained(base, str(adapter))
    peft_model.eval()
    labels = ids.clone()
    labels[0, 0] = -100  # BOS itself is not a target (ours scores tokens after BOS)
    with torch.no_grad():
        peft_loss = peft_model(input_ids=ids, labels=labels).loss.item()
    assert ours.loss == pytest.approx(peft_loss, abs=1e-4)

    back, _ = import_peft(adapter)
    assert torch.equal(back.embeddings, prompt.embeddings)


# --- invariant 7: interrupt and resume equals an uninterrupted run -------------------------------


def _cli(*args, env=None):
    return [sys.executable, "-m", "softeval.cli.__main__", *args]


def test_sigint_then_resume_equals_uninterrupted(tmp_path, tiny_model_dir):
    data = write_jsonl(tmp_path / "d.jsonl", qa_records(48))
    common = ["train", "--model", str(tiny_model_dir), "--data", str(data), "--tokens", "4", "--steps", "300",
              "--batch-size", "4", "--lr", "0.05", "--precision", "fp32", "--device", "cpu", "--eval-every", "0",
              "--checkpoint-every", "1000"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    straight = subprocess.run(_cli(*common, "--out", str(tmp_path / "a"), "-q"), env=env, capture_output=True, text=True)
    assert straight.returncode == 0, straight.stderr

    run_b = tmp_path / "b"
    proc = subprocess.Popen(_cli(*common, "--out", str(run_b), "-q"), env=env, stderr=subprocess.PIPE, text=True)
    metrics = run_b / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:
        if metrics.exists() and sum(1 for line in metrics.read_text().splitlines() if "train_loss" in line) >= 5:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "checkpoint written" in err and "--resume" in err
    assert "Traceback" not in err
    ckpts = list((run_b / "checkpoints").glob("step_*.safetensors"))
    assert len(ckpts) == 1
    interrupted_at = int(ckpts[0].stem.split("_")[1])
    assert 5 <= interrupted_at < 300

    resumed = subprocess.run(_cli("train", "--resume", str(run_b), "-q"), env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    a, _ = read_prompt_file(tmp_path / "a")
    b, meta_b = read_prompt_file(run_b)
    assert torch.equal(a["prompt_embeddings"], b["prompt_embeddings"])
    assert meta_b.steps == 300
    steps = [r["step"] for r in map(json.loads, metrics.read_text().splitlines()) if "train_loss" in r]
    assert steps == list(range(1, 301))  # no duplicated or missing records across the interruption


# --- invariant 8: a saved prompt knows what it is for ---------------------------------------------


def test_prompt_metadata_and_mismatch_refusal(tmp_path, tiny_lm, tiny_model_dir):
    data = write_jsonl(tmp_path / "d.jsonl", qa_records())
    result = run(train_cfg(tmp_path, tiny_model_dir, data, max_steps=2), lm=tiny_lm)
    _, meta = read_prompt_file(result.prompt_path)
    assert meta.model_sha256 == tiny_lm.info.weights_sha256
    assert meta.tokenizer_sha256 == tiny_lm.info.tokenizer_sha256
    assert meta.task_spec["task"] == "jsonl" and meta.task_hash
    assert (meta.num_virtual_tokens, meta.init, meta.seed, meta.steps) == (4, "vocab", 0, 2)
    assert meta.softeval_version

    # a different model (same shapes, different weights) is refused
    from conftest import build_tiny_model
    from softeval.engine.models import load_model

    other_dir = tmp_path / "other"
    build_tiny_model(len(tiny_lm.tokenizer), seed=123).save_pretrained(other_dir)
    tiny_lm.tokenizer.save_pretrained(other_dir)
    other = load_model(str(other_dir), device="cpu", show_progress=False)
    with pytest.raises(PromptMismatchError, match="weights"):
        load_prompt(result.prompt_path, other.info)
    with pytest.raises(PromptMismatchError, match="task"):
        load_prompt(result.prompt_path, tiny_lm.info, task_spec={"task": "another"})
    prompt, _ = load_prompt(result.prompt_path, other.info, allow_mismatch=True)
    assert prompt.num_virtual_tokens == 4
