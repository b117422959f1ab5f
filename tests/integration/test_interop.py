"""Interop as users do it, through the real CLIs on the embedded SmolLM2 (its tokenizer adds no BOS):

  * train → export-peft → PEFT loads it with the same loss (1e-4) → import-peft → `softeval eval` same loss,
    with no --allow-mismatch; `softeval show` on each artefact;
  * a prompt a `bench` soft run saved, scored by `softeval-lm-eval` on the same task config and items,
    gives bench's own numbers (and so does its PEFT export, imported back).
"""

from __future__ import annotations

import glob
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.integration
MODEL = "smollm2-135m-instruct"
CAPITALS = [("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Germany", "Berlin"), ("Japan", "Tokyo"),
            ("Egypt", "Cairo"), ("Canada", "Ottawa"), ("Kenya", "Nairobi"), ("Peru", "Lima"), ("Norway", "Oslo"),
            ("Chile", "Santiago"), ("Greece", "Athens"), ("Brazil", "Brasilia"), ("India", "Delhi"),
            ("China", "Beijing"), ("Russia", "Moscow")]


def softeval(*args):
    r = subprocess.run([sys.executable, "-c", "from softeval.cli import run_main; run_main()", *args],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def lm_eval_cli(*args):
    """`softeval-lm-eval` exactly as its console script runs it."""
    r = subprocess.run([sys.executable, "-c", "from softeval.bench.lm_adapter import lm_eval_main; lm_eval_main()",
                        *args], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_peft_round_trip_through_the_cli(tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from softeval.config import instantiate, merge_into
    from softeval.engine.models import load_model, resolve_reference
    from softeval.tasks import TaskConfig, build_task

    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Country: {c}\nCapital:", "completion": f" {k}"}) + "\n"
                            for c, k in CAPITALS))
    run = tmp_path / "run"
    softeval("-q", "train", "--data", str(data), "--tokens", "4", "--steps", "15", "--batch-size", "4",
             "--eval-every", "0", "--eval-fraction", "0.25", "--device", "cpu", "--precision", "fp32", "--out", str(run))
    ours = json.loads(softeval("-q", "eval", "--prompt", str(run), "--device", "cpu", "--json").stdout)

    # export with the default placement (after_bos): faithful on SmolLM2, whose tokenizer adds no BOS
    adapter = tmp_path / "adapter"
    exp = softeval("-q", "export-peft", "--prompt", str(run), "--device", "cpu", "--out", str(adapter))
    assert "softeval prompt card" in exp.stdout
    lm = load_model(MODEL, "cpu", "float32", show_progress=False)
    assert lm.info.bos_token_id is None
    task_cfg = json.loads((run / "config.json").read_text())["task"]
    held_out = build_task(instantiate(TaskConfig, merge_into(TaskConfig, {}, task_cfg)), lm.tokenizer).eval
    assert ours["num_examples"] == len(held_out)
    base = AutoModelForCausalLM.from_pretrained(resolve_reference(MODEL)[1], dtype=torch.float32)
    peft_model = PeftModel.from_pretrained(base, str(adapter)).eval()
    total, count = 0.0, 0
    for ex in held_out:
        n = sum(1 for t in ex.labels[1:] if t != -100)
        with torch.no_grad():
            loss = peft_model(input_ids=torch.tensor([ex.input_ids]), labels=torch.tensor([ex.labels])).loss.item()
        total, count = total + loss * n, count + n
    # Same loss up to fp32 reduction order: our eval runs batched in a subprocess, PEFT one example at a time in
    # this process (whose thread count earlier tests may have changed). On the 30-layer SmolLM2 that order moved
    # the loss by 1.3e-4 (0.02 %) in one full-suite run; a misplaced prompt moves it by far more than 0.1 %.
    assert total / count == pytest.approx(ours["loss"], rel=1e-3)

    # import back: usable on the task without --allow-mismatch, and says where it came from
    imported = tmp_path / "imported.safetensors"
    imp = softeval("-q", "import-peft", str(adapter), "--device", "cpu", "--out", str(imported))
    assert "task: any, source: PEFT adapter" in imp.stdout
    back = softeval("-q", "eval", "--prompt", str(imported), "--config", str(run / "config.json"), "--device", "cpu",
                    "--json")
    assert "task any, source: PEFT adapter" in back.stderr
    assert json.loads(back.stdout)["loss"] == pytest.approx(ours["loss"], abs=1e-6)
    gen_ours = softeval("-q", "generate", "--prompt", str(run), "--text", "Country: Italy\nCapital:",
                        "--max-new-tokens", "3", "--device", "cpu").stdout
    gen_back = softeval("-q", "generate", "--prompt", str(imported), "--text", "Country: Italy\nCapital:",
                        "--max-new-tokens", "3", "--device", "cpu").stdout
    assert gen_back == gen_ours

    # show: the run, the adapter and the imported file, from their files alone
    shown = json.loads(softeval("show", str(run), "--json").stdout)
    assert (shown["model"], shown["steps"], shown["num_virtual_tokens"]) == (MODEL, 15, 4)
    assert shown["identity"]["model_sha256"] == lm.info.weights_sha256
    assert "peft-adapter" in softeval("show", str(adapter)).stdout
    assert json.loads(softeval("show", str(imported), "--json").stdout)["task"] == "any"


def _capitals_task(folder: Path) -> Path:
    """A folder with a small lm-eval task YAML (multiple choice over local JSONL files)."""
    cities = [c for _, c in CAPITALS]

    def item(i):
        country, city = CAPITALS[i]
        others = [c for c in cities if c != city]
        options = [others[i % 5], city, others[(i + 3) % 7 + 5]] if i % 2 else [city, others[i % 5], others[i % 7]]
        return {"country": country, "options": options, "gold": options.index(city)}

    folder.mkdir()
    (folder / "train.jsonl").write_text("".join(json.dumps(item(i)) + "\n" for i in range(10)))
    (folder / "test.jsonl").write_text("".join(json.dumps(item(i)) + "\n" for i in range(10, 16)))
    path = folder / "capitals.yaml"
    path.write_text(f"""task: capitals
dataset_path: json
dataset_kwargs:
  data_files:
    train: {folder / 'train.jsonl'}
    test: {folder / 'test.jsonl'}
output_type: multiple_choice
training_split: train
test_split: test
doc_to_text: "Question: What is the capital of {{{{country}}}}?\\nAnswer:"
doc_to_choice: "{{{{options}}}}"
doc_to_target: gold
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
""")
    return folder


def _lm_eval_with_prompt(prompt: Path, tasks: Path, out: Path) -> tuple[float, list[list[float]]]:
    lm_eval_cli("--model", "softeval", "--model_args", f"model={MODEL},prompt={prompt}", "--device", "cpu",
                "--tasks", "capitals", "--include_path", str(tasks), "--limit", "4", "--output_path", str(out),
                "--log_samples")
    result = json.loads(Path(glob.glob(str(out / "**" / "results_*.json"), recursive=True)[0]).read_text())
    samples = [json.loads(line) for line in
               Path(glob.glob(str(out / "**" / "samples_capitals_*.jsonl"), recursive=True)[0]).read_text().splitlines()]
    lls = [[float(r[0]) for r in s["filtered_resps"]] for s in sorted(samples, key=lambda s: s["doc_id"])]
    assert str(prompt) in json.dumps(result["config"]["model_args"])
    return result["results"]["capitals"]["acc,none"], lls


def test_lm_eval_with_a_saved_prompt_matches_bench(tmp_path):
    tasks = _capitals_task(tmp_path / "tasks")
    bench = tmp_path / "bench"
    softeval("-q", "bench", "--model", MODEL, "--task", str(tasks / "capitals.yaml"), "--modes", "zero,soft",
             "--steps", "3", "--curve-steps", "", "--batch-size", "4", "--limit", "4", "--device", "cpu",
             "--out", str(bench))
    unit = json.loads((bench / "units" / MODEL / "capitals" / "soft.json").read_text())
    prompt = Path(unit["prompt"])
    samples = bench / "samples" / MODEL / "capitals"
    bench_soft = [json.loads(line)["loglikelihoods"] for line in (samples / "soft_ll_cloze.jsonl").read_text().splitlines()]
    bench_zero = [json.loads(line)["loglikelihoods"] for line in (samples / "zero_ll_cloze.jsonl").read_text().splitlines()]

    acc, lls = _lm_eval_with_prompt(prompt, tasks, tmp_path / "lm_eval")
    assert acc == unit["lm_eval"]["ll_cloze"]["acc,none"]
    assert len(lls) == len(bench_soft) == 4
    assert max(abs(a - b) for x, y in zip(lls, bench_soft) for a, b in zip(x, y)) < 1e-4
    assert max(abs(a - b) for x, y in zip(lls, bench_zero) for a, b in zip(x, y)) > 1e-2  # the prompt was used

    # the same prompt through PEFT's format and back is scored the same inside lm-eval
    softeval("-q", "export-peft", "--prompt", str(prompt), "--device", "cpu", "--out", str(tmp_path / "adapter"))
    imported = tmp_path / "imported.safetensors"
    softeval("-q", "import-peft", str(tmp_path / "adapter"), "--device", "cpu", "--out", str(imported))
    _, lls_back = _lm_eval_with_prompt(imported, tasks, tmp_path / "lm_eval_imported")
    assert max(abs(a - b) for x, y in zip(lls_back, lls) for a, b in zip(x, y)) < 1e-6

    shown = json.loads(softeval("show", str(bench), "--json").stdout)
    assert shown["kind"] == "bench" and shown["results"][MODEL]["capitals"]["soft"]["steps"] == 3
    assert shown["prompts"] == {f"{MODEL}/capitals": str(prompt)}
