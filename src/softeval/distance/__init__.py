"""distance: the capability instrument. How many soft-prompt tokens does a behaviour need?

Owns the sweep over prompt lengths × seeds scored on one held-out set (`sweep`), the saturation point S(ε) and
its bootstrap interval (`saturation`), unstable-cell detectors (`stability`), the learning-rate × batch-size grid
(`grid`) and the sweep report (`report`). It may import the engine, tasks, store, executors and `softeval.train`;
the CLI imports it.
"""

from softeval.distance.sweep import DistanceConfig, SweepResult, format_table, run, summarize_sweep

__all__ = ["DistanceConfig", "SweepResult", "format_table", "run", "summarize_sweep"]
