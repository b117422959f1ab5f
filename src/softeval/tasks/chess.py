"""Chess: predict the moves of real games, conditioned on the players' ratings.

Games are streamed from PGN files, plain or `.pgn.zst` (zstandard), one game at a time: a file is
never held in memory, and reading stops once enough games are accepted. `task.data` is a file, a
folder (its *.pgn and *.pgn.zst files, sorted) or a comma-separated list of those.

Encoding (tokenized piece by piece, so the loss mask is exact):

    <header>1. e4 e5 2. Nf3 Nc6 3. Bb5 …         (moves: "san", the default)
    <header>1. e2e4 e7e5 2. g1f3 b8c6 …          (moves: "uci")

`header` is an optional fixed text (default empty). Each game is cut to its first `max_plies`
half-moves. Only the move pieces (" e4", " Nf3", with their leading space) are scored; the header
and the move numbers ("1.", " 2.") are context, never targets.

Condition: (WhiteElo, BlackElo), normalised as (elo − elo_center) / elo_scale, by default
(elo − 1500) / 500, so 1000 → −1, 2000 → +1, 2800 → +2.6. Games without an Elo (header missing,
"?" or empty) are skipped (`missing_elo: skip`, the default) or given `default_elo`
(`missing_elo: default`). Filters: `min_elo` / `max_elo` (both players must be in range) and
`time_control` (comma-separated exact TimeControl values like "180+2", or categories
ultrabullet/bullet/blitz/rapid/classical/correspondence by lichess's estimate base + 40 × increment).

Broken games (a PGN python-chess reports errors for, e.g. an illegal move) and games shorter than
`min_plies` are skipped; every skip reason is counted, logged, and reported in the task metrics
(`games_skipped_*`).

Held-out games: of the accepted games in file order, every k-th (k = round(1 / task.eval_fraction),
10 by default) goes to the eval set until it has `num_eval` games; the others fill the train set.
So the eval games do not depend on num_train.

Metrics (see `make_metrics`):
  loss_per_move_token      mean cross-entropy over move tokens (= the eval loss);
  loss_per_move            the same total divided by the number of moves (nats per half-move);
  random_legal_loss_per_move   mean over the scored positions of log(#legal moves): the loss of a
                           model that spreads its probability uniformly over the legal moves;
  random_legal_baseline_loss   that total divided by the number of move tokens: the per-token
                           figure to compare with loss_per_move_token (the same total nats,
                           spread over the same tokens);
  legal_move_rate / exact_match_rate   of the model's greedy next move at sampled positions of the
                           eval games (a few tokens are generated, the first move is parsed and
                           checked with python-chess; move numbers the model writes are skipped).
  elo_effect_high_games / elo_effect_low_games   does the condition move predictions the right way?
                           The held-out games are split at their median average Elo; every game is
                           scored again under the mean condition of the high half and of the low
                           half. For high-Elo games the effect is loss(low condition) − loss(high
                           condition), for low-Elo games the reverse: positive = the matching
                           condition fits better (0 for the plain model, which ignores conditions).
                           `_lo90` / `_hi90`: a 90 % paired bootstrap interval over the half's games.
  per_example: moves / move_tokens   each held-out game's number of moves and of scored move tokens (in
                           the eval order of `example_losses`), so per-game nats per move can be
                           compared across models paired by game.
"""

from __future__ import annotations

import io
import logging
import math
import random
import re
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np

from softeval.engine.batching import IGNORE, Example
from softeval.errors import ConfigError, DataError
from softeval.tasks import TaskConfig, TaskData, data_hashes, register_task, role_files, task_options

logger = logging.getLogger(__name__)

NOTATIONS = ("san", "uci")
STAT_KEYS = ("scanned", "accepted", "skipped_broken", "skipped_no_elo", "skipped_elo_range", "skipped_time_control",
             "skipped_short", "default_elo_used")
TIME_CATEGORIES = ("ultrabullet", "bullet", "blitz", "rapid", "classical", "correspondence")


def _require_chess():
    try:
        import chess
        import chess.pgn
    except ModuleNotFoundError as exc:
        raise ConfigError("task 'chess' needs python-chess: pip install 'softeval[chess]'") from exc
    return chess


