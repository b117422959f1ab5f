"""Pathfinding task: deterministic generator, BFS distances, walker, label mask, metrics, bad configs."""

from __future__ import annotations

import math
import random

import pytest

from softeval.engine.batching import IGNORE, Example, collate
from softeval.errors import ConfigError
from softeval.tasks import TaskConfig, build_task
from softeval.tasks.pathfinding import (MOVES, Grid, PathfindingOptions, blind_baseline_loss, distances_to,
                                        generate_examples, make_grid, parse_moves, simulate, walk)


def reference_distances(grid: Grid) -> dict:
    """Independent check: Bellman-Ford style relaxation over all free cells until nothing changes."""
    cells = [(r, c) for r in range(grid.size) for c in range(grid.size) if (r, c) not in grid.walls]
    inf = float("inf")
    dist = {c: inf for c in cells}
    dist[grid.goal] = 0
    changed = True
    while changed:
        changed = False
        for r, c in cells:
            for nb in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if nb in dist and dist[nb] + 1 < dist[(r, c)]:
                    dist[(r, c)] = dist[nb] + 1
                    changed = True
    return {c: int(d) for c, d in dist.items() if d != inf}


def test_bfs_distances_match_independent_relaxation():
    opts = PathfindingOptions(grid_size=7, obstacle_density=0.3)
    for i in range(40):
        grid = make_grid(opts, random.Random(i))
        assert distances_to(grid, grid.goal) == reference_distances(grid)


def test_hand_made_grid_distance():
    # S at top-left, G at top-right, a wall column in between with a gap at the bottom row.
    walls = frozenset({(0, 1), (1, 1)})
    grid = Grid(3, walls, (0, 0), (0, 2))
    assert distances_to(grid, grid.goal)[grid.start] == 6  # down 2, right 2, up 2
    assert simulate(grid, list("DDRRUU"))["extra"] == 0
    assert simulate(grid, list("R"))["invalid"] == 1


def test_generator_is_deterministic_per_seed(tiny_lm):
    opts = PathfindingOptions(grid_size=6)
    a = generate_examples(opts, 3, 0, 8, tiny_lm.tokenizer)
    b = generate_examples(opts, 3, 0, 8, tiny_lm.tokenizer)
    c = generate_examples(opts, 4, 0, 8, tiny_lm.tokenizer)
    assert [e.input_ids for e in a] == [e.input_ids for e in b]
    assert [e.condition for e in a] == [e.condition for e in b]
    assert [e.input_ids for e in a] != [e.input_ids for e in c]


def test_eval_boards_do_not_depend_on_num_train(tiny_lm):
    small = build_task(TaskConfig(name="pathfinding", num_train=4, num_eval=5), tiny_lm.tokenizer)
    large = build_task(TaskConfig(name="pathfinding", num_train=20, num_eval=5), tiny_lm.tokenizer)
    assert [e.input_ids for e in small.eval] == [e.input_ids for e in large.eval]
    assert small.spec_hash == large.spec_hash
    assert small.condition_dim == 2


def test_walker_reaches_goal_and_its_condition_is_what_it_did():
    opts = PathfindingOptions(grid_size=8, obstacle_density=0.25)
    rng = random.Random(0)
    seen_extra = set()
    for _ in range(60):
        grid = make_grid(opts, rng)
        w = walk(grid, rng, p_detour=0.5, p_invalid=0.2, max_extra=6, max_invalid=2)
        sim = simulate(grid, list(w.moves))
        assert sim["reached"] and sim["extra"] == w.extra and sim["invalid"] == w.invalid
        assert w.extra % 2 == 0 and 0 <= w.extra <= 6 and 0 <= w.invalid <= 2
        seen_extra.add(w.extra)
    assert len(seen_extra) >= 3  # the walker really produces a range of conditions
    grid = make_grid(opts, rng)
    straight = walk(grid, rng, p_detour=0.0, p_invalid=0.0, max_extra=6, max_invalid=2)
    assert straight.extra == 0 and straight.invalid == 0 and len(straight.moves) == straight.optimal


