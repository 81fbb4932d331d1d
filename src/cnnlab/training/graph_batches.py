"""Training batches sliced inside the graph: ``model.fit`` without its per-step iterator.

With one call into the graph per epoch (``train.steps_per_execution: auto``), Keras still
reads every batch from the tf.data iterator of its array adapter, and on a CPU that read
costs more than a small step itself (``benchmarks/bench_fit_loop.py``). Here the epoch's
batches are sliced from tensors the graph holds, in the order the adapter would present
them, and the model's own ``train_step`` runs on each: the same arithmetic, so the same
weights and history, bit for bit (tested against ``fit`` fed the arrays). ``fit`` keeps
everything else (callbacks, validation, logs); it is given the samples' indices, whose
batches the replaced train function does not read.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cnnlab.backend.tf import keras, tf
from cnnlab.config.schema import TrainConfig
from cnnlab.runs.layout import steps_per_epoch


def applies(cfg: TrainConfig, steps_per_call: int, samples: int, val_samples: int) -> bool:
    """Whether a run can use it: no distribution strategy, and one call into the graph
    runs a whole epoch and the whole validation."""
    steps = steps_per_epoch(samples, cfg.batch_size)
    return (cfg.distribute == "none" and steps_per_call == steps
            and steps_per_epoch(val_samples, cfg.batch_size) <= steps)


def adapter_order(samples: int, shuffle: bool) -> tf.Tensor:
    """The order in which Keras' array adapter presents the samples.

    The same dataset function as the adapter's, so the same shuffle seed (the global seed
    and the op's place in the function); under a global seed Keras presents this same
    order every epoch, which the equality test against ``fit`` relies on."""
    def permutation(_: tf.Tensor) -> tf.Tensor:
        indices = tf.range(samples, dtype=tf.int64)
        if shuffle:
            indices = tf.random.shuffle(indices)
        return indices
    return next(iter(tf.data.Dataset.range(1).map(permutation)))


def _all_batches(step: Callable, x: np.ndarray, y: np.ndarray, order: tf.Tensor,
                 batch_size: int) -> Callable:
    """A graph function running ``step`` on every batch of ``order``, as the adapter
    batches it: full batches, then the rest; its iterator argument is not read."""
    samples = len(x)
    images, targets = tf.constant(x), tf.constant(y)
    step = tf.function(step, autograph=False)  # traced once, called in two places
    steps, partial = steps_per_epoch(samples, batch_size), samples % batch_size != 0

    def batch(k: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        if partial:  # the adapter's batches then have no static size either
            start = k * batch_size
            chosen = order[start:tf.minimum(start + batch_size, samples)]
        else:
            chosen = tf.reshape(order, (steps, batch_size))[k]
        return tf.gather(images, chosen), tf.gather(targets, chosen)

    @tf.function(autograph=False)
    def run(_iterator: object) -> dict[str, tf.Tensor]:
        logs = step(batch(tf.constant(0)))
        return tf.while_loop(lambda k, _: k < steps, lambda k, _: (k + 1, step(batch(k))),
                             (tf.constant(1), logs))[1]
    return run


def install(model: keras.Model, train: tuple[np.ndarray, np.ndarray],
            validation: tuple[np.ndarray, np.ndarray], batch_size: int,
            shuffle: bool) -> np.ndarray:
    """Replace the compiled model's train and test functions by ones that run a whole
    epoch and the whole validation from in-graph tensors; returns what to pass ``fit``
    as ``x`` (the training samples' indices). :func:`remove` undoes it."""
    samples, val_samples = len(train[0]), len(validation[0])
    model.train_function = _all_batches(model.train_step, *train,
                                        adapter_order(samples, shuffle), batch_size)
    model.test_function = _all_batches(model.test_step, *validation,
                                       tf.range(val_samples, dtype=tf.int64), batch_size)
    return np.arange(samples, dtype=np.int64)


def remove(model: keras.Model) -> None:
    """Keras' own functions again, built on the next call (they read their iterator)."""
    model.train_function = model.test_function = None
