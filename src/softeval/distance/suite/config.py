"""The suite's settings (SuiteConfig, every field with its identity metadata) and which behaviour files it reads.

A suite is one distance sweep per (behaviour, direction), all with the same grid, prompt and optimiser, so most
fields mean what they mean for `softeval distance`; the behaviour-specific ones (split, control seed, format)
are passed to every sweep's `behaviour` task.
"""

from __future__ import annotations

import glob
import math
from dataclasses import dataclass, field
from pathlib import Path

from softeval.config import from_dict, option, section, to_dict
from softeval.distance.config import DEFAULT_MAX_BATCH_TOKENS, SUMMARY_WHY, DistanceConfig, parse_tokens
from softeval.engine.loop import OptimConfig, Precision
from softeval.engine.models import DEFAULT_MODEL, DTYPES
from softeval.engine.prompt import PromptConfig
from softeval.errors import ConfigError, DataError
from softeval.executors import ExecutorConfig
from softeval.store.identity import (CHECKPOINT_WHY, DATA_WHY, DEVICE_WHY, DTYPE_WHY, GROW_WHY, MODEL_WHY, OUT_WHY,
                                     PRECISION_WHY, REPORTING_WHY)
from softeval.tasks import TaskConfig
from softeval.tasks.behaviour import Direction, PromptFormat

# Where the behaviour files sit in a checkout of github.com/anthropics/evals (--data-dir).
EVALS_FOLDERS = ("persona", "advanced-ai-risk/human_generated_evals", "advanced-ai-risk/lm_generated_evals")
SWEEP_WHY = "each (behaviour, direction) sweep records the weights, data and settings its cells depend on"


