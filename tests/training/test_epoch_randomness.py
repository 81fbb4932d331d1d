"""train.shuffle reshuffles every epoch: each epoch's order a function of (seed, epoch),
the same for two runs of one seed and after --resume, and the one training uses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import tiny_args

LEARNING = ("loss", "accuracy", "val_loss", "val_accuracy")


def test_each_epoch_has_its_own_order_drawn_from_seed_and_epoch() -> None:
    from cnnlab.training.epoch_randomness import epoch_order

    orders = [epoch_order(7, epoch, 300) for epoch in range(4)]
    for order in orders:
        assert sorted(order.tolist()) == list(range(300))  # every sample once
    assert len({tuple(o) for o in orders}) == 4  # differ between epochs
    assert np.array_equal(epoch_order(7, 2, 300), orders[2])  # a function of (seed, epoch)
    assert not np.array_equal(epoch_order(8, 2, 300), orders[2])


def _model(config, data, steps_per_execution: int):
    from cnnlab.backend.tf import keras
    from cnnlab.training.model import build_model

    keras.utils.set_random_seed(0)
    model = build_model(config.model, data.input_shape, data.num_classes)
    model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy",
                  steps_per_execution=steps_per_execution)
    return model


@pytest.mark.parametrize("batch_size", [32, 30], ids=["partial-batch", "full-batches"])
def test_training_reads_each_epochs_order(tiny_config, batch_size: int) -> None:
    """Three epochs with the batches sliced in the graph learn exactly what three
    one-epoch fits on the arrays put in epoch_order(seed, epoch) learn."""
    from cnnlab.data.dataset import load_dataset
    from cnnlab.training import graph_batches
    from cnnlab.training.epoch_randomness import EpochRandomness, epoch_order

    config = tiny_config("baseline", **{"train.batch_size": batch_size})
    data = load_dataset(config.data, config.seed, lambda _: None)
    x, y, samples = data.x_train, data.y_train, len(data.y_train)
    steps = -(-samples // batch_size)

    graph = _model(config, data, steps)
    loops = graph_batches.loops(graph, (x, y), (data.x_val, data.y_val), batch_size)
    order = EpochRandomness(seed=7, samples=samples, shuffle=True, variable=loops.order)
    indices = graph_batches.install(graph, loops)
    graph.fit(indices, y, batch_size=batch_size, epochs=3, shuffle=False, verbose=0,
              callbacks=[order])

    reference = _model(config, data, 1)
    for epoch in range(3):
        chosen = epoch_order(7, epoch, samples)
        reference.fit(x[chosen], y[chosen], batch_size=batch_size, epochs=1, shuffle=False,
                      verbose=0)
    for ours, theirs in zip(graph.get_weights(), reference.get_weights(), strict=True):
        assert np.array_equal(ours, theirs)


def _interrupt_after(epoch: int):
    def stop_check(done: int, logs: dict) -> bool:
        if done == epoch:
            raise KeyboardInterrupt  # as Ctrl-C after the epoch's backup
        return False
    return stop_check


@pytest.mark.parametrize(("base", "overrides"), [
    ("baseline", {"train.batch_size": 32}),
    ("baseline", {"train.batch_size": 32, "train.steps_per_execution": 1}),
    ("best", {"train.batch_size": 64, "model.conv_dropout": 0.2, "model.augment": True}),
], ids=["graph-batches", "plain-fit", "dropout-augment"])
def test_resume_continues_exactly_as_an_uninterrupted_run(
        tmp_path: Path, tiny_config, base: str, overrides: dict) -> None:
    from cnnlab.errors import TrainingInterrupted
    from cnnlab.training.loop import train

    config = tiny_config(base, **{"train.epochs": 4, **overrides})
    whole = train(config, tmp_path / "whole", log=lambda _: None)
    again = train(config, tmp_path / "again", log=lambda _: None)
    with pytest.raises(TrainingInterrupted):
        train(config, tmp_path / "cut", log=lambda _: None, stop_check=_interrupt_after(2))
    resumed = train(config, tmp_path / "cut", log=lambda _: None, resume=True)

    def learned(run):
        return [[row[k] for k in LEARNING] for row in run.history]
    assert len(learned(whole)) == 4
    assert learned(again) == learned(whole)  # two runs of one seed: bit-identical
    assert learned(resumed) == learned(whole)
    for key in ("test_loss", "test_accuracy", "confusion_matrix", "best_epoch"):
        assert resumed.metrics[key] == whole.metrics[key], key


def test_resuming_a_run_of_an_older_arithmetic_is_refused(
        tmp_path: Path, tiny_config, sample_archive: Path, cache_dir: Path) -> None:
    from cnnlab.cli import main
    from cnnlab.errors import TrainingInterrupted
    from cnnlab.training.arithmetic import ARITHMETIC
    from cnnlab.training.loop import train

    out = tmp_path / "cut"
    with pytest.raises(TrainingInterrupted):
        train(tiny_config("baseline"), out, log=lambda _: None, stop_check=_interrupt_after(1))
    status = json.loads((out / "status.json").read_text())
    assert status["status"] == "interrupted" and status["arithmetic"] == ARITHMETIC
    del status["arithmetic"]  # as every run recorded before the version was
    (out / "status.json").write_text(json.dumps(status))
    kept = (out / "history.csv").read_text()

    args = ["train", "baseline", "--out", str(out), *tiny_args(sample_archive, cache_dir),
            "--resume"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"cnnlab: error: --out {out}: this run was trained with arithmetic 1, this cnnlab "
        f"uses {ARITHMETIC} (other batch orders and random draws), so its epochs cannot be "
        "continued; start a new run (a new --out, without --resume)")
    assert (out / "history.csv").read_text() == kept  # nothing touched

    status["arithmetic"] = ARITHMETIC  # the same folder of this version resumes
    (out / "status.json").write_text(json.dumps(status))
    resumed = CliRunner().invoke(main, args)
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((out / "metrics.json").read_text())["arithmetic"] == ARITHMETIC
