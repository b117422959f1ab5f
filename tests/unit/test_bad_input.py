"""User mistakes get a one-line error and a non-zero exit, never a traceback; results are kept."""

from __future__ import annotations

import json

import pytest

from softeval.cli import main
from softeval.errors import ConfigError, DataError
from softeval.tasks import TaskConfig, build_task
from softeval.tasks.jsonl import read_records

from conftest import write_jsonl


def run_cli(capsys, *args) -> tuple[int, str]:
    code = main(list(args))
    err = capsys.readouterr().err
    return code, err


def error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("softeval: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_malformed_jsonl_names_file_and_line(tmp_path, capsys, tiny_model_dir):
    data = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "a", "completion": "b"}, "{not json", {"text": "x"}])
    code, err = run_cli(capsys, "train", "--model", str(tiny_model_dir), "--data", str(data), "--steps", "1")
    assert code == 2
    assert f"{data}:2: not valid JSON" in error_line(err)


BINARY = bytes(range(256)) * 8 + b"\xff\xfe\x80\x81" * 64  # what a mistaken --data (an image, a .bin) looks like


def _zstd(data: bytes) -> bytes:
    zstandard = pytest.importorskip("zstandard")
    return zstandard.ZstdCompressor().compress(data)


@pytest.mark.parametrize("name,content,flags,expected", [
    ("binary.jsonl", BINARY, ["--data"], "is not UTF-8 text (line 1: binary data"),
    ("latin1.jsonl", b'{"text": "ok"}\n{"text": "caf\xe9"}\n', ["--data"], "is not UTF-8 text (line 2: "),
    ("binary.txt", BINARY, ["--task", "repetition", "--corpus"], "is not UTF-8 text"),
    ("binary.pgn", BINARY, ["--task", "chess", "--data"], "is not UTF-8 text (binary data)"),
    ("binary.pgn.zst", "zstd", ["--task", "chess", "--data"], "is not UTF-8 text (binary data)"),
    ("notzstd.pgn.zst", BINARY, ["--task", "chess", "--data"], "is not a readable zstandard file"),
])
def test_binary_data_file_is_one_line_error(tmp_path, capsys, tiny_model_dir, name, content, flags, expected):
    if "chess" in flags:
        pytest.importorskip("chess")
    path = tmp_path / name
    path.write_bytes(_zstd(BINARY) if content == "zstd" else content)
    code, err = run_cli(capsys, "-q", "train", "--model", str(tiny_model_dir), "--steps", "1",
                        "--out", str(tmp_path / "out"), *flags, str(path))
    assert code == 2
    line = error_line(err)
    assert str(path) in line and expected in line, line


def test_jsonl_missing_fields(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"question": "a"}])
    with pytest.raises(DataError, match=r"d.jsonl:1: expected string fields 'prompt' and 'completion', or 'text'"):
        read_records(data)


def test_empty_dataset(tmp_path, capsys, tiny_model_dir):
    data = tmp_path / "empty.jsonl"
    data.write_text("\n\n")
    code, err = run_cli(capsys, "train", "--model", str(tiny_model_dir), "--data", str(data), "--steps", "1")
    assert code == 2
    assert "has no examples" in error_line(err)


def test_missing_data_file(tmp_path, capsys, tiny_model_dir):
    code, err = run_cli(capsys, "train", "--model", str(tiny_model_dir), "--data", str(tmp_path / "nope.jsonl"))
    assert code == 2
    assert "does not exist" in error_line(err)


def test_unknown_model(tmp_path, capsys):
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": "hello"}] * 4)
    code, err = run_cli(capsys, "train", "--model", "smollm2-135m-instruckt", "--data", str(data))
    assert code == 2
    line = error_line(err)
    assert "unknown model 'smollm2-135m-instruckt'" in line and "Did you mean 'smollm2-135m-instruct'" in line


def test_not_a_model_folder(tmp_path, capsys):
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": "hello"}] * 4)
    code, err = run_cli(capsys, "train", "--model", str(tmp_path), "--data", str(data))
    assert code == 2
    assert "not a model directory" in error_line(err)


def test_zero_tokens_for_training(tmp_path, capsys, tiny_model_dir):
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": "hello there"}] * 4)
    code, err = run_cli(capsys, "train", "--model", str(tiny_model_dir), "--data", str(data), "--tokens", "0")
    assert code == 2
    assert "--tokens" in error_line(err) and ">= 1" in err


def test_unknown_task_lists_valid_ones(tmp_path, capsys, tiny_model_dir):
    code, err = run_cli(capsys, "train", "--model", str(tiny_model_dir), "--task", "repetiton")
    assert code == 2
    line = error_line(err)
    assert "Did you mean 'repetition'" in line and "autoregressive" in line


def test_corpus_too_short(tiny_lm, corpus_file):
    cfg = TaskConfig(name="autoregressive", corpus=str(corpus_file), num_train=10_000, num_eval=10)
    with pytest.raises(DataError, match="enough for .* windows"):
        build_task(cfg, tiny_lm.tokenizer)


