"""The executor seam (softeval.executors): the same units give the same results and files in-process and as
Ray tasks; a user error fails once; a killed worker is retried and its unit completes; logs per unit.

The Ray tests share one local Ray instance with 2 CPUs (conftest `local_ray`, a few seconds to start) and need
the `ray` extra (pip install 'softeval[ray]'; CI installs it)."""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path

import pytest
import torch

from softeval.errors import ConfigError, DataError, ExecutorError
from softeval.executors import Unit, run_units
from softeval.store import atomic_write_json

logger = logging.getLogger("softeval.tests.toy")


# --------------------------------------------------------------------------- toy units (top level: Ray imports them)


def _attempt(unit: Unit) -> int:
    """Count this attempt in a file next to the unit's output; return the attempt number (1-based)."""
    path = Path(unit.payload["out"]) / f"{unit.name}.attempts"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    return len(path.read_text().splitlines())


def toy_unit(unit: Unit) -> dict:
    """A deterministic float computation that writes its result file, like a distance cell."""
    attempt = _attempt(unit)
    p = unit.payload
    if p.get("kill_on_first") and attempt == 1:
        os.kill(os.getpid(), signal.SIGKILL)  # the worker process dies mid-unit, before any result is written
    if p.get("kill_always"):
        os.kill(os.getpid(), signal.SIGKILL)
    if p.get("user_error"):
        raise DataError(f"bad data in {unit.name}: line 3 is not JSON")
    if p.get("bug"):
        raise ZeroDivisionError("a bug")
    generator = torch.Generator().manual_seed(p["seed"])
    x = torch.randn(64, 64, generator=generator)
    value = float((x @ x.T).tanh().sum())
    logger.info("toy %s computed %r", unit.name, value)
    record = {"name": unit.name, "value": value}
    atomic_write_json(Path(p["out"]) / "cells" / f"{unit.name}.json", record)
    return record


def toy_units(out: Path, count: int = 4, **flags) -> list[Unit]:
    return [Unit(name=f"u{i}", payload={"out": str(out), "seed": i, **flags}) for i in range(count)]


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / "cells").rglob("*.json"))}


# --------------------------------------------------------------------------- local executor (no Ray)


def test_local_runs_units_in_order_and_logs_each(tmp_path):
    seen = []
    out = run_units(toy_units(tmp_path), toy_unit, executor="local", log_dir=tmp_path / "logs", show_progress=False,
                    on_result=lambda u, r: seen.append(u.name))
    assert [r["name"] for r in out] == ["u0", "u1", "u2", "u3"] == seen
    log = (tmp_path / "logs" / "u2.log").read_text()
    assert f"pid={os.getpid()}" in log and "toy u2 computed" in log and "u0" not in log


def test_local_user_error_propagates_unchanged(tmp_path):
    with pytest.raises(DataError, match="bad data in u0: line 3 is not JSON"):
        run_units(toy_units(tmp_path, 2, user_error=True), toy_unit, executor="local", show_progress=False)


def test_unknown_executor_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown executor 'rey'. Did you mean 'ray'"):
        run_units(toy_units(tmp_path, 1), toy_unit, executor="rey", show_progress=False)


# --------------------------------------------------------------------------- Ray


def test_ray_results_and_files_equal_local(tmp_path, local_ray):
    local = run_units(toy_units(tmp_path / "local"), toy_unit, executor="local", show_progress=False)
    remote = run_units(toy_units(tmp_path / "ray"), toy_unit, executor="ray", log_dir=tmp_path / "ray" / "logs",
                       show_progress=False)
    assert remote == local
    assert files(tmp_path / "ray") == files(tmp_path / "local")
    # The units ran in Ray workers, not in this process, and each logged to its own file.
    for unit in ("u0", "u3"):
        log = (tmp_path / "ray" / "logs" / f"{unit}.log").read_text()
        assert "executor ray" in log and f"pid={os.getpid()}" not in log and f"toy {unit} computed" in log


def test_ray_user_error_fails_once_with_its_message(tmp_path, local_ray):
    units = [Unit("bad", {"out": str(tmp_path), "seed": 0, "user_error": True})]
    with pytest.raises(DataError, match=r"^bad data in bad: line 3 is not JSON$"):
        run_units(units, toy_unit, executor="ray", max_retries=3, show_progress=False)
    assert len((tmp_path / "bad.attempts").read_text().splitlines()) == 1


def test_ray_bug_is_not_retried(tmp_path, local_ray):
    units = [Unit("buggy", {"out": str(tmp_path), "seed": 0, "bug": True})]
    with pytest.raises(ZeroDivisionError):
        run_units(units, toy_unit, executor="ray", max_retries=3, show_progress=False)
    assert len((tmp_path / "buggy.attempts").read_text().splitlines()) == 1


