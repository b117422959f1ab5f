"""scripts/results_tables.py (docs/results.md's tables) reads real sweep folders, partial ones included."""

from __future__ import annotations

from pathlib import Path

from softeval.distance.config import DistanceConfig
from softeval.distance.sweep import run
from softeval.config import build_config
from softeval.tasks import TaskConfig
from tests.conftest import load_repo_script

ROOT = Path(__file__).resolve().parents[2]


def _tables():
    return load_repo_script("scripts/results_tables.py")


def _sweep(model_dir, corpus, out, task: TaskConfig, tokens=(0, 1, 2)):
    cfg = build_config(DistanceConfig, flags=dict(
        model=str(model_dir), device="cpu", precision="fp32", tokens=tokens, seeds=2, max_steps=3, batch_size=2,
        lr=0.1, warmup_steps=0, num_samples=0, bootstrap_samples=20, report=False, show_progress=False,
        out=str(out), task=task))
    return run(cfg).results


def test_tables_print_each_n_with_the_sweeps_numbers(tiny_model_dir, tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 60)
    base = dict(name="skip-k", corpus=str(corpus), num_train=4, num_eval=2, context_tokens=4, target_tokens=3)
    sweeps = {k: _sweep(tiny_model_dir, corpus, tmp_path / "skip" / f"k{k}",
                        TaskConfig(**base, options={"skip": k})) for k in (1, 2)}
    # a partial sweep: one cell's marker removed, as if the run had been killed before it finished
    (tmp_path / "skip" / "k2" / "cells" / "n2_s1" / "cell.json").unlink()
    (tmp_path / "skip" / "k2" / "results.json").unlink()

    _tables().main([str(tmp_path / "skip")])
    out = capsys.readouterr().out
    assert "partial, missing n2_s1" in out and out.count("| 0 | 1 |") == 2
    for row in sweeps[1]["per_n"]:
        loss = f"{row['loss_mean']:.3f}"
        assert f"| {row['n']} | {row['num_seeds']} | {loss}" in out
    assert "skip-k" in out and "| k = 1 | k = 2 | rises with k (mean; best seed) |" in out


def test_reproduce_script_lists_and_refuses_unknown_names():
    import subprocess

    script = str(ROOT / "scripts" / "reproduce.sh")
    listed = subprocess.run(["bash", script, "--list"], capture_output=True, text=True)
    assert listed.returncode == 0
    names = listed.stdout.split()
    assert {"rep_pee_smollm2", "rep_meowster_gemma3", "skip_k8_smollm2", "chess_smollm2", "bench_gsm8k"} <= set(names)
    bad = subprocess.run(["bash", script, "no_such_experiment"], capture_output=True, text=True)
    assert bad.returncode == 2 and "no experiment matches" in bad.stderr


def test_a_stability_grid_prints_one_table_not_a_table_per_point(tiny_model_dir, tmp_path, capsys):
    from softeval.distance.grid import run_grid

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 60)
    base = build_config(DistanceConfig, flags=dict(
        model=str(tiny_model_dir), device="cpu", precision="fp32", tokens=(0, 1, 2), seeds=2, max_steps=3,
        batch_size=2, lr=0.1, warmup_steps=0, num_samples=0, bootstrap_samples=20, report=False,
        show_progress=False, out=str(tmp_path / "unused"),
        task=TaskConfig(name="repetition", corpus=str(corpus), num_train=4, num_eval=2, context_tokens=4,
                        target_tokens=3, options={"text": " fox"})))
    grid = run_grid(base, [0.01, 0.1], [2], tmp_path / "results" / "stability" / "fox", report=False)

    _tables().main([str(tmp_path / "results")])
    out = capsys.readouterr().out
    assert "(stability grid)" in out and "2 grid points (lr 0.01, 0.1 × batch 2)" in out
    assert "| lr | batch | loss n = 0 | loss n = 1 | loss n = 2 | S abs [90 %] | S rel [90 %] | flags |" in out
    for pt in grid.summary["points"]:
        assert f"| {pt['lr']:g} | 2 | {pt['loss_mean']['0']:.3f} | {pt['loss_mean']['1']:.3f}" in out
    assert "held-out loss (nats/token)" not in out      # the grid's own sweeps are not printed one by one
    assert "S(absolute ε) over the grid:" in out