@pytest.mark.parametrize("n", [0, 4])
def test_loss_mask_covers_move_tokens_only(tiny_lm, n):
    tok = tiny_lm.tokenizer
    examples = generate_examples(PathfindingOptions(grid_size=5), 0, 0, 6, tok)
    move_ids = {i for m in list(MOVES) + ["."] for i in tok(" " + m, add_special_tokens=False).input_ids}
    for ex in examples:
        k = ex.meta["context_len"]
        assert all(label == IGNORE for label in ex.labels[:k])  # the board is never scored
        assert ex.labels[k:] == ex.input_ids[k:] and set(ex.labels[k:]) <= move_ids
        decoded = tok.decode(ex.input_ids[k:])
        assert parse_moves(decoded) == (list(ex.meta["walk"].moves), True)
    batch = collate(examples, n, tiny_lm.info.bos_token_id, tiny_lm.info.pad_token_id)
    expected = [t for ex in examples for t in ex.labels if t != IGNORE]
    assert batch.target_ids.tolist() == expected
    # The scored columns hold (one position before) exactly the move tokens of each row.
    assert batch.input_ids[batch.target_rows, batch.target_cols + 1].tolist() == expected


def test_parse_moves():
    assert parse_moves(" U U R D .") == (["U", "U", "R", "D"], True)
    assert parse_moves("UUR. D") == (["U", "U", "R"], True)
    assert parse_moves(" U x R") == (["U"], False)
    assert parse_moves("") == ([], False)


def test_unsatisfiable_configs_fail_clearly(tiny_lm):
    with pytest.raises(ConfigError, match="no 6x6 grid .* in 5 tries"):
        build_task(TaskConfig(name="pathfinding", num_train=2, num_eval=2,
                              options={"grid_size": 6, "obstacle_density": 0.9, "max_tries": 5}), tiny_lm.tokenizer)
    with pytest.raises(ConfigError, match="grid_size must be >= 2"):
        PathfindingOptions(grid_size=1)
    with pytest.raises(ConfigError, match="cannot fit on a 3x3 grid"):
        PathfindingOptions(grid_size=3, min_distance=5)
    with pytest.raises(ConfigError, match="fewer than 2 free cells"):
        make_grid(PathfindingOptions(grid_size=2, obstacle_density=0.8, min_distance=1), random.Random(0))
    with pytest.raises(ConfigError, match="has no option"):
        build_task(TaskConfig(name="pathfinding", options={"gridsize": 5}), tiny_lm.tokenizer)


def test_metrics_on_generated_walks(tiny_lm):
    task = build_task(TaskConfig(name="pathfinding", num_train=2, num_eval=4,
                                 options={"grid_size": 4, "probe_extras": [0, 4]}), tiny_lm.tokenizer)
    m = task.metrics(tiny_lm, None, task.eval)
    for key in ("valid_move_rate", "goal_reached_rate", "optimal_path_rate"):
        assert 0.0 <= m[key] <= 1.0
    assert [c["condition"] for c in m["by_condition"]] == [[0.0, 0.0], [4.0, 0.0]]
    assert m["data_extra"] >= 0
    assert m["blind_baseline_loss"] == blind_baseline_loss(task.train, task.eval)


def _scored(tokens: list[int]) -> Example:
    return Example(input_ids=[9] + tokens, labels=[IGNORE] + tokens)


def test_blind_baseline_is_the_training_frequency_cross_entropy():
    # four moves equally often in training: ln 4 per token, up to the add-one smoothing
    uniform = [_scored([1, 2, 3, 4] * 50)]
    assert blind_baseline_loss(uniform, [_scored([1, 2, 3, 4])]) == pytest.approx(math.log(4), abs=0.01)
    # a held-out walk of the common move costs less than one of a rare move, and an unseen token is finite
    skewed = [_scored([1] * 90 + [2] * 10)]
    assert blind_baseline_loss(skewed, [_scored([1])]) < blind_baseline_loss(skewed, [_scored([2])])
    assert math.isfinite(blind_baseline_loss(skewed, [_scored([7])]))
