"""Run folders written before the layout change stay readable: `tests/fixtures/written_by_main_801d3cc/` holds a
train run and a distance sweep written by softeval at commit 801d3cc (the flat layout), on the tiny model.
Every reader goes through the CLI, the interface that does not move."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from softeval.cli import main

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "written_by_main_801d3cc"


@pytest.fixture()
def stored(tmp_path) -> Path:
    copy = tmp_path / "stored"
    shutil.copytree(FIXTURE, copy)
    return copy


def test_show_reads_a_stored_train_run_and_sweep(stored, capsys):
    assert main(["show", str(stored / "train_run"), "--json"]) == 0
    run = json.loads(capsys.readouterr().out)
    assert run["kind"] == "run" and run["steps"] == 3
    assert main(["show", str(stored / "sweep"), "--json"]) == 0
    sweep = json.loads(capsys.readouterr().out)
    assert sweep["kind"] == "distance" and sweep["tokens"] == [0, 1, 2]


def test_report_summarises_a_stored_sweep_to_the_same_numbers(stored, capsys):
    before = json.loads((stored / "sweep" / "results.json").read_text())
    (stored / "sweep" / "results.json").unlink()  # the summary comes again from the cells alone
    assert main(["report", str(stored / "sweep")]) == 0
    assert (stored / "sweep" / "report" / "index.html").exists()
    after = json.loads((stored / "sweep" / "results.json").read_text())
    assert [r["loss_mean"] for r in after["per_n"]] == [r["loss_mean"] for r in before["per_n"]]
    assert after["saturation"]["absolute"]["per_seed"] == before["saturation"]["absolute"]["per_seed"]


def test_compare_reads_stored_sweeps(stored, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(stored / "sweep", other)
    assert main(["compare", str(stored / "sweep"), str(other), "--out", str(tmp_path / "cmp")]) == 0
    summary = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert summary["same_eval_set"] and summary["differences"] == {}
