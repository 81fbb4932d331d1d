"""Each epoch's randomness, a pure function of the run's seed and the epoch.

- **The order** (``train.shuffle``): epoch ``e`` (from 0) presents the training samples
  in :func:`epoch_order` ``(seed, e)``, so every epoch has its own order (Keras' array
  adapter, under a global seed, presents one order every epoch); shuffling off: the
  samples' own order, every epoch.
- **Dropout and augmentation**: the states of the model's random generators (Keras'
  ``SeedGenerator``) are set from :func:`generator_states` ``(seed, e)`` at the
  epoch's start. Keras' backup does not save them, so without this a resumed run would
  draw other masks and flips than an uninterrupted one.

So two runs of one seed are identical, and a run resumed after epoch ``e`` goes on
exactly as if it had never stopped. :class:`EpochRandomness` sets both when an epoch
begins; the order lives in a variable that both ways of feeding ``fit`` read: the
batches sliced in the graph (:mod:`cnnlab.training.graph_batches`) and
:func:`dataset` (plain ``fit``: ``train.steps_per_execution`` other than ``auto``, or
``train.distribute``). Both cut the order into batches with :func:`batch`, so both
train on the same batches.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.backend.tf import keras, tf
from cnnlab.runs.layout import steps_per_epoch

_GENERATOR_STATE = "seed_generator_state"  # Keras' name for a SeedGenerator's variable


def epoch_order(seed: int, epoch: int, samples: int) -> np.ndarray:
    """The training samples' indices in the order epoch ``epoch`` (from 0) presents them."""
    return np.random.default_rng([seed, epoch]).permutation(samples).astype(np.int64)


def generator_states(seed: int, epoch: int, count: int) -> np.ndarray:
    """Start states of ``count`` random generators for epoch ``epoch``: (key, counter 0)."""
    keys = np.random.SeedSequence([seed, epoch, 1]).generate_state(count)
    return np.stack([keys.astype(np.int64), np.zeros(count, np.int64)], axis=1)


class EpochRandomness(keras.callbacks.Callback):
    """Sets the epoch's order (``variable``) and the model's generator states at each
    epoch's start (the epoch counted from the first, also after ``--resume``)."""

    def __init__(self, seed: int, samples: int, shuffle: bool,
                 variable: tf.Variable | None = None):
        """``variable``: the order variable the graph loops read (a new one if None)."""
        super().__init__()
        self.seed, self.samples, self.shuffle = seed, samples, shuffle
        self.variable = variable if variable is not None else tf.Variable(
            np.arange(samples, dtype=np.int64), trainable=False, name="epoch_order")

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.variable.assign(epoch_order(self.seed, epoch, self.samples) if self.shuffle
                             else np.arange(self.samples, dtype=np.int64))
        generators = [v for v in self.model.variables if v.name == _GENERATOR_STATE]
        states = generator_states(self.seed, epoch, len(generators))
        for variable, state in zip(generators, states, strict=True):
            variable.assign(state)


def batch(images: tf.Tensor, targets: tf.Tensor, order: tf.Tensor, k: tf.Tensor,
          batch_size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Batch ``k`` of ``order``: full batches, then the rest, as Keras' array adapter cuts
    them (a static batch size when every batch is full, else none)."""
    samples = int(order.shape[0])
    if samples % batch_size:
        start = k * batch_size
        chosen = order[start:tf.minimum(start + batch_size, samples)]
    else:
        chosen = tf.reshape(order, (samples // batch_size, batch_size))[k]
    return tf.gather(images, chosen), tf.gather(targets, chosen)


def dataset(x: np.ndarray, y: np.ndarray, order: tf.Variable,
            batch_size: int) -> tf.data.Dataset:
    """The epoch's batches for plain ``fit``, read through ``order`` when ``fit`` starts
    the epoch's pass (after :class:`EpochRandomness` has set it)."""
    images, targets = tf.constant(x), tf.constant(y)
    steps = steps_per_epoch(len(x), batch_size)
    # prefetched within the epoch only: fit makes a new iterator for every epoch
    return tf.data.Dataset.range(steps).map(
        lambda k: batch(images, targets, order.value(), k, batch_size)
    ).prefetch(tf.data.AUTOTUNE)
