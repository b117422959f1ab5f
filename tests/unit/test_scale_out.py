"""Distance sweeps and bench grids through Ray (a local instance with 2 CPUs, i.e. two workers) give the same
files and the same numbers as the local executor (fp32, one thread each); a worker killed mid-cell is retried
and the sweep ends identical to an uninterrupted run; the shipped cluster configs load."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from softeval.config import build_config
from softeval.distance import DistanceConfig, run
from softeval.executors import ExecutorConfig
from softeval.tasks import TaskConfig

from conftest import TINY_TEXT

ROOT = Path(__file__).resolve().parents[2]
# Wall times differ from run to run, and config.json records which executor ran: every other value must be equal.
TIMING_KEYS = {"seconds", "execution"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    p.write_text(TINY_TEXT * 3)
    return p


@pytest.fixture()
def one_thread():
    """Local and Ray units both compute with one torch thread, so fp32 sums add up in the same order."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def sweep_cfg(model_dir, corpus, out, **kw) -> DistanceConfig:
    base = dict(model=str(model_dir), device="cpu", dtype="float32", precision="fp32", tokens=(0, 1, 3, 6), seeds=2,
                max_steps=6, batch_size=2, lr=0.1, warmup_steps=0, checkpoint_every=2, num_samples=1,
                sample_tokens=3, bootstrap_samples=50, report=False, show_progress=False, out=str(out),
                max_batch_tokens=50,  # two or three cells per lane group: units that train several lanes
                task=TaskConfig(name="repetition", corpus=str(corpus), num_train=6, num_eval=3, context_tokens=5,
                                target_tokens=3))
    base.update(kw)
    return build_config(DistanceConfig, flags=base)


def on_ray(cfg: DistanceConfig, out: Path, **kw) -> DistanceConfig:
    return replace(cfg, out=str(out), execution=ExecutorConfig(executor="ray", cpus_per_unit=1, **kw))


