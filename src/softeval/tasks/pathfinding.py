"""Pathfinding: walk from S to G on a procedurally generated grid, with a conditional path quality.

Each example is a random grid (size, obstacle density, seed), a start and a goal that are connected,
and the moves of a *walker* that leaves the optimal path with a chosen probability and sometimes
bumps into walls. The condition tells the prompt what kind of walk to produce:

    condition = (extra moves over the optimal path, invalid moves attempted)
    normalised as (extra / extra_scale, invalid / invalid_scale)        (defaults 4 and 2)

Encoding (text, tokenized piece by piece so the loss mask is exact):

    Grid:\\n          ┐
    S..#....\\n        │ board: '.' free, '#' wall, 'S' start, 'G' goal; one line per row,
    ...              │ row 0 at the top. Never scored, for any prompt length.
    .#....G.\\n        │
    Path:            ┘
     U R R D … .       moves ' U' ' D' ' L' ' R' and the end marker ' .': the only scored tokens

A move into a wall or off the grid is *invalid*: it is written in the sequence (so the model can
learn "invalid moves attempted") but the walker stays where it is. The walk ends on reaching G.
Each valid move changes the BFS distance to G by exactly ±1 (a grid is bipartite), so
extra = valid moves − optimal distance is always even.

Examples are a pure function of (task seed, split, index): train and eval boards come from disjoint
index ranges, and eval boards do not depend on num_train.
"""

from __future__ import annotations

import logging
import math
import random
import statistics
from collections import Counter, deque
from dataclasses import dataclass, field

from softeval.engine.batching import IGNORE, Example
from softeval.errors import ConfigError, DataError
from softeval.tasks import TaskConfig, TaskData, register_task, task_options

logger = logging.getLogger(__name__)

MOVES = {"U": (-1, 0), "D": (1, 0), "L": (0, -1), "R": (0, 1)}
END = "."
EVAL_OFFSET = 0
TRAIN_OFFSET = 1_000_000  # train boards use other indices than eval boards, whatever num_eval is


@dataclass(frozen=True)
class PathfindingOptions:
    grid_size: int = 8              # the grid is grid_size × grid_size
    obstacle_density: float = 0.2   # share of cells that are walls (start and goal are kept free)
    min_distance: int = 2           # start and goal at least this many moves apart
    detour_prob: float = 0.4        # per example, p_detour ~ U(0, detour_prob): chance per step of a detour
    invalid_prob: float = 0.1       # per example, p_invalid ~ U(0, invalid_prob): chance per step of a wall bump
    max_extra: int = 8              # cap on extra moves (the walker returns to an optimal path after)
    max_invalid: int = 3            # cap on invalid moves per walk
    max_tries: int = 100            # attempts to draw a grid with a reachable goal before giving up
    extra_scale: float = 4.0        # condition normalisation: extra / extra_scale
    invalid_scale: float = 2.0      # condition normalisation: invalid / invalid_scale
    probe_extras: list = field(default_factory=lambda: [0, 4, 8])  # metrics: requested extras to probe
    max_metric_boards: int = 32     # metrics: at most this many eval boards are walked by the model

    def __post_init__(self):
        if self.grid_size < 2:
            raise ConfigError(f"pathfinding grid_size must be >= 2, got {self.grid_size}")
        if not 0.0 <= self.obstacle_density < 1.0:
            raise ConfigError(f"pathfinding obstacle_density must be in [0, 1), got {self.obstacle_density}")
        if self.min_distance < 1:
            raise ConfigError(f"pathfinding min_distance must be >= 1, got {self.min_distance}")
        if self.min_distance > 2 * (self.grid_size - 1):
            raise ConfigError(f"pathfinding min_distance {self.min_distance} cannot fit on a {self.grid_size}x"
                              f"{self.grid_size} grid (at most {2 * (self.grid_size - 1)}); lower it or raise grid_size")
        for key in ("detour_prob", "invalid_prob"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"pathfinding {key} must be in [0, 1], got {getattr(self, key)}")
        if self.max_extra < 0 or self.max_invalid < 0 or self.max_tries < 1:
            raise ConfigError("pathfinding max_extra and max_invalid must be >= 0 and max_tries >= 1")
        if self.extra_scale <= 0 or self.invalid_scale <= 0:
            raise ConfigError("pathfinding extra_scale and invalid_scale must be > 0")


