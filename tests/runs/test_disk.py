"""A disk that is too small, or fills up during a run: one line, nothing finished lost,
and the same command with --resume continues once there is space (a real tmpfs)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import one_line_error

from cnnlab.runs import load, storage

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 100 MB tmpfs of its own (needs root, as CI and the development machines have)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100M", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); run as root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def train(out: Path, sample_archive: Path, cache_dir: Path, *extra: str
          ) -> subprocess.Popen:
    args = ["train", "keras-cifar10", "--out", str(out), "--set", f"data.path={sample_archive}",
            "--set", f"data.cache_dir={cache_dir}", "--set", "data.train_size=1000",
            "--set", "data.val_size=100", "--set", "data.test_size=100",
            "--set", "train.epochs=4", *extra]
    return subprocess.Popen([sys.executable, "-m", "cnnlab", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def fill(disk: Path, leave: int) -> Path:
    """Write a file that leaves about ``leave`` bytes free on ``disk``."""
    filler = disk / "filler"
    with filler.open("wb") as fh:
        fh.write(b"\0" * max(0, storage.free_bytes(disk) - leave))
    return filler


def test_a_folder_on_a_too_small_disk_is_refused_before_training(
        small_disk: Path, sample_archive: Path, cache_dir: Path) -> None:
    fill(small_disk, 20 * 2**20)  # keras-cifar10 needs about 64 MB
    proc = train(small_disk / "run", sample_archive, cache_dir)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 2
    one_line_error(stderr, "MB free on its disk; a run of this model needs about")
    assert not (small_disk / "run").exists()


def test_a_disk_that_fills_up_during_training_then_resume(
        small_disk: Path, sample_archive: Path, cache_dir: Path) -> None:
    out = small_disk / "run"
    proc = train(out, sample_archive, cache_dir)
    meta = out / "backup" / "training_metadata.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and not (
            meta.exists() and json.loads(meta.read_text() or "{}").get("epoch", 0) >= 1):
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1]
    assert time.monotonic() < deadline, "no epoch was backed up in time"
    filler = fill(small_disk, 64 * 2**10)  # the next epoch's saves cannot fit
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1, stderr
    line = one_line_error(stderr)
    assert str(out) in line and ("space" in line.lower()), line
    assert line.endswith(f"then resume the run: cnnlab train CONFIG --out {out} --resume")
    status = json.loads((out / "status.json").read_text())
    assert status["status"] == "interrupted" and status["epochs_completed"] >= 1
    assert not (out / "metrics.json").exists()
    filler.unlink()
    resumed = train(out, sample_archive, cache_dir, "--resume")
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert f"resuming after epoch {status['epochs_completed']}" in stdout
    run = load.read_run(out)
    assert run.metrics["status"] == "finished" and run.metrics["epochs_run"] == 4
    assert [int(r["epoch"]) for r in run.history] == [1, 2, 3, 4]


def test_a_read_only_output_disk_is_one_line(small_disk: Path, sample_archive: Path,
                                             cache_dir: Path) -> None:
    remount = subprocess.run(["mount", "-o", "remount,ro", str(small_disk)],
                             capture_output=True, text=True)
    assert remount.returncode == 0, remount.stderr
    proc = train(small_disk / "run", sample_archive, cache_dir)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1, stderr
    line = one_line_error(stderr, str(small_disk / "run"), "Read-only file system")
    assert "--resume" not in line  # no run folder was made: nothing to resume
