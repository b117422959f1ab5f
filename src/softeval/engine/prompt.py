"""Soft prompts: trainable input embeddings, their initialisers, and their files.

A prompt module maps a batch (and optional condition vectors) to per-row prompt embeddings of shape
(B, n, D). Parameters are kept in fp32 whatever the model dtype; they are cast only when inserted.

  * `SoftPrompt`: n free vectors, the same for every row.
  * `ConditionalPrompt`: base vectors plus a linear or MLP map from a normalised condition vector,
    so one prompt family covers a range of conditions (chess Elo, path quality).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_save
from torch import nn
from torch.nn.utils import skip_init

from softeval.engine.batching import Placement
from softeval.store.card import ANY_TASK, CARD_KEY, card_facts, render_card
from softeval.config import Choice, option
from softeval.errors import ConfigError, PromptMismatchError, SoftevalError, unknown_choice
from softeval.store import atomic_write_bytes

PEFT_KEY = "prompt_embeddings"  # PEFT's key for prompt-tuning adapters; reused for plain prompts
VOCAB_SAMPLE_RANGE = 5000  # Lester et al. 2021: sample init tokens from the most frequent ids


# --------------------------------------------------------------------------- initialisers


def _derived_seed(purpose: str, seed: int) -> int:
    """A seed for one purpose, so streams drawn from the same user seed are not the same numbers."""
    return int.from_bytes(hashlib.sha256(f"{purpose}:{seed}".encode()).digest()[:8], "little") >> 1


def _embed_ids(embedding: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Embeddings as the model sees them (Gemma's embedding module scales by sqrt(D))."""
    with torch.no_grad():
        return embedding(ids.to(embedding.weight.device)).float().cpu()


def init_vocab(n: int, embedding: nn.Module, generator: torch.Generator, tokenizer=None, text: str | None = None):
    vocab = embedding.weight.shape[0]
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    pool = torch.tensor([i for i in range(min(vocab, VOCAB_SAMPLE_RANGE)) if i not in special])
    ids = pool[torch.randint(len(pool), (n,), generator=generator)]
    return _embed_ids(embedding, ids)


