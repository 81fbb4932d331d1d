"""Adaptive seeds (``repeats: auto``): the runner's source of runs, round by round.

:class:`Seeds` hands out the minimum seeds of every arm, waits for the round to end,
then asks :func:`cnnlab.sweep.sequential.replay` which arms are still open and hands out
one more seed of each; it stops when no arm is open, every open one has the maximum, or
the next round would pass the budget. The decisions are recomputed from the runs on
disk at every round, so a killed sweep resumed with the same command takes the same
ones; a finished run is never redone.

The budget counts the wall time of every command that worked on the sweep
(``seeds.json`` keeps the sum); the minimum seeds always run, and no further round
starts when the time spent plus the estimated time of that round (its runs times the
mean run time so far, over the runs trained at once) would pass it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from cnnlab.errors import RunError
from cnnlab.runs import layout, load, storage
from cnnlab.runs.layout import METRICS, Status
from cnnlab.sweep import sequential
from cnnlab.sweep.spec import Sweep, SweepRun
from cnnlab.sweep.stats import is_number

Log = Callable[[str], None]
SEEDS_FILE = "seeds.json"  # the time spent on the sweep, over every command
MINIMUM_ONLY = 0.0  # the budget of a pass that gives every arm its minimum seeds only


def ended(sweep: Sweep, sweep_dir: Path, failed: set[str] = frozenset()
          ) -> dict[str, dict[int, float | None]]:
    """Each arm's ended runs by repeat: the ``select_by`` value, or None (diverged, or
    failed for good in this command)."""
    found: dict[str, dict[int, float | None]] = {arm: {} for arm in sweep.arms}
    for run in sweep.runs:
        if run.id in failed:
            found[run.arm][run.repeat] = None
        elif storage.is_finished(sweep_dir / run.id):
            metrics = load.read_run(sweep_dir / run.id).metrics
            value = metrics.get(sweep.select_by)
            usable = layout.ranked_status(metrics.get("status")) and is_number(value)
            found[run.arm][run.repeat] = float(value) if usable else None
    return found


def progress(sweep: Sweep, sweep_dir: Path, failed: set[str] = frozenset()
             ) -> sequential.State:
    """Where the race stands, from the runs on disk."""
    return sequential.replay(ended(sweep, sweep_dir, failed), sweep.adaptive,
                             METRICS[sweep.select_by].higher_is_better)


def so_far(sweep: Sweep, state: sequential.State) -> Sweep:
    """``sweep`` with the runs handed out up to this round only."""
    wanted = state.wanted
    return dataclasses.replace(sweep, runs=tuple(
        r for r in sweep.runs if r.repeat < wanted.get(r.arm, 0)))


def spent(sweep_dir: Path) -> float:
    """Seconds every command spent on the sweep (or study) in ``sweep_dir`` so far."""
    path = sweep_dir / SEEDS_FILE
    if not path.exists():
        return 0.0
    try:
        seconds = json.loads(path.read_text(encoding="utf-8")).get("spent_s")
    except (OSError, ValueError, AttributeError):  # unreadable, not JSON, not an object
        seconds = None
    if not is_number(seconds) or seconds < 0:
        raise RunError(f"{path}: damaged (no spent_s of seconds in it); delete it to resume "
                       "(--budget then counts from now)")
    return float(seconds)


def run_seconds(sweep_dir: Path, runs: list[SweepRun]) -> float | None:
    """The mean wall time of the finished runs among ``runs`` (their phases), or None."""
    times = [sum(load.read_run(sweep_dir / r.id).metrics.get("phases", {}).values())
             for r in runs if storage.is_finished(sweep_dir / r.id)]
    return sum(times) / len(times) if times else None


def runs_that_fit(runs: int, left_s: float, run_s: float, slots: int, race: bool) -> int:
    """How many of ``runs`` runs of ``run_s`` seconds each, ``slots`` at once, fit in
    ``left_s``: all or none of a race's round (its look needs every one), else as many
    as fit."""
    slots = max(1, slots)
    if math.ceil(runs / slots) * run_s <= left_s:
        return runs
    return 0 if race else min(runs, slots * max(0, math.floor(left_s / run_s)))


class Seeds:
    """The runner's source of a sweep with adaptive seeds."""

    def __init__(self, sweep: Sweep, sweep_dir: Path, log: Log, budget_s: float | None = None,
                 slots: int = 1):
        self.base, self.sweep_dir, self.log = sweep, sweep_dir, log
        self.budget_s, self.slots, self.total = budget_s, slots, len(sweep.runs)
        self.failed: set[str] = set()
        self.in_flight: set[str] = set()
        self.queue: deque[SweepRun] = deque()
        self.spent_before, self.started = spent(sweep_dir), time.monotonic()
        self.budget_hit = False
        self.state = progress(sweep, sweep_dir)
        self.sweep = so_far(sweep, self.state)
        self.ended = sum(storage.is_finished(sweep_dir / r.id) for r in self.sweep.runs)

    def next_run(self) -> SweepRun | None:
        if not self.queue and not self.in_flight and not self.budget_hit:
            self._next_round()
        if not self.queue:
            return None
        run = self.queue.popleft()
        self.in_flight.add(run.id)
        return run

    def _next_round(self) -> None:
        """Look at the ended runs; queue the seeds the open arms get next."""
        found = ended(self.base, self.sweep_dir, self.failed)
        self.state = sequential.replay(found, self.base.adaptive,
                                       METRICS[self.base.select_by].higher_is_better)
        self.sweep = so_far(self.base, self.state)
        # repeat by repeat: what a budget cuts off is whole repeats, which paired tests use
        todo = sorted((r for r in self.sweep.runs if r.id not in self.failed
                       and not storage.is_finished(self.sweep_dir / r.id)),
                      key=lambda r: (r.repeat, r.index))
        if self.state.done or not todo:
            return
        if self.state.round > 0:
            todo = self._fitting(todo)
            if not todo:
                self.budget_hit = True
                self.state = self.state.stop_open(
                    sequential.MINIMUM if self.budget_s == MINIMUM_ONLY else sequential.BUDGET,
                    {arm: len(runs) for arm, runs in found.items()})
                self.sweep = so_far(self.base, self.state)
                return
            self._announce(todo)
        self.queue.extend(todo)

    def _fitting(self, todo: list[SweepRun]) -> list[SweepRun]:
        """The runs of ``todo`` that fit the budget (said when some do not): all or none
        of a race's round (its look needs every one), else as many as fit."""
        if self.budget_s == MINIMUM_ONLY:
            self.log(f"seeds: {len(todo)} runs still wanted after the minimum seeds; no more "
                     "seeds in this pass")
            return []
        mean = run_seconds(self.sweep_dir, list(self.sweep.runs))
        if self.budget_s is None or mean is None:
            return todo
        race = self.base.adaptive.race
        fits = runs_that_fit(len(todo), self.budget_s - self.spent_s(), mean, self.slots, race)
        if fits == len(todo):
            return todo
        needed = math.ceil(len(todo) / max(1, self.slots)) * mean
        self.log(f"seeds: {'the next round' if race else 'the rest'} "
                 f"({len(todo)} runs, about {needed:.0f} s) would pass the budget "
                 f"({self.spent_s():.0f} of {self.budget_s:.0f} s spent); "
                 + (f"{fits} of them fit" if fits else "what is still open is reported as open"))
        return todo[:fits]

    def _announce(self, todo: list[SweepRun]) -> None:
        if not self.base.adaptive.race:
            self.log(f"seeds: {len(todo)} more seed{'s' * (len(todo) != 1)}, no race (the runs "
                     f"serve a test made at the end): {', '.join(r.id for r in todo)}")
            return
        arms = self.state.arms
        decided = [a for a in arms.values() if a.stopped]
        outcome = ", ".join(f"{o} {sum(a.outcome == o for a in decided)}"
                            for o in (sequential.WORSE, sequential.EQUIVALENT, sequential.BETTER)
                            if any(a.outcome == o for a in decided))
        self.log(f"seeds: look {self.state.round}: {len(decided)} of {len(arms)} arms decided"
                 f"{f' ({outcome})' if outcome else ''}; one more seed for each of the "
                 f"{len(arms) - len(decided)} open: {', '.join(r.id for r in todo)}")

    def settled(self, run: SweepRun, outcome: Status) -> None:
        self.in_flight.discard(run.id)
        self.ended += 1
        if outcome == Status.FAILED:
            self.failed.add(run.id)
        storage.write_json(self.sweep_dir / SEEDS_FILE, {"spent_s": round(self.spent_s(), 1)})

    def spent_s(self) -> float:
        return self.spent_before + time.monotonic() - self.started

    def left(self) -> int:
        """The runs of this round not ended yet (later rounds are not known yet)."""
        return len(self.queue) + len(self.in_flight)

    def done(self) -> int:
        """The runs of the rounds so far that ended (finished, or failed for good)."""
        return self.ended