def test_a_wrong_folder_is_one_line_and_exit_1(tmp_path):
    import subprocess
    import sys

    script = str(ROOT / "scripts" / "results_tables.py")
    for arg, says in ((tmp_path / "nope", "no such folder"), (tmp_path, "no distance sweep, stability grid or bench run")):
        r = subprocess.run([sys.executable, script, str(arg)], capture_output=True, text=True)
        assert r.returncode == 1 and r.stderr.strip().startswith(f"results_tables: {says}"), r.stderr
        assert "Traceback" not in r.stderr
    (tmp_path / "grid").mkdir()
    (tmp_path / "grid" / "stability.json").write_text("{not json")
    r = subprocess.run([sys.executable, script, str(tmp_path / "grid")], capture_output=True, text=True)
    assert r.returncode == 1 and "is not valid JSON" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "bench" / "units").mkdir(parents=True)
    (tmp_path / "bench" / "results.json").write_text("{not json")
    r = subprocess.run([sys.executable, script, str(tmp_path / "bench")], capture_output=True, text=True)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr


def _bench_row(fmt, acc, cloze, seeds=None):
    row = {"format_rate": fmt, "format_rate_stderr": 0.01, "format_rate_n": 200, "strict_acc": acc,
           "strict_acc_stderr": 0.02, "ll_cloze_acc": cloze, "ll_cloze_acc_stderr": 0.03,
           "best_acc": max(acc, cloze), "best_acc_stderr": 0.03, "best_formulation": "cloze" if cloze > acc else "letters"}
    if seeds:
        row |= {"seeds": seeds, "format_rate_seed_std": 0.05}
    return row


def test_bench_tables_say_where_the_format_ordering_holds_and_whether_rankings_agree(tmp_path, capsys):
    import json

    board = lambda *ranked: [{"rank": r, "model": m, "score": s} for r, m, s in ranked]  # noqa: E731
    doc = {"config": {"models": ["a", "b"]},
           "results": {"a": {"quiz": {"zero": _bench_row(0.10, 0.05, 0.50), "few": _bench_row(0.90, 0.30, 0.52),
                                      "soft": _bench_row(0.99, 0.35, 0.51, seeds=[0, 1, 2])}},
                       "b": {"quiz": {"zero": _bench_row(0.60, 0.25, 0.40), "few": _bench_row(0.95, 0.30, 0.41),
                                      "soft": _bench_row(0.80, 0.28, 0.42, seeds=[0, 1, 2])}}},
           "curves": {"a": {"quiz": [{"step": 0, "format_rate": 0.1, "strict_acc": 0.05},
                                     {"step": 10, "format_rate": 0.97, "strict_acc": 0.3}]}},
           "rankings": {"quiz": {
               "strict_acc": {"formulation": "letters", "leaderboards": {
                   "zero": board((1, "b", 0.25), (2, "a", 0.05)), "few": board((1, "a", 0.30), (1, "b", 0.30)),
                   "soft": board((1, "a", 0.35), (2, "b", 0.28))}},
               "ll_cloze_acc": {"formulation": "cloze", "leaderboards": {
                   m: board((1, "a", 0.5), (2, "b", 0.4)) for m in ("zero", "few", "soft")}}}}}
    folder = tmp_path / "bench" / "quiz"
    (folder / "units").mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(doc))

    _tables().main([str(tmp_path / "bench")])
    out = capsys.readouterr().out
    assert "| a | soft (3 seeds) | 99.0 ± 5.0 | 35.0 ± 2.0 |" in out  # soft: ± the spread over seeds
    assert "| a | zero | 10.0 ± 1.0 | 5.0 ± 2.0 |" in out and "50.0 ± 3.0 (cloze)" in out
    # results.json alone: the format claim is not judged by point estimates (softeval.bench.verdicts)
    assert ("- a: format-following zero 10.0 %, few 90.0 %, soft 99.0 %: soft > few > zero cannot tell (soft > few: "
            "cannot tell (no per-item scores): +9.0 points; few > zero: cannot tell (no per-item scores): +80.0 "
            "points)") in out
    assert "- b: format-following zero 60.0 %, few 95.0 %, soft 80.0 %: soft > few > zero cannot tell" in out
    assert "| a | 10.0 (5.0) | 97.0 (30.0) |" in out and "| b | — | — |" in out
    assert "| strict_acc (letters) | b 25.0 > a 5.0 | a 30.0 = b 30.0 | a 35.0 > b 28.0 | no |" in out
    assert "| ll_cloze_acc (cloze) | a 50.0 > b 40.0 | a 50.0 > b 40.0 | a 50.0 > b 40.0 | yes |" in out
    tables = _tables()
    only_a = {**doc, "rankings": {"quiz": {"strict_acc": {"formulation": "letters", "leaderboards": {
        m: board((1, "a", 0.3)) for m in ("zero", "few", "soft")}}}}}
    assert "| a 30.0 | a 30.0 | a 30.0 | — (one model) |" in tables.bench_tables(only_a)  # not a vacuous "yes"


