"""The distance sweep on the tiny model: same eval set for every n (DESIGN.md invariant 5), resume, packing,
the reference model, task metrics / conditional tasks, and bad input."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from softeval.config import build_config
from softeval.engine.batching import IGNORE, Example
from softeval.cli import main
from softeval.distance import DistanceConfig, format_table, run
from softeval.distance.cells import eval_fingerprint
from softeval.distance.config import parse_tokens
from softeval.distance.plan import pack_cells, plan_cells
from softeval.errors import ConfigError, DataError, ModelError
from softeval.engine.evaluate import evaluate_prompt
from softeval.engine.prompt import load_prompt
from softeval.tasks import TASKS, TaskConfig, TaskData, available_tasks, build_task

from conftest import TINY_TEXT, build_tiny_model, build_tiny_tokenizer


def sweep_cfg(model_dir, corpus, out, **kw) -> DistanceConfig:
    base = dict(model=str(model_dir), device="cpu", precision="fp32", tokens=(0, 1, 3), seeds=2, max_steps=4,
                batch_size=2, lr=0.1, warmup_steps=0, checkpoint_every=2, num_samples=1, sample_tokens=3,
                bootstrap_samples=50, report=False, show_progress=False, out=str(out),
                task=TaskConfig(name="repetition", corpus=str(corpus), num_train=6, num_eval=3, context_tokens=5,
                                target_tokens=3))
    base.update(kw)
    return build_config(DistanceConfig, flags=base)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    p.write_text(TINY_TEXT * 3)
    return p


@pytest.fixture(scope="module")
def sweep(tiny_model_dir, corpus, tmp_path_factory):
    """One finished tiny sweep shared by the tests that only read it."""
    from softeval.engine.models import load_model

    lm = load_model(str(tiny_model_dir), device="cpu", dtype="float32", show_progress=False)
    cfg = sweep_cfg(tiny_model_dir, corpus, tmp_path_factory.mktemp("sweep") / "out")
    return cfg, lm, run(cfg, lm=lm)


# --- config and planning ----------------------------------------------------------------------------


def test_parse_tokens_sorts_and_dedupes():
    assert parse_tokens("16, 0,4,4") == (0, 4, 16)
    assert parse_tokens([0, 1, 64]) == (0, 1, 64)
    assert parse_tokens(8) == (8,)


@pytest.mark.parametrize("bad", ["1,a", "-1", "1.5", "", "0,,x", [1, -2], [0.5], [True]])
def test_parse_tokens_rejects_non_negative_integer_lists(bad):
    with pytest.raises(ConfigError, match="non-negative integers"):
        parse_tokens(bad)


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="seeds must be >= 1"):
        DistanceConfig(seeds=0)
    with pytest.raises(ConfigError, match="epsilon must be a non-negative"):
        DistanceConfig(epsilon=-1)


def test_plan_has_one_plain_cell_and_seeds_for_trained_lengths():
    assert plan_cells(DistanceConfig(tokens=(0, 4), seeds=2)) == [(0, 0), (4, 0), (4, 1)]


def test_pack_cells_respects_the_budget():
    cells = [(n, s) for n in (1, 4, 16, 64) for s in (0, 1)]
    groups = pack_cells(cells, batch_size=8, example_tokens=40, max_batch_tokens=1200)
    assert sorted(c for g in groups for c in g) == sorted(cells)
    for g in groups:
        cost = 8 * len(g) * (max(n for n, _ in g) + 40)
        assert len(g) == 1 or cost <= 1200
    assert max(len(g) for g in groups) > 1  # cells do share passes
    assert [len(g) for g in pack_cells(cells, 8, 40, 0)] == [1] * len(cells)
    assert pack_cells([(512, 0)], 8, 40, 100) == [[(512, 0)]]  # too big alone: still runs, alone


# --- invariant 5: every n is scored on the same examples and the same target tokens ---------------


def test_every_cell_is_scored_on_the_same_eval_set(sweep, corpus):
    cfg, lm, result = sweep
    out = Path(cfg.out)
    stored = json.loads((out / "eval_set.json").read_text())
    cells = result.results["cells"]
    assert len(cells) == 5 and all(c["status"] == "done" for c in cells)
    assert {c["num_targets"] for c in cells} == {stored["num_targets"]} == {3 * 3}
    assert result.results["task"]["same_eval_set"] is True

    # Independently: rebuild the task, score each saved prompt (and the plain model) on its held-out set.
    task = build_task(cfg.task, lm.tokenizer)
    for cell in cells:
        prompt = None
        if cell["n"]:
            prompt, _ = load_prompt(out / "cells" / cell["name"], lm.info, task.spec)
        again = evaluate_prompt(lm.model, prompt, task.eval, bos_id=lm.info.bos_token_id,
                                pad_id=lm.info.pad_token_id, precision="fp32")
        assert again.loss == pytest.approx(cell["loss"], abs=1e-5)
        assert again.num_targets == cell["num_targets"]
        # Each window's own loss is kept, so a difference between n can be resampled over windows and seeds.
        record = json.loads((out / "cells" / cell["name"] / "cell.json").read_text())
        assert record["example_losses"] == pytest.approx(again.example_losses, abs=1e-5)
        assert len(record["example_losses"]) == len(task.eval)


def test_every_cell_scores_the_same_tokens_as_an_independent_construction(tiny_model_dir, corpus, tmp_path,
                                                                            tiny_lm, monkeypatch):
    """Spy on what the evaluator actually scores: every evaluation of every cell (n = 0, 1, 3; two seeds)
    must score exactly the (visible context, target) pairs the HF label convention gives for the held-out
    examples: target labels[i] after reading [BOS] + input_ids[:i], whatever the prompt in between."""
    import sys

    import softeval.engine.evaluate as evaluate_mod

    passes: list[tuple[int, list]] = []
    real_losses, real_evaluate = evaluate_mod.target_losses, evaluate_mod.evaluate_prompt

    def spy_losses(model, batch, prompt_rows, *args, **kwargs):
        visible = (batch.attention_mask == 1) & (batch.soft_slot < 0)  # real tokens: BOS and input ids
        for row, col, target in zip(batch.target_rows.tolist(), batch.target_cols.tolist(), batch.target_ids.tolist()):
            context = batch.input_ids[row, :col + 1][visible[row, :col + 1]].tolist()
            passes[-1][1].append((tuple(context), target))
        return real_losses(model, batch, prompt_rows, *args, **kwargs)

    def spy_evaluate(model, prompt, examples, **kwargs):
        passes.append((prompt.num_virtual_tokens if prompt is not None else 0, []))
        return real_evaluate(model, prompt, examples, **kwargs)

    monkeypatch.setattr(evaluate_mod, "target_losses", spy_losses)
    for module in list(sys.modules.values()):  # every module that imported evaluate_prompt by name
        if getattr(module, "evaluate_prompt", None) is real_evaluate and module.__name__.startswith("softeval"):
            monkeypatch.setattr(module, "evaluate_prompt", spy_evaluate)
    cfg = sweep_cfg(tiny_model_dir, corpus, tmp_path / "out", max_steps=2, eval_every=1, eval_batch_size=2)
    run(cfg, lm=tiny_lm)

    task = build_task(cfg.task, tiny_lm.tokenizer)
    bos = [tiny_lm.info.bos_token_id]
    expected = [(tuple(bos + ex.input_ids[:i]), label) for ex in task.eval for i, label in enumerate(ex.labels)
                if label != IGNORE]
    assert len(expected) == 3 * 3
    assert {n for n, _ in passes} == {0, 1, 3}
    assert len(passes) >= 1 + 4 * 2  # the plain cell, then >= an initial and a final eval per trained cell
    for n, scored in passes:
        assert scored == expected, f"n = {n} was scored on other tokens"


def test_fingerprint_sees_a_changed_target_and_is_the_same_across_n(tiny_lm):
    examples = [Example(input_ids=[5, 6, 7, 8], labels=[IGNORE, IGNORE, 7, 8])]
    prints = {n: eval_fingerprint(examples, n, tiny_lm.info.bos_token_id, 0, "after_bos") for n in (0, 1, 16)}
    assert len({json.dumps(p) for p in prints.values()}) == 1
    changed = [Example(input_ids=[5, 6, 7, 8], labels=[IGNORE, IGNORE, 7, 9])]
    assert eval_fingerprint(changed, 0, tiny_lm.info.bos_token_id, 0, "after_bos") != prints[0]
    # Without BOS the first label is never scored, for any n (the plain model has nothing to read first).
    first = [Example(input_ids=[5, 6], labels=[5, 6])]
    assert eval_fingerprint(first, 0, None, 0, "after_bos") == eval_fingerprint(first, 4, None, 0, "after_bos")
    assert eval_fingerprint(first, 0, None, 0, "after_bos")["num_targets"] == 1


# --- results ---------------------------------------------------------------------------------------


def test_results_json_has_the_documented_shape(sweep):
    cfg, _, result = sweep
    res = json.loads((Path(cfg.out) / "results.json").read_text())
    assert res == json.loads(json.dumps(result.results))
    assert res["schema"] == "softeval.distance/1" and res["complete"] and res["tokens"] == [0, 1, 3]
    plain = res["per_n"][0]
    assert plain["n"] == 0 and plain["num_seeds"] == 1 and plain["loss_std"] == 0.0
    assert [r["num_seeds"] for r in res["per_n"]] == [1, 2, 2]
    for mode in ("absolute", "relative"):
        sat = res["saturation"][mode]
        assert len(sat["per_seed"]) == 2 and sat["bootstrap"]["samples"] == 50
    assert len(res["saturation"]["sensitivity"]) == 13
    table = format_table(res)
    assert "S(ε = 0.01 nats/token)" in table and table.splitlines()[1].split()[0] == "0"


def test_rerun_skips_finished_cells_and_changes_nothing(sweep, tiny_lm):
    cfg, _, first = sweep
    cells = sorted(Path(cfg.out).glob("cells/*/cell.json"))
    before = {p: p.read_bytes() for p in cells}
    again = run(cfg, lm=tiny_lm)
    assert again.cells_trained == 0 and again.cells_skipped == 5
    assert {p: p.read_bytes() for p in cells} == before
    assert again.results["per_n"] == first.results["per_n"]


def test_changed_settings_are_refused(sweep, tiny_lm):
    cfg, _, _ = sweep
    with pytest.raises(ConfigError, match="optim.max_steps: 4 → 5"):
        run(replace(cfg, optim=replace(cfg.optim, max_steps=5)), lm=tiny_lm)


def test_growing_the_grid_trains_only_new_cells(sweep, tiny_lm, tmp_path):
    import shutil

    cfg, _, _ = sweep
    out = tmp_path / "grown"
    shutil.copytree(cfg.out, out)
    grown = run(replace(cfg, out=str(out), tokens=(0, 1, 2, 3), seeds=1), lm=tiny_lm)
    assert grown.cells_trained == 1 and grown.cells_skipped == 3
    assert grown.results["tokens"] == [0, 1, 2, 3] and grown.results["complete"]


# --- reference model ----------------------------------------------------------------------------------


def test_reference_model_gap_closed(tiny_model_dir, corpus, tmp_path, tiny_lm):
    ref_dir = tmp_path / "ref"
    tok = build_tiny_tokenizer()
    build_tiny_model(len(tok), seed=1).save_pretrained(ref_dir)
    tok.save_pretrained(ref_dir)
    cfg = sweep_cfg(tiny_model_dir, corpus, tmp_path / "out", tokens=(0, 2), seeds=1, reference_model=str(ref_dir),
                    task=TaskConfig(name="autoregressive", corpus=str(corpus), num_train=4, num_eval=3,
                                    context_tokens=4, target_tokens=3))
    res = run(cfg, lm=tiny_lm).results
    ref = res["reference"]
    assert ref["model"] == str(ref_dir) and ref["num_targets"] == res["task"]["num_eval_targets"]
    plain, trained = res["per_n"]
    assert ref["gap"] == pytest.approx(plain["loss_mean"] - ref["loss"])
    if ref["gap"] > 0:
        assert trained["gap_closed_mean"] == pytest.approx((plain["loss_mean"] - trained["loss_mean"]) / ref["gap"])
    assert plain["gap_closed_mean"] in (0.0, None)
    table = format_table(res)
    assert "gap closed" in table and f"reference {ref_dir}: loss {ref['loss']:.4f}" in table


def test_reference_with_another_tokenizer_is_refused(tiny_model_dir, corpus, tmp_path, tiny_lm):
    ref_dir = tmp_path / "other"
    tok = build_tiny_tokenizer()
    tok.add_tokens(["<extra-token>"])
    build_tiny_model(len(tok), seed=1).save_pretrained(ref_dir)
    tok.save_pretrained(ref_dir)
    cfg = sweep_cfg(tiny_model_dir, corpus, tmp_path / "out", tokens=(0, 1), seeds=1, reference_model=str(ref_dir))
    with pytest.raises(ModelError, match="different tokenizer"):
        run(cfg, lm=tiny_lm)
    assert not list((tmp_path / "out").glob("cells/*"))  # refused before any cell was trained


# --- task metrics and conditional tasks ------------------------------------------------------------------


def _conditional_task(cfg: TaskConfig, tokenizer) -> TaskData:
    ids = tokenizer("the quick brown fox jumps over the lazy dog", add_special_tokens=False).input_ids
    make = lambda c: Example(input_ids=ids, labels=[IGNORE] * 4 + ids[4:], condition=[c, 1.0 - c])  # noqa: E731
    conditions = [0.0, 0.25, 0.5, 1.0]

    def metrics(lm, prompt, examples, placement="after_bos"):
        assert examples and all(e.condition is not None for e in examples)
        return {"legal_rate": 0.5 if prompt is None else 0.75, "note": "ignored",
                "by_condition": [{"condition": [c, 1.0 - c], "legal_rate": c} for c in conditions]}

    return TaskData(train=[make(c) for c in conditions * 2], eval=[make(c) for c in conditions],
                    spec={"task": "cond-test"}, condition_dim=2, metrics=metrics)


def test_conditional_task_metrics_flow_into_cells_and_summary(tiny_model_dir, corpus, tmp_path, tiny_lm, monkeypatch):
    monkeypatch.setitem(TASKS, "cond-test", _conditional_task)
    cfg = sweep_cfg(tiny_model_dir, corpus, tmp_path / "out", tokens=(0, 2), seeds=1,
                    task=TaskConfig(name="cond-test"))
    res = run(cfg, lm=tiny_lm).results
    plain, trained = res["cells"]
    assert plain["n"] == 0 and plain["task_metrics"] == {"legal_rate": 0.5}
    assert trained["task_metrics"] == {"legal_rate": 0.75}
    assert trained["condition_metrics"][1] == {"condition": [0.25, 0.75], "legal_rate": 0.25}
    assert res["per_n"][1]["task_metrics"]["legal_rate"]["mean"] == 0.75
    prompt_meta = json.loads((Path(cfg.out) / "cells" / "n2_s0" / "cell.json").read_text())
    assert prompt_meta["status"] == "done"


def test_task_metrics_use_the_sweeps_placement(tiny_model_dir, tmp_path, tiny_lm):
    """A before_bos sweep scores its task metrics (chess: loss per move token, probed moves) with before_bos."""
    pytest.importorskip("chess")
    from test_chess import GAMES

    pgn = tmp_path / "games.pgn"
    pgn.write_text("".join(GAMES))
    task_cfg = TaskConfig(name="chess", data=str(pgn), num_train=3, num_eval=2, eval_fraction=0.5,
                          options={"missing_elo": "default", "max_plies": 6})
    cfg = sweep_cfg(tiny_model_dir, pgn, tmp_path / "out", tokens=(2,), seeds=1, placement="before_bos",
                    task=task_cfg)
    (cell,) = run(cfg, lm=tiny_lm).results["cells"]
    assert cell["status"] == "done" and tiny_lm.info.bos_token_id is not None

    task = build_task(task_cfg, tiny_lm.tokenizer)
    prompt, meta = load_prompt(Path(cfg.out) / "cells" / cell["name"], tiny_lm.info, task.spec)
    assert meta.placement == "before_bos"
    flat = lambda m: {k: float(v) for k, v in m.items() if isinstance(v, (int, float))}  # noqa: E731
    before = flat(task.metrics(tiny_lm, prompt, task.eval, placement="before_bos"))
    after = flat(task.metrics(tiny_lm, prompt, task.eval, placement="after_bos"))
    assert cell["task_metrics"] == pytest.approx(before, abs=1e-6)
    assert before["loss_per_move_token"] != pytest.approx(after["loss_per_move_token"], abs=1e-4)


# --- bad input ------------------------------------------------------------------------------------------


def test_unknown_task_lists_the_valid_ones_before_loading_a_model(tmp_path):
    cfg = DistanceConfig(model="no-such-model", task=TaskConfig(name="repetiton"), out=str(tmp_path / "o"))
    with pytest.raises(ConfigError, match="Did you mean 'repetition'.*Available: .*autoregressive"):
        run(cfg)


def test_corpus_too_short(tiny_model_dir, tmp_path, tiny_lm):
    short = tmp_path / "short.txt"
    short.write_text("the quick brown fox")
    cfg = sweep_cfg(tiny_model_dir, short, tmp_path / "out")
    with pytest.raises(DataError, match="use a longer --corpus"):
        run(cfg, lm=tiny_lm)


def test_cli_bad_tokens_exits_with_one_line(capsys):
    code = main(["distance", "--task", "repetition", "--tokens", "0,4,x", "--out", "unused"])
    err = capsys.readouterr().err
    assert code == 2 and "--tokens must be a comma-separated list of non-negative integers" in err
    assert len(err.strip().splitlines()) == 1


def test_cli_unknown_task_exits_with_one_line(capsys, tmp_path):
    code = main(["distance", "--task", "nope", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "unknown task 'nope'" in err and "skip-k" in err


# --- shipped configs ------------------------------------------------------------------------------------


def test_every_shipped_distance_config_loads():
    from softeval.config import build_config

    root = Path(__file__).resolve().parents[2] / "configs"
    configs = sorted(root.glob("distance_*.yaml")) + sorted((root / "results").glob("*.yaml"))
    # configs/results/ also holds other commands' configs (bench.yaml, suite_behaviours.yaml): their headers say so
    configs = [p for p in configs if "softeval distance" in p.read_text().split("\n\n")[0]]
    assert len(configs) > 4
    for path in configs:
        cfg = build_config(DistanceConfig, str(path))
        assert cfg.tokens[0] == 0 and cfg.task.name in available_tasks()
        first = path.read_text().splitlines()[0]
        assert first.startswith("#") and "softeval distance" in path.read_text().split("\n\n")[0]


def test_scoring_right_after_the_prompt_on_a_model_without_bos(tmp_path, corpus):
    """context_tokens 0 (scored from the first input token, as the paper's repetition test) on a tokenizer that
    adds no BOS (SmolLM2's): n = 0 has no input to sample from, so it gets no samples instead of a crash."""
    from softeval.engine.generate import generate_ids
    from softeval.engine.models import load_model

    model_dir = tmp_path / "nobos"
    tok = build_tiny_tokenizer(with_bos=False)
    build_tiny_model(len(tok)).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    lm = load_model(str(model_dir), device="cpu", dtype="float32", show_progress=False)
    assert lm.info.bos_token_id is None
    cfg = sweep_cfg(model_dir, corpus, tmp_path / "out", tokens=(0, 2), seeds=1,
                    task=TaskConfig(name="repetition", corpus=str(corpus), num_train=6, num_eval=3,
                                    context_tokens=0, target_tokens=4))
    res = run(cfg, lm=lm).results
    assert res["complete"]
    cells = {c["name"]: json.loads((tmp_path / "out" / "cells" / c["name"] / "cell.json").read_text())
             for c in res["cells"]}
    assert cells["n0"]["samples"] == []
    assert len(cells["n2_s0"]["samples"]) == 1 and cells["n2_s0"]["samples"][0]["context"] == ""
    with pytest.raises(ConfigError, match="nothing to continue from"):
        generate_ids(lm.model, None, [[]], bos_id=None, pad_id=lm.info.pad_token_id, max_new_tokens=2)


def test_jsonl_behaviour_file_sweep(tiny_model_dir, corpus, tmp_path, tiny_lm):
    from conftest import write_jsonl

    data = write_jsonl(tmp_path / "b.jsonl", [{"prompt": f"the {w} fox", "completion": " jumps over"}
                                              for w in ["quick", "brown", "lazy", "early", "red", "old"] * 2])
    cfg = sweep_cfg(tiny_model_dir, corpus, tmp_path / "out", tokens=(0, 2), seeds=1, max_steps=2,
                    task=TaskConfig(name="jsonl", data=str(data), eval_fraction=0.25))
    res = run(cfg, lm=tiny_lm).results
    assert res["complete"] and res["task"]["num_eval"] == 3 and res["task"]["same_eval_set"]


def test_jsonl_without_data_is_refused_before_loading(tmp_path):
    with pytest.raises(ConfigError, match="needs a behaviour file: --data"):
        run(DistanceConfig(model="no-such-model", out=str(tmp_path / "o")))


def test_a_metric_a_cell_could_not_measure_is_left_out_of_the_mean(tmp_path):
    # Pathfinding's measured detour is null in a cell whose walks never reached the goal; the summary once
    # crashed on it after a 55-minute sweep. It must average the cells that measured it, and say how many.
    from softeval.distance.summary import summarize_sweep
    from sweep_fixtures import make_sweep

    folder = tmp_path / "sweep"
    make_sweep(folder, {(0, 0): 4.0, (4, 0): 1.0, (4, 1): 1.2, (4, 2): 1.1})
    for seed, extra in ((0, 2.0), (1, None), (2, 4.0)):
        path = folder / "cells" / f"n4_s{seed}" / "cell.json"
        record = json.loads(path.read_text())
        record["task_metrics"] = {"measured_extra": extra, "valid_move_rate": 0.5}
        record["condition_metrics"] = [{"condition": [0.0], "measured_extra": None if seed else 1.0},
                                       {"condition": [8.0], "measured_extra": extra}]
        path.write_text(json.dumps(record))
    results = summarize_sweep(folder)
    row = next(r for r in results["per_n"] if r["n"] == 4)
    assert row["task_metrics"]["measured_extra"] == {"mean": 3.0, "std": pytest.approx(2 ** 0.5), "num_seeds": 2}
    assert row["task_metrics"]["valid_move_rate"]["num_seeds"] == 3

    # the report's requested-vs-measured plot averages the cells that measured each condition
    from softeval.distance.report import condition_table, write_report

    assert condition_table(results)["measured_extra"][4] == {(0.0,): [1.0], (8.0,): [2.0, 4.0]}
    (folder / "results.json").write_text(json.dumps(results))
    assert (write_report(folder)).exists()
