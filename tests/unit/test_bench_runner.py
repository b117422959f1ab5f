"""`softeval bench` end to end on the tiny in-process model with local spec tasks (no network): the soft
snapshot's independence of the curve, the result-identity check, strict JSON, safe names, quiet runs."""

import json
import logging
import os
import re
from dataclasses import replace

import pytest

from softeval.config import build_config
from softeval.bench.config import BenchConfig
from softeval.bench.runner import run
from softeval.errors import ConfigError

from tests.conftest import write_jsonl


def _quiz(folder, name="quiz", num_train=24):
    folder.mkdir(parents=True, exist_ok=True)
    words = ["red", "blue", "green", "gold", "gray", "pink"]

    def item(i):
        return {"q": f"Which colour is item {i}?", "options": [words[i % 6], words[(i + 1) % 6], words[(i + 2) % 6]],
                "gold": "ABC"[i % 3]}

    write_jsonl(folder / "train.jsonl", [item(i) for i in range(num_train)])
    write_jsonl(folder / "test.jsonl", [item(i) for i in range(100, 103)])
    spec = folder / "quiz.yaml"
    spec.write_text(json.dumps({"task": name, "kind": "multiple_choice",
                                "files": {"train": "train.jsonl", "test": "test.jsonl"},
                                "fields": {"question": "q", "choices": "options", "answer": "gold"}}))
    return spec


def _cfg(model_dir, spec, out, **kw) -> BenchConfig:
    base = dict(models=[str(model_dir)], tasks=[str(spec)], modes=["zero"], forms=["gen"], num_virtual_tokens=2,
                max_steps=4, batch_size=2, lr=0.05, warmup_steps=2, curve_steps=[], shots=1, limit=2, max_gen_toks=2,
                device="cpu", dtype="float32", eval_batch_size=4, num_bootstrap=0, out=str(out),
                show_progress=False)
    return build_config(BenchConfig, flags={**base, **kw})


def _prompt(out, model_dir, task, step):
    from safetensors.torch import load_file

    from softeval.store import safe_name

    path = out / "train" / safe_name(str(model_dir)) / task / f"prompt_step_{step:06d}.safetensors"
    return load_file(str(path))


# --------------------------------------------------------------------------- 1: the soft result and the curve


def test_soft_snapshot_is_independent_of_curve_steps(tiny_model_dir, tmp_path, caplog):
    """The 10-step prompt of a run with curve steps [10, 20] is bit-identical to a plain 10-step run's and to
    the one from another curve ([0, 5, 20]): the tuning data is max_steps × batch, not sized by the curve."""
    spec = _quiz(tmp_path / "quiz", num_train=40)
    snapshots, sizes = {}, {}
    caplog.set_level(logging.INFO, logger="softeval.bench.tuning")
    for curve in ([10], [10, 20], [0, 5, 20]):
        out = tmp_path / f"curve_{'_'.join(map(str, curve))}"
        result = run(_cfg(tiny_model_dir, spec, out, modes=["soft"], max_steps=10, curve_steps=curve))
        snapshots[tuple(curve)] = _prompt(out, tiny_model_dir, "quiz", 10)
        sizes[tuple(curve)] = result.results[str(tiny_model_dir)]["quiz"]["soft"]["tuning"]["num_train"]
    assert set(sizes.values()) == {10 * 2}
    plain = snapshots[(10,)]
    for curve, tensors in snapshots.items():
        assert tensors.keys() == plain.keys()
        for key in plain:
            assert tensors[key].dtype == plain[key].dtype and tensors[key].equal(plain[key]), (curve, key)
    # 15: every snapshot logs its real held-out loss (step 0 was logged as nan), equal to the loss the
    # training loop recorded for the initial prompt
    logged = dict(re.findall(r"prompt_step_(\d+)\.safetensors \(held-out loss (\S+)\)", caplog.text))
    assert "nan" not in logged.values() and "000000" in logged
    run_dir = tmp_path / "curve_0_5_20" / "train"
    metrics = [json.loads(x) for x in next(run_dir.rglob("metrics.jsonl")).read_text().splitlines()]
    assert logged["000000"] == f"{next(m['eval_loss'] for m in metrics if m['step'] == 0):.4f}"


# --------------------------------------------------------------------------- 1: one identity check


