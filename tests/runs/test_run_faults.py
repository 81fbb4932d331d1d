"""Faults of a run folder (issue 27), through the CLI: damaged or hand-edited records
are one line naming the file, a run still training is called that, and an image file name
that is not UTF-8 is data like any other."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import one_line_error, tiny_args
from PIL import Image

from cnnlab.cli import main
from cnnlab.runs import layout


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, sample_archive: Path,
             cache_dir: Path) -> Path:
    """A finished tiny run; read-only."""
    out = tmp_path_factory.mktemp("run-faults") / "run"
    result = CliRunner().invoke(main, ["train", "baseline", *tiny_args(
        sample_archive, cache_dir, epochs=1, **{"model.filters": "[4]"}), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def run(finished: Path, tmp_path: Path) -> Path:
    shutil.copytree(finished, tmp_path / "run")
    return tmp_path / "run"


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in folder.rglob("*") if p.is_file() and p.name != "report.html"}


@pytest.mark.parametrize(("name", "payload"), [
    (layout.METRICS_FILE, b'{"status": "finished", "test_accuracy": 0.\xff\xfe}'),
    (layout.METRICS_FILE, b'{"status": "finished", "test_acc'),
    (layout.METRICS_FILE, b"[1, 2, 3]"),
    (layout.CONFIG_FILE, b"name: \xff\xfe\n"),
    (layout.CONFIG_FILE, b"- just\n- a list\n"),
    (layout.HISTORY_FILE, b"epoch,loss\n1,\xff\xfe\n"),
], ids=["metrics-not-utf8", "metrics-truncated", "metrics-a-list", "config-not-utf8",
        "config-a-list", "history-not-utf8"])
@pytest.mark.parametrize("command", ["report", "evaluate"])
def test_a_damaged_record_is_one_line_naming_the_file(run: Path, name: str, payload: bytes,
                                                      command: str) -> None:
    (run / name).write_bytes(payload)
    before = files(run)
    result = CliRunner().invoke(main, [command, str(run)])
    assert result.exit_code == 2, result.output
    one_line_error(result.stderr, f"{run}: damaged run record ({name}: ", "train the run again")
    assert files(run) == before


def test_report_on_a_run_still_training_says_so(run: Path) -> None:
    (run / layout.METRICS_FILE).unlink()  # as the folder is while it trains
    (run / layout.STATUS_FILE).write_text(json.dumps({"status": "running"}))
    result = CliRunner().invoke(main, ["report", str(run)])
    assert result.exit_code == 2
    one_line_error(result.stderr, f"{run}: still training (status.json: running",
                   "wait for it to finish")


def test_report_on_an_interrupted_run_says_how_to_resume(run: Path) -> None:
    (run / layout.METRICS_FILE).unlink()
    (run / layout.STATUS_FILE).write_text(json.dumps({"status": "interrupted"}))
    result = CliRunner().invoke(main, ["report", str(run)])
    assert result.exit_code == 2
    one_line_error(result.stderr, "interrupted before it finished", "--resume")


def test_an_image_file_name_that_is_not_utf8_is_read_and_fingerprinted(
        tmp_path: Path, cache_dir: Path) -> None:
    root = tmp_path / "images"
    for split, count in (("train", 6), ("test", 2)):
        for label in ("a", "b"):
            (root / split / label).mkdir(parents=True)
            for i in range(count):
                pixels = np.random.default_rng(i).integers(0, 256, (8, 8, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / label / f"{i}.png")
    odd = Path(os.fsdecode(bytes(root) + b"/train/a/\xff\xfe.png"))  # not UTF-8
    shutil.copy(root / "train" / "a" / "0.png", odd)
    out = tmp_path / "out"
    args = ["--set", "data.source=imagefolder", "--set", f"data.path={root}",
            "--set", "data.train_size=8", "--set", "data.val_size=2", "--set",
            "data.test_size=4", "--set", f"data.cache_dir={cache_dir}", "--set",
            "model.filters=[4]", "--set", "train.epochs=1", "--set", "train.verbose=0"]
    result = CliRunner().invoke(main, ["train", "baseline", *args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    recorded = json.loads((out / layout.METRICS_FILE).read_text())["data"]
    assert recorded["fingerprint"].startswith("sha256:") and recorded["sizes"]["train"] == 8


@pytest.mark.parametrize(("command", "folder"), [("plot-activations", layout.ACTIVATIONS_DIR),
                                                  ("export", "export")])
def test_a_linked_output_folder_inside_a_run_is_refused(run: Path, tmp_path: Path,
                                                        command: str, folder: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (run / folder).symlink_to(outside, target_is_directory=True)
    result = CliRunner().invoke(main, [command, str(run)])
    assert result.exit_code == 2, result.output
    one_line_error(result.stderr, f"{run / folder}: a symbolic link", "remove the link")
    assert list(outside.iterdir()) == []
