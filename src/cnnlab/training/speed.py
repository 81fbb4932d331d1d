"""How fast a config trains in this process, measured the way its run trains.

For time estimates (``cnnlab reproduce --dry-run``): the config's model, optimizer and
batch size, fed as :func:`cnnlab.training.loop.train` feeds them (the batches sliced in
the graph, a whole epoch per call, the epoch's order), with validation at the config's
ratio of validation to training images, on random images of the config's shape. Run it
in a process with the run's own CPU settings (:mod:`cnnlab.backend.runtime`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from cnnlab.config.schema import Config
from cnnlab.data.dataset import Dataset
from cnnlab.training import epoch_randomness, graph_batches, loop
from cnnlab.training.timing import EpochTimer

MIN_IMAGES = 2048  # enough steps per timed epoch to average out the clock
CLASSES = 10


class Speed(NamedTuple):
    """Seconds per optimizer step of a steady epoch, its validation share included, and
    the first epoch's extra seconds (graph tracing)."""

    step_s: float
    tracing_s: float


def measure(config: Config) -> Speed:
    """Two epochs of ``config`` on random images; the second is the steady one."""
    cfg, planned = config.train, config.data.train_size or 45_000
    samples = min(planned, max(MIN_IMAGES, 8 * cfg.batch_size))
    val = max(1, round(samples * config.data.val_size / planned))
    height, width = config.data.image_size or (32, 32)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(samples + val, height, width, 3)).astype(np.float32)
    labels = rng.integers(0, CLASSES, samples + val)
    data = Dataset(x[:samples], labels[:samples], x[samples:], labels[samples:], x[:0],
                   labels[:0], tuple(str(c) for c in range(CLASSES)))
    model = loop.compiled_model(config, data)
    randomness = epoch_randomness.EpochRandomness(config.seed, samples, cfg.shuffle)
    timer = EpochTimer(samples, cfg.batch_size)
    try:
        model.fit(**loop.training_inputs(config, model, data, randomness.variable), epochs=2,
                  shuffle=False, verbose=0, callbacks=[randomness, timer])
    finally:
        graph_batches.remove(model)
    first, steady = (row["epoch_s"] for row in timer.rows)
    return Speed(steady / math.ceil(samples / cfg.batch_size), max(0.0, first - steady))