# --------------------------------------------------------------------------- grids and walks


@dataclass(frozen=True)
class Grid:
    size: int
    walls: frozenset   # {(row, col)}
    start: tuple
    goal: tuple

    def free(self, cell: tuple) -> bool:
        r, c = cell
        return 0 <= r < self.size and 0 <= c < self.size and cell not in self.walls

    def render(self) -> str:
        rows = []
        for r in range(self.size):
            row = ""
            for c in range(self.size):
                cell = (r, c)
                row += "S" if cell == self.start else "G" if cell == self.goal else "#" if cell in self.walls else "."
            rows.append(row)
        return "\n".join(rows)


def step(cell: tuple, move: str) -> tuple:
    dr, dc = MOVES[move]
    return cell[0] + dr, cell[1] + dc


def distances_to(grid: Grid, target: tuple) -> dict:
    """BFS distance (in moves) from every reachable free cell to `target`."""
    dist = {target: 0}
    queue = deque([target])
    while queue:
        cell = queue.popleft()
        for move in MOVES:
            nxt = step(cell, move)
            if grid.free(nxt) and nxt not in dist:
                dist[nxt] = dist[cell] + 1
                queue.append(nxt)
    return dist


def make_grid(opts: PathfindingOptions, rng: random.Random) -> Grid:
    """A random grid whose start reaches its goal in >= min_distance moves; clear error if none is found."""
    size = opts.grid_size
    cells = [(r, c) for r in range(size) for c in range(size)]
    n_walls = round(opts.obstacle_density * size * size)
    if size * size - n_walls < 2:
        raise ConfigError(f"pathfinding: obstacle_density {opts.obstacle_density} leaves fewer than 2 free cells on a "
                          f"{size}x{size} grid; lower obstacle_density")
    for _ in range(opts.max_tries):
        walls = frozenset(rng.sample(cells, n_walls))
        free = [c for c in cells if c not in walls]
        start, goal = rng.sample(free, 2)
        grid = Grid(size, walls, start, goal)
        dist = distances_to(grid, goal).get(start)
        if dist is not None and dist >= opts.min_distance:
            return grid
    raise ConfigError(f"pathfinding: no {size}x{size} grid with obstacle_density {opts.obstacle_density} had a goal "
                      f"reachable in >= {opts.min_distance} moves in {opts.max_tries} tries; lower obstacle_density "
                      "or min_distance, or raise grid_size or max_tries")


@dataclass(frozen=True)
class Walk:
    moves: tuple        # letters, invalid attempts included
    optimal: int        # BFS distance start → goal
    extra: int          # valid moves − optimal
    invalid: int        # moves into walls or off the grid


def walk(grid: Grid, rng: random.Random, p_detour: float, p_invalid: float, max_extra: int, max_invalid: int) -> Walk:
    """A walker from start to goal that detours with probability p_detour per step (within max_extra)."""
    dist = distances_to(grid, grid.goal)
    optimal = dist[grid.start]
    cell, used, moves, invalid = grid.start, 0, [], 0
    while cell != grid.goal:
        blocked = [m for m in MOVES if not grid.free(step(cell, m))]
        if blocked and invalid < max_invalid and rng.random() < p_invalid:
            moves.append(rng.choice(blocked))
            invalid += 1
            continue
        closer = [m for m in MOVES if grid.free(step(cell, m)) and dist[step(cell, m)] < dist[cell]]
        away = [m for m in MOVES if grid.free(step(cell, m)) and dist[step(cell, m)] > dist[cell]]
        # A detour costs 2 extra moves (one away, one back): take it only while the budget allows.
        budget_left = optimal + max_extra - used - dist[cell]
        move = rng.choice(away) if away and budget_left >= 2 and rng.random() < p_detour else rng.choice(closer)
        moves.append(move)
        cell = step(cell, move)
        used += 1
    return Walk(tuple(moves), optimal, used - optimal, invalid)


