"""One writer per result folder: an advisory lock held while a command writes it."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

from softeval.store.files import (
    check_writable_folder,
    dumps_json,
)

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
