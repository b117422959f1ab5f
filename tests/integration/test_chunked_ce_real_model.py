"""Chunked cross-entropy on Gemma-3-270M (262k vocabulary): long targets take the chunked path, and its
losses, argmax flags and prompt gradient equal the plain (N, V) logits path in fp32.

Summing 262k exponentials in fp32 is not exact, and how far off it is depends on the machine's kernels:
F.cross_entropy's log-softmax was off the fp64 value by ~1e-5 nats on one machine and by 1.2e-4 on an AMD
EPYC, while torch.logsumexp (the chunked path) stayed within 8e-6 on both. So the chunked losses are held to
the fp64 reference on the same hidden states (5e-5), to be no farther from it than the plain path's, and to
agree with the plain path within what its kernel's rounding allows (5e-4)."""

from __future__ import annotations

import pytest
import torch

from softeval.engine import forward
from softeval.engine.batching import collate
from softeval.engine.models import load_model
from softeval.engine.prompt import SoftPrompt, initial_embeddings
from softeval.tasks import TaskConfig, build_task

pytestmark = pytest.mark.integration


def test_chunked_equals_plain_on_gemma(monkeypatch):
    lm = load_model("gemma3-270m", device="cpu", dtype="float32", show_progress=False)
    task = build_task(TaskConfig(name="autoregressive", num_train=2, num_eval=1, context_tokens=16,
                                 target_tokens=160), lm.tokenizer)
    batch = collate(task.train, 4, lm.info.bos_token_id, lm.info.pad_token_id)
    init = initial_embeddings("vocab", 4, lm.model.get_input_embeddings(), 0, lm.tokenizer)
    assert batch.target_ids.numel() * lm.info.vocab_size > forward.CHUNK_ELEMENTS  # 320 targets: chunked

    calls = []
    real = forward.chunked_linear_cross_entropy
    monkeypatch.setattr(forward, "chunked_linear_cross_entropy", lambda *a, **k: calls.append(1) or real(*a, **k))

    def run():
        prompt = SoftPrompt(init.clone())
        losses, correct = forward.target_losses(lm.model, batch, forward.assemble_prompt_rows([prompt], batch,
                                                                                               lm.info.hidden_size))
        losses.mean().backward()
        return losses.detach(), correct, prompt.embeddings.grad

    chunked = run()
    assert calls == [1]
    monkeypatch.setattr(forward, "CHUNK_ELEMENTS", 1 << 62)
    plain = run()
    assert calls == [1]  # the plain path this time
    with torch.no_grad():
        hidden = forward.target_hidden(lm.model, batch, SoftPrompt(init.clone())(2)).double()
        logits = hidden @ lm.model.get_output_embeddings().weight.double().T
        exact = torch.nn.functional.cross_entropy(logits, batch.target_ids, reduction="none").float()
    torch.testing.assert_close(chunked[0], exact, rtol=0, atol=5e-5)
    assert (chunked[0] - exact).abs().max() <= (plain[0] - exact).abs().max() + 1e-6
    torch.testing.assert_close(chunked[0], plain[0], rtol=0, atol=5e-4)
    assert torch.equal(chunked[1], plain[1])
    # the prompt gradient: 18 layers of backward amplify the ~1e-6 relative softmax rounding
    torch.testing.assert_close(chunked[2], plain[2], rtol=1e-3, atol=1e-3 * float(plain[2].abs().max()))
