"""Executors: train one sweep run into one folder and report how it ended, nothing else.

- :class:`InProcess` trains in this process, one run at a time.
- :class:`WorkerProcesses` trains runs in ``spawn`` worker processes that live for the
  sweep, grouped by the TensorFlow CPU settings the runs want (:mod:`cnnlab.backend.runtime`;
  fixed when a process imports TensorFlow), each importing TensorFlow once and training
  every run that wants its settings. With one job, the runs wanting this process's
  settings stay here and runs go one after another; with several (``--jobs``), every run
  goes to a worker and up to that many train at once.
- :class:`cnnlab.sweep.ray.RayExecutor` trains each run as a Ray task.

:func:`local` picks the first or the second for a sweep's pending runs
(:func:`cnnlab.sweep.capacity.plan` decides how many train at once). Every
executor returns a :class:`concurrent.futures.Future` that fails as ``training.train``
did, and says with ``fits`` whether a run may start beside the ones in flight.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.backend import runtime
from cnnlab.backend.runtime import Settings
from cnnlab.config.schema import Config
from cnnlab.data import dataset as data
from cnnlab.errors import ConfigError, DataError
from cnnlab.report.run_report import drawer
from cnnlab.sweep.capacity import ALL_CORES_AT_ONCE
from cnnlab.sweep.search import pruning
from cnnlab.sweep.spec import SweepRun

Log = Callable[[str], None]


@dataclass(frozen=True)
class LocalOptions:
    """``--backend local``: runs trained at once, a number or ``auto``; ``timed``: their
    step times are results (an all-cores run then trains alone)."""

    jobs: int | str = 1
    timed: bool = False


def local_options(jobs: int | str, ray_options_given: Sequence[str] = ()) -> LocalOptions:
    """The local backend's options; Ray's options given without ``--backend ray`` are an
    error rather than silently ignored."""
    if ray_options_given:
        them = "them" if len(ray_options_given) > 1 else "it"
        raise ConfigError(f"{', '.join(ray_options_given)}: only used with --backend ray "
                          f"(backend local ignores {them}); add --backend ray, or drop "
                          f"{them} to train on this machine")
    return LocalOptions(jobs)


def train_run(run: SweepRun, run_dir: Path, log: Log) -> None:
    """The one thing every executor does with a run (a search's trial: with its pruner),
    with the compiled models this process keeps between its runs."""
    check = pruning.stop_check(run.trial) if run.trial else None
    _training().train(run.config, run_dir, log=log, stop_check=check, draw=drawer(log),
                      warm=_warm_models())


@functools.cache
def _warm_models() -> Any:
    """This process's kept models (:mod:`cnnlab.training.warm_models`), made on first use:
    after TensorFlow's import, which follows the process's CPU settings."""
    from cnnlab.training.warm_models import WarmModels

    return WarmModels()


def _training() -> Any:
    """:mod:`cnnlab.training.loop`, imported on first use: it imports TensorFlow, which must
    come after the process's CPU settings are chosen."""
    from cnnlab.training import loop as training

    return training


class InProcess:
    """Trains each run in this process, when it is submitted."""

    name = "local"
    slots = 1

    def fits(self, run: SweepRun, busy: Sequence[SweepRun]) -> bool:
        return not busy

    def prepare(self, run: SweepRun, busy: Sequence[SweepRun]) -> None:
        pass

    def submit(self, run: SweepRun, run_dir: Path, log: Log) -> Future[None]:
        future: Future[None] = Future()
        try:
            train_run(run, run_dir, log)
            future.set_result(None)
        except Exception as exc:  # the runner decides what a failure means
            future.set_exception(exc)
        return future

    def close(self, cancel: bool = False) -> None:
        pass


class WorkerProcesses:
    """Worker processes per settings group, stopped after the last run that wants them.

    ``jobs`` runs at most at once; with ``cores`` (``--jobs auto``) they are also packed
    by the threads they use: one-thread runs side by side, all-cores runs
    ``all_cores_at_once`` at a time. With one job, the runs wanting this process's settings
    are trained here.
    """

    name = "local"

    def __init__(self, planned: Sequence[SweepRun], jobs: int = 1, cores: int | None = None,
                 all_cores_at_once: int = ALL_CORES_AT_ONCE):
        """``planned``: the runs to come, or empty when they are not known in advance (a
        search): then a settings group's workers stay until the sweep ends."""
        self.slots, self.cores, self.all_cores_at_once = jobs, cores, all_cores_at_once
        self.here = InProcess() if jobs == 1 else None
        self.left = Counter(runtime.wanted(r.config.train) for r in planned)
        self.known = bool(planned)
        self.pools: dict[Settings, _Worker] = {}

    def _processes(self, settings: Settings) -> int:
        """Worker processes for a settings group: as many as may train at once."""
        wanting = self.left[settings] if self.known else self.slots
        return max(1, min(self.slots, wanting, (self.cores or self.slots) // self._cost(settings)))

    def _cost(self, settings: Settings) -> int:
        """Cores a run with ``settings`` counts for when runs are packed."""
        if settings.threads:
            return settings.threads
        return -(-self.cores // self.all_cores_at_once) if self.cores else 1

    def fits(self, run: SweepRun, busy: Sequence[SweepRun]) -> bool:
        if not busy:
            return True
        if len(busy) >= self.slots:
            return False
        if self.cores is None:
            return True
        return self._used(busy) + self._cost(runtime.wanted(run.config.train)) <= self.cores

    def _used(self, busy: Sequence[SweepRun]) -> int:
        """Cores the ``busy`` runs' threads take."""
        return sum(self._cost(runtime.wanted(b.config.train)) for b in busy)

    def prepare(self, run: SweepRun, busy: Sequence[SweepRun]) -> None:
        """``run`` waits for cores the ``busy`` runs hold: if one is idle meanwhile, start
        the worker ``run`` will want, so that its TensorFlow import overlaps their training
        (silently, as every worker of runs side by side starts)."""
        settings = runtime.wanted(run.config.train)
        # cores are packed only with --jobs auto, where every run goes to a worker
        if self.cores is not None and settings not in self.pools and (
                self._used(busy) < self.cores):
            self._pool(settings, lambda line: None).warm()

    def _pool(self, settings: Settings, log: Log) -> _Worker:
        if settings not in self.pools:
            self.pools[settings] = _Worker(settings, self._processes(settings),
                                           quiet=self.slots > 1, log=log)
        return self.pools[settings]

    def submit(self, run: SweepRun, run_dir: Path, log: Log) -> Future[None]:
        settings = runtime.wanted(run.config.train)
        for idle in [s for s, left in self.left.items()
                     if self.known and left <= 0 and s in self.pools]:
            self.pools.pop(idle).close()  # no run left for it: free its memory
        if self.here and settings == runtime.active():
            future = self.here.submit(run, run_dir, log)
        else:
            future = self._pool(settings, log).submit(run, run_dir, log)
        future.add_done_callback(lambda _: self.left.subtract([settings]))
        return future

    def close(self, cancel: bool = False) -> None:
        for worker in list(self.pools.values()):
            worker.close(cancel)
        self.pools.clear()


def local(planned: Sequence[SweepRun], jobs: int = 1, cores: int | None = None,
          log: Log = print, unplanned: Config | None = None,
          all_cores_at_once: int = ALL_CORES_AT_ONCE) -> InProcess | WorkerProcesses:
    """The local executor for these runs. One job: this process gets the settings most of
    them want (when TensorFlow is not imported yet), worker processes only the others.
    Several: every run in a worker, ``jobs`` at once (packed onto ``cores`` if given).
    ``unplanned``: the runs are not known yet (a search); this config stands for them."""
    if unplanned is not None:
        warm_cache([unplanned], log)
        runtime.select(runtime.wanted(unplanned.train))
        return WorkerProcesses([], jobs, cores, all_cores_at_once)
    if jobs > 1:
        warm_cache([r.config for r in planned], log)
        return WorkerProcesses(planned, jobs, cores, all_cores_at_once)
    chosen = runtime.select_for(r.config for r in planned)
    if all(runtime.wanted(r.config.train) == chosen == runtime.active() for r in planned):
        return InProcess()
    return WorkerProcesses(planned)


def warm_cache(configs: Sequence[Config], log: Log) -> None:
    """Decode each distinct data set once here, so that workers only read the cache. A
    data set that cannot be read is left to its runs, which fail (and are recorded)."""
    seen, said = set(), set()

    def once(line: str) -> None:  # every repeat's own split says where the data came from
        if line not in said:
            said.add(line)
            log(line)

    for config in configs:
        cfg = config.data
        if cfg.cache and cfg not in seen:
            seen.add(cfg)
            try:
                data.read_cached(data.locate(cfg, once).path, cfg, once)
            except (DataError, OSError):
                continue


# --- how many runs at once ---

class _Worker:
    """One ``spawn`` worker process with ``settings``; its log lines come back on a queue."""

    def __init__(self, settings: Settings, processes: int, quiet: bool, log: Log):
        context = multiprocessing.get_context("spawn")
        self.settings, self.processes, self.quiet = settings, processes, quiet
        self.queue: Any = context.Queue()
        self.pids: list[int] = []
        self.logs: dict[str, Log] = {}
        self.pool = self._new_pool(context)
        self.reader = threading.Thread(target=self._read_queue, daemon=True)
        self.reader.start()
        started = ("started a worker process" if processes == 1 else
                   f"started worker processes (up to {processes})")
        log(f"{started} with {settings.describe()} for the runs that want it")

    def _new_pool(self, context: Any) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.processes, mp_context=context, initializer=_worker_start,
                                   initargs=(self.settings, self.queue, self.quiet, os.getpid()))

    def submit(self, run: SweepRun, run_dir: Path, log: Log) -> Future[None]:
        self.logs[str(run_dir)] = log
        try:
            return self.pool.submit(_worker_train, run, str(run_dir))
        except BrokenProcessPool:  # the worker died (killed, out of memory): a new one
            self.pool = self._new_pool(multiprocessing.get_context("spawn"))
        return self.pool.submit(_worker_train, run, str(run_dir))

    def warm(self) -> Future[None]:
        """Start a worker process now and import TensorFlow there."""
        return self.pool.submit(_worker_warm)

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


def _worker_start(settings: Settings, queue: Any, quiet: bool, parent: int) -> None:
    """Worker initializer: the CPU settings before TensorFlow's import; Ctrl-C ignored while
    idle (the runner decides), honoured while training; ``quiet``: no Keras progress lines
    (runs side by side would interleave them)."""
    global _QUEUE
    _QUEUE = queue
    if quiet:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 -- the worker's whole life
    runtime.select(settings)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    queue.put(("pid", "", str(os.getpid())))
    # the sweep's pid, not os.getppid(): a worker spawned just before its sweep was killed
    # starts with another parent already
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """A worker whose sweep process died (killed, say) stops at once rather than train on
    into a folder the next sweep will clear."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _worker_warm() -> None:
    _training()


def _worker_train(run: SweepRun, run_dir: str) -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        train_run(run, Path(run_dir), lambda line: _QUEUE.put(("log", run_dir, line)))
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
