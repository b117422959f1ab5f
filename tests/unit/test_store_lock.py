"""One writer per result folder, and metric sinks that hold each record once (issue 29, defect 13).

The lock is tested between real processes: a helper process takes `store.folder_lock` (as a command does for
its whole run) and the test process is the second one on the same folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import types

import pytest
from conftest import write_jsonl
from test_run_store import Killed, cfg_for, kill_at_step, records

from softeval.cli import main
from softeval.errors import SoftevalError
from softeval.store import LOCK_FILE, RunFolder, folder_lock, open_metric_sink


@pytest.fixture()
def data(tmp_path):
    return write_jsonl(tmp_path / "d.jsonl", [{"prompt": f"the {w} fox", "completion": " jumps over the dog."}
                                             for w in ["quick", "brown", "lazy", "red"] * 6])


HOLD = """
import sys, time
from softeval.store import folder_lock
with folder_lock(sys.argv[1], "train run"):
    open(sys.argv[2], "w").close()
    time.sleep(120)
"""


@pytest.fixture()
def holder(tmp_path):
    """Start a process that holds the lock on a folder; returns (process, folder)."""
    procs = []

    def start(folder):
        ready = tmp_path / f"ready-{len(procs)}"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), str(ready)], env=env)
        procs.append(proc)
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, "the lock holder died"
            assert time.monotonic() < deadline, "the lock holder did not start"
            time.sleep(0.05)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_second_process_is_refused_in_one_line_naming_the_holder(tmp_path, holder):
    out = tmp_path / "run"
    proc = holder(out)
    with pytest.raises(SoftevalError) as info, folder_lock(out, "train run"):
        pytest.fail("two processes hold one folder's lock")
    message = str(info.value)
    assert "\n" not in message
    assert f"pid {proc.pid}" in message and os.uname().nodename in message and "in use" in message


def test_a_killed_holder_releases_the_lock(tmp_path, holder):
    out = tmp_path / "run"
    proc = holder(out)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / LOCK_FILE).exists()  # a kill leaves the file behind; the kernel released the lock itself
    with folder_lock(out, "train run"):
        info = json.loads((out / LOCK_FILE).read_text())
        assert info["pid"] == os.getpid()  # the new holder's name, not the dead one's
    assert not (out / LOCK_FILE).exists()


def test_the_lock_is_free_again_after_a_normal_exit_and_leaves_nothing(tmp_path):
    out = tmp_path / "new" / "run"
    with folder_lock(out, "train run"):
        assert (out / LOCK_FILE).exists()
    assert not (tmp_path / "new").exists()  # folders made only to hold the lock are removed with it
    with folder_lock(out, "train run"):
        (out / "results.json").write_text("{}")
    assert os.listdir(out) == ["results.json"]


def test_train_on_a_folder_in_use_is_refused_and_touches_nothing(tiny_lm, tiny_model_dir, data, tmp_path, holder,
                                                                 monkeypatch, capsys):
    """The race of two `softeval train --out X`: the first one killed half-way (folder with checkpoints and
    metrics), continued by one process while a second starts on it. The second must not wait, not rewind
    metrics.jsonl, not delete checkpoints: one error line, exit 2, every file unchanged."""
    from softeval.train import run

    out = tmp_path / "run"
    kill_at_step(monkeypatch, 5)
    with pytest.raises(Killed):
        run(cfg_for(tiny_model_dir, data, out), lm=tiny_lm)
    monkeypatch.undo()
    proc = holder(out)
    before = snapshot(out)
    capsys.readouterr()
    t0 = time.monotonic()
    code = main(["train", "--resume", str(out), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and time.monotonic() - t0 < 30
    assert len(err) == 1 and err[0].startswith("softeval: error:") and f"pid {proc.pid}" in err[0], err
    assert snapshot(out) == before


# --- sinks: a resumed run (or a retried Ray unit) logs every step after its checkpoint again ------------


def test_tensorboard_holds_each_record_once_after_a_resume(tiny_lm, tiny_model_dir, data, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from softeval.train import run

    def scalars(run_dir, tag):
        acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
        acc.Reload()
        return [(e.step, e.value) for e in acc.Scalars(tag)]

    straight = run(cfg_for(tiny_model_dir, data, tmp_path / "straight", metrics=["tensorboard"]), lm=tiny_lm).run_dir
    out = tmp_path / "killed"
    kill_at_step(monkeypatch, 5)  # checkpoint at step 3: steps 4 and 5 are logged again by the resumed run
    with pytest.raises(Killed):
        run(cfg_for(tiny_model_dir, data, out, metrics=["tensorboard"]), lm=tiny_lm)
    monkeypatch.undo()
    run(cfg_for(tiny_model_dir, data, out, metrics=["tensorboard"]), lm=tiny_lm)
    for tag in ("train_loss", "eval_loss"):
        assert scalars(out, tag) == scalars(straight, tag), tag  # each step once, with the same value


def test_tensorboard_writes_again_what_a_killed_writer_lost(tmp_path):
    """A SIGKILLed writer loses events it had not flushed: what to skip comes from the event files, not from
    metrics.jsonl (which holds every record, fsynced)."""
    pytest.importorskip("tensorboard")
    first = open_metric_sink(tmp_path, ["tensorboard"])
    for step in (1, 2, 3):
        first.log({"step": step, "train_loss": float(step)})
    first.close()
    # the killed attempt's records 4-5 reached metrics.jsonl but not the event file
    from softeval.store import append_jsonl, tensorboard_high_water

    for step in (4, 5):
        append_jsonl(tmp_path / "metrics.jsonl", {"step": step, "train_loss": float(step)})
    second = open_metric_sink(tmp_path, ["tensorboard"])
    for step in (3, 4, 5, 6):
        second.log({"step": step, "train_loss": float(step)})
    second.close()
    assert tensorboard_high_water(tmp_path / "tensorboard") == {"train_loss": 6}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    assert [e.step for e in acc.Scalars("train_loss")] == [1, 2, 3, 4, 5, 6]


class FakeWandb(types.ModuleType):
    """The part of the wandb API the sink uses, recording every run and every logged row."""

    def __init__(self):
        super().__init__("wandb")
        self.runs = []

    def init(self, **kwargs):
        run = types.SimpleNamespace(kwargs=kwargs, rows=[], finish=lambda: None)
        run.log = lambda values, step: run.rows.append((step, dict(values)))
        self.runs.append(run)
        return run


def test_wandb_continues_one_run_without_repeating_steps(tiny_lm, tiny_model_dir, data, tmp_path, monkeypatch):
    from softeval.train import run

    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    run(cfg_for(tiny_model_dir, data, tmp_path / "straight", metrics=["wandb"]), lm=tiny_lm)
    [straight] = fake.runs
    fake.runs.clear()
    out = tmp_path / "killed"
    kill_at_step(monkeypatch, 5)
    with pytest.raises(Killed):
        run(cfg_for(tiny_model_dir, data, out, metrics=["wandb"]), lm=tiny_lm)
    monkeypatch.undo()  # the kill, and the fake wandb with it: put the fake back
    monkeypatch.setitem(sys.modules, "wandb", fake)
    run(cfg_for(tiny_model_dir, data, out, metrics=["wandb"]), lm=tiny_lm)
    first, second = fake.runs
    assert first.kwargs["id"] == second.kwargs["id"] and second.kwargs["resume"] == "allow"
    rows = first.rows + second.rows
    assert [step for step, _ in rows] == [step for step, _ in straight.rows]  # every step once, in order
    assert rows == straight.rows


def test_records_of_one_run_folder_are_never_skipped_on_a_first_run(tmp_path):
    """The skip rule must not eat records: a fresh folder's sinks pass everything through."""
    pytest.importorskip("tensorboard")
    folder = RunFolder(tmp_path / "fresh", ["tensorboard"])
    for step in (0, 1, 2):
        folder.log({"step": step, "eval_loss": 1.0 / (step + 1)})
    folder.close()
    assert [r["step"] for r in records(tmp_path / "fresh" / "metrics.jsonl")] == [0, 1, 2]
    from softeval.store import tensorboard_high_water

    assert tensorboard_high_water(tmp_path / "fresh" / "tensorboard") == {"eval_loss": 2}


