"""Interop through the CLI on the tiny model: PEFT round trip both ways, one task grammar for train and eval,
prompt cards, and `softeval show`."""

from __future__ import annotations

import json
import shlex

import pytest
import torch

from softeval.cli import main
from tests.conftest import build_tiny_model, build_tiny_tokenizer, write_jsonl

RECORDS = [{"prompt": f"the {w} fox", "completion": " jumps over the lazy dog."}
           for w in ["quick", "brown", "lazy", "early", "red", "old"] * 4]


@pytest.fixture(scope="module")
def tiny_nobos_dir(tmp_path_factory):
    """The tiny llama with a tokenizer that adds no BOS (as SmolLM2's)."""
    path = tmp_path_factory.mktemp("tiny-nobos")
    tok = build_tiny_tokenizer(with_bos=False)
    build_tiny_model(len(tok)).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _train(model_dir, data, out, *extra):
    args = ["-q", "train", "--model", str(model_dir), "--device", "cpu", "--precision", "fp32", "--data", str(data),
            "--tokens", "4", "--steps", "6", "--batch-size", "4", "--lr", "0.05", "--eval-every", "0",
            "--eval-fraction", "0.25", "--out", str(out), *extra]
    assert main(args) == 0
    return out


def _eval(capsys, *args) -> dict:
    capsys.readouterr()
    assert main(["-q", "eval", "--device", "cpu", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _peft_loss(model_dir, adapter, examples, bos_id) -> float:
    """Token-weighted mean loss of `examples` under PEFT (its own layout: virtual tokens first)."""
    peft = pytest.importorskip("peft")
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model = peft.PeftModel.from_pretrained(base, str(adapter)).eval()
    total, count = 0.0, 0
    for ex in examples:
        ids = ([bos_id] if bos_id is not None else []) + ex.input_ids
        labels = ([-100] if bos_id is not None else []) + ex.labels
        n = sum(1 for t in labels[1:] if t != -100)  # HF shifts: position i predicts labels[i]
        with torch.no_grad():
            loss = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss.item()
        total, count = total + loss * n, count + n
    return total / count


def _held_out(model_dir, run_dir):
    from softeval.config import instantiate, merge_into
    from softeval.engine.models import load_model
    from softeval.tasks import TaskConfig, build_task

    lm = load_model(str(model_dir), "cpu", "float32", show_progress=False)
    cfg = json.loads((run_dir / "config.json").read_text())["task"]
    return build_task(instantiate(TaskConfig, merge_into(TaskConfig, {}, cfg)), lm.tokenizer).eval, lm.info.bos_token_id


def test_after_bos_export_refused_with_exact_command_then_round_trip(tmp_path, tiny_model_dir, capsys):
    """Tiny model adds BOS: an after_bos prompt is refused with a command; that command trains one that
    exports, scores the same in PEFT, and imports back into a prompt `eval` uses without --allow-mismatch."""
    data = write_jsonl(tmp_path / "d.jsonl", RECORDS)
    run = _train(tiny_model_dir, data, tmp_path / "run")
    capsys.readouterr()
    assert main(["-q", "export-peft", "--prompt", str(run), "--device", "cpu", "--out", str(tmp_path / "a0")]) == 2
    err = capsys.readouterr().err
    assert "PEFT puts virtual tokens before BOS" in err and not (tmp_path / "a0").exists()
    command = err.split("prompt with: ")[1].strip()
    words = shlex.split(command)
    assert words[:2] == ["softeval", "train"] and "--placement" in words
    assert main(["-q", *words[1:]]) == 0  # the command as printed trains a PEFT-compatible prompt
    retrained = tmp_path / "run-before_bos"
    assert json.loads((retrained / "config.json").read_text())["prompt"]["placement"] == "before_bos"

    adapter = tmp_path / "adapter"
    assert main(["-q", "export-peft", "--prompt", str(retrained), "--device", "cpu", "--out", str(adapter)]) == 0
    ours = _eval(capsys, "--prompt", str(retrained))
    examples, bos = _held_out(tiny_model_dir, retrained)
    assert ours["num_examples"] == len(examples)
    assert _peft_loss(tiny_model_dir, adapter, examples, bos) == pytest.approx(ours["loss"], abs=1e-4)

    imported = tmp_path / "imported.safetensors"
    assert main(["-q", "import-peft", str(adapter), "--device", "cpu", "--out", str(imported)]) == 0
    assert "task: any, source: PEFT adapter" in capsys.readouterr().out
    again = _eval(capsys, "--prompt", str(imported), "--config", str(retrained / "config.json"))
    assert again["loss"] == pytest.approx(ours["loss"], abs=1e-6)
    assert again["prompt_task"] == "any"
    # generate takes it too, and says where it came from
    assert main(["-q", "generate", "--prompt", str(imported), "--device", "cpu", "--text", "the quick fox",
                 "--max-new-tokens", "2"]) == 0
    assert "task any, source: PEFT adapter" in capsys.readouterr().err


def test_imported_adapter_needs_a_task_to_eval(tmp_path, tiny_model_dir, capsys):
    data = write_jsonl(tmp_path / "d.jsonl", RECORDS)
    run = _train(tiny_model_dir, data, tmp_path / "run", "--placement", "before_bos")
    assert main(["-q", "export-peft", "--prompt", str(run), "--device", "cpu", "--out", str(tmp_path / "a")]) == 0
    imported = tmp_path / "i.safetensors"
    assert main(["-q", "import-peft", str(tmp_path / "a"), "--device", "cpu", "--out", str(imported)]) == 0
    capsys.readouterr()
    assert main(["-q", "eval", "--prompt", str(imported), "--device", "cpu"]) == 2
    assert "has no softeval task" in capsys.readouterr().err
    # on another task than the one it was trained for: no refusal either
    assert main(["-q", "eval", "--prompt", str(imported), "--device", "cpu", "--task", "repetition",
                 "--repeat-text", " fox", "task.num_eval=2", "task.context_tokens=4", "task.target_tokens=4"]) == 0


def test_after_bos_exports_faithfully_when_the_tokenizer_adds_no_bos(tmp_path, tiny_nobos_dir, capsys):
    data = write_jsonl(tmp_path / "d.jsonl", RECORDS)
    run = _train(tiny_nobos_dir, data, tmp_path / "run")  # default placement after_bos
    adapter = tmp_path / "adapter"
    assert main(["-q", "export-peft", "--prompt", str(run), "--device", "cpu", "--out", str(adapter)]) == 0
    assert "adds no BOS" in (adapter / "README.md").read_text()
    ours = _eval(capsys, "--prompt", str(run))
    examples, bos = _held_out(tiny_nobos_dir, run)
    assert bos is None
    assert _peft_loss(tiny_nobos_dir, adapter, examples, bos) == pytest.approx(ours["loss"], abs=1e-4)


def test_eval_takes_train_task_grammar(tmp_path, tiny_model_dir, capsys):
    """The same task written the same way in train and eval: flags, --config, KEY=VALUE overrides."""
    data = write_jsonl(tmp_path / "d.jsonl", RECORDS)
    run = _train(tiny_model_dir, data, tmp_path / "run")
    default = _eval(capsys, "--prompt", str(run))  # the run's own task, held-out split
    assert default["num_examples"] == 6
    two = _eval(capsys, "--prompt", str(run), "task.num_eval=2")
    assert two["num_examples"] == 2
    assert two["loss"] == pytest.approx(_eval(capsys, "--prompt", str(run), "--num-eval", "2")["loss"], abs=0)
    cfg = tmp_path / "task.yaml"
    cfg.write_text(f"task:\n  name: jsonl\n  data: {data}\n  num_eval: 3\n  eval_fraction: 0.25\nlr: 0.05\n")
    assert _eval(capsys, "--prompt", str(run), "--config", str(cfg))["num_examples"] == 3
    # a file the user names is scored whole
    assert _eval(capsys, "--prompt", str(run), "--data", str(data))["num_examples"] == len(RECORDS)
    # train's own overrides are accepted; a typo is refused with a suggestion, as in train
    assert main(["-q", "eval", "--prompt", str(run), "--device", "cpu", "task.num_eval=2", "lr=0.05"]) == 0
    capsys.readouterr()
    assert main(["-q", "eval", "--prompt", str(run), "--device", "cpu", "task.num_evl=2"]) == 2
    assert "Did you mean 'num_eval'" in capsys.readouterr().err


def test_prompt_card_and_show(tmp_path, tiny_model_dir, capsys):
    from safetensors import safe_open

    from softeval.store import hash_file

    data = write_jsonl(tmp_path / "d.jsonl", RECORDS)
    run = _train(tiny_model_dir, data, tmp_path / "run", "--placement", "before_bos")
    results = json.loads((run / "results.json").read_text())
    with safe_open(str(run / "prompt.safetensors"), framework="pt") as f:
        card = f.metadata()["card"]
    assert f"loss {results['final_eval']['loss']:.4f}" in card
    assert f"task.data sha256 {hash_file(data)[:16]}" in card
    assert "4 vectors" in card and "6 steps" in card and "placement before_bos" in card
    # the card says how the held-out loss was scored, and eval reproduces it that way
    assert "(fp32 autocast)" in card
    again = _eval(capsys, "--prompt", str(run), "--precision", "fp32")
    assert again["loss"] == pytest.approx(results["final_eval"]["loss"], abs=1e-6)

    capsys.readouterr()
    assert main(["show", str(run), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["kind"] == "run" and shown["steps"] == 6 and shown["num_virtual_tokens"] == 4
    assert shown["final_eval"]["loss"] == results["final_eval"]["loss"]
    assert shown["identity"]["data_sha256"] == {"task.data": hash_file(data)}
    assert main(["show", str(run / "prompt.safetensors")]) == 0
    assert "softeval prompt card" in capsys.readouterr().out
    adapter = tmp_path / "adapter"
    assert main(["-q", "export-peft", "--prompt", str(run), "--device", "cpu", "--out", str(adapter)]) == 0
    capsys.readouterr()
    assert main(["show", str(adapter)]) == 0
    text = capsys.readouterr().out
    assert "peft-adapter" in text and f"loss {results['final_eval']['loss']:.4f}" in text
    assert main(["show", str(tmp_path)]) == 2


@pytest.mark.parametrize("command", ["train", "eval", "generate", "export-peft", "import-peft", "show"])
def test_help_shows_an_example(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and f"softeval {command}" in out
