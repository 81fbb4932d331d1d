"""Faults of a sweep folder (issue 27), each through the CLI: the one line it gets, and
that nothing finished is lost and nothing outside ``--out`` is touched.

A finished 2-run sweep is trained once per module; each test works on a copy of it.
"""

from __future__ import annotations

import fcntl
import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from helpers import one_line_error, tiny_sets

from cnnlab.cli import main
from cnnlab.runs import layout, storage

RUNS = ("001-a", "002-b")


def sweep_file(folder: Path, sample_archive: Path, cache_dir: Path) -> Path:
    path = folder / "faults.yaml"
    path.write_text(yaml.safe_dump({
        "name": "faults", "base": "baseline",
        "set": {**tiny_sets(sample_archive, cache_dir, epochs=1), "data.train_size": 200,
                "model.filters": [4], "model.dense": [8], "tracking.tensorboard": False},
        "variants": {"a": {}, "b": {"train.learning_rate": 0.05}}}, sort_keys=False))
    return path


def sweep(spec: Path, out: Path, *more: str):
    return CliRunner().invoke(main, ["sweep", str(spec), "--out", str(out), *more])


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, sample_archive: Path,
             cache_dir: Path) -> tuple[Path, Path]:
    """(sweep file, a finished sweep folder of its two runs); read-only."""
    root = tmp_path_factory.mktemp("faults")
    spec = sweep_file(root, sample_archive, cache_dir)
    result = sweep(spec, root / "done")
    assert result.exit_code == 0, result.output
    assert all(storage.is_finished(root / "done" / run) for run in RUNS)
    return spec, root / "done"


