"""The identity policy (softeval.store.identity): declared once on the config fields, asked by every command.

Each test names the defect of issue #29 it guards; each fails on the code before the policy."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch

from softeval.bench.runner import BenchConfig
from softeval.cli import main
from softeval.config import build_config, option
from softeval.distance.config import DistanceConfig
from softeval.distance.sweep import run as run_sweep
from softeval.errors import ConfigError, ModelError
from softeval.store.identity import changes_numbers, free_settings, result_identity, settings_identity
from softeval.engine.prompt import read_prompt_file
from softeval.store import claim_folder
from softeval.tasks import TaskConfig
from softeval.train import TrainConfig, run

from conftest import write_jsonl
from test_run_store import Killed, cfg_for, kill_at_step

@pytest.fixture()
def data(tmp_path):
    return write_jsonl(tmp_path / "d.jsonl", [{"prompt": f"the {w} fox", "completion": " jumps over the dog."}
                                             for w in ["quick", "brown", "lazy", "red"] * 6])


@pytest.fixture()
def uninterrupted(tiny_lm, tiny_model_dir, data, tmp_path):
    result = run(cfg_for(tiny_model_dir, data, tmp_path / "straight"), lm=tiny_lm)
    return read_prompt_file(result.prompt_path)[0]["prompt_embeddings"]


def killed_run(tiny_lm, tiny_model_dir, data, out, monkeypatch, step=4):
    kill_at_step(monkeypatch, step)
    with pytest.raises(Killed):
        run(cfg_for(tiny_model_dir, data, out), lm=tiny_lm)
    monkeypatch.undo()


# --------------------------------------------------------------------------- the policy itself


def test_a_setting_left_out_of_the_identity_must_say_why():
    with pytest.raises(TypeError, match="must say why"):
        option(1, identity=False)


def test_every_command_asks_the_one_policy():
    assert not changes_numbers(TrainConfig, "task.data") and not changes_numbers(TrainConfig, "device")
    assert changes_numbers(TrainConfig, "optim.lr") and changes_numbers(TrainConfig, "task.num_eval")
    assert changes_numbers(DistanceConfig, "a.field.added.later")  # unknown names count: the safe side
    assert not changes_numbers(DistanceConfig, "execution.cpus_per_unit")  # a whole section left out
    assert {"tokens", "seeds", "num_samples", "sample_tokens"} <= set(free_settings(DistanceConfig))
    assert {"models", "modes", "curve_steps", "dtype", "precision"} <= set(free_settings(BenchConfig))
    assert all(why for why in {**free_settings(TrainConfig), **free_settings(DistanceConfig),
                               **free_settings(BenchConfig)}.values())


def test_no_list_of_setting_names_outside_the_policy_decides_same_result():
    """The four lists that disagreed (train, distance, bench, compare) are gone, and nothing filters a config's
    settings by name outside softeval/identity.py."""
    src = Path(__file__).resolve().parents[2] / "src" / "softeval"
    pattern = re.compile(r"RESUMABLE_CHANGES|CELL_KEYS|NOT_IDENTITY|IGNORED_SETTINGS|to_dict\(cfg\)\.items\(\) if k")
    hits = [f"{p.relative_to(src)}:{i}" for p in src.rglob("*.py") if p.name != "identity.py"
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert hits == []


def test_resolved_values_and_content_enter_the_identity_not_labels_or_paths(tiny_lm, tiny_model_dir, data,
                                                                           tmp_path):
    """Defects 3 and 7: `auto`, the device and paths are never in identity.json; the weights dtype that loaded,
    the precision that ran and the data's content hash are."""
    cfg = cfg_for(tiny_model_dir, data, tmp_path / "run", dtype="auto", precision="auto", device="auto")
    run(cfg, lm=tiny_lm)
    stored = json.loads((tmp_path / "run" / "identity.json").read_text())
    text = json.dumps(stored)
    assert str(data) not in text and str(tiny_model_dir) not in text and '"auto"' not in text
    assert stored["resolved"]["weights_dtype"] == "float32" and stored["resolved"]["precision"] in ("fp32", "bf16")
    assert stored["data"].keys() == {"data"} and stored["code"] == 1


# --------------------------------------------------------------------------- train


def test_moving_the_data_and_naming_the_model_by_another_path_continue_the_run(tiny_lm, tiny_model_dir, data,
                                                                               tmp_path, monkeypatch, uninterrupted):
    """Defect 7: the identity is content (hashes), not paths."""
    out = tmp_path / "run"
    killed_run(tiny_lm, tiny_model_dir, data, out, monkeypatch)
    moved = tmp_path / "elsewhere" / "renamed.jsonl"
    moved.parent.mkdir()
    shutil.move(data, moved)
    alias = tmp_path / "model-link"
    os.symlink(tiny_model_dir, alias)
    result = run(cfg_for(alias, moved, out), lm=tiny_lm)
    assert torch.equal(read_prompt_file(result.prompt_path)[0]["prompt_embeddings"], uninterrupted)


def test_gradient_checkpointing_may_change_on_resume_and_changes_no_number(tiny_lm, tiny_model_dir, data, tmp_path,
                                                                           monkeypatch, uninterrupted):
    """Defect 8: resuming with --gradient-checkpointing on (to fit a smaller GPU) is allowed, and the prompt ends
    bit-identical to the uninterrupted run without it."""
    out = tmp_path / "run"
    killed_run(tiny_lm, tiny_model_dir, data, out, monkeypatch)
    assert main(["train", "--resume", str(out), "--gradient-checkpointing", "on", "-q"]) == 0
    assert torch.equal(read_prompt_file(out)[0]["prompt_embeddings"], uninterrupted)