@dataclass(frozen=True)
class ChessOptions:
    moves: str = "san"                # san | uci
    max_plies: int = 40               # half-moves per example, from the start of the game
    min_plies: int = 4                # games with fewer half-moves are skipped
    min_elo: int | None = None        # both players' Elo must be >= min_elo
    max_elo: int | None = None        # … and <= max_elo
    time_control: str | None = None   # e.g. "60+0" or "blitz,rapid"; None keeps every game
    missing_elo: str = "skip"         # skip | default
    default_elo: int = 1500           # used for a missing Elo when missing_elo is "default"
    elo_center: float = 1500.0        # condition = (elo - elo_center) / elo_scale
    elo_scale: float = 500.0
    header: str = ""                  # fixed unscored text before the moves
    max_games_scanned: int | None = None  # give up after reading this many games (None: read until enough)
    positions_per_game: int = 2       # metrics: positions probed per eval game
    max_metric_games: int = 32        # metrics: eval games probed
    probe_tokens: int = 8             # metrics: tokens generated per probed position
    elo_bucket: int = 200             # metrics: width of the average-Elo buckets in by_condition

    def __post_init__(self):
        if self.moves not in NOTATIONS:
            raise ConfigError(f"chess option moves must be 'san' or 'uci', got '{self.moves}'")
        if self.missing_elo not in ("skip", "default"):
            raise ConfigError(f"chess option missing_elo must be 'skip' or 'default', got '{self.missing_elo}'")
        if self.max_plies < 1 or self.min_plies < 1:
            raise ConfigError("chess options max_plies and min_plies must be >= 1")
        if self.min_elo is not None and self.max_elo is not None and self.min_elo > self.max_elo:
            raise ConfigError(f"chess option min_elo ({self.min_elo}) is above max_elo ({self.max_elo})")
        if self.elo_scale <= 0 or self.elo_bucket <= 0:
            raise ConfigError("chess options elo_scale and elo_bucket must be > 0")
        if self.positions_per_game < 0 or self.max_metric_games < 0 or self.probe_tokens < 1:
            raise ConfigError("chess metric options must be >= 0 (probe_tokens >= 1)")
        for value in _split(self.time_control):
            if value not in TIME_CATEGORIES and not re.fullmatch(r"\d+\+\d+|-", value):
                raise ConfigError(f"chess option time_control: '{value}' is neither a TimeControl like '180+2' "
                                  f"nor one of {', '.join(TIME_CATEGORIES)}")

    def normalise(self, white: float, black: float) -> list[float]:
        return [(white - self.elo_center) / self.elo_scale, (black - self.elo_center) / self.elo_scale]


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in str(value).split(",") if v.strip()] if value else []


# --------------------------------------------------------------------------- reading PGN


def pgn_files(spec: str) -> list[Path]:
    """`task.data` → PGN files: a file, a folder of *.pgn / *.pgn.zst, or a comma-separated list."""
    out: list[Path] = []
    for part in _split(spec):
        p = Path(part).expanduser()
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.name.endswith((".pgn", ".pgn.zst")))
            if not found:
                raise DataError(f"folder {p} has no .pgn or .pgn.zst files")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise DataError(f"PGN file {p} does not exist")
    if not out:
        raise ConfigError("task 'chess' needs PGN games: --data FILE.pgn[.zst] or a folder of them")
    return out


SNIFF_BYTES = 1 << 16


def open_text(path: Path) -> io.TextIOBase:
    """A text stream over a plain or zstandard-compressed file, decompressed as it is read.

    PGN is nominally Latin-1 and often UTF-8, so undecodable bytes in a text file are replaced (only
    names in headers suffer); a binary file (a NUL byte, or mostly non-ASCII bytes, in its first 64 KiB)
    or a .zst that is not zstandard is refused with a one-line error instead of read as garbage.
    """
    if path.name.endswith(".zst"):
        try:
            import zstandard
        except ModuleNotFoundError as exc:
            raise ConfigError(f"{path} is zstandard-compressed: pip install 'softeval[chess]'") from exc
        # Big dumps are often several concatenated frames (pzstd, `cat`); zstandard's documented default
        # stops after the first one, silently dropping the rest of the games.
        stream = zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), read_across_frames=True, closefd=True)
        binary = io.BufferedReader(stream, buffer_size=SNIFF_BYTES)
    else:
        binary = open(path, "rb", buffering=SNIFF_BYTES)
    try:
        head = binary.peek(SNIFF_BYTES)[:SNIFF_BYTES]
    except _stream_errors() as exc:
        binary.close()
        raise DataError(f"{path} is not a readable zstandard file ({exc})") from None
    if b"\0" in head or sum(b >= 0x80 for b in head) > len(head) // 3:
        binary.close()
        raise DataError(f"{path} is not UTF-8 text (binary data); pass PGN files (.pgn or .pgn.zst)")
    return io.TextIOWrapper(binary, encoding="utf-8-sig", errors="replace")


