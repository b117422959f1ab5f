"""Where per-step metrics go: metrics.jsonl always (reports read it), TensorBoard and W&B on request; each record
once, also after a resume or a retried unit."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from softeval.store.files import (
    append_jsonl,
    read_jsonl,
    strict_json,
    truncate_jsonl,
)

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
