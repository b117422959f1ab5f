"""Names from spec files, paths and configs reach HTML reports escaped (the distance report; the bench
report is covered end to end in test_bench_runner.py), and the bench report's header shows its settings."""

from __future__ import annotations

import html

import pytest

from softeval.config import build_config
from softeval.distance.config import DistanceConfig
from softeval.distance.sweep import run
from softeval.tasks import TaskConfig

from tests.conftest import TINY_TEXT

EVIL = "../<script>alert(1)</script>"


@pytest.fixture(scope="module")
def sweep(tiny_model_dir, tmp_path_factory) -> dict:
    from softeval.engine.models import load_model
    from softeval.distance.report import load_sweep

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
    from softeval.distance.report import render_html

    res = sweep["results"]
    res["model"]["name"] = EVIL
    res["config"]["task"]["name"] = EVIL
    res["config"]["prompt"]["init"] = EVIL  # where the report reads the init from (config.prompt.init)
    res["seeds"] = [EVIL]
    res["task"]["eval_fingerprint"] = "<b>x</b>"
    for cell in res["cells"]:
        cell["name"] = EVIL
        cell["status"], cell["message"] = "failed", EVIL
    page = render_html(sweep, {})
    assert "<script>" not in page and "<b>x</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert f"init {html.escape(EVIL)}," in page  # the key set above is one the report reads


def test_the_bench_report_header_shows_the_tuning_settings_from_the_optim_section():
    """Issue 29 #15: max_steps, batch_size and lr live under the config's `optim` section; the header looked for
    them at the top level and never showed them."""
    from softeval.bench.config import BenchConfig
    from softeval.bench.report import settings_html
    from softeval.config import build_config, to_dict

    cfg = build_config(BenchConfig, overrides=["optim.max_steps=37", "optim.batch_size=5", "optim.lr=0.0123"])
    header = settings_html({"config": to_dict(cfg)})
    for key, value in (("max_steps", "37"), ("batch_size", "5"), ("lr", "0.0123")):
        assert f"<th>{key}</th><td>{value}</td>" in header, key
