"""softeval bench: zero-shot, k-shot and soft-prompt-tuned evaluation of models on benchmarks.

    setup  resolve tasks (built-in / lm-eval YAML / softeval spec; Hub or --data-dir), check the reference
    loop   per model: load once; per task: zero and few through lm-eval; soft: per tuning seed, tune ONE
           prompt on the training split with snapshots at the curve steps, evaluate the --steps snapshot
           (mode "soft") and the generative form at every curve step; soft_cloze (multiple choice): per
           tuning seed, a second prompt tuned on the cloze rendering (question → answer text), scored by cloze
    save   units/ (one JSON per finished (model, task, mode[, seed]) unit: re-runs skip them), samples/*.jsonl,
           results.json (lm-eval-shaped; soft over several seeds: their mean and std), report.html
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from softeval import __version__
from softeval.bench import habit, harness, layouts, scoring
from softeval.bench.modes import MODES, REQUIRED_FORM, SINGLE_FORMULATION_MODES, TUNED_MODES
from softeval.bench.tasks import DERIVED_LETTERS, FORMS, LL_FORMS, BenchTask, letters_from_cloze, resolve_task
from softeval.config import option, section, to_dict
from softeval.engine.loop import OptimConfig, Precision, Schedule
from softeval.errors import ConfigError, DataError, FolderInUse
from softeval.store.identity import (DEVICE_WHY, DTYPE_WHY, OUT_WHY, PRECISION_WHY, REPORTING_WHY, result_identity,
                               settings_identity)
from softeval.executors import Executor, ExecutorConfig, Unit, cached_model, forget_models, run_units, unit_resources
from softeval.engine.models import DEVICE_MAPS, DTYPES
from softeval.engine.prompt import PromptConfig
from softeval.store import (BenchFolder, atomic_write_json, atomic_write_text, claim_folder, dumps_json, folder_lock,
                            read_json, read_jsonl, safe_name)

logger = logging.getLogger(__name__)


# --limit-from: which N items --limit picks (see eval_indices).
LIMIT_FROM = ("first", "spread")

# Why the fields that let a run grow between invocations into the same OUT change no finished unit's numbers
# (softeval.store.identity reads these declarations; every other field is part of the identity).
UNIT_WHY = "each (model, task, mode, seed) unit is its own result: a run may grow"
MODEL_UNIT_WHY = "each (model, task) unit records the weights and tokenizer hashes of the model that made it"


@dataclass(frozen=True)
class BenchConfig:
    models: list[str] = option(default_factory=lambda: ["smollm2-135m-instruct"], flag="--model", repeat=True,
                               help="model (repeatable): embedded name, Hugging Face id, local folder or .gguf",
                               identity=False, why=MODEL_UNIT_WHY)
    tasks: list[str] = option(default_factory=lambda: ["arc_easy"], flag="--task",
                              help="comma-separated tasks: built-in names, lm-eval task YAMLs or softeval specs",
                              identity=False, why="each task's unit records its prompts and its data's hashes")
    modes: list[str] = option(default_factory=lambda: list(MODES), flag="--modes",
                              help="subset of zero,few,soft,soft_cloze (soft_cloze: multiple-choice tasks only)",
                              identity=False, why=UNIT_WHY)
    forms: list[str] = option(default_factory=lambda: ["gen", "ll"], flag="--forms",
                              help="gen (generated answers), ll_letters (options listed, letters scored), ll_cloze "
                                   "(choice texts scored); ll = both ll forms")
    shots: int = option(5, flag="--shots", help="k for the few-shot mode (lm-eval's sampler and seed)")
    num_virtual_tokens: int = option(10, flag="--tokens", help="soft-prompt length")
    prompt: PromptConfig = field(default_factory=PromptConfig)
    # Constant lr after warmup: the k-step snapshot of one tuning run then equals a k-step run (the curve).
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(max_steps=80, batch_size=8, lr=0.03,
                                                                   warmup_steps=10, schedule=Schedule.constant))
    curve_steps: list[int] = option(default_factory=lambda: [0, 10, 20, 40, 80, 160], flag="--curve-steps",
                                    help="format-saturation curve: tuning steps to evaluate ('' for none)",
                                    identity=False, why=UNIT_WHY)
    num_train: int | None = option(None, flag="--num-train", help="tuning examples (default steps × batch size)")
    limit: int | None = option(None, flag="--limit", help="N evaluation items per task (default all)")
    limit_from: str = option("first", flag="--limit-from", choices=lambda: list(LIMIT_FROM),
                             help="which --limit items: the first N of the evaluation split (lm-eval's --limit), "
                                  "or N spread evenly over it (a cross-section of a split stored in order, such "
                                  "as MMLU's subjects)")
    max_gen_toks: int | None = option(None, flag="--max-gen-toks", help="cap on generated tokens (a task's own "
                                      "cap when lower); the run warns when it would cut many gold answers")
    data_dir: str | None = option(None, flag="--data-dir", help="local data in original layouts (else the Hub)",
                                  identity=False, why="a path; the content hash of every file and split read is "
                                                      "recorded instead")
    reference: str | None = option(None, flag="--reference", help="CSV/JSON reference ranking (model, score)",
                                   identity=False, why="read when the rankings are written, from the units")
    device: str = option("auto", flag="--device", help="auto, cpu, cuda, cuda:N or mps", identity=False,
                         why=DEVICE_WHY)
    device_map: str | None = option(None, flag="--device-map", choices=lambda: list(DEVICE_MAPS),
                                    help="spread each model over this node's GPUs (accelerate; models larger than "
                                         "one GPU, docs/cluster.md)", identity=False, why=DEVICE_WHY)
    dtype: str = option("auto", flag="--dtype", choices=lambda: ["auto", *DTYPES], help="weights dtype",
                        identity=False, why=DTYPE_WHY)
    precision: Precision = option(Precision.fp32, flag="--precision", help="autocast for tuning and scoring",
                                  identity=False, why=PRECISION_WHY)
    eval_batch_size: int = option(16, flag="--eval-batch-size", help="rows per scoring batch")
    seed: int = option(0, flag="--seed", help="tuning data, prompt init and few-shot sampling")
    tuning_seeds: int = option(1, flag="--tuning-seeds", help="tune the soft prompt (and its curve) with seeds "
                                                              "seed … seed+N−1; soft reports their mean and std",
                               identity=False, why=UNIT_WHY)
    num_bootstrap: int = option(1000, help="bootstrap resamples for stderr and rank-correlation intervals")
    out: str = option("runs/bench", flag="--out", help="output folder; re-running skips finished units",
                      identity=False, why=OUT_WHY)
    execution: ExecutorConfig = section(ExecutorConfig, identity=False,  # where the (model, task) units run
                                        why="where the units run")
    show_progress: bool = option(True, identity=False, why=REPORTING_WHY)

    def __post_init__(self):
        errors = []
        if not self.models:
            errors.append("models: give at least one --model")
        if not self.tasks:
            errors.append("tasks: give at least one --task")
        bad = [m for m in self.modes if m not in MODES]
        if bad or not self.modes:
            errors.append(f"modes must be a subset of {', '.join(MODES)}, got {', '.join(self.modes) or 'none'}")
        for key in ("shots", "num_bootstrap"):
            if getattr(self, key) < 0:
                errors.append(f"{key} must be >= 0, got {getattr(self, key)}")
        for key in ("num_virtual_tokens", "eval_batch_size", "tuning_seeds"):
            if getattr(self, key) < 1:
                errors.append(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.optim.schedule != Schedule.constant:
            errors.append("optim.schedule must be 'constant' for bench: the curve's k-step snapshots must equal "
                          f"k-step runs, got '{self.optim.schedule}'")
        if not self.forms or any(f not in (*FORMS, "ll") for f in self.forms):
            errors.append(f"forms must be a subset of gen,ll,ll_letters,ll_cloze, got {', '.join(self.forms) or 'none'}")
        else:
            # "ll" stands for both formulations; stored expanded, so the identity names the forms that ran (a
            # folder written when "ll" was one form is refused rather than left without its cloze/letters).
            expanded = [f for f in FORMS if f in self.forms or (f in LL_FORMS and "ll" in self.forms)]
            object.__setattr__(self, "forms", expanded)
        if any(not isinstance(s, int) or s < 0 for s in self.curve_steps):
            errors.append(f"curve_steps must be non-negative integers, got {self.curve_steps}")
        if self.limit is not None and self.limit < 1:
            errors.append(f"limit must be >= 1, got {self.limit}")
        if self.limit_from not in LIMIT_FROM:
            errors.append(f"limit_from must be one of {', '.join(LIMIT_FROM)}, got {self.limit_from!r}")
        if self.max_gen_toks is not None and self.max_gen_toks < 1:
            errors.append(f"max_gen_toks must be >= 1, got {self.max_gen_toks}")
        if errors:
            raise ConfigError("; ".join(errors))

    @property
    def last_step(self) -> int:
        return max([self.optim.max_steps, *self.curve_steps])

    @property
    def soft_seeds(self) -> list[int]:
        """The tuned modes' seeds; the first is --seed (zero and few-shot use it alone)."""
        return [self.seed + i for i in range(self.tuning_seeds)]

    @property
    def tuning_size(self) -> int:
        """Tuning examples: --num-train, else max_steps × batch_size (each seen once by the soft snapshot).
        Never derived from the curve: a longer curve cycles through the same examples in the same seeded
        order, so the k-step snapshot equals a k-step run whatever the other curve steps are."""
        return self.num_train or self.optim.max_steps * self.optim.batch_size