def simulate(grid: Grid, moves: list[str]) -> dict:
    """Replay moves from the start: counts of valid/invalid moves, and whether (and when) G is reached.

    Moves after reaching G are ignored (the walk is over); extra is counted up to the arrival.
    """
    dist = distances_to(grid, grid.goal)
    cell, valid, invalid, reached = grid.start, 0, 0, False
    for move in moves:
        nxt = step(cell, move)
        if grid.free(nxt):
            cell, valid = nxt, valid + 1
        else:
            invalid += 1
        if cell == grid.goal:
            reached = True
            break
    optimal = dist[grid.start]
    return {"valid": valid, "invalid": invalid, "reached": reached, "optimal": optimal,
            "extra": valid - optimal if reached else None}


def parse_moves(text: str) -> tuple[list[str], bool]:
    """Move letters from generated text, up to the end marker or the first other character.

    Whitespace is ignored, so merged tokens ("UU") parse too. Returns (moves, ended_with_marker).
    """
    moves = []
    for ch in text:
        if ch.isspace():
            continue
        if ch in MOVES:
            moves.append(ch)
            continue
        return moves, ch == END
    return moves, False


# --------------------------------------------------------------------------- examples


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False).input_ids


def encode(grid: Grid, moves: tuple, tokenizer, cache: dict) -> tuple[list[int], list[int], int]:
    """(input_ids, labels, context_len): board unscored, each move and the end marker scored."""
    context = _ids(tokenizer, "Grid:\n" + grid.render() + "\nPath:")
    move_ids: list[int] = []
    for m in list(moves) + [END]:
        if m not in cache:
            cache[m] = _ids(tokenizer, " " + m)
        move_ids += cache[m]
    return context + move_ids, [IGNORE] * len(context) + move_ids, len(context)


def normalise(extra: float, invalid: float, opts: PathfindingOptions) -> list[float]:
    return [extra / opts.extra_scale, invalid / opts.invalid_scale]


def make_example(opts: PathfindingOptions, seed: int, index: int, tokenizer, cache: dict) -> Example:
    rng = random.Random(f"pathfinding:{seed}:{index}")  # str seeds are hashed deterministically (sha512)
    grid = make_grid(opts, rng)
    w = walk(grid, rng, rng.uniform(0, opts.detour_prob), rng.uniform(0, opts.invalid_prob),
             opts.max_extra, opts.max_invalid)
    ids, labels, context_len = encode(grid, w.moves, tokenizer, cache)
    return Example(input_ids=ids, labels=labels, condition=normalise(w.extra, w.invalid, opts),
                   meta={"grid": grid, "walk": w, "context_len": context_len, "index": index})


def generate_examples(opts: PathfindingOptions, seed: int, offset: int, count: int, tokenizer) -> list[Example]:
    cache: dict = {}
    return [make_example(opts, seed, offset + i, tokenizer, cache) for i in range(count)]


# --------------------------------------------------------------------------- metrics


def _walk_stats(grids: list[Grid], texts: list[str]) -> list[dict]:
    out = []
    for grid, text in zip(grids, texts):
        moves, ended = parse_moves(text)
        sim = simulate(grid, moves)
        sim.update(attempted=len(moves), ended=ended)
        out.append(sim)
    return out


def _summary(stats: list[dict], requested_extra: list[float] | None = None) -> dict:
    attempted = sum(s["valid"] + s["invalid"] for s in stats)
    reached = [s for s in stats if s["reached"]]
    out = {
        "valid_move_rate": sum(s["valid"] for s in stats) / attempted if attempted else 0.0,
        "goal_reached_rate": len(reached) / len(stats),
        "optimal_path_rate": sum(1 for s in reached if s["extra"] == 0 and s["invalid"] == 0) / len(stats),
        "measured_extra": statistics.fmean(s["extra"] for s in reached) if reached else math.nan,
        "measured_invalid": statistics.fmean(s["invalid"] for s in stats),
        # Defined even when G is not reached: how much longer than optimal the written walk is.
        "length_over_optimal": statistics.fmean(s["attempted"] - s["optimal"] for s in stats),
    }
    if requested_extra is not None:
        errors = [abs(s["extra"] - want) for s, want in zip(stats, requested_extra) if s["reached"]]
        out["condition_error"] = statistics.fmean(errors) if errors else math.nan
    return out


