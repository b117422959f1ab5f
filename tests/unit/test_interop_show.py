"""softeval show on a distance sweep and on a distance cell's prompt: read from the files, no model."""

from __future__ import annotations

import json

from softeval.cli import main
from softeval.config import build_config
from softeval.distance.config import DistanceConfig
from softeval.distance.sweep import run
from softeval.tasks import TaskConfig

from conftest import TINY_TEXT


def test_show_distance_sweep_and_cell(tiny_lm, tiny_model_dir, tmp_path, capsys, monkeypatch):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TINY_TEXT * 3)
    cfg = build_config(DistanceConfig, flags=dict(
        model=str(tiny_model_dir), device="cpu", precision="fp32", tokens=(0, 2), seeds=1, max_steps=2, batch_size=2,
        eval_every=0, num_samples=0, bootstrap_samples=10, report=False, show_progress=False,
        out=str(tmp_path / "sweep"),
        task=TaskConfig(name="repetition", corpus=str(corpus), num_train=4, num_eval=2, context_tokens=4,
                        target_tokens=2)))
    run(cfg, lm=tiny_lm)
    results = json.loads((tmp_path / "sweep" / "results.json").read_text())

    import softeval.engine.models

    def no_model(*a, **k):
        raise AssertionError("show must not load a model")

    monkeypatch.setattr(softeval.engine.models, "load_model", no_model)
    capsys.readouterr()
    assert main(["show", str(tmp_path / "sweep"), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["kind"] == "distance" and shown["tokens"] == [0, 2] and shown["task"] == "repetition"
    assert [r["loss_mean"] for r in shown["per_n"]] == [r["loss_mean"] for r in results["per_n"]]
    assert main(["show", str(tmp_path / "sweep")]) == 0
    assert "n=2" in capsys.readouterr().out
    cell = next((tmp_path / "sweep" / "cells").glob("n2_*"))
    assert main(["show", str(cell), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["kind"] == "run" and shown["num_virtual_tokens"] == 2 and shown["steps"] == 2
