"""User mistakes get a one-line error and a non-zero exit, never a traceback; results are kept."""

from __future__ import annotations

import json
from pathlib import Path

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


def test_non_finite_gradient_from_a_zero_prompt_stops_with_a_hint(tmp_path, capsys):
    """A prompt of exact zeros stays zero through a bias-free model, and every RMSNorm scales its gradient by
    1/sqrt(eps); a tiny eps makes that overflow in a 2-layer model as 30 layers do in SmolLM2. The lane must
    stop before the update (no NaN prompt is saved) and say which init to use."""
    from conftest import build_tiny_model, build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    model = build_tiny_model(len(tok), rms_norm_eps=1e-30)
    folder = tmp_path / "tiny-eps"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": f"the quick brown fox number {i}"} for i in range(8)])
    out = tmp_path / "run"
    code, err = run_cli(capsys, "train", "--model", str(folder), "--data", str(data), "--tokens", "2",
                        "--init", "zeros", "--steps", "5", "--precision", "fp32", "--out", str(out), "-q")
    assert code == 3
    line = error_line(err)
    assert "non-finite gradient" in line and "--init random" in line
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "failed" and results["steps"] == 0
    events = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert any(e.get("event") == "non_finite_gradient" for e in events)


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


def _train_jsonl(tmp_path, tiny_model_dir, data) -> Path:
    out = tmp_path / "run"
    assert main(["train", "--model", str(tiny_model_dir), "--data", str(data), "--tokens", "2", "--steps", "1",
                 "--out", str(out), "-q"]) == 0
    return out


