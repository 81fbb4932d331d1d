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
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Loops:
    """A compiled model's train and test functions as graph loops, and the variables they
    read: the training and validation images and targets (``sets``) and the epoch's
    ``order``. A kept model's loops hold no data between runs (:meth:`release`) and read
    the next run's once :meth:`load` has put it there (:mod:`cnnlab.training.warm_models`).
    """

    train_function: Callable
    test_function: Callable
    sets: tuple[tf.Variable, ...]
    order: tf.Variable

    def load(self, train: tuple[np.ndarray, np.ndarray],
             validation: tuple[np.ndarray, np.ndarray]) -> None:
        for variable, values in zip(self.sets, (*train, *validation), strict=True):
            variable.assign(values)

    def release(self) -> None:
        """Free the memory of the sets (the variables keep their type, with no rows)."""
        for variable in self.sets:
            variable.assign(tf.zeros((0, *variable.shape[1:]), variable.dtype))


def _all_batches(step: Callable, images: tf.Variable, targets: tf.Variable,
                 order: tf.Variable, batch_size: int) -> Callable:
    """A graph function running ``step`` on every batch of the current ``order``
    (:func:`cnnlab.training.epoch_randomness.batch`); its iterator argument is not read."""
    step = tf.function(step, autograph=False)  # traced once, called in two places
    steps = steps_per_epoch(int(order.shape[0]), batch_size)

    @tf.function(autograph=False)
    def run(_iterator: object) -> dict[str, tf.Tensor]:
        epoch = order.value()  # read at each call: the epoch's order

        def one(k: tf.Tensor) -> dict[str, tf.Tensor]:
            return step(epoch_randomness.batch(images.value(), targets.value(), epoch, k,
                                               batch_size))
        logs = one(tf.constant(0, tf.int64))
        return tf.while_loop(lambda k, _: k < steps, lambda k, _: (k + 1, one(k)),
                             (tf.constant(1, tf.int64), logs))[1]
    return run


def _held(values: np.ndarray, name: str) -> tf.Variable:
    """A variable of ``values`` whose number of rows may change (:meth:`Loops.release`);
    the rest of its shape is fixed, so the batches' shapes are those of the values'."""
    return tf.Variable(values, trainable=False, name=name,
                       shape=tf.TensorShape([None, *values.shape[1:]]))


def loops(model: keras.Model, train: tuple[np.ndarray, np.ndarray],
          validation: tuple[np.ndarray, np.ndarray], batch_size: int) -> Loops:
    """Graph loops running a whole epoch (in the order of :attr:`Loops.order`, set by
    :class:`cnnlab.training.epoch_randomness.EpochRandomness`) and the whole validation
    with the compiled ``model``'s own steps, on these sets."""
    sets = (_held(train[0], "train_images"), _held(train[1], "train_targets"),
            _held(validation[0], "val_images"), _held(validation[1], "val_targets"))
    order = tf.Variable(np.arange(len(train[0]), dtype=np.int64), trainable=False,
                        name="epoch_order")
    val_order = tf.Variable(np.arange(len(validation[0]), dtype=np.int64), trainable=False,
                            name="val_order")
    return Loops(_all_batches(model.train_step, sets[0], sets[1], order, batch_size),
                 _all_batches(model.test_step, sets[2], sets[3], val_order, batch_size),
                 sets, order)


def install(model: keras.Model, loops: Loops) -> np.ndarray:
    """Put ``loops`` in place of the model's train and test functions; returns what to
    pass ``fit`` as ``x`` (the training samples' indices). :func:`remove` undoes it."""
    model.train_function, model.test_function = loops.train_function, loops.test_function
    return np.arange(int(loops.order.shape[0]), dtype=np.int64)


def remove(model: keras.Model) -> None:
    """Keras' own functions again, built on the next call (they read their iterator)."""
    model.train_function = model.test_function = None
