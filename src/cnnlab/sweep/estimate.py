"""Estimating a plan's wall time on this machine before training it (``--dry-run``).

Each run's speed is measured in the setting the run itself will use: in a worker
process with the run's own CPU settings (oneDNN and threads, :mod:`cnnlab.backend.runtime`;
fixed at TensorFlow's import), fed as its run feeds ``fit``
(:mod:`cnnlab.training.speed`), one measurement per batch size (its first run's model
and optimizer). A run then costs its epochs at that speed, its graph tracing and
:data:`RUN_OVERHEAD_S`; the runs are laid out as ``--jobs`` trains them: one after
another, or with ``auto`` (and ``N``) the one-thread runs side by side on the cores
and the all-cores runs one at a time.
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

from cnnlab.backend import runtime
from cnnlab.config.schema import Config

Log = Callable[[str], None]
# Per run, outside its epochs: data from the cache, build, checkpoints, test evaluation,
# figures and page (about 2-3 s each on the 2-core machine, metrics.json -> phases).
RUN_OVERHEAD_S = 2.5
WORKER_START_S = 5.0  # a worker process importing TensorFlow


def seconds(configs: Sequence[Config], at_once: int = 1) -> float:
    """The estimated wall seconds of training ``configs`` with up to ``at_once`` runs at
    once (:func:`cnnlab.sweep.executors.jobs_for`), their speeds measured here, now."""
    return laid_out(configs, measured(configs), at_once)


def laid_out(configs: Sequence[Config], speeds: dict[int, tuple[float, float]],
             at_once: int) -> float:
    """Wall seconds of ``configs`` at ``speeds`` (per batch size: seconds per step,
    tracing seconds): one-thread runs ``at_once`` side by side, the others one by one."""
    alone = side_by_side = 0.0
    for config in configs:
        step_s, tracing_s = speeds[config.train.batch_size]
        steps = math.ceil((config.data.train_size or 45_000) / config.train.batch_size)
        run_s = steps * config.train.epochs * step_s + tracing_s + RUN_OVERHEAD_S
        if runtime.wanted(config.train).threads == 1:
            side_by_side += run_s
        else:
            alone += run_s
    groups = len({runtime.wanted(c.train) for c in configs})
    return alone + side_by_side / max(1, at_once) + WORKER_START_S * groups


def measured(configs: Sequence[Config]) -> dict[int, tuple[float, float]]:
    """Per batch size: (seconds per step, tracing seconds), each measured in a fresh
    process with the CPU settings its runs want."""
    first: dict[int, Config] = {}
    for config in configs:
        first.setdefault(config.train.batch_size, config)
    by_settings: dict[runtime.Settings, list[Config]] = {}
    for config in first.values():
        by_settings.setdefault(runtime.wanted(config.train), []).append(config)
    speeds: dict[int, tuple[float, float]] = {}
    context = multiprocessing.get_context("spawn")
    for settings, group in by_settings.items():
        with ProcessPoolExecutor(1, mp_context=context, initializer=runtime.select,
                                 initargs=(settings,)) as worker:
            measured = worker.submit(_measure_all, group).result()
        speeds.update(zip((c.train.batch_size for c in group), measured, strict=True))
    return speeds


def _measure_all(configs: list[Config]) -> list[tuple[float, float]]:
    """In the worker: :func:`cnnlab.training.speed.measure` of each config."""
    from cnnlab.training import speed  # imports TensorFlow: after the settings are chosen

    return [tuple(speed.measure(config)) for config in configs]