def blind_baseline_loss(train: list[Example], held_out: list[Example]) -> float:
    """Per-token loss of a predictor that never reads the board: each scored token's frequency in the training
    walks (add-one smoothed), scored on the held-out walks. Same tokens and nats as the held-out loss, so a
    prompt whose loss is not well below it writes plausible moves without using the grid."""
    counts = Counter(t for e in train for t in e.labels if t != IGNORE)
    targets = [t for e in held_out for t in e.labels if t != IGNORE]
    vocab = set(counts) | set(targets)
    total = sum(counts.values()) + len(vocab)
    return statistics.fmean(-math.log((counts[t] + 1) / total) for t in targets)


def make_metrics(opts: PathfindingOptions, tokenizer, train: list[Example]):
    """Task metrics on the model's own greedy walks of the eval boards (see module docstring)."""

    def metrics(lm, prompt, examples: list[Example], placement: str = "after_bos") -> dict:
        from softeval.engine.generate import generate_ids

        baseline = blind_baseline_loss(train, examples)  # on every held-out walk, as the held-out loss is
        examples = examples[:opts.max_metric_boards]
        grids = [e.meta["grid"] for e in examples]
        contexts = [e.input_ids[:e.meta["context_len"]] for e in examples]
        # Room for the longest walk the data can ask for, plus the end marker.
        budget = max(e.meta["walk"].optimal for e in examples) + opts.max_extra + opts.max_invalid + 2

        # Stop at the end marker when it is one token (the walk is over); generating on only costs time.
        end_ids = _ids(tokenizer, " " + END)
        stop_id = end_ids[0] if len(end_ids) == 1 else lm.info.eos_token_id

        def run(conditions: list[list[float]]) -> list[dict]:
            new = generate_ids(lm.model, prompt, contexts, bos_id=lm.info.bos_token_id, pad_id=lm.info.pad_token_id,
                               eos_id=stop_id, placement=placement, max_new_tokens=budget,
                               conditions=conditions)
            return _walk_stats(grids, [tokenizer.decode(ids) for ids in new])

        own = [e.meta["walk"] for e in examples]
        out = _summary(run([e.condition for e in examples]), [w.extra for w in own])
        out["data_extra"] = statistics.fmean(w.extra for w in own)
        out["data_invalid"] = statistics.fmean(w.invalid for w in own)
        out["blind_baseline_loss"] = baseline
        by_condition = []
        for want in opts.probe_extras:
            probe = _summary(run([normalise(want, 0, opts)] * len(examples)), [want] * len(examples))
            by_condition.append({"condition": [float(want), 0.0], **probe})
        out["by_condition"] = by_condition
        return out

    return metrics


# --------------------------------------------------------------------------- the task


@register_task("pathfinding")
def pathfinding(cfg: TaskConfig, tokenizer) -> TaskData:
    """Walk S→G on generated grids; conditioned on (extra moves, invalid moves); loss on move tokens only."""
    opts = task_options(cfg, PathfindingOptions)
    if cfg.data or cfg.eval_data:
        raise ConfigError("task 'pathfinding' generates its own grids; drop --data/--eval-data")
    held_out = generate_examples(opts, cfg.seed, EVAL_OFFSET, cfg.num_eval, tokenizer)
    train = generate_examples(opts, cfg.seed, TRAIN_OFFSET, cfg.num_train, tokenizer)
    if not held_out:
        raise DataError("task 'pathfinding' needs num_eval >= 1")
    # The spec names the behaviour (the grid and walker distribution), not which boards were drawn.
    spec = {"task": "pathfinding",
            **{k: v for k, v in opts.__dict__.items() if k not in ("probe_extras", "max_metric_boards")}}
    logger.info("pathfinding: %d train / %d eval %dx%d grids, mean optimal %.1f moves, mean extra %.1f",
                len(train), len(held_out), opts.grid_size, opts.grid_size,
                statistics.fmean(e.meta["walk"].optimal for e in held_out),
                statistics.fmean(e.meta["walk"].extra for e in held_out))
    return TaskData(train=train, eval=held_out, spec=spec, condition_dim=2,
                    metrics=make_metrics(opts, tokenizer, train),
                    generation_contexts=[e.input_ids[:e.meta["context_len"]] for e in held_out[:4]])
