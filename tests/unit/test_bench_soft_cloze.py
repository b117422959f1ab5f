"""`softeval bench` mode soft_cloze: per tuning seed, a prompt tuned on the cloze rendering of the training split
(the question alone → " answer text") and scored in the cloze form, beside the soft mode whose prompt learns the
letters. Each seed its own resumable unit; a finished zero/few/soft folder grows it without re-running anything."""

import json
from dataclasses import replace

import pytest

from softeval.bench import tuning
from softeval.bench.lm_adapter import SoftevalLM
from softeval.bench.prepare import prepare_tasks
from softeval.bench.runner import run
from softeval.cli.show import describe
from softeval.compare import compare_bench, load_run
from softeval.errors import ConfigError
from softeval.store import safe_name

from tests.unit.test_bench_runner import _cfg, _prompt, _quiz

SETTINGS = dict(forms=["gen", "ll_cloze"], max_steps=6, curve_steps=[2], tuning_seeds=2)


@pytest.fixture(scope="module")
def grown(tiny_model_dir, tmp_path_factory):
    """A zero/few/soft run, then the same folder grown by soft_cloze."""
    root = tmp_path_factory.mktemp("soft_cloze")
    spec = _quiz(root / "quiz")
    cfg = _cfg(tiny_model_dir, spec, root / "out", modes=["zero", "few", "soft"], **SETTINGS)
    run(cfg)
    before = {p: p.stat().st_mtime_ns for p in (root / "out" / "units").rglob("*.json")}
    trained = []
    real = tuning.tune_with_snapshots

    def record(adapter, data, train_cfg, steps, run_dir, *args, **kw):
        trained.append((str(run_dir.relative_to(root / "out" / "train")), steps))
        return real(adapter, data, train_cfg, steps, run_dir, *args, **kw)

    tuning.tune_with_snapshots = record
    try:
        result = run(replace(cfg, modes=["zero", "few", "soft", "soft_cloze"]))
    finally:
        tuning.tune_with_snapshots = real
    return cfg, result, before, trained, root


def test_a_finished_folder_grows_soft_cloze_and_keeps_every_unit(grown, tiny_model_dir):
    cfg, result, before, trained, root = grown
    model = safe_name(str(tiny_model_dir))
    # only the two soft_cloze seeds were tuned, to --steps alone (no curve: the curve is the letters' format)
    assert trained == [(f"{model}/quiz/soft_cloze", [6]), (f"{model}/quiz/soft_cloze/seed_1", [6])]
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())
    units = root / "out" / "units" / model / "quiz"
    assert (units / "soft_cloze.json").exists() and (units / "seed_1" / "soft_cloze.json").exists()
    samples = root / "out" / "samples" / model / "quiz"
    assert (samples / "soft_cloze_ll_cloze.jsonl").exists() and not (samples / "soft_cloze_gen.jsonl").exists()
    # a re-run finds everything on disk
    again = {p: p.stat().st_mtime_ns for p in units.rglob("*.json")}
    run(replace(cfg, modes=["zero", "few", "soft", "soft_cloze"]))
    assert again == {p: p.stat().st_mtime_ns for p in units.rglob("*.json")}


def test_soft_cloze_scores_cloze_under_its_own_prompt_over_the_seeds(grown, tiny_model_dir):
    cfg, result, _, _, root = grown
    name = str(tiny_model_dir)
    row = result.results[name]["quiz"]["soft_cloze"]
    assert "format_rate" not in row and "strict_acc" not in row
    assert row["seeds"] == [0, 1] and len(row["ll_cloze_acc_seeds"]) == 2
    assert row["tuning"]["num_train"] == 12 and row["steps"] == 6
    # the one formulation it scores is its best, so it stands in the best-of-formulations ranking
    assert row["best_acc"] == row["ll_cloze_acc"] and row["best_formulation"] == "cloze"
    boards = result.rankings["quiz"]
    assert "soft_cloze" in boards["ll_cloze_acc"]["leaderboards"]
    assert boards["best_acc"]["formulations"]["soft_cloze"] == {name: "cloze"}
    # its prompt is another one than the letters' prompt of the same seed
    letters = _prompt(root / "out", tiny_model_dir, "quiz", 6)
    cloze = _prompt(root / "out", tiny_model_dir, "quiz/soft_cloze", 6)
    assert any(not letters[k].equal(cloze[k]) for k in letters)
    # the report and compare show the mode
    assert "soft_cloze" in result.report_path.read_text()
    summary = compare_bench([load_run(root / "out")], ["out"])
    assert any(r["mode"] == "soft_cloze" for r in summary["table"])
    prompts = describe(root / "out")["prompts"]  # softeval show names both tuned prompts
    assert prompts[f"{safe_name(name)}/quiz (soft_cloze)"].endswith("quiz/soft_cloze/prompt_step_000006.safetensors")
    assert prompts[f"{safe_name(name)}/quiz"].endswith("quiz/prompt_step_000006.safetensors")


