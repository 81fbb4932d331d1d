"""Compiled models kept between the runs of one process (a sweep's worker), so that a run
whose graph an earlier run already traced skips compiling and tracing it.

A run takes a kept model when everything its traced functions depend on is the same: the
model section, the ``train`` settings other than :data:`OUTSIDE_THE_GRAPH`, and the shapes
of its data (so the repeats of one arm, and arms that differ only in the learning rate).
Only models whose batches are sliced in the graph (:mod:`cnnlab.training.graph_batches`)
are kept; never under mixed precision or a distribution strategy. The kept model is reset
to the exact state a fresh process starts the run from: its weights are those of the
run's own model, built from the run's seed (the same draws, in the same order, as a fresh
process), its name the run's, its optimizer's state that of a freshly built optimizer
of the run's settings, and the run's data is loaded into the variables its loops read.
Each run's history, metrics and checkpoint are identical to a fresh process's (tested).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Hashable

from cnnlab.backend.tf import keras
from cnnlab.config.schema import Config
from cnnlab.data.dataset import Dataset
from cnnlab.training import optimization
from cnnlab.training.graph_batches import Loops
from cnnlab.training.model import build_model

# ``train`` settings that reach the graph only as a variable's value or through callbacks
OUTSIDE_THE_GRAPH = frozenset({
    "learning_rate", "schedule", "warmup_epochs", "schedule_every", "schedule_factor",
    "min_learning_rate", "schedule_patience", "epochs", "early_stopping", "shuffle",
    "verbose",
})
KEPT = 2  # models kept at most: a worker alternates between few shapes


def key(config: Config, data: Dataset) -> Hashable:
    """What a run's traced functions depend on."""
    train = tuple((f.name, getattr(config.train, f.name))
                  for f in dataclasses.fields(config.train) if f.name not in OUTSIDE_THE_GRAPH)
    return (config.model, train, data.x_train.shape, data.x_val.shape, data.num_classes)


def keepable(config: Config) -> bool:
    cfg = config.train
    return cfg.distribute == "none" and not optimization.mixed_precision(cfg)


class WarmModels:
    """The last :data:`KEPT` compiled models of this process and their graph loops."""

    def __init__(self) -> None:
        self.kept: OrderedDict[Hashable, tuple[keras.Model, Loops]] = OrderedDict()
        self.taken = 0

    def keep(self, config: Config, data: Dataset, model: keras.Model, loops: Loops) -> None:
        """Keep a run's model after the run (the oldest kept one goes past :data:`KEPT`)."""
        if keepable(config):
            loops.release()  # the data of a finished run: not kept
            self.kept[key(config, data)] = (model, loops)
            while len(self.kept) > KEPT:
                self.kept.popitem(last=False)

    def take(self, config: Config, data: Dataset) -> tuple[keras.Model, Loops] | None:
        """A kept model for this run, reset to a fresh run's start (call after seeding, in
        place of building), or None. Its loops hold no data: :meth:`Loops.load` the run's."""
        found = self.kept.pop(key(config, data), None) if keepable(config) else None
        if found is None:
            return None
        model, loops = found
        model.name = config.name
        model.set_weights(build_model(config.model, data.input_shape, data.num_classes,
                                      name=config.name).get_weights())
        start = optimization.make_optimizer(config.train)
        start.build(model.trainable_variables)
        for variable, value in zip(model.optimizer.variables, start.variables, strict=True):
            variable.assign(value)
        self.taken += 1
        return model, loops
