"""The class claims' runs on the whole test pool (the best model's sweep).

Each finished run's kept model predicts every test image its splits draw from, so that
every run is tested on the same images and the pool's own noise is measured image by
image (:func:`cnnlab.reproduce.verdicts.image_variances`) instead of bounded by the
binomial p (1 - p), which on the full copy is 2.3 to 4 times what is measured
(``benchmarks/results/pool-noise-20261130.md``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.errors import DataError, RunError
from cnnlab.runs import layout, load

MOST_BYTES = 1 << 30  # a pool whose standardized images take more: each run's own test set


@dataclass(frozen=True)
class PoolPredictions:
    """Each run's predicted class of every pool image (runs x images), and the labels."""

    predicted: np.ndarray
    labels: np.ndarray

    def matrices(self, classes: int) -> list[list[list[int]]]:
        """Each run's confusion matrix on the pool (true class x predicted class)."""
        found = np.zeros((len(self.predicted), classes, classes), dtype=int)
        for run, predicted in enumerate(self.predicted):
            np.add.at(found[run], (self.labels, predicted), 1)
        return found.tolist()


def predict(run_dirs: list[Path]) -> PoolPredictions | None:
    """Every run's predictions on the whole test pool of its data; None (the claims then
    use each run's own test set) when a run has no loadable model, the runs' data differ
    or changed since, or the pool takes more than :data:`MOST_BYTES`."""
    stamps = tuple((str(d), (d / layout.MODEL_FILE).stat().st_mtime_ns
                    if (d / layout.MODEL_FILE).exists() else 0) for d in run_dirs)
    return _predicted(stamps) if run_dirs else None


@functools.lru_cache(maxsize=4)
def _predicted(stamps: tuple[tuple[str, int], ...]) -> PoolPredictions | None:
    """:func:`predict` of the runs named in ``stamps`` (with their models' times, so a
    model written again is predicted again)."""
    try:
        runs = [load.read_run(path) for path, _ in stamps]
        if len({_fingerprint(r.metrics) for r in runs}) != 1:
            return None
        pool = load.load_run_test_pool(runs[0], MOST_BYTES, log=lambda _: None)
        if pool is None:
            return None
        images, labels = pool
        predicted = [np.argmax(load.load_run_model(run).predict(images, batch_size=1000,
                                                                  verbose=0), axis=1)
                     for run in runs]
    except (RunError, DataError):
        return None
    return PoolPredictions(np.stack(predicted), labels)


def _fingerprint(metrics: dict[str, Any]) -> Any:
    return (metrics.get("data") or {}).get("fingerprint")
