"""distance: the capability instrument. How many soft-prompt tokens does a behaviour need?

Owns the sweep over prompt lengths × seeds scored on one held-out set: its settings (`config`), which cells
train together (`plan`), scoring a cell and the reference model (`cells`), the command (`sweep`) and results.json
(`summary`); the saturation point S(ε) and its bootstrap interval (`saturation`), unstable-cell detectors
(`stability`), the learning-rate × batch-size grid (`grid`), its side of `softeval compare` (`compare`) and the
sweep report (`report`). It may import `softeval.train`, executors, tasks, the engine, reports and the store,
never bench; the CLI and `softeval.compare` import it.
"""

from softeval.distance.config import DistanceConfig
from softeval.distance.summary import format_table, summarize_sweep
from softeval.distance.sweep import SweepResult, run

__all__ = ["DistanceConfig", "SweepResult", "format_table", "run", "summarize_sweep"]
