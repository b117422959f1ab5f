"""The benchmark modes: one place that names them, so the runner, reports, compare and tables agree.

No imports: compare and the report read these without pulling in lm-eval or torch.
"""

from __future__ import annotations

# zero-shot, k-shot, and the two tuned modes, in the order every table shows them.
MODES = ("zero", "few", "soft", "soft_cloze")

# Modes scored under a prompt tuned on the training split, over --tuning-seeds. "soft" learns the task's answer
# format (the generated letters) and is scored in every form; its prompt is not tuned for the cloze formulation
# (a letter-tuned prompt can pull cloze to chance: CommonsenseQA 40 % → 25 %), so "soft_cloze" tunes one on the
# cloze rendering itself and scores cloze alone: OLMES's best-of-formulations, each with its own prompt.
TUNED_MODES = ("soft", "soft_cloze")

# Modes that generate answers, so have a format-following rate: the benchmark paper's soft ≥ few ≥ zero.
FORMAT_MODES = ("zero", "few", "soft")

# Modes that score one formulation by design; it stands alone in the best-of-formulations comparison.
SINGLE_FORMULATION_MODES = ("soft_cloze",)

# The form a mode needs the task to have (a task without it skips the mode).
REQUIRED_FORM = {"soft_cloze": "ll_cloze"}
