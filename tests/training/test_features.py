"""Features of a run, each on real CIFAR-10 images, through the CLI where users use the CLI:
timing figures, early stopping, shuffle, optimizers and activations, evaluate and
plot-activations (the val split, batch norm, --trust-model, data that changed), and the
Python API."""

from __future__ import annotations

import json
import math
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from helpers import assert_png, one_line_error, sample_members, tiny_args, write_tar
from PIL import Image

import cnnlab
from cnnlab.cli import main
from cnnlab.config.files import load_config
from cnnlab.data.dataset import Dataset, load_dataset
from cnnlab.inference import activations
from cnnlab.runs import storage

HISTORY_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


def cli(*args: object) -> str:
    """Run a cnnlab command in this process; its console output (exit 0 asserted)."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def cli_error(*args: object) -> str:
    """A refused cnnlab command: exit 2 and one line on stderr."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    return one_line_error(result.stderr)


def learning(run_dir: Path) -> list[tuple[float, ...]]:
    """The learning columns of history.csv (timings left out)."""
    rows = storage.read_csv(run_dir / "history.csv")
    return [tuple(row[k] for k in HISTORY_METRICS) for row in rows]


def run_data(run_dir: Path) -> Dataset:
    """The data a run was trained and tested on, from its recorded config."""
    config = load_config(run_dir / "config.yaml")
    return load_dataset(config.data, config.seed, log=lambda _: None)


def run_model(run_dir: Path):
    import keras  # after cnnlab imported TensorFlow its own way (cnnlab.backend.tf)

    return keras.saving.load_model(run_dir / "model.keras")


@pytest.fixture(scope="module")
def run4(tmp_path_factory: pytest.TempPathFactory, sample_archive: Path, cache_dir: Path) -> Path:
    """baseline, 4 epochs of 300 images, batch 32; validation 100 and test 60 images."""
    out = tmp_path_factory.mktemp("features") / "run4"
    cli("train", "baseline", "--out", out,
        *tiny_args(sample_archive, cache_dir, epochs=4, **{"data.test_size": 60}))
    return out


# --- timing ---------------------------------------------------------------------------


def test_ms_per_step_and_epoch_figures_are_medians_of_epochs_2_to_n(run4: Path) -> None:
    metrics = json.loads((run4 / "metrics.json").read_text())
    history = storage.read_csv(run4 / "history.csv")
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    steps = math.ceil(300 / 32)  # optimizer steps per epoch
    for row in history:  # per epoch: training time over the steps; validation apart
        assert row["ms_per_step"] == pytest.approx(1000 * row["train_s"] / steps, abs=1e-3)
        assert row["epoch_s"] == pytest.approx(row["train_s"] + row["val_s"], abs=3e-6)
        assert row["train_s"] > 0 and row["val_s"] > 0
    later = history[1:]  # epochs 2..N: epoch 1 includes tracing
    assert metrics["ms_per_step"] == pytest.approx(
        statistics.median(r["ms_per_step"] for r in later))
    assert metrics["s_per_epoch"] == pytest.approx(statistics.median(r["train_s"] for r in later))
    assert metrics["s_per_epoch_with_validation"] == pytest.approx(
        statistics.median(r["epoch_s"] for r in later))
    assert metrics["first_epoch_s"] == pytest.approx(history[0]["epoch_s"])
    assert "median over epochs 2..N" in metrics["timing_note"]


# --- early stopping -------------------------------------------------------------------


def test_early_stopping_stops_when_validation_loss_stops_improving(
        tmp_path: Path, sample_archive: Path, cache_dir: Path) -> None:
    """Adam at a high rate on 300 images over-fits within a few epochs; patience 1 stops
    at the first epoch whose validation loss is no lower than the best before it."""
    out = tmp_path / "es"
    epochs = 40
    cli("train", "baseline", "--out", out,
        *tiny_args(sample_archive, cache_dir, epochs=epochs, **{
            "train.optimizer": "adam", "train.momentum": "null", "train.learning_rate": 0.003,
            "train.early_stopping": 1}))
    metrics = json.loads((out / "metrics.json").read_text())
    history = storage.read_csv(out / "history.csv")
    assert metrics["status"] == "early_stopped"
    assert metrics["epochs_run"] < epochs and len(history) == metrics["epochs_run"]
    assert [row["epoch"] for row in history] == list(range(1, len(history) + 1))
    val_loss = [row["val_loss"] for row in history]
    for k in range(1, len(val_loss) - 1):  # every epoch before the last improved on the best
        assert val_loss[k] < min(val_loss[:k]), val_loss
    assert val_loss[-1] >= min(val_loss[:-1]), val_loss  # the last one did not: stop
    # the kept checkpoint is still the best by validation accuracy
    val_acc = [row["val_accuracy"] for row in history]
    assert metrics["best_epoch"] == int(np.argmax(val_acc)) + 1
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["early_stopping"] == 1


