"""Timing a run: wall time per epoch and per optimizer step (validation kept apart), and
wall time per phase of the whole run (:class:`Phases`)."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

from cnnlab.backend.tf import keras
from cnnlab.runs.layout import steps_per_epoch


class EpochTimer(keras.callbacks.Callback):
    """Records, per epoch, the training time (epoch start to validation start),
    the validation time, and milliseconds per optimizer step of training.

    Nothing runs per batch, so the timer adds no work to the hot path. The
    first epoch includes graph tracing and is reported apart by the caller.
    """

    def __init__(self, train_examples: int, batch_size: int):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch(train_examples, batch_size)
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


class TimeLeft(keras.callbacks.Callback):
    """A long training's progress: after an epoch, at most every ``every`` seconds, one
    line with the epochs done of all and the time left (the median epoch so far, tracing
    left out, times the epochs left). Short runs print nothing more."""

    def __init__(self, timer: EpochTimer, epochs: int, log: Callable[[str], None],
                 every: float = 30.0):
        super().__init__()
        self.timer, self.epochs, self.log, self.every = timer, epochs, log, every
        self._last = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        left = self.epochs - (epoch + 1)
        if left <= 0 or time.perf_counter() - self._last < self.every:
            return
        self._last = time.perf_counter()
        seconds = [r["epoch_s"] for r in self.timer.rows]
        per_epoch = statistics.median(seconds[1:] or seconds)
        self.log(f"epoch {epoch + 1}/{self.epochs}, about {_minutes(per_epoch * left)} left")


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


class Phases:
    """Wall seconds per phase of a run (data, build, epochs, checkpoints, plots, ...), in
    the order the phases first began; a phase timed twice adds up."""

    def __init__(self, **seconds: float):
        self.seconds: dict[str, float] = dict(seconds)

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def record(self) -> dict[str, float]:
        return {name: round(s, 4) for name, s in self.seconds.items()}


class CallbackTime:
    """The time Keras spends in the callbacks placed between :attr:`opening` and
    :attr:`closing` (at train begin, each epoch end and train end), added to a phase."""

    def __init__(self, phases: Phases, name: str):
        self.phases, self.name, self.started = phases, name, 0.0
        self.opening = _Mark(self._open)
        self.closing = _Mark(self._close)

    def _open(self) -> None:
        self.started = time.perf_counter()

    def _close(self) -> None:
        self.phases.add(self.name, time.perf_counter() - self.started)


class _Mark(keras.callbacks.Callback):
    def __init__(self, action: Callable[[], None]):
        super().__init__()
        self.action = action

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.action()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.action()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.action()
