"""The discontinuity detector and the lr × batch-size grid: planted spikes are flagged, smooth runs are not."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from softeval.cli import main
from softeval.config import build_config
from softeval.distance.config import DistanceConfig
from softeval.errors import ConfigError, SoftevalError
from softeval.distance.report import write_report
from softeval.distance.stability import flag_cells, neighbour_outliers, read_curves, robust_scale, training_spikes
from softeval.distance.grid import analyze_grid, grid_point, point_config, run_grid

from conftest import TINY_TEXT
from sweep_fixtures import make_sweep, smooth_curve


def strict_load(path: Path):
    def refuse(token):
        raise ValueError(f"non-strict JSON constant {token}")

    return json.loads(Path(path).read_text(), parse_constant=refuse)


SMOOTH = {(0, 0): 5.0, (1, 0): 3.0, (1, 1): 3.05, (1, 2): 2.98, (4, 0): 2.0, (4, 1): 2.04, (4, 2): 2.01,
          (16, 0): 1.50, (16, 1): 1.52, (16, 2): 1.49, (64, 0): 1.48, (64, 1): 1.47, (64, 2): 1.50}


# --- pure detectors ----------------------------------------------------------------------------------


def test_robust_scale_is_mad_times_1_4826():
    # median 3; absolute deviations 2, 1, 0, 1, 97 → MAD 1: the outlier does not move it.
    assert robust_scale([1, 2, 3, 4, 100]) == pytest.approx(1.4826)
    assert robust_scale([7.0]) == 0.0
    assert robust_scale([1.0, float("nan"), 3.0]) == pytest.approx(1.4826)


def test_a_point_far_above_both_neighbours_is_flagged_with_its_excess():
    hits = neighbour_outliers([5.0, 3.0, 4.0, 1.0, 0.99], scale=0.0, min_excess=0.05)
    assert [h["index"] for h in hits] == [2]
    assert hits[0]["excess"] == pytest.approx(1.0)      # 4.0 − max(3.0, 1.0)
    assert hits[0]["baseline"] == pytest.approx(3.0)


def test_a_smooth_falling_curve_and_a_high_first_point_are_not_flagged():
    assert neighbour_outliers([5.0, 3.0, 2.0, 1.5, 1.49]) == []
    assert neighbour_outliers([9.0, 1.0, 0.9]) == []          # n = 0 (or the smallest lr) is never judged


def test_the_last_point_is_judged_against_the_one_before_it():
    hits = neighbour_outliers([5.0, 2.0, 1.0, 1.6])
    assert [h["index"] for h in hits] == [3] and hits[0]["excess"] == pytest.approx(0.6)


def test_missing_points_are_skipped_not_treated_as_zero():
    hits = neighbour_outliers([5.0, float("nan"), 6.0, None, 3.0])
    assert [h["index"] for h in hits] == [2] and hits[0]["excess"] == pytest.approx(1.0)  # 6 − max(5, 3)


def test_seed_noise_raises_the_threshold():
    series = [5.0, 3.0, 3.3, 2.0]                               # excess 0.3 at index 2
    assert neighbour_outliers(series, scale=0.1, sigmas=5) == []  # threshold 0.5
    assert [h["index"] for h in neighbour_outliers(series, scale=0.01, sigmas=5)] == [2]


@pytest.mark.parametrize("seed", range(5))
def test_a_noisy_smooth_training_curve_has_no_spike(seed):
    curve = smooth_curve(seed=seed)
    assert training_spikes(range(1, len(curve) + 1), curve) == []


def test_a_fast_early_drop_is_descent_not_a_spike():
    # Repetition-like: 19 nats to ~0.01 within a few steps, then multiplicative batch noise. A centred running
    # median would call the early steps spikes (they sit far above the steps after them).
    import numpy as np

    rng = np.random.default_rng(0)
    t = np.arange(100)
    curve = list((0.01 + 19 * np.exp(-t / 2)) * np.exp(rng.normal(0, 0.05, t.size)))
    assert training_spikes(t, curve) == []


def test_wobbles_of_a_converged_curve_are_not_spikes_but_a_real_jump_is():
    # What the ' pee' repetition sweep on SmolLM2 logged: the curve sits at 1e-5..1e-4 nats/token and single steps
    # jump 3-10x *relatively* (4e-5 -> 4e-4). Relative to the curve that is huge, in nats it is nothing; flagging
    # it buried the two real spikes of that sweep under 40 false ones. A jump of 0.3 nats on the same curve is real.
    import numpy as np

    rng = np.random.default_rng(1)
    t = np.arange(200)
    curve = list((2e-5 + 5 * np.exp(-t / 3)) * np.exp(rng.normal(0, 0.3, t.size)))
    for step in (60, 90, 130, 170):
        curve[step] *= 10                  # relative wobbles, each < 1e-3 nats
    assert training_spikes(t, curve) == []
    curve[100] = 0.3
    assert [s["step"] for s in training_spikes(t, curve)] == [100]


def test_a_planted_training_spike_is_flagged_once_at_its_step():
    curve = smooth_curve()
    curve[59] += 1.5
    curve[60] += 1.0                      # two consecutive steps: one spike
    spikes = training_spikes(range(1, len(curve) + 1), curve)
    assert len(spikes) == 1
    assert (spikes[0]["step"], spikes[0]["first_step"], spikes[0]["last_step"]) == (60, 60, 61)
    assert spikes[0]["excess"] > 1.0


def test_a_non_finite_training_loss_is_a_spike():
    curve = smooth_curve()
    curve[30] = float("nan")
    spikes = training_spikes(range(len(curve)), curve)
    assert [(s["step"], s["loss"]) for s in spikes] == [(30, None)]


# --- one sweep ----------------------------------------------------------------------------------------


def test_flag_cells_finds_the_planted_cell_and_nothing_in_a_smooth_sweep(tmp_path):
    assert flag_cells(make_sweep(tmp_path / "smooth", SMOOTH)) == []
    planted = dict(SMOOTH)
    planted[(16, 1)] = 2.6               # neighbours' medians: n=4 → 2.01, n=64 → 1.48
    flags = flag_cells(make_sweep(tmp_path / "planted", planted))
    assert [(f["cell"], f["kind"]) for f in flags] == [("n16_s1", "n_neighbour"), ("n16_s1", "seed_outlier")]
    assert flags[0]["excess"] == pytest.approx(2.6 - 2.01)
    assert flags[1]["excess"] == pytest.approx(2.6 - 1.50)


def test_a_seed_stuck_on_a_plateau_is_flagged_though_it_is_below_the_plain_model(tmp_path):
    # The real skip-8 sweep: seed 1 at n = 1 stayed at 10.5 while the other seeds reached 7.3. It is below
    # n = 0 (11.7), so no neighbour test sees it; against the other seeds of its n it stands out.
    stuck = dict(SMOOTH)
    stuck[(1, 1)] = 4.6
    flags = flag_cells(make_sweep(tmp_path / "stuck", stuck))
    assert [(f["cell"], f["kind"]) for f in flags] == [("n1_s1", "seed_outlier")]
    assert flags[0]["baseline"] == pytest.approx(3.0) and "median of the 3 seeds at n = 1" in flags[0]["message"]
    # of two seeds the median cannot say which one is off: nothing is flagged
    two = {k: v for k, v in stuck.items() if k[1] < 2}
    assert [f for f in flag_cells(make_sweep(tmp_path / "two", two)) if f["kind"] == "seed_outlier"] == []


def test_a_failed_cell_is_flagged(tmp_path):
    losses = dict(SMOOTH)
    losses[(4, 2)] = None
    flags = flag_cells(make_sweep(tmp_path / "s", losses))
    assert [(f["cell"], f["kind"]) for f in flags] == [("n4_s2", "failed")]
    assert "non-finite" in flags[0]["message"]


def test_training_spikes_are_read_from_metrics_jsonl(tmp_path):
    spiky = smooth_curve()
    spiky[80] += 2.0
    curves = {(4, 0): smooth_curve(seed=1), (4, 1): spiky}
    results = make_sweep(tmp_path / "s", SMOOTH, curves=curves)
    flags = flag_cells(results, read_curves(tmp_path / "s", results))
    assert [(f["cell"], f["kind"], f["step"]) for f in flags] == [("n4_s1", "training_spike", 81)]


def test_the_distance_report_lists_unstable_cells(tmp_path):
    planted = dict(SMOOTH)
    planted[(16, 1)] = 2.6
    make_sweep(tmp_path / "planted", planted)
    page = write_report(tmp_path / "planted").read_text()
    section = page.split("<h2>Unstable cells</h2>")[1].split("<h2>")[0]
    assert ">n16_s1<" in section and "n_neighbour" in section
    make_sweep(tmp_path / "smooth", SMOOTH)
    page = write_report(tmp_path / "smooth").read_text()
    assert "No cell flagged" in page.split("<h2>Unstable cells</h2>")[1].split("<h2>")[0]


# --- the lr × batch-size grid ----------------------------------------------------------------------------


def test_point_config_sets_lr_batch_size_and_out_and_keeps_the_rest(tmp_path):
    base = build_config(DistanceConfig, flags={"lr": 0.1, "batch_size": 8, "max_steps": 7, "seeds": 2,
                                               "task": {"name": "repetition", "num_eval": 5}})
    cfg = point_config(base, 0.03, 4, tmp_path / "p")
    assert (cfg.optim.lr, cfg.optim.batch_size, cfg.out) == (0.03, 4, str(tmp_path / "p"))
    assert (cfg.optim.max_steps, cfg.seeds, cfg.task.name, cfg.task.num_eval) == (7, 2, "repetition", 5)
    assert grid_point({"lr": 0.03, "batch_size": 4}) == (0.03, 4)
    assert grid_point({"optim": {"lr": 0.03, "batch_size": 4}}) == (0.03, 4)  # the sectioned layout


def make_grid(root: Path, planted: bool) -> Path:
    """Three learning rates at batch size 4, one seed; S(0.01) is 4, 4, 1 by construction."""
    curves = {0.01: [5.0, 3.0, 2.5, 2.5], 0.1: [5.0, 2.0, 1.5, 1.5], 1.0: [5.0, 1.5, 1.5, 1.5]}
    if planted:
        # lr 0.1 is worse than both neighbouring lrs at every n > 0, yet its own curve falls smoothly in n:
        # only the lr detector can see it.
        curves[0.1] = [5.0, 3.2, 2.7, 2.6]
    for lr, losses in curves.items():
        make_sweep(root / f"lr{lr:g}_bs4", {(n, 0): v for n, v in zip((0, 1, 4, 16), losses)}, lr=lr, batch_size=4,
                   epsilon=0.01)
    return root


def test_a_smooth_grid_has_no_unstable_point_and_reports_how_s_moves(tmp_path):
    result = analyze_grid(make_grid(tmp_path / "grid", planted=False))
    summary = strict_load(tmp_path / "grid" / "stability.json")
    assert summary == json.loads(json.dumps(result.summary))
    assert summary["lr_flags"] == [] and summary["unstable_points"] == []
    assert [p["absolute"]["label"] for p in summary["points"]] == ["4", "4", "1"]
    moved = summary["movement"]["absolute"]["all"]
    assert (moved["distinct"], moved["stable"], moved["S_min"], moved["S_max"], moved["spread_grid_steps"]) == \
        (["4", "1"], False, 1, 4, 1)
    assert (tmp_path / "grid" / "report" / "index.html").exists()
    assert (tmp_path / "grid" / "report" / "s_grid_absolute.png").exists()


def test_a_planted_lr_discontinuity_is_flagged_and_left_out_of_the_stable_movement(tmp_path):
    summary = analyze_grid(make_grid(tmp_path / "grid", planted=True)).summary
    assert [(f["folder"], f["n"]) for f in summary["lr_flags"]] == [("lr0.1_bs4", 1), ("lr0.1_bs4", 4),
                                                                     ("lr0.1_bs4", 16)]
    assert summary["lr_flags"][1]["excess"] == pytest.approx(0.2)   # 2.7 − max(2.5, 1.5)
    assert all(p["flags"] == [] for p in summary["points"])        # no cell is odd within its own sweep
    assert summary["unstable_points"] == ["lr0.1_bs4"]
    assert summary["movement"]["absolute"]["all"]["distinct"] == ["4", "> 4", "1"]
    assert summary["movement"]["absolute"]["stable_points"]["distinct"] == ["4", "1"]
    page = (tmp_path / "grid" / "report" / "index.html").read_text()
    assert "UNSTABLE" in page and "lr0.1_bs4" in page


def test_the_movement_table_counts_a_point_without_s_apart_from_not_reached(tmp_path):
    """Issue 29 #15: a point whose S could not be computed (its cells failed or are missing) is "no S", not
    "not reached" (S computed, the grid's last step still gains more than ε)."""
    root = tmp_path / "grid"
    points = {0.01: [5.0, 3.0, 2.5, 2.5],    # S = 4
              0.1: [5.0, 4.0, 3.0, 2.0],     # still 1 nat/token lower at n = 16: not reached
              1.0: [5.0, None, None, None]}  # every prompt length failed: no S at all
    for lr, losses in points.items():
        make_sweep(root / f"lr{lr:g}_bs4", {(n, 0): v for n, v in zip((0, 1, 4, 16), losses)}, lr=lr, batch_size=4,
                   epsilon=0.01)
    summary = analyze_grid(root).summary
    labels = {p["folder"]: p["absolute"]["label"] for p in summary["points"]}
    assert labels["lr0.01_bs4"] == "4" and labels["lr0.1_bs4"].startswith(">") and not labels["lr1_bs4"][0].isdigit()
    moved = summary["movement"]["absolute"]["all"]
    assert (moved["not_reached"], moved["no_S"]) == (1, 1)
    assert moved["spread_grid_steps"] == 2  # S = 4 (grid step 2) to not reached (step 4); the no-S point is no step
    page = (root / "report" / "index.html").read_text()
    assert ">not reached</th><th class=''>no S (cells missing)</th>" in page


def test_analyze_refuses_an_empty_folder_and_bad_grids(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SoftevalError, match="no finished distance sweeps"):
        analyze_grid(tmp_path / "empty")
    with pytest.raises(ConfigError, match="--lrs must be positive"):
        run_grid(DistanceConfig(), [0.1, -1], [4], tmp_path / "g")
    with pytest.raises(ConfigError, match="--batch-sizes must be positive"):
        run_grid(DistanceConfig(), [0.1], [0], tmp_path / "g")


def test_grid_on_the_tiny_model_end_to_end(tiny_model_dir, tmp_path, capsys):
    from softeval.engine.models import load_model

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TINY_TEXT * 3)
    base = build_config(DistanceConfig, flags={
        "model": str(tiny_model_dir), "device": "cpu", "precision": "fp32", "tokens": [0, 1], "seeds": 1,
        "max_steps": 3, "batch_size": 2, "warmup_steps": 0, "num_samples": 0, "bootstrap_samples": 20,
        "show_progress": False, "report": False,
        "task": {"name": "repetition", "corpus": str(corpus), "num_train": 4, "num_eval": 2, "context_tokens": 4,
                 "target_tokens": 2}})
    lm = load_model(str(tiny_model_dir), device="cpu", dtype="float32", show_progress=False)
    result = run_grid(base, [0.3, 0.05], [2], tmp_path / "grid", lm=lm)
    assert sorted(p.name for p in (tmp_path / "grid").iterdir() if p.name.startswith("lr")) == \
        ["lr0.05_bs2", "lr0.3_bs2"]
    for lr in (0.05, 0.3):
        stored = strict_load(tmp_path / "grid" / f"lr{lr:g}_bs2" / "results.json")
        assert grid_point(stored["config"]) == (lr, 2) and stored["complete"]
    summary = strict_load(tmp_path / "grid" / "stability.json")
    assert [p["lr"] for p in summary["points"]] == [0.05, 0.3] and summary == json.loads(json.dumps(result.summary))
    assert all(math.isfinite(p["loss_mean"]["1"]) for p in summary["points"])
    # Analysis only, through the CLI: the same folder, no training.
    assert main(["stability", "--out", str(tmp_path / "grid")]) == 0
    assert "grid point(s)" in capsys.readouterr().out


