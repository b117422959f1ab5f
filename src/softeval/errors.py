"""User-facing errors.

Everything a user can fix (bad flag, missing file, wrong model) raises a `SoftevalError`
subclass with a one-line message that says what went wrong and what to do. The CLI turns
these into `softeval: error: ...` and exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib


class SoftevalError(Exception):
    """Base class for errors caused by user input or environment, not by softeval bugs."""

    exit_code = 2


class FolderInUse(SoftevalError):
    """Another process holds the result folder's lock (store.folder_lock)."""


class ConfigError(SoftevalError):
    """An invalid configuration value or combination."""


class DataError(SoftevalError):
    """A malformed, missing or empty dataset."""


class ModelError(SoftevalError):
    """A model that cannot be found, fetched or loaded."""


class PromptMismatchError(SoftevalError):
    """A saved prompt used with a different model, tokenizer or task than it was trained for."""


class ExecutorError(SoftevalError):
    """The executor could not run a unit: Ray unreachable, or a worker that kept dying after its retries."""


class NonFiniteLossError(SoftevalError):
    """Training produced a NaN/inf loss; the last good checkpoint was kept."""

    exit_code = 3


class InterruptedRun(SoftevalError):
    """The user interrupted a run; a checkpoint was written first."""

    exit_code = 130


def unknown_choice(kind: str, name: str, available: list[str]) -> str:
    """Message for an unknown registry key, lm-eval style: 'Did you mean … / Available: …'."""
    close = difflib.get_close_matches(name, available, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"unknown {kind} '{name}'.{hint} Available: {', '.join(sorted(available))}"