def test_reusing_out_with_another_identity_is_refused(tiny_model_dir, tmp_path):
    spec = _quiz(tmp_path / "quiz")
    out = tmp_path / "out"
    cfg = _cfg(tiny_model_dir, spec, out)
    run(cfg)
    unit = out / "units"
    before = {p: p.stat().st_mtime_ns for p in unit.rglob("*.json")}
    # growing a run (modes, curve steps) and moving it (device) is fine; finished units are reused
    run(replace(cfg, modes=["zero", "few"], curve_steps=[0]))
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())
    with pytest.raises(ConfigError, match=r"another identity \(settings.limit: 2 → 3; settings.seed: 0 → 1\)"):
        run(replace(cfg, limit=3, seed=1))
    with pytest.raises(ConfigError, match=r"settings.num_train: 8 → 10"):
        run(replace(cfg, optim=replace(cfg.optim, max_steps=5)))  # the tuning data size follows --steps
    # the same path with other content is another result
    test_file = tmp_path / "quiz" / "test.jsonl"
    test_file.write_text(test_file.read_text().replace("item 100", "item 1000"))
    with pytest.raises(ConfigError, match=r"data.task:quiz:spec.files.test: [0-9a-f]{12}… → [0-9a-f]{12}…"):
        run(cfg)


# --------------------------------------------------------------------------- 11, 15, 16: what a run writes and prints


def _strict_load(text: str):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_run_outputs_are_strict_json_inside_out_and_escaped(tiny_model_dir, tmp_path, monkeypatch, capfd):
    """A task and a model named with '../' and '<script>' stay inside OUT and are escaped in the report;
    every JSON file parses strictly; a run outside a git checkout prints no git 'fatal:'."""
    evil_task = "../../<script>alert(1)</script>"
    spec = _quiz(tmp_path / "quiz", name=evil_task)
    (tmp_path / "models").mkdir()
    os.symlink(tiny_model_dir, tmp_path / "models" / "<script>m")
    model = f"{tmp_path}/models/../models/<script>m"
    cwd = tmp_path / "not_a_checkout"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # /tmp is not inside a git repository
    out = tmp_path / "a" / "b" / "out"
    result = run(_cfg(model, spec, out, modes=["zero", "soft"], max_steps=2, curve_steps=[1]))

    assert "fatal:" not in capfd.readouterr().err
    written = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_relative_to(tmp_path / "quiz")
               and not p.is_relative_to(tmp_path / "models")]
    assert written and all(p.is_relative_to(out) for p in written), [p for p in written if not p.is_relative_to(out)]
    for p in written:
        if p.suffix == ".json":
            _strict_load(p.read_text())
        elif p.suffix == ".jsonl":
            [_strict_load(line) for line in p.read_text().splitlines()]
    report = result.report_path.read_text()
    assert "<script>" not in report and "&lt;script&gt;alert(1)&lt;/script&gt;" in report
    assert "{'softeval'" not in report and "<th>softeval</th>" in report  # versions as a table, not a repr
    doc = _strict_load((out / "results.json").read_text())
    assert evil_task in doc["results"][model]


def test_names_that_share_a_folder_are_refused(tiny_model_dir, tmp_path):
    a, b = _quiz(tmp_path / "a", name="my/quiz"), _quiz(tmp_path / "b", name="my_quiz")
    with pytest.raises(ConfigError, match="task names 'my/quiz' and 'my_quiz' map to the same folder 'my_quiz'"):
        run(_cfg(tiny_model_dir, a, tmp_path / "out", tasks=[str(a), str(b)]))


def test_undefined_metrics_are_none_not_nan():
    """No format-following output: acc_given_format has no value. It is None (JSON null), never NaN."""
    from softeval.bench.scoring import aggregate

    gen = [{"format_ok": False, "strict_correct": False, "lenient_correct": c} for c in (True, False)]
    m = aggregate({"gen": gen, "ll_cloze": [{"ll_correct": True}]})
    assert (m["acc_given_format"], m["acc_given_format_stderr"], m["acc_given_format_n"]) == (None, None, 0)
    assert (m["lenient_acc"], m["lenient_acc_stderr"]) == (0.5, 0.5)
    assert (m["ll_cloze_acc"], m["ll_cloze_acc_stderr"]) == (1.0, None)  # one item: no spread to estimate
    _strict_load(json.dumps(m))


