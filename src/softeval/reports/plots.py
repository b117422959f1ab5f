"""plots: matplotlib figures for reports, and their PNG bytes.

matplotlib is imported inside the functions, so importing a report module stays cheap for code that only
reads results.
"""

from __future__ import annotations

import io


def figure(width: float = 6.4, height: float = 4.0):
    """A (figure, axes) pair outside pyplot's global state, so a report never leaks open figures."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    return fig, fig.add_subplot(1, 1, 1)


def png(fig, crop: bool = False) -> bytes:
    """The figure as PNG bytes at 110 dpi. crop: cut the canvas to what was drawn (bbox 'tight'), for figures
    whose annotations overflow the axes; otherwise the layout is tightened and the canvas kept."""
    buf = io.BytesIO()
    if crop:
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    else:
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def plain_text(text) -> str:
    """User text for matplotlib: '$' would start mathtext (and an unbalanced one fails the plot)."""
    return str(text).replace("$", r"\$")


def short_name(model) -> str:
    """A model id's or path's last part, for a legend: 'HuggingFaceTB/SmolLM2-135M' → 'SmolLM2-135M'."""
    return str(model).rstrip("/").rsplit("/", 1)[-1]


def n_axis(ax, ns: list[int]) -> None:
    """Log-scale n that still shows n = 0: symlog is linear on [0, 1] and logarithmic above."""
    ax.set_xscale("symlog", linthresh=1, linscale=0.6)
    ax.set_xticks(ns)
    ax.set_xticklabels([str(n) for n in ns])
    ax.set_xlim(-0.3 if 0 in ns else None, max(ns) * 1.4 if max(ns) > 0 else 1)
    ax.set_xlabel("prompt length n (soft tokens; 0 = plain model)")
    ax.grid(True, alpha=0.3)


def maybe_log_y(ax, values: list[float]) -> None:
    """A log y axis when the positive values span more than 50×: a linear one would flatten all but the top."""
    positive = [v for v in values if v is not None and v > 0]
    if positive and max(positive) / min(positive) > 50:
        ax.set_yscale("log")


def loss_error_arms(means: list, stds: list, lows: list | None = None) -> list[list[float]]:
    """[lower, upper] arms of mean ± std error bars for a loss. A loss is never negative, and with three seeds of
    which one lags (0.002, 0.003, 0.108) mean − std is below zero: on a log axis that arm would run off the plot.
    Such a lower arm stops at the lowest seed instead (or at the mean when the lowest is unknown)."""
    lows = lows or [None] * len(means)
    lower = []
    for m, s, lo in zip(means, stds, lows):
        s = s or 0.0
        lower.append(s if m - s > 0 else (m - lo if lo is not None and lo <= m else 0.0))
    return [lower, [s or 0.0 for s in stds]]


__all__ = ["figure", "png", "plain_text", "short_name", "n_axis", "maybe_log_y", "loss_error_arms"]
