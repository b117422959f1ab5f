"""Which cells a sweep has and which of them train together: the (n, seed) grid, the lane groups fixed in
plan.json, each cell's lane settings and each lane group's unit name."""

from __future__ import annotations

from softeval.distance.config import DistanceConfig
from softeval.engine.loop import LaneConfig
from softeval.engine.packing import CellShape, plan_lane_groups
from softeval.store import SweepFolder, atomic_write_json

cell_name = SweepFolder.cell_name


def plan_cells(cfg: DistanceConfig) -> list[tuple[int, int]]:
    """(n, seed) per cell. n = 0 has no randomness, so it is one cell (seed 0) shared by every seed."""
    return [(n, seed) for n in cfg.tokens for seed in ([0] if n == 0 else cfg.seed_list)]


def pack_cells(cells: list[tuple[int, int]], batch_size: int, example_tokens: int,
               max_batch_tokens: int) -> list[list[tuple[int, int]]]:
    """Group (n, seed) cells that train in one pass (lanes) with `packing.plan_lane_groups`: each step costs at
    most `max_batch_tokens` (rows × padded length) and wastes little on padding. 0 means one cell per pass;
    a cell that alone exceeds the budget still runs, alone."""
    if max_batch_tokens == 0:
        return [[cell] for cell in sorted(cells)]
    shapes = [CellShape(n, batch_size, example_tokens) for n, _ in cells]
    return [[cells[i] for i in group] for group in plan_lane_groups(shapes, max_batch_tokens)]


def lane_plan(sweep: SweepFolder, cfg: DistanceConfig, todo: list[tuple[int, int]], example_tokens: int,
              torch_threads: int | None = None) -> list:
    """Lane groups for the unfinished cells. The plan is fixed the first time a cell is planned (plan.json) and
    reused on every re-run, so a resumed or grown sweep trains each cell with the same partners as before
    (in bf16 a lane's numbers depend on what shares its batch), and with the same torch thread count."""
    plan = sweep.read(sweep.plan_path, "lane plan") or {}
    groups = [[tuple(c) for c in g] for g in plan.get("groups", [])]
    planned = {c for g in groups for c in g}
    new = [c for c in todo if c not in planned]
    if new or (groups and "torch_threads" not in plan):  # a plan from before the count was kept gets it now
        groups += pack_cells(new, cfg.optim.batch_size, example_tokens, cfg.max_batch_tokens) if new else []
        atomic_write_json(sweep.plan_path, {"max_batch_tokens": plan.get("max_batch_tokens", cfg.max_batch_tokens),
                                            "example_tokens": plan.get("example_tokens", example_tokens),
                                            "groups": groups, "torch_threads": plan.get("torch_threads", torch_threads)})
    wanted = set(todo)
    return [[c for c in g if c in wanted] for g in groups if any(c in wanted for c in g)]


def cell_lane_config(cfg: DistanceConfig, seed: int) -> LaneConfig:
    return LaneConfig(optim=cfg.optim, seed=seed, eval_every=cfg.eval_every, eval_batch_size=cfg.eval_batch_size,
                      checkpoint_every=cfg.checkpoint_every, keep_checkpoints=2)  # resume_lanes needs the one before


def group_unit_name(group: list[tuple[int, int]]) -> str:
    """'n16_s0' for a one-cell group, 'n1_s0-n4_s2' (first and last cell) for more: unique, as every cell is in
    exactly one group, and a harmless file name for the unit's log."""
    first, last = cell_name(*group[0]), cell_name(*group[-1])
    return first if len(group) == 1 else f"{first}-{last}"
