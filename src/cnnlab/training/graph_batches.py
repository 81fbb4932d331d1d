"""Training batches sliced inside the graph: ``model.fit`` without its per-step iterator.

With one call into the graph per epoch (``train.steps_per_execution: auto``), Keras still
reads every batch from the tf.data iterator of its array adapter, and on a CPU that read
costs more than a small step itself (``benchmarks/bench_fit_loop.py``). Here the epoch's
batches are sliced from tensors the graph holds, in the epoch's order and cut as plain
``fit`` gets them (:mod:`cnnlab.training.epoch_randomness`), and the model's own
``train_step`` runs on each: the same arithmetic, so the same weights and history, bit for
bit (tested against plain ``fit``). ``fit`` keeps everything else (callbacks, validation,
logs); it is given the samples' indices, whose batches the replaced train function does
not read.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cnnlab.backend.tf import keras, tf
from cnnlab.config.schema import TrainConfig
from cnnlab.runs.layout import steps_per_epoch
from cnnlab.training import epoch_randomness


def applies(cfg: TrainConfig, steps_per_call: int, samples: int, val_samples: int) -> bool:
    """Whether a run can use it: no distribution strategy, and one call into the graph
    runs a whole epoch and the whole validation."""
    steps = steps_per_epoch(samples, cfg.batch_size)
    return (cfg.distribute == "none" and steps_per_call == steps
            and steps_per_epoch(val_samples, cfg.batch_size) <= steps)


def _all_batches(step: Callable, x: np.ndarray, y: np.ndarray, order: tf.Variable,
                 batch_size: int) -> Callable:
    """A graph function running ``step`` on every batch of the current ``order``
    (:func:`cnnlab.training.epoch_randomness.batch`); its iterator argument is not read."""
    images, targets = tf.constant(x), tf.constant(y)
    step = tf.function(step, autograph=False)  # traced once, called in two places
    steps = steps_per_epoch(len(x), batch_size)

    @tf.function(autograph=False)
    def run(_iterator: object) -> dict[str, tf.Tensor]:
        epoch = order.value()  # read at each call: the epoch's order

        def one(k: tf.Tensor) -> dict[str, tf.Tensor]:
            return step(epoch_randomness.batch(images, targets, epoch, k, batch_size))
        logs = one(tf.constant(0, tf.int64))
        return tf.while_loop(lambda k, _: k < steps, lambda k, _: (k + 1, one(k)),
                             (tf.constant(1, tf.int64), logs))[1]
    return run


def install(model: keras.Model, train: tuple[np.ndarray, np.ndarray],
            validation: tuple[np.ndarray, np.ndarray], batch_size: int,
            order: tf.Variable) -> np.ndarray:
    """Replace the compiled model's train and test functions by ones that run a whole
    epoch (in ``order``, set by :class:`cnnlab.training.epoch_randomness.EpochRandomness`)
    and the whole validation from in-graph tensors; returns what to pass ``fit`` as ``x``
    (the training samples' indices). :func:`remove` undoes it."""
    samples, val_samples = len(train[0]), len(validation[0])
    model.train_function = _all_batches(model.train_step, *train, order, batch_size)
    model.test_function = _all_batches(
        model.test_step, *validation,
        tf.Variable(np.arange(val_samples, dtype=np.int64), trainable=False), batch_size)
    return np.arange(samples, dtype=np.int64)


def remove(model: keras.Model) -> None:
    """Keras' own functions again, built on the next call (they read their iterator)."""
    model.train_function = model.test_function = None