def parse_names(value, what: str, allowed: list[str] | None = None) -> tuple[str, ...]:
    """'a,b' or ['a', 'b'] → ('a', 'b') in the order given, without repeats."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    names = tuple(dict.fromkeys(str(i).strip() for i in items if str(i).strip()))
    bad = [n for n in names if allowed is not None and n not in allowed]
    if bad:
        raise ConfigError(f"{what}: unknown {', '.join(repr(b) for b in bad)}; choose from {', '.join(allowed)}")
    return names


@dataclass(frozen=True)
class SuiteConfig:
    model: str = option(DEFAULT_MODEL, flag="--model", help="embedded name, Hugging Face id, local folder or .gguf",
                        identity=False, why=MODEL_WHY)
    device: str = option("auto", flag="--device", help="auto, cpu, cuda, cuda:N or mps", identity=False,
                         why=DEVICE_WHY)
    dtype: str = option("auto", flag="--dtype", choices=lambda: ["auto", *DTYPES], help="weights dtype",
                        identity=False, why=DTYPE_WHY)
    precision: Precision = option(Precision.auto, flag="--precision",
                                  help="autocast for training and scoring (auto: bf16 where fast, else fp32)",
                                  identity=False, why=PRECISION_WHY)
    data: str | None = option(None, flag="--data", help="behaviour file(s) in the anthropics/evals format: a .jsonl "
                                                        "file, a folder of them, or a glob like 'persona/desire-*.jsonl'",
                              identity=False, why=DATA_WHY)
    data_dir: str | None = option(None, flag="--data-dir",
                                  help="a checkout of github.com/anthropics/evals: its persona/ and advanced-ai-risk/ "
                                       "files", identity=False, why=DATA_WHY)
    behaviours: tuple[str, ...] = option((), flag="--behaviours",
                                         help="only these behaviours (file names without .jsonl), comma-separated",
                                         identity=False, why=GROW_WHY)
    directions: tuple[str, ...] = option(tuple(Direction.values()), flag="--directions",
                                         help="towards, away and the shuffled-label control (comma-separated)",
                                         identity=False, why=GROW_WHY)
    tokens: tuple[int, ...] = option((0, 1, 4, 16), flag="--tokens",
                                     help="prompt lengths n, comma-separated; 0 = the zero-shot disposition",
                                     identity=False, why=GROW_WHY)
    seeds: int = option(3, flag="--seeds", help="seeds 0..seeds-1 per n > 0 and direction", identity=False,
                        why=GROW_WHY)
    num_train: int = option(256, flag="--num-train", help="statements per behaviour to train on (0 = all the rest)")
    num_eval: int = option(100, flag="--num-eval", help="held-out statements per behaviour (at most half of them)")
    split_seed: int = option(0, flag="--split-seed", help="seed of the train/held-out split by statement")
    control_seed: int = option(0, flag="--control-seed", help="seed of the control's coin-flip answers")
    format: PromptFormat = option(PromptFormat.upstream, flag="--format",
                                  help="upstream: 'Human: {question}\\n\\nAssistant:'; chat: the model's chat template")
    min_confidence: float = option(0.0, flag="--min-confidence",
                                   help="persona files: only statements whose label_confidence is at least this")
    max_length: int = option(512, help="truncate longer statements (prompt side first)")
    prompt: PromptConfig = field(default_factory=PromptConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval_batch_size: int = option(16, flag="--eval-batch-size", help="rows per evaluation batch")
    checkpoint_every: int = option(25, flag="--checkpoint-every", help="a killed suite resumes each cell from here",
                                   identity=False, why=CHECKPOINT_WHY)
    max_batch_tokens: int = option(DEFAULT_MAX_BATCH_TOKENS, flag="--max-batch-tokens",
                                   help="rows × padded length per step when cells share a pass (lanes); "
                                        "0 = one cell per pass", identity=False,
                                   why="which cells share a pass is fixed in each sweep's plan.json")
    margin: float = option(0.05, flag="--margin",
                           help="the gap: smallest n whose held-out rate beats the control's by more than this "
                                "(lower end of the interval)", identity=False, why=SUMMARY_WHY)
    confidence: float = option(0.95, flag="--confidence", help="two-sided level of the bootstrap intervals",
                               identity=False, why=SUMMARY_WHY)
    bootstrap_samples: int = option(2000, help="resamples of statements and seeds", identity=False, why=SUMMARY_WHY)
    out: str = option("runs/suite", flag="--out", help="suite folder; re-run the same command to continue it",
                      identity=False, why=OUT_WHY)
    execution: ExecutorConfig = section(ExecutorConfig, identity=False,
                                        why="where the units run; each sweep fixes its torch thread count")
    report: bool = option(True, identity=False, why=REPORTING_WHY)
    show_progress: bool = option(True, identity=False, why=REPORTING_WHY)

    def __post_init__(self):
        object.__setattr__(self, "tokens", parse_tokens(self.tokens))
        object.__setattr__(self, "behaviours", parse_names(self.behaviours, "--behaviours"))
        object.__setattr__(self, "directions", parse_names(self.directions, "--directions", Direction.values()))
        errors = []
        if not self.directions:
            errors.append("--directions is empty; give towards, away and/or control")
        if self.seeds < 1:
            errors.append(f"seeds must be >= 1, got {self.seeds}")
        if self.optim.max_steps < 1:
            errors.append(f"optim.max_steps (--steps) must be >= 1, got {self.optim.max_steps}")
        for key in ("num_train", "num_eval", "max_length", "checkpoint_every", "max_batch_tokens"):
            if getattr(self, key) < 0:
                errors.append(f"{key} must be >= 0, got {getattr(self, key)}")
        if not 0.0 <= self.min_confidence <= 1.0:
            errors.append(f"min_confidence must be in [0, 1], got {self.min_confidence}")
        if not (math.isfinite(self.margin) and -1.0 < self.margin < 1.0):
            errors.append(f"margin must be a number in (-1, 1), got {self.margin}")
        if not 0.5 <= self.confidence < 1.0:
            errors.append(f"confidence must be in [0.5, 1), got {self.confidence}")
        if self.bootstrap_samples < 100:
            errors.append(f"bootstrap_samples must be >= 100, got {self.bootstrap_samples}")
        if self.eval_batch_size < 1:
            errors.append(f"eval_batch_size must be >= 1, got {self.eval_batch_size}")
        if errors:
            raise ConfigError("; ".join(errors))


def config_dict(cfg: SuiteConfig) -> dict:
    return to_dict(cfg)


def config_from_dict(data: dict) -> SuiteConfig:
    return from_dict(SuiteConfig, data)


def sweep_config(cfg: SuiteConfig, data_file: Path, direction: str, out: Path) -> DistanceConfig:
    """The distance sweep of one behaviour in one direction: the suite's grid, prompt and optimiser."""
    task = TaskConfig(name="behaviour", data=str(data_file), num_train=cfg.num_train, num_eval=cfg.num_eval,
                      max_length=cfg.max_length, seed=cfg.split_seed,
                      options={"direction": direction, "control_seed": cfg.control_seed, "format": str(cfg.format),
                               "min_confidence": cfg.min_confidence})
    return DistanceConfig(model=cfg.model, device=cfg.device, dtype=cfg.dtype, precision=cfg.precision, task=task,
                          tokens=cfg.tokens, seeds=cfg.seeds, prompt=cfg.prompt, optim=cfg.optim,
                          eval_batch_size=cfg.eval_batch_size, checkpoint_every=cfg.checkpoint_every,
                          max_batch_tokens=cfg.max_batch_tokens, num_samples=0, out=str(out),
                          execution=cfg.execution, report=False, show_progress=cfg.show_progress)


