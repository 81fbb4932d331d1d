"""How a model learns: the optimizer, the learning rate of every epoch, the loss and the
precision, from the ``train`` section of a config.

The schedule of ``train.schedule`` (after ``train.warmup_epochs`` of linear warm-up from
``learning_rate / warmup_epochs`` up to ``learning_rate``), epoch ``e`` counted from 0
after the warm-up:

- ``constant``: ``learning_rate``;
- ``step``: ``learning_rate * schedule_factor ** (e // schedule_every)``;
- ``cosine``: ``min + (learning_rate - min) * (1 + cos(pi * e / E)) / 2`` with ``E`` the
  epochs after the warm-up and ``min`` = ``min_learning_rate``;
- ``plateau``: Keras' ``ReduceLROnPlateau`` on validation loss (``schedule_factor``,
  ``schedule_patience``, floor ``min_learning_rate``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from cnnlab.backend.tf import keras, tf
from cnnlab.config.schema import TrainConfig


def make_optimizer(cfg: TrainConfig) -> keras.optimizers.Optimizer:
    decay = {"weight_decay": cfg.weight_decay} if cfg.weight_decay is not None else {}
    if cfg.optimizer in ("sgd", "sgd_momentum"):
        return keras.optimizers.SGD(learning_rate=cfg.learning_rate, momentum=cfg.momentum,
                                    nesterov=cfg.nesterov, **decay)
    if cfg.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=cfg.learning_rate, **decay)
    if cfg.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=cfg.learning_rate, **decay)
    return keras.optimizers.RMSprop(learning_rate=cfg.learning_rate, **decay)


def scheduled_rate(cfg: TrainConfig, epoch: int) -> float:
    """The learning rate of 0-based ``epoch`` (for ``plateau``: before any decay)."""
    if epoch < cfg.warmup_epochs:
        return cfg.learning_rate * (epoch + 1) / cfg.warmup_epochs
    after = epoch - cfg.warmup_epochs
    if cfg.schedule == "step":
        return cfg.learning_rate * cfg.schedule_factor ** (after // cfg.schedule_every)
    if cfg.schedule == "cosine":
        span = max(1, cfg.epochs - cfg.warmup_epochs)
        low = cfg.min_learning_rate
        return low + (cfg.learning_rate - low) * 0.5 * (1 + math.cos(math.pi * after / span))
    return cfg.learning_rate


def schedule_callbacks(cfg: TrainConfig) -> list[keras.callbacks.Callback]:
    """The callbacks that set each epoch's learning rate (none for a constant one)."""
    if cfg.schedule == "constant" and not cfg.warmup_epochs:
        return []
    if cfg.schedule != "plateau":
        return [keras.callbacks.LearningRateScheduler(lambda e, _: scheduled_rate(cfg, e))]
    warmup = keras.callbacks.LearningRateScheduler(
        lambda e, rate: scheduled_rate(cfg, e) if e <= cfg.warmup_epochs else float(rate))
    return [warmup, keras.callbacks.ReduceLROnPlateau(
        monitor="val_loss", factor=cfg.schedule_factor, patience=cfg.schedule_patience,
        min_lr=cfg.min_learning_rate, verbose=0)]


def current_rate(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def loss_and_metric(cfg: TrainConfig) -> tuple[Any, Any]:
    """The training loss and accuracy metric; with label smoothing the targets are one-hot
    (:func:`targets`), since Keras' sparse cross-entropy has no smoothing."""
    if cfg.label_smoothing > 0:
        return (keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
                keras.metrics.CategoricalAccuracy(name="accuracy"))
    return "sparse_categorical_crossentropy", "accuracy"


def targets(cfg: TrainConfig, labels: np.ndarray, num_classes: int) -> np.ndarray:
    if cfg.label_smoothing > 0:
        return np.eye(num_classes, dtype=np.float32)[labels]
    return labels


def mixed_precision(cfg: TrainConfig) -> bool:
    """``train.mixed_precision``; ``auto``: on where TensorFlow sees a GPU."""
    if cfg.mixed_precision == "auto":
        return bool(tf.config.list_physical_devices("GPU"))
    return bool(cfg.mixed_precision)


@contextlib.contextmanager
def precision(enabled: bool) -> Iterator[str]:
    """Build and compile inside: layers take the float16 compute policy when ``enabled``;
    the process's policy is restored after (the next run of a sweep starts clean)."""
    before = keras.mixed_precision.global_policy().name
    policy = "mixed_float16" if enabled else "float32"
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield policy
    finally:
        keras.mixed_precision.set_global_policy(before)