def identity_settings(cfg: BenchConfig) -> dict:
    """Every setting that can change a number in OUT (softeval.store.identity), tuning size resolved."""
    settings = settings_identity(cfg)
    settings["num_train"] = cfg.tuning_size
    if cfg.limit is None or cfg.limit_from == "first":
        # The items every folder written before --limit-from scored: its identity stays what it was.
        settings.pop("limit_from")
    return settings


def resolved_facts(cfg: BenchConfig) -> dict:
    """The weights dtype and autocast precision this machine resolves the config's labels to (`auto` is never
    stored); every unit checks that it resolves alike, so one folder never mixes fp32 and bf16 results."""
    from softeval.engine.loop import resolve_precision
    from softeval.engine.models import resolve_device, resolve_dtype

    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    return {"weights_dtype": str(dtype).replace("torch.", ""),
            "precision": resolve_precision(str(cfg.precision), device, dtype)}


def docs_hashes(forms: dict) -> dict[str, str]:
    """Content hash of every split a task's lm-eval forms read (tuning, few-shot examples, evaluation), by form
    and split: what a result was computed on, for Hub datasets and local files alike."""
    import hashlib
    import json

    def digest(docs) -> str:
        return hashlib.sha256(json.dumps(list(docs or []), sort_keys=True, default=str).encode()).hexdigest()

    out = {}
    for form, task in sorted(forms.items()):
        out[f"docs.{form}.eval"] = digest(harness.eval_docs(task))
        if task.has_training_docs():
            out[f"docs.{form}.train"] = digest(task.training_docs())
        fewshot = task.fewshot_docs() if hasattr(task, "fewshot_docs") else None
        if fewshot is not None:
            out[f"docs.{form}.fewshot"] = digest(fewshot)
    return out


