"""The bench run's settings: BenchConfig, each field declaring whether it is part of a result's identity
(softeval.store.identity reads the declarations) and why not where it is not."""

from __future__ import annotations

from dataclasses import dataclass, field

from softeval.bench.modes import MODES
from softeval.bench.forms import FORMS, LL_FORMS
from softeval.config import option, section
from softeval.engine.loop import OptimConfig, Precision, Schedule
from softeval.engine.models import DEVICE_MAPS, DTYPES
from softeval.engine.prompt import PromptConfig
from softeval.errors import ConfigError
from softeval.executors import ExecutorConfig
from softeval.store.identity import DEVICE_WHY, DTYPE_WHY, OUT_WHY, PRECISION_WHY, REPORTING_WHY

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
