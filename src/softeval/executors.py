"""Where units of work run: in this process (`local`, the default) or as Ray tasks (`ray`).

A sweep or a benchmark is a grid of independent units: a lane group of distance cells, one bench
(model, task). A unit writes its own results through the run store (atomic files in the output
folder), so both executors leave the same files and a grid started with one can be finished with
the other. The driver only plans units, shows one progress bar and re-summarises from the files.

    local  units run one after another in this process (no Ray needed).
    ray    each unit is one Ray task asking for its own CPUs and GPU fraction. A worker that dies
           (killed, node lost, out of memory) is retried by Ray (`max_retries`), and the unit resumes
           from its last checkpoint. A unit that raises a `SoftevalError` (bad data, bad config) is
           not retried: the driver raises that error once, with its one-line message.

`fn(unit)` must be a top-level (importable) function: Ray ships it to the workers by reference.
Every unit logs to `log_dir/<unit name>.log` (appended, one header line per attempt, with the
worker's pid and host), whichever executor runs it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from softeval.config import Choice, option
from softeval.errors import ConfigError, ExecutorError, SoftevalError, unknown_choice
from softeval.store import safe_name

logger = logging.getLogger(__name__)


class Executor(Choice):
    local = "local"   # units one after another in this process
    ray = "ray"       # one Ray task per unit (pip install 'softeval[ray]')


EXECUTORS = tuple(e.value for e in Executor)
DEFAULT_MAX_RETRIES = 3  # Ray's own default for tasks: retries after worker deaths, never after exceptions


@dataclass(frozen=True)
class ExecutorConfig:
    """Where a grid's units run (docs/cluster.md). Never part of a result's identity: it changes no number."""

    executor: Executor = option(Executor.local, flag="--executor",
                                help="local: units in this process; ray: one Ray task per unit (docs/cluster.md)")
    ray_address: str | None = option(None, flag="--ray-address",
                                     help="Ray cluster to join, host:port or auto (default $RAY_ADDRESS, else a "
                                          "Ray instance started on this machine)")
    gpus_per_unit: float | None = option(None, flag="--gpus-per-unit",
                                         help="GPU share a unit reserves with --executor ray, e.g. 0.25 (default 1 "
                                              "when the cluster has GPUs and --device is not cpu, else 0)")
    cpus_per_unit: float = option(1.0, flag="--cpus-per-unit",
                                  help="CPU cores a unit reserves with --executor ray (also its torch threads, "
                                       "unless the grid recorded its own count when it started)")
    max_retries: int = option(DEFAULT_MAX_RETRIES, flag="--max-retries",
                              help="retries of a unit whose worker died (never of a unit that raised an error)")

    def __post_init__(self):
        object.__setattr__(self, "executor", Executor(check_executor(self.executor)))
        errors = []
        if self.gpus_per_unit is not None and not self.gpus_per_unit >= 0:
            errors.append(f"gpus_per_unit must be >= 0, got {self.gpus_per_unit}")
        if not self.cpus_per_unit > 0:
            errors.append(f"cpus_per_unit must be > 0, got {self.cpus_per_unit}")
        if self.max_retries < 0:
            errors.append(f"max_retries must be >= 0, got {self.max_retries}")
        if self.executor == Executor.local and self.ray_address:
            errors.append("ray_address (--ray-address) needs --executor ray")
        if errors:
            raise ConfigError("; ".join(errors))


@dataclass(frozen=True)
class Unit:
    """One independent piece of a grid. `payload` is whatever `fn` needs; it must pickle (configs, paths)."""

    name: str               # unique within the grid; also the log file's name
    payload: Any
    num_cpus: float = 1.0   # Ray resources the task reserves (ignored by the local executor)
    num_gpus: float = 0.0   # a fraction (0.25) lets several small units share one GPU
    torch_threads: int | None = None  # torch's CPU threads while it runs, on any executor (None: see execute_unit)


def default_torch_threads(cfg: ExecutorConfig) -> int:
    """The torch thread count a grid's units get unless the grid recorded one: what this process uses (local)
    or the CPUs a Ray unit reserves. CPU reductions (matmul, sums) split their work by thread, so fp32 results
    can differ in the last bits between counts: a grid records the count it started with (distance: plan.json)
    and every unit, local or on Ray, uses that one, so a grid finished elsewhere stays bit-identical."""
    import torch

    if cfg.executor == Executor.ray:
        return max(1, int(cfg.cpus_per_unit))
    return torch.get_num_threads()


def check_executor(name) -> str:
    value = name.value if isinstance(name, Executor) else str(name)
    if value not in EXECUTORS:
        raise ConfigError(unknown_choice("executor", value, list(EXECUTORS)))
    return value


# --------------------------------------------------------------------------- one unit, on any executor


@dataclass(frozen=True)
class UnitFailed:
    """A unit's user error, returned (not raised) from a Ray task so that Ray does not count it as a retryable
    failure and the driver can raise the original error once."""

    error: SoftevalError


def unit_log_path(log_dir: str | Path, unit: Unit) -> Path:
    return Path(log_dir) / f"{safe_name(unit.name)}.log"


class _Forward(logging.Handler):
    """Passes on to the handlers above `package` exactly the records they got before `package` was lowered to
    INFO: those at or above the level their own logger had then (a child's own level still counts)."""

    def __init__(self, package: logging.Logger, level: int):
        super().__init__()
        self.package, self.level_before = package, level

    def emit(self, record: logging.LogRecord) -> None:
        logger = logging.getLogger(record.name)
        while logger is not self.package and not logger.level and logger.parent is not None:
            logger = logger.parent
        before = self.level_before if logger is self.package else logger.level
        if record.levelno >= before and self.package.parent is not None:
            self.package.parent.callHandlers(record)


def execute_unit(fn: Callable[[Unit], Any], unit: Unit, log_dir: str | None, executor: str = "local",
                 catch_user_errors: bool = False) -> Any:
    """Run `fn(unit)` with the `softeval` logger also writing INFO and up to the unit's log file. The console
    keeps its own level: when that is above INFO (`-q`, a library caller, a Ray worker), the logger is lowered
    to INFO for the file and passes only what the console showed before on to the handlers above it."""
    package = logging.getLogger("softeval")
    handler, saved = None, None
    if log_dir is not None:
        path = unit_log_path(log_dir, unit)
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, mode="a", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.INFO)
        package.addHandler(handler)
        shown = package.getEffectiveLevel()
        if shown > logging.INFO:
            saved = (package.level, package.propagate, _Forward(package, shown))
            package.setLevel(logging.INFO)
            package.propagate = False
            package.addHandler(saved[2])
        # The pid lets an operator (or the fault test) find the process running this attempt.
        package.info("unit %s: attempt starts (executor %s, pid=%d, host %s)", unit.name, executor, os.getpid(),
                     socket.gethostname())
    t0 = time.perf_counter()
    try:
        with _torch_threads(unit.torch_threads):
            out = fn(unit)
        package.info("unit %s: done in %.1fs", unit.name, time.perf_counter() - t0)
        return out
    except SoftevalError as exc:
        if handler is not None:  # into the unit's log only: the driver prints the one-line error itself
            handler.handle(package.makeRecord(package.name, logging.ERROR, __file__, 0, "unit %s: %s",
                                              (unit.name, exc), None))
        if catch_user_errors:
            return UnitFailed(exc)
        raise
    finally:
        if handler is not None:
            package.removeHandler(handler)
            handler.close()
        if saved is not None:
            package.setLevel(saved[0])
            package.propagate = saved[1]
            package.removeHandler(saved[2])