def unit_identity(cfg: BenchConfig, t: BenchTask, forms: dict, resolved: dict) -> dict:
    """A (model, task) folder's identity before any model loads: the settings, the task's prompts, and the
    content of every file and split it reads."""
    return result_identity("bench", {**identity_settings(cfg), **t.identity}, resolved, t.data_files,
                           docs_hashes(forms))


MODEL_IDENTITY = "model_identity.json"


def claim_unit_model(units: Path, facts: dict) -> None:
    """The model a (model, task) folder's units were made with (weights, tokenizer, weights dtype, precision):
    a name re-pointed at other weights (a local folder saved over, an unpinned Hub id, `org/m` and `org_m`) is
    refused instead of reusing finished units or resuming their tuning as the new model."""
    claim_folder(units, result_identity("bench", {}, facts), "bench result", adopt=True, file=MODEL_IDENTITY)


def check_finished_units_model(out: Path, model_name: str, tasks: list) -> None:
    """Before finished units are reused without loading their model: the weights on disk are still the ones
    recorded (local folders, .gguf files and embedded models; a Hub id is checked when it loads)."""
    from softeval.store.identity import differences
    from softeval.engine.models import local_weights_sha256

    recorded = [BenchFolder(out).unit_dir(model_name, t.name) / MODEL_IDENTITY for t in tasks]
    recorded = [p for p in recorded if p.exists()]
    if not recorded:
        return
    current = local_weights_sha256(model_name)
    if current is None:
        return
    for path in recorded:
        stored = (read_json(path, "bench unit model identity").get("resolved") or {}).get("model_sha256")
        if stored != current:
            raise ConfigError(f"{path.parent} holds results of other weights than '{model_name}' has now "
                              f"({'; '.join(differences({'model_sha256': stored}, {'model_sha256': current}))}); "
                              "choose another --out (or restore the model)")


@dataclass
class BenchResult:
    out_dir: Path
    results: dict          # model → task → mode → metrics
    curves: dict           # model → task → [{step, metrics…}]
    rankings: dict
    report_path: Path | None


def _check_distinct_paths(kind: str, names: list[str]) -> None:
    by_path: dict[str, list[str]] = {}
    for name in names:
        by_path.setdefault(safe_name(name), []).append(name)
    clash = [v for v in by_path.values() if len(v) > 1]
    if clash:
        raise ConfigError(f"{kind} names {' and '.join(map(repr, clash[0]))} map to the same folder "
                          f"'{safe_name(clash[0][0])}'; rename one")


# --------------------------------------------------------------------------- one unit


def _task_config(task: BenchTask, form: str, cfg: BenchConfig) -> dict:
    return _task_config_of(task.configs[form], form, cfg)


def _task_config_of(conf: dict, form: str, cfg: BenchConfig) -> dict:
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

    conf = _task_config(task, form, cfg)
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


# --------------------------------------------------------------------------- the run


def prepare_tasks(cfg: BenchConfig, only: str | None = None) -> tuple[list[BenchTask], dict]:
    """The grid's tasks (or just `only`) with the asked-for forms, and their lm-eval tasks per form. The driver
    and every unit prepare them alike, so a unit on another node needs nothing but the config."""
    tasks = [resolve_task(t, cfg.data_dir, soft=any(m in TUNED_MODES for m in cfg.modes)) for t in cfg.tasks]
    tasks = [t for t in tasks if only is None or t.name == only]
    built: dict = {}
    for t in tasks:
        built[t.name] = {}
        if "ll" in t.configs and any(f in LL_FORMS for f in cfg.forms):
            built[t.name] = _user_ll_forms(t, cfg)
        t.configs = {f: c for f, c in t.configs.items() if f in cfg.forms}
        if not t.configs:
            raise ConfigError(f"task {t.name} has no {'/'.join(cfg.forms)} form; it has gen"
                              + ("" if t.answer != "letter" else " and ll"))
        built[t.name] = {form: built[t.name].get(form) or harness.build_lm_eval_task(_task_config(t, form, cfg))
                         for form in t.forms}
        t.num_eval_docs = len(harness.eval_docs(built[t.name][t.forms[0]]))
        if "gen" in built[t.name]:
            # Prompts tuned to write the stop string are other results than those tuned without it (recorded
            # only where it applies, so letter tasks keep their identity; whatever the modes, which may grow).
            from softeval.bench.tuning import stop_suffix

            suffix = stop_suffix(built[t.name]["gen"], "<eos>")
            if suffix:
                t.identity["tuning_stop"] = suffix
        if "soft_cloze" in cfg.modes and "ll_cloze" not in t.forms and t.answer == "letter":
            t.notes.append(f"{t.name}: no soft_cloze mode: it scores the cloze formulation, which this run "
                           + ("does not score (add ll_cloze to --forms)" if "ll_cloze" not in cfg.forms
                              else "this task does not have"))
        if not task_modes(cfg, t):
            raise ConfigError(f"task {t.name}: none of the modes {','.join(cfg.modes)} apply to it (soft_cloze "
                              "needs a multiple-choice task scored in its cloze form)")
    return tasks, built


