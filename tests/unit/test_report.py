"""softeval report: a self-contained HTML page and PNGs from a sweep directory, without a model."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from softeval.config import build_config
from softeval.cli import main
from softeval.distance.config import DistanceConfig
from softeval.distance.sweep import run
from softeval.errors import SoftevalError
from softeval.distance.report import write_report
from softeval.tasks import TaskConfig

from conftest import TINY_TEXT

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def sweep_dir(tiny_model_dir, tmp_path_factory) -> Path:
    from softeval.engine.models import load_model

    root = tmp_path_factory.mktemp("report")
    corpus = root / "corpus.txt"
    corpus.write_text(TINY_TEXT * 3)
    lm = load_model(str(tiny_model_dir), device="cpu", dtype="float32", show_progress=False)
    cfg = build_config(DistanceConfig, flags=dict(
        model=str(tiny_model_dir), device="cpu", precision="fp32", tokens=(0, 1, 2), seeds=2, max_steps=3,
        batch_size=2, eval_every=2, num_samples=1, sample_tokens=3, bootstrap_samples=20, report=False,
        show_progress=False, out=str(root / "sweep"),
        task=TaskConfig(name="repetition", corpus=str(corpus), num_train=4, num_eval=2, context_tokens=4,
                        target_tokens=2)))
    run(cfg, lm=lm)
    return Path(cfg.out)


def test_report_is_self_contained_with_every_number(sweep_dir, tmp_path):
    path = write_report(sweep_dir, tmp_path / "r")
    page = path.read_text()
    # Images are embedded; nothing is fetched from elsewhere.
    assert page.count("src='data:image/png;base64,") >= 3
    assert not re.search(r"""(src|href)=['"](https?:|/|\.\.)""", page)
    for name in ("loss_vs_n", "accuracy_vs_n", "training_curves"):
        assert (tmp_path / "r" / f"{name}.png").read_bytes().startswith(PNG_MAGIC)
    results = json.loads((sweep_dir / "results.json").read_text())
    for cell in results["cells"]:
        assert f">{cell['name']}<" in page
        assert f"{cell['loss']:.4f}" in page
    assert "Sensitivity of S to ε" in page and "Greedy samples" in page and "n = 0 (plain model)" in page


def test_partial_sweep_is_reported_as_incomplete(sweep_dir, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(sweep_dir, partial)
    (partial / "cells" / "n2_s1" / "cell.json").unlink()
    assert main(["report", str(partial), "-q"]) == 0  # re-summarises from the cells, then writes the page
    page = (partial / "report" / "index.html").read_text()
    assert "Incomplete sweep" in page and "n2_s1" in page


def test_cli_report_prints_the_path(sweep_dir, capsys, tmp_path):
    assert main(["report", str(sweep_dir), "--out", str(tmp_path / "cli")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "cli" / "index.html")


def test_report_on_a_non_sweep_directory_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SoftevalError, match="not a softeval distance sweep directory"):
        write_report(tmp_path)
    assert main(["report", str(tmp_path)]) == 2
    assert "not a softeval distance sweep" in capsys.readouterr().err


def test_task_and_condition_metrics_get_plots(sweep_dir, tmp_path):
    from softeval.distance.report import build_images, load_sweep

    sweep = load_sweep(sweep_dir)
    for cell in sweep["results"]["cells"]:
        cell["condition_metrics"] = [{"condition": [c, 2 * c], "legal_rate": c + cell["n"]} for c in (0.0, 0.5)]
    for row in sweep["results"]["per_n"]:
        row["task_metrics"] = {"legal_rate": {"mean": 0.5 + row["n"], "std": 0.1},
                               "games_read": {"mean": 560.0, "std": 0.0},  # the same at every n: the data's
                               "elo_effect": {"mean": 0.1, "std": None} if row["n"] == 1 else {"mean": None}}
    images = build_images(sweep)
    assert images["metric_legal_rate"].startswith(PNG_MAGIC)
    assert "metric_games_read" not in images and "metric_elo_effect" not in images  # flat, or a single point
    assert images["condition_legal_rate"].startswith(PNG_MAGIC)


def test_a_task_baseline_loss_is_drawn_when_it_is_the_same_at_every_n(sweep_dir):
    from softeval.distance.report import load_sweep, task_baselines

    res = load_sweep(sweep_dir)["results"]
    for row in res["per_n"]:
        row["task_metrics"] = {"random_legal_baseline_loss": {"mean": 1.3, "std": 0.0},
                               "other_baseline_loss": {"mean": 1.0 + row["n"], "std": 0.0},  # moves with n
                               "legal_rate": {"mean": 0.5, "std": 0.0}}
    assert task_baselines(res) == {"random_legal_baseline_loss": 1.3}


def test_a_new_report_removes_the_plots_it_no_longer_draws(sweep_dir, tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "metric_gone.png").write_bytes(PNG_MAGIC)  # drawn by an earlier report of this folder
    (out / "notes.png").write_bytes(PNG_MAGIC)  # not a name the report owns: left alone
    write_report(sweep_dir, out)
    assert not (out / "metric_gone.png").exists() and (out / "notes.png").exists()
    assert (out / "loss_vs_n.png").exists()
