"""The reference arithmetic's version: which computation a run's numbers come from.

Within one version the same config (threads included) gives the same history bit for
bit, in any process and with any executor. A change that alters the numbers (the order
of the batches, the random draws, the shapes the steps are traced with) raises
:data:`ARITHMETIC`; every run records it (``status.json`` while it trains,
``metrics.json`` when finished). ``--resume`` refuses a run of another version, whose
epochs this arithmetic would not continue as they began, and a sweep holding a finished
run of another version is not resumed (its runs would not compare).

1: cnnlab up to the per-epoch reshuffle (no ``arithmetic`` key recorded).
2: every epoch its own order and dropout/augmentation draws, from (seed, epoch).
"""

from __future__ import annotations

import json
from pathlib import Path

from cnnlab.errors import RunError
from cnnlab.runs import layout

ARITHMETIC = 2
KEY = "arithmetic"  # in status.json and metrics.json
_UNRECORDED = 1  # runs recorded before the version was


def recorded(run_dir: str | Path) -> int:
    """The version a run folder was trained with: its metrics.json when finished, else
    its status.json."""
    path = Path(run_dir)
    record = path / layout.METRICS_FILE
    if not record.exists():
        record = path / layout.STATUS_FILE
    try:
        return int(json.loads(record.read_text(encoding="utf-8")).get(KEY, _UNRECORDED))
    except (OSError, ValueError, TypeError, AttributeError):
        return _UNRECORDED


def check_resumable(run_dir: str | Path) -> None:
    """RunError unless the interrupted run in ``run_dir`` used this arithmetic."""
    version = recorded(run_dir)
    if version != ARITHMETIC:
        raise RunError(f"--out {run_dir}: this run was trained with arithmetic {version}, "
                       f"this cnnlab uses {ARITHMETIC} (other batch orders and random "
                       "draws), so its epochs cannot be continued; start a new run (a new "
                       "--out, without --resume)")


def check_sweep_resumable(sweep_dir: Path, finished: list[Path]) -> None:
    """RunError if a finished run of the sweep in ``sweep_dir`` used another arithmetic:
    resumed, the sweep would compare runs of two arithmetics."""
    for run_dir in finished:
        version = recorded(run_dir)
        if version != ARITHMETIC:
            raise RunError(f"--out {sweep_dir}: run {run_dir.name} was trained with "
                           f"arithmetic {version}, this cnnlab uses {ARITHMETIC} (other batch "
                           "orders and random draws), so new runs would not compare with it; "
                           "start the sweep again in a new --out folder")
