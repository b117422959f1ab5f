"""scripts/bench_by_items.py: accuracy over doc-id ranges, read from a bench folder's per-item samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import load_repo_script

def _script():
    return load_repo_script("scripts/bench_by_items.py")


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_ranges_split_the_items_and_tuning_seeds_are_averaged(tmp_path):
    task = tmp_path / "samples" / "m" / "quiz"
    # zero-shot cloze: right on items 0-1, wrong on 2-3.
    _write(task / "zero_ll_cloze.jsonl", [{"doc_id": i, "ll_correct": i < 2} for i in range(4)])
    # soft_cloze over two seeds: seed 0 right everywhere, seed 1 right on item 3 only.
    _write(task / "soft_cloze_ll_cloze.jsonl", [{"doc_id": i, "ll_correct": True} for i in range(4)])
    _write(task / "seed_1" / "soft_cloze_ll_cloze.jsonl", [{"doc_id": i, "ll_correct": i == 3} for i in range(4)])
    # generated letters are scored by strict_correct; curve samples are not a mode and are left out.
    _write(task / "soft_gen.jsonl", [{"doc_id": i, "strict_correct": i % 2 == 0} for i in range(4)])
    _write(task / "curve" / "soft@10_gen.jsonl", [{"doc_id": i, "strict_correct": True} for i in range(4)])

    script = _script()
    out = script.table(tmp_path, [script.parse_range("first=0-1"), script.parse_range("second=2-3")])
    rows = {tuple(c.strip() for c in line.strip("|").split("|")[2:4]): line for line in out.splitlines()[2:]}
    assert rows[("zero", "cloze, ll")].endswith("| 100.0 | 0.0 |")
    assert rows[("soft_cloze (2 seeds)", "cloze, ll")].endswith("| 50.0 | 75.0 |")
    assert rows[("soft", "letters (generated)")].endswith("| 50.0 | 50.0 |")
    assert len(rows) == 3  # no row for the curve
    # Modes come in the bench's order, zero first.
    assert out.splitlines()[2].split("|")[3].strip() == "zero"


def test_a_bad_range_is_refused():
    script = _script()
    for text in ("x=5-2", "x=1", "=1-2"):
        with pytest.raises(Exception, match="NAME=FIRST-LAST"):
            script.parse_range(text)


def test_paired_differences_average_seeds_per_item_then_pair_the_items(tmp_path):
    task = tmp_path / "samples" / "m" / "quiz"
    _write(task / "few_ll_cloze.jsonl", [{"doc_id": i, "ll_correct": i == 0} for i in range(4)])
    _write(task / "zero_ll_cloze.jsonl", [{"doc_id": i, "ll_correct": False} for i in range(4)])
    # soft_cloze, two seeds: items 0 and 1 right in both, item 2 right in one (0.5 per item), item 3 wrong.
    _write(task / "soft_cloze_ll_cloze.jsonl", [{"doc_id": i, "ll_correct": i < 3} for i in range(4)])
    _write(task / "seed_1" / "soft_cloze_ll_cloze.jsonl", [{"doc_id": i, "ll_correct": i < 2} for i in range(4)])
    script = _script()
    out = script.paired_table([tmp_path], "ll_cloze", "soft_cloze", ["few", "zero", "soft"])
    row = out.splitlines()[2].split("|")
    # Per item vs few: 0, +1, +0.5, 0 → mean +37.5; std 0.479 / sqrt(4) → 23.9. vs zero: 1, 1, 0.5, 0 → +62.5.
    assert row[3].strip() == "+37.5 ± 23.9"
    assert row[4].strip().startswith("+62.5 ± ")
    assert row[5].strip() == "—"  # no soft mode in this folder
    assert row[6].strip() == "4"
