"""The run's grid before any model loads: its tasks with the asked-for forms and their lm-eval tasks, the
modes that apply to each, the names checked, and what each task evaluates (results.json's `data`). The driver
and every unit prepare tasks alike, so a unit on another node needs nothing but the config."""

from __future__ import annotations

import logging

from softeval.bench import harness, layouts, scoring
from softeval.bench.config import BenchConfig
from softeval.bench.evaluate import eval_indices, task_config, task_config_of
from softeval.bench.modes import REQUIRED_FORM, TUNED_MODES
from softeval.bench.forms import LL_FORMS, BenchTask
from softeval.bench.tasks import DERIVED_LETTERS, letters_from_cloze, resolve_task
from softeval.errors import ConfigError
from softeval.store import safe_name

logger = logging.getLogger(__name__)


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
        built[t.name] = {form: built[t.name].get(form) or harness.build_lm_eval_task(task_config(t, form, cfg))
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
    native = harness.build_lm_eval_task(task_config_of(conf, "ll", cfg))
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


def check_grid_names(cfg: BenchConfig, tasks: list[BenchTask]) -> None:
    """Each task once, and no two tasks or models sharing a folder in OUT."""
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ConfigError(f"tasks repeat: {', '.join(names)}")
    _check_distinct_paths("task", names)
    _check_distinct_paths("model", list(dict.fromkeys(cfg.models)))


def _check_distinct_paths(kind: str, names: list[str]) -> None:
    by_path: dict[str, list[str]] = {}
    for name in names:
        by_path.setdefault(safe_name(name), []).append(name)
    clash = [v for v in by_path.values() if len(v) > 1]
    if clash:
        raise ConfigError(f"{kind} names {' and '.join(map(repr, clash[0]))} map to the same folder "
                          f"'{safe_name(clash[0][0])}'; rename one")


def describe_data(cfg: BenchConfig, tasks: list[BenchTask], built: dict) -> dict:
    """results.json's `data`: per task, what its evaluation reads (split, items, source), which formulation each
    form scores, and what was skipped and why (each note also logged)."""
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
    return data_info