# --------------------------------------------------------------------------- which files


def behaviour_name(path: Path) -> str:
    return path.stem


def find_behaviours(cfg: SuiteConfig) -> dict[str, Path]:
    """{behaviour name: file}: the files --data and --data-dir name, narrowed to --behaviours. A glob that matches
    nothing, a folder without .jsonl files, two files of one name or an unknown behaviour is a one-line error."""
    if not cfg.data and not cfg.data_dir:
        raise ConfigError("softeval suite needs behaviour files: --data FILE|FOLDER|GLOB, or --data-dir pointing at "
                          "a checkout of github.com/anthropics/evals")
    files: list[Path] = []
    if cfg.data:
        files += _data_files(cfg.data)
    if cfg.data_dir:
        root = Path(cfg.data_dir).expanduser()
        if not root.is_dir():
            raise DataError(f"--data-dir {root} is not a folder (expected a checkout of github.com/anthropics/evals)")
        found = [p for sub in EVALS_FOLDERS for p in sorted((root / sub).glob("*.jsonl"))]
        if not found:
            raise DataError(f"--data-dir {root} has no behaviour files under {', '.join(EVALS_FOLDERS)} (is it a "
                            "checkout of github.com/anthropics/evals?)")
        files += found
    by_name: dict[str, Path] = {}
    for path in files:
        name = behaviour_name(path)
        if name in by_name and by_name[name].resolve() != path.resolve():
            raise DataError(f"two behaviour files are named {name!r} ({by_name[name]} and {path}); narrow --data or "
                            "rename one")
        by_name.setdefault(name, path)
    if cfg.behaviours:
        unknown = [b for b in cfg.behaviours if b not in by_name]
        if unknown:
            from softeval.errors import unknown_choice

            raise ConfigError(unknown_choice("behaviour", unknown[0], sorted(by_name)))
        by_name = {b: by_name[b] for b in cfg.behaviours}
    return by_name


def _data_files(spec: str) -> list[Path]:
    path = Path(spec).expanduser()
    if path.is_dir():
        found = sorted(path.glob("*.jsonl"))
        if not found:
            raise DataError(f"--data folder {path} holds no .jsonl behaviour files")
        return found
    if path.is_file():
        return [path]
    if any(ch in spec for ch in "*?["):
        found = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        if not found:
            raise DataError(f"--data glob {spec!r} matches no file")
        return found
    raise DataError(f"--data {path} does not exist (give a .jsonl file, a folder of them, or a glob)")
