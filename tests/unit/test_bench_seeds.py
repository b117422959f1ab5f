"""`softeval bench --tuning-seeds N`: the soft mode tuned with N seeds in one run, each seed its own resumable
units, reported as the mean and std over seeds; N = 1 writes exactly what a run without the option wrote."""

import json
import math
from dataclasses import replace

import pytest

from softeval.bench import tuning
from softeval.bench.runner import run
from softeval.bench.scoring import over_seeds
from softeval.cli.show import describe, render
from softeval.compare import compare
from softeval.store import safe_name

from tests.unit.test_bench_runner import _cfg, _prompt, _quiz

SETTINGS = dict(modes=["zero", "few", "soft"], forms=["gen", "ll_cloze"], max_steps=3, curve_steps=[1])


@pytest.fixture(scope="module")
def two_seeds(tiny_model_dir, tmp_path_factory):
    """One uninterrupted two-seed run; seed 0 and seed 1 alone (one-seed runs into other folders)."""
    root = tmp_path_factory.mktemp("seeds")
    spec = _quiz(root / "quiz")
    cfg = _cfg(tiny_model_dir, spec, root / "both", tuning_seeds=2, **SETTINGS)
    both = run(cfg)
    solo = {s: run(replace(cfg, seed=s, tuning_seeds=1, modes=["soft"], out=str(root / f"solo{s}"))) for s in (0, 1)}
    return cfg, both, solo, root


def _soft_unit(out, model, name="soft.json", seed_dir=""):
    return json.loads((out / "units" / safe_name(str(model)) / "quiz" / seed_dir / name).read_text())


def test_each_seed_is_a_solo_run_and_soft_reports_their_mean_and_std(two_seeds, tiny_model_dir):
    cfg, both, solo, root = two_seeds
    model = str(tiny_model_dir)
    # two tuning runs with different prompts, each bit-identical to a one-seed run with that --seed
    p0, p1 = _prompt(root / "both", model, "quiz", 3), _prompt(root / "both", model, "quiz/seed_1", 3)
    assert any(not p0[k].equal(p1[k]) for k in p0)
    for s, p in ((0, p0), (1, p1)):
        alone = _prompt(root / f"solo{s}", model, "quiz", 3)
        assert all(p[k].equal(alone[k]) for k in alone), s
    # zero and few ran once: the second seed's folder holds soft units only
    units = root / "both" / "units" / safe_name(model) / "quiz"
    assert {p.name for p in (units / "seed_1").iterdir()} == {"soft.json", "curve_000001.json"}
    assert (units / "zero.json").exists() and (units / "few.json").exists()
    assert set(both.results[model]["quiz"]) == {"zero", "few", "soft"}

    row = both.results[model]["quiz"]["soft"]
    assert row["seeds"] == [0, 1]
    for metric in ("format_rate", "strict_acc", "lenient_acc", "ll_cloze_acc"):
        values = [solo[s].results[model]["quiz"]["soft"][metric] for s in (0, 1)]
        assert row[f"{metric}_seeds"] == values
        assert row[metric] == pytest.approx(sum(values) / 2)
        assert row[f"{metric}_seed_std"] == pytest.approx(abs(values[0] - values[1]) / math.sqrt(2))
    # the curve point, per step, likewise
    point = next(p for p in both.curves[model]["quiz"] if p["step"] == 1)
    values = [next(p for p in solo[s].curves[model]["quiz"] if p["step"] == 1)["format_rate"] for s in (0, 1)]
    assert point["format_rate"] == pytest.approx(sum(values) / 2) and point["format_rate_seeds"] == values
    assert point["format_rate_seed_std"] == pytest.approx(abs(values[0] - values[1]) / math.sqrt(2))
    # the ranking ranks soft by the seed mean
    board = both.rankings["quiz"]["ll_cloze_acc"]["leaderboards"]["soft"]
    assert board[0]["score"] == pytest.approx(row["ll_cloze_acc"])
    # the report and results.json say so
    report = both.report_path.read_text()
    assert ", std " in report and "tuning_seeds" in report
    doc = json.loads((root / "both" / "results.json").read_text())
    assert doc["results"][model]["quiz"]["soft"]["ll_cloze_acc_seed_std"] == row["ll_cloze_acc_seed_std"]
    # softeval show and softeval compare keep working and show the std
    info = describe(root / "both")
    shown = info["results"][model]["quiz"]["soft"]
    assert shown["tuning_seeds"] == 2 and shown["strict_acc_seed_std"] == row["strict_acc_seed_std"]
    assert "strict_acc_seed_std" in render(info)
    summary = compare([root / "both", root / "solo0"], root / "compared").summary
    [seeded] = [r for r in summary["table"] if r.get("tuning_seeds")]
    assert seeded["mode"] == "soft" and seeded["ll_cloze_acc_seed_std"] == row["ll_cloze_acc_seed_std"]
    assert any("format_rate_seed_std" in c for c in summary["curves"]["quiz"])
    assert "(2 seeds)" in (root / "compared" / "index.html").read_text()


