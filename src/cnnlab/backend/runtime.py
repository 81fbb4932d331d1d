"""Process-wide TensorFlow CPU settings, chosen from the config before TensorFlow is imported.

Two settings change the speed of the study's small CNNs on a CPU, and TensorFlow reads
both once per process:

- **oneDNN** (``TF_ENABLE_ONEDNN_OPTS``): oneDNN's convolutions instead of Eigen's;
  faster from small batches up, slower at batch 1-2 where its per-call cost dominates.
- **threads** (``TF_NUM_INTRAOP_THREADS`` / ``TF_NUM_INTEROP_THREADS``): at small
  batches one thread beats several, because the ops are too small to split.

``train.onednn`` and ``train.threads`` (both ``auto`` by default) choose them per run
(:func:`wanted`); :func:`select` applies them before TensorFlow's import, and
:func:`active` says what the process got. A sweep trains the runs that want other
settings in worker processes (:mod:`cnnlab.sweep.executors`). The thresholds below come from
``benchmarks/bench_train.py``; the measurements are in ``benchmarks/README.md``.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterable
from typing import NamedTuple

from cnnlab.config.schema import Config, TrainConfig

ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"
THREAD_ENVS = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
ONEDNN_MIN_BATCH = 4  # oneDNN on from this batch size up
ONE_THREAD_MAX_BATCH = 8  # one op thread up to this batch size
_SELECTED = "CNNLAB_SETTINGS_SELECTED"  # marks the variables as cnnlab's (children inherit)
# The user's own settings, read before cnnlab sets anything:
_USER_ONEDNN = None if os.environ.get(_SELECTED) else os.environ.get(ONEDNN_ENV)
_USER_THREADS = None if os.environ.get(_SELECTED) else os.environ.get(THREAD_ENVS[0])


class Settings(NamedTuple):
    """TensorFlow's process-wide CPU settings: oneDNN on/off, op threads (0: all cores)."""

    onednn: bool
    threads: int

    def describe(self) -> str:
        threads = "all cores" if self.threads == 0 else (
            f"{self.threads} thread" + ("s" if self.threads > 1 else ""))
        return f"oneDNN {'on' if self.onednn else 'off'}, {threads}"


def _truthy(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "on", "yes")


def _threads_from(text: str | None) -> int:
    try:
        return max(0, int(text)) if text else 0
    except ValueError:
        return 0


def wanted(cfg: TrainConfig) -> Settings:
    """The settings a run asks for. ``auto``: the user's environment variable if set, else
    oneDNN on from batch :data:`ONEDNN_MIN_BATCH` and one thread up to batch
    :data:`ONE_THREAD_MAX_BATCH`."""
    if cfg.onednn != "auto":
        onednn = bool(cfg.onednn)
    elif _USER_ONEDNN is not None:
        onednn = _truthy(_USER_ONEDNN)
    else:
        onednn = cfg.batch_size >= ONEDNN_MIN_BATCH
    if cfg.threads != "auto":
        threads = int(cfg.threads)
    elif _USER_THREADS is not None:
        threads = _threads_from(_USER_THREADS)
    else:
        threads = 1 if cfg.batch_size <= ONE_THREAD_MAX_BATCH else 0
    return Settings(onednn, threads)


def tensorflow_imported() -> bool:
    return "tensorflow" in sys.modules


def environment(settings: Settings) -> dict[str, str]:
    """Environment variables that give a new process these settings (children, Ray)."""
    env = {ONEDNN_ENV: "1" if settings.onednn else "0", _SELECTED: "1"}
    for name in THREAD_ENVS:
        env[name] = str(settings.threads)  # 0: TensorFlow's default, all cores
    return env


def select(settings: Settings) -> bool:
    """Ask for ``settings`` in this process; True if they will take effect (TensorFlow not
    imported yet, or imported with them already), False if the process has others."""
    if tensorflow_imported():
        return active() == settings
    os.environ.update(environment(settings))
    return True


def select_for(configs: Iterable[Config]) -> Settings | None:
    """Set this process up for the settings most of ``configs`` want; returns them."""
    counts = Counter(wanted(c.train) for c in configs)
    if not counts:
        return None
    settings = counts.most_common(1)[0][0]
    select(settings)
    return settings


def select_default() -> None:
    """oneDNN on for a process that selected nothing (evaluation, plots), unless the user
    set ``TF_ENABLE_ONEDNN_OPTS``; threads are left to TensorFlow."""
    if ONEDNN_ENV not in os.environ:
        os.environ.update({ONEDNN_ENV: "1", _SELECTED: "1"})


def active() -> Settings:
    """The settings this process runs (or will run) TensorFlow with."""
    onednn = _truthy(os.environ.get(ONEDNN_ENV, "0"))
    if tensorflow_imported():
        try:
            from tensorflow.python.util import _pywrap_util_port

            onednn = bool(_pywrap_util_port.IsMklEnabled())
        except (ImportError, AttributeError):  # private API: keep the variable's value
            pass
    return Settings(onednn, _threads_from(os.environ.get(THREAD_ENVS[0])))