@contextlib.contextmanager
def _torch_threads(count: int | None):
    """torch's CPU thread count set to `count` while a unit runs, and given back after (the local executor
    runs units in the caller's process, whose setting stays theirs). None leaves it as it is."""
    import torch

    if count is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(count)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _ray_entry(fn: Callable[[Unit], Any], unit: Unit, log_dir: str | None) -> Any:
    """The Ray task body. Torch's thread pool is sized to the unit's recorded count, else to the CPUs the task
    reserved (a reused worker keeps whatever the previous unit set, and Ray sets OMP_NUM_THREADS only when
    the process starts)."""
    import torch

    torch.set_num_threads(max(1, int(unit.torch_threads or unit.num_cpus)))
    return execute_unit(fn, unit, log_dir, executor="ray", catch_user_errors=True)


# --------------------------------------------------------------------------- Ray


def ensure_ray(address: str | None = None, num_cpus: int | None = None):
    """Connect to Ray once per process: to `address` (or $RAY_ADDRESS, as `ray job submit` sets) if given,
    else start a local instance with this machine's CPUs (or `num_cpus`). Returns the `ray` module."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install 'softeval[ray]'") from None
    if ray.is_initialized():
        return ray
    try:
        if address or os.environ.get("RAY_ADDRESS"):
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        else:
            # A local instance's workers start from this interpreter's environment; handing them this
            # process's import path lets them import whatever the driver can (an uninstalled checkout, tests).
            path = os.pathsep.join(p for p in __import__("sys").path if p)
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING, runtime_env={"env_vars": {"PYTHONPATH": path}})
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or os.environ.get("RAY_ADDRESS") or "a local instance"
        raise ExecutorError(f"could not start or reach Ray at {where}: {str(exc).splitlines()[0]}; "
                            "check --ray-address (host:port of the head node, or 'auto')") from None
    return ray


_REMOTES: dict[tuple[bool, int], Any] = {}


def _remote(ray, uses_gpu: bool, max_retries: int):
    """The Ray remote wrapping `_ray_entry`. Exceptions are never retried (retry_exceptions=False): user errors
    come back as `UnitFailed`, and a bug would fail the same way N times. GPU units get a fresh worker each
    (max_calls=1, Ray's default for GPU tasks): a reused process keeps the CUDA device it first initialised,
    which need not be the one Ray assigns to the next unit. CPU workers are reused, and so is their model cache."""
    key = (uses_gpu, max_retries)
    if key not in _REMOTES:
        _REMOTES[key] = ray.remote(max_retries=max_retries, retry_exceptions=False,
                                   max_calls=1 if uses_gpu else 0)(_ray_entry)
    return _REMOTES[key]


def _cluster_resources(ray) -> tuple[float, float]:
    res = ray.cluster_resources()
    return float(res.get("CPU", 0)), float(res.get("GPU", 0))


def _check_fits(ray, units: Sequence[Unit]) -> None:
    """A unit asking for more than the whole cluster has would wait forever: refuse it before submitting."""
    cpus, gpus = _cluster_resources(ray)
    for unit in units:
        if unit.num_gpus > gpus or unit.num_cpus > cpus:
            raise ConfigError(f"unit {unit.name} asks for {unit.num_cpus:g} CPU(s) and {unit.num_gpus:g} GPU(s) but "
                              f"the Ray cluster has {cpus:g} CPU(s) and {gpus:g} GPU(s); lower the per-unit "
                              "resources or add nodes")


def unit_resources(cfg: ExecutorConfig, device: str) -> tuple[float, float]:
    """(CPUs, GPUs) each unit of a grid reserves. Without --gpus-per-unit: a whole GPU when the Ray cluster has
    GPUs and the units may use one (--device is not cpu), else none. The local executor reserves nothing."""
    if cfg.executor != Executor.ray:
        return cfg.cpus_per_unit, 0.0
    if cfg.gpus_per_unit is not None:
        return cfg.cpus_per_unit, float(cfg.gpus_per_unit)
    _, gpus = _cluster_resources(ensure_ray(cfg.ray_address))
    return cfg.cpus_per_unit, (1.0 if gpus > 0 and str(device) != "cpu" else 0.0)


# --------------------------------------------------------------------------- the driver


def run_units(units: Sequence[Unit], fn: Callable[[Unit], Any], executor: str = "local",
              address: str | None = None, log_dir: str | Path | None = None,
              max_retries: int = DEFAULT_MAX_RETRIES, show_progress: bool = True, desc: str = "units",
              done_before: int = 0, on_result: Callable[[Unit, Any], None] | None = None) -> list[Any]:
    """Run every unit; return `fn`'s results in the order of `units`.

    One progress bar (units done / total, with ETA) counts `done_before` units finished by an earlier
    run. `on_result(unit, result)` runs on the driver as each unit finishes (in completion order).
    The first failing unit stops the grid: its error is raised (a `SoftevalError` once, as the unit
    raised it) and units not started yet are cancelled; finished units stay on disk for a re-run.
    """
    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    executor = check_executor(executor)
    names = [u.name for u in units]
    if len(set(names)) != len(names):
        raise ValueError(f"unit names repeat: {names}")  # a bug in the caller's plan, not a user error
    log = None if log_dir is None else str(log_dir)
    results: list[Any] = [None] * len(units)
    with logging_redirect_tqdm(), tqdm(total=done_before + len(units), initial=done_before, desc=desc, unit="unit",
                                       disable=not show_progress, dynamic_ncols=True) as bar:
        if executor == "local":
            for i, unit in enumerate(units):
                bar.set_postfix_str(unit.name)
                results[i] = execute_unit(fn, unit, log)
                if on_result is not None:
                    on_result(unit, results[i])
                bar.update(1)
            return results

        ray = ensure_ray(address)
        _check_fits(ray, units)
        pending = {}
        for i, unit in enumerate(units):
            remote = _remote(ray, unit.num_gpus > 0, max_retries)
            ref = remote.options(num_cpus=unit.num_cpus, num_gpus=unit.num_gpus,
                                 name=f"softeval:{unit.name}").remote(fn, unit, log)
            pending[ref] = i
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    i = pending.pop(ref)
                    out = _get(ray, ref, units[i], max_retries)
                    if isinstance(out, UnitFailed):
                        raise out.error
                    results[i] = out
                    if on_result is not None:
                        on_result(units[i], out)
                    bar.set_postfix_str(units[i].name)
                    bar.update(1)
        finally:
            for ref in pending:  # after a failure or Ctrl-C: units not finished are stopped, not left running
                ray.cancel(ref, force=True)
    return results


def _get(ray, ref, unit: Unit, max_retries: int) -> Any:
    from ray.exceptions import RayTaskError

    try:
        return ray.get(ref)
    except RayTaskError:
        raise  # a bug inside the unit: Ray re-raises it as the original exception type with the worker's traceback
    except ray.exceptions.RayError as exc:
        # The worker kept dying (killed, out of memory, node lost) after max_retries retries.
        raise ExecutorError(f"unit {unit.name} did not finish after {max_retries + 1} attempt(s): "
                            f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}; re-run the same command "
                            "to resume from the last checkpoint") from None


# --------------------------------------------------------------------------- per-process model cache

_MODELS: dict[tuple, Any] = {}


def cached_model(ref: str, device: str = "auto", dtype: str = "auto", device_map: str | None = None):
    """`models.load_model`, once per process for consecutive units on the same model. One model is kept at a
    time: a worker moving on to another model frees the last one first (memory, not speed, is scarce)."""
    from softeval.engine.models import load_model

    key = (ref, device, dtype, device_map)
    if key not in _MODELS:
        forget_models()
        _MODELS[key] = load_model(ref, device, dtype, show_progress=False, device_map=device_map)
    return _MODELS[key]


def remember_model(lm, ref: str, device: str = "auto", dtype: str = "auto", device_map: str | None = None) -> None:
    """Seed the cache with a model the caller already loaded (the local executor then reuses the driver's)."""
    if _MODELS.get((ref, device, dtype, device_map)) is not lm:
        forget_models()
        _MODELS[(ref, device, dtype, device_map)] = lm


_VALUES: dict[tuple, Any] = {}


def cached_value(key: tuple, build: Callable[[], Any]) -> Any:
    """Something a unit rebuilds from its settings (a task's examples), kept per process while its model is."""
    if key not in _VALUES:
        _VALUES[key] = build()
    return _VALUES[key]


def forget_models() -> None:
    import gc

    _MODELS.clear()
    _VALUES.clear()
    gc.collect()


__all__ = ["Executor", "EXECUTORS", "ExecutorConfig", "Unit", "UnitFailed", "run_units", "execute_unit", "ensure_ray",
           "unit_resources", "default_torch_threads", "cached_model", "cached_value", "remember_model", "forget_models", "check_executor"]
