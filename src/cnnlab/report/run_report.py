"""The figures and page of one run, drawn from its record: called by whoever trains
(training never draws), before metrics.json marks the run finished."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from cnnlab.report import figures, pages
from cnnlab.runs import layout, load

Log = Callable[[str], None]


def draw_figures(run: load.Run) -> None:
    """curves.png, learning_rate.png and, with a test evaluation, confusion_matrix.png."""
    title, metrics, rows = run.name, run.metrics, run.history
    figures.plot_curves(rows, run.path / layout.CURVES_FILE, title,
                        best_epoch=metrics["best_epoch"], overfit_epoch=metrics["overfit_epoch"])
    figures.plot_learning_rate(rows, run.path / layout.LEARNING_RATE_FILE, title)
    if metrics.get("confusion_matrix") is not None:
        acc = metrics["test_accuracy"]
        figures.plot_confusion_matrix(
            np.array(metrics["confusion_matrix"]), metrics["data"]["class_names"],
            run.path / layout.CONFUSION_FILE,
            f"{title}: test set confusion matrix (accuracy {acc:.3f})")


def drawer(log: Log = print) -> Callable[[load.Run, Any], None]:
    """What a training run is handed to draw its figures and page, each a timed phase."""
    def draw(run: load.Run, phases: Any) -> None:
        with phases("plots"):
            draw_figures(run)
        with phases("report"):
            run.metrics["phases"] = phases.record()
            try:
                pages.write_run_page(run)
            except Exception as exc:  # noqa: BLE001 - the run is not lost for want of a page
                log(f"report.html not written for {run.path}: {type(exc).__name__}: {exc}")
    return draw