def test_a_summary_written_while_a_run_is_going_does_not_leave_config_and_results_disagreeing(
        tiny_model_dir, tmp_path, monkeypatch):
    """`softeval bench --model A` over the finished model rewrites config.json while the two-model run is still
    going; that run's save writes config.json again, so it and results.json describe the same run."""
    import shutil

    from softeval.bench import runner

    other = tmp_path / "other-model"
    shutil.copytree(tiny_model_dir, other)
    spec = _quiz(tmp_path / "quiz")
    both = _cfg(tiny_model_dir, spec, tmp_path / "out", models=[str(tiny_model_dir), str(other)])
    collect = runner.collect_results

    def summary_meanwhile(out, cfg, tasks):  # the one-model summary lands between the run's start and its save
        monkeypatch.setattr(runner, "collect_results", collect)
        run(replace(both, models=[str(tiny_model_dir)]))
        return collect(out, cfg, tasks)

    monkeypatch.setattr(runner, "collect_results", summary_meanwhile)
    run(both)
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["models"] == [str(tiny_model_dir), str(other)]
    assert config == json.loads((tmp_path / "out" / "results.json").read_text())["config"]


def test_a_cap_that_cuts_the_gold_answers_is_stored_and_shown_in_the_report(tiny_model_dir, tmp_path):
    """GSM8K-style worked answers against a 3-token cap: the share of cut gold answers lands in results.json
    and the report warns; the ARC-style quiz (one-letter answers) under the same cap gets no warning."""
    (tmp_path / "data" / "gsm8k").mkdir(parents=True)
    rows = [{"question": f"What is {i} plus {i}?", "answer": f"{i} plus {i} makes {2 * i} in all\n#### {2 * i}"}
            for i in range(8)]
    for split in ("train", "test"):
        write_jsonl(tmp_path / "data" / "gsm8k" / f"{split}.jsonl", rows)
    out = tmp_path / "out"
    result = run(_cfg(tiny_model_dir, "gsm8k", out, data_dir=str(tmp_path / "data"), max_gen_toks=3, modes=["zero"]))
    assert result.results[str(tiny_model_dir)]["gsm8k"]["zero"]["gold_over_gen_cap"] == 1.0
    assert "Generation cap too short" in (out / "report.html").read_text()
    quiz = run(_cfg(tiny_model_dir, _quiz(tmp_path / "quiz"), tmp_path / "quiz_out", max_gen_toks=3))
    assert quiz.results[str(tiny_model_dir)]["quiz"]["zero"]["gold_over_gen_cap"] <= 0.05   # measured, and small
    assert "Generation cap too short" not in (tmp_path / "quiz_out" / "report.html").read_text()


def test_a_prompt_tuned_for_gsm8k_learns_to_write_its_stop_string(tiny_model_dir, tmp_path):
    """GSM8K stops at "Question:", not at its few-shot delimiter (worked answers hold newlines), so its tuning
    targets end as the next few-shot example would begin; letter tasks, whose delimiter already stops generation,
    keep their targets and their result identity."""
    from softeval.bench.lm_adapter import SoftevalLM
    from softeval.bench.prepare import prepare_tasks
    from softeval.bench.tuning import stop_suffix, tuning_examples

    (tmp_path / "data" / "gsm8k").mkdir(parents=True)
    rows = [{"question": f"What is {i} plus {i}?", "answer": f"{i} plus {i} makes {2 * i}\n#### {2 * i}"}
            for i in range(12)]
    for split in ("train", "test"):
        write_jsonl(tmp_path / "data" / "gsm8k" / f"{split}.jsonl", rows)
    cfg = _cfg(tiny_model_dir, "gsm8k", tmp_path / "out", data_dir=str(tmp_path / "data"), modes=["soft"])
    [gsm], built = prepare_tasks(cfg)
    assert gsm.identity["tuning_stop"] == "Question:"
    assert prepare_tasks(replace(cfg, modes=["zero"]))[0][0].identity == gsm.identity  # modes may grow later
    adapter = SoftevalLM(model=str(tiny_model_dir), device="cpu", show_progress=False)
    data = tuning_examples(built["gsm8k"]["gen"], adapter, 4, 0, set())
    for ex in data.train:
        target = adapter.tokenizer.decode([t for t in ex.labels if t != -100])
        assert re.search(r"#### \d+\n\nQuestion:$", target), target
    assert "\n\nQuestion:" not in adapter.tokenizer.decode(tuning_examples(
        built["gsm8k"]["gen"], adapter, 4, 0, set(), stop=False).train[0].input_ids)

    [quiz], quiz_built = prepare_tasks(_cfg(tiny_model_dir, _quiz(tmp_path / "quiz"), tmp_path / "q", modes=["soft"]))
    assert "tuning_stop" not in quiz.identity and stop_suffix(quiz_built["quiz"]["gen"], "<eos>") == ""
    # a generative task that names no stop string stops at end-of-text: the prompt learns to write that
    gen = quiz_built["quiz"]["gen"]
    gen.config.generation_kwargs = {"max_gen_toks": 4}
    assert stop_suffix(gen, adapter.eos_text) == adapter.eos_text != ""
