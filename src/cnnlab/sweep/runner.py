"""Running a sweep's plan: what is pending, one failure policy, results after every run.

The runner owns the sweep folder while it runs (``.lock``), keeps finished runs
(resume), clears the partial folder of an unfinished run before training it again,
records every outcome (finished / diverged / early_stopped, failed, interrupted) and
rewrites ``results.csv`` after each run. It hands runs to an :class:`Executor` and does
not know which one it has (:mod:`cnnlab.sweep.executors`, :mod:`cnnlab.sweep.ray`).

Failure policy, the same for every executor: a run that raises (not a user error) is
recorded in ``<run>/error.json`` and ``<sweep>/failures.json`` and retried once; after a
second failure the sweep goes on, and the run is tried again when the sweep is resumed.
A user error (:class:`CnnlabError`) stops the sweep; Ctrl-C raises
:class:`SweepInterrupted`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import statistics
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path
from typing import IO, Protocol

import yaml

from cnnlab.data.dataset import NOTICE_PREFIX
from cnnlab.errors import CnnlabError, Interrupted, RunError, SweepInterrupted, one_line
from cnnlab.runs import layout, storage
from cnnlab.runs.layout import Status
from cnnlab.sweep import progress, results
from cnnlab.sweep.spec import Sweep, SweepRun, format_overrides
from cnnlab.training import arithmetic

Log = Callable[[str], None]
ATTEMPTS = 2  # a failed run is tried once more in the same sweep


class Executor(Protocol):
    """Trains one run into one folder; nothing else (see :mod:`cnnlab.sweep.executors`)."""

    name: str  # recorded with failures
    slots: int  # runs it trains at the same time, at most

    def fits(self, run: SweepRun, busy: Sequence[SweepRun]) -> bool:
        """Whether ``run`` may start now beside the runs in flight, ``busy``."""

    def prepare(self, run: SweepRun, busy: Sequence[SweepRun]) -> None:
        """``run`` does not fit beside ``busy`` yet: get ready for it meanwhile, if that
        costs the busy runs nothing."""

    def submit(self, run: SweepRun, run_dir: Path, log: Log) -> Future[None]:
        """Start training ``run`` into ``run_dir``; the future fails as training did."""

    def close(self, cancel: bool = False) -> None:
        """Release workers; ``cancel``: stop the runs still in flight."""


def pending(sweep: Sweep, sweep_dir: Path) -> list[SweepRun]:
    """The runs without a finished run folder, in plan order."""
    return [r for r in sweep.runs if not storage.is_finished(sweep_dir / r.id)]


KEPT_LISTED = 10  # finished runs of a resumed sweep listed one per line, up to this many


class Source(Protocol):
    """Where the runner takes its runs from: a fixed plan (:class:`Plan`), or a search that
    asks for one trial at a time (:class:`cnnlab.sweep.search.trials.Trials`)."""

    sweep: Sweep  # as it stands: the runs so far, for results.csv
    total: int  # runs (or trials) in all

    def next_run(self) -> SweepRun | None:
        """The next run to train; None when there is none left to start."""

    def settled(self, run: SweepRun, outcome: Status) -> None:
        """``run`` ended for good (not retried): finished (or pruned...) or failed."""

    def left(self) -> int:
        """Runs (or trials) not ended yet, in flight included."""

    def done(self) -> int:
        """Runs (or trials) ended, earlier commands' included."""


class Plan:
    """A sweep's fixed plan: its unfinished runs, in order."""

    def __init__(self, sweep: Sweep, sweep_dir: Path):
        self.sweep, self.sweep_dir, self.total = sweep, sweep_dir, len(sweep.runs)
        self.queue = deque(pending(sweep, sweep_dir))
        self.ended = self.total - len(self.queue)  # finished earlier, then each settled

    def next_run(self) -> SweepRun | None:
        return self.queue.popleft() if self.queue else None

    def settled(self, run: SweepRun, outcome: Status) -> None:
        self.ended += 1

    def left(self) -> int:
        return self.total - self.ended

    def done(self) -> int:
        return self.ended


