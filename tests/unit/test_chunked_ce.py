"""Chunked linear cross-entropy (softeval.engine.chunked_ce) equals the plain (N, V) logits path.

The reference is written out here with plain autograd (F.linear, softcap, F.cross_entropy), so a wrong
forward or backward in the custom autograd Function shows up as a difference in losses or gradients.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from softeval.engine import chunked_ce, forward
from softeval.engine.batching import IGNORE, Example, collate
from softeval.engine.chunked_ce import chunked_linear_cross_entropy
from softeval.engine.forward import assemble_prompt_rows, target_losses
from softeval.engine.prompt import SoftPrompt


def reference(hidden, weight, targets, softcap):
    logits = F.linear(hidden, weight).float()
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return F.cross_entropy(logits, targets, reduction="none"), logits.argmax(-1) == targets


@pytest.mark.parametrize("softcap", [None, 2.5])
@pytest.mark.parametrize("chunk_rows", [1, 7, 37, 64])
def test_losses_flags_and_hidden_gradient_equal_full_path(softcap, chunk_rows):
    torch.manual_seed(0)
    rows, dim, vocab = 37, 16, 53  # 37 rows: chunks of 7 leave a remainder
    weight = torch.randn(vocab, dim)  # frozen: no requires_grad
    targets = torch.randint(vocab, (rows,))
    base = torch.randn(rows, dim) * 2
    upstream = torch.rand(rows)  # a different weight per target, as lanes' per-lane means give

    h_ref = base.clone().requires_grad_(True)
    loss_ref, correct_ref = reference(h_ref, weight, targets, softcap)
    (loss_ref * upstream).sum().backward()

    h = base.clone().requires_grad_(True)
    loss, correct = chunked_linear_cross_entropy(h, weight, targets, softcap=softcap, chunk_rows=chunk_rows)
    (loss * upstream).sum().backward()

    assert correct_ref.any() and not correct_ref.all()  # the flags are a real test
    torch.testing.assert_close(loss, loss_ref, rtol=1e-5, atol=1e-5)
    assert torch.equal(correct, correct_ref)
    torch.testing.assert_close(h.grad, h_ref.grad, rtol=1e-5, atol=1e-6)


def test_no_grad_evaluation_and_frozen_weight():
    weight = torch.randn(11, 4)
    hidden = torch.randn(5, 4)
    with torch.no_grad():
        loss, _ = chunked_linear_cross_entropy(hidden, weight, torch.arange(5), chunk_rows=2)
    torch.testing.assert_close(loss, reference(hidden, weight, torch.arange(5), None)[0])
    with pytest.raises(AssertionError, match="frozen"):
        chunked_linear_cross_entropy(hidden, weight.requires_grad_(True), torch.arange(5), chunk_rows=2)


def _prompt_grad(tiny_lm, chunk_rows, precision="fp32"):
    examples = [Example(input_ids=[5, 6, 7, 8, 9, 10], labels=[IGNORE, 6, 7, 8, 9, 10]),
                Example(input_ids=[11, 12, 13], labels=[IGNORE, IGNORE, 13])]
    torch.manual_seed(1)
    prompt = SoftPrompt(torch.randn(3, tiny_lm.info.hidden_size))
    batch = collate(examples, 3, tiny_lm.info.bos_token_id, tiny_lm.info.pad_token_id)
    with forward.autocast_context(torch.device("cpu"), precision):
        rows = assemble_prompt_rows([prompt], batch, tiny_lm.info.hidden_size)
        losses, correct = target_losses(tiny_lm.model, batch, rows, chunk_rows=chunk_rows)
    losses.mean().backward()
    return losses.detach(), correct, prompt.embeddings.grad


@pytest.mark.parametrize("softcap", [None, 1.5])
def test_prompt_gradient_through_the_model_equals_full_path(tiny_lm, softcap):
    tiny_lm.model.config.final_logit_softcapping = softcap  # the full path reads it too
    full = _prompt_grad(tiny_lm, chunk_rows=None)  # 6 targets × 200 vocab: under the threshold, plain path
    chunked = _prompt_grad(tiny_lm, chunk_rows=4)
    torch.testing.assert_close(chunked[0], full[0], rtol=1e-5, atol=1e-6)
    assert torch.equal(chunked[1], full[1])
    torch.testing.assert_close(chunked[2], full[2], rtol=1e-4, atol=1e-7)
    assert full[2].abs().sum() > 0


def test_bf16_autocast_matches_full_path_within_bf16(tiny_lm):
    full = _prompt_grad(tiny_lm, chunk_rows=None, precision="bf16")
    chunked = _prompt_grad(tiny_lm, chunk_rows=4, precision="bf16")
    torch.testing.assert_close(chunked[0], full[0], rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(chunked[2], full[2], rtol=5e-2, atol=5e-2 * float(full[2].abs().max()))


def test_threshold_picks_the_chunked_path(tiny_lm, monkeypatch):
    calls = []
    real = forward.chunked_linear_cross_entropy
    monkeypatch.setattr(forward, "chunked_linear_cross_entropy", lambda *a, **k: calls.append(1) or real(*a, **k))
    _prompt_grad(tiny_lm, chunk_rows=None)
    assert not calls  # 6 × 200 logits: the plain path
    monkeypatch.setattr(forward, "CHUNK_ELEMENTS", 1000)
    monkeypatch.setattr(chunked_ce, "CHUNK_ELEMENTS", 1000)  # chunks of 5 rows
    _prompt_grad(tiny_lm, chunk_rows=None)
    assert calls