def test_several_bench_folders_get_one_overview_across_tasks(tmp_path, capsys):
    import json

    for task, b_zero in (("quiz", 0.60), ("trivia", 0.98)):
        doc = {"config": {"models": ["a", "b"]}, "data": {task: {"eval_items": 200}},
               "results": {"a": {task: {"zero": _bench_row(0.10, 0.05, 0.50), "few": _bench_row(0.90, 0.30, 0.52),
                                        "soft": _bench_row(0.99, 0.35, 0.51, seeds=[0, 1, 2])}},
                           "b": {task: {"zero": _bench_row(b_zero, 0.25, 0.40), "few": _bench_row(0.95, 0.30, 0.41),
                                        "soft": _bench_row(0.96, 0.28, 0.42, seeds=[0, 1, 2])}}}}
        (tmp_path / task / "units").mkdir(parents=True)
        (tmp_path / task / "results.json").write_text(json.dumps(doc))
    _tables().main([str(tmp_path)])
    out = capsys.readouterr().out.split("### benchmarks across tasks")[1]
    untested = "cannot tell (no per-item scores)"
    assert (f"| quiz | b | 60.0 | 95.0 | 96.0 | {untested}: +1.0 points | {untested}: +35.0 points | "
            "cannot tell |") in out
    assert "| trivia | b | 98.0 | 95.0 | 96.0 |" in out and "family of m = 0 steps" in out
    assert (f"| quiz | best_acc | a 50.0 (cloze) > b 40.0 (cloze) (a > b: {untested}: +10.0 points) | a 52.0 (cloze) "
            f"> b 41.0 (cloze) (a > b: {untested}: +11.0 points) |") in out  # these results.json have no samples


def test_soft_cloze_gets_its_row_and_its_ranking_column(tmp_path, capsys):
    """A folder with the soft_cloze mode: its row shows cloze alone (the ± its seed spread), and the overview
    across tasks ranks it in a column of its own, "—" for a task run without it."""
    import json

    cloze_only = lambda v: {"ll_cloze_acc": v, "ll_cloze_acc_stderr": 0.03, "ll_cloze_acc_seed_std": 0.01,  # noqa: E731
                            "best_acc": v, "best_acc_stderr": 0.03, "best_acc_seed_std": 0.01,
                            "best_formulation": "cloze", "seeds": [0, 1, 2]}
    for task, extra in (("quiz", True), ("trivia", False)):
        res = {m: {task: {"zero": _bench_row(0.10, 0.05, z), "few": _bench_row(0.90, 0.30, f),
                          "soft": _bench_row(0.99, 0.35, 0.25, seeds=[0, 1, 2])}}
               for m, z, f in (("a", 0.50, 0.52), ("b", 0.40, 0.41))}
        if extra:
            res["a"][task]["soft_cloze"], res["b"][task]["soft_cloze"] = cloze_only(0.55), cloze_only(0.44)
        (tmp_path / task / "units").mkdir(parents=True)
        (tmp_path / task / "results.json").write_text(json.dumps({"config": {"models": ["a", "b"]},
                                                                  "data": {task: {"eval_items": 200}}, "results": res}))
    _tables().main([str(tmp_path)])
    out = capsys.readouterr().out
    # columns no row has (lenient, letters ll) are left out: format, strict, cloze, best
    assert "| a | soft_cloze (3 seeds) | — | — | 55.0 ± 1.0 | 55.0 ± 1.0 (cloze) |" in out
    overview = out.split("### benchmarks across tasks")[1]
    assert "| task | ranked by | zero | few | soft | soft_cloze | same order in every mode |" in overview
    assert "| a 55.0 (cloze) > b 44.0 (cloze) (a > b: cannot tell (no per-item scores): +11.0 points) | yes |" in overview
    assert [line.split(" | ")[-2] for line in overview.splitlines() if line.startswith("| trivia | best_acc")] == ["—"]


