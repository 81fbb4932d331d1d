"""TensorBoard HParams for sweeps, written without TensorFlow.

Used by :mod:`cnnlab.sweep.run` after a sweep: ``write_sweep_hparams(sweep_dir, ...)`` writes
one HParams session per finished run in ``<sweep>/hparams/<id>/`` (the results table's
varied keys and final metrics), so ``tensorboard --logdir outputs/`` shows every sweep's
runs in the HParams view.

The event files are built from TensorBoard's pure-Python pieces (its summary protos and
record writer), so a sweep's main process, which trains nothing itself, never imports
TensorFlow (seconds). TensorBoard's ``EventFileWriter`` is not used: it opens its file
through ``tf.io.gfile``, which imports TensorFlow whenever TensorFlow is installed.
"""

from __future__ import annotations

import os
import shlex
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnnlab.runs import layout, load, storage

Log = Callable[[str], None]


def _hparam_value(value: Any) -> bool | int | float | str:
    return value if isinstance(value, bool | int | float | str) else str(value)


def _write_events(folder: Path, summaries: list[tuple[int, Any]]) -> None:
    """One event file in ``folder``: the file-version event, then one event per
    ``(step, summary proto)``, as TensorFlow's summary writer lays them out."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    folder.mkdir(parents=True, exist_ok=True)
    name = (f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}"
            f".{os.getpid()}.v2")
    with open(folder / name, "wb") as file:
        writer = RecordWriter(file)
        writer.write(event_pb2.Event(wall_time=time.time(),
                                     file_version="brain.Event:2").SerializeToString())
        for step, summary in summaries:
            writer.write(event_pb2.Event(wall_time=time.time(), step=step,
                                         summary=summary).SerializeToString())


def write_sweep_hparams(sweep_dir: Path, sweep_name: str, rows: list[dict[str, Any]],
                        params: list[str], log: Log = print) -> int:
    """One HParams session per finished run of a sweep (its ``params`` cells of the results
    table and its final metrics) in ``<sweep>/hparams/<id>/``, all rewritten on every call;
    run folders are not touched. Returns the number of runs written."""
    from tensorboard.plugins.hparams.summary_v2 import hparams_pb
    from tensorboard.plugins.scalar.summary_v2 import scalar_pb

    root = Path(sweep_dir) / layout.HPARAMS_DIR
    storage.clear_folder(root)
    written = 0
    for row in rows:
        run_dir = Path(sweep_dir) / row["run_dir"]
        if not storage.is_finished(run_dir):
            continue
        run = load.read_run(run_dir)
        if not run.config.get("tracking", {}).get("tensorboard", True):
            continue
        # a key an arm does not have (Adam's momentum) is left out of its session, not
        # written as text: a numeric column stays numeric in TensorBoard
        values = {key: _hparam_value(row[key]) for key in params
                  if row.get(key) not in (None, "")}
        summaries = [(0, hparams_pb(values, trial_id=f"{sweep_name}/{run_dir.name}"))]
        step = int(run.metrics.get("epochs_run") or 0)
        summaries += [(step, scalar_pb(key, run.metrics[key])) for key in layout.FINAL_METRICS[:4]
                      if isinstance(run.metrics.get(key), int | float)]
        _write_events(root / run_dir.name, summaries)
        written += 1
    if written:
        log(f"tensorboard: hparams of {written} runs; view with tensorboard --logdir "
            f"{shlex.quote(str(Path(sweep_dir).parent))}")
    return written
