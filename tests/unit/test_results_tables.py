"""scripts/results_tables.py (docs/results.md's tables) reads real sweep folders, partial ones included."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from softeval.distance import DistanceConfig, run
from softeval.config import build_config
from softeval.tasks import TaskConfig

ROOT = Path(__file__).resolve().parents[2]


def _tables():
    spec = importlib.util.spec_from_file_location("results_tables", ROOT / "scripts" / "results_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


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
    assert "skip-k" in out and "| k = 1 | k = 2 | rises with k |" in out


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
    from softeval.stability_grid import run_grid

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
    for arg, says in ((tmp_path / "nope", "no such folder"), (tmp_path, "no distance sweep or stability grid")):
        r = subprocess.run([sys.executable, script, str(arg)], capture_output=True, text=True)
        assert r.returncode == 1 and r.stderr.strip().startswith(f"results_tables: {says}"), r.stderr
        assert "Traceback" not in r.stderr
    (tmp_path / "grid").mkdir()
    (tmp_path / "grid" / "stability.json").write_text("{not json")
    r = subprocess.run([sys.executable, script, str(tmp_path / "grid")], capture_output=True, text=True)
    assert r.returncode == 1 and "is not valid JSON" in r.stderr and "Traceback" not in r.stderr