def init_text(n: int, embedding: nn.Module, generator: torch.Generator, tokenizer=None, text: str | None = None):
    if not text:
        raise ConfigError("init 'text' needs init_text (e.g. --init-text 'Repeat the word hello')")
    ids = tokenizer(text, add_special_tokens=False).input_ids
    if not ids:
        raise ConfigError(f"init_text {text!r} tokenizes to nothing")
    ids = (ids * (n // len(ids) + 1))[:n]  # repeat to fill n slots, as PEFT does
    return _embed_ids(embedding, torch.tensor(ids))


def init_random(n: int, embedding: nn.Module, generator: torch.Generator, tokenizer=None, text: str | None = None):
    # Match the scale the model sees: sample rows of the (possibly scaled) embedding output to get its std.
    probe = _embed_ids(embedding, torch.randint(embedding.weight.shape[0], (256,), generator=generator))
    return torch.randn(n, probe.shape[1], generator=generator) * probe.std()


def init_zeros(n: int, embedding: nn.Module, generator: torch.Generator, tokenizer=None, text: str | None = None):
    return torch.zeros(n, embedding.weight.shape[1])


INITIALISERS: dict[str, Callable[..., torch.Tensor]] = {
    "vocab": init_vocab,
    "text": init_text,
    "random": init_random,
    "zeros": init_zeros,
}


def initial_embeddings(init: str, n: int, embedding: nn.Module, seed: int, tokenizer=None,
                       text: str | None = None) -> torch.Tensor:
    if init not in INITIALISERS:
        raise ConfigError(unknown_choice("prompt init", init, list(INITIALISERS)))
    generator = torch.Generator().manual_seed(seed)
    if n == 0:
        return torch.zeros(0, embedding.weight.shape[1])
    return INITIALISERS[init](n, embedding, generator, tokenizer=tokenizer, text=text)


# --------------------------------------------------------------------------- prompt modules


class SoftPrompt(nn.Module):
    """n trainable vectors shared by every row of a batch."""

    def __init__(self, embeddings: torch.Tensor):
        super().__init__()
        self.embeddings = nn.Parameter(embeddings.detach().clone().float())  # (n, D)

    @property
    def num_virtual_tokens(self) -> int:
        return self.embeddings.shape[0]

    def forward(self, batch_size: int, conditions: torch.Tensor | None = None) -> torch.Tensor:
        return self.embeddings.unsqueeze(0).expand(batch_size, -1, -1)  # (B, n, D)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {PEFT_KEY: self.embeddings.detach().cpu().contiguous()}


class ConditionalPrompt(nn.Module):
    """Base vectors plus a learned map from a condition vector c (already normalised) to offsets.

    prompt(c) = base + map(c), map: linear or a one-hidden-layer MLP of width `hidden`. The map's last
    layer starts at zero so, at step 0, every condition gets the same (initialised) prompt. The MLP's
    hidden layer is drawn from `seed` alone (never the global RNG), so a seed names one prompt.
    """

    def __init__(self, embeddings: torch.Tensor, condition_dim: int, kind: str = "linear", hidden: int = 256,
                 seed: int = 0):
        super().__init__()
        if kind not in ("linear", "mlp"):
            raise ConfigError(unknown_choice("conditional prompt kind", kind, ["linear", "mlp"]))
        if condition_dim < 1:
            raise ConfigError("a conditional prompt needs condition_dim >= 1")
        if kind == "mlp" and hidden < 1:
            raise ConfigError(f"conditional_hidden must be >= 1 for an mlp map, got {hidden}")
        n, d = embeddings.shape
        self.kind, self.condition_dim, self.hidden = kind, condition_dim, hidden
        self.embeddings = nn.Parameter(embeddings.detach().clone().float())  # (n, D)
        # skip_init: no draw from the global RNG (which would also shift every later global draw).
        out = skip_init(nn.Linear, condition_dim if kind == "linear" else hidden, n * d)
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        if kind == "linear":
            self.map = out
            return
        first = skip_init(nn.Linear, condition_dim, hidden)
        # nn.Linear's own default (kaiming_uniform with a=sqrt(5) gives weight and bias U(±1/sqrt(fan_in))),
        # drawn from a generator of its own; the salt keeps it apart from the embedding initialiser's stream.
        generator = torch.Generator().manual_seed(_derived_seed("conditional-map", seed))
        bound = 1.0 / math.sqrt(condition_dim)
        with torch.no_grad():
            first.weight.copy_(torch.rand(first.weight.shape, generator=generator) * 2 * bound - bound)
            first.bias.copy_(torch.rand(first.bias.shape, generator=generator) * 2 * bound - bound)
        self.map = nn.Sequential(first, nn.GELU(), out)

    @property
    def num_virtual_tokens(self) -> int:
        return self.embeddings.shape[0]

    def forward(self, batch_size: int, conditions: torch.Tensor | None = None) -> torch.Tensor:
        if conditions is None:
            raise SoftevalError("this prompt is conditional: every example needs a condition vector")
        assert conditions.shape == (batch_size, self.condition_dim), conditions.shape
        n, d = self.embeddings.shape
        offsets = self.map(conditions.float()).view(batch_size, n, d)  # (B, n, D)
        return self.embeddings.unsqueeze(0) + offsets

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}


PromptModule = SoftPrompt | ConditionalPrompt


def build_prompt(embeddings: torch.Tensor, condition_dim: int = 0, kind: str = "linear", hidden: int = 256,
                 seed: int = 0) -> PromptModule:
    """A fresh prompt; for a conditional one, `hidden` is the MLP width and `seed` draws its hidden layer."""
    if condition_dim:
        return ConditionalPrompt(embeddings, condition_dim, str(kind), hidden=hidden, seed=seed)
    return SoftPrompt(embeddings)


class ConditionalKind(Choice):
    linear = "linear"  # prompt(c) = base + W c
    mlp = "mlp"        # prompt(c) = base + W2 gelu(W1 c)


@dataclass(frozen=True)
class PromptConfig:
    """How a prompt is built and where it sits; one section shared by train, distance and bench."""

    init: str = option("vocab", flag="--init", choices=lambda: list(INITIALISERS),
                       help="initial vectors: sampled vocabulary embeddings, text, scaled random or zeros "
                            "(zeros suits models with biases, e.g. Pythia; bias-free Llama/Gemma get "
                            "non-finite gradients)")
    init_text: str | None = option(None, flag="--init-text", help="text for init 'text'")
    placement: Placement = option(Placement.after_bos, flag="--placement",
                                  help="soft tokens after BOS (default) or before it (PEFT's layout)")
    conditional: ConditionalKind = option(ConditionalKind.linear, flag="--conditional",
                                          help="condition → prompt map, for tasks with conditions (chess, pathfinding)")
    conditional_hidden: int = option(256, flag="--conditional-hidden", help="hidden width of the 'mlp' map")

    def __post_init__(self):
        errors = []
        if self.init not in INITIALISERS:
            errors.append(unknown_choice("prompt init (prompt.init)", self.init, list(INITIALISERS)))
        if self.init == "text" and not self.init_text:
            errors.append("init 'text' needs init_text (--init-text)")
        if self.conditional_hidden < 1:
            errors.append(f"prompt.conditional_hidden must be >= 1, got {self.conditional_hidden}")
        if errors:
            raise ConfigError("; ".join(errors))


# --------------------------------------------------------------------------- files


# The metadata fields the checks and the card compute with, and the JSON type each must have.
METADATA_TYPES = {"hidden_size": int, "num_virtual_tokens": int, "condition_dim": int, "task_spec": dict,
                  "extra": dict, "model_sha256": str, "tokenizer_sha256": str, "task_hash": str}


@dataclass
class PromptMetadata:
    """What a saved prompt needs to be reused safely (DESIGN.md invariant 8)."""

    model_name: str
    model_sha256: str
    tokenizer_sha256: str
    hidden_size: int
    num_virtual_tokens: int
    task_spec: dict
    task_hash: str
    init: str
    seed: int
    steps: int
    placement: str
    softeval_version: str
    kind: str = "plain"  # plain | linear | mlp
    condition_dim: int = 0
    extra: dict = field(default_factory=dict)

    def to_strings(self) -> dict[str, str]:
        return {k: json.dumps(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_strings(cls, meta: dict[str, str], where: str = "prompt file") -> "PromptMetadata":
        """Metadata from its header strings; `where` names the file in errors."""
        known = {}
        for key, value in meta.items():
            if key not in cls.__dataclass_fields__:
                continue
            try:
                known[key] = json.loads(value)
            except (TypeError, json.JSONDecodeError):
                raise PromptMismatchError(f"{where}: metadata field '{key}' is not JSON ({str(value)[:40]!r}); the "
                                          "file was edited or written by another program") from None
        missing = [k for k in ("model_name", "model_sha256", "tokenizer_sha256") if k not in known]
        if missing:
            raise PromptMismatchError(f"{where} has no softeval metadata ({', '.join(missing)} missing); "
                                      "import PEFT adapters with `softeval import-peft`")
        # The other fields without a default (hidden_size, task_spec, …): a partial record cannot be checked.
        required = [f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        incomplete = [k for k in required if k not in known]
        if incomplete:
            raise PromptMismatchError(f"{where}: prompt metadata lacks {', '.join(incomplete)}; the file was edited or "
                                      "written by another program: export or train the prompt again")
        wrong = [f"{k} ({type(known[k]).__name__})" for k, kind in METADATA_TYPES.items()
                 if k in known and (not isinstance(known[k], kind) or isinstance(known[k], bool))]
        if wrong:
            raise PromptMismatchError(f"{where}: prompt metadata has the wrong type for {', '.join(wrong)}; the file was "
                                      "edited or written by another program: export or train the prompt again")
        return cls(**known)


def save_prompt(path: Path, prompt: PromptModule, meta: PromptMetadata) -> None:
    # The rendered card rides along in the header so any safetensors reader shows what the prompt is.
    header = {**meta.to_strings(), CARD_KEY: render_card(meta)}
    atomic_write_bytes(Path(path), safetensors_save(prompt.tensors(), metadata=header))


def read_prompt_file(path: Path) -> tuple[dict[str, torch.Tensor], PromptMetadata]:
    path = Path(path)
    if path.is_dir():
        path = path / "prompt.safetensors"
    if not path.exists():
        raise SoftevalError(f"no prompt at {path}; pass a run directory with a finished run or a .safetensors file")
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own SafetensorError for corrupt headers
        raise SoftevalError(f"{path} is not a readable safetensors prompt: {exc}") from exc
    return tensors, PromptMetadata.from_strings(meta, where=str(path))


def task_kind(spec: dict) -> dict:
    """A task spec without its data hashes: the kind of behaviour and its format settings, not which examples.
    A prompt fits every task of its kind, so held-out data is allowed; which data was scored belongs to the
    result (eval records both hashes), not to this check."""
    return {k: v for k, v in (spec or {}).items() if k != "data_sha256"}


def check_compatible(meta: PromptMetadata, model_info, task_spec: dict | None = None) -> None:
    """Refuse to reuse a prompt with a model, tokenizer or kind of task it was not trained for."""
    if meta.hidden_size != model_info.hidden_size:
        raise PromptMismatchError(f"prompt was trained for '{meta.model_name}' (hidden size {meta.hidden_size}), "
                                  f"not '{model_info.name}' (hidden size {model_info.hidden_size}); "
                                  f"pass --model {meta.model_name}")
    if meta.model_sha256 != model_info.weights_sha256:
        raise PromptMismatchError(f"prompt was trained on model '{meta.model_name}' (weights {meta.model_sha256[:12]}), "
                                  f"but '{model_info.name}' has weights {model_info.weights_sha256[:12]}; "
                                  f"pass --model {meta.model_name} or --allow-mismatch to use it anyway")
    if meta.tokenizer_sha256 != model_info.tokenizer_sha256:
        raise PromptMismatchError(f"prompt was trained with a different tokenizer than '{model_info.name}' uses; "
                                  "pass --allow-mismatch to use it anyway")
    # An imported PEFT adapter has no softeval task (task_hash "any"): it may be scored on any task.
    if task_spec is not None and meta.task_hash != ANY_TASK and task_kind(meta.task_spec) != task_kind(task_spec):
        raise PromptMismatchError(f"prompt was trained for task {task_kind(meta.task_spec)}, not "
                                  f"{task_kind(task_spec)}; pass --allow-mismatch to use it anyway")


def load_prompt(path: Path, model_info=None, task_spec: dict | None = None,
                allow_mismatch: bool = False) -> tuple[PromptModule, PromptMetadata]:
    """The prompt at `path`, checked against the model (and, given `task_spec`, the kind of task) it is for."""
    tensors, meta = read_prompt_file(path)
    if model_info is not None and not allow_mismatch:
        check_compatible(meta, model_info, task_spec)
    if meta.kind == "plain":
        prompt = SoftPrompt(tensors[PEFT_KEY])
    else:
        prompt = ConditionalPrompt(tensors["embeddings"], meta.condition_dim, meta.kind,
                                   hidden=int(meta.extra.get("hidden", 256)))
        prompt.load_state_dict(tensors)
    return prompt, meta


def add_card_facts(prompt_path: Path, **facts) -> None:
    """Complete the card of a saved prompt (e.g. with the held-out score and command line known only after
    the run); tensors and every other metadata field are written back unchanged."""
    tensors, meta = read_prompt_file(prompt_path)
    meta.extra = {**(meta.extra or {}), "card": {**((meta.extra or {}).get("card") or {}), **card_facts(**facts)}}
    path = Path(prompt_path)
    save_prompt(path / "prompt.safetensors" if path.is_dir() else path, _TensorHolder(tensors), meta)


class _TensorHolder:
    """What save_prompt needs from a prompt module (its tensors), for re-saving a file as read."""

    def __init__(self, tensors: dict):
        self._tensors = tensors

    def tensors(self) -> dict:
        return {k: v.contiguous() for k, v in self._tensors.items()}