def test_cli_stability_builds_the_sweep_like_distance_and_keeps_the_base_batch_size(tiny_model_dir, tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TINY_TEXT * 3)
    code = main(["stability", "--model", str(tiny_model_dir), "--device", "cpu", "--precision", "fp32",
                 "--task", "repetition", "--corpus", str(corpus), "--num-train", "4", "--num-eval", "2",
                 "--context-tokens", "4", "--target-tokens", "2", "--tokens", "0,1", "--seeds", "1", "--steps", "2",
                 "--lrs", "0.1", "--out", str(tmp_path / "grid"), "--no-report", "-q",
                 "optim.batch_size=2", "optim.warmup_steps=0", "num_samples=0", "bootstrap_samples=10"])
    assert code == 0
    stored = strict_load(tmp_path / "grid" / "lr0.1_bs2" / "results.json")
    assert grid_point(stored["config"]) == (0.1, 2) and stored["config"]["optim"]["max_steps"] == 2
    assert (tmp_path / "grid" / "stability.json").exists() and not (tmp_path / "grid" / "report").exists()
    assert "unstable points: none" in capsys.readouterr().out
    assert main(["stability", "--out", str(tmp_path / "grid"), "--lrs", "0.1,x"]) == 2


# --------------------------------------------------------------------------- issue #29, defect 12


