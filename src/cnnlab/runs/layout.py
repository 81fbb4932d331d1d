"""The words of a run and a sweep folder, defined once: file and figure names, run
statuses, history columns and the metric table (name, direction, meaning).

Imports nothing of cnnlab: every part reads these names from here.
"""

from __future__ import annotations

import enum

# Files of a run folder
CONFIG_FILE = "config.yaml"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"  # written last: its presence marks a finished run
MODEL_FILE = "model.keras"
SUMMARY_FILE = "summary.txt"
STATUS_FILE = "status.json"  # while training, and after an interruption
ERROR_FILE = "error.json"  # a run of a sweep that failed
EVALUATION_FILE = "evaluation.json"
REPORT_FILE = "report.html"
CURVES_FILE = "curves.png"
CONFUSION_FILE = "confusion_matrix.png"
LEARNING_RATE_FILE = "learning_rate.png"
MLFLOW_FILE = "mlflow.json"
BACKUP_DIR = "backup"
TENSORBOARD_DIR = "tensorboard"
ACTIVATIONS_DIR = "activations"
# Files of a sweep folder
SWEEP_FILE = "sweep.yaml"
RESULTS_FILE = "results.csv"
SUMMARY_CSV_FILE = "summary.csv"
FINDINGS_FILE = "findings.md"
BEST_CONFIG_FILE = "best_config.yaml"
FAILURES_FILE = "failures.json"
LOCK_FILE = ".lock"
ACCURACY_FILE = "accuracy.png"
TIMING_FILE = "timing.png"
TIMING_TABLE_CSV_FILE = "timing_table.csv"
TIMING_TABLE_PNG_FILE = "timing_table.png"
SEARCH_HISTORY_FILE = "history.png"  # a search's
IMPORTANCE_FILE = "importance.png"  # a search's
HPARAMS_DIR = "hparams"

HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy",
                   "epoch_s", "train_s", "val_s", "ms_per_step", "learning_rate"]


class Status(enum.StrEnum):
    """How a run stands: the ``status`` of ``metrics.json``, ``status.json`` or a results row."""

    PENDING = "pending"
    RUNNING = "running"
    INTERRUPTED = "interrupted"
    FAILED = "failed"
    FINISHED = "finished"
    EARLY_STOPPED = "early_stopped"
    DIVERGED = "diverged"
    PRUNED = "pruned"  # a search's trial stopped by its pruner

    @property
    def finished(self) -> bool:
        """Training ended and metrics.json was written."""
        return self in (Status.FINISHED, Status.EARLY_STOPPED, Status.DIVERGED, Status.PRUNED)

    @property
    def ranked(self) -> bool:
        """Comparable with other runs (a diverged run is not)."""
        return self in (Status.FINISHED, Status.EARLY_STOPPED)