def test_an_interrupted_run_resumes_only_the_missing_seed(two_seeds, tiny_model_dir, monkeypatch):
    cfg, both, _, root = two_seeds
    cfg = replace(cfg, out=str(root / "resumed"))
    real = tuning.tune_with_snapshots
    trained = []

    def crash_on_second_seed(adapter, data, train_cfg, steps, run_dir, *args, **kw):
        if run_dir.name == "seed_1":
            raise RuntimeError("killed")
        return real(adapter, data, train_cfg, steps, run_dir, *args, **kw)

    monkeypatch.setattr(tuning, "tune_with_snapshots", crash_on_second_seed)
    with pytest.raises(RuntimeError, match="killed"):
        run(cfg)
    finished = {p: p.stat().st_mtime_ns for p in (root / "resumed").rglob("*") if p.is_file()
                and "logs" not in p.parts}
    assert any(p.name == "soft.json" for p in finished)

    def record(adapter, data, train_cfg, steps, run_dir, *args, **kw):
        trained.append((run_dir.name, train_cfg.seed))
        return real(adapter, data, train_cfg, steps, run_dir, *args, **kw)

    monkeypatch.setattr(tuning, "tune_with_snapshots", record)
    resumed = run(cfg)
    assert trained == [("seed_1", 1)]
    kept = {p for p, t in finished.items() if p.suffix in (".json", ".safetensors", ".jsonl")
            and p.name not in ("results.json", "config.json")}
    assert all(p.stat().st_mtime_ns == finished[p] for p in kept)
    # the same numbers as the uninterrupted run
    assert resumed.results == both.results and resumed.curves == both.curves


def test_one_tuning_seed_writes_what_a_run_before_the_option_wrote(tiny_model_dir, tmp_path):
    """File names, result keys and identity of tuning_seeds=1, as the code before --tuning-seeds wrote them."""
    spec = _quiz(tmp_path / "quiz")
    out = tmp_path / "out"
    result = run(_cfg(tiny_model_dir, spec, out, tuning_seeds=1, **SETTINGS))
    model = safe_name(str(tiny_model_dir))
    files = {str(p.relative_to(out)).replace(model, "M") for p in out.rglob("*") if p.is_file()}
    files = {f for f in files if not f.startswith(("logs/", "train/M/quiz/checkpoints/"))}
    assert files == {
        "config.json", "identity.json", "results.json", "report.html",
        "units/M/quiz/identity.json", "units/M/quiz/model_identity.json", "units/M/quiz/zero.json",
        "units/M/quiz/few.json", "units/M/quiz/soft.json",
        "units/M/quiz/curve_000001.json",
        *(f"samples/M/quiz/{m}_{f}.jsonl" for m in ("zero", "few", "soft") for f in ("gen", "ll_cloze")),
        "samples/M/quiz/curve/soft@1_gen.jsonl",
        "train/M/quiz/prompt_step_000001.safetensors", "train/M/quiz/prompt_step_000003.safetensors",
        "train/M/quiz/metrics.jsonl"}
    soft = result.results[str(tiny_model_dir)]["quiz"]["soft"]
    metrics = ("format_rate", "strict_acc", "acc_given_format", "lenient_acc", "ll_cloze_acc", "ll_cloze_acc_norm",
               "best_acc")
    # the answer-habit baseline (bench/habit.py) came after --tuning-seeds: added keys, none renamed
    habit = {f"{m}_{k}" for m in ("strict_acc", "ll_cloze_acc")
             for k in ("habit", "over_habit", "over_habit_stderr", "over_habit_z", "top_answer", "top_share")}
    assert set(soft) == {*metrics, *(f"{m}_{k}" for m in metrics for k in ("stderr", "n")), "best_metric",
                         "best_formulation", "num_fewshot", "lm_eval", "steps", "tuning", *habit}
    point = result.curves[str(tiny_model_dir)]["quiz"][0]
    gen = ("format_rate", "strict_acc", "acc_given_format", "lenient_acc")
    assert set(point) == {"step", *gen, *(f"{m}_{k}" for m in gen for k in ("stderr", "n"))}
    identity = json.loads((out / "identity.json").read_text())
    assert "tuning_seeds" not in identity["settings"]
    assert json.loads((out / "config.json").read_text())["tuning_seeds"] == 1