def test_every_command_that_writes_a_folder_takes_its_lock(tiny_model_dir, tmp_path, holder):
    """distance, suite, bench and stability refuse a folder another process holds, in one line, touching nothing."""
    from softeval.bench.runner import run as run_bench
    from softeval.config import build_config
    from softeval.distance.config import DistanceConfig
    from softeval.distance.sweep import run as run_sweep
    from softeval.errors import SoftevalError
    from softeval.distance.grid import analyze_grid, run_grid
    from softeval.tasks import TaskConfig

    from tests.unit.test_bench_runner import _cfg, _quiz

    data = tmp_path / "d.jsonl"
    data.write_text("".join('{"prompt": "the fox", "completion": " jumps."}\n' for _ in range(8)))
    sweep = build_config(DistanceConfig, flags=dict(
        model=str(tiny_model_dir), device="cpu", tokens="0,1", seeds=1, max_steps=1, show_progress=False,
        report=False, out=str(tmp_path / "sweep"), task=TaskConfig(name="jsonl", data=str(data))))
    from softeval.distance.suite import SuiteConfig, run as run_suite

    behaviour = tmp_path / "b.jsonl"
    behaviour.write_text("".join(json.dumps({"question": f"Q{i}?", "answer_matching_behavior": " Yes",
                                             "answer_not_matching_behavior": " No"}) + "\n" for i in range(6)))
    suite = lambda out: run_suite(build_config(SuiteConfig, flags=dict(  # noqa: E731
        model=str(tiny_model_dir), device="cpu", data=str(behaviour), tokens="0,1", seeds=1, max_steps=1,
        show_progress=False, report=False, out=str(out))))
    calls = {"distance sweep": lambda out: run_sweep(sweep.__class__(**{**sweep.__dict__, "out": str(out)})),
             "behaviour suite": suite,
             "bench run": lambda out: run_bench(_cfg(tiny_model_dir, _quiz(tmp_path / "quiz"), out)),
             "stability grid": lambda out: run_grid(sweep, [0.1], [4], out),
             "stability analysis": analyze_grid}
    for what, call in calls.items():
        out = tmp_path / what.replace(" ", "_")
        out.mkdir()
        (out / "mine.txt").write_text("kept")
        proc = holder(out)
        before = snapshot(out)
        with pytest.raises(SoftevalError, match=f"pid {proc.pid}"):
            call(out)
        assert snapshot(out) == before, what
        proc.kill()
        proc.wait()
