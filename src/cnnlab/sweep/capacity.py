"""How many runs a local sweep trains at once (``--jobs``), decided once with its reason:
the cores, the memory each run needs and what the machine has available."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from cnnlab.config.schema import Config
from cnnlab.errors import ConfigError
from cnnlab.training.sizes import available_memory

# Resident memory of a worker beside its data arrays (TensorFlow, Keras, the traced
# graphs); measured in benchmarks/README.md ("Memory per worker").
WORKER_BASE_BYTES = 900 * 2**20
# All-cores runs side by side under --jobs auto: each keeps its own thread count (so its
# results stay those of --jobs 1), and two of them finish sooner than one after another,
# since a small model's ops do not keep every core busy and each run has single-threaded
# work around its training (benchmarks/README.md, "All-cores runs two at a time").
ALL_CORES_AT_ONCE = 2


@dataclass(frozen=True)
class Capacity:
    """Runs at most at once, the cores to pack them on (None: do not pack) and the line
    that says why."""

    at_once: int
    cores: int | None
    reason: str
    all_cores_at_once: int = ALL_CORES_AT_ONCE  # with cores: all-cores runs side by side

    @property
    def all_cores_together(self) -> int:
        """All-cores runs trained at once: packed onto the cores, or ``at_once`` of them."""
        return min(self.at_once, self.all_cores_at_once) if self.cores else self.at_once


def available_cores() -> int:
    """Cores this process may run on (its affinity), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def run_memory(config: Config) -> int:
    """Resident bytes of a worker training ``config``: the base, the float32 train,
    validation and test images, and about one more copy of them while Keras reads them."""
    height, width = config.data.image_size or (32, 32)
    images = (config.data.train_size or 50_000) + config.data.val_size + (
        config.data.test_size or 10_000)  # null: CIFAR-10's whole splits
    return WORKER_BASE_BYTES + 2 * images * height * width * 3 * 4


def plan(jobs: str | int, planned: Sequence[Config], runs: int | None = None,
         timed: bool = False) -> Capacity:
    """``--jobs`` decided for these runs (``runs`` of them left to train; default: one per
    config); ``timed``: their step times are results, so an all-cores run trains alone.

    ``auto``: as many as the cores allow, fewer when the machine's available memory would
    not hold them; ``N``: at most N (never more than the runs left), refused (ConfigError)
    when N runs would not fit."""
    runs = len(planned) if runs is None else runs
    if not planned or runs < 1:
        return Capacity(1, None, f"--jobs {jobs}: nothing left to run")
    need, free = max(map(run_memory, planned)), available_memory()
    fit = runs if free is None else max(1, free // need)
    if jobs == "auto":
        return _auto(runs, need, free, fit, 1 if timed else ALL_CORES_AT_ONCE)
    count = min(int(jobs), runs)
    if count > fit:
        raise ConfigError(f"--jobs {jobs}: {count} runs at once need about "
                          f"{_gb(count * need)} of memory, {_gb(free)} is "
                          f"available; use --jobs {fit} or --jobs auto")
    capped = f" ({runs} run{'s' if runs > 1 else ''} left)" if count < int(jobs) else ""
    return Capacity(count, None, f"--jobs {jobs}: up to {count} runs at once{capped}, each "
                                 "in a worker process")


def _auto(runs: int, need: int, free: int | None, fit: int, all_cores: int) -> Capacity:
    cores = available_cores()
    wanted = min(cores, runs)
    at_once = max(1, min(wanted, fit))
    line = (f"--jobs auto: up to {at_once} run{'s' if at_once > 1 else ''} at once on "
            f"{cores} cores (one-thread runs side by side, "
            + ("an all-cores run alone)" if all_cores == 1 else "all-cores runs two at a time)"))
    if at_once < wanted:
        line += (f"; not {wanted}: they would need about {_gb(wanted * need)} of memory, "
                 f"{_gb(free)} is available")
    return Capacity(at_once, cores, line, all_cores)


def _gb(size: int | None) -> str:
    return f"{(size or 0) / 2**30:.1f} GB"
