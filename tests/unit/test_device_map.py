"""--device-map: a frozen model placed by accelerate gives the same losses and prompt gradients as the model on
one device; the soft prompt and batches go to the device of the input embeddings."""

from __future__ import annotations

import pytest
import torch

from softeval.batching import IGNORE, Example, collate
from softeval.errors import ModelError
from softeval.forward import target_losses
from softeval.models import load_model
from softeval.prompt import SoftPrompt


def _loss_and_grad(lm, device: torch.device):
    torch.manual_seed(0)
    prompt = SoftPrompt(torch.randn(3, lm.info.hidden_size) * 0.05).to(device)
    examples = [Example(input_ids=[5, 6, 7, 8], labels=[IGNORE, 6, 7, 8]),
                Example(input_ids=list(range(20, 31)), labels=[IGNORE] * 4 + list(range(24, 31)))]
    batch = collate(examples, 3, lm.info.bos_token_id, lm.info.pad_token_id).to(device)
    losses, _ = target_losses(lm.model, batch, prompt(len(examples)))
    losses.mean().backward()
    return losses.detach().cpu(), prompt.embeddings.grad.detach().cpu()


def test_device_map_auto_on_cpu_equals_plain_load(tiny_model_dir):
    plain = load_model(str(tiny_model_dir), device="cpu", dtype="float32", show_progress=False)
    mapped = load_model(str(tiny_model_dir), device="cpu", dtype="float32", show_progress=False, device_map="auto")
    assert mapped.info.device == "cpu" and not any(p.requires_grad for p in mapped.model.parameters())
    loss_a, grad_a = _loss_and_grad(plain, torch.device("cpu"))
    loss_b, grad_b = _loss_and_grad(mapped, torch.device("cpu"))
    assert torch.equal(loss_a, loss_b) and torch.equal(grad_a, grad_b)


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
