"""End to end through the command line: train, evaluate, summary, config, and errors."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from helpers import assert_png
from PIL import Image

from cnnlab.cli import main

REPO = Path(__file__).resolve().parents[1]


def cnnlab(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run the installed command in a fresh process, as a user would from a shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "CNNLAB_"))}
    return subprocess.run([sys.executable, "-m", "cnnlab.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def tiny_args(sample_archive: Path, cache_dir: Path) -> list[str]:
    return ["--set", f"data.path={sample_archive}", "--set", f"data.cache_dir={cache_dir}",
            "--set", "data.train_size=300", "--set", "data.val_size=100",
            "--set", "data.test_size=200", "--set", "train.epochs=3"]


@pytest.fixture(scope="module")
def best_run(tmp_path_factory: pytest.TempPathFactory, sample_archive: Path,
             cache_dir: Path) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("runs") / "best"
    result = CliRunner().invoke(main, ["train", "best", "--out", str(out),
                                       *tiny_args(sample_archive, cache_dir)])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_train_writes_a_complete_run_folder(best_run: tuple[Path, str]) -> None:
    out, output = best_run
    for name in ("config.yaml", "history.csv", "metrics.json", "model.keras", "summary.txt",
                 "curves.png", "confusion_matrix.png"):
        assert (out / name).stat().st_size > 0, name
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["model"]["filters"] == [8, 16, 32] and config["train"]["epochs"] == 3
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert set(rows[0]) >= {"loss", "accuracy", "val_loss", "val_accuracy", "epoch_s",
                            "ms_per_step"}
    metrics = json.loads((out / "metrics.json").read_text())
    val_acc = [float(r["val_accuracy"]) for r in rows]
    assert metrics["best_epoch"] == int(np.argmax(val_acc)) + 1
    assert metrics["best_val_accuracy"] == pytest.approx(max(val_acc))
    assert metrics["trainable_params"] == 39_514 and metrics["status"] == "finished"
    assert 0.0 < metrics["test_accuracy"] <= 1.0 and metrics["test_loss"] > 0
    assert np.array(metrics["confusion_matrix"]).sum() == 200
    assert metrics["ms_per_step"] > 0 and metrics["first_epoch_s"] > metrics["s_per_epoch"]
    assert metrics["data"]["sizes"] == {"train": 300, "val": 100, "test": 200}
    assert metrics["data"]["fingerprint"].startswith("sha256:")
    assert metrics["environment"]["tensorflow"] and metrics["environment"]["keras"]
    assert "Trainable params: 39,514" in (out / "summary.txt").read_text()
    # the console: Keras per-epoch progress, then one summary line
    assert "Epoch 3/3" in output
    assert f"test accuracy {metrics['test_accuracy']:.4f}" in output and str(out) in output
    assert output.strip().splitlines()[-1] == f"report: {out / 'report.html'}"
    with Image.open(out / "curves.png") as img:
        assert img.size[0] > 600 and len(img.getcolors(1 << 16) or range(300)) > 50
    assert_png(out / "curves.png", (600, 250), aspect=(1.8, 3.5))  # two panels side by side
    matrix = assert_png(out / "confusion_matrix.png", (400, 350), aspect=(0.8, 1.6))
    assert (np.abs(np.diff(matrix.astype(int), axis=1)).sum(axis=2) > 60).mean() > 0.01  # cells


def test_evaluate_reproduces_recorded_test_accuracy(best_run: tuple[Path, str]) -> None:
    out, _ = best_run
    result = CliRunner().invoke(main, ["evaluate", str(out)])
    assert result.exit_code == 0, result.output
    recorded = json.loads((out / "metrics.json").read_text())
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["test_accuracy"] == pytest.approx(recorded["test_accuracy"], abs=1e-9)
    assert evaluation["confusion_matrix"] == recorded["confusion_matrix"]
    assert f"test accuracy {recorded['test_accuracy']:.4f}" in result.output
    assert "airplane" in result.output


def test_same_config_and_seed_give_same_results(best_run: tuple[Path, str], tmp_path: Path,
                                                sample_archive: Path, cache_dir: Path) -> None:
    first, _ = best_run
    again = tmp_path / "again"
    result = CliRunner().invoke(main, ["train", "best", "--out", str(again),
                                       *tiny_args(sample_archive, cache_dir)])
    assert result.exit_code == 0, result.output
    columns = ["loss", "accuracy", "val_loss", "val_accuracy"]
    read = lambda p: [[r[c] for c in columns] for r in csv.DictReader((p / "history.csv").open())]  # noqa: E731
    assert read(first) == read(again)


def test_existing_run_folder_is_never_overwritten(best_run: tuple[Path, str]) -> None:
    out, _ = best_run
    before = (out / "metrics.json").read_bytes()
    result = CliRunner().invoke(main, ["train", "best", "--out", str(out)])
    assert result.exit_code == 2 and "already exists and is not empty" in result.output
    assert (out / "metrics.json").read_bytes() == before


def test_summary_and_config_commands() -> None:
    result = cnnlab("summary", "configs/baseline.yaml")
    assert result.returncode == 0, result.stderr
    assert "Trainable params: 132,010" in result.stdout and "block1_conv" in result.stdout
    assert result.stderr == ""  # no TensorFlow start-up noise
    runner = CliRunner()
    shown = runner.invoke(main, ["config", "configs/best.yaml", "--set", "train.batch_size=64"])
    assert shown.exit_code == 0
    resolved = yaml.safe_load(shown.output)
    assert resolved["train"]["batch_size"] == 64 and resolved["data"]["val_size"] == 1000
    helps = [runner.invoke(main, [*cmd, "--help"]).output
             for cmd in ([], ["train"], ["summary"], ["config"], ["evaluate"])]
    assert all("Example: cnnlab" in h for h in helps)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "configs/best.yaml", "--set", "train.batch_sise=3"],
         "unknown key 'train.batch_sise'; did you mean 'train.batch_size'?"),
        (["train", "configs/best.yaml", "--set", "train.learning_rate=-0.1"],
         "train.learning_rate: got -0.1; expected a number >= 0"),
        (["train", "missing.yaml"], "missing.yaml: no such config file"),
        (["train", "bset"], "bset: no such config file; did you mean 'best'?"),
        (["sweep", "optimiser"], "optimiser: no such sweep file; did you mean 'optimizer'?"),
        (["train", "configs/best.yaml", "--set", "data.path=/nonexistent/cifar.tar.gz"],
         "data.path: /nonexistent/cifar.tar.gz does not exist"),
        (["evaluate", "/nonexistent/run"], "/nonexistent/run: no such run folder"),
    ],
)
def test_bad_input_one_line_exit_2_no_traceback(args: list[str], message: str) -> None:
    result = cnnlab(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnnlab: error: ")
    assert message in result.stderr and "Traceback" not in result.stderr


def test_yaml_syntax_error_through_cli(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: 3\n   batch_size: 2\n")
    result = cnnlab("config", str(bad))
    assert result.returncode == 2 and f"{bad} line 3: YAML syntax error" in result.stderr


def test_evaluate_refuses_unfinished_run(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("name: x\n")
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path)])
    assert result.exit_code == 2 and "not a finished run" in result.output


def test_diverging_run_is_recorded(tmp_path: Path, sample_archive: Path, cache_dir: Path) -> None:
    out = tmp_path / "nan"
    result = CliRunner().invoke(main, ["train", "baseline", "--out", str(out),
                                       *tiny_args(sample_archive, cache_dir),
                                       "--set", "train.learning_rate=1e9"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and metrics["epochs_run"] < 3


def test_a_terminal_is_told_tensorflow_is_loading() -> None:
    """On a terminal, a command that imports TensorFlow says so before the seconds of
    silence; piped (no terminal), stderr stays empty."""
    import pty

    main_end, terminal = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "CNNLAB_"))}
    try:
        result = subprocess.run([sys.executable, "-m", "cnnlab.cli", "summary", "best"],
                                cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=terminal,
                                text=True, timeout=300)
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(main_end, 4096)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(main_end)
    assert result.returncode == 0 and "Trainable params" in result.stdout
    assert shown.decode().strip().splitlines() == ["cnnlab: loading TensorFlow..."]
    piped = cnnlab("summary", "best")
    assert piped.returncode == 0 and piped.stderr == ""