def test_over_seeds_by_hand():
    a = {"strict_acc": 0.5, "strict_acc_stderr": 0.1, "strict_acc_n": 4,
         "acc_given_format": None, "acc_given_format_stderr": None, "acc_given_format_n": 0}
    b = {"strict_acc": 1.0, "strict_acc_stderr": 0.3, "strict_acc_n": 4,
         "acc_given_format": 1.0, "acc_given_format_stderr": None, "acc_given_format_n": 2}
    m = over_seeds([a, b])
    assert m["strict_acc"] == 0.75 and m["strict_acc_seeds"] == [0.5, 1.0] and m["strict_acc_n"] == 4
    assert m["strict_acc_seed_std"] == pytest.approx(math.sqrt(0.125))  # ((0.25² + 0.25²) / 1) ** 0.5
    assert m["strict_acc_stderr"] == pytest.approx(0.2)
    # a seed without a value (no format-following output) is left out of the mean; one value has no spread
    assert (m["acc_given_format"], m["acc_given_format_seed_std"], m["acc_given_format_n"]) == (1.0, None, 1.0)
    assert m["acc_given_format_seeds"] == [None, 1.0]


def test_a_curve_step_added_after_the_run_says_how_to_fill_it(tiny_model_dir, tmp_path, caplog):
    """A finished run resumes from its last checkpoint, past a newly asked curve step: the point is skipped
    with a warning that names the checkpoints to delete; deleting them tunes again from step 0, which fills
    the point and leaves the --steps prompt as it was (same seed, same data order)."""
    import shutil

    from safetensors.torch import load_file

    spec = _quiz(tmp_path / "quiz")
    out = tmp_path / "out"
    cfg = _cfg(tiny_model_dir, spec, out, tuning_seeds=1, **{**SETTINGS, "curve_steps": []})
    run(cfg)
    train = out / "train" / safe_name(str(tiny_model_dir)) / "quiz"
    before = load_file(train / "prompt_step_000003.safetensors")

    with caplog.at_level("WARNING", logger="softeval.bench.tuning"):
        skipped = run(replace(cfg, curve_steps=[1]))
    assert skipped.curves.get(str(tiny_model_dir), {}).get("quiz", []) == []
    assert str(train / "checkpoints") in caplog.text and "no snapshot at step 1" in caplog.text

    shutil.rmtree(train / "checkpoints")
    filled = run(replace(cfg, curve_steps=[1]))
    assert [p["step"] for p in filled.curves[str(tiny_model_dir)]["quiz"]] == [1]
    after = load_file(train / "prompt_step_000003.safetensors")
    assert before.keys() == after.keys() and all((before[k] == after[k]).all() for k in before)
