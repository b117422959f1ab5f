"""Lanes: several prompts trained in one forward/backward equal each prompt trained alone (issue #6)."""

from __future__ import annotations

import random
import tempfile
from dataclasses import replace

import pytest
import torch

from softeval.engine.batching import IGNORE, Example, collate
from softeval.engine.forward import assemble_prompt_rows, target_losses
from softeval.tasks import TaskData
from softeval.config import build_config
from softeval.engine.loop import loop_context, make_lane, new_prompt, train_lanes, train_step
from softeval.store import RunFolder
from softeval.train import TrainConfig

# fp32 on CPU: rows in a bigger batch may go through other BLAS blockings, so sums are reordered. After
# these few Adam steps the prompts (entries ~0.1-0.3) differ by <= 2e-7 here; any mixing of lanes, a wrong
# data order or a shared optimizer state moves them by 1e-3 or more.
ATOL = 2e-6


def make_task(vocab: int, seed: int, num_train: int = 12, num_eval: int = 4) -> TaskData:
    """Examples of varied length (6-14 tokens) whose last half is scored: different lanes, different widths."""
    rng = random.Random(seed)

    def example() -> Example:
        length = rng.randint(6, 14)
        ids = [rng.randrange(4, vocab) for _ in range(length)]
        return Example(input_ids=ids, labels=[IGNORE] * (length // 2) + ids[length // 2:])

    return TaskData(train=[example() for _ in range(num_train)], eval=[example() for _ in range(num_eval)],
                    spec={"task": "random", "seed": seed})


def cfg(**kw) -> TrainConfig:
    base = dict(device="cpu", precision="fp32", max_steps=6, batch_size=4, lr=0.05, warmup_steps=2,
                eval_every=0, checkpoint_every=0, show_progress=False)
    base.update(kw)
    return build_config(TrainConfig, flags=base)


def prompt_for(lm, c: TrainConfig, condition_dim: int = 0):
    return new_prompt(lm, c.prompt, c.num_virtual_tokens, c.seed, condition_dim)


def lane_for(name: str, lm, c: TrainConfig, task: TaskData):
    folder = RunFolder(tempfile.mkdtemp(prefix=f"lane-{name}-"))
    return make_lane(name, prompt_for(lm, c, task.condition_dim), task, c.lane_config(), folder)


def train(tiny_lm, specs: list[tuple[TrainConfig, TaskData]]) -> list:
    ctx = loop_context(tiny_lm, "fp32", "after_bos")
    lanes = [lane_for(f"lane{i}", tiny_lm, c, task) for i, (c, task) in enumerate(specs)]
    train_lanes(ctx, lanes, show_progress=False)
    return lanes


LANE_SPECS = [  # (n, seed, max_steps, batch_size, task seed): different lengths, seeds, schedules, data
    (1, 0, 6, 4, 0),
    (4, 1, 6, 3, 1),
    (9, 2, 3, 4, 2),  # stops early: the others continue without it
    (4, 3, 5, 2, 1),  # same n and data as lane 1, other seed
]


def test_lanes_equal_training_each_prompt_alone(tiny_lm):
    vocab = tiny_lm.info.vocab_size
    specs = [(cfg(num_virtual_tokens=n, seed=s, max_steps=k, batch_size=b), make_task(vocab, t))
             for n, s, k, b, t in LANE_SPECS]
    together = train(tiny_lm, specs)
    for spec, lane in zip(specs, together):
        (alone,) = train(tiny_lm, [spec])
        assert lane.status == alone.status == "done"
        assert lane.step == alone.step == spec[0].optim.max_steps
        torch.testing.assert_close(lane.prompt.embeddings, alone.prompt.embeddings, atol=ATOL, rtol=0)
        assert lane.last_eval["loss"] == pytest.approx(alone.last_eval["loss"], abs=1e-5)
        # and it did learn something, so the comparison is not between two untouched prompts
        assert not torch.allclose(lane.prompt.embeddings, prompt_for(tiny_lm, spec[0]).embeddings)


def test_lane_loss_is_mean_over_its_own_targets(tiny_lm):
    """The per-lane loss of a mixed batch equals the loss of that lane's rows collated alone."""
    vocab = tiny_lm.info.vocab_size
    bos, pad = tiny_lm.info.bos_token_id, tiny_lm.info.pad_token_id
    ctx = loop_context(tiny_lm, "fp32", "after_bos")
    tasks = [make_task(vocab, 10), make_task(vocab, 11)]
    lanes = [lane_for(f"l{i}", tiny_lm, cfg(num_virtual_tokens=n, seed=i), t)
             for i, (n, t) in enumerate(zip([2, 7], tasks))]
    expected = []
    for lane in lanes:
        rows = [lane.train_examples[j] for j in lane.sampler.indices(0)]
        batch = collate(rows, lane.prompt.num_virtual_tokens, bos, pad)
        with torch.no_grad():
            losses, _ = target_losses(tiny_lm.model, batch, assemble_prompt_rows([lane.prompt], batch, ctx.hidden_size))
        expected.append(losses.mean().item())
    got = train_step(ctx, lanes)
    assert got["l0"] == pytest.approx(expected[0], abs=1e-6)
    assert got["l1"] == pytest.approx(expected[1], abs=1e-6)


def test_lane_gradients_do_not_leak(tiny_lm, monkeypatch):
    """Lane b shares the batch but has no scored tokens: it must get no gradient from lane a's rows, and
    lane a's step must equal lane a's step taken alone (b's rows add nothing to a's loss)."""
    import softeval.engine.loop as train_mod

    vocab = tiny_lm.info.vocab_size
    ctx = loop_context(tiny_lm, "fp32", "after_bos")
    silent = make_task(vocab, 1)
    for ex in silent.train:
        ex.labels = [IGNORE] * len(ex.labels)

    def lanes():
        a = lane_for("a", tiny_lm, cfg(num_virtual_tokens=3, seed=0), make_task(vocab, 0))
        b = lane_for("b", tiny_lm, cfg(num_virtual_tokens=5, seed=1), silent)
        return a, b

    seen = []
    real_collate = train_mod.collate

    def spy(*args, **kwargs):
        batch = real_collate(*args, **kwargs)
        seen.append(batch.lanes.tolist())
        return batch

    monkeypatch.setattr(train_mod, "collate", spy)
    a, b = lanes()
    before = b.prompt.embeddings.detach().clone()
    train_step(ctx, [a, b])
    assert set(seen[-1]) == {0, 1}  # both lanes' rows were in the one batch
    assert b.prompt.embeddings.grad is None or not b.prompt.embeddings.grad.any()
    assert torch.equal(b.prompt.embeddings, before)

    (alone, _) = lanes()
    train_step(ctx, [alone])
    assert a.step == alone.step == 1
    torch.testing.assert_close(a.prompt.embeddings, alone.prompt.embeddings, atol=ATOL, rtol=0)
    assert not torch.equal(a.prompt.embeddings, lanes()[0].prompt.embeddings)  # a did move


def test_mixed_conditional_and_plain_lanes(tiny_lm):
    """A conditional lane and a plain lane share a batch; each equals its own solo run."""
    vocab = tiny_lm.info.vocab_size
    plain = make_task(vocab, 3)
    cond = make_task(vocab, 4)
    for k, ex in enumerate(cond.train + cond.eval):
        ex.condition = [k % 3 / 2.0, 1.0 - k % 2]
    cond = replace(cond, condition_dim=2)

    def run(specs):
        ctx = loop_context(tiny_lm, "fp32", "after_bos")
        lanes = [lane_for(f"lane{i}", tiny_lm, c, t) for i, (c, t) in enumerate(specs)]
        train_lanes(ctx, lanes, show_progress=False)
        return lanes

    specs = [(cfg(num_virtual_tokens=2, seed=0), plain), (cfg(num_virtual_tokens=3, seed=1, lr=0.1), cond)]
    together = run(specs)
    for spec, lane in zip(specs, together):
        (alone,) = run([spec])
        for p, q in zip(lane.prompt.parameters(), alone.prompt.parameters()):
            torch.testing.assert_close(p, q, atol=ATOL, rtol=0)


def saved_bytes(fn) -> int:
    """Bytes autograd keeps for backward while `fn` runs."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


def test_activation_checkpointing_same_result_less_saved(tiny_lm):
    vocab = tiny_lm.info.vocab_size
    specs = [(cfg(num_virtual_tokens=n, seed=s), make_task(vocab, s)) for n, s in [(3, 0), (8, 1)]]
    results = {}
    for checkpointing in (False, True):
        ctx = replace(loop_context(tiny_lm, "fp32", "after_bos"), checkpointing=checkpointing)
        lanes = [lane_for(f"l{i}", tiny_lm, c, t) for i, (c, t) in enumerate(specs)]
        results[checkpointing] = (saved_bytes(lambda: train_step(ctx, lanes)), lanes)
        train_lanes(ctx, lanes, show_progress=False)
    assert results[True][0] < 0.5 * results[False][0]
    for plain, ckpt in zip(results[False][1], results[True][1]):
        torch.testing.assert_close(plain.prompt.embeddings, ckpt.prompt.embeddings, atol=ATOL, rtol=0)
    assert all("forward" not in m.__dict__ for m in tiny_lm.model.modules())  # the wrappers are gone again
