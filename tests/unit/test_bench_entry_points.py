"""softeval's lm-eval model plugin is declared under the group lm-eval reads (`lm_eval.models`)."""

import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_model_entry_point_is_in_lm_evals_group_and_resolves():
    from softeval.bench.lm_adapter import SoftevalLM, lm_eval_main

    project = tomllib.loads(PYPROJECT.read_text())["project"]
    groups = project["entry-points"]
    assert "lm_eval" not in groups  # the group lm-eval never reads
    value = groups["lm_eval.models"]["softeval"]
    assert EntryPoint(name="softeval", value=value, group="lm_eval.models").load() is SoftevalLM
    # lm-eval 0.4.13 does not load plugins: the script that registers the model stays
    script = project["scripts"]["softeval-lm-eval"]
    assert EntryPoint(name="softeval-lm-eval", value=script, group="console_scripts").load() is lm_eval_main
