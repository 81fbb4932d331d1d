"""``train.distribute``: one run on several devices of one machine.

``none`` builds and compiles the model as usual (TensorFlow's default strategy);
``mirrored`` builds and compiles inside ``tf.distribute.MirroredStrategy().scope()``,
which copies the model to every visible GPU (or the CPU when there is none) and splits
each batch across them: ``train.batch_size`` is the global batch. Keras leaves XLA off
under a ``tf.distribute`` strategy (``jit_compile="auto"``).
"""

from __future__ import annotations

import contextlib
from typing import Any

from cnnlab.backend.tf import tf
from cnnlab.config.schema import TrainConfig


def scope(cfg: TrainConfig) -> contextlib.AbstractContextManager[Any]:
    """The context to build and compile the model in."""
    if cfg.distribute == "mirrored":
        return tf.distribute.MirroredStrategy().scope()
    return contextlib.nullcontext()


def record(cfg: TrainConfig, model: Any) -> dict[str, Any]:
    """What metrics.json says about it: the strategy, replicas and their devices."""
    strategy = getattr(model, "distribute_strategy", None) or tf.distribute.get_strategy()
    try:
        devices = list(strategy.extended.worker_devices)
    except (RuntimeError, AttributeError):  # the default strategy has no such list
        devices = []
    return {"strategy": cfg.distribute, "class": type(strategy).__name__,
            "replicas": int(strategy.num_replicas_in_sync), "devices": devices}
