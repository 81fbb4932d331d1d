"""Figures of a search: the metric of each trial with the best so far, and the
parameter importances (matplotlib, Agg; computed by :mod:`cnnlab.sweep.search.trials`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.ticker import MaxNLocator

from cnnlab.report.figures import plt, save_figure
from cnnlab.runs.layout import Status

# Optuna's trial states, drawn with our words for them
STATE_STYLE = {"complete": ("o", "tab:blue", Status.FINISHED.value),
               "pruned": ("x", "tab:orange", f"{Status.PRUNED.value} (last reported epoch)"),
               "fail": ("s", "tab:red", Status.FAILED.value)}


def plot_history(points: Sequence[tuple[int, float | None, str]], metric: str,
                 maximize: bool, path: Path, title: str) -> None:
    """Each trial's ``metric`` in order (pruned: its last reported value) and the best
    finished value so far."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for state, (marker, color, label) in STATE_STYLE.items():
        shown = [(n, v) for n, v, s in points if s == state and v is not None]
        if shown:
            ax.plot(*zip(*shown, strict=True), marker, color=color, ls="", label=label)
    best, steps = None, []
    for number, value, state in points:
        if state == "complete" and value is not None:
            best = value if best is None else (max if maximize else min)(best, value)
        steps.append((number, best))
    drawn = [(n, b) for n, b in steps if b is not None]
    if drawn:
        ax.step(*zip(*drawn, strict=True), where="post", color="tab:green", label="best so far")
    ax.set_xlabel("trial")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(metric)
    ax.set_title(f"{title}: {metric} by trial")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_importance(importance: Mapping[str, float], evaluator: str, trials: int,
                    path: Path, title: str) -> None:
    """Each parameter's share of the metric's variance, largest on top."""
    names = sorted(importance, key=importance.get)
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(names) + 1.8))
    ax.barh(names, [importance[n] for n in names], color="tab:blue")
    for y, name in enumerate(names):
        ax.text(importance[name], y, f" {importance[name]:.2f}", va="center", fontsize=8)
    ax.set_xlabel(f"importance ({evaluator}, {trials} finished trials; sums to 1)")
    ax.set_xlim(0, max(1.0, max(importance.values()) * 1.15))
    ax.set_title(f"{title}: which parameter mattered")
    ax.grid(alpha=0.3, axis="x")
    save_figure(fig, path)
