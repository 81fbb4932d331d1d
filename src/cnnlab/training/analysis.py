"""Pure functions of a training history."""

from __future__ import annotations

from collections.abc import Sequence


def overfitting_onset(train_loss: Sequence[float], val_loss: Sequence[float]) -> int | None:
    """The 1-based epoch where over-fitting starts, or None.

    Over-fitting starts at the epoch where the validation loss reaches its minimum
    when, after it, the validation loss stays above that minimum at every epoch while
    the training loss still falls (its last value is below its value at that epoch).
    A minimum at the last epoch, or a validation loss that returns to the minimum,
    means no over-fitting is seen. NaN losses count as never below the minimum.
    """
    values = [float(v) for v in val_loss]
    finite = [(v, i) for i, v in enumerate(values) if v == v]
    if len(finite) < 2 or len(train_loss) != len(values):
        return None
    best, at = min(finite)
    later = values[at + 1:]
    if not later or any(v == v and v <= best for v in later):
        return None
    if not float(train_loss[-1]) < float(train_loss[at]):
        return None
    return at + 1


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