def test_elo_table_shows_each_cells_interval_and_what_it_was_scored_on():
    base = {"elo_check_median_elo": 2780.0, "elo_effect_high_games": 0.004, "elo_effect_low_games": -0.001}
    interval = {"elo_effect_high_games_lo90": 0.0001, "elo_effect_high_games_hi90": 0.008,
                "elo_effect_low_games_lo90": -0.005, "elo_effect_low_games_hi90": 0.004,
                "elo_check_low_half_mean_elo": 2735.0, "elo_check_high_half_mean_elo": 2846.0}
    # n16's metrics as summarize_sweep leaves them when elo_check/n16_s0.json rescored the cell
    res = {"cells": [{"name": "n0", "n": 0, "seed": 0, "task_metrics": {"loss_per_move_token": 3.0}},
                     {"name": "n4_s0", "n": 4, "seed": 0, "task_metrics": base | interval},
                     {"name": "n16_s0", "n": 16, "seed": 0, "task_metrics": base | interval | {
                         "elo_effect_low_games_lo90": -0.009, "elo_effect_low_games_hi90": -0.002}},
                     {"name": "n64_s0", "n": 64, "seed": 0, "task_metrics": dict(base)}]}
    table = _tables().elo_table(res).splitlines()
    assert len(table) == 7  # header, rule, three trained cells (n = 0 has no check), blank, what it was scored on
    assert table[2] == ("| n4_s0 | 2780 | 2735 / 2846 | +0.0040 [+0.0001, +0.0080] right way | "
                        "-0.0010 [-0.0050, +0.0040] spans 0 |")
    assert table[3].startswith("| n16_s0 |") and table[3].endswith("[-0.0090, -0.0020] wrong way |")
    assert table[4] == "| n64_s0 | 2780 | — | +0.0040 | -0.0010 |"  # no interval anywhere: the effect alone
    assert table[6] == "Scored on: the sweep's own weights."
    assert _tables().elo_table(res | {"elo_check": {"cells": ["n16_s0"]}}).endswith("Scored on: fp32 rescoring.")


def test_condition_table_counts_the_walks_that_measured_a_detour_per_seed():
    probe = lambda want, extra, reached: {"condition": [want, 0.0], "measured_extra": extra,  # noqa: E731
                                          "goal_reached_rate": reached, "valid_move_rate": 0.5}
    res = {"task": {"num_eval": 48}, "per_n": [{"n": 0}, {"n": 4}],  # 48 boards, of which 32 are walked
           "cells": [{"n": 0, "seed": 0, "status": "done", "condition_metrics": [probe(8.0, None, 0.0)]},
                     {"n": 4, "seed": 0, "status": "done", "condition_metrics": [probe(8.0, 6.0, 0.25)]},
                     {"n": 4, "seed": 1, "status": "done", "condition_metrics": [probe(8.0, None, 0.0)]},
                     {"n": 4, "seed": 2, "status": "done", "condition_metrics": [probe(8.0, 8.0, 1 / 32)]}]}
    table = _tables().condition_table(res)
    assert "| 0 | 8 | 0 of 32 | — | 0.50 |" in table
    # never a mean over seeds that hides how few walks there are: seed 2's 8 is one board
    assert "| 4 | 8 | 9 of 96 | seed 0: 6 (8 boards); seed 2: 8 (1 board) | 0.50 |" in table


