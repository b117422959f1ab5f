"""Packing sweep cells into lane groups within a memory budget."""

from __future__ import annotations

import pytest
import torch

from softeval.engine.batching import Example, collate
from softeval.errors import ConfigError
from softeval.engine.packing import (CellShape, available_memory_bytes, cell_shape, choose_max_batch_tokens,
                              estimate_bytes_per_token, group_tokens, plan_lane_groups)


def sweep(ns=(0, 1, 4, 16, 64), seeds=3, batch=8, seq=97) -> list[CellShape]:
    return [CellShape(n, batch, seq) for n in ns for _ in range(seeds)]


def test_every_cell_in_exactly_one_group_within_budget():
    cells = sweep()
    budget = 4000
    groups = plan_lane_groups(cells, budget)
    assert sorted(i for g in groups for i in g) == list(range(len(cells)))
    for g in groups:
        assert group_tokens([cells[i] for i in g]) <= budget


def test_group_tokens_match_what_collate_builds():
    """The budget counts exactly the rows × padded width that collate produces for the group."""
    cells = [CellShape(2, 3, 6), CellShape(5, 2, 4)]
    rows = [Example([7] * 5, [7] * 5)] * 3 + [Example([7] * 3, [7] * 3)] * 2
    batch = collate(rows, [2] * 3 + [5] * 2, bos_id=1, pad_id=0, lanes=[0] * 3 + [1] * 2)
    assert batch.input_ids.numel() == group_tokens(cells)
    assert cell_shape(2, 3, rows[:3], has_bos=True) == cells[0]


def test_large_budget_packs_similar_widths_together_and_caps_padding():
    cells = sweep()
    groups = plan_lane_groups(cells, 10**9, max_pad_fraction=0.25)
    widths = [[cells[i].width for i in g] for g in groups]
    # n=64 (width 161) with n=16 (113) would pad 113-rows by 30%: they get separate groups
    assert widths[0] == [161, 161, 161]
    assert all(1 - min(w) / max(w) <= 0.25 for w in widths)
    assert len(groups) == 2
    # without the padding cap everything fits into one group
    assert len(plan_lane_groups(cells, 10**9, max_pad_fraction=1.0)) == 1


def test_oversized_cell_runs_alone(caplog):
    cells = [CellShape(1024, 8, 97), CellShape(1, 8, 97)]
    groups = plan_lane_groups(cells, max_batch_tokens=2000)
    assert groups == [[0], [1]]
    assert "over the budget" in caplog.text


def test_small_budget_one_cell_per_group():
    cells = sweep(ns=(4,), seeds=3, batch=8, seq=96)  # 800 tokens each
    assert plan_lane_groups(cells, 1599) == [[0], [1], [2]]
    assert plan_lane_groups(cells, 1600) == [[0, 1], [2]]


def test_bad_budget_is_a_config_error():
    with pytest.raises(ConfigError, match="max-batch-tokens"):
        plan_lane_groups(sweep(), 0)


def test_memory_budget_from_free_memory(tiny_lm):
    free = available_memory_bytes("cpu")
    assert free > 0
    per_token = estimate_bytes_per_token(tiny_lm.model.config)
    assert per_token > 0
    assert estimate_bytes_per_token(tiny_lm.model.config, checkpointing=True) < per_token
    budget = choose_max_batch_tokens(tiny_lm.model, fraction=0.5)
    assert budget == pytest.approx(0.5 * available_memory_bytes("cpu") / per_token, rel=0.2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
def test_cuda_free_memory():
    assert 0 < available_memory_bytes("cuda") <= torch.cuda.get_device_properties(0).total_memory