def test_ray_killed_worker_is_retried_and_completes(tmp_path, local_ray):
    expected = run_units(toy_units(tmp_path / "local", 2), toy_unit, executor="local", show_progress=False)
    out = run_units(toy_units(tmp_path / "ray", 2, kill_on_first=True), toy_unit, executor="ray", max_retries=2,
                    log_dir=tmp_path / "ray" / "logs", show_progress=False)
    assert out == expected
    assert files(tmp_path / "ray") == files(tmp_path / "local")
    for unit in ("u0", "u1"):
        pids = (tmp_path / "ray" / f"{unit}.attempts").read_text().split()
        assert len(pids) == 2 and pids[0] != pids[1]  # killed once, finished in a fresh worker
        assert (tmp_path / "ray" / "logs" / f"{unit}.log").read_text().count("attempt starts") == 2


def test_ray_worker_that_keeps_dying_is_one_executor_error(tmp_path, local_ray):
    units = [Unit("doomed", {"out": str(tmp_path), "seed": 0, "kill_always": True})]
    with pytest.raises(ExecutorError, match="unit doomed did not finish after 2 attempt"):
        run_units(units, toy_unit, executor="ray", max_retries=1, show_progress=False)
    assert len((tmp_path / "doomed.attempts").read_text().splitlines()) == 2


def test_ray_refuses_a_unit_larger_than_the_cluster(tmp_path, local_ray):
    units = [Unit("big", {"out": str(tmp_path), "seed": 0}, num_gpus=1)]
    with pytest.raises(ConfigError, match="asks for 1 CPU.* and 1 GPU.* but the Ray cluster has 2 CPU"):
        run_units(units, toy_unit, executor="ray", show_progress=False)


def test_unit_resources_default_to_no_gpu_on_a_cpu_cluster(local_ray):
    from softeval.executors import ExecutorConfig, unit_resources

    assert unit_resources(ExecutorConfig(executor="ray"), "auto") == (1.0, 0.0)
    assert unit_resources(ExecutorConfig(executor="ray", gpus_per_unit=0.25, cpus_per_unit=2), "cuda") == (2.0, 0.25)
    assert unit_resources(ExecutorConfig(), "cuda") == (1.0, 0.0)  # local: nothing reserved
    with pytest.raises(ConfigError, match="ray_address .*needs --executor ray"):
        ExecutorConfig(ray_address="auto")


def test_ray_file_results_are_json(tmp_path, local_ray):
    run_units(toy_units(tmp_path, 2), toy_unit, executor="ray", show_progress=False)
    assert json.loads((tmp_path / "cells" / "u1.json").read_text())["name"] == "u1"


def test_unit_log_keeps_info_while_the_console_keeps_its_level(tmp_path):
    import logging

    class Console(logging.Handler):  # a root handler with no level of its own, like logging.basicConfig's
        records: list = []

        def emit(self, record):
            self.records.append(record)

    console, root, package = Console(), logging.getLogger(), logging.getLogger("softeval")
    before = (package.level, package.propagate)
    root.addHandler(console)
    package.setLevel(logging.WARNING)  # like `softeval -q`
    try:
        run_units(toy_units(tmp_path, 1), toy_unit, executor="local", log_dir=tmp_path / "logs", show_progress=False)
        logging.getLogger("softeval.tests.toy").warning("after the unit")
    finally:
        root.removeHandler(console)
        package.setLevel(before[0])
    assert "toy u0 computed" in (tmp_path / "logs" / "u0.log").read_text()  # INFO in the unit's file ...
    assert [r.getMessage() for r in console.records] == ["after the unit"]  # ... none on the console
    assert package.propagate == before[1]


# --------------------------------------------------------------------------- torch threads (issue 29, defect 9)


def threads_unit(unit: Unit) -> int:
    return torch.get_num_threads()


def test_a_local_unit_runs_with_its_recorded_thread_count_and_gives_the_callers_back(tmp_path):
    before = torch.get_num_threads()
    other = 3 if before != 3 else 2
    [inside] = run_units([Unit("u0", {}, torch_threads=other)], threads_unit, show_progress=False)
    assert inside == other
    assert torch.get_num_threads() == before


def test_a_ray_unit_uses_the_recorded_thread_count_not_its_cpus(tmp_path):
    """The Ray task body, called in-process: a grid started locally with N threads keeps N on a 1-CPU unit."""
    from softeval.executors import _ray_entry

    before = torch.get_num_threads()
    try:
        assert _ray_entry(threads_unit, Unit("u0", {}, num_cpus=1, torch_threads=3), None) == 3
        assert _ray_entry(threads_unit, Unit("u1", {}, num_cpus=2), None) == 2  # nothing recorded: its CPUs
    finally:
        torch.set_num_threads(before)


def test_default_thread_count_is_the_executors():
    from softeval.executors import ExecutorConfig, default_torch_threads

    assert default_torch_threads(ExecutorConfig()) == torch.get_num_threads()
    assert default_torch_threads(ExecutorConfig(executor="ray", cpus_per_unit=2)) == 2
