"""Figures of many runs: curve overlays and accuracy bars.

The numbers come from :mod:`cnnlab.sweep.results`; the ``plot_*`` functions only draw what
they are given; ``draw_all`` writes everything a sweep or a comparison gets.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from cnnlab.report.figures import save_figure  # noqa: E402
from cnnlab.runs import layout  # noqa: E402
from cnnlab.runs.layout import Status  # noqa: E402
from cnnlab.sweep.results import (  # noqa: E402
    Curves,
    arm_curves,
    ranked_status,
)
from cnnlab.sweep.stats import is_number  # noqa: E402


def _colours(n: int) -> list[Any]:
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20" if n <= 20 else "viridis")
    return [cmap(i if n <= 20 else i / max(n - 1, 1)) for i in range(n)]


# --- drawing ---

def plot_curve_overlay(curves: Sequence[Curves], path: Path, title: str) -> None:
    """Accuracy and loss, training and validation, of every run overlaid (one colour per
    run); a cross marks the epoch where over-fitting starts."""
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5), sharex=True)
    panels = [("accuracy", "training accuracy"), ("val_accuracy", "validation accuracy"),
              ("loss", "training loss"), ("val_loss", "validation loss")]
    handles = []
    for curve, colour in zip(curves, _colours(len(curves)), strict=True):
        epochs = [int(r["epoch"]) for r in curve.history]
        label = curve.label + ("" if ranked_status(curve.status) else f" ({curve.status})")
        for ax, (key, _) in zip(axes.flat, panels, strict=True):
            values = [float(r[key]) if is_number(r[key]) else float("nan") for r in curve.history]
            ax.plot(epochs, values, "o-", ms=2.5, lw=1.4, color=colour)
            if f"{key}_low" in curve.history[0]:  # an arm's mean: its 95 % interval shaded
                ax.fill_between(epochs, [r[f"{key}_low"] for r in curve.history],
                                [r[f"{key}_high"] for r in curve.history], color=colour,
                                alpha=0.18, lw=0)
            if curve.overfit_epoch and curve.overfit_epoch <= len(values):
                ax.plot(curve.overfit_epoch, values[curve.overfit_epoch - 1], "X", ms=10,
                        color=colour, markeredgecolor="black")
        handles.append(Line2D([], [], color=colour, marker="o", ms=4, label=label))
    if any(c.overfit_epoch for c in curves):
        handles.append(Line2D([], [], ls="", marker="X", ms=9, color="white",
                              markeredgecolor="black", label="over-fitting starts"))
    for ax, (_, name) in zip(axes.flat, panels, strict=True):
        ax.set_title(name.capitalize())
        ax.set_xlabel("epoch")
        ax.set_ylabel(name.split()[-1])
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(0.99, 0.5), fontsize=9,
               title="run")
    fig.suptitle(f"{title}: learning curves of every run")
    fig.tight_layout()
    save_figure(fig, path)


def plot_accuracy_bars(rows: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    """Best validation accuracy and test accuracy of each run, as horizontal bars."""
    labels = [str(r["run"]) + ("" if ranked_status(r["status"]) else f" ({r['status']})")
              for r in rows]
    val = [r["best_val_accuracy"] if is_number(r["best_val_accuracy"]) else 0.0 for r in rows]
    test = [r["test_accuracy"] if is_number(r["test_accuracy"]) else 0.0 for r in rows]
    positions = range(len(rows))
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.5 * len(rows)))
    ax.barh([p - 0.2 for p in positions], val, height=0.4, label="best validation accuracy",
            color="tab:blue")
    ax.barh([p + 0.2 for p in positions], test, height=0.4, label="test accuracy",
            color="tab:orange")
    for p, v, t in zip(positions, val, test, strict=True):
        ax.text(v + 0.005, p - 0.2, f"{v:.3f}", va="center", fontsize=8)
        ax.text(t + 0.005, p + 0.2, f"{t:.3f}", va="center", fontsize=8)
    ax.set_yticks(list(positions), labels)
    ax.invert_yaxis()
    ax.set_xlim(0, min(1.05, max([*val, *test, 0.1]) * 1.25))  # room for the labels
    ax.set_xlabel("accuracy")
    ax.set_ylabel("run")
    ax.set_title(f"{title}: accuracy by run")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # beside: hides no bar
    save_figure(fig, path)


def plot_arm_accuracy(summary: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    """Mean best validation accuracy and test accuracy of each arm with 95 % intervals."""
    rows = [r for r in summary if r["best_val_accuracy_mean"] is not None]
    positions = range(len(rows))
    right = min(1.0, max([r["best_val_accuracy_mean"] for r in rows] + [0.1]) * 1.25)
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.55 * len(rows)))
    for offset, metric, name, colour in ((-0.2, "best_val_accuracy", "best validation "
                                          "accuracy", "tab:blue"),
                                         (0.2, "test_accuracy", "test accuracy", "tab:orange")):
        means = [r[f"{metric}_mean"] for r in rows]
        errors = [[m - (r[f"{metric}_ci_low"] if r[f"{metric}_ci_low"] is not None else m)
                   for m, r in zip(means, rows, strict=True)],
                  [(r[f"{metric}_ci_high"] if r[f"{metric}_ci_high"] is not None else m) - m
                   for m, r in zip(means, rows, strict=True)]]
        ax.barh([p + offset for p in positions], means, height=0.4, xerr=errors, capsize=3,
                label=f"{name} (mean, 95 % CI)", color=colour)
        for p, m, high in zip(positions, means, errors[1], strict=True):
            # inside the axes even when the interval runs past them (a few repeats): a
            # label outside would widen the saved figure many times over
            ax.text(min(m + high + 0.005, right * 0.93), p + offset, f"{m:.3f}",
                    va="center", fontsize=8)
    ax.set_yticks(list(positions), [f"{r['arm']} (n={r['n']})"
                                    + (f" ({r['vs_best']})" if r["vs_best"] else "")
                                    for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, right)
    ax.set_xlabel("accuracy")
    ax.set_title(f"{title}: accuracy by arm (mean of repeats, 95 % interval)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    save_figure(fig, path)


def draw_all(out_dir: Path, title: str, rows: Sequence[dict[str, Any]], params: list[str],
             curves: Sequence[Curves], summary: Sequence[dict[str, Any]] | None = None
             ) -> list[Path]:
    """Every figure for these runs; with a per-arm ``summary`` (repeats), one mean curve
    and bar per arm with its 95 % interval.
    Returns the files written."""
    written = []
    if curves:
        shown = arm_curves(curves, rows) if summary else curves
        plot_curve_overlay(shown, out_dir / layout.SWEEP_CURVES_FILE, title)
        written.append(out_dir / layout.SWEEP_CURVES_FILE)
    done = [r for r in rows if r["status"] not in (Status.PENDING, Status.FAILED)]
    if done:
        if summary:
            plot_arm_accuracy(summary, out_dir / layout.ACCURACY_FILE, title)
        else:
            plot_accuracy_bars(done, out_dir / layout.ACCURACY_FILE, title)
        written.append(out_dir / layout.ACCURACY_FILE)
    return written