# --- shuffle, optimizer, activations -----------------------------------------------------


def test_shuffle_false_is_recorded_and_keeps_the_order(tmp_path: Path, sample_archive: Path,
                                                       cache_dir: Path) -> None:
    histories = {}
    for name, shuffle in (("fixed-a", False), ("fixed-b", False), ("shuffled", True)):
        cli("train", "baseline", "--out", tmp_path / name,
            *tiny_args(sample_archive, cache_dir, **{"train.shuffle": shuffle}))
        recorded = yaml.safe_load((tmp_path / name / "config.yaml").read_text())
        assert recorded["train"]["shuffle"] is shuffle
        histories[name] = learning(tmp_path / name)
    assert histories["fixed-a"] == histories["fixed-b"]  # same seed, same order: identical
    assert histories["shuffled"] != histories["fixed-a"]  # the setting changes the batches


def test_rmsprop_with_tanh_and_elu(tmp_path: Path, sample_archive: Path, cache_dir: Path) -> None:
    out = tmp_path / "rms"
    cli("train", "best", "--out", out, *tiny_args(sample_archive, cache_dir, epochs=1, **{
        "train.optimizer": "rmsprop", "train.learning_rate": 0.001,
        "model.activation": "tanh", "model.dense_activation": "elu"}))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "finished" and math.isfinite(metrics["final_train_loss"])
    model = run_model(out)
    assert type(model.optimizer).__name__ == "RMSprop"
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.001)
    for i in (1, 2, 3):
        assert model.get_layer(f"block{i}_conv").activation.__name__ == "tanh"
    assert model.get_layer("dense1").activation.__name__ == "elu"
    assert model.get_layer("output").activation.__name__ == "softmax"
    # the maps really are tanh outputs: within (-1, 1), negative values included
    maps = activations.feature_maps(model, "block1_conv", run_data(out).x_test[:4])
    assert maps.min() < -0.05 and maps.max() > 0.05 and np.abs(maps).max() < 1.0


# --- evaluate and plot-activations ------------------------------------------------------


def test_plot_activations_of_the_validation_split(run4: Path) -> None:
    labels = run_data(run4).y_val
    assert len(labels) == 100  # the validation split, not the 60 test images
    expected = activations.default_images(labels)
    output = cli("plot-activations", run4, "--split", "val", "--layer", "block1_conv")
    written = sorted((run4 / "activations").glob("block1_conv-val*.png"))
    assert [p.name for p in written] == [f"block1_conv-val{i:04d}.png" for i in expected]
    assert f"{len(expected)} figures in {run4 / 'activations'}" in output
    for path in written:
        assert_png(path, (500, 350))
    # image indices count in the chosen split: 70 exists in val (100) but not in test (60)
    cli("plot-activations", run4, "--split", "val", "--layer", "block1_pool", "--image", "70")
    assert_png(run4 / "activations" / "block1_pool-val0070.png", (500, 350))
    line = cli_error("plot-activations", run4, "--image", "70")
    assert "--image 70: out of range" in line and "the test split of this run has 60" in line
    line = cli_error("plot-activations", run4, "--split", "val", "--image", "100")
    assert "the val split of this run has 100 images (0..99)" in line


def test_evaluate_runs_a_model_with_code_only_with_trust_model(run4: Path,
                                                               tmp_path: Path) -> None:
    import keras

    run = tmp_path / "lambda-run"
    shutil.copytree(run4, run, ignore=shutil.ignore_patterns("activations", "evaluation.json"))
    trained = run_model(run)
    inputs = keras.Input((32, 32, 3))
    outputs = trained(keras.layers.Lambda(lambda x: x * 1.0, name="code")(inputs))
    keras.Model(inputs, outputs).save(run / "model.keras")  # same weights, plus Python code

    line = cli_error("evaluate", run)
    assert "model.keras: the model contains code (a Lambda layer)" in line
    assert "--trust-model" in line
    assert not (run / "evaluation.json").exists()
    output = cli("evaluate", run, "--trust-model")
    recorded = json.loads((run / "metrics.json").read_text())
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["test_accuracy"] == pytest.approx(recorded["test_accuracy"], abs=1e-9)
    assert evaluation["confusion_matrix"] == recorded["confusion_matrix"]
    assert f"test accuracy {recorded['test_accuracy']:.4f}" in output


