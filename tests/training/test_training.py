"""Training robustness: Ctrl-C and --resume, refused models, early checks."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cnnlab.cli import main
from cnnlab.errors import RunError
from cnnlab.runs import load

REPO = Path(__file__).resolve().parents[2]


def train_args(sample_archive: Path, cache_dir: Path, out: Path, epochs: int,
               base: str = "baseline") -> list[str]:
    return ["train", base, "--out", str(out), "--set", f"data.path={sample_archive}",
            "--set", f"data.cache_dir={cache_dir}", "--set", "data.train_size=1000",
            "--set", "data.val_size=200", "--set", "data.test_size=200",
            "--set", f"train.epochs={epochs}"]


def test_ctrl_c_keeps_history_and_resume_completes_the_run(
    tmp_path: Path, sample_archive: Path, cache_dir: Path
) -> None:
    out = tmp_path / "run"
    # keras-cifar10 (1.25 M parameters): epochs long enough to interrupt after the second
    args = train_args(sample_archive, cache_dir, out, epochs=8, base="keras-cifar10")
    proc = subprocess.Popen([sys.executable, "-m", "cnnlab.cli", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline:  # wait until two epochs are backed up
        meta = out / "backup" / "training_metadata.json"
        if meta.exists() and json.loads(meta.read_text() or "{}").get("epoch", 0) >= 2:
            break
        time.sleep(0.1)
    assert time.time() < deadline, "no epoch was backed up in time"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "training interrupted" in stderr and "Traceback" not in stderr
    status = json.loads((out / "status.json").read_text())
    assert status["status"] == "interrupted" and 2 <= status["epochs_completed"] < 8
    assert not (out / "metrics.json").exists()
    kept = list(csv.DictReader((out / "history.csv").open()))
    assert len(kept) == status["epochs_completed"]  # the epochs the backup holds
    recorded = (out / "config.yaml").read_text()

    # resuming with a different config is refused, nothing touched
    other = CliRunner().invoke(main, [*train_args(sample_archive, cache_dir, out, 5,
                                                  base="keras-cifar10"), "--resume"])
    assert other.exit_code == 2 and "train.epochs differ" in other.output
    assert (out / "config.yaml").read_text() == recorded

    # the same command with --resume finishes the run: all 8 epochs, the first ones kept
    resumed = CliRunner().invoke(main, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert f"resuming after epoch {len(kept)}" in resumed.output
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 9))
    assert rows[: len(kept)] == kept  # completed epochs kept as they were
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["epochs_run"] == 8
    assert not (out / "status.json").exists() and not (out / "backup").exists()

    again = CliRunner().invoke(main, [*args, "--resume"])
    assert again.exit_code == 2 and "already finished" in again.output


def test_resume_needs_an_interrupted_run(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["train", "baseline", "--resume"])
    assert result.exit_code == 2 and "--resume needs --out" in result.output
    result = CliRunner().invoke(main, ["train", "baseline", "--resume", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "no interrupted run here" in result.output


def test_model_with_code_is_refused_unless_trusted(tmp_path: Path) -> None:
    from cnnlab.backend.tf import keras

    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda x: x * 2.0, name="code")(inputs)
    path = tmp_path / "model.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(RunError, match="contains code \\(a Lambda layer\\).*--trust-model"):
        load.load_model(path)
    assert load.load_model(path, trust_code=True).get_layer("code") is not None


def test_model_problems_are_found_before_data_is_read() -> None:
    result = CliRunner().invoke(main, ["train", "baseline",
                                       "--set", "model.filters=[8, 8, 8, 8, 8, 8]",
                                       "--set", "data.path=/nonexistent/data"])
    assert result.exit_code == 2
    assert "model.pool_size: block 6 pool 2 is larger than its 1x1 input" in result.output


def test_config_errors_do_not_import_tensorflow() -> None:
    code = ("import sys\nfrom cnnlab.cli import main\n"
            "try:\n    main(['config', 'best', '--set', 'train.epochs=0'])\n"
            "except SystemExit as e:\n    print(e.code, 'tensorflow' in sys.modules)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=60)
    assert out.stdout.strip() == "2 False"
    assert out.stderr.strip() == "cnnlab: error: train.epochs: got 0; expected an integer >= 1"


def test_steps_per_execution_auto_is_one_call_per_epoch(tiny_config) -> None:
    from cnnlab.training.loop import steps_per_execution

    cfg = tiny_config("baseline", **{"train.batch_size": 32})
    assert steps_per_execution(cfg.train, 300) == 10  # auto: one call per epoch
    capped = tiny_config("baseline", **{"train.steps_per_execution": 64})
    assert steps_per_execution(capped.train, 300) == 10


LEARNING = ("loss", "accuracy", "val_loss", "val_accuracy")


@pytest.mark.parametrize(("base", "overrides"), [
    ("baseline", {"train.batch_size": 32}),  # a partial last batch (300 = 9 x 32 + 12)
    ("baseline", {"train.batch_size": 1}),
    ("baseline", {"train.batch_size": 30, "train.shuffle": False}),  # full batches only
    ("best", {"train.batch_size": 16, "train.label_smoothing": 0.1, "model.batch_norm": True,
              "model.conv_dropout": 0.2, "model.augment": True, "model.l2": 0.001,
              "train.epochs": 3}),
], ids=["partial-batch", "batch-1", "no-shuffle", "adam-bn-dropout-augment"])
def test_batches_sliced_in_the_graph_learn_exactly_what_fit_learns(
        tmp_path: Path, tiny_config, base: str, overrides: dict) -> None:
    """steps_per_execution auto slices each epoch's batches in the graph
    (cnnlab.training.graph_batches); 1 is plain fit reading Keras' iterator. Every number of the
    history and the test set must be bit-identical."""
    from cnnlab.training.loop import train

    runs = {spe: train(tiny_config(base, **overrides,
                                   **{"train.steps_per_execution": spe}),
                       tmp_path / str(spe), log=lambda _: None) for spe in (1, "auto")}
    fit, graph = runs[1], runs["auto"]
    assert [[r[k] for k in LEARNING] for r in graph.history] == \
        [[r[k] for k in LEARNING] for r in fit.history]
    for key in ("test_loss", "test_accuracy", "confusion_matrix", "best_epoch"):
        assert graph.metrics[key] == fit.metrics[key], key
    assert len(graph.history) == overrides.get("train.epochs", 2)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_stop_training_like_ctrl_c(tmp_path: Path, sample_archive: Path,
                                                      cache_dir: Path, signum: int,
                                                      code: int) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "cnnlab.cli",
                             *train_args(sample_archive, cache_dir, out, epochs=40)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    meta = out / "backup" / "training_metadata.json"
    deadline = time.time() + 240
    while time.time() < deadline and not (
            meta.exists() and json.loads(meta.read_text() or "{}").get("epoch", 0) >= 1):
        time.sleep(0.1)
    assert time.time() < deadline, "no epoch was backed up in time"
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    assert stderr.strip().splitlines()[-1].startswith("cnnlab: error: training interrupted")
    assert "Traceback" not in stderr
    status = json.loads((out / "status.json").read_text())
    assert status["status"] == "interrupted" and status["epochs_completed"] >= 1
    kept = list(csv.DictReader((out / "history.csv").open()))
    assert len(kept) == status["epochs_completed"]


def test_a_long_training_says_how_long_is_left() -> None:
    """The time-left line: the median epoch (tracing in epoch 1 left out) times the epochs
    left, at most every 30 s by default, and none after the last epoch."""
    from cnnlab.training.timing import EpochTimer, TimeLeft

    timer = EpochTimer(train_examples=100, batch_size=10)
    timer.rows = [{"epoch_s": 9.0}, {"epoch_s": 4.0}, {"epoch_s": 6.0}]
    lines: list[str] = []
    TimeLeft(timer, 10, lines.append, every=0).on_epoch_end(2)
    assert lines == ["epoch 3/10, about 35 s left"]
    TimeLeft(timer, 10, lines.append).on_epoch_end(2)  # less than 30 s since it started
    TimeLeft(timer, 3, lines.append, every=0).on_epoch_end(2)  # the last epoch
    assert len(lines) == 1
    TimeLeft(timer, 1000, lines.append, every=0).on_epoch_end(2)
    assert lines[-1] == "epoch 3/1000, about 83 min left"
