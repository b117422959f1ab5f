"""The lm-eval seam: "frozen base model + optional soft prompt" as an lm-eval `LM`.

Registered as `softeval`, so after `import softeval.bench.lm_adapter` (or through the
`softeval-lm-eval` command, which is lm-eval's CLI with this model registered):

    softeval-lm-eval --model softeval --model_args model=gemma3-270m,prompt=RUNS/bench/.../prompt.safetensors \
        --tasks arc_easy --include_path src/softeval/bench/task_configs

With no prompt it reproduces `lm_eval --model hf` for the same model: contexts and continuations
are tokenized exactly as HFLM does (`TemplateLM._encode_pair`, BOS by the tokenizer's own rule), and
scored through softeval's batched target-logit path. The only layout difference is that softeval
re-adds a tokenizer-added BOS itself (`collate`), so the soft prompt can sit right after it:

    request tokens   [BOS] ctx … | cont …
    softeval row     [pad …][BOS][soft × n] ctx … | cont …      (n = 0: the same sequence)

`add_bos_token=False` (as HFLM's) means no BOS anywhere the adapter builds a row: scoring, rolling windows
and generation start at the soft prompt, then the text. lm-eval's own convention for an empty context (its
`prefix_token_id`, BOS, as the context) is a token of the request and stays.

Model args are read as lm-eval reads `--model_args` (`lm_eval.utils.handle_arg_string`): `true`/`false` in
any case are booleans and `1`/`0` integers, so a flag accepts exactly those. `precision` (`auto`, `fp32`,
`bf16`, `fp16`) is resolved once, when the adapter is made, to what runs (`adapter.precision`, never
`auto`), and scoring and generation both run under it. Sampled generation (`do_sample: true`) draws each
request from its own generator, seeded from `seed` (a model arg, default 0) and the request itself, so an
answer does not depend on how requests were batched; lm-eval's `repeats` copies of a request draw different
samples.

Speed (issue #12): requests that share a context (the choices of a multiple-choice item) run the context
once and score every continuation against its KV cache (`softeval.engine.prefix_sharing`; `prefix_sharing=False`
runs one row per request, the reference path), and batches are cut by a token budget, longest first
(`max_batch_tokens`), with `batch_size` as a cap on rows (contexts, when shared) if given.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections import Counter
from pathlib import Path

import lm_eval.models  # noqa: F401  (fills lm-eval's registry first: registering into an empty one hides its models)
import torch
import torch.nn.functional as F
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.utils import handle_arg_string
from torch import nn
from tqdm.auto import tqdm

from softeval.engine.batching import IGNORE, Example, collate
from softeval.engine.loop import Precision, resolve_precision
from softeval.errors import ConfigError, SoftevalError, unknown_choice
from softeval.engine.forward import assemble_prompt_rows, autocast_context, target_logits
from softeval.engine.generate import generate_ids
from softeval.engine.models import DEFAULT_MODEL, LoadedModel, load_model
from softeval.engine.prefix_sharing import plan_batches, score_continuations

logger = logging.getLogger(__name__)

LLRequest = tuple[tuple[str, str], list[int], list[int]]

# Padded tokens per forward. Scoring keeps no activations and computes logits only at scored positions, so
# memory is the model's plus a few MB per thousand tokens; larger batches mostly help GPUs.
DEFAULT_MAX_BATCH_TOKENS = 4096


def _flag(name: str, value, allow_none: bool = False) -> bool | None:
    """A boolean model_arg, read as lm-eval reads `--model_args`: `handle_arg_string` turns 'true'/'false' (any
    case) into booleans, '1'/'0' into the integers 1/0 and 'none' into None. A string (from Python or a
    config) is read by that same function, so `flag=1` means the same here as through lm-eval's CLI."""
    if isinstance(value, str):
        value = handle_arg_string(value)
    if value is None and allow_none:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    allowed = "true, false, 1, 0" + (" or none" if allow_none else "")
    raise ConfigError(f"model arg {name} must be {allowed}, got {value!r}")


def _available_device(device: str | None) -> str:
    """The device to load on. lm-eval's CLI asks for cuda:0 when --device is not given; where torch sees no
    CUDA device, run on the CPU, as `lm_eval --model hf` does, and say so in one line."""
    text = str(device or "auto")
    if text.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("device %s was asked for but torch sees no CUDA device: running on the CPU "
                       "(pass --device cpu to say so)", text)
        return "cpu"
    return text