def test_held_out_data_of_the_same_task_kind_is_scored_and_both_data_hashes_recorded(tmp_path, capsys,
                                                                                     tiny_model_dir):
    """Issue 29 #18: `train --data train.jsonl && eval --prompt RUN --data heldout.jsonl` is the ordinary held-out
    measurement. It runs, says so in one stderr line, and the output names the data trained on and scored."""
    import hashlib
    import shutil

    data = write_jsonl(tmp_path / "train.jsonl", [{"prompt": "q", "completion": " the fox"}] * 8)
    held_out = write_jsonl(tmp_path / "heldout.jsonl", [{"prompt": "z", "completion": " the dog"}] * 4)
    out = _train_jsonl(tmp_path, tiny_model_dir, data)
    capsys.readouterr()
    code = main(["-q", "eval", "--prompt", str(out), "--model", str(tiny_model_dir), "--data", str(held_out),
                 "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    def sha(path: Path) -> str:  # an independent hash of each file
        return hashlib.sha256(path.read_bytes()).hexdigest()

    doc = json.loads(captured.out)
    assert doc["data_sha256"] == {"trained": {"data": sha(data)}, "scored": {"data": sha(held_out)}}
    assert doc["num_examples"] == 4  # the whole held-out file
    said = [line for line in captured.err.splitlines() if line.strip()]
    assert len(said) == 1 and "other data than the prompt was trained on" in said[0], captured.err
    assert sha(data)[:12] in said[0] and sha(held_out)[:12] in said[0]
    # The same bytes under another name are the data it was trained on: nothing to say.
    moved = tmp_path / "moved" / "renamed.jsonl"
    moved.parent.mkdir()
    shutil.copy(data, moved)
    assert main(["-q", "eval", "--prompt", str(out), "--model", str(tiny_model_dir), "--data", str(moved)]) == 0
    assert "other data" not in capsys.readouterr().err


@pytest.mark.parametrize("change", [["--task", "repetition"], ["task.max_length=7"]],
                         ids=["another-task-kind", "another-format-setting"])
def test_another_task_kind_or_format_setting_is_still_refused(tmp_path, capsys, tiny_model_dir, change):
    data = write_jsonl(tmp_path / "train.jsonl", [{"prompt": "q", "completion": " the fox"}] * 8)
    out = _train_jsonl(tmp_path, tiny_model_dir, data)
    capsys.readouterr()
    code, err = run_cli(capsys, "-q", "eval", "--prompt", str(out), "--model", str(tiny_model_dir), *change)
    assert code == 2 and "pass --allow-mismatch" in error_line(err)
    assert main(["-q", "eval", "--prompt", str(out), "--model", str(tiny_model_dir), *change,
                 "--allow-mismatch"]) == 0


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


# --- issue 29 #14: each of these was a traceback -------------------------------------------------------------


@pytest.fixture(scope="module")
def peft_run(tiny_model_dir, tmp_path_factory) -> Path:
    """A finished run whose prompt PEFT can hold (before BOS), and its exported adapter beside it."""
    from softeval.engine.peft_io import export_peft

    root = tmp_path_factory.mktemp("peft_run")
    assert main(["-q", "train", "--model", str(tiny_model_dir), "--task", "repetition", "--repeat-text", " hello",
                 "task.num_train=8", "task.num_eval=2", "task.context_tokens=8", "task.target_tokens=4",
                 "--tokens", "2", "--steps", "1", "--placement", "before_bos", "--out", str(root / "run")]) == 0
    export_peft(root / "run" / "prompt.safetensors", root / "adapter")
    return root


def test_eval_config_naming_the_task_as_a_string_is_one_line_error(tmp_path, capsys, tiny_model_dir):
    """`task: repetition` in an eval --config was an AttributeError."""
    config = tmp_path / "c.yaml"
    config.write_text("task: repetition\n")
    code, err = run_cli(capsys, "-q", "eval", "--config", str(config), "--prompt", "none", "--model",
                        str(tiny_model_dir))
    assert code == 2
    assert "config key 'task' expects a mapping, e.g. 'task: {name: repetition}'" in error_line(err)


def test_import_peft_without_model_on_corrupt_softeval_metadata_is_one_line_error(tmp_path, capsys, peft_run,
                                                                                   tiny_model_dir):
    """Without --model the adapter's own record names the model; a corrupt record was a JSONDecodeError."""
    import shutil

    adapter = tmp_path / "adapter"
    shutil.copytree(peft_run / "adapter", adapter)
    for corrupt in ("{not json", "[1, 2]", '{"model_name": 7}'):
        (adapter / "softeval_metadata.json").write_text(corrupt)
        code, err = run_cli(capsys, "-q", "import-peft", str(adapter), "--out", str(tmp_path / "p.safetensors"))
        assert code == 2, corrupt
        assert "softeval_metadata.json" in error_line(err) and "--model" in error_line(err), corrupt
    # --model names the model, so the record is not needed.
    assert main(["-q", "import-peft", str(adapter), "--model", str(tiny_model_dir),
                 "--out", str(tmp_path / "p.safetensors")]) == 0


def _strip_hidden_size(src: Path, dst: Path) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(src), framework="pt") as f:
        tensors, meta = {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())
    del meta["hidden_size"]
    save_file(tensors, str(dst), metadata=meta)


@pytest.mark.parametrize("what", ["results-array", "adapter-config-array", "adapter-metadata-without-hidden-size",
                                  "prompt-without-hidden-size"])
def test_show_on_a_damaged_file_is_one_line_error(tmp_path, capsys, peft_run, what):
    import shutil

    shutil.copytree(peft_run, tmp_path / "in")
    run, adapter = tmp_path / "in" / "run", tmp_path / "in" / "adapter"
    if what == "results-array":
        (run / "results.json").write_text("[1, 2]")
        target, expected = run, "results.json holds a JSON array"
    elif what == "adapter-config-array":
        (adapter / "adapter_config.json").write_text("[1, 2]")
        target, expected = adapter, "adapter_config.json holds a JSON array"
    elif what == "adapter-metadata-without-hidden-size":
        meta = json.loads((adapter / "softeval_metadata.json").read_text())
        del meta["hidden_size"]
        (adapter / "softeval_metadata.json").write_text(json.dumps(meta))
        target, expected = adapter, "softeval_metadata.json: prompt metadata lacks hidden_size"
    else:
        target, expected = tmp_path / "p.safetensors", "p.safetensors: prompt metadata lacks hidden_size"
        _strip_hidden_size(run / "prompt.safetensors", target)
    code, err = run_cli(capsys, "show", str(target))
    assert code == 2
    assert expected in error_line(err)


def test_stability_over_a_folder_with_a_non_object_results_json_is_one_line_error(tmp_path, capsys):
    point = tmp_path / "grid" / "lr0.1_bs4"
    point.mkdir(parents=True)
    (point / "results.json").write_text("[1, 2]")
    code, err = run_cli(capsys, "stability", "--out", str(tmp_path / "grid"), "--no-report")
    assert code == 2
    assert "lr0.1_bs4/results.json is not a sweep's results" in error_line(err)
