"""The real `softeval distance` CLI: a sweep killed with SIGKILL and re-run, and a short SmolLM2 sweep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import softeval
from conftest import TINY_TEXT

pytestmark = pytest.mark.integration


def cli(args: list[str], **kw) -> subprocess.Popen:
    """The real command line in a fresh process, importing this checkout's softeval."""
    env = {**os.environ, "PYTHONPATH": str(Path(softeval.__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", "from softeval.cli import run_main; run_main()", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def all_files_readable(root: Path) -> None:
    from safetensors import safe_open

    for path in root.rglob("*"):
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as f:
                list(f.keys())
        elif path.suffix == ".jsonl":
            lines = path.read_text().splitlines()
            for line in lines[:-1]:
                json.loads(line)  # only a torn last line is tolerated (and skipped by the reader)


def test_sigkill_mid_sweep_then_rerun(tiny_model_dir, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TINY_TEXT * 3)
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump({
        "model": str(tiny_model_dir), "device": "cpu", "precision": "fp32", "tokens": [0, 1, 2, 3], "seeds": 2,
        "max_steps": 36, "batch_size": 2, "lr": 0.1, "checkpoint_every": 3, "max_batch_tokens": 0,
        "num_samples": 1, "sample_tokens": 2, "bootstrap_samples": 20, "report": False,
        "task": {"name": "repetition", "corpus": str(corpus), "num_train": 6, "num_eval": 3, "context_tokens": 5,
                 "target_tokens": 3},
    }))
    out = tmp_path / "sweep"
    args = ["-q", "distance", "--config", str(config), "--out", str(out)]

    # --- run until some cells are finished and another is part-way, then SIGKILL (no chance to clean up). 36 steps
    # keep a cell part-way long enough for the poll to see it on a fast, quiet machine (at 12 it once finished
    # the whole sweep between two polls).
    proc = cli(args)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        done = list(out.glob("cells/*/cell.json"))
        started = [p for p in out.glob("cells/*/checkpoints/*.safetensors") if not (p.parents[1] / "cell.json").exists()]
        if len(done) >= 3 and started:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"sweep ended before it could be killed: {proc.communicate()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p.parent.name: {f.name: f.read_bytes() for f in p.parent.iterdir() if f.is_file()}
                for p in out.glob("cells/*/cell.json")}
    assert len(finished) >= 3 and not (out / "results.json").exists()
    all_files_readable(out)

    # --- the same command again finishes the sweep and leaves finished cells alone
    rerun = cli(args)
    stdout, stderr = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, stderr
    for name, files in finished.items():
        for fname, data in files.items():
            assert (out / "cells" / name / fname).read_bytes() == data, f"{name}/{fname} changed"
    results = json.loads((out / "results.json").read_text())
    assert results["complete"] and results["missing"] == []
    assert len(results["cells"]) == 7 and all(c["status"] == "done" for c in results["cells"])
    assert [c["steps"] for c in results["cells"]] == [0] + [36] * 6
    assert "S(ε = 0.01 nats/token)" in stdout
    all_files_readable(out)

    # --- and every cell equals the same cell of an uninterrupted sweep (resume is exact, not just "finishes")
    clean_out = tmp_path / "clean"
    clean = cli(["-q", "distance", "--config", str(config), "--out", str(clean_out)])
    _, clean_err = clean.communicate(timeout=600)
    assert clean.returncode == 0, clean_err
    names = sorted(c["name"] for c in results["cells"])
    assert names == sorted(c["name"] for c in json.loads((clean_out / "results.json").read_text())["cells"])
    for name in names:
        cell, want = (json.loads((d / "cells" / name / "cell.json").read_text()) for d in (out, clean_out))
        for key in ("status", "steps", "num_targets", "samples", "task_metrics", "eval_fingerprint"):
            assert cell[key] == want[key], (cell["name"], key)
        for key in ("loss", "token_accuracy", "initial_loss", "initial_token_accuracy"):
            assert cell[key] == pytest.approx(want[key], abs=1e-6), (cell["name"], key)
        if cell["n"]:
            got, ref = (load_file(str(d / "cells" / cell["name"] / "prompt.safetensors")) for d in (out, clean_out))
            for name in ref:
                torch.testing.assert_close(got[name], ref[name], atol=1e-6, rtol=0)


def test_smollm2_repetition_sweep_through_the_cli(tmp_path):
    out = tmp_path / "sweep"
    proc = cli(["-q", "distance", "--model", "smollm2-135m-instruct", "--task", "repetition", "--tokens", "0,2",
                "--seeds", "1", "--steps", "8", "--batch-size", "4", "--lr", "0.1", "--warmup-steps", "0",
                "--num-train", "16", "--num-eval", "4", "--context-tokens", "8", "--target-tokens", "4",
                "--precision", "fp32", "--out", str(out)])
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    results = json.loads((out / "results.json").read_text())
    plain, trained = results["per_n"]
    # " hello" after Alice in Wonderland: the plain instruct model finds it very unlikely.
    assert plain["loss_mean"] == pytest.approx(PINNED_PLAIN_LOSS, abs=2e-3)
    assert trained["loss_mean"] < plain["loss_mean"] - 1.0  # 8 steps already help a lot
    report = out / "report" / "index.html"
    assert report.exists() and f"report: {report}" in stdout


PINNED_PLAIN_LOSS = 15.6378  # fp32, first 4 held-out windows of the shipped corpus (Alice in Wonderland)