def test_a_run_is_not_continued_with_other_weights_dtype(tiny_lm, tiny_model_dir, data, tmp_path, monkeypatch,
                                                        capsys):
    """Defect 3: `--resume RUN` on a machine where the weights load as bf16 (`--device cuda` with dtype auto, here
    `--dtype bfloat16`) must not continue an fp32 run."""
    out = tmp_path / "run"
    killed_run(tiny_lm, tiny_model_dir, data, out, monkeypatch)
    model_json = (out / "model.json").read_text()
    assert main(["train", "--resume", str(out), "--dtype", "bfloat16", "-q"]) == 2
    err = capsys.readouterr().err
    assert "resolved.weights_dtype: 'float32' → 'bfloat16'" in err and err.count("\n") == 1
    assert (out / "model.json").read_text() == model_json  # what ran is recorded once, not rewritten


def test_identity_refuses_a_changed_data_file_at_the_same_path(tiny_lm, tiny_model_dir, data, tmp_path,
                                                               monkeypatch):
    out = tmp_path / "run"
    killed_run(tiny_lm, tiny_model_dir, data, out, monkeypatch)
    data.write_text(data.read_text().replace("dog", "cat"))
    with pytest.raises(ConfigError, match=r"data\.data: .*→"):
        run(cfg_for(tiny_model_dir, data, out), lm=tiny_lm)


def test_a_folder_of_an_earlier_softeval_is_readable_but_not_continued(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "identity.json").write_text(json.dumps({"kind": "train", "settings": {}, "data": {}}))
    with pytest.raises(ConfigError, match="earlier softeval.*cannot be continued"):
        claim_folder(folder, result_identity("train", {}), "train run")


# --------------------------------------------------------------------------- distance


def sweep_cfg(tiny_model_dir, data, out, **kw) -> DistanceConfig:
    base = dict(model=str(tiny_model_dir), device="cpu", precision="fp32", tokens="0,1", seeds=1, max_steps=2,
                batch_size=4, lr=0.05, warmup_steps=1, show_progress=False, report=False, out=str(out),
                task=TaskConfig(name="jsonl", data=str(data), eval_fraction=0.25))
    base.update(kw)
    return build_config(DistanceConfig, flags=base)


def test_a_sweep_continues_with_other_report_samples_and_refuses_other_steps(tiny_lm, tiny_model_dir, data,
                                                                             tmp_path):
    """Defect 8: num_samples / sample_tokens change only the report's samples; steps change numbers."""
    out = tmp_path / "sweep"
    run_sweep(sweep_cfg(tiny_model_dir, data, out), lm=tiny_lm)
    again = run_sweep(sweep_cfg(tiny_model_dir, data, out, num_samples=0, sample_tokens=3), lm=tiny_lm)
    assert again.cells_trained == 0 and again.cells_skipped == 2
    with pytest.raises(ConfigError, match=r"settings\.optim\.max_steps: 2 → 3"):
        run_sweep(sweep_cfg(tiny_model_dir, data, out, max_steps=3), lm=tiny_lm)


def test_a_unit_that_loads_other_weights_dtype_is_refused(tiny_lm, tiny_model_dir, data, tmp_path):
    """Defect 3: a lane-group unit on a node whose weights resolve to bf16 cannot add cells to an fp32 sweep."""
    from softeval.distance import sweep as distance
    from softeval.executors import forget_models, remember_model
    from softeval.engine.models import load_model

    cfg = sweep_cfg(tiny_model_dir, data, tmp_path / "sweep", tokens="0,1")
    setup = distance.prepare_sweep(cfg)
    bf16 = load_model(str(tiny_model_dir), device="cpu", dtype="bfloat16", show_progress=False)
    remember_model(bf16, cfg.model, cfg.device, cfg.dtype, cfg.device_map)
    try:
        with pytest.raises(ModelError, match="weights_dtype: 'float32' → 'bfloat16'"):
            distance.train_lane_group(cfg, [(1, 0)], setup.precision, setup.eval_sha256,
                                      expected_facts=setup.model_facts)
    finally:
        forget_models()


# --------------------------------------------------------------------------- dataclass metadata stays data


@dataclasses.dataclass(frozen=True)
class Inner:
    a: int = option(1)
    b: int = option(2, identity=False, why="reporting")


@dataclasses.dataclass(frozen=True)
class Outer:
    inner: Inner = dataclasses.field(default_factory=Inner)
    c: int = 3


def test_free_settings_follow_nested_sections():
    assert free_settings(Outer) == {"inner.b": "reporting"}
    assert settings_identity(Outer()) == {"inner": {"a": 1}, "c": 3}


def test_task_metrics_are_generated_under_the_runs_precision(tiny_lm):
    """Defect 4, the same for the distance instrument: a task's own metrics (legal moves, valid paths) are generated
    under the autocast precision the result's identity records, not always in fp32."""
    from softeval.tasks import TaskData
    from softeval.train import task_metrics_of

    seen = []

    def metrics(lm, prompt, examples, placement):
        seen.append(torch.is_autocast_enabled("cpu"))
        return {"legal": 1.0}

    task = TaskData(train=[], eval=[], spec={"task": "t"}, metrics=metrics)
    assert task_metrics_of(tiny_lm, None, task, "after_bos", "bf16") == {"legal": 1.0}
    assert task_metrics_of(tiny_lm, None, task, "after_bos", "fp32") == {"legal": 1.0}
    assert seen == [True, False]
