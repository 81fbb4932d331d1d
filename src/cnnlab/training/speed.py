"""How fast a config trains in this process, measured the way its run trains.

For time estimates (``cnnlab reproduce --dry-run``): the config's model, optimizer and
batch size, fed as :func:`cnnlab.training.loop.train` feeds them (the batches sliced in
the graph, a whole epoch per call, the epoch's order), with validation at the config's
ratio of validation to training images, on random images of the config's shape. Run it
in a process with the run's own CPU settings (:mod:`cnnlab.backend.runtime`).
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from cnnlab.backend.tf import keras
from cnnlab.config.schema import Config
from cnnlab.data.dataset import Dataset
from cnnlab.training import epoch_randomness, graph_batches, loop
from cnnlab.training.timing import EpochTimer

MIN_IMAGES = 2048  # enough steps per timed epoch to average out the clock
CLASSES = 10
# A run's data from the cache, figures and page: not measured here (about 1-2 s on the
# 2-core machine, metrics.json -> phases)
UNMEASURED_S = 1.5


class Speed(NamedTuple):
    """Seconds per optimizer step of a steady epoch, its validation share included; the
    first epoch's extra seconds (graph tracing); the run's seconds outside its epochs."""

    step_s: float
    tracing_s: float
    overhead_s: float


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
    model, loops = loop.prepared_model(config, data)
    randomness = epoch_randomness.EpochRandomness(config.seed, samples, cfg.shuffle,
                                                  loops.order if loops else None)
    timer = EpochTimer(samples, cfg.batch_size)
    try:
        model.fit(**loop.training_inputs(config, model, data, randomness.variable, loops),
                  epochs=2, shuffle=False, verbose=0, callbacks=[randomness, timer])
    finally:
        graph_batches.remove(model)
    first, steady = (row["epoch_s"] for row in timer.rows)
    return Speed(steady / math.ceil(samples / cfg.batch_size), max(0.0, first - steady),
                 _overhead(config, model, rng))


def _overhead(config: Config, model: keras.Model, rng: np.random.Generator) -> float:
    """The test evaluation (a prediction of every test image) and the checkpoints (the
    backup of every epoch, written twice; the best model at about half the epochs)."""
    height, width = config.data.image_size or (32, 32)
    test = rng.normal(size=(config.data.test_size or 10_000, height, width, 3))
    start = time.perf_counter()
    model.predict(test.astype(np.float32), batch_size=max(config.train.batch_size, 256),
                  verbose=0)
    predicted = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        model.save_weights(Path(folder) / "backup.weights.h5")
        backup = time.perf_counter()
        model.save(Path(folder) / "model.keras")
        best = time.perf_counter()
    epochs = config.train.epochs
    return ((predicted - start) + 2 * epochs * (backup - predicted)
            + math.ceil(epochs / 2) * (best - backup) + UNMEASURED_S)
