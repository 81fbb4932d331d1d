"""Process-wide TensorFlow settings chosen from the config, before TensorFlow is imported.

TensorFlow reads ``TF_ENABLE_ONEDNN_OPTS`` once, when it is imported, and decides then
whether convolutions, pooling and dense layers run on oneDNN's kernels or on Eigen's.
On CPUs without AVX-512 VNNI (such as this project's AMD EPYC) it is off by default,
yet it makes the baseline's training step 2-4x faster from batch 4 up; at batch 1-2
oneDNN's per-call cost makes it slower (measured in ``benchmarks/bench_train.py``).
``train.onednn: auto`` therefore turns it on from :data:`ONEDNN_MIN_BATCH` up.

Because the setting belongs to the process, this module never imports TensorFlow:
:func:`select_onednn` must run first, and :func:`onednn_active` says what the process
actually got. A sweep whose runs want both settings trains the minority in a child
process (:mod:`cnnlab.child_run`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

from cnnlab.config import Config, TrainConfig

ENV = "TF_ENABLE_ONEDNN_OPTS"
ONEDNN_MIN_BATCH = 4  # measured: off is faster at batch 1, even at 2, on from 4 up
_SELECTED = "CNNLAB_ONEDNN_SELECTED"  # marks ENV as set by cnnlab (inherited by children)
# The user's own setting, read before cnnlab sets anything:
_USER_ENV = None if os.environ.get(_SELECTED) else os.environ.get(ENV)


def wants_onednn(cfg: TrainConfig) -> bool:
    """The oneDNN setting a run asks for: ``train.onednn``, or for ``auto`` the user's
    ``TF_ENABLE_ONEDNN_OPTS`` if set, else on from batch :data:`ONEDNN_MIN_BATCH` up."""
    if cfg.onednn != "auto":
        return bool(cfg.onednn)
    if _USER_ENV is not None:
        return _USER_ENV.strip().lower() in ("1", "true", "on", "yes")
    return cfg.batch_size >= ONEDNN_MIN_BATCH


def tensorflow_imported() -> bool:
    return "tensorflow" in sys.modules


def select_onednn(on: bool) -> bool:
    """Ask for oneDNN on or off in this process; True if it will take effect (TensorFlow
    not imported yet), False if the process already made its choice."""
    if tensorflow_imported():
        return onednn_active() == on
    os.environ[ENV] = "1" if on else "0"
    os.environ[_SELECTED] = "1"
    return True


def child_env(on: bool) -> dict[str, str]:
    """Environment variables that give a new process this oneDNN setting (Ray workers)."""
    return {ENV: "1" if on else "0", _SELECTED: "1"}


def select_default() -> None:
    """oneDNN on for a process that selected nothing (evaluation, plots), unless the user
    set ``TF_ENABLE_ONEDNN_OPTS``."""
    if ENV not in os.environ:
        select_onednn(True)


def select_for(configs: Iterable[Config]) -> bool:
    """Set this process up for the most of ``configs`` (ties: on); returns the choice."""
    wanted = [wants_onednn(c.train) for c in configs]
    on = sum(wanted) * 2 >= len(wanted)
    select_onednn(on)
    return on


def onednn_active() -> bool:
    """Whether this process runs TensorFlow with oneDNN (decided at TensorFlow's import)."""
    if tensorflow_imported():
        try:
            from tensorflow.python.util import _pywrap_util_port

            return bool(_pywrap_util_port.IsMklEnabled())
        except (ImportError, AttributeError):  # private API: fall back on the variable
            pass
    return os.environ.get(ENV, "0").strip().lower() in ("1", "true", "on", "yes")
