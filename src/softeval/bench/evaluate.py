"""Scoring one mode of a task through lm-eval under the run's settings: the form's config (the generation
cap), which items (--limit, --limit-from), per-sample records, and the unit file they make."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

from softeval.bench import harness, scoring
from softeval.bench.config import BenchConfig
from softeval.bench.forms import BenchTask
from softeval.store import atomic_write_json, atomic_write_text, dumps_json, read_json

logger = logging.getLogger(__name__)


def task_config(task: BenchTask, form: str, cfg: BenchConfig) -> dict:
    """The lm-eval config of one of a task's forms as this run scores it (task_config_of)."""
    return task_config_of(task.configs[form], form, cfg)


def task_config_of(conf: dict, form: str, cfg: BenchConfig) -> dict:
    """An lm-eval config under this run's settings: the generative form's cap lowered to --max-gen-toks."""
    conf = dict(conf)
    if cfg.max_gen_toks and form == "gen":
        gk = dict(conf.get("generation_kwargs") or {})
        gk["max_gen_toks"] = min(int(gk.get("max_gen_toks", cfg.max_gen_toks)), cfg.max_gen_toks)
        conf["generation_kwargs"] = gk
    return conf


def eval_indices(num_docs: int | None, cfg: BenchConfig) -> list[int] | None:
    """The evaluation items --limit-from spread picks: --limit of them at even steps over the split, from its
    first item; None where lm-eval's own --limit (the first N) or every item is what runs."""
    if cfg.limit_from != "spread" or cfg.limit is None or num_docs is None or cfg.limit >= num_docs:
        return None
    return [i * num_docs // cfg.limit for i in range(cfg.limit)]


def evaluate_form(adapter, task: BenchTask, form: str, shots: int, cfg: BenchConfig) -> tuple[list[dict], dict]:
    """Run one form of a task through lm-eval; return per-sample records and lm-eval's own metrics."""
    import lm_eval

    conf = task_config(task, form, cfg)
    # lm-eval logs each chosen item under its place in the split (doc_id), so samples files keep it.
    indices = eval_indices(task.num_eval_docs, cfg)
    with harness.quiet_git_hash():
        out = lm_eval.simple_evaluate(model=adapter, tasks=[conf], num_fewshot=shots,
                                      limit=cfg.limit if indices is None else None,
                                      samples=None if indices is None else {conf["task"]: indices},
                                      log_samples=True, task_manager=harness.task_manager(),
                                      bootstrap_iters=cfg.num_bootstrap, random_seed=cfg.seed,
                                      numpy_random_seed=cfg.seed, torch_random_seed=cfg.seed,
                                      fewshot_random_seed=cfg.seed, verbosity="WARNING")
    name = conf["task"]
    samples = harness.one_sample_per_doc(out["samples"][name])
    records = ([scoring.gen_record(s, task.answer) for s in samples] if form == "gen"
               else [scoring.ll_record(s) for s in samples])
    # lm-eval reports an undefined stderr as NaN or "N/A"; results.json says None (null) instead.
    native = {k: None if (isinstance(v, float) and not math.isfinite(v)) or v == "N/A" else v
              for k, v in out["results"][name].items() if k != "alias"}
    return records, native


def run_unit(adapter, task: BenchTask, mode: str, shots: int, forms: list[str], cfg: BenchConfig,
             unit_path: Path, samples: Path, extra: dict) -> dict:
    """Evaluate `forms` of a task in one mode; write samples and the unit JSON (atomic); return it."""
    if unit_path.exists():
        return read_json(unit_path, "bench unit")
    t0 = time.time()
    per_form, native = {}, {}
    for form in forms:
        records, native[form] = evaluate_form(adapter, task, form, shots, cfg)
        per_form[form] = records
        atomic_write_text(samples / f"{mode}_{form}.jsonl",
                          "".join(dumps_json({"mode": mode, "form": form, **r}, indent=None) + "\n" for r in records))
    unit = {"mode": mode, "num_fewshot": shots, "metrics": scoring.aggregate(per_form),
            "lm_eval": native, "seconds": round(time.time() - t0, 1), **extra}
    atomic_write_json(unit_path, unit)
    return unit


def gold_over_gen_cap(adapter, gen_task, sample: int = 200, warn_above: float = 0.05) -> float | None:
    """The share of the task's gold answers (its first `sample` training answers, else evaluation answers) longer
    in tokens than the generation cap. A worked answer cut before its final line ("#### 42") fails the format
    however good the model is, so above `warn_above` the run says so: raise --max-gen-toks, or read
    format-following as a lower bound. None when the task has no generative form."""
    if gen_task is None:
        return None
    cap = int((gen_task.config.generation_kwargs or {}).get("max_gen_toks") or 256)  # lm-eval's own default
    docs = (gen_task.training_docs() if gen_task.has_training_docs() else harness.eval_docs(gen_task)) or []
    targets = [harness.render_target(gen_task, doc) for doc, _ in zip(docs, range(sample))]
    if not targets:
        return None
    share = sum(len(adapter.tok_encode(t)) > cap for t in targets) / len(targets)
    if share > warn_above:
        logger.warning("%s: %.0f %% of its gold answers are longer than the %d generated tokens allowed; such "
                       "answers are cut before they end, so format-following and accuracy are undercounted "
                       "(raise --max-gen-toks)", gen_task.config.task, 100 * share, cap)
    return round(share, 4)
