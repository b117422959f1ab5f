"""Shared fixtures. Unit tests use a tiny randomly initialised model built in-process (no network);
integration tests use the embedded SmolLM2 / Gemma models (fetched once into SOFTEVAL_HOME)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

TINY_TEXT = (
    "the quick brown fox jumps over the lazy dog. a stitch in time saves nine. "
    "all that glitters is not gold. the early bird catches the worm. "
) * 20


def build_tiny_tokenizer(with_bos: bool = True):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=200, special_tokens=["<pad>", "<bos>", "<eos>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([TINY_TEXT], trainer)
    from tokenizers import decoders

    tok.decoder = decoders.ByteLevel()
    if with_bos:
        tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>")


def build_tiny_model(vocab_size: int, seed: int = 0, tie_word_embeddings: bool = True, **config):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      bos_token_id=1, eos_token_id=2, pad_token_id=0,
                      tie_word_embeddings=tie_word_embeddings, **config)
    return LlamaForCausalLM(cfg)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny llama saved in HF layout, so tests go through the real loading path."""
    path = tmp_path_factory.mktemp("tiny-llama")
    tok = build_tiny_tokenizer()
    model = build_tiny_model(len(tok))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture()
def tiny_lm(tiny_model_dir):
    from softeval.engine.models import load_model

    return load_model(str(tiny_model_dir), device="cpu", dtype="float32", show_progress=False)


@pytest.fixture()
def corpus_file(tmp_path) -> Path:
    p = tmp_path / "corpus.txt"
    p.write_text(TINY_TEXT * 3)
    return p


def load_repo_script(relative_path: str):
    """A script of the repository (scripts/, benchmarks/) imported as a module, for testing its functions.
    Registered in sys.modules under its stem, because dataclasses look their module up by name."""
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[1] / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def write_jsonl(path: Path, records: list) -> Path:
    import json

    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray instance with 2 CPUs (two workers) for the session; needs the `ray` extra."""
    ray = pytest.importorskip("ray")
    from softeval.executors import ensure_ray

    ensure_ray(num_cpus=2)
    yield ray
    ray.shutdown()
