"""bench on the real embedded SmolLM2: HF parity, the CLI end to end on a tiny setting, resume, bad input,
and the offline task configs on the shared data (skipped when that folder is absent)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA, write_jsonl

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DATA = next((p for p in [SHARED_DATA] + [q / "shared" / "data" for q in Path(__file__).resolve().parents]
             if p.is_dir()), None)
needs_data = pytest.mark.skipif(DATA is None, reason="shared data folder not present")
MODEL = "smollm2-135m-instruct"


def softeval(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-c", "from softeval.cli import run_main; run_main()", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=900)


@needs_data
def test_parity_with_lm_eval_hf(tmp_path):
    out = tmp_path / "parity.json"
    r = subprocess.run([sys.executable, "benchmarks/bench_parity.py", "--data-dir", str(DATA), "--limit", "8",
                        "--out", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert summary["lm_eval_hf_acc"] == summary["softeval_acc"]
    assert summary["max_abs_loglikelihood_diff"] < 1e-3


@needs_data
def test_offline_configs_read_original_layouts():
    from softeval.bench import harness
    from softeval.bench.tasks import resolve_task

    sizes = {"arc_easy": ("test", 2376), "arc_challenge": ("test", 1172), "gsm8k": ("test", 1319),
             "commonsense_qa": ("validation", 1221), "mmlu": ("test", 14042)}
    for name, (split, size) in sizes.items():
        bench_task = resolve_task(name, DATA)
        for form, conf in bench_task.configs.items():  # the generative form and both ll forms, same items
            task = harness.build_lm_eval_task(conf)
            assert (harness.eval_split(task), len(harness.eval_docs(task))) == (split, size), (name, form)
            if form != "gen":
                assert "ll_" + harness.ll_formulation(task) == form, (name, form)
    gen = harness.build_lm_eval_task(resolve_task("arc_easy", DATA).configs["gen"])
    docs = harness.eval_docs(gen)
    assert all(d["softeval_gold"] in d["softeval_labels"] and set(d["softeval_labels"]) <= set("ABCDE") for d in docs)


def _quiz(tmp_path) -> Path:
    capitals = [("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Germany", "Berlin"),
                ("Japan", "Tokyo"), ("Egypt", "Cairo"), ("Canada", "Ottawa"), ("Kenya", "Nairobi"),
                ("Peru", "Lima"), ("Norway", "Oslo"), ("Chile", "Santiago"), ("Greece", "Athens")]
    cities = [c for _, c in capitals]

    def item(i):
        country, city = capitals[i]
        options = [city] + [c for c in cities if c != city][i % 3: i % 3 + 2]
        return {"q": f"What is the capital of {country}?", "options": options, "gold": city}

    write_jsonl(tmp_path / "train.jsonl", [item(i) for i in range(8)])
    write_jsonl(tmp_path / "test.jsonl", [item(i) for i in range(8, 12)] + [{"q": "No gold?", "options": ["a", "b"]}])
    spec = tmp_path / "quiz.yaml"
    spec.write_text("task: quiz\nkind: multiple_choice\nfiles: {train: train.jsonl, test: test.jsonl}\n"
                    "fields: {question: q, choices: options, answer: gold}\n")
    return spec


@needs_data
def test_letters_and_cloze_on_the_built_in_tasks(tmp_path):
    """SmolLM2 on 8 items of ARC-Easy, MMLU and CommonsenseQA: every task scores generated letters, likelihood
    letters and cloze on the same items; the form that is lm-eval's own task gives lm-eval's own acc; the
    best formulation is the largest of the three and every ranking names its formulation."""
    out = tmp_path / "bench"
    r = softeval("-q", "bench", "--model", MODEL, "--task", "arc_easy,mmlu,commonsense_qa", "--data-dir", str(DATA),
                 "--modes", "zero", "--limit", "8", "--max-gen-toks", "4", "--device", "cpu", "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads((out / "results.json").read_text())
    for task, native in [("arc_easy", "ll_cloze"), ("mmlu", "ll_letters"), ("commonsense_qa", "ll_letters")]:
        m = doc["results"][MODEL][task]["zero"]
        assert m["format_rate_n"] == m["ll_letters_acc_n"] == m["ll_cloze_acc_n"] == 8, task
        assert doc["data"][task]["lm_eval_form"] == native
        assert m[f"{native}_acc"] == m["lm_eval"][native]["acc,none"]
        accs = [m["strict_acc"], m["ll_letters_acc"], m["ll_cloze_acc"]]
        assert m["best_acc"] == max(accs) and m["best_formulation"] == ["letters", "letters_ll", "cloze"][
            accs.index(max(accs))]
        assert f"ll_cloze_acc {100 * m['ll_cloze_acc']:.1f}" in r.stdout


def test_cli_end_to_end_and_resume(tmp_path):
    spec = _quiz(tmp_path)
    out = tmp_path / "bench"
    args = ["-q", "bench", "--model", MODEL, "--task", str(spec), "--steps", "2", "--curve-steps", "0,2,3",
            "--batch-size", "4", "--shots", "2", "--max-gen-toks", "3", "--device", "cpu", "--out", str(out)]
    r = softeval(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads((out / "results.json").read_text())
    res = doc["results"][MODEL]["quiz"]
    assert set(res) == {"zero", "few", "soft", "soft_cloze"}  # the default modes; the spec task is multiple choice
    for name, mode in res.items():
        if name == "soft_cloze":  # a prompt tuned on the cloze rendering, scored in cloze alone
            assert mode["ll_cloze_acc_n"] == 4 and "format_rate" not in mode and mode["best_formulation"] == "cloze"
            continue
        assert 0 <= mode["format_rate"] <= 1
        assert mode["ll_cloze_acc_n"] == mode["ll_letters_acc_n"] == mode["format_rate_n"] == 4
    for tuned in ("soft", "soft_cloze"):
        assert res[tuned]["tuning"]["num_train"] == 6 and res[tuned]["tuning"]["overlap_removed"] == 0
    assert [p["step"] for p in doc["curves"][MODEL]["quiz"]] == [0, 2, 3]
    assert doc["data"]["quiz"]["skipped_no_gold"] == 1
    samples = [json.loads(x) for x in (out / "samples" / MODEL / "quiz" / "soft_gen.jsonl").read_text().splitlines()]
    assert {"output", "parsed_strict", "parsed_lenient", "format_ok", "strict_correct", "lenient_correct"} <= set(samples[0])
    html = (out / "report.html").read_text()
    assert "data:image/png;base64" in html and "<script" not in html
    # re-run: every unit is on disk, nothing is evaluated again
    units = {p: p.stat().st_mtime for p in (out / "units").rglob("*.json")}
    r = softeval(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert units == {p: p.stat().st_mtime for p in (out / "units").rglob("*.json")}
    # ... but other result-changing settings in the same folder are refused, not mixed into one table
    r = softeval(*[a if a != "2" else "5" for a in args])  # --steps 5, --shots 5
    assert r.returncode == 2 and "settings.optim.max_steps: 2 → 5" in r.stderr and "Traceback" not in r.stderr
    # the saved prompt works through lm-eval's interface
    from softeval.bench.lm_adapter import SoftevalLM

    prompt = out / "train" / MODEL / "quiz" / "prompt_step_000002.safetensors"
    adapter = SoftevalLM(model=MODEL, prompt=str(prompt), device="cpu", show_progress=False)
    assert adapter.num_virtual_tokens == 10


def test_bad_input_is_one_line(tmp_path):
    r = softeval("bench", "--task", "arc_eazy", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "Did you mean 'arc_easy'" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "arc" / "ARC-Easy").mkdir(parents=True)
    (tmp_path / "arc" / "ARC-Easy" / "ARC-Easy-Train.jsonl").write_text("")
    r = softeval("bench", "--task", "arc_easy", "--data-dir", str(tmp_path), "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "no test split for arc_easy" in r.stderr
    ref = tmp_path / "ref.csv"
    ref.write_text("model,score\nllama-9000,1\n")
    r = softeval("bench", "--model", MODEL, "--task", str(_quiz(tmp_path)), "--reference", str(ref),
                 "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "names models that were not run: llama-9000" in r.stderr


def test_shipped_bench_configs_validate():
    from softeval.bench.runner import BenchConfig
    from softeval.config import build_config

    for path in sorted((ROOT / "configs").glob("bench_*.yaml")):
        text = path.read_text()
        assert text.startswith("#") and "softeval bench --config" in text, path
        build_config(BenchConfig, str(path))


@needs_data
def test_real_gsm8k_answers_are_cut_by_a_64_token_cap_and_fit_in_256(caplog):
    """GSM8K's worked answers on SmolLM2's tokenizer: most are longer than 64 tokens (the run warns), nearly
    all fit in the task's own 256."""
    import logging

    from softeval.bench import harness
    from softeval.bench.lm_adapter import SoftevalLM
    from softeval.bench.config import BenchConfig
    from softeval.bench.evaluate import gold_over_gen_cap, task_config
    from softeval.bench.tasks import resolve_task
    from softeval.engine.models import load_model

    adapter = SoftevalLM(lm=load_model(MODEL, device="cpu", show_progress=False), show_progress=False)
    task = resolve_task("gsm8k", DATA)
    with caplog.at_level(logging.WARNING, logger="softeval.bench.evaluate"):
        short = gold_over_gen_cap(adapter, harness.build_lm_eval_task(
            task_config(task, "gen", BenchConfig(max_gen_toks=64, num_bootstrap=0))))
    assert short > 0.5 and "longer than the 64 generated tokens" in caplog.text
    roomy = gold_over_gen_cap(adapter, harness.build_lm_eval_task(task_config(task, "gen", BenchConfig(num_bootstrap=0))))
    assert roomy < 0.05
