"""The run store: the one owner of softeval's on-disk state.

Every file softeval writes goes through `atomic_write_*` (write a temp file in the same directory,
fsync, `os.replace`), so a killed process leaves either the old file or the new one, never half of
one. JSON is written strictly (non-finite floats become null; `allow_nan=False`), so every file parses
in browsers and jq. `metrics.jsonl` is append-only and its reader ignores a torn last line.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import torch


def softeval_home() -> Path:
    """Cache root for models and hashes: $SOFTEVAL_HOME, else the user cache dir."""
    env = os.environ.get("SOFTEVAL_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("softeval"))


def _atomic_write(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600 files; give results the permissions any normally written file would get.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    _atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def strict_json(obj: Any) -> Any:
    """`obj` with every non-finite float replaced by None (JSON has no NaN/inf)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    return obj


def dumps_json(obj: Any, indent: int | None = 2) -> str:
    """Strict JSON text: NaN/inf written as null, anything else non-JSON as its str()."""
    return json.dumps(strict_json(obj), indent=indent, sort_keys=False, default=str, allow_nan=False)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, dumps_json(obj) + "\n")


def append_jsonl(path: Path, record: dict) -> None:
    """Append one line and fsync: a crash loses at most this line, never earlier ones."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(dumps_json(record, indent=None) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: Path) -> Iterator[dict]:
    """Read records; a torn final line (from a kill mid-write) is skipped."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def truncate_jsonl(path: Path, keep) -> None:
    """Rewrite `path` keeping only records for which keep(record) is true (used on resume)."""
    records = [r for r in read_jsonl(path) if keep(r)]
    atomic_write_text(path, "".join(dumps_json(r, indent=None) + "\n" for r in records))


def read_json(path: Path, what: str = "file") -> Any:
    """Parse a JSON file softeval wrote; a missing, unreadable or corrupt one is a one-line user error."""
    from softeval.errors import SoftevalError

    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SoftevalError(f"{path} is missing ({what})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SoftevalError(f"{path} is not a readable {what} ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                            "restore it or choose another folder") from None


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str, max_len: int = 80) -> str:
    """A single, harmless path component for a user-given name: no separators, no '..', no hidden files."""
    out = _UNSAFE.sub("_", str(name)).strip("._-")[-max_len:].strip("._-")
    return out or "unnamed"


_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def hash_file(path: str | Path) -> str:
    """sha256 of a file's bytes (memoised per path, size and mtime within one process)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASH_CACHE:
        digest = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        _HASH_CACHE[key] = digest.hexdigest()
    return _HASH_CACHE[key]


# --------------------------------------------------------------------------- claiming a result folder

IDENTITY_FILE = "identity.json"


def check_writable_folder(folder: Path, what: str) -> None:
    """Refuse, in one line and before any work, a folder that cannot be made or written: one below a regular
    file, or inside a read-only folder."""
    from softeval.errors import ConfigError

    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"cannot write {what} to {folder}: {existing} is a file, not a folder; choose another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write {what} to {folder}: {existing} is not writable; choose another --out")


def claim_folder(folder: Path, identity: dict, what: str, adopt: bool = False, file: str = IDENTITY_FILE) -> bool:
    """The single same-identity check. Returns True when `folder` already holds results of this identity
    (continue them), False when it is new or empty (identity written now). Refuses a folder holding
    another identity, listing the differences, and a non-empty folder that is not a softeval result
    (unless `adopt`: the user named it as theirs, e.g. `--resume`, and it lost its identity file to a kill)."""
    from softeval.errors import ConfigError

    folder = Path(folder)
    check_writable_folder(folder, f"the {what}")
    path = folder / file
    if path.exists():
        from softeval.identity import differences, is_current

        stored = read_json(path, f"{what} identity")
        if not is_current(stored):
            raise ConfigError(f"{folder} holds a {what} written by an earlier softeval, whose identity does not tie "
                              "its numbers to the weights, precision and data that made them; it stays readable "
                              "(softeval report / compare / show) but cannot be continued: choose another --out")
        changed = differences(stored, identity)
        if changed:
            raise ConfigError(f"{folder} holds a {what} with another identity ({'; '.join(changed)}); "
                              "re-run with the same settings and data to continue it, or choose another --out")
        return True
    existing = folder.exists() and any(p.name not in (".gitkeep", LOCK_FILE) for p in folder.iterdir())
    if existing and not adopt:
        raise ConfigError(f"{folder} exists and does not hold a softeval {what} (no {IDENTITY_FILE}); "
                          "choose another --out")
    try:
        atomic_write_json(path, identity)
    except OSError as exc:
        raise ConfigError(f"cannot write to {folder}: {exc.strerror or exc}; choose another --out") from None
    return existing


# --------------------------------------------------------------------------- one writer per folder

LOCK_FILE = ".lock"


def _lock_holder(fd: int) -> str:
    """Who holds the lock, from what the holder wrote into the lock file (it may not have written it yet)."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "another process (it has not said which yet)"
    command = " ".join(str(info.get("command", "?")).split())[:160]  # one line, whatever argv held
    return f"pid {info['pid']} on {info.get('host', '?')} since {info.get('started', '?')} ({command})"


