"""store: the one owner of softeval's on-disk state.

Owns files written atomically as strict JSON (`files`), checkpoints without pickle (`checkpoints`), metric sinks
(`sinks`), one writer per folder (`lock`), the layouts of train, sweep and bench folders and the one same-identity
check that claims them (`folders`), the identity policy (`identity`: which settings change a number) and prompt
cards (`card`). It imports only `softeval.config` and `softeval.errors`: everything above it (engine, tasks, the
instruments, reports, cli) reads and writes results through it.
"""

from softeval.store.files import (softeval_home, atomic_write_bytes, atomic_write_text, strict_json, dumps_json,
    atomic_write_json, append_jsonl, read_jsonl, truncate_jsonl, read_json, safe_name, hash_file,
    check_writable_folder)
from softeval.store.checkpoints import CHECKPOINT_KEY, CorruptCheckpoint, write_checkpoint, read_checkpoint
from softeval.store.sinks import (METRIC_SINKS, MetricSink, JsonlSink, tensorboard_high_water, TensorBoardSink,
    WandbSink, FanOutSink, open_metric_sink)
from softeval.store.lock import LOCK_FILE, folder_lock
from softeval.store.folders import (IDENTITY_FILE, claim_folder, CHECKPOINT_RE, RunFolder, SweepFolder, SuiteFolder,
                                    BenchFolder)

__all__ = ["softeval_home", "atomic_write_bytes", "atomic_write_text", "strict_json", "dumps_json",
           "atomic_write_json", "append_jsonl", "read_jsonl", "truncate_jsonl", "read_json", "safe_name", "hash_file",
           "check_writable_folder", "CHECKPOINT_KEY", "CorruptCheckpoint", "write_checkpoint", "read_checkpoint",
           "METRIC_SINKS", "MetricSink", "JsonlSink", "tensorboard_high_water", "TensorBoardSink", "WandbSink",
           "FanOutSink", "open_metric_sink", "LOCK_FILE", "folder_lock", "IDENTITY_FILE", "claim_folder",
           "CHECKPOINT_RE", "RunFolder", "SweepFolder", "SuiteFolder", "BenchFolder"]
