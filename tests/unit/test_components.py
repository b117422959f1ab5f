"""Batch layout, prompt initialisers and files, config loading, data order."""

from __future__ import annotations

import json

import pytest
import torch

from softeval.engine.batching import IGNORE, Example, collate
from softeval.config import build_config
from softeval.errors import ConfigError, SoftevalError
from softeval.engine.forward import insert_soft_prompt
from softeval.engine.prompt import (ConditionalPrompt, PromptMetadata, SoftPrompt, initial_embeddings, load_prompt,
                             read_prompt_file, save_prompt)
from softeval.store import append_jsonl, read_jsonl
from softeval.tasks import TaskConfig, build_task
from softeval.engine.loop import StepSampler, lr_factor
from softeval.train import TrainConfig

# --- batching --------------------------------------------------------------------------------------


def test_collate_layout_after_bos():
    a = Example(input_ids=[10, 11, 12], labels=[IGNORE, 11, 12])
    b = Example(input_ids=[20], labels=[20])
    batch = collate([a, b], 2, bos_id=1, pad_id=0)
    # row a: [BOS][s0][s1][10][11][12]; row b: [pad][pad][BOS][s0][s1][20]
    assert batch.input_ids.tolist() == [[1, 0, 0, 10, 11, 12], [0, 0, 1, 0, 0, 20]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 4, 5], [0, 0, 0, 1, 2, 3]]
    assert batch.soft_slot.tolist() == [[-1, 0, 1, -1, -1, -1], [-1, -1, -1, 0, 1, -1]]
    # a's targets 11, 12 are predicted from the positions holding 10 and 11; b's 20 from its last soft slot
    assert list(zip(batch.target_rows.tolist(), batch.target_cols.tolist(), batch.target_ids.tolist())) == [
        (0, 3, 11), (0, 4, 12), (1, 4, 20)]


def test_collate_before_bos_and_mixed_lanes():
    ex = Example(input_ids=[7, 8], labels=[7, 8])
    batch = collate([ex, ex], [3, 1], bos_id=1, pad_id=0, placement="before_bos", lanes=[0, 1])
    assert batch.soft_slot.tolist() == [[0, 1, 2, -1, -1, -1], [-1, -1, 0, -1, -1, -1]]
    assert batch.input_ids[:, -3:].tolist() == [[1, 7, 8], [1, 7, 8]]
    assert batch.position_ids[1].tolist() == [0, 0, 0, 1, 2, 3]
    assert batch.lanes.tolist() == [0, 1]


def test_without_bos_first_label_is_never_scored():
    """With no BOS and n = 0 nothing precedes input_ids[0]; to keep targets equal across n it is never scored."""
    ex = Example(input_ids=[5, 6, 7], labels=[5, 6, 7])
    for n in (0, 4):
        batch = collate([ex], n, bos_id=None, pad_id=0)
        assert batch.target_ids.tolist() == [6, 7]


def test_insert_soft_prompt_puts_rows_at_slots_and_keeps_tokens():
    tokens = torch.zeros(1, 4, 2)
    slots = torch.tensor([[-1, 0, 1, -1]])
    rows = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]], requires_grad=True)
    out = insert_soft_prompt(tokens, slots, rows)
    assert out[0].tolist() == [[0, 0], [1, 2], [3, 4], [0, 0]]
    out.sum().backward()
    assert rows.grad.tolist() == [[[1, 1], [1, 1]]]


# --- prompts ---------------------------------------------------------------------------------------


def test_initialisers(tiny_lm):
    emb = tiny_lm.model.get_input_embeddings()
    vocab = initial_embeddings("vocab", 5, emb, seed=0, tokenizer=tiny_lm.tokenizer)
    rows = {tuple(r.tolist()) for r in emb.weight.detach()}
    assert all(tuple(v.tolist()) in rows for v in vocab)  # each vector is a real token embedding
    assert torch.equal(vocab, initial_embeddings("vocab", 5, emb, seed=0, tokenizer=tiny_lm.tokenizer))
    text = initial_embeddings("text", 6, emb, seed=0, tokenizer=tiny_lm.tokenizer, text="the fox")
    ids = tiny_lm.tokenizer("the fox", add_special_tokens=False).input_ids
    assert torch.allclose(text[0], emb.weight[ids[0]])
    rand = initial_embeddings("random", 64, emb, seed=0)
    assert rand.std().item() == pytest.approx(emb.weight.std().item(), rel=0.3)  # matches the embedding scale
    assert initial_embeddings("zeros", 3, emb, seed=0).abs().sum() == 0
    with pytest.raises(ConfigError, match="Did you mean 'vocab'"):
        initial_embeddings("vocabb", 3, emb, seed=0)


