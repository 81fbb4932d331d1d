"""Executors: train one sweep run into one folder and report how it ended, nothing else.

- :class:`InProcess` trains in this process, one run at a time.
- :class:`WorkerProcesses` trains runs whose TensorFlow CPU settings differ from this
  process's (:mod:`cnnlab.runtime`; fixed when TensorFlow is imported) in a ``spawn``
  worker process per settings group, each importing TensorFlow once and training every
  run that wants its settings; the runs wanting this process's settings stay here.
- :class:`cnnlab.ray_executor.RayExecutor` trains each run as a Ray task.

:func:`local` picks the first or the second for a sweep's pending runs. Every executor
returns a :class:`concurrent.futures.Future` that fails as ``training.train`` did.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from cnnlab import runtime
from cnnlab.config import Config
from cnnlab.runtime import Settings
from cnnlab.sweep_spec import SweepRun

Log = Callable[[str], None]


def train_run(config: Config, run_dir: Path, log: Log) -> None:
    """The one thing every executor does with a run."""
    from cnnlab import training  # imports TensorFlow: after the CPU settings are chosen

    training.train(config, run_dir, log=log)


class InProcess:
    """Trains each run in this process, when it is submitted."""

    name = "local"
    slots = 1

    def submit(self, run: SweepRun, run_dir: Path, log: Log) -> Future[None]:
        future: Future[None] = Future()
        try:
            train_run(run.config, run_dir, log)
            future.set_result(None)
        except Exception as exc:  # the runner decides what a failure means
            future.set_exception(exc)
        return future

    def close(self, cancel: bool = False) -> None:
        pass


class WorkerProcesses:
    """Runs wanting this process's CPU settings here; the others in one worker process per
    settings group, stopped after the last run that wants it."""

    name = "local"
    slots = 1

    def __init__(self, planned: Sequence[SweepRun]):
        self.here = InProcess()
        self.left = Counter(runtime.wanted(r.config.train) for r in planned)
        self.pools: dict[Settings, _Worker] = {}

    def submit(self, run: SweepRun, run_dir: Path, log: Log) -> Future[None]:
        settings = runtime.wanted(run.config.train)
        for idle in [s for s, left in self.left.items() if left <= 0 and s in self.pools]:
            self.pools.pop(idle).close()  # no run left for it: free its memory
        if settings == runtime.active():
            future = self.here.submit(run, run_dir, log)
        else:
            if settings not in self.pools:
                self.pools[settings] = _Worker(settings, log)
            future = self.pools[settings].submit(run, run_dir, log)
        future.add_done_callback(lambda _: self.left.subtract([settings]))
        return future

    def close(self, cancel: bool = False) -> None:
        for worker in list(self.pools.values()):
            worker.close(cancel)
        self.pools.clear()


def local(planned: Sequence[SweepRun]) -> InProcess | WorkerProcesses:
    """The local executor for these runs: this process gets the settings most of them want
    (when TensorFlow is not imported yet); worker processes only when some want others."""
    chosen = runtime.select_for(r.config for r in planned)
    if all(runtime.wanted(r.config.train) == chosen == runtime.active() for r in planned):
        return InProcess()
    return WorkerProcesses(planned)


class _Worker:
    """One ``spawn`` worker process with ``settings``; its log lines come back on a queue."""

    def __init__(self, settings: Settings, log: Log):
        context = multiprocessing.get_context("spawn")
        self.settings = settings
        self.queue: Any = context.Queue()
        self.pids: list[int] = []
        self.logs: dict[str, Log] = {}
        self.pool = self._new_pool(context)
        self.reader = threading.Thread(target=self._read_queue, daemon=True)
        self.reader.start()
        log(f"started a worker process with {settings.describe()} for the runs that want it")

    def _new_pool(self, context: Any) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(1, mp_context=context, initializer=_worker_start,
                                   initargs=(self.settings, self.queue))

    def submit(self, run: SweepRun, run_dir: Path, log: Log) -> Future[None]:
        self.logs[str(run_dir)] = log
        try:
            return self.pool.submit(_worker_train, run.config, str(run_dir))
        except BrokenProcessPool:  # the worker died (killed, out of memory): a new one
            self.pool = self._new_pool(multiprocessing.get_context("spawn"))
        return self.pool.submit(_worker_train, run.config, str(run_dir))

    def _read_queue(self) -> None:
        for kind, key, text in iter(self.queue.get, None):
            if kind == "pid":
                self.pids.append(int(text))
            elif key in self.logs:
                self.logs[key](text)

    def close(self, cancel: bool = False) -> None:
        if cancel:  # a run in flight saves its epochs and stops, as after Ctrl-C
            for pid in self.pids:
                _signal(pid, signal.SIGINT)
        self.pool.shutdown(wait=True, cancel_futures=cancel)
        self.queue.put(None)
        self.reader.join(timeout=10)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


# --- in the worker process ---

_QUEUE: Any = None


def _worker_start(settings: Settings, queue: Any) -> None:
    """Worker initializer: the CPU settings before TensorFlow's import; Ctrl-C ignored while
    idle (the runner decides), honoured while training."""
    global _QUEUE
    _QUEUE = queue
    runtime.select(settings)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    queue.put(("pid", "", str(os.getpid())))
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """A worker whose sweep process died (killed, say) stops at once rather than train on
    into a folder the next sweep will clear."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _worker_train(config: Config, run_dir: str) -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        train_run(config, Path(run_dir), lambda line: _QUEUE.put(("log", run_dir, line)))
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
