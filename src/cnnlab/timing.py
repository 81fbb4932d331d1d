"""The timing callback: wall time per epoch and per optimizer step, validation kept apart."""

from __future__ import annotations

import math
import time
from typing import Any

from cnnlab.tf import keras


class EpochTimer(keras.callbacks.Callback):
    """Records, per epoch, the training time (epoch start to validation start),
    the validation time, and milliseconds per optimizer step of training.

    Nothing runs per batch, so the timer adds no work to the hot path. The
    first epoch includes graph tracing and is reported apart by the caller.
    """

    def __init__(self, train_examples: int, batch_size: int):
        super().__init__()
        self.steps_per_epoch = max(1, math.ceil(train_examples / batch_size))
        self.rows: list[dict[str, float]] = []
        self._start = self._val_start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._start = time.perf_counter()
        self._val_start = 0.0

    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        if not self._val_start:
            self._val_start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        end = time.perf_counter()
        train_end = self._val_start or end
        train_s = train_end - self._start
        self.rows.append({
            "epoch_s": end - self._start,
            "train_s": train_s,
            "val_s": end - train_end,
            "ms_per_step": 1000.0 * train_s / self.steps_per_epoch,
        })
