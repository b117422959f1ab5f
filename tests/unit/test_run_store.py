"""The run store: one identity check, strict JSON, pickle-free checkpoints, exact continuation after any
interruption (issue "Numbers you can trust", defects 6, 7, 8, 9, 13 and the store itself).

Every continuation is compared with an uninterrupted run of the same config: the final prompt must be
bit-identical and metrics.jsonl must hold the same records, each once."""

from __future__ import annotations

import json
import math
import pickle

import pytest
import torch

from softeval.engine import loop as engine
from softeval.cli import main
from softeval.config import build_config
from softeval.distance.config import DistanceConfig
from softeval.distance.sweep import run as run_sweep
from softeval.errors import ConfigError, InterruptedRun
from softeval.engine.prompt import read_prompt_file
from softeval.store.identity import result_identity
from softeval.store import RunFolder, atomic_write_json, claim_folder, read_checkpoint
from softeval.tasks import TaskConfig
from softeval.train import TrainConfig, run

from conftest import TINY_TEXT, write_jsonl

STEPS = 8
real_train_step = engine.train_step  # before any test patches it


def records(path) -> list[dict]:
    """metrics.jsonl without the fields that differ between two runs of the same config (none today)."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def strict_load(path):
    def refuse(constant):
        raise ValueError(f"{path}: non-standard JSON constant {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture()
def data(tmp_path):
    return write_jsonl(tmp_path / "d.jsonl", [{"prompt": f"the {w} fox", "completion": " jumps over the dog."}
                                             for w in ["quick", "brown", "lazy", "red"] * 6])


def cfg_for(tiny_model_dir, data, out, **kw) -> TrainConfig:
    base = dict(model=str(tiny_model_dir), device="cpu", precision="fp32", num_virtual_tokens=3, max_steps=STEPS,
                batch_size=4, lr=0.05, warmup_steps=2, eval_every=3, checkpoint_every=3, show_progress=False,
                out=str(out), task=TaskConfig(name="jsonl", data=str(data), eval_fraction=0.25))
    base.update(kw)
    return build_config(TrainConfig, flags=base)


@pytest.fixture()
def reference(tiny_lm, tiny_model_dir, data, tmp_path):
    """An uninterrupted run: its prompt tensors and its metrics records."""
    result = run(cfg_for(tiny_model_dir, data, tmp_path / "straight"), lm=tiny_lm)
    tensors, _ = read_prompt_file(result.prompt_path)
    return tensors, records(result.run_dir / "metrics.jsonl")


def assert_same_as(reference, run_dir):
    tensors, _ = read_prompt_file(run_dir)
    for key, value in reference[0].items():
        assert torch.equal(tensors[key], value), key
    assert records(run_dir / "metrics.jsonl") == reference[1]  # same records, each once, in order


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after the raise runs, no handler writes anything."""


def kill_at_step(monkeypatch, step: int):
    real = engine.train_step

    def dying(ctx, lanes):
        if any(lane.step == step for lane in lanes):
            raise Killed
        return real(ctx, lanes)

    monkeypatch.setattr(engine, "train_step", dying)


# --- defect 7: killed before the first checkpoint ------------------------------------------------------


def test_resume_after_a_kill_before_the_first_checkpoint(tiny_lm, tiny_model_dir, data, tmp_path, monkeypatch,
                                                         reference):
    out = tmp_path / "killed"
    kill_at_step(monkeypatch, 2)  # step-0 evaluation and two train records written, no checkpoint yet
    with pytest.raises(Killed):
        run(cfg_for(tiny_model_dir, data, out), lm=tiny_lm)
    monkeypatch.undo()
    assert (out / "config.json").exists() and not RunFolder(out).checkpoints()
    assert main(["train", "--resume", str(out), "-q"]) == 0
    assert_same_as(reference, out)


