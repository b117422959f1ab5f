"""What a bench result was computed from: the settings, the resolved dtype and precision, each task's prompts
and data, and the model's weights. OUT and every (model, task) folder claim it (store.claim_folder), so a folder
never mixes results of different inputs."""

from __future__ import annotations

from pathlib import Path

from softeval.bench import harness
from softeval.bench.config import BenchConfig
from softeval.bench.forms import BenchTask
from softeval.errors import ConfigError
from softeval.store import BenchFolder, claim_folder, read_json
from softeval.store.identity import result_identity, settings_identity


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


def claim_bench_folder(out: Path, cfg: BenchConfig, tasks: list[BenchTask], built: dict) -> dict[str, dict]:
    """One identity check (the store's): OUT holds results of these settings, resolved dtype and precision; each
    (model, task) folder also of the same data (every file and split the task reads) and, once its model loads,
    of the same weights. Models, tasks, modes and curve steps may grow. Returns each task's unit identity."""
    resolved = resolved_facts(cfg)
    claim_folder(out, result_identity("bench", identity_settings(cfg), resolved), "bench folder")
    identities = {t.name: unit_identity(cfg, t, built[t.name], resolved) for t in tasks}
    for model_name in cfg.models:
        for t in tasks:
            claim_folder(BenchFolder(out).unit_dir(model_name, t.name), identities[t.name], "bench result")
        check_finished_units_model(out, model_name, tasks)
    return identities