def task_modes(cfg: BenchConfig, t: BenchTask) -> list[str]:
    """The asked-for modes that apply to a task: soft_cloze needs the task's cloze form (REQUIRED_FORM)."""
    return [m for m in cfg.modes if m not in REQUIRED_FORM or REQUIRED_FORM[m] in t.forms]


def _user_ll_forms(t: BenchTask, cfg: BenchConfig) -> dict:
    """A user's multiple_choice YAML: file it under the formulation its rendered choices show (ll_letters or
    ll_cloze) and derive ll_letters from a cloze YAML; where the other formulation cannot be derived, say why
    in t.notes. Returns the lm-eval tasks built on the way."""
    conf = t.configs.pop("ll")
    native = harness.build_lm_eval_task(_task_config_of(conf, "ll", cfg))
    form = "ll_" + harness.ll_formulation(native)
    t.configs[form], t.lm_eval_form = conf, form
    if form == "ll_letters":
        t.notes.append(f"{t.name}: no cloze form derived: the YAML scores letters, and which field holds the "
                       "choice texts cannot be told from it; pass a cloze multiple_choice YAML as another task, or "
                       "use a spec file")
        return {form: native}
    docs = harness.eval_docs(native)
    reason = ("its prompt depends on the choice (doc_to_text is not one text per item)"
              if docs and not isinstance(native.doc_to_text(docs[0]), str) else
              f"items have more than {len(layouts.LETTERS)} choices"
              if any(len(native.doc_to_choice(d)) > len(layouts.LETTERS) for d in docs) else None)
    if reason:
        t.notes.append(f"{t.name}: no letters form derived: {reason}")
        return {form: native}
    t.configs["ll_letters"] = letters_from_cloze(conf, native)
    t.identity["derived_letters"] = DERIVED_LETTERS
    return {form: native}


def curve_only_steps(cfg: BenchConfig) -> list[int]:
    """Curve points evaluated into their own files; the --steps point is the soft unit itself."""
    steps = sorted(set(cfg.curve_steps)) if "soft" in cfg.modes else []
    return [s for s in steps if s != cfg.optim.max_steps]


def seed_todo(units: Path, cfg: BenchConfig, seed: int, modes: list[str]) -> tuple[list[str], list[int]]:
    """One tuning seed's missing units among the tuned `modes`, and its missing curve points."""
    units = BenchFolder.seed_dir(units, seed, cfg.seed)
    return ([m for m in TUNED_MODES if m in modes and not (units / f"{m}.json").exists()],
            [s for s in curve_only_steps(cfg) if not BenchFolder.curve_unit(units, s).exists()])


def model_task_todo(out: Path, cfg: BenchConfig, model_name: str, task: str,
                    modes: list[str]) -> tuple[list[str], list[int]]:
    """The modes (of `modes`, the task's: task_modes) and curve steps some unit (some tuning seed for a tuned
    mode) still lacks."""
    units = BenchFolder(out).unit_dir(model_name, task)
    per_seed = [seed_todo(units, cfg, s, modes) for s in cfg.soft_seeds]
    missing_tuned = {m for tuned, _ in per_seed for m in tuned}
    return ([m for m in modes if (m in missing_tuned if m in TUNED_MODES else not (units / f"{m}.json").exists())],
            sorted({s for _, steps in per_seed for s in steps}))


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


