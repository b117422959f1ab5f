"""--device-map: a frozen model placed by accelerate gives the same losses and prompt gradients as the model on
one device; the soft prompt and batches go to the device of the input embeddings."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from softeval.engine.batching import IGNORE, Example, collate
from softeval.errors import ModelError
from softeval.engine.forward import target_losses
from softeval.engine.models import load_model
from softeval.engine.prompt import SoftPrompt

EXAMPLES = [Example(input_ids=[5, 6, 7, 8], labels=[IGNORE, 6, 7, 8]),
            Example(input_ids=list(range(20, 31)), labels=[IGNORE] * 4 + list(range(24, 31)))]


def _prompt_vectors(hidden_size: int) -> torch.Tensor:
    return torch.randn(3, hidden_size, generator=torch.Generator().manual_seed(0)) * 0.05


def _loss_and_grad(lm, device: torch.device):
    """Per-target losses and the prompt's gradient through softeval's batching and loss."""
    prompt = SoftPrompt(_prompt_vectors(lm.info.hidden_size)).to(device)
    batch = collate(EXAMPLES, 3, lm.info.bos_token_id, lm.info.pad_token_id).to(device)
    losses, _ = target_losses(lm.model, batch, prompt(len(EXAMPLES)))
    losses.mean().backward()
    return losses.detach().cpu(), prompt.embeddings.grad.detach().cpu()


def _loss_and_grad_by_hand(model, bos_id: int):
    """The same numbers without softeval: one unpadded row at a time, [BOS, prompt, tokens] as input embeddings
    into the Hugging Face model, and each target's cross-entropy at the position before it."""
    embed = model.get_input_embeddings()
    prompt = _prompt_vectors(embed.weight.shape[1]).requires_grad_(True)
    losses = []
    for ex in EXAMPLES:
        tokens = embed(torch.tensor([bos_id, *ex.input_ids]))
        logits = model(inputs_embeds=torch.cat([tokens[:1], prompt, tokens[1:]]).unsqueeze(0)).logits[0]
        prefix = 1 + prompt.shape[0]  # input_ids[i] sits at prefix + i, so the logits before it predict it
        losses += [F.cross_entropy(logits[prefix + i - 1], torch.tensor(label))
                   for i, label in enumerate(ex.labels) if label != IGNORE]
    losses = torch.stack(losses)
    losses.mean().backward()
    return losses.detach(), prompt.grad


def test_device_map_auto_on_cpu_goes_through_accelerate_and_scores_as_computed_by_hand(tiny_model_dir, monkeypatch):
    """The map reaches the loader (a dropped --device-map would fail here), and the mapped model's losses and
    prompt gradient equal a computation that shares no code with softeval's forward."""
    from transformers import AutoModelForCausalLM

    asked = []
    load = AutoModelForCausalLM.from_pretrained

    def spy(*args, **kwargs):
        asked.append(kwargs.get("device_map"))
        return load(*args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", spy)
    mapped = load_model(str(tiny_model_dir), device="cpu", dtype="float32", show_progress=False, device_map="auto")
    monkeypatch.undo()
    assert asked == ["auto"]
    assert mapped.info.device == "cpu" and not any(p.requires_grad for p in mapped.model.parameters())
    losses, grad = _loss_and_grad(mapped, torch.device("cpu"))
    reference = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()
    expected_losses, expected_grad = _loss_and_grad_by_hand(reference, mapped.info.bos_token_id)
    torch.testing.assert_close(losses, expected_losses, rtol=0, atol=1e-5)
    torch.testing.assert_close(grad, expected_grad, rtol=0, atol=1e-6)


def test_unknown_device_map_is_a_model_error(tiny_model_dir):
    with pytest.raises(ModelError, match="unknown --device-map 'autp'. Did you mean 'auto'"):
        load_model(str(tiny_model_dir), device="cpu", dtype="float32", show_progress=False, device_map="autp")


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_model_split_over_two_gpus_equals_one_gpu(tiny_model_dir):
    one = load_model(str(tiny_model_dir), device="cuda", dtype="float32", show_progress=False)
    split = load_model(str(tiny_model_dir), device="cuda", dtype="float32", show_progress=False,
                       device_map="balanced")
    assert len({p.device for p in split.model.parameters()}) == 2  # really on two GPUs
    first = split.model.get_input_embeddings().weight.device
    assert split.info.device == str(first)
    loss_a, grad_a = _loss_and_grad(one, torch.device("cuda:0"))
    loss_b, grad_b = _loss_and_grad(split, first)
    torch.testing.assert_close(loss_b, loss_a, rtol=0, atol=1e-5)
    torch.testing.assert_close(grad_b, grad_a, rtol=0, atol=1e-5)