def sample_seeds(seed: int, args: list[tuple[str, dict]]) -> list[int]:
    """One sampling seed per generation request, from `seed`, the request's text and settings, and how many
    identical requests came before it in `args`: the same request draws the same sample whatever its batch,
    and lm-eval's `repeats` (the same request several times, for several samples) draw different ones."""
    seen: Counter[str] = Counter()
    seeds = []
    for context, gen_kwargs in args:
        key = json.dumps([context, gen_kwargs], sort_keys=True, default=str)
        digest = hashlib.sha256(f"{seed}\0{seen[key]}\0{key}".encode()).digest()
        seen[key] += 1
        seeds.append(int.from_bytes(digest[:8], "little") >> 1)  # below 2**63: any torch generator takes it
    return seeds


def _positive_int(name: str, value, default: int | None) -> int | None:
    """An optional integer model_arg >= 1 (None, '' or 'auto*' → default)."""
    if value in (None, "") or str(value).startswith("auto"):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    return number


@register_model("softeval")
class SoftevalLM(TemplateLM):
    """lm-eval model backed by a softeval `LoadedModel` and an optional soft prompt."""

    def __init__(self, model: str = DEFAULT_MODEL, prompt: str | None = None, device: str | None = "auto",
                 dtype: str = "auto", batch_size: int | str | None = None, max_batch_size: int | None = None,
                 max_gen_toks: int = 256, max_length: int | None = None, precision: str = "fp32",
                 add_bos_token: bool | None = None, allow_mismatch: bool = False, show_progress: bool = True,
                 lm: LoadedModel | None = None, soft_prompt: nn.Module | None = None, placement: str = "after_bos",
                 prefix_sharing: bool | str = True, max_batch_tokens: int | str | None = None, seed: int = 0,
                 **unused) -> None:
        super().__init__()
        if unused:
            logger.warning("softeval model ignores model_args %s", ", ".join(sorted(unused)))
        # Checked before the model loads. batch_size caps the rows of a forward (contexts, when shared);
        # None or "auto": the token budget alone.
        self.batch_size = _positive_int("batch_size", batch_size, None)
        self.max_batch_tokens = _positive_int("max_batch_tokens", max_batch_tokens, DEFAULT_MAX_BATCH_TOKENS)
        self.prefix_sharing = _flag("prefix_sharing", prefix_sharing)
        self.add_bos_token = _flag("add_bos_token", add_bos_token, allow_none=True)
        allow_mismatch = _flag("allow_mismatch", allow_mismatch)
        if str(precision) not in Precision.values():
            raise ConfigError(unknown_choice("precision", str(precision), Precision.values()))
        try:
            self.seed = int(seed)
        except (TypeError, ValueError):
            raise ConfigError(f"model arg seed must be an integer, got {seed!r}") from None
        self.lm = lm or load_model(str(model), _available_device(device), dtype, show_progress=show_progress)
        self.tokenizer = self.lm.tokenizer
        self.max_gen_toks = int(max_gen_toks)
        self._max_length = int(max_length) if max_length else None
        # What runs, resolved once from the weights and device (`auto` never survives): scoring, generation
        # and the bench's tuning (which reads this attribute) all use this one value.
        embeddings = self.lm.model.get_input_embeddings().weight
        self.precision: str = resolve_precision(str(precision), embeddings.device, embeddings.dtype)
        self.show_progress = show_progress
        self.prompt: nn.Module | None = soft_prompt
        self.placement = placement
        self.prompt_path: str | None = None
        self.prompt_card: dict | None = None
        if prompt not in (None, "", "none", "None"):
            self.load_prompt(str(prompt), allow_mismatch=allow_mismatch)

    # --------------------------------------------------------------------------- prompt

    def load_prompt(self, path: str, allow_mismatch: bool = False) -> None:
        """A saved prompt (.safetensors or a run directory holding prompt.safetensors)."""
        from softeval.engine.prompt import load_prompt

        from softeval.store.card import ANY_TASK, card_dict

        # No task check: lm-eval's task is not a softeval task. A prompt recorded for another task is still
        # scored (that is the point of evaluating it elsewhere); its card goes into lm-eval's results.
        prompt, meta = load_prompt(Path(path), self.lm.info, allow_mismatch=allow_mismatch)
        self.set_prompt(prompt.to(self.device), meta.placement)
        self.prompt_path, self.prompt_card = path, card_dict(meta)
        if meta.task_hash == ANY_TASK:
            logger.info("prompt %s: task any, source %s", path, meta.task_spec.get("source"))

    def set_prompt(self, prompt: nn.Module | None, placement: str = "after_bos") -> None:
        self.prompt, self.placement, self.prompt_path, self.prompt_card = prompt, placement, None, None

    @property
    def num_virtual_tokens(self) -> int:
        return self.prompt.num_virtual_tokens if self.prompt is not None else 0

    # --------------------------------------------------------------------------- lm-eval properties

    @property
    def device(self) -> torch.device:
        return next(self.lm.model.parameters()).device

    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def eos_text(self) -> str:
        """The end-of-text token as text: lm-eval's stop string of last resort ("" when the tokenizer has none)."""
        eot = self.eot_token_id
        return "" if eot is None else self.tok_decode([eot], skip_special_tokens=False)

    @property
    def prefix_token_id(self) -> int:
        # HFLM's rule: the context for an empty context is BOS if the tokenizer has one, else EOS.
        if self.tokenizer.bos_token_id is not None:
            return self.tokenizer.bos_token_id
        return self.tokenizer.eos_token_id

    @property
    def max_length(self) -> int:
        if self._max_length:
            return self._max_length
        cfg = self.lm.model.config
        for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
            value = getattr(getattr(cfg, "text_config", cfg), attr, None)
            if value:
                return int(value)
        return 2048

    def get_model_info(self) -> dict:
        info = self.lm.info
        return {"model_name": info.name, "model_sha256": info.weights_sha256,
                "num_virtual_tokens": self.num_virtual_tokens, "prompt": self.prompt_path, "placement": self.placement, "prompt_card": self.prompt_card,
                "precision": self.precision, "add_bos_token": self.add_bos_token, "sampling_seed": self.seed}

    # --------------------------------------------------------------------------- tokens

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, left_truncate_len: int | None = None,
                   **kwargs) -> list[int]:
        """As HFLM: the tokenizer's own special-token rule, unless the string already starts with BOS."""
        if add_special_tokens is not None:
            special = {"add_special_tokens": add_special_tokens}
        elif self.add_bos_token is not None:
            special = {"add_special_tokens": self.add_bos_token}
        else:
            special = {}
        bos_text = self.tokenizer.decode(self.prefix_token_id)
        if add_special_tokens is None and bos_text and string.startswith(bos_text):
            special = {"add_special_tokens": False}
        ids = self.tokenizer.encode(string, **special)
        return ids[-left_truncate_len:] if left_truncate_len else ids

    def tok_decode(self, tokens, skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=skip_special_tokens)

    @property
    def bos_id(self) -> int | None:
        """The BOS every row starts with: the tokenizer's (None if it adds none), or None with add_bos_token=False."""
        return None if self.add_bos_token is False else self.lm.info.bos_token_id

    def _split_bos(self, ids: list[int]) -> list[int]:
        """Drop a tokenizer-added BOS: `collate` puts it back (before the soft prompt)."""
        bos = self.bos_id
        return ids[1:] if bos is not None and ids[:1] == [bos] else ids

    def example(self, context_enc: list[int], continuation_enc: list[int], truncate: bool = True) -> Example:
        """A scored example: the continuation tokens are the targets (shared with soft-prompt tuning)."""
        ids = list(context_enc) + list(continuation_enc)
        n_ctx = len(context_enc)
        stripped = self._split_bos(ids)
        n_ctx -= len(ids) - len(stripped)
        if truncate and len(stripped) > self.max_length - self.num_virtual_tokens - 1:
            cut = len(stripped) - (self.max_length - self.num_virtual_tokens - 1)
            stripped, n_ctx = stripped[cut:], max(n_ctx - cut, 1)
        return Example(input_ids=stripped, labels=[IGNORE] * n_ctx + stripped[n_ctx:])

    # --------------------------------------------------------------------------- log-likelihood

    @torch.no_grad()
    def _loglikelihood_tokens(self, requests: list[LLRequest], disable_tqdm: bool = False,
                              **kwargs) -> list[tuple[float, bool]]:
        """(sum of continuation log-probs, whether every continuation token is the argmax) per request."""
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        plain: list[int] = []
        shared: dict[tuple[int, ...], list[int]] = {}
        for i, (_, context, continuation) in enumerate(requests):
            key = self._shared_context(context, continuation) if self.prefix_sharing else None
            if key is None:
                plain.append(i)
            else:
                shared.setdefault(key, []).append(i)
        for key, members in list(shared.items()):
            # A context with one continuation of several tokens: one plain forward, not a prefix and a continuation.
            if len(members) == 1 and len(requests[members[0]][2]) > 1:
                plain.append(members[0])
                del shared[key]
        with tqdm(total=len(requests), desc="loglikelihood", disable=disable_tqdm or not self.show_progress,
                  leave=False) as bar:
            self._score_plain(requests, plain, results, bar)
            self._score_shared(requests, shared, results, bar)
        return results  # type: ignore[return-value]

    def _shared_context(self, context: list[int], continuation: list[int]) -> tuple[int, ...] | None:
        """The context tokens (BOS dropped, as `example`) to share, or None for a request that runs as a plain
        row: an empty context or continuation, or a request that `example` would truncate."""
        if not context or not continuation:
            return None
        stripped = self._split_bos(list(context))
        if len(stripped) + len(continuation) > self.max_length - self.num_virtual_tokens - 1:
            return None
        return tuple(stripped)

    def _finish(self, requests: list[LLRequest], i: int, answer: tuple[float, bool], results: list) -> None:
        results[i] = answer
        self.cache_hook.add_partial("loglikelihood", requests[i][0], answer)

    def _score_plain(self, requests: list[LLRequest], indices: list[int], results: list, bar) -> None:
        """One row per request: [pad…][BOS][soft × n] ctx cont, logits at the continuation's positions."""
        info = self.lm.info
        examples = {i: self.example(requests[i][1], requests[i][2]) for i in indices}
        prefix = (0 if self.bos_id is None else 1) + self.num_virtual_tokens
        shapes = [(prefix + len(examples[i].input_ids), 0, 0) for i in indices]
        for part in plan_batches(shapes, self.max_batch_tokens, self.batch_size):
            chunk = [indices[p] for p in part]
            batch = collate([examples[i] for i in chunk], self.num_virtual_tokens, self.bos_id,
                            info.pad_token_id, self.placement).to(self.device)
            with autocast_context(self.device, self.precision):
                rows = self._prompt_rows(batch)
                logits = target_logits(self.lm.model, batch, rows)  # (N, V) fp32
            logprobs = F.log_softmax(logits, dim=-1)
            token_lp = logprobs.gather(1, batch.target_ids[:, None]).squeeze(1).double()  # (N,)
            greedy = (logits.argmax(dim=-1) == batch.target_ids).long()  # (N,)
            sums = torch.zeros(len(chunk), dtype=torch.float64, device=self.device).index_add_(
                0, batch.target_rows, token_lp)
            misses = torch.zeros(len(chunk), dtype=torch.long, device=self.device).index_add_(
                0, batch.target_rows, 1 - greedy)
            for row, i in enumerate(chunk):
                self._finish(requests, i, (float(sums[row]), bool(misses[row] == 0)), results)
            bar.update(len(chunk))

    def _score_shared(self, requests: list[LLRequest], groups: dict[tuple[int, ...], list[int]], results: list,
                      bar) -> None:
        """Each distinct context once, then all its continuations against the cached prefix."""
        info = self.lm.info
        contexts = list(groups)
        prefix = (0 if self.bos_id is None else 1) + self.num_virtual_tokens
        shapes = []
        for key in contexts:
            longer = [len(requests[i][2]) - 1 for i in groups[key] if len(requests[i][2]) > 1]
            shapes.append((prefix + len(key), len(longer), max(longer, default=0)))
        for part in plan_batches(shapes, self.max_batch_tokens, self.batch_size):
            keys = [contexts[p] for p in part]
            members = [i for key in keys for i in groups[key]]
            owners = [row for row, key in enumerate(keys) for _ in groups[key]]
            batch = collate([Example(input_ids=list(key), labels=[IGNORE] * len(key)) for key in keys],
                            self.num_virtual_tokens, self.bos_id, info.pad_token_id,
                            self.placement).to(self.device)
            with autocast_context(self.device, self.precision):
                sums, greedy = score_continuations(self.lm.model, batch, self._prompt_rows(batch), owners,
                                                   [list(requests[i][2]) for i in members], info.pad_token_id)
            for k, i in enumerate(members):
                self._finish(requests, i, (float(sums[k]), bool(greedy[k])), results)
            bar.update(len(members))

    def _prompt_rows(self, batch) -> torch.Tensor:
        hidden = self.lm.info.hidden_size
        if self.prompt is None or self.num_virtual_tokens == 0:
            return torch.zeros(batch.input_ids.shape[0], 0, hidden, device=self.device)
        return assemble_prompt_rows([self.prompt], batch, hidden)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

        out = []
        for (string,) in [r.args for r in requests]:
            windows = [make_disjoint_window(w) for w in get_rolling_token_windows(
                token_list=self.tok_encode(string), prefix_token=self.prefix_token_id,
                max_seq_len=self.max_length - self.num_virtual_tokens - 1, context_len=1)]
            scored = self._loglikelihood_tokens([(("", ""), ctx, cont) for ctx, cont in windows], disable_tqdm=True)
            total = sum(lp for lp, _ in scored)
            out.append(total)
            self.cache_hook.add_partial("loglikelihood_rolling", (string,), total)
        return out

    # --------------------------------------------------------------------------- generation

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Greedy (or sampled) continuations through the KV cache, cut at the first stop string, under the same
        autocast as scoring; a sampled request draws from its own seeded generator (`sample_seeds`)."""
        from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs, postprocess_generated_text

        args = [r.args for r in requests]
        seeds = sample_seeds(self.seed, args)
        groups: dict[str, list[int]] = {}
        for i, (_, gen_kwargs) in enumerate(args):
            groups.setdefault(json.dumps(gen_kwargs, sort_keys=True, default=str), []).append(i)
        results: list[str | None] = [None] * len(args)
        eos_text = self.eos_text or None
        info = self.lm.info
        with tqdm(total=len(args), desc="generate", disable=disable_tqdm or not self.show_progress, leave=False) as bar:
            for indices in groups.values():
                kwargs = normalize_gen_kwargs(args[indices[0]][1], self.max_gen_toks)
                until = handle_stop_sequences(kwargs.pop("until", None), eos=eos_text)
                max_new = int(kwargs.pop("max_gen_toks"))
                temperature = float(kwargs.get("temperature", 0.0)) if kwargs.get("do_sample") else 0.0
                if max_new >= self.max_length:
                    raise ConfigError(f"max_gen_toks {max_new} must be below the model's context {self.max_length}")
                max_ctx = self.max_length - max_new - self.num_virtual_tokens - 1
                encoded = {i: self._split_bos(self.tok_encode(args[i][0]))[-max_ctx:] for i in indices}
                ordered = sorted(indices, key=lambda i: -len(encoded[i]))

                def stop(new_ids: list[int]) -> bool:
                    text = self.tokenizer.decode(new_ids[-64:], skip_special_tokens=False)
                    return any(u and u in text for u in until)

                prefix = (0 if self.bos_id is None else 1) + self.num_virtual_tokens
                shapes = [(prefix + len(encoded[i]) + max_new, 0, 0) for i in ordered]
                for part in plan_batches(shapes, self.max_batch_tokens, self.batch_size):
                    chunk = [ordered[p] for p in part]
                    with autocast_context(self.device, self.precision):
                        new = generate_ids(self.lm.model, self.prompt, [encoded[i] for i in chunk],
                                           bos_id=self.bos_id, pad_id=info.pad_token_id, eos_id=self.eot_token_id,
                                           placement=self.placement, max_new_tokens=max_new, temperature=temperature,
                                           top_p=float(kwargs.get("top_p", 1.0) or 1.0),
                                           row_seeds=[seeds[i] for i in chunk], stop=stop)
                    for i, ids in zip(chunk, new):
                        text = postprocess_generated_text(self.tok_decode(ids), until, None)
                        results[i] = text
                        self.cache_hook.add_partial("generate_until", args[i], text)
                    bar.update(len(chunk))
        return results  # type: ignore[return-value]


def lm_eval_main() -> None:
    """`softeval-lm-eval`: lm-eval's own CLI with the `softeval` model registered.

    lm-eval 0.4.x does not load plugin entry points for models, so `lm_eval --model softeval`
    only works once this module is imported; this command does that and hands over to lm-eval:

        softeval-lm-eval --model softeval --model_args model=smollm2-135m-instruct,prompt=PROMPT.safetensors \
            --tasks TASK --include_path FOLDER_OF_TASK_YAML --device cpu

    lm-eval passes --device and --batch_size itself, so they go there, not in --model_args. Without --device
    lm-eval asks for cuda:0; on a machine without a GPU the model runs on the CPU (one warning line). A user
    mistake softeval detects (a model that cannot load, a bad model arg) ends in one line and exit 2.
    """
    from lm_eval.__main__ import cli_evaluate

    try:
        cli_evaluate()
    except SoftevalError as exc:
        print(f"softeval-lm-eval: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