def test_prompt_params_stay_fp32():
    prompt = SoftPrompt(torch.randn(3, 8, dtype=torch.bfloat16))
    assert prompt.embeddings.dtype == torch.float32
    tokens = torch.zeros(1, 4, 8, dtype=torch.bfloat16)
    out = insert_soft_prompt(tokens, torch.tensor([[0, 1, 2, -1]]), prompt(1))
    assert out.dtype == torch.bfloat16


def _meta(**kw):
    base = dict(model_name="m", model_sha256="w", tokenizer_sha256="t", hidden_size=8, num_virtual_tokens=3,
                task_spec={"task": "jsonl"}, task_hash="h", init="vocab", seed=1, steps=10, placement="after_bos",
                softeval_version="0.1.0")
    base.update(kw)
    return PromptMetadata(**base)


def test_prompt_file_round_trip(tmp_path):
    prompt = SoftPrompt(torch.randn(3, 8))
    save_prompt(tmp_path / "p.safetensors", prompt, _meta())
    tensors, meta = read_prompt_file(tmp_path / "p.safetensors")
    assert torch.equal(tensors["prompt_embeddings"], prompt.embeddings.detach())
    assert meta == _meta()
    loaded, _ = load_prompt(tmp_path / "p.safetensors")
    assert torch.equal(loaded.embeddings, prompt.embeddings)


def test_conditional_prompt_round_trip_and_batched(tmp_path):
    torch.manual_seed(0)
    prompt = ConditionalPrompt(torch.randn(3, 8), condition_dim=2, kind="mlp", hidden=16)
    conds = torch.tensor([[0.0, 1.0], [1.0, -1.0]])
    out0 = prompt(2, conds)
    assert out0.shape == (2, 3, 8)
    assert torch.allclose(out0[0], out0[1])  # zero-initialised map: same prompt for every condition at start
    with torch.no_grad():
        for p in prompt.map.parameters():
            p.add_(0.1)
    save_prompt(tmp_path / "c.safetensors", prompt, _meta(kind="mlp", condition_dim=2, extra={"hidden": 16}))
    loaded, meta = load_prompt(tmp_path / "c.safetensors")
    assert torch.allclose(loaded(2, conds), prompt(2, conds))
    assert not torch.allclose(loaded(2, conds)[0], loaded(2, conds)[1])


