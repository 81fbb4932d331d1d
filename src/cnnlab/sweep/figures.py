"""Figures of many runs: curve overlays, accuracy bars, batch-size timing.

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
from cnnlab.runs import layout, storage  # noqa: E402
from cnnlab.runs.layout import Status  # noqa: E402
from cnnlab.sweep.results import (  # noqa: E402
    TIMING_COLUMNS,
    Curves,
    arm_curves,
    ranked_status,
    report_table1,
    summary_timing_rows,
    timing_markdown,
    timing_rows,
)


def _colours(n: int) -> list[Any]:
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20" if n <= 20 else "viridis")
    return [cmap(i if n <= 20 else i / max(n - 1, 1)) for i in range(n)]


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and value == value


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
            values = [float(r[key]) if _finite(r[key]) else float("nan") for r in curve.history]
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
    val = [r["best_val_accuracy"] if _finite(r["best_val_accuracy"]) else 0.0 for r in rows]
    test = [r["test_accuracy"] if _finite(r["test_accuracy"]) else 0.0 for r in rows]
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
    tied = {True: " (tied with best)", False: "", None: ""}
    ax.set_yticks(list(positions), [f"{r['arm']} (n={r['n']})"
                                    + (" (best)" if r["rank"] == 1 else tied[r["tied_with_best"]])
                                    for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, right)
    ax.set_xlabel("accuracy")
    ax.set_title(f"{title}: accuracy by arm (mean of repeats, 95 % interval)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    save_figure(fig, path)


def plot_timing(table: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    """ms/step and s/epoch against batch size (log-2 axis), with the report's figures."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    reference = report_table1()
    groups = list(dict.fromkeys(r["variant"] for r in table))
    for ax, key, name in ((axes[0], "ms_per_step", "time per step (ms)"),
                          (axes[1], "s_per_epoch", "time per epoch (s)")):
        for group in groups:
            rows = [r for r in table if r["variant"] == group]
            ax.errorbar([r["batch_size"] for r in rows], [r[key] for r in rows],
                        yerr=[r.get(f"{key}_err", 0.0) for r in rows], fmt="o-", capsize=3,
                        label=f"this machine{f' ({group})' if group else ''}")
        report = [(b, v[0 if key == "ms_per_step" else 1]) for b, v in reference.items()]
        ax.plot(*zip(*report, strict=True), "s--", color="grey", alpha=0.7,
                label="report (Table 1)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({r["batch_size"] for r in table} | set(reference)))
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel("batch size (log 2 scale)")
        ax.set_ylabel(name)
        ax.set_title(f"{name.capitalize()} by batch size")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{title}: training time (validation excluded)")
    fig.tight_layout()
    save_figure(fig, path)


def plot_timing_table(table: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    """Table 1 drawn as a figure: this machine's timings next to the report's."""
    head = ["batch", "ms / step", "s / epoch", "report ms / step", "report s / epoch"]
    variants = any(r["variant"] for r in table)
    if variants:
        head = ["variant", *head]
    cells = [([r["variant"]] if variants else []) + [
        r["batch_size"], f"{r['ms_per_step']:.2f}", f"{r['s_per_epoch']:.2f}",
        r["report_ms_per_step"], r["report_s_per_epoch"]] for r in table]
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.32 * len(cells)))
    ax.axis("off")
    drawn = ax.table(cellText=[[str(c) for c in row] for row in cells], colLabels=head,
                     loc="center", cellLoc="center")
    drawn.scale(1, 1.3)
    for (row, _), cell in drawn.get_celld().items():
        if row == 0:
            cell.set_text_props(weight="bold")
            cell.set_facecolor("#e8e8e8")
    ax.set_title(f"{title}: Table 1, time per step and per epoch by batch size", fontsize=10)
    save_figure(fig, path)


def draw_all(out_dir: Path, title: str, rows: Sequence[dict[str, Any]], params: list[str],
             curves: Sequence[Curves], summary: Sequence[dict[str, Any]] | None = None
             ) -> list[Path]:
    """Every figure (and the timing table) for these runs; with a per-arm ``summary``
    (repeats), one mean curve, bar and timing point per arm with its 95 % interval.
    Returns the files written."""
    written = []
    if curves:
        shown = arm_curves(curves, rows) if summary else curves
        plot_curve_overlay(shown, out_dir / "curves.png", title)
        written.append(out_dir / "curves.png")
    done = [r for r in rows if r["status"] not in (Status.PENDING, Status.FAILED)]
    if done:
        if summary:
            plot_arm_accuracy(summary, out_dir / layout.ACCURACY_FILE, title)
        else:
            plot_accuracy_bars(done, out_dir / layout.ACCURACY_FILE, title)
        written.append(out_dir / layout.ACCURACY_FILE)
    table = [] if "train.batch_size" not in params else (
        summary_timing_rows(summary) if summary else timing_rows(done))
    if len({r["batch_size"] for r in table}) >= 2:
        storage.write_csv(out_dir / "timing_table.csv", table, TIMING_COLUMNS)
        storage.write_atomic(out_dir / "timing_table.md", timing_markdown(table))
        plot_timing(table, out_dir / "timing.png", title)
        plot_timing_table(table, out_dir / "timing_table.png", title)
        written += [out_dir / n for n in ("timing_table.csv", "timing_table.md", "timing.png",
                                          "timing_table.png")]
    return written