def test_evaluate_and_plot_activations_refuse_data_that_changed(
        tmp_path: Path, sample_archive: Path, cache_dir: Path) -> None:
    data = tmp_path / "data" / "cifar10-sample.tar.gz"
    data.parent.mkdir()
    shutil.copyfile(sample_archive, data)
    run = tmp_path / "run"
    cli("train", "baseline", "--out", run, *tiny_args(data, cache_dir, epochs=1))
    cli("evaluate", run)  # the data as trained on: fine
    before = (run / "evaluation.json").read_bytes()
    # the same path now holds other (real, readable) images: 50 + 20 per class
    write_tar(data, sample_members(sample_archive, 50, 20))
    for command in ("evaluate", "plot-activations"):
        line = cli_error(command, run)
        assert "differs from the data the run used" in line, line
        assert f"restore the original at {data.resolve()}" in line
    assert (run / "evaluation.json").read_bytes() == before
    assert not (run / "activations").exists()


def test_block_conv_with_batch_norm_shows_the_activation_output(
        tmp_path: Path, sample_archive: Path, cache_dir: Path) -> None:
    run = tmp_path / "bn"
    cli("train", "baseline", "--out", run,
        *tiny_args(sample_archive, cache_dir, epochs=1, **{"model.batch_norm": True}))
    model, images = run_model(run), run_data(run).x_test[:3]
    assert activations.response_layer(model, "block1_conv") == "block1_act"
    assert activations.response_layer(model, "block1_pool") == "block1_pool"
    raw = activations.feature_maps(model, "block1_conv", images)
    shown = activations.feature_maps(model, "block1_act", images)
    assert raw.min() < 0 and shown.min() >= 0  # pre-normalization vs after the ReLU
    assert shown.shape == (3, 32, 32, 8)
    for layer in ("block1_conv", "block1_act", "block1_bn"):
        cli("plot-activations", run, "--layer", layer, "--image", "0", "--out", tmp_path / layer)
    figure = {layer: np.asarray(Image.open(tmp_path / layer / f"{layer}-test0000.png")
                                .convert("RGB"), dtype=int)
              for layer in ("block1_conv", "block1_act", "block1_bn")}
    assert figure["block1_conv"].shape == figure["block1_act"].shape  # 8 maps both
    band = int(0.08 * figure["block1_conv"].shape[0])  # the title line at the top
    rows_differing = np.flatnonzero(
        np.abs(figure["block1_conv"] - figure["block1_act"]).sum(axis=(1, 2)))
    assert rows_differing.size and rows_differing.max() < band  # only the titles differ
    assert figure["block1_bn"].shape == figure["block1_conv"].shape
    assert np.abs(figure["block1_bn"][band:] - figure["block1_conv"][band:]).sum() > 0


# --- the Python API -------------------------------------------------------------------


def test_python_api_train_and_evaluate(tmp_path: Path, sample_archive: Path, cache_dir: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no out folder: outputs/<name>-<timestamp> here
    config = cnnlab.load_config("best", [f"data.path={sample_archive}",
                                         f"data.cache_dir={cache_dir}", "data.train_size=300",
                                         "data.val_size=100", "data.test_size=100",
                                         "train.epochs=2", "train.verbose=0"])
    lines: list[str] = []
    run = cnnlab.train(config, log=lines.append)
    assert run.path.parent == Path("outputs") and run.path.name.startswith("best-")
    assert run.metrics == json.loads((run.path / "metrics.json").read_text())
    assert run.config == yaml.safe_load((run.path / "config.yaml").read_text())
    assert run.history == storage.read_csv(run.path / "history.csv") and len(run.history) == 2
    assert run.status == "finished" and run.metrics["trainable_params"] == 39_514
    assert any(line.startswith("finished: best val_accuracy") for line in lines)
    result = cnnlab.evaluate(run.path, log=lines.append)
    assert result["test_accuracy"] == pytest.approx(run.metrics["test_accuracy"], abs=1e-9)
    assert result["recorded_test_accuracy"] == run.metrics["test_accuracy"]
    assert result["confusion_matrix"] == run.metrics["confusion_matrix"]
    assert json.loads((run.path / "evaluation.json").read_text()) == result
