"""Files softeval writes: atomically (temp file, fsync, `os.replace`: a killed process leaves the old file or the
new one, never half), as strict JSON (non-finite floats become null, `allow_nan=False`, so every file parses in
browsers and jq), JSONL whose reader skips a torn last line; content hashes; safe names; the cache root.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator


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