def _stream_errors() -> tuple[type[Exception], ...]:
    """Errors of a corrupt or truncated compressed stream (none when zstandard is not installed)."""
    try:
        import zstandard
    except ModuleNotFoundError:
        return ()
    return (zstandard.ZstdError,)


@dataclass(frozen=True)
class GameRecord:
    moves: tuple            # chess.Move objects of the first max_plies half-moves
    white_elo: float
    black_elo: float
    time_control: str
    source: str             # "file:game-number" for messages and debugging


def parse_elo(value: str | None) -> int | None:
    try:
        elo = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return elo if elo > 0 else None


def time_category(tc: str | None) -> str:
    """Lichess's speed categories from a TimeControl header ('180+2' → blitz); 'unknown' if unparsable."""
    if tc == "-":
        return "correspondence"
    m = re.fullmatch(r"(\d+)\+(\d+)", tc or "")
    if not m:
        return "unknown"
    estimate = int(m.group(1)) + 40 * int(m.group(2))
    for limit, name in ((29, "ultrabullet"), (179, "bullet"), (479, "blitz"), (1499, "rapid")):
        if estimate <= limit:
            return name
    return "classical"


def read_games(paths: list[Path], opts: ChessOptions, stats: Counter) -> Iterator[GameRecord]:
    """Accepted games in file order; every rejected game is counted in `stats` by reason."""
    _require_chess()
    import chess.pgn

    wanted_tc = set(_split(opts.time_control))
    for path in paths:
        with open_text(path) as stream:
            number = 0
            while True:
                if opts.max_games_scanned is not None and stats["scanned"] >= opts.max_games_scanned:
                    return
                try:
                    game = chess.pgn.read_game(stream)
                except _stream_errors() as exc:
                    raise DataError(f"{path}: cannot read on after game {number} ({exc}); "
                                    "is the file truncated?") from None
                if game is None:
                    break
                number += 1
                stats["scanned"] += 1
                record = _accept(game, opts, wanted_tc, f"{path.name}:{number}", stats)
                if record is not None:
                    stats["accepted"] += 1
                    yield record


def _accept(game, opts: ChessOptions, wanted_tc: set, source: str, stats: Counter) -> GameRecord | None:
    if game.errors:
        stats["skipped_broken"] += 1
        logger.debug("%s: skipped broken game (%s)", source, game.errors[0])
        return None
    headers = game.headers
    elos = [parse_elo(headers.get("WhiteElo")), parse_elo(headers.get("BlackElo"))]
    if None in elos:
        if opts.missing_elo == "skip":
            stats["skipped_no_elo"] += 1
            return None
        stats["default_elo_used"] += 1
        elos = [opts.default_elo if e is None else e for e in elos]
    if (opts.min_elo is not None and min(elos) < opts.min_elo) or (opts.max_elo is not None and max(elos) > opts.max_elo):
        stats["skipped_elo_range"] += 1
        return None
    tc = headers.get("TimeControl", "?")
    if wanted_tc and tc not in wanted_tc and time_category(tc) not in wanted_tc:
        stats["skipped_time_control"] += 1
        return None
    moves = []
    for move in game.mainline_moves():
        moves.append(move)
        if len(moves) == opts.max_plies:
            break
    if len(moves) < opts.min_plies:
        stats["skipped_short"] += 1
        return None
    return GameRecord(tuple(moves), float(elos[0]), float(elos[1]), tc, source)


# --------------------------------------------------------------------------- encoding