def evaluate_model_task(cfg: BenchConfig, model_name: str, task_name: str, modes: list[str],
                        show_progress: bool = False) -> list[str]:
    """One unit of the grid: a model on a task in each of `modes` (the task's: task_modes). Zero- and few-shot,
    then per tuning seed ONE soft-prompt tuning run with snapshots at the curve steps, the soft mode at --steps
    and the curve, then per tuning seed the soft_cloze prompt. Each result is its own atomic file, so a re-run or
    a retried unit skips finished ones and each tuning resumes from its checkpoint. Returns the modes it
    evaluated."""
    from softeval.bench.lm_adapter import SoftevalLM

    from softeval.store.identity import differences

    out = Path(cfg.out)
    folder = BenchFolder(out)
    todo, todo_curve = model_task_todo(out, cfg, model_name, task_name, modes)
    if not todo and not todo_curve:
        return []
    [t], built = prepare_tasks(cfg, only=task_name)
    units, samples = folder.unit_dir(model_name, t.name), folder.samples_dir(model_name, t.name)
    # This node read the same data and resolves the same dtype and precision as the driver's identity says.
    recorded = read_json(units / "identity.json", "bench result identity")
    seen = unit_identity(cfg, t, built[t.name], resolved_facts(cfg))
    changed = differences(recorded, seen)
    if changed:
        raise DataError(f"unit {model_name} / {t.name} on this node sees other data or settings than the driver "
                        f"({'; '.join(changed)}); put the data on shared storage and pass --dtype/--precision")
    lm = cached_model(model_name, cfg.device, cfg.dtype, cfg.device_map)
    adapter = SoftevalLM(lm=lm, batch_size=cfg.eval_batch_size, precision=seen["resolved"]["precision"],
                         show_progress=False)
    claim_unit_model(units, {"model_sha256": lm.info.weights_sha256, "tokenizer_sha256": lm.info.tokenizer_sha256,
                             "weights_dtype": lm.info.dtype, "precision": seen["resolved"]["precision"]})
    share = gold_over_gen_cap(adapter, built[t.name].get("gen"))
    cut = {} if share is None else {"gold_over_gen_cap": share}
    done = []
    for mode in [m for m in ("zero", "few") if m in todo]:
        adapter.set_prompt(None)
        run_unit(adapter, t, mode, 0 if mode == "zero" else cfg.shots, t.forms, cfg, units / f"{mode}.json", samples,
                 cut)
        done.append(mode)
    if "soft" in todo or todo_curve:
        # Tuning renders the generative form; without it, the YAML's own (lm-eval's) ll form, else the first.
        tune_form = next(f for f in ("gen", t.lm_eval_form, *t.forms) if f in t.forms)
        for seed in cfg.soft_seeds:
            done += _soft_seed(cfg, adapter, t, built[t.name][tune_form], tune_form, model_name, seed, show_progress)
    if "soft_cloze" in todo:
        for seed in cfg.soft_seeds:
            done += _soft_cloze_seed(cfg, adapter, t, built[t.name]["ll_cloze"], model_name, seed, show_progress)
    adapter.set_prompt(None)
    return done


def _tune(cfg: BenchConfig, adapter, lm_task, stop: bool, seed: int, steps: list[int], run_dir: Path, spec: dict,
          show_progress: bool) -> tuple[dict[int, Path], dict]:
    """One tuning seed's run on `lm_task`'s training split, rendered as that task is scored (with `stop`, each
    target followed by the few-shot delimiter); its prompt snapshots at `steps` and the tuning facts a unit
    records."""
    from softeval.bench import tuning
    from softeval.train import TrainConfig

    eval_keys = {harness.doc_key(lm_task, d) for d in harness.eval_docs(lm_task)}
    data = tuning.tuning_examples(lm_task, adapter, cfg.tuning_size, seed, eval_keys, stop=stop)
    train_cfg = TrainConfig(num_virtual_tokens=cfg.num_virtual_tokens, prompt=cfg.prompt,
                            optim=replace(cfg.optim, max_steps=max(steps)), seed=seed, eval_every=0,
                            checkpoint_every=10, keep_checkpoints=2, precision=adapter.precision,
                            eval_batch_size=cfg.eval_batch_size, show_progress=show_progress,
                            out=str(Path(cfg.out) / "train"))
    paths = tuning.tune_with_snapshots(adapter, data, train_cfg, steps, run_dir, spec, show_progress=show_progress)
    info = {"num_train": len(data.train), "overlap_removed": data.overlap_removed,
            "num_virtual_tokens": cfg.num_virtual_tokens, "batch_size": cfg.optim.batch_size}
    return paths, info


def _soft_seed(cfg: BenchConfig, adapter, t: BenchTask, gen_task, tune_form: str, model_name: str, seed: int,
               show_progress: bool) -> list[str]:
    """The soft mode of one tuning seed (prompt init and data order): one tuning run, snapshots at the curve
    steps and at --steps, each evaluated into its own unit in this seed's folders (BenchFolder.seed_dir)."""
    from softeval.bench import tuning

    folder = BenchFolder(cfg.out)
    soft_todo, todo_curve = seed_todo(folder.unit_dir(model_name, t.name), cfg, seed, ["soft"])
    if not soft_todo and not todo_curve:
        return []
    units, samples, train = folder.tuning_seed_dirs(model_name, t.name, "soft", seed, cfg.seed)
    # The soft prompt also learns where an answer stops (the delimiter after the target), as generation needs.
    paths, tuning_info = _tune(cfg, adapter, gen_task, True, seed,
                               sorted(set(cfg.curve_steps) | {cfg.optim.max_steps}), train,
                               {"task": t.name, "bench": True, "form": tune_form, "source": t.source}, show_progress)
    done = []
    if soft_todo:
        adapter.set_prompt(*tuning.load_snapshot(adapter, paths[cfg.optim.max_steps]))
        run_unit(adapter, t, "soft", 0, t.forms, cfg, units / "soft.json", samples,
                 {"steps": cfg.optim.max_steps, "prompt": str(paths[cfg.optim.max_steps]), "tuning": tuning_info})
        done.append("soft")
    for step in todo_curve:
        if step not in paths:
            continue
        adapter.set_prompt(*tuning.load_snapshot(adapter, paths[step]))
        run_unit(adapter, t, f"soft@{step}", 0, ["gen"] if "gen" in t.forms else [tune_form], cfg,
                 BenchFolder.curve_unit(units, step), samples / "curve",
                 {"steps": step, "prompt": str(paths[step]), "tuning": tuning_info})
        done.append(f"soft@{step}")
    return done