def test_corrupt_prompt_file(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(SoftevalError, match="not a readable safetensors prompt"):
        read_prompt_file(bad)


# --- configs ---------------------------------------------------------------------------------------


def test_yaml_flags_and_overrides_merge_deeply(tmp_path):
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("max_steps: 40\ntask:\n  name: repetition\n  num_train: 64\n  options: {text: ' a'}\n")
    cfg = build_config(TrainConfig, str(yaml_file), ["task.num_eval=7", "lr=0.5"], {"task": {"num_train": 32}})
    assert cfg.optim.max_steps == 40 and cfg.optim.lr == 0.5
    assert cfg.task == TaskConfig(name="repetition", num_train=32, num_eval=7, options={"text": " a"})


def test_config_rejects_unknown_nested_key(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key 'task.num_trian'. Did you mean 'num_train'"):
        build_config(TrainConfig, None, ["task.num_trian=3"])


def test_config_type_errors():
    with pytest.raises(ConfigError, match="expects int"):
        build_config(TrainConfig, None, ["max_steps=many"])


# --- data order and schedule -----------------------------------------------------------------------


def test_sampler_is_a_function_of_seed_and_step():
    a, b = StepSampler(10, 4, seed=3), StepSampler(10, 4, seed=3)
    seq = [a.indices(s) for s in range(6)]
    assert [b.indices(s) for s in reversed(range(6))][::-1] == seq  # order of calls does not matter
    epoch0 = seq[0] + seq[1] + seq[2][:2]
    assert sorted(epoch0) == list(range(10))  # every example once per epoch
    assert StepSampler(10, 4, seed=4).indices(0) != seq[0]


def test_lr_schedule():
    assert lr_factor(0, 10, 100, "cosine") == pytest.approx(0.1)
    assert lr_factor(9, 10, 100, "cosine") == pytest.approx(1.0)
    assert lr_factor(10, 10, 100, "cosine") == pytest.approx(1.0)
    assert lr_factor(100, 10, 100, "cosine") == pytest.approx(0.1)
    assert lr_factor(50, 0, 100, "constant") == 1.0


# --- tasks and files -------------------------------------------------------------------------------


def test_text_tasks_share_windows_and_target_counts(tiny_lm, corpus_file):
    kw = dict(corpus=str(corpus_file), num_train=8, num_eval=4, context_tokens=6, target_tokens=5)
    auto = build_task(TaskConfig(name="autoregressive", **kw), tiny_lm.tokenizer)
    assert all(e.num_targets == 5 for e in auto.train + auto.eval)
    train_windows = {tuple(e.input_ids) for e in auto.train}
    assert not train_windows & {tuple(e.input_ids) for e in auto.eval}  # held-out never trained on
    skip = build_task(TaskConfig(name="skip-k", options={"skip": 2}, **kw), tiny_lm.tokenizer)
    # Independently: find each example in the tokenized corpus; after reading corpus[:s + 6 + j], target j
    # is the token 1 + k = 3 positions on, corpus[s + 6 + j + 2] (not the next token, corpus[s + 6 + j]).
    corpus_ids = tiny_lm.tokenizer(corpus_file.read_text(), add_special_tokens=False).input_ids
    for ex in skip.train + skip.eval:
        assert len(ex.input_ids) == 11 and ex.num_targets == 5
        starts = [s for s in range(len(corpus_ids) - 13) if corpus_ids[s:s + 11] == ex.input_ids]
        assert starts and all(ex.labels[6:] == corpus_ids[s + 8:s + 13] for s in starts)
        assert ex.labels[:6] == [IGNORE] * 6
    rep = build_task(TaskConfig(name="repetition", options={"text": " the fox"}, **kw), tiny_lm.tokenizer)
    ids = tiny_lm.tokenizer(" the fox", add_special_tokens=False).input_ids
    assert rep.eval[0].labels[6:] == (ids * 5)[:5]
    assert rep.spec_hash != auto.spec_hash


def test_task_spec_hashes_the_data_files_by_role(tiny_lm, corpus_file, tmp_path, monkeypatch):
    import hashlib

    import softeval.tasks.text as text_mod

    kw = dict(num_train=8, num_eval=4, context_tokens=6, target_tokens=5)
    task = build_task(TaskConfig(name="autoregressive", corpus=str(corpus_file), **kw), tiny_lm.tokenizer)
    assert task.data_files == {"corpus": corpus_file}
    assert task.spec["data_sha256"] == {"corpus": hashlib.sha256(corpus_file.read_bytes()).hexdigest()}
    moved = tmp_path / "elsewhere.txt"
    moved.write_bytes(corpus_file.read_bytes())
    assert build_task(TaskConfig(name="autoregressive", corpus=str(moved), **kw), tiny_lm.tokenizer).spec_hash \
        == task.spec_hash
    changed = tmp_path / "changed.txt"
    changed.write_bytes(corpus_file.read_bytes() + b" one more line.")
    assert build_task(TaskConfig(name="autoregressive", corpus=str(changed), **kw), tiny_lm.tokenizer).spec_hash \
        != task.spec_hash

    # The shipped corpus is hashed too: a changed package text is another task.
    shipped = build_task(TaskConfig(name="autoregressive", **kw), tiny_lm.tokenizer)
    package_text = text_mod.corpus_path(None).read_bytes()
    assert shipped.spec["data_sha256"]["corpus"] == hashlib.sha256(package_text).hexdigest()
    fake_root = tmp_path / "pkg"
    (fake_root / "data").mkdir(parents=True)
    (fake_root / "data" / text_mod.DEFAULT_CORPUS).write_bytes(package_text.replace(b"Alice", b"Alicia"))
    monkeypatch.setattr(text_mod, "files", lambda package: fake_root)
    edited = build_task(TaskConfig(name="autoregressive", **kw), tiny_lm.tokenizer)
    assert edited.spec_hash != shipped.spec_hash


def test_jsonl_prompt_completion_masks_prompt(tmp_path, tiny_lm):
    from conftest import write_jsonl

    data = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "the quick", "completion": " brown fox"}] * 4)
    task = build_task(TaskConfig(name="jsonl", data=str(data), eval_fraction=0.25), tiny_lm.tokenizer)
    ex = task.train[0]
    n_prompt = len(tiny_lm.tokenizer("the quick", add_special_tokens=False).input_ids)
    assert ex.labels[:n_prompt] == [IGNORE] * n_prompt
    assert ex.labels[n_prompt:] == ex.input_ids[n_prompt:]
    assert len(task.eval) == 1 and len(task.train) == 3


def test_jsonl_log_survives_torn_last_line(tmp_path):
    path = tmp_path / "m.jsonl"
    append_jsonl(path, {"step": 1})
    append_jsonl(path, {"step": 2})
    with open(path, "a") as f:
        f.write('{"step": 3, "tra')  # a kill mid-write
    assert [r["step"] for r in read_jsonl(path)] == [1, 2]
    assert json.loads(path.read_text().splitlines()[0]) == {"step": 1}
