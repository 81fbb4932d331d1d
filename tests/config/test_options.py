"""Training options and model shapes (issue 16): schedules, AdamW, Nesterov, L1, label
smoothing, mixed precision, VGG-style blocks, global pooling, the keras-cifar10 config."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import assert_png, one_line_error

from cnnlab.cli import main
from cnnlab.config.files import load_config
from cnnlab.runs import load
from cnnlab.training.optimization import scheduled_rate

KERAS_CIFAR10_PARAMS = 1_250_858  # 896 + 9,248 + 18,496 + 36,928 + 1,180,160 + 5,130


def train_cli(out: Path, sample_archive: Path, cache_dir: Path, base: str = "baseline",
              **settings: object) -> load.Run:
    values = {"data.path": sample_archive, "data.cache_dir": cache_dir,
              "data.download": "false", "data.train_size": 300, "data.val_size": 100,
              "data.test_size": 100, "train.epochs": 2, "train.verbose": 0, **settings}
    args = [a for key, value in values.items() for a in ("--set", f"{key}={value}")]
    result = CliRunner().invoke(main, ["train", base, "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    return load.read_run(out)


def rates(run: load.Run) -> list[float]:
    return [float(row["learning_rate"]) for row in run.history]


@pytest.mark.parametrize("settings", [
    {"train.schedule": "step", "train.schedule_every": 2, "train.schedule_factor": 0.5},
    {"train.schedule": "cosine", "train.warmup_epochs": 2, "train.min_learning_rate": 0.001},
    {"train.schedule": "constant", "train.warmup_epochs": 3},
])
def test_learning_rate_column_follows_the_schedule(tmp_path, sample_archive, cache_dir,
                                                   settings) -> None:
    run = train_cli(tmp_path / "run", sample_archive, cache_dir, **{
        "train.epochs": 5, "train.learning_rate": 0.02, **settings})
    cfg = load_config(None, {"train.epochs": 5, "train.learning_rate": 0.02, **settings}).train
    expected = [scheduled_rate(cfg, e) for e in range(5)]
    assert rates(run) == pytest.approx(expected, rel=1e-6)
    assert len(set(expected)) > 1  # the schedule really moves
    assert_png(run.path / "learning_rate.png", (300, 150), aspect=(1.2, 3.0))
    assert "learning_rate.png" in (run.path / "report.html").read_text(encoding="utf-8")


def test_schedule_formulas_by_hand() -> None:
    cfg = load_config(None, {"train.learning_rate": 0.1, "train.epochs": 6,
                             "train.schedule": "cosine", "train.warmup_epochs": 2}).train
    # warm-up 0.05, 0.1; then cosine over 4 epochs from 0.1 to 0: 0.1, 0.0853..., 0.05, ...
    assert [round(scheduled_rate(cfg, e), 6) for e in range(6)] == [
        0.05, 0.1, 0.1, round(0.05 * (1 + math.cos(math.pi / 4)), 6), 0.05,
        round(0.05 * (1 + math.cos(3 * math.pi / 4)), 6)]
    step = load_config(None, {"train.learning_rate": 0.1, "train.schedule": "step",
                              "train.schedule_every": 3, "train.schedule_factor": 0.1}).train
    assert [scheduled_rate(step, e) for e in (0, 2, 3, 6)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.001])


def test_plateau_lowers_the_rate_after_patience_epochs_without_a_better_val_loss(
        tmp_path, sample_archive, cache_dir) -> None:
    run = train_cli(tmp_path / "run", sample_archive, cache_dir, **{
        "train.epochs": 6, "train.optimizer": "adam", "train.momentum": "null",
        "train.learning_rate": 0.01, "train.schedule": "plateau",
        "train.schedule_patience": 1, "train.schedule_factor": 0.5,
        "train.min_learning_rate": 0.002})
    # Keras' ReduceLROnPlateau rule (min_delta 1e-4, no cooldown), replayed on the history
    rate, best, wait, expected = 0.01, math.inf, 0, []
    for row in run.history:
        expected.append(rate)
        if row["val_loss"] < best - 1e-4:
            best, wait = row["val_loss"], 0
        else:
            wait += 1
            if wait >= 1:
                rate, wait = max(rate * 0.5, 0.002), 0
    assert rates(run) == pytest.approx(expected, rel=1e-6)
    assert rates(run)[-1] < 0.01  # 300 images over-fit: the validation loss stops falling


def test_optimizers_weight_decay_and_nesterov_reach_keras(tmp_path, sample_archive,
                                                          cache_dir) -> None:
    adamw = train_cli(tmp_path / "adamw", sample_archive, cache_dir, **{
        "train.optimizer": "adamw", "train.learning_rate": 0.001, "train.momentum": "null"})
    assert adamw.config["train"]["weight_decay"] == 0.004  # Keras' AdamW default, recorded
    optimizer = load.load_run_model(adamw).optimizer
    assert type(optimizer).__name__ == "AdamW"
    assert optimizer.get_config()["weight_decay"] == pytest.approx(0.004)
    nesterov = train_cli(tmp_path / "nesterov", sample_archive, cache_dir, **{
        "train.optimizer": "sgd_momentum", "train.momentum": 0.9, "train.nesterov": "true",
        "train.weight_decay": 0.0001})
    config = load.load_run_model(nesterov).optimizer.get_config()
    assert config["nesterov"] is True and config["momentum"] == pytest.approx(0.9)
    assert config["weight_decay"] == pytest.approx(0.0001)


def test_l1_adds_its_penalty_to_the_loss(tmp_path, sample_archive, cache_dir) -> None:
    run = train_cli(tmp_path / "l1", sample_archive, cache_dir, **{
        "model.l1": 0.001, "model.l2": 0.002, "train.epochs": 1})
    model = load.load_run_model(run)
    data = load.load_run_data(run, log=lambda _: None)
    x, y = data.x_val, data.y_val
    loss = model.evaluate(x, y, batch_size=len(y), verbose=0)[0]
    probabilities = model.predict(x, verbose=0)
    cross_entropy = -np.mean(np.log(probabilities[np.arange(len(y)), y]))
    kernels = [layer.kernel.numpy() for layer in model.layers if hasattr(layer, "kernel")]
    penalty = sum(0.001 * np.abs(k).sum() + 0.002 * np.square(k).sum() for k in kernels)
    assert penalty > 0.01  # large enough to matter
    assert loss == pytest.approx(cross_entropy + penalty, rel=1e-4)


def test_label_smoothing_trains_on_smoothed_targets(tmp_path, sample_archive,
                                                    cache_dir) -> None:
    run = train_cli(tmp_path / "smooth", sample_archive, cache_dir, **{
        "train.label_smoothing": 0.2, "train.epochs": 1})
    assert {"accuracy", "val_accuracy"} <= set(run.history[0])
    model = load.load_run_model(run)
    data = load.load_run_data(run, log=lambda _: None)
    probabilities = model.predict(data.x_val, verbose=0)
    smoothed = np.full(probabilities.shape, 0.2 / 10) + 0.8 * np.eye(10)[data.y_val]
    by_hand = -np.mean(np.sum(smoothed * np.log(np.clip(probabilities, 1e-7, 1)), axis=1))
    assert run.history[0]["val_loss"] == pytest.approx(by_hand, rel=1e-3)


def test_mixed_precision_is_off_on_a_cpu_unless_asked(tmp_path, sample_archive,
                                                       cache_dir) -> None:
    auto = train_cli(tmp_path / "auto", sample_archive, cache_dir, **{"train.epochs": 1})
    assert auto.metrics["mixed_precision"] == {"requested": "auto", "policy": "float32"}
    forced = train_cli(tmp_path / "forced", sample_archive, cache_dir, **{
        "train.epochs": 1, "train.mixed_precision": "true"})
    assert forced.metrics["mixed_precision"] == {"requested": True, "policy": "mixed_float16"}
    model = load.load_run_model(forced)
    assert model.get_layer("block1_conv").compute_dtype == "float16"
    assert model.get_layer("output").compute_dtype == "float32"  # probabilities stay float32
    assert forced.metrics["status"] == "finished"
    after = train_cli(tmp_path / "after", sample_archive, cache_dir, **{"train.epochs": 1})
    assert after.metrics["mixed_precision"]["policy"] == "float32"  # the policy was restored


def test_keras_cifar10_config_trains_and_has_its_parameter_count(
        tmp_path, sample_archive, cache_dir) -> None:
    summary = CliRunner().invoke(main, ["summary", "keras-cifar10"])
    assert summary.exit_code == 0
    names = [line.split()[0] for line in summary.output.splitlines()[3:-1]]
    assert names == ["block1_conv1", "block1_conv2", "block1_pool", "block1_dropout",
                     "block2_conv1", "block2_conv2", "block2_pool", "block2_dropout",
                     "flatten", "dense1", "dense1_dropout", "output"]
    assert f"Trainable params: {KERAS_CIFAR10_PARAMS:,}" in summary.output
    assert "30x30x32" in summary.output and "6x6x64" in summary.output  # valid padding
    run = train_cli(tmp_path / "kc", sample_archive, cache_dir, base="keras-cifar10",
                    **{"train.epochs": 1})
    assert run.metrics["trainable_params"] == KERAS_CIFAR10_PARAMS
    assert run.metrics["status"] == "finished"


def test_vgg_blocks_with_batch_norm_and_global_pool_draw_every_conv_layer(
        tmp_path, sample_archive, cache_dir) -> None:
    run = train_cli(tmp_path / "vgg", sample_archive, cache_dir, base="best", **{
        "model.filters": "[[8, 8], 16]", "model.kernel_size": "[[3, 5], 3]",
        "model.batch_norm": "true", "model.global_pool": "true", "model.dense": "[]",
        "train.epochs": 1})
    model = load.load_run_model(run)
    layers = [layer.name for layer in model.layers]
    assert layers[:8] == ["block1_conv1", "block1_bn1", "block1_act1", "block1_conv2",
                          "block1_bn2", "block1_act2", "block1_pool", "block2_conv"]
    assert "global_pool" in layers and "flatten" not in layers
    assert model.get_layer("block1_conv2").kernel.shape == (5, 5, 8, 8)
    # 8*(3*3*3)+8 + 8*(5*5*8)+8 + 16*(3*3*8)+16 + batch norm 2*(8+8+16) + output 16*10+10
    assert run.metrics["trainable_params"] == 224 + 1608 + 1168 + 64 + 170
    result = CliRunner().invoke(main, ["plot-activations", str(run.path), "--image", "1"])
    assert result.exit_code == 0, result.output
    drawn = sorted(p.name for p in (run.path / "activations").glob("*.png"))
    assert drawn == ["block1_conv1-test0001.png", "block1_conv2-test0001.png",
                     "block2_conv-test0001.png"]
    assert_png(run.path / "activations" / "block1_conv2-test0001.png", (600, 300))


@pytest.mark.parametrize(("settings", "fragment"), [
    (["model.filters=[[8, 8], 16]", "model.padding=[[same], same]"],
     "model.padding: block 1 has 1 values ['same'] but 2 convolutions"),
    (["model.filters=[[8, 8], []]"], "model.filters: got [[8, 8], []]"),
    (["train.optimizer=adam", "train.momentum=null", "train.nesterov=true"],
     "train.nesterov: optimizer 'adam'"),
    (["train.nesterov=true"], "train.nesterov: true needs momentum"),
    (["train.schedule=linear"], "train.schedule: got 'linear'; expected one of constant"),
    (["train.label_smoothing=1.0"], "train.label_smoothing: got 1.0"),
    (["train.mixed_precision=maybe"], "expected auto or true or false"),
    (["model.pool_size=[[2, 2]]"], "model.pool_size: got [[2, 2]]"),
])
def test_bad_options_are_one_line_errors(settings: list[str], fragment: str) -> None:
    args = [a for s in settings for a in ("--set", s)]
    result = CliRunner().invoke(main, ["train", "baseline", *args])
    assert result.exit_code == 2
    one_line_error(result.stderr, fragment)