def strip_timing(value):
    if isinstance(value, dict):
        return {k: strip_timing(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [strip_timing(v) for v in value]
    return value


def safetensors_content(path: Path) -> dict:
    """A safetensors file as (metadata, tensor bytes). Its raw bytes are no good: the header's key order is a
    per-process hash order. A checkpoint's CPU RNG state is the process's (never used for any number here)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k).numpy().tobytes().hex() for k in sorted(f.keys()) if not k.startswith("rng_")}
        return {"metadata": f.metadata(), "tensors": tensors}


def folder_contents(root: Path) -> dict[str, object]:
    """Every file of a result folder: JSON parsed (timings dropped), logs by name only, the rest as content."""
    out = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        rel = str(p.relative_to(root))
        if p.suffix == ".log":
            out[rel] = "log"
        elif p.suffix == ".json":
            out[rel] = strip_timing(json.loads(p.read_text()))
        elif p.suffix == ".safetensors":
            out[rel] = safetensors_content(p)
        else:
            out[rel] = p.read_bytes()
    return out


def normalise_out(contents: dict, out: Path) -> dict:
    """Folder paths recorded inside the files (config.json's `out`) differ by design."""
    text = json.dumps({k: v if not isinstance(v, bytes) else v.hex() for k, v in contents.items()}, sort_keys=True)
    return json.loads(text.replace(str(out), "OUT"))


# --- distance ---------------------------------------------------------------------------------------


def test_distance_sweep_on_ray_equals_local(tiny_model_dir, corpus, tmp_path, local_ray, one_thread):
    cfg = sweep_cfg(tiny_model_dir, corpus, tmp_path / "local")
    local = run(cfg)
    remote = run(on_ray(cfg, tmp_path / "ray"))
    plan = json.loads((tmp_path / "ray" / "plan.json").read_text())["groups"]
    assert any(len(g) > 1 for g in plan) and len(plan) > 2  # several units, some training several lanes
    assert remote.cells_trained == local.cells_trained == 6
    a = normalise_out(folder_contents(tmp_path / "local"), tmp_path / "local")
    b = normalise_out(folder_contents(tmp_path / "ray"), tmp_path / "ray")
    assert sorted(a) == sorted(b)  # the same files: cells, checkpoints, prompts, metrics, plan, logs, results
    assert a == b  # ... holding the same numbers, bit for bit (fp32)
    for unit_log in (tmp_path / "ray" / "logs").glob("*.log"):
        text = unit_log.read_text()
        assert "executor ray" in text and f"pid={os.getpid()}" not in text  # trained in a Ray worker


def test_a_suite_on_ray_equals_local(tiny_model_dir, tmp_path, local_ray, one_thread):
    """softeval suite hands each sweep's lane groups to the executor: on Ray the same cells, bit for bit."""
    from softeval.distance.suite import SuiteConfig, run as run_suite

    data = tmp_path / "data" / "b.jsonl"
    data.parent.mkdir()
    data.write_text("".join(json.dumps({"question": f"Is it {w}?", "answer_matching_behavior": " yes",
                                        "answer_not_matching_behavior": " no"}) + "\n"
                            for w in ["quick", "brown", "lazy", "red", "old", "new", "tall", "small"]))
    cfg = build_config(SuiteConfig, flags=dict(
        model=str(tiny_model_dir), device="cpu", dtype="float32", precision="fp32", data=str(data), tokens=(0, 1, 3),
        seeds=1, max_steps=3, batch_size=2, warmup_steps=0, num_eval=3, directions=("towards", "control"),
        bootstrap_samples=100, report=False, show_progress=False, out=str(tmp_path / "local")))
    local = run_suite(cfg)
    remote = run_suite(replace(cfg, out=str(tmp_path / "ray"), execution=ExecutorConfig(executor="ray",
                                                                                          cpus_per_unit=1)))
    cells = lambda root: {str(p.relative_to(root)): strip_timing(json.loads(p.read_text()))  # noqa: E731
                          for p in sorted(root.glob("sweeps/*/*/cells/*/cell.json"))}
    assert len(cells(tmp_path / "ray")) == 6 and cells(tmp_path / "ray") == cells(tmp_path / "local")
    assert any("executor ray" in p.read_text() for p in (tmp_path / "ray" / "logs").glob("*.log"))
    strip = lambda r: {**r, "cell_seconds": 0, "behaviours": [{**b, "cell_seconds": 0} for b in r["behaviours"]]}  # noqa
    assert strip(remote.results) == strip(local.results)


def test_sweep_started_locally_can_be_finished_on_ray(tiny_model_dir, corpus, tmp_path, local_ray, one_thread):
    full = sweep_cfg(tiny_model_dir, corpus, tmp_path / "ref")
    run(full)
    part = replace(full, out=str(tmp_path / "mixed"), tokens=(0, 1, 3))
    run(part)  # local: n = 0, 1, 3
    grown = run(on_ray(full, tmp_path / "mixed"))  # Ray: the rest of the grid
    assert grown.cells_trained == 2 and grown.cells_skipped == 5
    ref = json.loads((tmp_path / "ref" / "results.json").read_text())
    mixed = json.loads((tmp_path / "mixed" / "results.json").read_text())
    assert strip_timing(mixed["cells"]) == strip_timing(ref["cells"]) and mixed["per_n"] == ref["per_n"]


def test_worker_killed_mid_cell_is_retried_and_the_sweep_ends_identical(tiny_model_dir, corpus, tmp_path,
                                                                        local_ray, one_thread):
    cfg = sweep_cfg(tiny_model_dir, corpus, tmp_path / "local", tokens=(4,), seeds=2, max_steps=150,
                    checkpoint_every=10, max_batch_tokens=0)
    run(cfg)
    out = tmp_path / "ray"
    victim = out / "cells" / "n4_s1"
    killed: list[int] = []

    def kill_mid_cell():
        """Kill the worker training n4_s1 once it has checkpointed at least once and before its cell is done."""
        deadline = time.time() + 300
        while time.time() < deadline and not killed:
            log = out / "logs" / "n4_s1.log"
            pids = re.findall(r"pid=(\d+)", log.read_text()) if log.exists() else []
            if pids and list(victim.glob("checkpoints/step_*.safetensors")) and not (victim / "cell.json").exists():
                os.kill(int(pids[-1]), signal.SIGKILL)
                killed.append(int(pids[-1]))
            time.sleep(0.005)

    killer = threading.Thread(target=kill_mid_cell, daemon=True)
    killer.start()
    result = run(on_ray(cfg, out, max_retries=2))
    killer.join(timeout=1)
    assert killed, "the worker was never caught mid-cell"
    assert (out / "logs" / "n4_s1.log").read_text().count("attempt starts") == 2
    assert result.results["complete"]
    a = normalise_out(folder_contents(tmp_path / "local"), tmp_path / "local")
    b = normalise_out(folder_contents(out), out)
    assert a == b  # identical numbers, and metrics.jsonl holds each step once (the resumed lane rewound it)
    steps = [r["step"] for r in map(json.loads, (victim / "metrics.jsonl").read_text().splitlines())
             if "train_loss" in r]
    assert steps == list(range(1, 151))


def test_user_error_in_a_unit_fails_once_with_its_message(tiny_model_dir, corpus, tmp_path, local_ray):
    from softeval.errors import SoftevalError

    cfg = sweep_cfg(tiny_model_dir, corpus, tmp_path / "ray", task=TaskConfig(name="jsonl",
                    data=str(tmp_path / "missing.jsonl")))
    with pytest.raises(SoftevalError) as info:
        run(on_ray(cfg, tmp_path / "ray"))
    assert "missing.jsonl" in str(info.value) and "\n" not in str(info.value) and "Traceback" not in str(info.value)


# --- bench ------------------------------------------------------------------------------------------


def quiz_spec(folder: Path, name: str) -> Path:
    """A tiny multiple-choice benchmark as a softeval task spec (train: 8 items, test: 4)."""
    capitals = [("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Germany", "Berlin"),
                ("Japan", "Tokyo"), ("Egypt", "Cairo"), ("Canada", "Ottawa"), ("Kenya", "Nairobi"),
                ("Peru", "Lima"), ("Norway", "Oslo"), ("Chile", "Santiago"), ("Greece", "Athens")]
    cities = [c for _, c in capitals]
    items = [{"q": f"What is the capital of {country}?", "options": [city] + [c for c in cities if c != city][i % 3:i % 3 + 2],
              "gold": city} for i, (country, city) in enumerate(capitals)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.jsonl").write_text("".join(json.dumps(x) + "\n" for x in items[:8]))
    (folder / "test.jsonl").write_text("".join(json.dumps(x) + "\n" for x in items[8:]))
    spec = folder / f"{name}.yaml"
    spec.write_text(f"task: {name}\nkind: multiple_choice\nfiles: {{train: train.jsonl, test: test.jsonl}}\n"
                    "fields: {question: q, choices: options, answer: gold}\n")
    return spec


@pytest.fixture(scope="module")
def second_tiny_model(tmp_path_factory) -> Path:
    from conftest import build_tiny_model, build_tiny_tokenizer

    path = tmp_path_factory.mktemp("tiny-llama-2")
    tok = build_tiny_tokenizer()
    build_tiny_model(len(tok), seed=1).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_bench_grid_on_ray_equals_local(tiny_model_dir, second_tiny_model, tmp_path, local_ray, one_thread):
    from softeval.bench.runner import BenchConfig, run as bench_run

    tasks = [str(quiz_spec(tmp_path / "data" / name, name)) for name in ("quiz", "quiz_b")]
    cfg = build_config(BenchConfig, flags=dict(
        models=[str(tiny_model_dir), str(second_tiny_model)], tasks=tasks, max_steps=2, curve_steps=[0, 2, 3],
        batch_size=4, shots=2, max_gen_toks=3, device="cpu", dtype="float32", precision="fp32", num_bootstrap=0,
        show_progress=False, out=str(tmp_path / "local")))
    bench_run(cfg)
    remote = bench_run(replace(cfg, out=str(tmp_path / "ray"), execution=ExecutorConfig(executor="ray")))
    assert len(list((tmp_path / "ray" / "logs").glob("*.log"))) == 4  # 2 models × 2 tasks, one unit each
    a = normalise_out(folder_contents(tmp_path / "local"), tmp_path / "local")
    b = normalise_out(folder_contents(tmp_path / "ray"), tmp_path / "ray")
    a.pop("report.html"), b.pop("report.html")  # embeds PNG plots: compared through results.json instead
    assert sorted(a) == sorted(b)
    assert a == b
    # the default modes, soft_cloze's prompts tuned inside the Ray units too (the spec task is multiple choice)
    assert set(remote.results[str(tiny_model_dir)]["quiz"]) == {"zero", "few", "soft", "soft_cloze"}


# --- configs and flags --------------------------------------------------------------------------------


def test_cluster_configs_load():
    from softeval.bench.runner import BenchConfig

    for path in sorted((ROOT / "configs" / "cluster").glob("distance_*.yaml")):
        cfg = build_config(DistanceConfig, str(path))
        assert cfg.execution.executor == "ray", path
    cfg = build_config(BenchConfig, str(ROOT / "configs" / "cluster" / "bench_cluster.yaml"))
    assert cfg.execution.executor == "ray" and cfg.execution.gpus_per_unit == 0.25


def test_executor_flags():
    from softeval.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["distance", "--executor", "ray", "--ray-address", "auto", "--gpus-per-unit", "0.25",
                              "--device-map", "auto"])
    from softeval.cli.common import config_from_args

    cfg = config_from_args(DistanceConfig, args)
    assert (cfg.execution.executor, cfg.execution.ray_address, cfg.execution.gpus_per_unit, cfg.device_map) == \
        ("ray", "auto", 0.25, "auto")
    from softeval.errors import ConfigError

    with pytest.raises(ConfigError, match="must be one of local, ray, got 'dask'"):
        config_from_args(DistanceConfig, parser.parse_args(["distance", "--executor", "dask"]))