def run(sweep: Sweep, sweep_dir: Path, executor: Executor, log: Log = print,
        source: Source | None = None, bar: bool = False) -> None:
    """Train every pending run of ``sweep`` (or every run ``source`` gives) through
    ``executor``, as many at once as it fits. ``bar``: show the overall progress as a
    bar under the lines (a terminal)."""
    source = source or Plan(sweep, sweep_dir)
    display = progress.Bar(source.total, source.done()) if bar else None
    log = display.wrap(log) if display else log
    state = _Progress(source, sweep_dir, executor, log, display)
    try:
        _run(source, sweep_dir, executor, log, state)
    finally:
        if display:
            display.close()


def _run(source: Source, sweep_dir: Path, executor: Executor, log: Log,
         state: _Progress) -> None:
    kept = [p for p in source.sweep.runs if storage.is_finished(sweep_dir / p.id)]
    if len(kept) > KEPT_LISTED:  # a long resumed sweep: one line, not a screenful
        log(f"{len(kept)} runs finished earlier, kept: {kept[0].id} ... {kept[-1].id}")
    else:
        for planned in kept:
            log(f"{state.prefix(planned)}: finished earlier, kept")
    retry: deque[SweepRun] = deque()
    in_flight: dict[Future[None], tuple[SweepRun, float]] = {}
    head = None
    try:
        while True:
            head = head or (retry.popleft() if retry else source.next_run())
            while head and executor.fits(head, [r for r, _ in in_flight.values()]):
                in_flight[state.submit(head)] = (head, time.monotonic())
                head = retry.popleft() if retry else source.next_run()
            if not in_flight:
                break
            if head:
                executor.prepare(head, [r for r, _ in in_flight.values()])
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: in_flight[f][0].index):
                planned, start = in_flight.pop(future)
                outcome = state.settle(future, planned, time.monotonic() - start)
                if outcome is None:
                    retry.append(planned)
                else:
                    source.settled(planned, outcome)
                results.write_sweep_results(source.sweep, sweep_dir)
    except (KeyboardInterrupt, Interrupted):
        raise SweepInterrupted(sweep_dir) from None