def test_skip_table_judges_the_rise_with_k_on_the_mean_and_on_the_best_seed():
    row = lambda n, mean, best: {"n": n, "num_seeds": 3, "loss_mean": mean, "loss_std": 0.1,  # noqa: E731
                                 "loss_min": best}
    # k = 8's mean is above k = 1's only because one seed is stuck: its best seed is below
    sweeps = {1: {"per_n": [row(0, 9.6, 9.6), row(1, 6.8, 6.7)]}, 8: {"per_n": [row(0, 11.7, 11.7), row(1, 8.4, 6.5)]}}
    table = _tables().skip_table(sweeps)
    assert "| 0 | 9.600 ± 0.100 | 11.700 ± 0.100 | yes; yes |" in table
    assert "| 1 | 6.800 ± 0.100 | 8.400 ± 0.100 | yes; no |" in table


def test_bench_tables_put_letter_accuracies_beside_their_answer_habit():
    row = _bench_row(1.0, 0.33, 0.27) | {"strict_acc_habit": 0.2637, "strict_acc_over_habit": 0.0663,
                                          "strict_acc_over_habit_stderr": 0.0271, "strict_acc_top_answer": "D",
                                          "strict_acc_top_share": 0.53}
    doc = {"results": {"a": {"quiz": {"few": row, "zero": _bench_row(0.1, 0.05, 0.25)}}}}
    text = _tables().bench_tables(doc)
    assert "| a | few | 33.0 / 26.4 / +6.6 ± 2.7 (D 53 %) |" in text
    assert "| a | zero |" not in text.split("Knowledge or answer habit")[1]  # a row without habit is left out
    assert "answer habit" not in _tables().bench_tables({"results": {"a": {"quiz": {"zero": _bench_row(0.1, 0.05, 0.25)}}}})


def test_the_habit_overview_gives_each_task_and_model_one_row_of_gaps():
    row = _bench_row(1.0, 0.30, 0.50) | {"strict_acc_over_habit": -0.021, "strict_acc_over_habit_stderr": 0.013,
                                          "ll_cloze_acc_over_habit": 0.25, "ll_cloze_acc_over_habit_stderr": 0.031}
    runs = [{"results": {"results": {"a": {"quiz": {"few": row}}}}},
            {"results": {"results": {"a": {"old": {"few": _bench_row(1.0, 0.3, 0.5)}}}}}]
    text = _tables().habit_overview(runs)
    assert "| quiz | a | — | -2.1 ± 1.3 | — | — | +25.0 ± 3.1 | — | — |" in text
    assert "old" not in text  # a run written before the habit keys has no row
    assert _tables().habit_overview(runs[1:]) == ""


def test_reproduce_script_writes_under_softeval_results_when_set(tmp_path):
    # SOFTEVAL points the script at a stand-in CLI that prints its arguments: this checks the script's own
    # wiring (which folder each experiment writes), not softeval, which the other tests run for real.
    import subprocess

    cli = tmp_path / "softeval"
    cli.write_text('#!/usr/bin/env bash\necho "$@"\n')
    cli.chmod(0o755)
    script = str(ROOT / "scripts" / "reproduce.sh")
    env = {"PATH": "/usr/bin:/bin", "SOFTEVAL": str(cli)}
    for root, expect in [(None, "--out results/skip/k4_smollm2-135m-instruct"),
                         (str(tmp_path / "mine"), f"--out {tmp_path}/mine/skip/k4_smollm2-135m-instruct")]:
        run = subprocess.run(["bash", script, "skip_k4_smollm2"], capture_output=True, text=True,
                             env=env | ({"SOFTEVAL_RESULTS": root} if root else {}))
        assert run.returncode == 0, run.stderr
        assert expect in run.stdout and "--skip 4" in run.stdout