def _soft_cloze_seed(cfg: BenchConfig, adapter, t: BenchTask, cloze_task, model_name: str, seed: int,
                     show_progress: bool) -> list[str]:
    """The soft_cloze mode of one tuning seed: a prompt tuned --steps on the cloze rendering of the training
    split (the question alone → " answer text"), then the cloze form scored under it."""
    from softeval.bench import tuning

    folder = BenchFolder(cfg.out)
    units, samples, train = folder.tuning_seed_dirs(model_name, t.name, "soft_cloze", seed, cfg.seed)
    if (units / "soft_cloze.json").exists():
        return []
    steps = cfg.optim.max_steps
    # The cloze form scores the answer text alone, so that is all this prompt learns (no delimiter after it).
    paths, tuning_info = _tune(cfg, adapter, cloze_task, False, seed, [steps], train,
                               {"task": t.name, "bench": True, "form": "ll_cloze", "source": t.source}, show_progress)
    adapter.set_prompt(*tuning.load_snapshot(adapter, paths[steps]))
    run_unit(adapter, t, "soft_cloze", 0, ["ll_cloze"], cfg, units / "soft_cloze.json", samples,
             {"steps": steps, "prompt": str(paths[steps]), "tuning": tuning_info})
    return ["soft_cloze"]


def _model_task_unit(unit: Unit) -> list[str]:
    p = unit.payload
    return evaluate_model_task(p["cfg"], p["model"], p["task"], p["modes"], p["show_progress"])