def test_rerunning_the_command_after_a_kill_duplicates_nothing(tiny_lm, tiny_model_dir, data, tmp_path,
                                                               monkeypatch, reference):
    out = tmp_path / "killed"
    kill_at_step(monkeypatch, 5)  # after the step-3 checkpoint: steps 4-5 must not be logged twice
    with pytest.raises(Killed):
        run(cfg_for(tiny_model_dir, data, out), lm=tiny_lm)
    monkeypatch.undo()
    run(cfg_for(tiny_model_dir, data, out), lm=tiny_lm)
    assert_same_as(reference, out)


# --- defect 6: a second Ctrl-C mid-step must not checkpoint a half-applied update ---------------------


def test_abort_mid_step_keeps_only_whole_checkpoints(tiny_lm, tiny_model_dir, data, tmp_path, monkeypatch,
                                                     reference):
    out = tmp_path / "aborted"
    real_step = torch.optim.AdamW.step
    calls = {"n": 0}

    def half_then_interrupt(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # the second Ctrl-C lands inside the update of step 5
            with torch.no_grad():
                for group in self.param_groups:
                    group["params"][0].add_(1.0)
            raise KeyboardInterrupt
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", half_then_interrupt)
    with pytest.raises(InterruptedRun, match="no checkpoint written"):
        run(cfg_for(tiny_model_dir, data, out), lm=tiny_lm)
    monkeypatch.undo()
    assert [step for step, _ in RunFolder(out).checkpoints()] == [3]
    run(cfg_for(tiny_model_dir, data, out), resume=True, lm=tiny_lm)
    assert_same_as(reference, out)


# --- defect 8: a truncated checkpoint, a corrupt config, --out below a file --------------------------


def test_truncated_checkpoint_falls_back_to_the_one_before(tiny_lm, tiny_model_dir, data, tmp_path, monkeypatch,
                                                           reference, caplog):
    out = tmp_path / "trunc"
    kill_at_step(monkeypatch, 7)  # checkpoints at steps 3 and 6 kept
    with pytest.raises(Killed):
        run(cfg_for(tiny_model_dir, data, out), lm=tiny_lm)
    monkeypatch.undo()
    newest = RunFolder(out).checkpoints()[-1][1]
    newest.write_bytes(newest.read_bytes()[:100])
    assert main(["train", "--resume", str(out), "-q"]) == 0
    assert "unreadable" in caplog.text and newest.name in caplog.text
    assert_same_as(reference, out)


def test_corrupt_run_config_is_a_one_line_error(tiny_lm, tiny_model_dir, data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    kill_at_step(monkeypatch, 2)
    with pytest.raises(Killed):
        run(cfg_for(tiny_model_dir, data, out), lm=tiny_lm)
    monkeypatch.undo()
    (out / "config.json").write_text('{"model": "x", ')
    assert main(["train", "--resume", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "config.json is not a readable run config" in err


def test_out_below_a_regular_file_is_a_one_line_error(tiny_model_dir, data, tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("keep me")
    code = main(["train", "--model", str(tiny_model_dir), "--data", str(data), "--steps", "1",
                 "--out", str(blocker / "run"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "is a file" in err
    assert blocker.read_text() == "keep me"


# --- defect 9: --resume overrides go through the same check as flags ---------------------------------


@pytest.mark.parametrize("change", [["lr=0.5"], ["optim.lr=0.5"], ["--lr", "0.5"], ["task.num_eval=2"],
                                    ["--tokens", "5"]])
def test_resume_refuses_changes_to_numbers(tiny_lm, tiny_model_dir, data, tmp_path, monkeypatch, capsys, change):
    out = tmp_path / "run"
    kill_at_step(monkeypatch, 4)
    with pytest.raises(Killed):
        run(cfg_for(tiny_model_dir, data, out), lm=tiny_lm)
    monkeypatch.undo()
    stored = (out / "config.json").read_text()
    assert main(["train", "--resume", str(out), *change, "-q"]) == 2
    err = capsys.readouterr().err
    assert "--resume continues the stored run" in err and err.count("\n") == 1
    assert (out / "config.json").read_text() == stored


def test_resume_may_change_where_and_how_often(tiny_lm, tiny_model_dir, data, tmp_path, monkeypatch, reference):
    out = tmp_path / "run"
    kill_at_step(monkeypatch, 4)
    with pytest.raises(Killed):
        run(cfg_for(tiny_model_dir, data, out), lm=tiny_lm)
    monkeypatch.undo()
    assert main(["train", "--resume", str(out), "--device", "cpu", "--checkpoint-every", "2", "-q"]) == 0
    tensors, _ = read_prompt_file(out)
    assert torch.equal(tensors["prompt_embeddings"], reference[0]["prompt_embeddings"])


# --- identity: one check, settings and data ----------------------------------------------------------


def test_reusing_a_run_folder_with_other_settings_lists_the_differences(tiny_lm, tiny_model_dir, data, tmp_path,
                                                                        monkeypatch):
    out = tmp_path / "run"
    kill_at_step(monkeypatch, 1)
    with pytest.raises(Killed):
        run(cfg_for(tiny_model_dir, data, out), lm=tiny_lm)
    monkeypatch.undo()
    with pytest.raises(ConfigError, match=r"optim\.lr: 0\.05 → 0\.2.*choose another --out"):
        run(cfg_for(tiny_model_dir, data, out, lr=0.2), lm=tiny_lm)


def test_a_non_softeval_folder_is_not_adopted(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("precious")
    with pytest.raises(ConfigError, match="does not hold a softeval"):
        claim_folder(folder, result_identity("train", {}), "train run")
    assert (folder / "notes.txt").read_text() == "precious"


# --- strict JSON and pickle-free checkpoints ---------------------------------------------------------


def test_json_is_written_strictly(tmp_path):
    atomic_write_json(tmp_path / "r.json", {"a": math.nan, "b": [math.inf, 1.5], "c": {"d": -math.inf}})
    assert strict_load(tmp_path / "r.json") == {"a": None, "b": [None, 1.5], "c": {"d": None}}


def test_every_file_of_a_run_parses_strictly_and_checkpoints_hold_no_pickle(tiny_lm, tiny_model_dir, data,
                                                                             tmp_path):
    result = run(cfg_for(tiny_model_dir, data, tmp_path / "run", eval_every=0), lm=tiny_lm)
    for path in result.run_dir.rglob("*.json"):
        strict_load(path)
    for line in (result.run_dir / "metrics.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-standard constant {c}"))
    for step, path in RunFolder(result.run_dir).checkpoints():
        tensors, meta = read_checkpoint(path)  # safetensors + JSON header
        assert meta["step"] == step and any(k.startswith("prompt.") for k in tensors)
    assert step == STEPS


class Payload:
    def __reduce__(self):
        return (open, ("/tmp/softeval-pickle-ran", "w"))


def test_a_pickle_posing_as_a_checkpoint_never_runs(tiny_lm, tiny_model_dir, data, tmp_path, monkeypatch, caplog):
    import os

    marker = "/tmp/softeval-pickle-ran"
    if os.path.exists(marker):
        os.unlink(marker)
    out = tmp_path / "run"
    kill_at_step(monkeypatch, 4)
    with pytest.raises(Killed):
        run(cfg_for(tiny_model_dir, data, out), lm=tiny_lm)
    monkeypatch.undo()
    (out / "checkpoints" / "step_000004.safetensors").write_bytes(pickle.dumps(Payload()))
    run(cfg_for(tiny_model_dir, data, out), resume=True, lm=tiny_lm)
    assert not os.path.exists(marker)
    assert "step_000004.safetensors is unreadable" in caplog.text


# --- metric sinks --------------------------------------------------------------------------------------


def test_tensorboard_sink_gets_the_same_scalars(tiny_lm, tiny_model_dir, data, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = run(cfg_for(tiny_model_dir, data, tmp_path / "run", metrics=["tensorboard"]), lm=tiny_lm)
    acc = EventAccumulator(str(result.run_dir / "tensorboard"))
    acc.Reload()
    losses = [e.value for e in acc.Scalars("train_loss")]
    logged = [r["train_loss"] for r in records(result.run_dir / "metrics.jsonl") if "train_loss" in r]
    assert losses == pytest.approx(logged)


def test_wandb_sink_works_offline(tiny_lm, tiny_model_dir, data, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    result = run(cfg_for(tiny_model_dir, data, tmp_path / "run", metrics=["wandb"], max_steps=2), lm=tiny_lm)
    assert list((result.run_dir / "wandb").glob("offline-run-*"))


def test_unknown_sink_is_a_config_error(tiny_lm, tiny_model_dir, data, tmp_path):
    with pytest.raises(ConfigError, match="unknown metrics sink 'mlflow'"):
        run(cfg_for(tiny_model_dir, data, tmp_path / "run", metrics=["mlflow"]), lm=tiny_lm)


# --- defect 13: the lane plan does not depend on the machine, and a resumed sweep reuses it -----------


def sweep_cfg(tiny_model_dir, corpus, out, **kw) -> DistanceConfig:
    base = dict(model=str(tiny_model_dir), device="cpu", precision="fp32", tokens=(0, 1, 2, 3), seeds=2,
                max_steps=3, batch_size=2, checkpoint_every=1, num_samples=0, bootstrap_samples=20, report=False,
                show_progress=False, out=str(out),
                task=TaskConfig(name="repetition", corpus=str(corpus), num_train=4, num_eval=2, context_tokens=4,
                                target_tokens=2))
    base.update(kw)
    return build_config(DistanceConfig, flags=base)


def test_lane_plan_is_the_same_whatever_the_free_memory(tiny_lm, tiny_model_dir, tmp_path, monkeypatch):
    from softeval.engine import packing

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TINY_TEXT * 3)
    plans = []
    for free in (2 ** 20, 2 ** 40):
        monkeypatch.setattr(packing, "available_memory_bytes", lambda device, free=free: free)
        out = tmp_path / f"sweep{free}"
        run_sweep(sweep_cfg(tiny_model_dir, corpus, out), lm=tiny_lm)
        plans.append(json.loads((out / "plan.json").read_text())["groups"])
    assert plans[0] == plans[1]


def test_resumed_sweep_keeps_its_plan(tiny_lm, tiny_model_dir, tmp_path, monkeypatch):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TINY_TEXT * 3)
    out = tmp_path / "sweep"
    kill_at_step(monkeypatch, 2)
    with pytest.raises(Killed):
        run_sweep(sweep_cfg(tiny_model_dir, corpus, out, max_batch_tokens=40), lm=tiny_lm)
    monkeypatch.undo()
    plan = json.loads((out / "plan.json").read_text())
    assert len(plan["groups"]) > 1
    # continued with another budget: the stored plan wins, so every cell keeps its lane partners
    run_sweep(sweep_cfg(tiny_model_dir, corpus, out, max_batch_tokens=0), lm=tiny_lm)
    assert json.loads((out / "plan.json").read_text()) == plan
    straight = tmp_path / "straight"
    run_sweep(sweep_cfg(tiny_model_dir, corpus, straight, max_batch_tokens=40), lm=tiny_lm)
    for cell in (out / "cells").iterdir():
        a = json.loads((cell / "cell.json").read_text())
        b = json.loads((straight / "cells" / cell.name / "cell.json").read_text())
        assert (a["loss"], a["token_accuracy"]) == (b["loss"], b["token_accuracy"]), cell.name


def test_kill_between_two_lanes_checkpoints_resumes_both_at_their_common_step(tiny_lm, tiny_model_dir, tmp_path,
                                                                              monkeypatch):
    """Lanes save one after another: a kill between two saves leaves them at different steps. Both must resume
    from their common step (the finished-looking lane trains along again), or the lagging lane's next steps
    run in another batch and end a few ulps away from the uninterrupted sweep."""
    from safetensors.torch import load_file

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TINY_TEXT * 3)
    kw = dict(tokens=(1, 3), seeds=2, max_steps=6, checkpoint_every=2, max_batch_tokens=10_000)
    straight = tmp_path / "straight"
    run_sweep(sweep_cfg(tiny_model_dir, corpus, straight, **kw), lm=tiny_lm)
    assert len(json.loads((straight / "plan.json").read_text())["groups"]) == 1  # all four cells are lanes of one pass

    out = tmp_path / "killed"
    real_save = engine.save_checkpoint
    saved = []

    def save_then_die(lane, **kw):
        if lane.step == 4 and len([s for s in saved if s == 4]) == 2:
            raise Killed  # two lanes hold step 4, the other two still only step 2
        saved.append(lane.step)
        return real_save(lane, **kw)

    monkeypatch.setattr(engine, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        run_sweep(sweep_cfg(tiny_model_dir, corpus, out, **kw), lm=tiny_lm)
    monkeypatch.undo()
    run_sweep(sweep_cfg(tiny_model_dir, corpus, out, **kw), lm=tiny_lm)
    for cell in sorted((straight / "cells").iterdir()):
        if cell.name == "n0":
            continue
        a = load_file(str(cell / "prompt.safetensors"))
        b = load_file(str(out / "cells" / cell.name / "prompt.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a), cell.name
        assert records(cell / "metrics.jsonl") == records(out / "cells" / cell.name / "metrics.jsonl"), cell.name


# --- issue 29 defect 10: a failed lane must not send its partners back to step 0 ------------------------


def poison_lane_at(monkeypatch, cell: str, step: int):
    """Make `cell`'s loss non-finite when it reaches `step` (its prompt becomes NaN), on every attempt."""
    real = engine.train_step

    def poisoning(ctx, lanes):
        for lane in lanes:
            if lane.name == cell and lane.step == step and lane.active:
                with torch.no_grad():
                    for p in lane.prompt.parameters():
                        p.fill_(float("nan"))
        return real(ctx, lanes)

    monkeypatch.setattr(engine, "train_step", poisoning)


def test_a_failed_lane_keeps_its_partners_common_checkpoint(tiny_lm, tiny_model_dir, tmp_path, monkeypatch):
    """Three cells train as lanes of one group; n2_s0 fails (non-finite loss) at step 5 > 2 × checkpoint_every,
    keeping its step-4 checkpoint. Its partners go on to step 10 saving and pruning theirs. Killed at step 9 and
    re-run, the group must resume at the common step 4 (not 0), and the partners end bit-identical to an
    uninterrupted run with the same failure."""
    from softeval.distance import sweep as distance
    from safetensors.torch import load_file

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TINY_TEXT * 3)
    kw = dict(tokens=(1, 2, 3), seeds=1, max_steps=10, checkpoint_every=2, max_batch_tokens=10_000)
    straight = tmp_path / "straight"
    poison_lane_at(monkeypatch, "n2_s0", 5)
    run_sweep(sweep_cfg(tiny_model_dir, corpus, straight, **kw), lm=tiny_lm)
    assert json.loads((straight / "plan.json").read_text())["groups"] == [[[1, 0], [2, 0], [3, 0]]]
    assert json.loads((straight / "cells" / "n2_s0" / "cell.json").read_text())["status"] == "failed"

    out = tmp_path / "killed"
    real_step = engine.train_step

    def dying(ctx, lanes):
        if any(lane.step == 9 for lane in lanes):
            raise Killed
        return real_step(ctx, lanes)

    monkeypatch.setattr(engine, "train_step", dying)
    with pytest.raises(Killed):
        run_sweep(sweep_cfg(tiny_model_dir, corpus, out, **kw), lm=tiny_lm)
    monkeypatch.setattr(engine, "train_step", real_step)  # still poisoning n2_s0 at step 5 on the re-run
    resumed_at = []
    real_resume = distance.resume_lanes
    monkeypatch.setattr(distance, "resume_lanes", lambda lanes: resumed_at.append(real_resume(lanes)) or resumed_at[-1])
    run_sweep(sweep_cfg(tiny_model_dir, corpus, out, **kw), lm=tiny_lm)
    assert resumed_at == [4]
    for name in ("n1_s0", "n3_s0"):
        a = load_file(str(straight / "cells" / name / "prompt.safetensors"))
        b = load_file(str(out / "cells" / name / "prompt.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a), name
        assert records(straight / "cells" / name / "metrics.jsonl") == records(out / "cells" / name / "metrics.jsonl")
    failed = json.loads((out / "cells" / "n2_s0" / "cell.json").read_text())
    assert (failed["status"], failed["steps"]) == ("failed", 5)


# --- issue 29 defect 17: checkpoints do not carry (or restore) the global CPU RNG ------------------------


def test_resuming_leaves_the_callers_random_state_alone(tiny_lm, tiny_model_dir, data, tmp_path, monkeypatch,
                                                       reference):
    out = tmp_path / "killed"
    kill_at_step(monkeypatch, 5)
    with pytest.raises(Killed):
        run(cfg_for(tiny_model_dir, data, out), lm=tiny_lm)
    monkeypatch.undo()
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    run(cfg_for(tiny_model_dir, data, out), lm=tiny_lm)  # resumes from step 3
    assert torch.equal(torch.rand(3), expected)  # training drew nothing from the caller's RNG, nor reset it
    assert_same_as(reference, out)


def test_a_checkpoint_with_the_old_rng_tensor_still_resumes(tiny_lm, tiny_model_dir, data, tmp_path, monkeypatch,
                                                            reference):
    from softeval.store import write_checkpoint

    out = tmp_path / "old"
    kill_at_step(monkeypatch, 5)
    with pytest.raises(Killed):
        run(cfg_for(tiny_model_dir, data, out), lm=tiny_lm)
    monkeypatch.undo()
    for _, path in RunFolder(out).checkpoints():  # as the code before issue 29 wrote them
        tensors, meta = read_checkpoint(path)
        write_checkpoint(path, {**tensors, "rng_cpu": torch.get_rng_state()}, meta)
    run(cfg_for(tiny_model_dir, data, out), lm=tiny_lm)
    assert_same_as(reference, out)


# --- issue 29 defect 9: a sweep keeps the torch thread count it started with -------------------------


def test_a_continued_sweep_trains_with_the_thread_count_it_started_with(tiny_lm, tiny_model_dir, tmp_path,
                                                                       monkeypatch):
    """Started with 2 torch threads, killed, continued in a process whose default is 1 (a Ray unit with one CPU
    would be): every lane group must still train with 2, the count plan.json recorded."""
    from softeval.distance import sweep as distance

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TINY_TEXT * 3)
    out = tmp_path / "sweep"
    before = torch.get_num_threads()
    seen = []
    real_group = distance.train_lane_group

    def spying(*args, **kw):
        seen.append(torch.get_num_threads())
        return real_group(*args, **kw)

    monkeypatch.setattr(distance, "train_lane_group", spying)
    try:
        torch.set_num_threads(2)
        kill_at_step(monkeypatch, 2)
        with pytest.raises(Killed):
            run_sweep(sweep_cfg(tiny_model_dir, corpus, out, tokens=(0, 1), seeds=1), lm=tiny_lm)
        assert json.loads((out / "plan.json").read_text())["torch_threads"] == 2
        monkeypatch.setattr(engine, "train_step", real_train_step)  # no more kill; the spy stays
        torch.set_num_threads(1)
        run_sweep(sweep_cfg(tiny_model_dir, corpus, out, tokens=(0, 1), seeds=1), lm=tiny_lm)
        assert seen == [2, 2]
        assert torch.get_num_threads() == 1  # the caller's setting is given back
    finally:
        torch.set_num_threads(before)