@pytest.fixture
def copy(finished: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    spec, done = finished
    shutil.copytree(done, tmp_path / "s", symlinks=True)
    return spec, tmp_path / "s"


def record(run_dir: Path) -> bytes:
    return (run_dir / layout.METRICS_FILE).read_bytes()


def test_an_unfinished_run_that_is_a_symlink_is_unlinked_never_followed(
        copy: tuple[Path, Path], tmp_path: Path) -> None:
    spec, out = copy
    outside = tmp_path / "outside"  # what the link points to: a folder of the user's
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    (outside / ".notes.tmp").write_text("also mine")  # looks like a temporary file
    kept = record(out / RUNS[0])
    shutil.rmtree(out / RUNS[1])
    (out / RUNS[1]).symlink_to(outside, target_is_directory=True)
    result = sweep(spec, out)
    assert result.exit_code == 0, result.output
    assert "removed the symbolic link in its place" in result.output
    assert sorted(p.name for p in outside.iterdir()) == [".notes.tmp", "keep.txt"]
    assert (outside / "keep.txt").read_text() == "mine"
    assert not (out / RUNS[1]).is_symlink() and storage.is_finished(out / RUNS[1])
    assert record(out / RUNS[0]) == kept  # the finished run was not trained again


def test_a_lock_file_that_is_a_symlink_is_refused(copy: tuple[Path, Path],
                                                   tmp_path: Path) -> None:
    spec, out = copy
    victim = tmp_path / "victim.txt"
    victim.write_text("not a lock")
    (out / layout.LOCK_FILE).unlink(missing_ok=True)
    (out / layout.LOCK_FILE).symlink_to(victim)
    result = sweep(spec, out)
    assert result.exit_code == 2
    one_line_error(result.stderr, f"{out / layout.LOCK_FILE}: a symbolic link", "remove")
    assert victim.read_text() == "not a lock"


@pytest.mark.parametrize("edit", ["runs: null", "no runs", "not a mapping"])
def test_a_hand_edited_sweep_yaml_resumes_from_its_run_folders(
        copy: tuple[Path, Path], edit: str) -> None:
    spec, out = copy
    plan = yaml.safe_load((out / layout.SWEEP_FILE).read_text())
    if edit == "runs: null":
        plan["runs"] = None
    elif edit == "no runs":
        del plan["runs"]
    else:
        plan = ["runs"]
    (out / layout.SWEEP_FILE).write_text(yaml.safe_dump(plan))
    kept = [record(out / run) for run in RUNS]
    result = sweep(spec, out)
    assert result.exit_code == 0, result.output
    assert result.output.count(": finished earlier, kept") == 2
    assert [record(out / run) for run in RUNS] == kept
    assert [r["id"] for r in yaml.safe_load((out / layout.SWEEP_FILE).read_text())["runs"]
            ] == list(RUNS)  # written again whole


def test_a_sweep_yaml_of_garbage_bytes_is_one_line(copy: tuple[Path, Path]) -> None:
    spec, out = copy
    (out / layout.SWEEP_FILE).write_bytes(b"\xff\xfe\x00runs: [\n")
    kept = [record(out / run) for run in RUNS]
    result = sweep(spec, out)
    assert result.exit_code == 2
    one_line_error(result.stderr, f"{out / layout.SWEEP_FILE}: damaged", "new --out")
    assert [record(out / run) for run in RUNS] == kept


@pytest.mark.parametrize("damage", [b'{"status": "finished", "best_val', b"\xff\xfe{}",
                                    b"[1, 2]", b'{"status": 3}'],
                         ids=["truncated", "not-utf8", "a-list", "wrong-type"])
def test_a_damaged_metrics_json_is_redone_and_the_sweep_finishes(
        copy: tuple[Path, Path], damage: bytes) -> None:
    spec, out = copy
    kept = record(out / RUNS[0])
    (out / RUNS[1] / layout.METRICS_FILE).write_bytes(damage)
    result = sweep(spec, out)
    assert result.exit_code == 0, result.output
    assert "[1/2] 001-a: finished earlier, kept" in result.output
    assert "[2/2] 002-b: cleared the unfinished folder" in result.output
    assert record(out / RUNS[0]) == kept
    assert json.loads(record(out / RUNS[1]))["status"] == "finished"
    report = CliRunner().invoke(main, ["report", str(out)])
    assert report.exit_code == 0, report.output


def test_a_damaged_config_of_a_finished_run_names_the_file(copy: tuple[Path, Path]) -> None:
    spec, out = copy
    (out / RUNS[0] / layout.CONFIG_FILE).write_bytes(b"model: [\x00")
    kept = [record(out / run) for run in RUNS]
    result = sweep(spec, out)
    assert result.exit_code == 2
    one_line_error(result.stderr, f"{out / RUNS[0] / layout.CONFIG_FILE}: missing or damaged",
                   "delete the folder to train the run again")
    assert [record(out / run) for run in RUNS] == kept


def test_jobs_is_capped_at_the_runs_left_not_refused(copy: tuple[Path, Path]) -> None:
    spec, out = copy  # nothing left to train: --jobs 64 starts no worker, asks no memory
    kept = [record(out / run) for run in RUNS]
    result = sweep(spec, out, "--jobs", "64")
    assert result.exit_code == 0, result.output
    assert "--jobs 64: nothing left to run" in result.output
    assert [record(out / run) for run in RUNS] == kept


def test_the_lock_is_taken_before_the_folder_is_judged(finished: tuple[Path, Path],
                                                        tmp_path: Path) -> None:
    """Two sweeps on one new --out: the first holds the lock and is writing sweep.yaml
    (its temporary file is there); the second names the lock, not 'not a sweep folder'."""
    spec, _ = finished
    out = tmp_path / "new"
    out.mkdir()
    (out / ".sweep.yaml.x1y2.tmp").write_text("name: faults\n")
    with open(out / layout.LOCK_FILE, "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write("4242\n")
        lock.flush()
        result = sweep(spec, out)
    assert result.exit_code == 2
    one_line_error(result.stderr, "another sweep (pid 4242) is running in this folder")
    assert sorted(p.name for p in out.iterdir()) == [".lock", ".sweep.yaml.x1y2.tmp"]


def test_a_folder_of_other_files_is_refused_and_left_as_it_was(
        finished: tuple[Path, Path], tmp_path: Path) -> None:
    spec, _ = finished
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = sweep(spec, out)
    assert result.exit_code == 2
    one_line_error(result.stderr, "not empty and not a sweep folder")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]  # no .lock left in it