def encode_game(record: GameRecord, opts: ChessOptions, tokenizer) -> Example:
    """Token ids with move pieces scored and header/move numbers unscored (see the module docstring)."""
    chess = _require_chess()
    board = chess.Board()
    ids: list[int] = []
    labels: list[int] = []
    text = ""
    move_starts, log_legal, ucis = [], [], []

    def add(piece: str, scored: bool):
        nonlocal text
        piece_ids = tokenizer(piece, add_special_tokens=False).input_ids
        ids.extend(piece_ids)
        labels.extend(piece_ids if scored else [IGNORE] * len(piece_ids))
        text += piece

    if opts.header:
        add(opts.header, False)
    for ply, move in enumerate(record.moves):
        if ply % 2 == 0:
            number = f"{ply // 2 + 1}."
            add(number if not text or text[-1].isspace() else " " + number, False)
        written = board.san(move) if opts.moves == "san" else move.uci()
        log_legal.append(math.log(board.legal_moves.count()))
        move_starts.append(len(ids))
        ucis.append(move.uci())
        add(" " + written, True)
        board.push(move)
    return Example(input_ids=ids, labels=labels, condition=opts.normalise(record.white_elo, record.black_elo),
                   meta={"moves": ucis, "move_starts": move_starts, "log_legal": log_legal,
                         "elo": (record.white_elo, record.black_elo), "source": record.source})


# --------------------------------------------------------------------------- metrics


_MOVE_NUMBER = re.compile(r"^\d+\.+")


def first_move(text: str, board, notation: str):
    """The first move the model wrote (move numbers skipped) as a legal chess.Move, or None if it is not legal."""
    chess = _require_chess()
    for word in text.split():
        word = _MOVE_NUMBER.sub("", word).strip(".")
        if not word:
            continue
        word = word.rstrip("!?,;")
        try:
            move = board.parse_san(word) if notation == "san" else chess.Move.from_uci(word)
        except ValueError:  # python-chess's Invalid/Illegal/AmbiguousMoveError are ValueErrors
            return None
        return move if move in board.legal_moves else None
    return None


def probe_positions(examples: list[Example], opts: ChessOptions) -> list[tuple[int, int]]:
    """(example index, ply) pairs to probe, drawn with a fixed seed so every prompt sees the same ones."""
    rng = random.Random(0)
    picks = []
    for i, ex in enumerate(examples[:opts.max_metric_games]):
        plies = range(len(ex.meta["moves"]))
        picks += [(i, p) for p in sorted(rng.sample(plies, min(opts.positions_per_game, len(plies))))]
    return picks


def make_metrics(opts: ChessOptions, tokenizer, stats: Counter):
    def metrics(lm, prompt, examples: list[Example], placement: str = "after_bos") -> dict:
        chess = _require_chess()
        from softeval.engine.evaluate import evaluate_prompt
        from softeval.engine.generate import generate_ids

        info = lm.info
        result = evaluate_prompt(lm.model, prompt, examples, bos_id=info.bos_token_id, pad_id=info.pad_token_id,
                                 placement=placement)
        # `collate` never scores the first input token when the model has no BOS; with a header or a
        # move number first, that token is never a move token, so these counts match the eval's.
        num_moves = sum(len(ex.meta["moves"]) for ex in examples)
        baseline_nats = sum(sum(ex.meta["log_legal"]) for ex in examples)
        out = {
            "loss_per_move_token": result.loss,
            "loss_per_move": result.loss * result.num_targets / num_moves,
            "random_legal_baseline_loss": baseline_nats / result.num_targets,
            "random_legal_loss_per_move": baseline_nats / num_moves,
            "tokens_per_move": result.num_targets / num_moves,
        }

        picks = probe_positions(examples, opts)
        legal, exact = [], []
        if picks:
            contexts = [examples[i].input_ids[:examples[i].meta["move_starts"][p]] for i, p in picks]
            conditions = [examples[i].condition for i, _ in picks]
            new = generate_ids(lm.model, prompt, contexts, bos_id=info.bos_token_id, pad_id=info.pad_token_id,
                               eos_id=info.eos_token_id, placement=placement, max_new_tokens=opts.probe_tokens,
                               conditions=conditions)
            for (i, p), ids in zip(picks, new):
                board = chess.Board()
                for uci in examples[i].meta["moves"][:p]:
                    board.push_uci(uci)
                move = first_move(tokenizer.decode(ids, skip_special_tokens=True), board, opts.moves)
                legal.append(move is not None)
                exact.append(move is not None and move.uci() == examples[i].meta["moves"][p])
            out["legal_move_rate"] = sum(legal) / len(legal)
            out["exact_match_rate"] = sum(exact) / len(exact)
            out["probed_positions"] = len(picks)
        out.update({f"games_{k}": stats.get(k, 0) for k in STAT_KEYS})  # every reason, zeros included
        if prompt is not None:
            out.update(elo_condition_check(lm, prompt, examples, placement))
        out["by_condition"] = _by_elo(examples, result, picks, legal, opts)
        # Per held-out game, for a paired bootstrap over games: two models tokenize the same moves into
        # different counts, so only nats per move (loss × move_tokens / moves) compare across them.
        out["per_example"] = {"moves": [len(ex.meta["moves"]) for ex in examples],
                              "move_tokens": [ex.num_targets for ex in examples]}
        return out

    return metrics