def run(cfg: BenchConfig) -> BenchResult:
    """softeval bench, holding OUT's lock (store.folder_lock): a second process on the same --out is refused in
    one line; units, local or on Ray, write inside the driver's lock."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(folder_lock(cfg.out, "bench run"))
        except FolderInUse as busy:
            # The documented way to read a long run's finished part while it goes on: a run over finished units
            # only reads them and writes the summary (atomically); anything left to compute is refused.
            return _run_locked(cfg, busy=busy)
        return _run_locked(cfg)


def _run_locked(cfg: BenchConfig, busy: FolderInUse | None = None) -> BenchResult:
    from softeval.bench import ranking

    # --- setup (every user error surfaces here, before any model work)
    out = Path(cfg.out)
    tasks, built = prepare_tasks(cfg)
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ConfigError(f"tasks repeat: {', '.join(names)}")
    _check_distinct_paths("task", names)
    _check_distinct_paths("model", list(dict.fromkeys(cfg.models)))
    reference = None
    if cfg.reference:
        reference = ranking.load_reference(cfg.reference)
        ranking.check_reference(reference, cfg.models, cfg.reference)
    data_info = {}
    for t in tasks:
        lm_task = built[t.name][t.forms[0]]
        split = harness.eval_split(lm_task)
        available = t.num_eval_docs  # counted once, by prepare_tasks
        data_info[t.name] = {"eval_split": split, "eval_items": min(available, cfg.limit or available),
                             **({"eval_items_from": "spread"} if eval_indices(available, cfg) else {}),
                             "eval_items_available": available, "source": t.source,
                             "skipped_no_gold": harness.skipped_without_gold(lm_task, split)}
        # Which formulation each form scores, which one is lm-eval's own task, and why one is missing.
        data_info[t.name]["formulations"] = {f: scoring.FORMULATIONS[f] if f != "gen" else
                                             scoring.formulation("strict_acc", t.answer) for f in t.forms}
        if t.lm_eval_form:
            data_info[t.name]["lm_eval_form"] = t.lm_eval_form
        if t.skipped_items:
            data_info[t.name]["skipped_items"] = t.skipped_items  # split → reason → count (e.g. duplicate choices)
        if t.notes:
            data_info[t.name]["notes"] = list(t.notes)
            for note in t.notes:
                logger.warning("%s", note)
        if data_info[t.name]["skipped_no_gold"]:
            logger.warning("%s: %d %s items have no gold answer; skipped", t.name,
                           data_info[t.name]["skipped_no_gold"], split)
    if busy is not None and any(any(model_task_todo(out, cfg, m, t.name, task_modes(cfg, t)))
                                for m in cfg.models for t in tasks):
        raise busy
    # One identity check (the store's): OUT holds results of these settings, resolved dtype and precision; each
    # (model, task) folder also of the same data (every file and split the task reads) and, once its model
    # loads, of the same weights. Models, tasks, modes and curve steps may grow.
    resolved = resolved_facts(cfg)
    claim_folder(out, result_identity("bench", identity_settings(cfg), resolved), "bench folder")
    identities = {t.name: unit_identity(cfg, t, built[t.name], resolved) for t in tasks}
    for t in tasks:
        data_info[t.name]["data_sha256"] = identities[t.name]["data"]  # compare tells eval sets apart by content
    for model_name in cfg.models:
        for t in tasks:
            claim_folder(BenchFolder(out).unit_dir(model_name, t.name), identities[t.name], "bench result")
        check_finished_units_model(out, model_name, tasks)
    atomic_write_json(out / "config.json", to_dict(cfg))

    # --- loop: one unit per (model, task) with anything left to do. In-process the units of one model run back
    # to back (it is loaded once); on Ray they run side by side, each with its share of a GPU.
    exe = cfg.execution
    cpus, gpus = unit_resources(exe, cfg.device)
    inner_bars = cfg.show_progress and exe.executor == Executor.local
    units, done_before = [], 0
    for model_name in cfg.models:
        for t in tasks:
            modes = task_modes(cfg, t)
            if not any(model_task_todo(out, cfg, model_name, t.name, modes)):
                done_before += 1
                continue
            units.append(Unit(f"{safe_name(model_name)}__{safe_name(t.name)}",
                              {"cfg": cfg, "model": model_name, "task": t.name, "modes": modes,
                               "show_progress": inner_bars},
                              cpus, gpus))
    try:
        run_units(units, _model_task_unit, executor=exe.executor, address=exe.ray_address,
                  max_retries=exe.max_retries, log_dir=out / "logs", show_progress=cfg.show_progress,
                  desc="bench units", done_before=done_before)
    finally:
        forget_models()  # the driver's (local) model cache lets go of the last model

    # --- save
    results, curves = collect_results(out, cfg, tasks)
    rankings = compute_rankings(out, cfg, tasks, reference)
    import lm_eval
    import torch
    import transformers

    doc = {"results": results, "curves": curves, "rankings": rankings, "data": data_info, "config": to_dict(cfg),
           "versions": {"softeval": __version__, "lm_eval": lm_eval.__version__, "torch": torch.__version__,
                        "transformers": transformers.__version__}}
    # config.json again beside results.json: a run over part of the models (a summary of the finished ones)
    # may have rewritten it meanwhile, and the two files must describe the same run.
    atomic_write_json(out / "config.json", doc["config"])
    atomic_write_json(out / "results.json", doc)
    from softeval.bench.report import write_report

    report_path = write_report(out, doc, reference)
    logger.info("wrote %s and %s", out / "results.json", report_path)
    return BenchResult(out_dir=out, results=results, curves=curves, rankings=rankings, report_path=report_path)


def collect_results(out: Path, cfg: BenchConfig, tasks: list[BenchTask]) -> tuple[dict, dict]:
    results: dict = {}
    curves: dict = {}
    for model_name in cfg.models:
        for t in tasks:
            units = BenchFolder(out).unit_dir(model_name, t.name)
            for mode in cfg.modes:
                found = _seed_units(units, cfg, mode, lambda d: d / f"{mode}.json")
                if found:
                    unit = next(iter(found.values()))
                    metrics = _seed_metrics(cfg, mode, found)
                    # The OLMES-style best formulation is derived here, not stored in units, so a unit
                    # written by an older softeval gets it too.
                    results.setdefault(model_name, {}).setdefault(t.name, {})[mode] = {
                        **metrics, **scoring.best_of(metrics, t.answer, single=mode in SINGLE_FORMULATION_MODES),
                        **(_answer_habit(out, cfg, model_name, t.name, mode, found) if t.answer == "letter" else {}),
                        "num_fewshot": unit["num_fewshot"], "lm_eval": unit["lm_eval"],
                        **({"gold_over_gen_cap": unit["gold_over_gen_cap"]} if "gold_over_gen_cap" in unit else {}),
                        **({"steps": unit["steps"], "tuning": unit["tuning"]} if mode in TUNED_MODES else {})}
            points = []
            # Requested steps plus any evaluated by an earlier run into this OUT (e.g. a longer curve for one model).
            for step in (sorted(set(cfg.curve_steps) | BenchFolder.curve_steps_on_disk(units)) if "soft" in cfg.modes else []):
                found = _seed_units(units, cfg, "soft", lambda d: d / "soft.json" if step == cfg.optim.max_steps
                                    else BenchFolder.curve_unit(d, step))
                if found:
                    m = _seed_metrics(cfg, "soft", found)
                    points.append({"step": step, **{k: v for k, v in m.items() if not k.startswith("ll_")}})
            if points:
                curves.setdefault(model_name, {})[t.name] = points
    return results, curves


def _seed_units(units: Path, cfg: BenchConfig, mode: str, path_in) -> dict[int, dict]:
    """seed → finished unit of `mode` (`path_in(folder)` names its file): every tuning seed's for a tuned mode,
    the base seed's otherwise."""
    seeds = cfg.soft_seeds if mode in TUNED_MODES else [cfg.seed]
    paths = {s: path_in(BenchFolder.seed_dir(units, s, cfg.seed)) for s in seeds}
    return {s: read_json(p, "bench unit") for s, p in paths.items() if p.exists()}


def _seed_metrics(cfg: BenchConfig, mode: str, found: dict[int, dict]) -> dict:
    """A unit's metrics; a tuned mode with --tuning-seeds > 1: the mean and spread over the seeds found, and
    which."""
    if mode not in TUNED_MODES or cfg.tuning_seeds == 1:
        return next(iter(found.values()))["metrics"]
    return {**scoring.over_seeds([u["metrics"] for u in found.values()]), "seeds": list(found)}


