"""Pure functions of a training history."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

PATIENCE = 4  # consecutive epochs the validation loss must stay up
TOLERANCE = 2.0  # how far up, in units of the validation loss's epoch-to-epoch noise
SMOOTHING = 3  # epochs in the centred moving average the rule reads
NOISE_FLOOR = 1e-3  # the smallest noise assumed, relative to the lowest validation loss
# The detector's calibration (tests/training/test_analysis.py, docs/statistics.md): bounds
# on how often it fires on a curve that does not over-fit, and finds one that does
FALSE_ALARM_RATE = 0.05
DETECTION_RATE = 0.90


def loss_noise(val_loss: Sequence[float]) -> float:
    """The epoch-to-epoch noise (standard deviation) of a validation-loss curve: from the
    median absolute second difference, which a smooth trend barely moves (white noise of
    deviation s gives second differences of deviation s * sqrt(6))."""
    values = np.asarray(val_loss, dtype=float)
    values = values[np.isfinite(values)]
    floor = NOISE_FLOOR * float(np.min(np.abs(values))) if len(values) else NOISE_FLOOR
    if len(values) < 3:
        return floor
    second = np.abs(np.diff(values, n=2))
    return max(1.4826 * float(np.median(second)) / math.sqrt(6), floor)


def smoothed(values: Sequence[float], width: int = SMOOTHING) -> list[float]:
    """Centred moving average (shorter at the ends); NaN where a window holds one."""
    half = width // 2
    return [float(np.mean(values[max(0, i - half):i + half + 1])) for i in range(len(values))]


def overfitting_onset(train_loss: Sequence[float], val_loss: Sequence[float]) -> int | None:
    """The 1-based epoch where over-fitting starts, or None.

    The validation loss, smoothed over :data:`SMOOTHING` epochs, must stay above its
    lowest value so far by more than :data:`TOLERANCE` times the curve's noise
    (:func:`loss_noise`) for :data:`PATIENCE` consecutive epochs, while the training loss
    still falls (lower at the last of them than before the first); over-fitting starts at
    the last epoch before them. A minimum that noise alone moved is not over-fitting:
    without the tolerance and the persistence, any curve that levels off would count.
    A NaN loss counts as above the minimum. Calibration: docs/statistics.md.
    """
    values = [float(v) for v in val_loss]
    if len(values) < PATIENCE + 1 or len(train_loss) != len(values) or \
            not any(v == v for v in values):
        return None
    margin = TOLERANCE * loss_noise(values)
    run, lowest = 0, math.inf
    for epoch, value in enumerate(smoothed(values)):
        if value == value and value <= lowest + margin:
            run, lowest = 0, min(lowest, value)
            continue
        run += 1 if lowest < math.inf else 0
        if run >= PATIENCE and float(train_loss[epoch]) < float(train_loss[epoch - run]):
            return epoch - run + 1
    return None


def overfitting_rise(val_loss: Sequence[float]) -> float | None:
    """How far the validation loss ends above its lowest value (0 when it ends there): the
    per-run amount of over-fitting that arms are compared on; None without finite values."""
    values = [float(v) for v in val_loss if v == v]
    return values[-1] - min(values) if values and val_loss[-1] == val_loss[-1] else None


def best_epoch(val_accuracy: Sequence[float]) -> int:
    """1-based epoch of the highest validation accuracy (the first one on ties)."""
    values = [float(v) if v == v else float("-inf") for v in val_accuracy]
    return max(range(len(values)), key=lambda i: (values[i], -i)) + 1


def per_class(y_true: Sequence[int], y_pred: Sequence[int],
              class_names: Sequence[str]) -> dict[str, dict[str, float | int]]:
    """Precision, recall, F1 and support of each class (0 where a class is never
    predicted)."""
    from sklearn.metrics import precision_recall_fscore_support

    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=list(range(len(class_names))), zero_division=0)
    return {name: {"precision": float(p), "recall": float(r), "f1": float(f),
                   "support": int(s)}
            for name, p, r, f, s in zip(class_names, precision, recall, f1, support,
                                        strict=True)}


def most_confused(matrix: Sequence[Sequence[int]], class_names: Sequence[str],
                  count: int = 5) -> list[dict[str, str | int]]:
    """The ``count`` largest off-diagonal cells of a confusion matrix (rows: true class),
    largest first; ties in class order."""
    cells = [(-int(matrix[i][j]), i, j) for i in range(len(matrix))
             for j in range(len(matrix)) if i != j and matrix[i][j] > 0]
    return [{"true": class_names[i], "predicted": class_names[j], "count": -n}
            for n, i, j in sorted(cells)[:count]]
