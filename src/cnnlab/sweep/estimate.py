"""Estimating a plan's wall time on this machine before training it (``--dry-run``).

Each run's speed is measured in the setting the run itself will use: in a worker
process with the run's own CPU settings (oneDNN and threads, :mod:`cnnlab.backend.runtime`;
fixed at TensorFlow's import), fed as its run feeds ``fit``
(:mod:`cnnlab.training.speed`), one measurement per batch size, model and optimizer
(:func:`speed_key`; the first such run's sizes). A run then costs its epochs at that
speed, its graph tracing, its test evaluation and checkpoints (measured) and the rest
(a constant); each settings
group, a worker's start (measured); the runs are laid out as ``--jobs`` trains them: one
after another, or with ``auto`` (and ``N``) the one-thread runs side by side on the
cores and the all-cores runs two at a time, each pair taking :data:`PAIR_SLOWDOWN` times
one run's time.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from cnnlab.backend import runtime
from cnnlab.config.schema import Config
from cnnlab.runs.layout import steps_per_epoch
from cnnlab.sweep import capacity
from cnnlab.sweep.runner import format_duration

Speeds = tuple[float, float, float]  # step, tracing, rest of a run (training.speed.Speed)
# Two all-cores runs side by side end after this many times one run's time alone
# (benchmarks/README.md, "All-cores runs two at a time").
PAIR_SLOWDOWN = 1.55


def lines(least: Sequence[Config], most: Sequence[Config], where: str,
          jobs: int | str = 1, alone: Sequence[Config] = ()) -> list[str]:
    """The dry run's lines: the runs at least and at most (with adaptive seeds; one line
    when they are the same), each with its estimated wall time here with ``--jobs jobs``;
    ``alone``: those of them whose all-cores runs train alone (timed runs)."""
    speeds, starts_s = measured(most)
    shared, apart = (capacity.plan(jobs, most, timed=t) for t in (False, True))
    timed = set(alone)

    def wall(runs: Sequence[Config]) -> float:
        return laid_out([c for c in runs if c not in timed], speeds, starts_s, shared) \
            + laid_out([c for c in runs if c in timed], speeds, 0.0, apart)

    counts = (((least, "at least"), (most, "at most")) if len(least) < len(most)
              else ((most, "in all"),))
    return [""] + [
        f"{len(runs)} runs {which} {where}; estimated time on this machine with --jobs "
        f"{jobs}: about {format_duration(wall(runs))} (steps, tracing, test evaluation and "
        "checkpoints measured per batch size, model and optimizer, in the runs' CPU "
        "settings)"
        for runs, which in counts]


SpeedKey = tuple[int, str, runtime.Settings]


def speed_key(config: Config) -> SpeedKey:
    """What a run's speed depends on: its batch size, its model and its optimizer, and the
    CPU settings it trains with."""
    return (config.train.batch_size, f"{config.model!r} {config.train.optimizer}",
            runtime.wanted(config.train))


def laid_out(configs: Sequence[Config], speeds: dict[SpeedKey, Speeds],
             starts_s: float, fit: capacity.Capacity) -> float:
    """Wall seconds of ``configs`` at ``speeds`` (per :func:`speed_key`: seconds per step,
    tracing, the rest of a run) after workers that take ``starts_s`` to start, trained as
    ``fit`` decides: one-thread runs ``at_once`` side by side, the others one by one, or
    in pairs when ``fit`` puts two or more all-cores runs side by side."""
    alone = side_by_side = 0.0
    for config in configs:
        step_s, tracing_s, overhead_s = speeds[speed_key(config)]
        steps = steps_per_epoch(config.data.train_size or 45_000, config.train.batch_size)
        run_s = steps * config.train.epochs * step_s + tracing_s + overhead_s
        if runtime.wanted(config.train).threads == 1:
            side_by_side += run_s
        else:
            alone += run_s
    if fit.all_cores_together >= 2:
        alone *= PAIR_SLOWDOWN / 2
    return starts_s + alone + side_by_side / max(1, fit.at_once)


def measured(configs: Sequence[Config]) -> tuple[dict[SpeedKey, Speeds], float]:
    """Per :func:`speed_key`: (seconds per step, tracing seconds, the rest of a run), each
    measured in a fresh process with the CPU settings its runs want; and the seconds
    those processes took to start (TensorFlow's import)."""
    first: dict[SpeedKey, Config] = {}
    for config in configs:
        first.setdefault(speed_key(config), config)
    by_settings: dict[runtime.Settings, list[Config]] = {}
    for config in first.values():
        by_settings.setdefault(runtime.wanted(config.train), []).append(config)
    speeds: dict[SpeedKey, Speeds] = {}
    starts_s = 0.0
    context = multiprocessing.get_context("spawn")
    for settings, group in by_settings.items():
        with ProcessPoolExecutor(1, mp_context=context, initializer=runtime.select,
                                 initargs=(settings,)) as worker:
            start_s, measured_speeds = worker.submit(_measure_all, group).result()
        starts_s += start_s
        speeds.update(zip(map(speed_key, group), measured_speeds, strict=True))
    return speeds, starts_s


def _measure_all(configs: list[Config]) -> tuple[float, list[Speeds]]:
    """In the worker: its start (importing TensorFlow) and
    :func:`cnnlab.training.speed.measure` of each config."""
    start = time.perf_counter()
    from cnnlab.training import speed  # imports TensorFlow: after the settings are chosen

    start_s = time.perf_counter() - start
    return start_s, [tuple(speed.measure(config)) for config in configs]