def _answer_habit(out: Path, cfg: BenchConfig, model: str, task: str, mode: str, found: dict[int, dict]) -> dict:
    """Each letter-answer accuracy beside the one its answer habit alone would score (bench.habit), pooled over
    the tuning seeds found; read from the samples, so rows of units written by an older softeval get it too."""
    samples = BenchFolder(out).samples_dir(model, task)
    out_metrics: dict = {}
    for metric, form in habit.HABIT_METRICS.items():
        files = [BenchFolder.seed_dir(samples, s, cfg.seed) / f"{mode}_{form}.jsonl" for s in found]
        if all(f.exists() for f in files):
            out_metrics.update(habit.habit_metrics(
                metric, [habit.answers_and_golds(list(read_jsonl(f)), form) for f in files]))
    return out_metrics


def _item_scores(out: Path, cfg: BenchConfig, model: str, task: str, mode: str, metric: str) -> list[float]:
    """Per-item scores behind a metric, by doc; for soft over several tuning seeds each item's mean over the
    seeds, so rankings use the seed mean and stay paired by item."""
    seeds = cfg.soft_seeds if mode in TUNED_MODES else [cfg.seed]
    samples = BenchFolder(out).samples_dir(model, task)
    form = scoring.FORM_OF.get(metric, "gen")
    files = [BenchFolder.seed_dir(samples, s, cfg.seed) / f"{mode}_{form}.jsonl" for s in seeds]
    vectors = [v for v in (scoring.item_scores(list(read_jsonl(f)), metric) for f in files) if v]
    if len({len(v) for v in vectors}) > 1:  # one identity scores every seed on the same items; never mix others
        raise DataError(f"{model} {task} {mode}: the tuning seeds' samples hold different numbers of items")
    return [sum(col) / len(col) for col in zip(*vectors)]


def _best_items(per_metric: dict[str, list[float]], single: bool = False) -> tuple[list[float], str | None]:
    """The per-item vector of the better formulation (scoring.best_metric's choice) and its metric."""
    means = {k: sum(v) / len(v) for k, v in per_metric.items() if v}
    metric = scoring.best_metric(means, single)
    return (per_metric[metric] if metric else []), metric


def compute_rankings(out: Path, cfg: BenchConfig, tasks: list[BenchTask], reference: dict | None) -> dict:
    """Leaderboards per (task, mode, metric); correlations vs the reference and between modes. Every entry
    names the formulation it ranks by: "letters" (generated), "letters_ll" or "cloze" (log-likelihood), or
    for best_acc the best of them per model and mode, as OLMES (`formulations` says which)."""
    from softeval.bench import ranking

    rankings: dict = {}
    for t in tasks:
        ll_metrics = [f"{f}_acc" for f in LL_FORMS if f in t.forms]
        metrics = (["strict_acc", "lenient_acc"] if "gen" in t.forms else []) + ll_metrics
        candidates = [m for m in scoring.BEST_CANDIDATES if m in metrics]
        if t.answer == "letter" and len(candidates) >= 2:
            metrics.append(scoring.BEST_METRIC)
        for metric in metrics:
            chosen: dict = {}
            if metric == scoring.BEST_METRIC:
                items = {}
                for mode in cfg.modes:
                    items[mode] = {}
                    for m in cfg.models:
                        items[mode][m], which = _best_items(
                            {c: _item_scores(out, cfg, m, t.name, mode, c) for c in candidates},
                            mode in SINGLE_FORMULATION_MODES)
                        if which:
                            chosen.setdefault(mode, {})[m] = scoring.formulation(which, t.answer)
            else:
                items = {mode: {m: _item_scores(out, cfg, m, t.name, mode, metric) for m in cfg.models}
                         for mode in cfg.modes}
            items = {mode: {m: v for m, v in per.items() if v} for mode, per in items.items()}
            entry: dict = {"formulation": scoring.formulation(metric, t.answer),
                           "leaderboards": {mode: ranking.add_paired_gaps(
                                                ranking.leaderboard({m: sum(v) / len(v) for m, v in per.items()}), per)
                                            for mode, per in items.items() if per}}
            if chosen:
                entry["formulations"] = chosen
                for mode, board in entry["leaderboards"].items():
                    for row in board:
                        row["formulation"] = chosen.get(mode, {}).get(row["model"])
            if len(cfg.models) >= 2:
                if reference:
                    entry["vs_reference"] = {}
                    for mode, per in items.items():
                        if len(set(per) & set(reference)) >= 2:
                            entry["vs_reference"][mode] = ranking.rank_correlation(
                                per, reference, num_bootstrap=cfg.num_bootstrap, seed=cfg.seed).to_dict()
                entry["between_modes"] = {}
                modes = [m for m in cfg.modes if len(items.get(m, {})) >= 2]
                for i, a in enumerate(modes):
                    for b in modes[i + 1:]:
                        common = set(items[a]) & set(items[b])
                        if len(common) >= 2 and all(len(items[a][m]) == len(items[b][m]) for m in common):
                            entry["between_modes"][f"{a}~{b}"] = ranking.rank_correlation(
                                items[a], items[b], num_bootstrap=cfg.num_bootstrap, seed=cfg.seed).to_dict()
            rankings.setdefault(t.name, {})[metric] = entry
    return rankings
