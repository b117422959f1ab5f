"""Bench results are tied to the weights, data and precision that made them (issue #29, defects 2, 4, 6, 12)."""

from __future__ import annotations

import json
import shutil

import pytest

from softeval.bench.runner import run
from softeval.bench.units import evaluate_model_task
from softeval.errors import ConfigError, DataError

from conftest import build_tiny_model
from tests.unit.test_bench_runner import _cfg, _quiz


@pytest.fixture()
def model_copy(tiny_model_dir, tmp_path):
    path = tmp_path / "my-model"
    shutil.copytree(tiny_model_dir, path)
    return path


def test_a_model_name_re_pointed_at_other_weights_does_not_reuse_its_units(model_copy, tmp_path):
    """Defect 2: a local folder saved over with other weights must not reuse finished units (nor resume their
    tuning as the new model)."""
    spec = _quiz(tmp_path / "quiz")
    out = tmp_path / "out"
    run(_cfg(model_copy, spec, out))
    recorded = json.loads(next(out.rglob("model_identity.json")).read_text())
    assert recorded["resolved"]["weights_dtype"] == "float32" and recorded["resolved"]["precision"] == "fp32"
    vocab = json.loads((model_copy / "config.json").read_text())["vocab_size"]
    build_tiny_model(vocab, seed=1).save_pretrained(model_copy)
    with pytest.raises(ConfigError, match="other weights than"):
        run(_cfg(model_copy, spec, out))                      # every unit finished: nothing would load the model
    with pytest.raises(ConfigError, match="model_sha256"):
        run(_cfg(model_copy, spec, out, modes=["zero", "few"]))  # a unit to do: it loads the model and is refused


def test_a_unit_on_another_node_checks_it_reads_the_drivers_data(tiny_model_dir, tmp_path):
    """Defect 6: the data a unit reads is hashed by content (files and the documents of every split, Hub
    datasets too) and compared on the unit's node with what the driver recorded."""
    spec = _quiz(tmp_path / "quiz")
    out = tmp_path / "out"
    cfg = _cfg(tiny_model_dir, spec, out)
    run(cfg)
    identity = json.loads(next((out / "units").rglob("identity.json")).read_text())
    assert {"docs.gen.eval", "docs.gen.train"} <= set(identity["data"])
    results = json.loads((out / "results.json").read_text())
    assert results["data"]["quiz"]["data_sha256"]["docs.gen.eval"] == identity["data"]["docs.gen.eval"]
    test = tmp_path / "quiz" / "test.jsonl"
    test.write_text(test.read_text().replace("Which", "What"))   # the node's copy of the data differs
    with pytest.raises(DataError, match="sees other data"):
        evaluate_model_task(_cfg(tiny_model_dir, spec, out, modes=["zero", "few"]), str(tiny_model_dir), "quiz",
                            ["zero", "few"])


def test_precision_auto_is_resolved_once_for_the_folder(tiny_model_dir, tmp_path):
    """Defect 4: the folder records the precision that ran (never 'auto'); tuning and scoring use that one."""
    spec = _quiz(tmp_path / "quiz")
    out = tmp_path / "out"
    run(_cfg(tiny_model_dir, spec, out, precision="auto"))
    top = json.loads((out / "identity.json").read_text())
    unit = json.loads(next(out.rglob("model_identity.json")).read_text())
    assert top["resolved"]["precision"] in ("fp32", "bf16") and "auto" not in json.dumps(top)
    assert unit["resolved"]["precision"] == top["resolved"]["precision"]


def test_bench_compare_tells_same_name_tasks_on_other_files_apart(tiny_model_dir, tmp_path):
    """Defect 12: two spec tasks named alike over different evaluation files are different eval sets."""
    from softeval.compare import compare

    outs = []
    for name in ("a", "b"):
        spec = _quiz(tmp_path / name)
        if name == "b":
            test = tmp_path / name / "test.jsonl"
            test.write_text(test.read_text().replace("Which", "What"))
        outs.append(tmp_path / f"out_{name}")
        run(_cfg(tiny_model_dir, spec, outs[-1]))
    with pytest.raises(DataError, match="different held-out sets"):
        compare(outs, tmp_path / "cmp")