def test_the_cloze_prompt_learns_the_answer_text_after_the_bare_question(tiny_model_dir, tmp_path):
    spec = _quiz(tmp_path / "quiz")
    cfg = _cfg(tiny_model_dir, spec, tmp_path / "out", modes=["soft_cloze"], **SETTINGS)
    [t], built = prepare_tasks(cfg)
    adapter = SoftevalLM(model=str(tiny_model_dir), device="cpu", show_progress=False)
    data = tuning.tuning_examples(built[t.name]["ll_cloze"], adapter, 4, 0, set(), stop=False)
    letters = tuning.tuning_examples(built[t.name]["gen"], adapter, 4, 0, set())
    tok = adapter.tokenizer
    for cloze_ex, letter_ex in zip(data.train, letters.train):
        context, target = (tok.decode(x) for x in _context_and_target(cloze_ex))
        assert "Which colour" in context and "A." not in context  # the question alone, no listed options
        assert target.strip() in {"red", "blue", "green", "gold", "gray", "pink"}  # the answer text, no delimiter
        assert "A." in tok.decode(_context_and_target(letter_ex)[0])  # the letters' prompt sees the options
    # tuned, the loss on those targets falls
    out = tmp_path / "out"
    run(_cfg(tiny_model_dir, spec, out, modes=["soft_cloze"], forms=["ll_cloze"], max_steps=20, lr=0.1))
    records = [json.loads(x) for x in (out / "train" / safe_name(str(tiny_model_dir)) / "quiz" / "soft_cloze"
                                       / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train_loss"] for r in records if "train_loss" in r]
    assert len(losses) == 20 and sum(losses[-4:]) / 4 < sum(losses[:4]) / 4


def _context_and_target(example):
    """An Example's tokens split where the scored target begins."""
    start = len(example.input_ids) - example.num_targets
    return example.input_ids[:start], example.input_ids[start:]


def test_a_task_without_cloze_skips_the_mode_and_says_why(tiny_model_dir, tmp_path, caplog):
    spec = _quiz(tmp_path / "quiz")
    result = run(_cfg(tiny_model_dir, spec, tmp_path / "out", modes=["zero", "soft_cloze"], forms=["gen"]))
    assert set(result.results[str(tiny_model_dir)]["quiz"]) == {"zero"}
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert any("no soft_cloze mode" in n for n in doc["data"]["quiz"]["notes"])
    with pytest.raises(ConfigError, match="none of the modes soft_cloze apply"):
        run(_cfg(tiny_model_dir, spec, tmp_path / "out2", modes=["soft_cloze"], forms=["gen"]))


def test_the_mode_vocabulary_is_one_set_every_reader_agrees_on():
    """A mode added to bench/modes.py must come with a colour (the report's panels list modes by MODES and
    colour them from MODE_COLORS), and every special list names real modes."""
    from softeval.bench.modes import FORMAT_MODES, MODES, REQUIRED_FORM, SINGLE_FORMULATION_MODES, TUNED_MODES
    from softeval.bench.report import MODE_COLORS
    from softeval.bench.config import BenchConfig

    assert set(MODE_COLORS) == set(MODES)
    for subset in (FORMAT_MODES, TUNED_MODES, SINGLE_FORMULATION_MODES, tuple(REQUIRED_FORM)):
        assert set(subset) <= set(MODES)
    assert BenchConfig().modes == list(MODES)