def _new_dirs(folder: Path) -> list[Path]:
    """The folders `mkdir -p folder` would create, deepest first."""
    out = []
    while not folder.exists() and folder != folder.parent:
        out.append(folder)
        folder = folder.parent
    return out


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str) -> Iterator[Path]:
    """Hold an exclusive advisory lock on a result folder while a command writes it.

    Two processes writing one folder race everywhere (claim_folder's check-then-write, metrics.jsonl rewound
    on resume, old checkpoints deleted): the second one is refused at once, in one line naming the holder
    (pid, host, start time and command, which the holder writes into `folder/.lock`); it never waits.
    `flock` locks belong to the open file, so the kernel releases them when the holder ends however it
    ends (killed included): a stale `.lock` left by a kill never blocks anyone. On a normal exit the lock
    file is removed, and so are the folders created only to hold it (a run that failed at setup leaves
    nothing behind). One process takes the lock once: units of a grid run inside their driver's lock.
    Linux and macOS (fcntl); on NFS, flock is as good as the mount's lock support."""
    import fcntl

    from softeval.errors import SoftevalError

    folder = Path(folder)
    check_writable_folder(folder, f"the {what}")
    created = _new_dirs(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    for _ in range(20):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # e.g. a .lock left by another user
            raise SoftevalError(f"cannot lock {folder}: {path} is not writable ({exc.strerror}); "
                                "choose another --out") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(fd)
            os.close(fd)
            from softeval.errors import FolderInUse

            raise FolderInUse(f"{folder} is in use by another softeval {what}: {holder}; wait for it to end "
                              "or choose another --out") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed this file as we opened it: lock the one now at `path`
    else:
        raise SoftevalError(f"could not lock {path}: it keeps being replaced; is another softeval ending in a loop?")
    try:
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "what": what,
                  "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": " ".join(sys.argv)}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (dumps_json(holder, indent=None) + "\n").encode("utf-8"), 0)
        yield folder
    finally:
        # Unlink while still holding the lock: a process that opened the old file finds it gone and retries.
        with contextlib.suppress(OSError):  # the folder went read-only or away: the lock still ends with close
            path.unlink(missing_ok=True)
        os.close(fd)
        for new in created:
            try:
                new.rmdir()  # only if empty: the command wrote nothing there
            except OSError:
                break


# --------------------------------------------------------------------------- metric sinks

METRIC_SINKS = ("jsonl", "tensorboard", "wandb")


class MetricSink:
    """Where per-step metrics go. `log` takes one flat record with a 'step'; `rewind(step)` forgets records
    after `step` (a resumed run writes them again) where the backend can; `close` flushes. A backend that
    cannot forget (TensorBoard, W&B) instead skips the records it already holds, so a resumed run or a
    retried Ray unit, which logs again every step after its checkpoint, adds each record once."""

    def log(self, record: dict) -> None:
        raise NotImplementedError

    def rewind(self, step: int) -> None:
        pass

    def close(self) -> None:
        pass


