"""S(ε) on constructed curves: flat, monotone, noisy non-monotone, never saturating."""

from __future__ import annotations

import math

import numpy as np
import pytest

from softeval.distance.saturation import (NOT_REACHED, bootstrap_saturation, per_seed_saturation, remaining_gain,
                                 saturation_point, saturation_summary, sensitivity_table)

NS = [0, 1, 4, 16, 64]


def test_remaining_gain_is_distance_to_best_later_point():
    assert remaining_gain([5.0, 3.0, 4.0, 2.5, 2.6]) == pytest.approx([2.5, 0.5, 1.5, 0.0, 0.0])


def test_flat_curve_saturates_at_zero_in_both_modes():
    flat = [3.0] * 5
    assert saturation_point(NS, flat, 0.01).S == 0
    assert saturation_point(NS, flat, 0.0).S == 0
    rel = saturation_point(NS, flat, 0.05, "relative")
    assert rel.S == 0 and rel.threshold == 0.0


def test_rising_curve_has_no_gain_and_saturates_at_zero():
    assert saturation_point(NS, [2.0, 2.1, 2.5, 3.0, 3.3], 0.01, "relative").S == 0


def test_monotone_curve_absolute_and_relative():
    curve = [10.0, 4.0, 1.0, 0.2, 0.19]
    assert saturation_point(NS, curve, 0.05).S == 16          # 0.2 - 0.19 = 0.01 <= 0.05
    assert saturation_point(NS, curve, 0.005).label == "> 16"  # last step still gains 0.01
    assert saturation_point(NS, curve, 1.0).S == 4            # 1.0 - 0.19 = 0.81 <= 1
    # relative to the total gain 9.81: ε = 0.1 → threshold 0.981
    rel = saturation_point(NS, curve, 0.1, "relative")
    assert rel.threshold == pytest.approx(0.981) and rel.S == 4
    assert saturation_point(NS, curve, 0.5, "relative").S == 1  # 4 - 0.19 = 3.81 <= 4.905


def test_noisy_non_monotone_curve_ignores_bumps_but_not_later_drops():
    # A bump at n=4 does not end saturation at n=1 if nothing later beats n=1 by more than ε ...
    bump = [5.0, 1.00, 1.30, 0.98, 1.01]
    assert saturation_point(NS, bump, 0.05).S == 1
    # ... but a later point that is much better does: the minimum is over all longer prompts.
    dip = [5.0, 1.00, 1.30, 0.50, 0.52]
    assert saturation_point(NS, dip, 0.05).S == 16


def test_never_saturating_curve_is_not_reached():
    steady = [8.0, 6.0, 4.0, 2.0, 0.5]
    sat = saturation_point(NS, steady, 0.1)
    assert sat.S is None and not sat.reached and sat.label == "> 16"
    assert saturation_point(NS, steady, 0.1, "relative").S is None  # threshold 0.75 < the last step's 1.5
    assert saturation_point(NS, steady, 0.5, "relative").S == 4      # threshold 3.75 >= 4.0 - 0.5
    assert saturation_point(NS, steady, 1.5).S == 16


def test_single_point_grid_cannot_saturate():
    sat = saturation_point([0], [3.0], 0.1)
    assert sat.S is None and sat.label == NOT_REACHED


@pytest.mark.parametrize("ns,losses", [([0, 1], [1.0]), ([4, 1], [1.0, 2.0]), ([0, 1], [1.0, math.nan])])
def test_bad_curves_are_rejected(ns, losses):
    with pytest.raises(ValueError):
        saturation_point(ns, losses, 0.1)


def test_per_seed_and_bootstrap_uncertainty():
    # Seed 0 saturates at 4, seed 1 only at 16; the shared n=0 column is the plain model.
    matrix = np.array([[6.0, 2.0, 0.50, 0.49, 0.48],
                       [6.0, 3.0, 1.50, 0.40, 0.39]])
    assert per_seed_saturation(NS, matrix, 0.05, "absolute") == [4, 16]
    boot = bootstrap_saturation(NS, matrix, 0.05, "absolute", samples=400)
    assert boot["samples"] == 400
    assert set(boot["distribution"]) <= {"4", "16"} and sum(boot["distribution"].values()) == pytest.approx(1.0)
    assert boot["interval90"] == ["4", "16"]
    # Deterministic: the bootstrap has its own fixed seed.
    assert bootstrap_saturation(NS, matrix, 0.05, "absolute", samples=400) == boot


def test_missing_cells_are_left_out():
    matrix = np.array([[6.0, 2.0, np.nan, 0.49, 0.48],
                       [6.0, 2.1, 0.52, np.nan, 0.50]])
    # seed 0 has no n=4 value: its curve is n = 0, 1, 16, 64; seed 1's is n = 0, 1, 4, 64
    assert per_seed_saturation(NS, matrix, 0.05, "absolute") == [16, 4]
    summary = saturation_summary(NS, matrix, 0.05, "absolute", bootstrap_samples=50)
    # mean curve: 6, 2.05, 0.52, 0.49, 0.49 → 0.52 - 0.49 = 0.03 <= 0.05, so 4
    assert summary["S"] == 4 and summary["per_seed"] == [16, 4]


def test_single_seed_bootstrap_is_a_point_mass_and_never_saturating_is_reported():
    matrix = np.array([[8.0, 6.0, 4.0, 2.0, 0.5]])
    boot = bootstrap_saturation(NS, matrix, 0.1, "absolute", samples=20)
    assert boot["distribution"] == {NOT_REACHED: 1.0} and boot["interval90"] == [NOT_REACHED, NOT_REACHED]


def test_sensitivity_table_is_monotone_in_epsilon():
    curve = np.array([[10.0, 4.0, 1.0, 0.2, 0.19]])
    rows = sensitivity_table(NS, curve, absolute=(0.001, 0.05, 1.0, 10.0), relative=(0.01, 0.5),
                             bootstrap_samples=10)
    assert [(r["mode"], r["label"]) for r in rows] == [
        ("absolute", "> 16"), ("absolute", "16"), ("absolute", "4"), ("absolute", "0"),
        ("relative", "16"), ("relative", "1")]  # relative 0.01 → 0.098 nats