class _Progress:
    """The runner's bookkeeping: attempts, durations, runs in flight, log lines (each
    with the counts: done, running, waiting, time left), failure records."""

    def __init__(self, source: Source, sweep_dir: Path, executor: Executor, log: Log,
                 display: progress.Bar | None = None):
        self.source, self.sweep_dir, self.executor, self.log = source, sweep_dir, executor, log
        self.display = display
        self.attempts: Counter[str] = Counter()
        self.durations: list[float] = []
        self.running: set[str] = set()
        self.notices: set[str] = set()

    def prefix(self, planned: SweepRun) -> str:
        return f"[{planned.index}/{self.source.total}] {planned.id}"

    def submit(self, planned: SweepRun) -> Future[None]:
        run_dir = self.sweep_dir / planned.id
        self.attempts[planned.id] += 1
        if storage.is_finished(run_dir):  # never trained over (a search's lost study)
            raise RunError(f"{run_dir}: holds a finished run that this sweep was about to "
                           "train again; move the folder out of --out, or use a new --out")
        if run_dir.exists() or run_dir.is_symlink():
            link = storage.clear_folder(run_dir)
            if link is not None:
                self.log(f"{self.prefix(planned)}: removed the symbolic link in its place "
                         f"(to {link}; nothing there touched)")
            elif self.attempts[planned.id] == 1:
                self.log(f"{self.prefix(planned)}: cleared the unfinished folder of an "
                         "earlier attempt")
        self.running.add(planned.id)
        self.log(f"{self.prefix(planned)}: {format_overrides(planned.overrides)} -- "
                 f"started; {self.counts()}")
        if self.executor.slots > 1:  # runs side by side: one start and one end line each
            return self.executor.submit(planned, run_dir, lambda line: None)
        return self.executor.submit(planned, run_dir, self._run_line)

    def _run_line(self, line: str) -> None:
        """A line of the run training in this process; a data notice once per sweep."""
        if line.startswith(NOTICE_PREFIX):
            if line in self.notices:
                return
            self.notices.add(line)
        self.log(f"    {line}")

    def counts(self, ending: int = 0) -> str:
        """Runs done, running and waiting, and the time left (``ending``: runs about to
        be counted as ended)."""
        left = self.source.left() - ending
        running = len(self.running)
        done, waiting = self.source.done() + ending, left - running
        text = f"{running} running, {waiting} waiting"
        if left and not self.durations:
            text += ", time left known after the first run"
        elif left:
            seconds = statistics.mean(self.durations) * left / max(1, min(self.executor.slots,
                                                                        left))
            text += f", about {format_duration(seconds)} left"
        if self.display:
            self.display.show(done, text)
        return f"{done} done, {text}"

    def settle(self, future: Future[None], planned: SweepRun, seconds: float
               ) -> Status | None:
        """Record how ``planned`` ended: its status, or None when it is to be tried again."""
        self.running.discard(planned.id)
        error = future.exception()
        if error is None:
            self.durations.append(seconds)
            row = results.metrics_row(self.sweep_dir / planned.id)
            self.log(f"{self.prefix(planned)}: {row['status']}, best val accuracy "
                     f"{results.format_number(row['best_val_accuracy'])}, test accuracy "
                     f"{results.format_number(row['test_accuracy'])} ({format_duration(seconds)})"
                     f"; {self.counts(ending=1)}")
            return Status(row["status"])
        if isinstance(error, KeyboardInterrupt | Interrupted):
            raise SweepInterrupted(self.sweep_dir)
        if isinstance(error, CnnlabError):
            raise error
        return None if self._failed(planned, one_line(error)) else Status.FAILED

    def _failed(self, planned: SweepRun, message: str) -> bool:
        """Record a failed attempt; True when it is to be tried again."""
        attempt = self.attempts[planned.id]
        record = {"run": planned.id, "attempt": attempt, "error": message,
                  "backend": self.executor.name, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        failures_file = self.sweep_dir / layout.FAILURES_FILE
        found = (json.loads(failures_file.read_text(encoding="utf-8"))
                 if failures_file.exists() else [])
        storage.write_json(failures_file, [*found, record])
        storage.write_json(self.sweep_dir / planned.id / layout.ERROR_FILE,
                        {"status": layout.Status.FAILED, **record})
        if attempt < ATTEMPTS:
            self.log(f"{self.prefix(planned)}: failed ({message}); retrying once")
            return True
        self.log(f"{self.prefix(planned)}: failed again ({message}); the sweep goes on, "
                 "rerun it to retry this run")
        return False


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


# --- the sweep folder ---

@contextlib.contextmanager
def sweep_folder(sweep: Sweep, out: str | Path | None, outputs_root: str | Path
                 ) -> Iterator[Path]:
    """A new ``<root>/sweep-<name>-<timestamp>``, or ``out`` (new, empty, or this sweep's
    to resume), held locked while the block runs; ``sweep.yaml`` written."""
    if out is None:
        path = storage.new_run_dir(None, f"sweep-{sweep.name}", outputs_root)
    else:
        path = Path(out)
        if path.exists() and not path.is_dir():
            raise RunError(f"--out {path}: is a file; give a folder")
        if not (path / layout.LOCK_FILE).exists():  # a sweep takes its lock first
            _check_sweep_folder(path)
        path.mkdir(parents=True, exist_ok=True)
    with _lock(path):  # judged again under the lock: another sweep may have started in it
        _check_sweep_folder(path)
        if (path / layout.SWEEP_FILE).exists():
            _check_resumable(sweep, path)
        _remove_temporaries(path)
        storage.write_atomic(path / layout.SWEEP_FILE, yaml.safe_dump(
            sweep.record(), sort_keys=False, default_flow_style=None))
        yield path


def _check_sweep_folder(path: Path) -> None:
    """RunError when ``path`` holds files but no sweep (temporary files and the lock of a
    sweep killed as it started do not count)."""
    if not path.is_dir() or (path / layout.SWEEP_FILE).exists():
        return
    if any(p.name != layout.LOCK_FILE and not (p.name.startswith(".") and ".tmp" in p.name)
           for p in path.iterdir()):
        raise RunError(f"--out {path}: not empty and not a sweep folder (no sweep.yaml); "
                       "choose a new folder")


def _remove_temporaries(sweep_dir: Path) -> None:
    """Delete the temporary files of atomic writes cut short by a kill (``.name.*.tmp``,
    ``.curves.tmp.png``, ``.model.tmp.keras``); safe because this sweep holds the lock."""
    for folder in (sweep_dir, *(p for p in sweep_dir.iterdir()
                                if p.is_dir() and not p.is_symlink())):  # links: not followed
        for file in folder.glob(".*.tmp*"):
            if file.is_file() or file.is_symlink():
                file.unlink(missing_ok=True)


@contextlib.contextmanager
def _lock(sweep_dir: Path) -> Iterator[IO[str]]:
    """Hold ``<sweep_dir>/.lock`` (flock, exclusive, non-blocking); RunError if another
    sweep holds it. The OS releases it when the file is closed or the process dies."""
    lock = sweep_dir / layout.LOCK_FILE
    try:  # never through a link: the lock is written to
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise RunError(f"{lock}: a symbolic link, not the sweep's lock file; remove the "
                       "link, then run the same command again") from None
    with open(fd, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip()
            raise RunError(f"--out {sweep_dir}: another sweep"
                           f"{f' (pid {holder})' if holder else ''} is running in this folder "
                           "and holds its lock; wait for it to end, or use a new --out folder"
                           ) from None
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield handle


def _check_resumable(sweep: Sweep, path: Path) -> None:
    record = path / layout.SWEEP_FILE
    try:
        old = yaml.safe_load(record.read_bytes().decode("utf-8"))
    except (yaml.YAMLError, ValueError, RecursionError, IsADirectoryError):
        raise RunError(f"{record}: damaged; put back the file the sweep wrote, or choose a "
                       "new --out folder") from None
    old = old if isinstance(old, dict) else {}
    arithmetic.check_sweep_resumable(path, sorted(
        p for p in path.iterdir() if p.is_dir() and storage.is_finished(p)))
    if old.get("search") or sweep.search:
        _check_same_search(old, sweep, path)
        return
    planned_ids = [r.id for r in sweep.runs]
    old_ids = _recorded_ids(old)
    if old_ids is None:  # sweep.yaml edited by hand: its run folders tell what it holds
        old_ids = [p.name for p in sorted(path.iterdir()) if storage.is_run_folder(p)]
        if set(old_ids) <= set(planned_ids):
            old_ids = planned_ids
    if old_ids != planned_ids:
        raise RunError(f"--out {path}: holds a different sweep ({len(old_ids)} runs: "
                       f"{', '.join(map(str, old_ids[:3]))}...); use the same sweep and --set, "
                       "or a new --out folder")
    for planned in sweep.runs:
        if storage.is_finished(path / planned.id):
            _check_same_config(path, planned)


def _recorded_ids(record: dict) -> list[str] | None:
    """The run ids of a sweep.yaml; None when its ``runs:`` list is gone or damaged."""
    runs = record.get("runs")
    if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        return None
    return [r.get("id") for r in runs]


def _check_same_config(path: Path, planned: SweepRun) -> None:
    config_file = path / planned.id / layout.CONFIG_FILE
    try:
        saved = yaml.safe_load(config_file.read_bytes().decode("utf-8"))
    except (FileNotFoundError, yaml.YAMLError, ValueError):
        saved = None
    if not isinstance(saved, dict):
        raise RunError(f"{config_file}: missing or damaged in a finished run; put back the "
                       "file the run wrote, or delete the folder to train the run again")
    changed = storage.config_differences(saved, planned.config.to_dict())
    if changed:
        raise RunError(f"--out {path}: run {planned.id} was made with a different "
                       f"config ({changed[0]}); use the same sweep and --set, or a new "
                       "--out folder")


def _check_same_search(old: dict, sweep: Sweep, path: Path) -> None:
    """A search resumes with the same space, base and settings; only ``trials`` may
    change (more trials continue the study)."""
    new = sweep.record()
    for key in ("base", "set", "space", "search"):
        before, after = old.get(key), new.get(key)
        if key == "search" and before and after:
            before, after = ({k: v for k, v in d.items() if k != "trials"}
                             for d in (before, after))
        if before != after:
            raise RunError(f"--out {path}: holds a different sweep ({key} differs); use the "
                           "same sweep file and --set (only --trials may change), or a new "
                           "--out folder")
