"""Names from spec files, paths and configs reach HTML reports escaped (the distance report; the bench
report is covered end to end in test_bench_runner.py)."""

from __future__ import annotations

import pytest

from softeval.config import build_config
from softeval.distance import DistanceConfig, run
from softeval.tasks import TaskConfig

from tests.conftest import TINY_TEXT

EVIL = "../<script>alert(1)</script>"


@pytest.fixture(scope="module")
def sweep(tiny_model_dir, tmp_path_factory) -> dict:
    from softeval.models import load_model
    from softeval.report import load_sweep

    root = tmp_path_factory.mktemp("escaping")
    corpus = root / "corpus.txt"
    corpus.write_text(TINY_TEXT * 3)
    lm = load_model(str(tiny_model_dir), device="cpu", dtype="float32", show_progress=False)
    cfg = build_config(DistanceConfig, flags=dict(
        model=str(tiny_model_dir), device="cpu", precision="fp32", tokens=(0, 1), seeds=1, max_steps=2,
        batch_size=2, eval_every=0, num_samples=1, sample_tokens=2, bootstrap_samples=5, report=False,
        show_progress=False, out=str(root / "sweep"),
        task=TaskConfig(name="repetition", corpus=str(corpus), num_train=4, num_eval=2, context_tokens=4,
                        target_tokens=2)))
    run(cfg, lm=lm)
    return load_sweep(root / "sweep")


def test_distance_report_escapes_every_user_string(sweep):
    from softeval.report import render_html

    res = sweep["results"]
    res["model"]["name"] = EVIL
    res["config"]["task"]["name"] = EVIL
    res["config"]["init"] = EVIL  # e.g. a text init
    res["seeds"] = [EVIL]
    res["task"]["eval_fingerprint"] = "<b>x</b>"
    for cell in res["cells"]:
        cell["name"] = EVIL
        cell["status"], cell["message"] = "failed", EVIL
    page = render_html(sweep, {})
    assert "<script>" not in page and "<b>x</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
