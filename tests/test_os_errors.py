"""Every OS error named for what it is (issue 27): a closed pipe ends quietly; a read-only
folder names the path and says so; a damaged file names the file; and ``--resume`` is
offered only where an interrupted run folder exists."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import one_line_error, tiny_args, user_env

from cnnlab.cli import main
from cnnlab.runs import layout


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """cnnlab config best | head -1, with the reader gone before the first write."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([sys.executable, "-m", "cnnlab", "config", "best"], stdout=write,
                              stderr=subprocess.PIPE, text=True, env=user_env(), timeout=120)
    finally:
        os.close(write)
    assert done.stderr == "" and done.returncode == 141  # 128 + SIGPIPE, as Unix tools


def test_a_pipe_into_head_prints_the_first_line_and_nothing_else(tmp_path: Path) -> None:
    done = subprocess.run(f"'{sys.executable}' -m cnnlab config --keys | head -1", shell=True,
                          capture_output=True, text=True, env=user_env(), timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert len(done.stdout.splitlines()) == 1


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, sample_archive: Path,
             cache_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("os-errors") / "run"
    result = CliRunner().invoke(main, ["train", "baseline", *tiny_args(
        sample_archive, cache_dir, epochs=1, **{"model.filters": "[4]"}), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_a_truncated_weights_file_inside_model_keras_names_the_file(
        finished: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    with zipfile.ZipFile(finished / layout.MODEL_FILE) as source, \
            zipfile.ZipFile(run / layout.MODEL_FILE, "w") as target:
        for item in source.infolist():
            payload = source.read(item)
            target.writestr(item, payload[:3000] if item.filename.endswith(".h5") else payload)
    result = CliRunner().invoke(main, ["evaluate", str(run)])
    assert result.exit_code == 2
    line = one_line_error(result.stderr, f"{run / layout.MODEL_FILE}: damaged",
                          "train the run again")
    assert "--resume" not in line and "free space" not in line


@pytest.fixture
def read_only_disk(tmp_path: Path):
    mount = tmp_path / "ro"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=10M,ro", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); run as root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_read_only_cache_folder_names_it_and_offers_no_resume(
        read_only_disk: Path, sample_archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = tiny_args(sample_archive, read_only_disk / "cache", epochs=1)
    result = CliRunner().invoke(main, ["train", "baseline", *args, "--out", str(out)])
    assert result.exit_code == 1, result.output
    line = one_line_error(result.stderr, str(read_only_disk / "cache"), "Read-only file system",
                          "choose a folder on a writable disk")
    assert "--resume" not in line
    assert not out.exists()
