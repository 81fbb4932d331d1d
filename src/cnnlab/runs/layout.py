"""The words of a run and a sweep folder, defined once: file and figure names, run
statuses, history columns and the metric table (name, direction, meaning).

Imports nothing of cnnlab: every part reads these names from here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

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
SWEEP_CURVES_FILE = "curves.png"  # learning curves overlaid
ACCURACY_FILE = "accuracy.png"  # accuracy by run or arm
SEARCH_HISTORY_FILE = "history.png"  # a search: each trial's metric, best so far
IMPORTANCE_FILE = "importance.png"  # a search: which parameter mattered
STANDARDIZATION_FILE = "standardization.png"  # the reference study: pixels before/after
SWEEP_FILE = "sweep.yaml"
RESULTS_FILE = "results.csv"
SUMMARY_CSV_FILE = "summary.csv"
FINDINGS_FILE = "findings.md"
BEST_CONFIG_FILE = "best_config.yaml"
FAILURES_FILE = "failures.json"
LOCK_FILE = ".lock"
TIMING_FILE = "timing.png"  # time by batch size, beside the reference report's Table 1
TIMING_TABLE_CSV_FILE = "timing_table.csv"
TIMING_TABLE_MD_FILE = "timing_table.md"
TIMING_TABLE_PNG_FILE = "timing_table.png"
HPARAMS_DIR = "hparams"

EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")  # Keras' logs of an epoch
HISTORY_COLUMNS = ["epoch", *EPOCH_METRICS, "epoch_s", "train_s", "val_s", "ms_per_step",
                   "learning_rate"]


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


def ranked_status(status: object) -> bool:
    """A status as read from a file (any value) names a ranked run."""
    return status in Status.__members__.values() and Status(status).ranked


@dataclass(frozen=True)
class Metric:
    """A number a finished run records in metrics.json, and which way is better."""

    name: str
    direction: str  # "max" or "min"
    meaning: str

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "max"

    def better(self, a: float, b: float) -> bool:
        """``a`` is strictly better than ``b``."""
        return a > b if self.higher_is_better else a < b


METRICS = {m.name: m for m in (
    Metric("best_val_accuracy", "max", "best validation accuracy"),
    Metric("test_accuracy", "max", "test accuracy"),
    Metric("test_loss", "min", "test loss"),
    Metric("final_val_loss", "min", "final validation loss"),
    Metric("final_train_loss", "min", "final training loss"),
    Metric("best_epoch", "min", "epoch of the best validation accuracy"),
    Metric("overfit_epoch", "max", "epoch where over-fitting starts"),
    Metric("overfit_rise", "min", "rise of the validation loss after its lowest value"),
    Metric("epochs_run", "min", "epochs trained"),
    Metric("trainable_params", "min", "trainable parameters"),
    Metric("ms_per_step", "min", "training time per step (ms)"),
    Metric("s_per_epoch", "min", "training time per epoch (s)"),
    Metric("s_per_epoch_with_validation", "min", "time per epoch with validation (s)"),
    Metric("first_epoch_s", "min", "first epoch, graph tracing included (s)"),
)}
SELECTABLE = ("best_val_accuracy", "final_val_loss")  # what a sweep or search may select by
# What each file or view records of a finished run, by name from METRICS
RESULT_METRICS = ("best_val_accuracy", "best_epoch", "test_accuracy", "final_train_loss",
                  "final_val_loss", "overfit_epoch", "overfit_rise", "ms_per_step",
                  "s_per_epoch", "trainable_params")  # results.csv, before its status column
FINAL_METRICS = ("best_val_accuracy", "best_epoch", "test_accuracy", "test_loss",
                 "final_train_loss", "final_val_loss", "epochs_run", "trainable_params")
TIMING_METRICS = ("ms_per_step", "s_per_epoch", "s_per_epoch_with_validation", "first_epoch_s")
SUMMARY_METRICS = ("best_val_accuracy", "test_accuracy", "final_val_loss", "ms_per_step",
                   "s_per_epoch")  # summary.csv: mean, std, interval over repeats


def steps_per_epoch(examples: int, batch_size: int) -> int:
    """Training steps of one epoch: every example once, the last batch possibly partial."""
    return max(1, -(-examples // batch_size))


class Outcome(enum.StrEnum):
    """How an arm stands against another: summary.csv's ``vs_best``, the console, the
    findings and the pages (see docs/statistics.md)."""

    BEST = "best"
    BETTER = "better"
    WORSE = "worse"
    EQUIVALENT = "equivalent"  # within the declared margin (TOST)
    INCONCLUSIVE = "inconclusive"  # neither a difference nor an equivalence is shown
    DIVERGED = "diverged"  # at least one of the arm's runs diverged