def test_a_grid_whose_sweeps_differ_in_more_than_lr_and_batch_size_is_refused(tmp_path):
    root = make_grid(tmp_path / "grid", planted=False)
    make_sweep(root / "lr0.3_bs4", {(n, 0): v for n, v in zip((0, 1, 4, 16), [5.0, 2.0, 1.5, 1.5])}, lr=0.3,
               batch_size=4, epsilon=0.01, max_steps=7)  # another step budget: not one sweep's grid
    with pytest.raises(SoftevalError, match=r"differ in more than lr and batch size \(optim\.max_steps"):
        analyze_grid(root)


def test_two_folders_of_one_grid_point_are_refused(tmp_path):
    root = make_grid(tmp_path / "grid", planted=False)
    make_sweep(root / "copy_of_lr0.1", {(n, 0): v for n, v in zip((0, 1, 4, 16), [5.0, 2.0, 1.5, 1.5])}, lr=0.1,
               batch_size=4, epsilon=0.01)
    with pytest.raises(SoftevalError, match="same grid point"):
        analyze_grid(root)


def test_a_grid_point_over_other_weights_is_refused(tmp_path):
    from softeval.store.identity import result_identity

    root = make_grid(tmp_path / "grid", planted=False)
    for i, folder in enumerate(sorted(p for p in root.iterdir() if p.is_dir())):
        facts = {"model_sha256": ("1" if i else "2") * 64, "weights_dtype": "float32", "precision": "fp32"}
        (folder / "identity.json").write_text(json.dumps(result_identity("distance", {}, facts)))
    with pytest.raises(SoftevalError, match="resolved.model_sha256"):
        analyze_grid(root)