def test_unknown_config_key(tmp_path, capsys, tiny_model_dir):
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": "hello there"}] * 4)
    code, err = run_cli(capsys, "train", "--model", str(tiny_model_dir), "--data", str(data), "max_step=3")
    assert code == 2
    assert "unknown config key 'max_step'. Did you mean 'max_steps'?" in error_line(err)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, capsys, tiny_model_dir):
    """A model with a corrupt (NaN) embedding row for one rare token: training runs until a batch first
    contains that token, then must stop, say so, and keep only checkpoints with finite parameters."""
    import torch

    from conftest import build_tiny_model, build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    model = build_tiny_model(len(tok), tie_word_embeddings=False)  # else the NaN row also poisons every logit
    rare = tok("@", add_special_tokens=False).input_ids[0]  # a byte that no other line uses
    with torch.no_grad():
        model.get_input_embeddings().weight[rare] = float("nan")
    corrupt = tmp_path / "corrupt-model"
    model.save_pretrained(corrupt)
    tok.save_pretrained(corrupt)
    lines = [{"text": f"the quick brown fox number {i} jumps over the lazy dog"} for i in range(15)]
    lines.append({"text": "the quick brown fox@ jumps over the lazy dog"})
    data = write_jsonl(tmp_path / "d.jsonl", lines)
    held_out = write_jsonl(tmp_path / "e.jsonl", [{"text": "a stitch in time saves nine"}] * 2)
    out = tmp_path / "run"
    code, err = run_cli(capsys, "train", "--model", str(corrupt), "--data", str(data), "--eval-data", str(held_out),
                        "--tokens", "2", "--init", "text", "--init-text", "the quick", "--steps", "50",
                        "--batch-size", "2", "--precision", "fp32",
                        "--checkpoint-every", "1", "--eval-every", "0", "--out", str(out), "-q")
    assert code == 3
    line = error_line(err)
    assert "non-finite loss" in line and "stopped" in line and "last good checkpoint kept" in line
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "failed" and 0 < results["steps"] < 50
    assert not (out / "prompt.safetensors").exists()
    events = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert any(e.get("event") == "non_finite_loss" for e in events)
    kept = sorted((out / "checkpoints").glob("step_*.safetensors"))
    assert kept, "the last good checkpoint must be kept"
    from softeval.store import read_checkpoint

    for ckpt in kept:
        tensors, _ = read_checkpoint(ckpt)
        assert all(torch.isfinite(v).all() for k, v in tensors.items() if k.startswith("prompt."))


def test_prompt_against_wrong_model(tmp_path, capsys, tiny_model_dir):
    from conftest import build_tiny_model, build_tiny_tokenizer

    data = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "q", "completion": " the fox"}] * 8)
    out = tmp_path / "run"
    assert main(["train", "--model", str(tiny_model_dir), "--data", str(data), "--tokens", "2", "--steps", "2",
                 "--out", str(out), "-q"]) == 0
    other = tmp_path / "other"
    build_tiny_model(len(build_tiny_tokenizer()), seed=7).save_pretrained(other)
    build_tiny_tokenizer().save_pretrained(other)
    capsys.readouterr()
    code, err = run_cli(capsys, "eval", "--prompt", str(out), "--model", str(other), "--data", str(data))
    assert code == 2
    assert "prompt was trained on model" in error_line(err)


def test_prompt_on_other_data_is_refused(tmp_path, capsys, tiny_model_dir):
    """The task hash covers the data: another JSONL is another task; the same bytes elsewhere are the same one."""
    import shutil

    data = write_jsonl(tmp_path / "a.jsonl", [{"prompt": "q", "completion": " the fox"}] * 8)
    other = write_jsonl(tmp_path / "b.jsonl", [{"prompt": "q", "completion": " the dog"}] * 8)
    out = tmp_path / "run"
    assert main(["train", "--model", str(tiny_model_dir), "--data", str(data), "--tokens", "2", "--steps", "1",
                 "--out", str(out), "-q"]) == 0
    capsys.readouterr()
    code, err = run_cli(capsys, "-q", "eval", "--prompt", str(out), "--model", str(tiny_model_dir), "--data", str(other))
    assert code == 2 and "pass --allow-mismatch" in error_line(err)
    assert main(["-q", "eval", "--prompt", str(out), "--model", str(tiny_model_dir), "--data", str(other),
                 "--allow-mismatch"]) == 0
    moved = tmp_path / "moved" / "renamed.jsonl"
    moved.parent.mkdir()
    shutil.copy(data, moved)
    assert main(["-q", "eval", "--prompt", str(out), "--model", str(tiny_model_dir), "--data", str(moved)]) == 0


def test_existing_run_dir_is_not_overwritten(tmp_path, capsys, tiny_model_dir):
    data = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "q", "completion": " the fox"}] * 8)
    out = tmp_path / "run"
    args = ["train", "--model", str(tiny_model_dir), "--data", str(data), "--tokens", "2", "--steps", "2",
            "--out", str(out), "-q"]
    assert main(args) == 0
    before = (out / "prompt.safetensors").read_bytes()
    capsys.readouterr()
    code, err = run_cli(capsys, *args)
    assert code == 2 and "already holds a run" in error_line(err)
    assert (out / "prompt.safetensors").read_bytes() == before


def test_config_errors_reported_together():
    from softeval.config import build_config
    from softeval.train import TrainConfig

    with pytest.raises(ConfigError) as info:
        build_config(TrainConfig, flags={"num_virtual_tokens": 0, "batch_size": 0, "lr": -1})
    message = str(info.value)
    assert "num_virtual_tokens" in message and "batch_size" in message and "lr" in message
