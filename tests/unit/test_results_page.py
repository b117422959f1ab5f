"""docs/results.md agrees with the committed result folders (scripts/results_page.py --check), and the check
catches what it is for: a table or a number that differs from its files, a file that changed under the page,
a number typed into prose, a config value no config holds, a marker that does not parse."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import load_repo_script

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "results.md"
PEE = "results/repetition/pee_smollm2-135m-instruct"


@pytest.fixture(scope="module")
def page_tools():
    return load_repo_script("scripts/results_page.py")


@pytest.fixture(scope="module")
def facts(page_tools):
    from results_facts import Facts  # results_page put scripts/ on the path

    return Facts(ROOT)  # one instance: each file is read, and each family judged, once for the module


@pytest.fixture(scope="module")
def values(page_tools):
    return page_tools.config_values(ROOT)


def test_the_page_agrees_with_the_committed_folders(page_tools, facts):
    problems = page_tools.check(PAGE.read_text(), facts, ROOT)
    assert problems == [], "docs/results.md and results/ disagree; run\n  python scripts/results_page.py --write " \
                           "docs/results.md\nand read the diff:\n" + "\n".join(problems)


def test_a_number_changed_in_a_generated_table_is_listed(page_tools, facts):
    page = PAGE.read_text()
    block = f"<!-- generated: sweep {PEE} -->\n"
    start = page.index(block) + len(block)
    row = page.index("| 0 | 1 | 16.279 |", start)
    broken = page[:row] + "| 0 | 1 | 16.280 |" + page[row + len("| 0 | 1 | 16.279 |"):]
    _, differences = page_tools.fill(broken, facts)
    assert [d.key for d in differences] == [f"generated: sweep {PEE}"]
    assert "16.280" in differences[0].on_page and "16.279" in differences[0].from_files


def test_a_number_changed_in_prose_is_listed(page_tools, facts):
    page = PAGE.read_text()
    marker = f"<!--v:seed-loss {PEE} 1 1-->"
    assert marker + "0.108<!--/v-->" in page
    _, differences = page_tools.fill(page.replace(marker + "0.108", marker + "0.018"), facts)
    assert [(d.key, d.on_page, d.from_files) for d in differences] == [(f"v:seed-loss {PEE} 1 1", "0.018", "0.108")]


def test_a_result_file_that_changes_under_the_page_is_listed(page_tools, facts, tmp_path):
    from results_facts import Facts

    page = (f"Plain: <!--v:loss {PEE} 0--><!--/v--> nats.\n\n<!-- generated: sweep {PEE} -->\n<!-- /generated -->\n")
    written, _ = page_tools.fill(page, facts)
    assert "16.279" in written and page_tools.fill(written, facts)[1] == []
    # the same folder in another repository, its plain-model loss edited: both the value and the table differ
    copy = tmp_path / PEE
    copy.mkdir(parents=True)
    doc = json.loads((ROOT / PEE / "results.json").read_text())
    next(r for r in doc["per_n"] if r["n"] == 0)["loss_mean"] = 16.5
    (copy / "results.json").write_text(json.dumps(doc))
    _, differences = page_tools.fill(written, Facts(tmp_path))
    assert [d.key for d in differences] == [f"v:loss {PEE} 0", f"generated: sweep {PEE}"]  # in page order


def test_a_number_typed_into_prose_is_flagged(page_tools, values):
    assert page_tools.lint("SmolLM2 answers C to most questions.\n", values) == []
    problems = page_tools.lint("SmolLM2 answers C to 193 of 200 questions.\n", values)
    assert len(problems) == 1 and "number 193 in prose" in problems[0]   # "200 questions" is a config value
    assert page_tools.lint("Gemma-3 is +6.6 above its habit.\n", values)
    # inside a value's markers it is the files' number, not prose
    assert page_tools.lint("Gemma-3 is <!--v:habit x y z w over-->+6.6<!--/v--> above its habit.\n", values) == []


def test_grid_and_config_values_pass_only_when_a_config_holds_them(page_tools, values):
    assert page_tools.lint("At n = 16 and after 200 steps at lr 0.1, batch 8, 3 seeds.\n", values) == []
    assert "16" in values["n"] and "200" in values["steps"]  # from the sweeps' configs
    wrong = page_tools.lint("At n = 17 and after 250 steps.\n", values)
    assert len(wrong) == 2 and "prompt length 17" in wrong[0] and "tuning steps 250" in wrong[1]
    # a pattern matches across a wrapped line, as a paragraph does
    assert page_tools.lint("the rule's 95 %\ninterval, seeds 1\n  and 2\n", values) == []
    assert page_tools.lint("a 97 % interval\n", values)  # not the rule's level


def test_a_marker_that_does_not_parse_is_refused(page_tools, facts):
    assert page_tools.malformed("a <!--v:loss x 0-->1.0 and more\n") != []           # value never closed
    assert page_tools.malformed("<!-- generated: runs -->\n| a |\n") != []             # block never closed
    assert page_tools.malformed("names `<!--v:` KEY `-->` in code\n") == []
    assert page_tools.check("<!-- generated: runs -->\n", facts, ROOT) != []


def test_code_spans_are_commands_not_numbers(page_tools, values):
    assert page_tools.lint("run `softeval bench --limit 200` or read `results/bench/mmlu_first200`.\n", values) == []
    assert page_tools.lint("the seed ends at `0.108`.\n", values)


def test_write_fills_an_empty_page_and_check_then_passes(page_tools, facts, tmp_path, capsys):
    page = tmp_path / "page.md"
    page.write_text(f"S is <!--v:S {PEE}--><!--/v-->.\n\n<!-- generated: saturation results/compare/pee_by_model -->\n"
                    "<!-- /generated -->\n")
    assert page_tools.main(["--write", str(page), "--root", str(ROOT)]) == 0
    assert "S is <!--v:S " + PEE + "-->4<!--/v-->." in page.read_text()
    assert "| smollm2-135m | 4 [1–4] | 1, 4, 1 |" in page.read_text()
    assert page_tools.main(["--check", str(page), "--root", str(ROOT)]) == 0
    page.write_text(page.read_text().replace("-->4<!--/v-->", "-->1<!--/v-->"))
    assert page_tools.main(["--check", str(page), "--root", str(ROOT)]) == 1
    assert f"v:S {PEE}" in capsys.readouterr().out


def test_a_key_whose_files_are_missing_is_a_listed_difference_not_a_traceback(page_tools, tmp_path, capsys):
    page = tmp_path / "page.md"
    text = "S is <!--v:S results/repetition/no_such_sweep-->4<!--/v-->.\n"
    page.write_text(text)
    assert page_tools.main(["--write", str(page), "--root", str(ROOT)]) == 1
    assert page.read_text() == text  # the page keeps its text where the files cannot say
    assert "cannot compute" in capsys.readouterr().out
    assert page_tools.main(["--check", str(page), "--root", str(ROOT)]) == 1


def test_the_suite_values_agree_with_the_suites_own_summary(facts):
    suite = "results/suite/smollm2-135m-instruct"
    stored = json.loads((ROOT / suite / "results.json").read_text())  # written by softeval suite itself
    behaviours = len(stored["behaviours"])
    assert facts.value(f"suite-verdicts {suite} nothing") == f"{len(stored['not_above_control'])} of {behaviours}"
    assert facts.value(f"suite-hours {suite}") == f"{stored['cell_seconds'] / 3600:.1f}"
    scanned = sum(b[d]["lengths_scanned"] for b in stored["behaviours"] for d in ("towards", "away"))
    assert facts.value(f"suite-tests {suite}") == str(scanned)
    table = facts.block(f"suite {suite}")
    assert table.startswith(f"smollm2-135m-instruct, {suite}:") and table.count("\n| ") == behaviours + 1


def test_copying_a_folder_is_enough_for_the_values_it_feeds(facts, tmp_path):
    # a value reads its folder's results.json alone: another root with only that file gives the same text
    from results_facts import Facts

    shutil.copytree(ROOT / PEE, tmp_path / PEE, ignore=shutil.ignore_patterns("cells", "report", "logs"))
    assert Facts(tmp_path).value(f"loss {PEE} 1 max") == facts.value(f"loss {PEE} 1 max")


def _ar_sweep(root: Path, plain: list[float], trained: list[list[float]]) -> str:
    folder = "results/autoregressive/constructed"
    cells = [{"n": 0, "seed": 0, "status": "done", "example_losses": plain, "seconds": 1.0}]
    cells += [{"n": 64, "seed": s, "status": "done", "example_losses": losses, "seconds": 3600.0}
              for s, losses in enumerate(trained)]
    for c in cells:
        path = root / folder / "cells" / f"n{c['n']}_s{c['seed']}" / "cell.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(c))
    return folder


@pytest.mark.parametrize("shift, spread, verdict", [(-0.01, 0.02, "within ±0.08"), (-0.30, 0.02, "beyond ±0.08"),
                                                    (-0.08, 0.02, "cannot tell"), (0.0, 0.5, "cannot tell")])
def test_the_autoregressive_control_is_judged_by_its_interval(page_tools, tmp_path, shift, spread, verdict):
    # 40 windows whose plain losses vary a lot, a trained prompt that moves every window by `shift` give or take
    # `spread` per seed: the paired interval over windows and seeds decides the verdict, never the mean alone.
    import numpy as np

    from results_facts import Facts

    rng = np.random.default_rng(1)
    plain = rng.uniform(2.0, 5.0, 40)
    trained = [list(plain + shift + rng.normal(0, spread, 40)) for _ in range(3)]
    folder = _ar_sweep(tmp_path, list(plain), trained)
    facts = Facts(tmp_path)
    assert facts.value(f"ar {folder} verdict") == verdict
    low, high = float(facts.value(f"ar {folder} low")), float(facts.value(f"ar {folder} high"))
    assert low <= float(facts.value(f"ar {folder} diff")) <= high
    assert facts.value(f"ar {folder} hours") == "3.0"


def test_cells_trained_together_count_their_units_time_once(page_tools, tmp_path):
    from results_facts import Facts

    folder = _ar_sweep(tmp_path, [3.0] * 4, [[2.9] * 4] * 3)
    (tmp_path / folder / "plan.json").write_text(json.dumps({"groups": [[[64, 0], [64, 1], [64, 2]]]}))
    assert Facts(tmp_path).value(f"ar {folder} hours") == "1.0"  # one unit of an hour (+ 1 s for n = 0)


def test_the_bench_overview_reads_each_folder_and_names_what_is_missing(facts, tmp_path):
    from results_facts import Facts

    table = facts.block("bench-overview results/bench/arc_easy results/bench/no_such_task")
    stored = json.loads((ROOT / "results/bench/arc_easy/results.json").read_text())["results"]
    zero = stored["smollm2-135m-instruct"]["arc_easy"]["zero"]
    row = next(line for line in table.splitlines() if line.startswith("| arc_easy | smollm2-135m-instruct |"))
    assert f"{100 * zero['format_rate']:.1f} / " in row and f"{100 * zero['best_acc']:.1f} ± " in row
    assert "| no_such_task | — | not run |" in table
    (tmp_path / "results/bench/started").mkdir(parents=True)
    (tmp_path / "results/bench/started/config.json").write_text(json.dumps({"models": ["m1", "m2"]}))
    assert Facts(tmp_path).block("bench-overview results/bench/started").count("not finished") == 2


def test_the_habit_and_cloze_families_cover_the_compares_multiple_choice_runs(facts, tmp_path):
    from results_facts import BENCH_COMPARE, Facts

    def bench(name: str, row: dict) -> str:
        folder = f"results/bench/{name}"
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "results.json").write_text(json.dumps({"results": {"m": {name: {"zero": row}}}}))
        return folder

    numeric = bench("numbers", {"strict_acc": 0.5})
    choice = bench("choices", {"strict_acc": 0.5, "ll_cloze_acc": 0.4})
    old = bench("old_choices", {"ll_acc": 0.4, "ll_formulation": "cloze"})  # a results.json from before the rename
    not_compared = bench("not_compared", {"ll_cloze_acc": 0.4})
    (tmp_path / BENCH_COMPARE).mkdir(parents=True)
    (tmp_path / BENCH_COMPARE / "compare.json").write_text(
        json.dumps({"runs": [{"path": p} for p in (old, numeric, choice)]}))
    assert Facts(tmp_path).choice_folders() == (old, choice)
    assert not_compared not in Facts(tmp_path).choice_folders()
    # the committed page: GSM8K is compared but has no cloze, every other compared run is in the families
    compared = [r["path"] for r in facts.json(BENCH_COMPARE + "/compare.json")["runs"]]
    assert facts.choice_folders() == tuple(p for p in compared if not p.endswith("gsm8k"))
    assert {c["folder"] for c in facts.habit_family()} == set(facts.choice_folders())


def test_the_runs_table_shows_the_precision_that_ran_not_the_auto_label(facts):
    # a sweep whose config says precision: auto records what auto resolved to under identity.json's "resolved"
    folder = "results/skip/k1_gemma3-270m"
    resolved = facts.json(folder + "/identity.json")["resolved"]["precision"]
    assert facts.json(folder + "/config.json")["precision"] == "auto" and resolved != "auto"
    row = next(line for line in facts.block("runs").splitlines() if line.startswith(f"| `{folder}` |"))
    assert f"| {resolved} |" in row and "| auto |" not in row


def test_eps_reached_names_the_smallest_epsilon_whose_saturation_is_inside_the_grid(page_tools, tmp_path):
    from results_facts import Facts

    def row(eps, reached, mode="absolute"):
        return {"mode": mode, "epsilon": eps, "reached": reached}

    folder = tmp_path / "results" / "skip" / "constructed"
    folder.mkdir(parents=True)
    # unordered on purpose, and a reached relative row below the absolute ones that must not count
    rows = [row(1.0, True), row(0.001, False), row(0.1, True), row(0.03, False), row(0.01, True, "relative")]
    (folder / "results.json").write_text(json.dumps({"saturation": {"sensitivity": rows}}))
    assert Facts(tmp_path).value("eps-reached results/skip/constructed") == "0.1"
    (folder / "results.json").write_text(json.dumps({"saturation": {"sensitivity": [row(1.0, False)]}}))
    assert Facts(tmp_path).value("eps-reached results/skip/constructed") == "none"


def test_sweep_minutes_take_a_units_wall_time_from_its_log_where_it_finished(page_tools, tmp_path):
    # The log holds the task metrics' greedy walks, which the cells' seconds leave out, and every attempt of a
    # unit resumed from a checkpoint; a unit whose log never says it finished (interrupted, or no log) falls back
    # to its cells' seconds, counted once.
    from results_facts import Facts

    folder = tmp_path / "results" / "pathfinding" / "constructed"
    (folder / "logs").mkdir(parents=True)
    cells = [{"n": 0, "seed": 0, "seconds": 60.0}]
    cells += [{"n": n, "seed": s, "seconds": 60.0 if n == 1 else 120.0} for n in (1, 4) for s in (0, 1)]
    (folder / "results.json").write_text(json.dumps({"cells": cells}))
    (folder / "plan.json").write_text(json.dumps({"groups": [[[1, 0], [1, 1]], [[4, 0], [4, 1]]]}))
    (folder / "logs" / "n1_s0-n1_s1.log").write_text(  # 240 s, killed; resumed, 360 s more to the end
        "2026-12-07 10:00:00,000 INFO softeval: unit n1_s0-n1_s1: attempt starts (executor local)\n"
        "2026-12-07 10:04:00,000 ERROR softeval: unit n1_s0-n1_s1: interrupted; checkpoint written\n"
        "2026-12-07 10:30:00,000 INFO softeval: unit n1_s0-n1_s1: attempt starts (executor local)\n"
        "2026-12-07 10:30:00,500 INFO softeval.engine.loop: lane n1_s0: resumed from step_000050.safetensors\n"
        "2026-12-07 10:36:00,000 INFO softeval: unit n1_s0-n1_s1: done in 360.0s\n")
    (folder / "logs" / "n4_s0-n4_s1.log").write_text(  # interrupted, never finished
        "2026-12-07 11:00:00,000 INFO softeval: unit n4_s0-n4_s1: attempt starts (executor local)\n")
    assert Facts(tmp_path).value("sweep-minutes results/pathfinding/constructed") == "13"  # (600 + 120 + 60) / 60


def test_sweep_minutes_read_a_one_cell_units_log_by_the_name_the_sweep_gives_it(page_tools, tmp_path):
    # A unit of one cell logs to logs/n16_s0.log (group_unit_name), not n16_s0-n16_s0.log.
    from results_facts import Facts

    folder = tmp_path / "results" / "chess" / "constructed"
    (folder / "logs").mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({"cells": [{"n": 16, "seed": 0, "seconds": 60.0}]}))
    (folder / "plan.json").write_text(json.dumps({"groups": [[[16, 0]]]}))
    (folder / "logs" / "n16_s0.log").write_text("2026-12-07 12:00:00,000 INFO softeval: unit n16_s0: attempt starts\n"
                                                "2026-12-07 12:10:00,000 INFO softeval: unit n16_s0: done in 600.0s\n")
    assert Facts(tmp_path).value("sweep-minutes results/chess/constructed") == "10"


def _chess_sweep(root: Path, name: str, tokens: list[int], nats: dict[int, list[list[float]]], moves: list[int],
                 counts_in: str) -> str:
    """A constructed chess sweep: per n, one row per seed of each game's summed nats. The per-game counts sit in
    the cells' per_example (`counts_in="cells"`) or only in an Elo check's rescoring (`"elo_check"`)."""
    folder = f"results/chess/{name}"
    counts = {"moves": moves, "move_tokens": tokens}
    for n, rows in nats.items():
        for seed, per_game in enumerate(rows):
            losses = [x / t for x, t in zip(per_game, tokens)]
            cell = {"name": f"n{n}_s{seed}", "n": n, "seed": seed, "status": "done", "example_losses": losses,
                    "num_targets": sum(tokens), "task_metrics": {"loss_per_move": sum(per_game) / sum(moves)},
                    "per_example": counts if counts_in == "cells" else {}}
            path = root / folder / "cells" / cell["name"] / "cell.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(cell))
    if counts_in == "elo_check":
        (root / folder / "elo_check").mkdir()
        (root / folder / "elo_check" / "n4_s0.json").write_text(json.dumps({"per_example": counts}))
    (root / folder / "results.json").write_text(json.dumps({"model": {"name": name}}))
    return folder


def test_two_models_compare_per_move_on_the_same_games_by_the_rule(page_tools, tmp_path):
    # 40 games; model a cuts each move into twice the tokens of model b. At n = 4, a spends 0.5 nats more per game
    # than b: higher per move, though about half b's loss per token; at n = 16 they differ only by seed noise.
    import numpy as np

    from results_facts import Facts

    rng = np.random.default_rng(3)
    moves = [int(m) for m in rng.integers(8, 24, 40)]
    base = rng.uniform(1.5, 2.5, 40) * np.array(moves)
    seeds = lambda shift: [list(base + shift + rng.normal(0, 0.05, 40)) for _ in range(3)]  # noqa: E731
    a = _chess_sweep(tmp_path, "a", [4 * m for m in moves], {4: seeds(0.5), 16: seeds(0.0)}, moves, "cells")
    b = _chess_sweep(tmp_path, "b", [2 * m for m in moves], {4: seeds(0.0), 16: seeds(0.0)}, moves, "elo_check")
    facts = Facts(tmp_path)
    assert facts.value(f"chess-models {a} {b} verdict 4") == "holds: b lower"
    assert facts.value(f"chess-models {a} {b} verdict 16") == "cannot tell"
    assert facts.value(f"chess-models {a} {b} holds") == "1 of 2"
    low, high = float(facts.value(f"chess-models {a} {b} low 4")), float(facts.value(f"chess-models {a} {b} high 4"))
    assert 0 < low <= 0.5 / np.mean(moves) <= high  # the shift, per move
    assert "| 4 | 3, 3 |" in facts.block(f"chess-models {a} {b}")

    # counts that do not give back a cell's own loss per move are refused, not turned into a number
    cell = tmp_path / a / "cells" / "n4_s0" / "cell.json"
    record = json.loads(cell.read_text())
    cell.write_text(json.dumps({**record, "task_metrics": {"loss_per_move": record["task_metrics"]["loss_per_move"] + 0.1}}))
    with pytest.raises(ValueError, match="nats per move"):
        Facts(tmp_path).value(f"chess-models {a} {b} holds")