class JsonlSink(MetricSink):
    """metrics.jsonl: one strict-JSON line per record, fsynced (the default; reports read it)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def log(self, record: dict) -> None:
        append_jsonl(self.path, record)

    def rewind(self, step: int) -> None:
        if self.path.exists():
            truncate_jsonl(self.path, lambda r: r.get("step", 0) <= step)


def tensorboard_high_water(log_dir: Path) -> dict[str, int]:
    """The last step of each scalar tag already in the event files under `log_dir` ({} for none). A torn last
    event (a kill mid-write) ends that file's reading (the loader stops there); the events before it count."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    high: dict[str, int] = {}
    for path in sorted(Path(log_dir).glob("events.out.tfevents.*")):
        try:
            for event in EventFileLoader(str(path)).Load():
                for value in event.summary.value:
                    high[value.tag] = max(high.get(value.tag, -1), int(event.step))
        except OSError:  # an unreadable file: nothing in it can be skipped, so its steps are written again
            continue
    return high


class TensorBoardSink(MetricSink):
    """Scalars under run_dir/tensorboard (needs `tensorboard`: pip install softeval[tensorboard])."""

    def __init__(self, log_dir: Path):
        from softeval.errors import ConfigError

        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("metrics sink 'tensorboard' needs the tensorboard package: "
                              "pip install 'softeval[tensorboard]'") from None
        # Read before the writer adds its own (empty) event file. What the files hold, not metrics.jsonl, says
        # what to skip: a killed writer loses the events it had not flushed, and those must be written again.
        self.written = tensorboard_high_water(log_dir)
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def log(self, record: dict) -> None:
        step = int(record.get("step", 0))
        for key, value in record.items():
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if key != "step" and numeric and step > self.written.get(key, -1):  # else an earlier attempt wrote it
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


class WandbSink(MetricSink):
    """Weights & Biases; offline unless WANDB_MODE says otherwise (sync later with `wandb sync`)."""

    def __init__(self, run_dir: Path, name: str, config: dict):
        from softeval.errors import ConfigError

        try:
            import wandb
        except ImportError:
            raise ConfigError("metrics sink 'wandb' needs the wandb package: pip install 'softeval[wandb]'") from None
        # One W&B run per run folder, continued by every attempt (resume="allow"), and the steps metrics.jsonl
        # already holds are not sent again: W&B's history cannot be rewound. (The id is the folder's path
        # hash: the same folder, the same run; W&B ignores `resume` offline, `wandb sync` joins by id.)
        self.written = max((int(r.get("step", 0)) for r in read_jsonl(Path(run_dir) / "metrics.jsonl")), default=-1)
        run_id = hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "softeval"), name=name, dir=str(run_dir),
                              id=run_id, resume="allow", config=strict_json(config),
                              mode=os.environ.get("WANDB_MODE", "offline"), reinit="create_new")

    def log(self, record: dict) -> None:
        values = {k: v for k, v in record.items() if k != "step" and isinstance(v, (int, float))}
        step = int(record.get("step", 0))
        if values and step > self.written:
            self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


class FanOutSink(MetricSink):
    def __init__(self, sinks: list[MetricSink]):
        self.sinks = sinks

    def log(self, record: dict) -> None:
        for sink in self.sinks:
            sink.log(record)

    def rewind(self, step: int) -> None:
        for sink in self.sinks:
            sink.rewind(step)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


def open_metric_sink(run_dir: Path, kinds: list[str] | tuple[str, ...] = ("jsonl",), name: str = "run",
                     config: dict | None = None) -> MetricSink:
    """The sink(s) a run logs to; 'jsonl' (metrics.jsonl) is always included because reports read it."""
    from softeval.errors import ConfigError, unknown_choice

    sinks: list[MetricSink] = [JsonlSink(Path(run_dir) / "metrics.jsonl")]
    for kind in kinds:
        if kind not in METRIC_SINKS:
            raise ConfigError(unknown_choice("metrics sink", kind, list(METRIC_SINKS)))
        if kind == "tensorboard":
            sinks.append(TensorBoardSink(Path(run_dir) / "tensorboard"))
        elif kind == "wandb":
            sinks.append(WandbSink(Path(run_dir), name, config or {}))
    return sinks[0] if len(sinks) == 1 else FanOutSink(sinks)


# --------------------------------------------------------------------------- checkpoints (no pickle)

CHECKPOINT_KEY = "softeval_checkpoint"


class CorruptCheckpoint(Exception):
    """A checkpoint file that cannot be read back (truncated, not safetensors, missing metadata)."""