def elo_condition_check(lm, prompt, examples: list[Example], placement: str, *, bootstrap_samples: int = 1000,
                        seed: int = 0) -> dict:
    """Score every held-out game under the high half's and the low half's mean condition (see the module doc).

    The halves split the games at the median of the players' average Elo; the probe condition of a
    half is the mean of its games' conditions, so it stays inside the range the prompt was trained on.
    Each effect comes with a 90 % paired bootstrap interval over the half's games: on a few dozen
    games an effect of a few thousandths of a nat can be noise, and the interval says whether it is.
    """
    from softeval.engine.evaluate import evaluate_prompt

    if len(examples) < 2 or examples[0].condition is None:
        return {}
    average = [sum(ex.meta["elo"]) / 2 for ex in examples]
    median = sorted(average)[len(average) // 2]
    high = [i for i, a in enumerate(average) if a >= median]
    low = [i for i, a in enumerate(average) if a < median]
    if not high or not low:  # every game has the same average Elo: nothing to contrast
        return {}
    dim = len(examples[0].condition)
    mean_condition = lambda idx: [sum(examples[i].condition[d] for i in idx) / len(idx)  # noqa: E731
                                  for d in range(dim)]

    def game_nats(condition: list[float], idx: list[int]) -> np.ndarray:
        """Summed nats of each game in `idx` when scored under `condition`."""
        chunk = [replace(examples[i], condition=list(condition)) for i in idx]
        result = evaluate_prompt(lm.model, prompt, chunk, bos_id=lm.info.bos_token_id,
                                 pad_id=lm.info.pad_token_id, placement=placement)
        return np.array(result.example_losses) * np.array([ex.num_targets for ex in chunk])

    rng = np.random.default_rng(seed)
    out = {"elo_check_median_elo": median,
           "elo_check_high_half_mean_elo": sum(average[i] for i in high) / len(high),
           "elo_check_low_half_mean_elo": sum(average[i] for i in low) / len(low)}
    high_cond, low_cond = mean_condition(high), mean_condition(low)
    for half, idx, matching, other in (("high", high, high_cond, low_cond), ("low", low, low_cond, high_cond)):
        tokens = np.array([examples[i].num_targets for i in idx], dtype=float)
        nats_matching, nats_other = game_nats(matching, idx), game_nats(other, idx)
        out[f"elo_check_{half}_games_loss_high_condition"] = float(
            (nats_matching if half == "high" else nats_other).sum() / tokens.sum())
        out[f"elo_check_{half}_games_loss_low_condition"] = float(
            (nats_other if half == "high" else nats_matching).sum() / tokens.sum())
        gain = nats_other - nats_matching  # per game: how much the matching condition saves
        out[f"elo_effect_{half}_games"] = float(gain.sum() / tokens.sum())
        draws = rng.integers(0, len(idx), size=(bootstrap_samples, len(idx)))
        effects = gain[draws].sum(axis=1) / tokens[draws].sum(axis=1)
        lo, hi = np.percentile(effects, [5, 95])
        out[f"elo_effect_{half}_games_lo90"], out[f"elo_effect_{half}_games_hi90"] = float(lo), float(hi)
    return out


def _by_elo(examples, result, picks, legal, opts: ChessOptions) -> list[dict]:
    """Loss and legal-move rate per bucket of the players' average Elo (condition given as raw Elo)."""
    def bucket(ex):
        return int(sum(ex.meta["elo"]) / 2 // opts.elo_bucket)

    nats, tokens, hits = Counter(), Counter(), {}
    for ex, loss in zip(examples, result.example_losses):
        nats[bucket(ex)] += loss * ex.num_targets
        tokens[bucket(ex)] += ex.num_targets
    for (i, _), ok in zip(picks, legal):
        hits.setdefault(bucket(examples[i]), []).append(ok)
    rows = []
    for b in sorted(tokens):
        center = (b + 0.5) * opts.elo_bucket
        row = {"condition": [center, center], "loss_per_move_token": nats[b] / max(tokens[b], 1),
               "games": sum(1 for ex in examples if bucket(ex) == b)}
        if b in hits:
            row["legal_move_rate"] = sum(hits[b]) / len(hits[b])
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- the task


def _collect(paths: list[Path], opts: ChessOptions, stats: Counter, take: int, eval_take: int,
             stride: int) -> tuple[list[GameRecord], list[GameRecord]]:
    train, held_out = [], []
    for k, record in enumerate(read_games(paths, opts, stats)):
        if eval_take and k % stride == 0 and len(held_out) < eval_take:
            held_out.append(record)
        elif len(train) < take:
            train.append(record)
        if len(train) >= take and len(held_out) >= eval_take:
            break
    return train, held_out


@register_task("chess")
def chess_task(cfg: TaskConfig, tokenizer) -> TaskData:
    """Moves of real games from PGN (--data, .pgn or .pgn.zst), conditioned on (WhiteElo, BlackElo)."""
    opts = task_options(cfg, ChessOptions)
    _require_chess()
    if not cfg.data:
        raise ConfigError("task 'chess' needs PGN games: --data FILE.pgn[.zst] or a folder of them")
    stats: Counter = Counter()
    data_files = role_files("data", pgn_files(cfg.data))
    if cfg.eval_data:
        data_files.update(role_files("eval_data", pgn_files(cfg.eval_data)))
        train, _ = _collect(pgn_files(cfg.data), opts, stats, cfg.num_train, 0, 1)
        _, held_out = _collect(pgn_files(cfg.eval_data), opts, stats, 0, cfg.num_eval, 1)
    else:
        stride = max(2, round(1 / cfg.eval_fraction)) if cfg.eval_fraction > 0 else 10
        train, held_out = _collect(pgn_files(cfg.data), opts, stats, cfg.num_train, cfg.num_eval, stride)
    logger.info("chess: %d train / %d eval games; %s", len(train), len(held_out),
                ", ".join(f"{k} {v}" for k, v in sorted(stats.items())))
    if not held_out or (cfg.num_train and not train):
        raise DataError(f"chess: only {len(train)} train / {len(held_out)} eval games passed the filters "
                        f"({', '.join(f'{k} {v}' for k, v in sorted(stats.items())) or 'no games read'}); "
                        "relax min_elo/max_elo/time_control/missing_elo or give more PGN files")
    if stats["skipped_broken"]:
        logger.warning("chess: skipped %d broken game(s) (python-chess reported errors)", stats["skipped_broken"])
    spec_keys = ("moves", "max_plies", "min_plies", "min_elo", "max_elo", "time_control", "missing_elo",
                 "default_elo", "elo_center", "elo_scale", "header")
    # Every listed file is hashed, even one reading stopped before: the set of games on offer is the data.
    spec = {"task": "chess", **{k: getattr(opts, k) for k in spec_keys}, "data_sha256": data_hashes(data_files)}
    encode = lambda r: encode_game(r, opts, tokenizer)  # noqa: E731
    held_out_examples = [encode(r) for r in held_out]
    return TaskData(train=[encode(r) for r in train], eval=held_out_examples, spec=spec, condition_dim=2,
                    metrics=make_metrics(opts, tokenizer, stats),
                    generation_contexts=[e.input_ids[:e.meta["move_starts"][min(4, len(e.meta["moves"]) - 1)]]
                                         for e in held_out_examples[:4]],
                    data_files=data_files)
