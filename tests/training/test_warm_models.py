"""A compiled model kept between runs gives each run exactly what a fresh process gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnlab.runs import layout, load
from cnnlab.training.loop import train
from cnnlab.training.warm_models import WarmModels, keepable, key

# a model and a run exercising every state a kept model must shed: batch norm's moving
# statistics, dropout and augmentation draws, Adam's moments and step count
FULL = {"model.batch_norm": True, "model.conv_dropout": 0.2, "model.augment": True,
        "train.optimizer": "adam", "train.momentum": None, "train.learning_rate": 0.002,
        "train.batch_size": 64}


def _record(run: load.Run) -> tuple:
    columns = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")
    history = [[row[c] for c in columns] for row in run.history]
    metrics = {k: run.metrics[k] for k in ("test_accuracy", "test_loss", "confusion_matrix",
                                           "best_epoch", "best_val_accuracy")}
    model = load.load_model(run.path / layout.MODEL_FILE)
    optimizer = model.optimizer.get_config()
    optimizer.pop("name")  # Keras numbers optimizers per process: adam, adam_1, ...
    saved = {"model": model.get_config(), "optimizer": optimizer,
             "summary": (run.path / layout.SUMMARY_FILE).read_text()}
    return history, metrics, model.get_weights(), saved


def _assert_same(ours: tuple, fresh: tuple) -> None:
    assert ours[0] == fresh[0]
    assert ours[1] == fresh[1]
    for a, b in zip(ours[2], fresh[2], strict=True):
        assert np.array_equal(a, b)
    assert ours[3] == fresh[3]


def test_kept_model_runs_as_a_fresh_one(tiny_config, tmp_path: Path) -> None:
    """Run 1 leaves its model; runs 2 (another name, seed and split, a lower learning
    rate, a decaying one) and 3 (a third seed) take it, and each equals a run with a model
    of its own: history, test metrics, the checkpoint's weights, model and optimizer
    config, and the layer summary."""
    warm, quiet = WarmModels(), (lambda _: None)
    first = tiny_config("baseline", seed=1, name="first", **{**FULL, "data.split_seed": 1})
    train(first, tmp_path / "first", log=quiet, warm=warm)
    later = [tiny_config("baseline", seed=2, name="second",
                         **{**FULL, "train.learning_rate": 0.001, "train.schedule": "cosine"}),
             tiny_config("baseline", seed=3, name="third", **FULL)]
    for k, config in enumerate(later):
        reused = train(config, tmp_path / f"kept{k}", log=quiet, warm=warm)
        assert warm.taken == k + 1  # it did take the kept model
        fresh = train(config, tmp_path / f"fresh{k}", log=quiet)
        _assert_same(_record(reused), _record(fresh))
    assert _record(reused)[0] != _record(load.read_run(tmp_path / "first"))[0]
    assert len(warm.kept) == 1  # the last run's model, kept again


def test_only_a_matching_graph_is_taken(tiny_config) -> None:
    """Another optimizer, batch size, model or data shape builds its own model; another
    seed, name, learning rate, schedule or number of epochs takes a kept one."""
    from cnnlab.data.dataset import load_dataset

    base = tiny_config("baseline")
    data = load_dataset(base.data, base.seed, lambda _: None)
    fewer = load_dataset(tiny_config("baseline", **{"data.train_size": 200}).data, 0,
                         lambda _: None)
    kept = key(base, data)
    for change in [{"train.optimizer": "adam", "train.momentum": None},
                   {"train.batch_size": 16}, {"model.dense": [16]},
                   {"train.label_smoothing": 0.1}]:
        assert key(tiny_config("baseline", **change), data) != kept
    assert key(base, fewer) != kept
    for change in [{"seed": 5}, {"name": "other"}, {"train.learning_rate": 0.1},
                   {"train.schedule": "cosine"}, {"train.epochs": 7},
                   {"train.early_stopping": 2}]:
        assert key(tiny_config("baseline", **change), data) == kept
    assert not keepable(tiny_config("baseline", **{"train.mixed_precision": True}))