def write_checkpoint(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Tensors as safetensors, everything else as JSON in its header: loading can never run code."""
    from safetensors.torch import save as safetensors_save

    data = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, safetensors_save(data, metadata={CHECKPOINT_KEY: dumps_json(meta, indent=None)}))


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})[CHECKPOINT_KEY])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for truncated or foreign files
        raise CorruptCheckpoint(f"{path}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    return tensors, meta


# --------------------------------------------------------------------------- one training run's folder

CHECKPOINT_RE = re.compile(r"^step_(\d+)\.safetensors$")


class RunFolder:
    """The layout of one prompt-training run (a `train` run, a distance cell, a bench tuning run):

      config.json  model.json  identity.json  metrics.jsonl  checkpoints/step_N.safetensors
      prompt.safetensors  results.json
    """

    def __init__(self, path: str | Path, sinks: tuple[str, ...] | list[str] = ("jsonl",), name: str = "run",
                 config: dict | None = None):
        self.path = Path(path)
        self._sink_kinds, self._name, self._config = tuple(sinks), name, config
        self._sink: MetricSink | None = None

    config_path = property(lambda self: self.path / "config.json")
    model_path = property(lambda self: self.path / "model.json")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    prompt_path = property(lambda self: self.path / "prompt.safetensors")
    results_path = property(lambda self: self.path / "results.json")
    checkpoint_dir = property(lambda self: self.path / "checkpoints")

    @property
    def sink(self) -> MetricSink:
        if self._sink is None:
            self.path.mkdir(parents=True, exist_ok=True)
            self._sink = open_metric_sink(self.path, self._sink_kinds, self._name, self._config)
        return self._sink

    def log(self, record: dict) -> None:
        self.sink.log(record)

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()
            self._sink = None

    def checkpoints(self) -> list[tuple[int, Path]]:
        if not self.checkpoint_dir.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.checkpoint_dir.iterdir() if (m := CHECKPOINT_RE.match(p.name))]
        return sorted(found)

    def save_checkpoint(self, step: int, tensors: dict[str, torch.Tensor], meta: dict, keep: int,
                        also_keep: int | None = None) -> Path:
        """Write step `step`'s checkpoint and delete all but the newest `keep`, except the one at `also_keep`
        (the step a lane's group resumes from, engine.shared_checkpoint_step)."""
        path = self.checkpoint_dir / f"step_{step:06d}.safetensors"
        write_checkpoint(path, tensors, {"step": step, **meta})
        for old_step, old in self.checkpoints()[:-keep]:
            if old_step != also_keep:
                old.unlink(missing_ok=True)
        return path

    def latest_checkpoint(self, at_most: int | None = None) -> tuple[Path, dict[str, torch.Tensor], dict] | None:
        """The newest readable checkpoint (at step `at_most` or before, if given); unreadable ones are renamed
        *.corrupt (and logged), falling back to the one before. None when there is none: start from step 0."""
        import logging

        for step, path in reversed(self.checkpoints()):
            if at_most is not None and step > at_most:
                continue
            try:
                tensors, meta = read_checkpoint(path)
            except CorruptCheckpoint as exc:
                logging.getLogger(__name__).warning("checkpoint %s is unreadable (%s); set aside as *.corrupt, "
                                                    "falling back to the one before", path.name, exc)
                path.rename(path.with_name(path.name + ".corrupt"))
                continue
            return path, tensors, meta
        return None

    def set_aside_checkpoints(self, from_step: int) -> Path | None:
        """Rename checkpoints at or after `from_step` to *.bad; return the newest remaining one."""
        for step, path in self.checkpoints():
            if step >= from_step and step > 0:
                path.rename(path.with_name(path.name + ".bad"))
        remaining = self.checkpoints()
        return remaining[-1][1] if remaining else None

    def read_results(self) -> dict | None:
        return read_json(self.results_path, "run results") if self.results_path.exists() else None


# --------------------------------------------------------------------------- a distance sweep's folder


class SweepFolder:
    """The layout of a `softeval distance` sweep:

      config.json model.json identity.json plan.json eval_set.json [reference.json] results.json report/
      cells/n0/cell.json                 the plain model
      cells/n16_s0/{RunFolder files, cell.json}   one trained cell; cell.json is written last and atomically
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    config_path = property(lambda self: self.path / "config.json")
    model_path = property(lambda self: self.path / "model.json")
    plan_path = property(lambda self: self.path / "plan.json")
    eval_set_path = property(lambda self: self.path / "eval_set.json")
    reference_path = property(lambda self: self.path / "reference.json")
    results_path = property(lambda self: self.path / "results.json")
    report_dir = property(lambda self: self.path / "report")

    @staticmethod
    def cell_name(n: int, seed: int) -> str:
        return "n0" if n == 0 else f"n{n}_s{seed}"

    def cell_dir(self, n: int, seed: int) -> Path:
        return self.path / "cells" / self.cell_name(n, seed)

    def run_folder(self, n: int, seed: int, sinks=("jsonl",)) -> RunFolder:
        return RunFolder(self.cell_dir(n, seed), sinks, name=f"{self.path.name}/{self.cell_name(n, seed)}")

    @staticmethod
    def finished(cell: dict | None) -> bool:
        """The one definition of a finished cell: it trained to the end and has a finite held-out loss (a cell
        whose cell.json exists may still have failed)."""
        loss = (cell or {}).get("loss")
        return (cell or {}).get("status") == "done" and isinstance(loss, (int, float)) and math.isfinite(loss)

    def read_cell(self, n: int, seed: int) -> dict | None:
        path = self.cell_dir(n, seed) / "cell.json"
        if not path.exists():
            return None
        record = read_json(path, "sweep cell")
        if not isinstance(record, dict) or "status" not in record:
            from softeval.errors import SoftevalError

            raise SoftevalError(f"{path} is not a sweep cell record; delete it and re-run the sweep to redo that cell")
        return record

    def write_cell(self, n: int, seed: int, record: dict) -> dict:
        record = {"name": self.cell_name(n, seed), "n": n, "seed": seed, **record}
        atomic_write_json(self.cell_dir(n, seed) / "cell.json", record)
        return record

    def read(self, path: Path, what: str) -> dict | None:
        return read_json(path, what) if path.exists() else None


# --------------------------------------------------------------------------- a bench folder


class BenchFolder:
    """The layout of a `softeval bench` output folder:

      config.json identity.json results.json report.html
      units/<model>/<task>/{identity.json, zero.json, few.json, soft.json, curve_<step>.json}   one per finished unit
      samples/<model>/<task>/<mode>_<form>.jsonl, curve/…                                      per-item records
      train/<model>/<task>/                            the tuning run (RunFolder) and its prompt_step_N snapshots
      train/<model>/<task>/soft_cloze/                 the soft_cloze mode's tuning run (prompt tuned on cloze)
      {units,samples,train}/<model>/<task>/seed_<s>/   the same for each further tuning seed of a tuned mode

    Model and task names come from users (spec files, paths): `safe_name` keeps each one a single harmless
    path component, so "../x" cannot leave the folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def unit_dir(self, model: str, task: str) -> Path:
        return self.path / "units" / safe_name(model) / safe_name(task)

    def samples_dir(self, model: str, task: str) -> Path:
        return self.path / "samples" / safe_name(model) / safe_name(task)

    def train_dir(self, model: str, task: str, mode: str = "soft") -> Path:
        """The soft mode's tuning run; another tuned mode's (soft_cloze) is a folder of that name below it."""
        path = self.path / "train" / safe_name(model) / safe_name(task)
        return path if mode == "soft" else path / mode

    @staticmethod
    def curve_unit(units: Path, step: int) -> Path:
        return Path(units) / f"curve_{step:06d}.json"

    @staticmethod
    def seed_dir(path: Path, seed: int, base_seed: int) -> Path:
        """One tuning seed's part of a unit, samples or train folder. The base seed's (--seed) is the folder
        itself, the layout of a one-seed run, so folders written before --tuning-seeds stay valid and a run
        may grow its seeds; each further seed's is seed_<s>/ below it."""
        return Path(path) if seed == base_seed else Path(path) / f"seed_{seed}"

    def tuning_seed_dirs(self, model: str, task: str, mode: str, seed: int, base_seed: int) -> tuple[Path, Path, Path]:
        """One tuned mode's units, samples and train folders for one tuning seed (see seed_dir)."""
        return (self.seed_dir(self.unit_dir(model, task), seed, base_seed),
                self.seed_dir(self.samples_dir(model, task), seed, base_seed),
                self.seed_dir(self.train_dir(model, task, mode), seed, base_seed))

    @staticmethod
    def curve_steps_on_disk(units: Path) -> set[int]:
        return {int(p.stem.removeprefix("curve_")) for p in Path(units).glob("curve_*.json")}
