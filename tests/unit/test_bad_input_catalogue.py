"""Every case of benchmarks/bad_inputs.py, in-process on the tiny model: exit code 2 (3 for a NaN loss), one
line `softeval: error: ...` and no traceback, and no file that existed before changed.

benchmarks/reliability.py runs the same cases through the real console script on SmolLM2."""

from __future__ import annotations

import subprocess
import sys
import traceback
from pathlib import Path

import pytest

from softeval.cli import main
from tests.conftest import load_repo_script

ROOT = Path(__file__).resolve().parents[2]


bad_inputs = load_repo_script("benchmarks/bad_inputs.py")


def call_main(argv: list[str]) -> int:
    """What the console script would exit with: argparse's SystemExit code, or 1 and a traceback for a bug."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception:  # noqa: BLE001 - an uncaught exception is what the catalogue exists to find
        traceback.print_exc()
        return 1


@pytest.fixture(scope="session")
def fixtures(tiny_model_dir, tmp_path_factory):
    return bad_inputs.Fixtures(tmp_path_factory.mktemp("shared"), str(tiny_model_dir),
                               lambda argv, cwd: call_main(argv))


@pytest.mark.parametrize("case", bad_inputs.CASES, ids=lambda c: c.name)
def test_bad_input(case, fixtures, tmp_path, capsys, monkeypatch):
    def run_cli(argv, cwd):
        capsys.readouterr()
        monkeypatch.chdir(cwd)
        code = call_main(argv)
        return code, capsys.readouterr().err

    try:
        outcome = bad_inputs.run_case(case, tmp_path / "case", fixtures, run_cli)
    except bad_inputs.Skip as exc:
        pytest.skip(str(exc))
    assert outcome.passed, f"softeval {case.argv}: {'; '.join(outcome.problems)} | {outcome.first_line}"


def cli_commands() -> set[str]:
    """Every command of the real CLI parser, and every action of a command that has actions (`models list`)."""
    import argparse

    from softeval.cli import build_parser

    def actions(parser: argparse.ArgumentParser, prefix: str) -> set[str]:
        found = set()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    found |= {f"{prefix}{name}"} | actions(child, f"{prefix}{name} ")
        return found

    return actions(build_parser(), "")


def catalogue_commands(cases) -> set[str]:
    """The command (and action) each case runs: its leading words that are not flags or placeholders."""
    out = set()
    for case in cases:
        words = bad_inputs.shlex.split(case.argv)
        for i in range(1, 3):
            out.add(" ".join(words[:i]))
    return out


def test_catalogue_covers_every_command():
    """Derived from the parser, so a new command without a case fails here (issue 29 #16: a hand-written list
    left out compare, show and stability)."""
    commands = cli_commands()
    assert {"train", "compare", "show", "stability", "models info"} <= commands  # the derivation itself works
    missing = sorted(commands - catalogue_commands(bad_inputs.CASES))
    assert not missing, f"commands with no bad-input case: {', '.join(missing)}"
    assert len(bad_inputs.CASES) >= 150
    assert len({c.name for c in bad_inputs.CASES}) == len(bad_inputs.CASES)


def test_the_coverage_check_fails_for_a_command_without_a_case():
    without_show = [c for c in bad_inputs.CASES if not c.argv.startswith("show")]
    assert "show" in cli_commands() - catalogue_commands(without_show)


def test_checks_catch_what_they_guard(tmp_path):
    """The checker itself: a traceback, a second line, a wrong code and a changed file are each caught."""
    case = bad_inputs.Case("x", "train")
    good = "I softeval.engine.models: loaded\nsofteval: error: no such file\n"
    assert bad_inputs.check(case, 2, good, {"a": "1"}, {"a": "1", "b": "2"}).passed
    assert not bad_inputs.check(case, 1, good, {}, {}).passed
    assert not bad_inputs.check(case, 2, "Traceback (most recent call last):\nValueError: x\n", {}, {}).passed
    assert not bad_inputs.check(case, 2, "usage: softeval\nsofteval: error: x\n", {}, {}).passed
    assert not bad_inputs.check(case, 2, good, {"a": "1"}, {"a": "2"}).passed
    assert not bad_inputs.check(case, 2, good, {"a": "1"}, {}).passed


def test_reliability_script_help():
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "reliability.py"), "--help"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "--trials" in r.stdout and "--model" in r.stdout
