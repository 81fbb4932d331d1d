"""Sweep features on real CIFAR-10 images through the CLI: select_by final_val_loss, runs
without TensorBoard, compare on a sweep folder, a failed run recorded and redone by a
resume, and Ctrl-C."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from helpers import assert_png, one_line_error, tiny_sets, user_env

from cnnlab.cli import main
from cnnlab.config.files import load_config


def read_results(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write_sweep(path: Path, sweep: dict) -> Path:
    path.write_text(yaml.safe_dump(sweep, sort_keys=False), encoding="utf-8")
    return path


def sweep_cli(*args: object) -> str:
    result = CliRunner().invoke(main, ["sweep", *map(str, args)])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


# --- one real sweep (conftest: cli_sweep) ------------------------------------------------


def test_select_by_final_val_loss_picks_the_lowest(cli_sweep: tuple[Path, str]) -> None:
    out, output = cli_sweep
    rows = read_results(out / "results.csv")
    assert [r["run"] for r in rows] == ["001-plain", "002-no_tb"]
    for row in rows:  # results.csv holds what each run recorded
        recorded = json.loads((out / row["run"] / "metrics.json").read_text())
        assert float(row["final_val_loss"]) == pytest.approx(recorded["final_val_loss"])
    by_loss = sorted(rows, key=lambda r: float(r["final_val_loss"]))
    assert [r["rank"] for r in by_loss] == ["1", "2"]  # lower final validation loss ranks first
    winner = by_loss[0]
    assert "results (best first by final_val_loss)" in output
    assert f"best: {winner['run']} (final_val_loss" in output
    best = load_config(out / "best_config.yaml").to_dict()
    trained = yaml.safe_load((out / winner["run"] / "config.yaml").read_text())
    assert best["name"] == "features-best"
    assert {k: v for k, v in best.items() if k != "name"} == \
        {k: v for k, v in trained.items() if k != "name"}
    assert "final_val_loss" in (out / "best_config.yaml").read_text().splitlines()[0]


def test_tensorboard_false_writes_no_event_files_and_no_hparams(
        cli_sweep: tuple[Path, str]) -> None:
    import tensorflow as tf

    out, _ = cli_sweep
    assert yaml.safe_load((out / "002-no_tb" / "config.yaml").read_text())[
        "tracking"]["tensorboard"] is False
    assert not (out / "002-no_tb" / "tensorboard").exists()
    assert json.loads((out / "002-no_tb" / "metrics.json").read_text())["status"] == "finished"
    # the run with TensorBoard on: one epoch_loss point per epoch
    events = sorted((out / "001-plain" / "tensorboard" / "train").glob("events.out.tfevents.*"))
    steps = [e.step for f in events for e in tf.compat.v1.train.summary_iterator(str(f))
             for v in e.summary.value if v.tag == "epoch_loss"]
    assert steps == [1, 2]  # epochs from 1, as in history.csv
    assert sorted(p.name for p in (out / "hparams").iterdir()) == ["001-plain"]


def test_compare_takes_every_run_of_a_sweep_folder(cli_sweep: tuple[Path, str],
                                                   tmp_path: Path) -> None:
    out, _ = cli_sweep
    result = CliRunner().invoke(main, ["compare", str(out), "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 0, result.output
    rows = read_results(tmp_path / "cmp" / "results.csv")
    assert [r["run"] for r in rows] == ["001-plain", "002-no_tb"]
    # the parameter columns are the keys whose values differ between the runs
    params = list(rows[0])[1:list(rows[0]).index("best_val_accuracy")]
    assert params == ["train.learning_rate", "tracking.tensorboard"]
    assert [(r["train.learning_rate"], r["tracking.tensorboard"]) for r in rows] == [
        ("0.01", "true"), ("0.05", "false")]
    for row in rows:
        recorded = json.loads((out / row["run"] / "metrics.json").read_text())
        assert float(row["best_val_accuracy"]) == pytest.approx(recorded["best_val_accuracy"])
        assert Path(row["run_dir"]) == (out / row["run"]).resolve()
    assert_png(tmp_path / "cmp" / "curves.png", (600, 300))
    assert_png(tmp_path / "cmp" / "accuracy.png", (300, 200))


# --- failures and interruption -----------------------------------------------------------


def test_failed_run_is_recorded_and_redone_by_a_resume(tmp_path: Path, small_archive: Path,
                                                       cache_dir: Path) -> None:
    """A run whose data cache folder cannot be made (a file is in the way: an OSError, not
    a user error) fails; the sweep goes on. After the file is gone, the same command
    redoes that run and keeps the finished one."""
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("not a folder")
    sets = {**tiny_sets(small_archive, cache_dir, epochs=1), "data.test_size": 60}
    path = write_sweep(tmp_path / "flaky.yaml", {
        "base": "baseline", "set": sets,
        "variants": {"ok": {}, "broken": {"data.cache_dir": str(blocker)}}})
    out = tmp_path / "out"
    output = sweep_cli(path, "--out", out)
    assert "[2/2] 002-broken: failed (FileExistsError" in output
    rows = read_results(out / "results.csv")
    assert [(r["run"], r["status"]) for r in rows] == [("001-ok", "finished"),
                                                        ("002-broken", "failed")]
    assert (rows[0]["rank"], rows[1]["rank"]) == ("1", "")
    error = json.loads((out / "002-broken" / "error.json").read_text())
    assert error["status"] == "failed" and error["error"].startswith("FileExistsError")
    assert not (out / "002-broken" / "metrics.json").exists()
    kept = (out / "001-ok" / "metrics.json").stat().st_mtime_ns

    blocker.unlink()
    output = sweep_cli(path, "--out", out)
    assert "[1/2] 001-ok: finished earlier, kept" in output
    assert "[2/2] 002-broken: cleared the unfinished folder" in output
    rows = read_results(out / "results.csv")
    assert [(r["run"], r["status"]) for r in rows] == [("001-ok", "finished"),
                                                        ("002-broken", "finished")]
    assert (out / "001-ok" / "metrics.json").stat().st_mtime_ns == kept  # not retrained
    assert not (out / "002-broken" / "error.json").exists()
    assert json.loads((out / "002-broken" / "metrics.json").read_text())["status"] == "finished"
    assert list(blocker.glob("*.arrays")), "the redone run cached its data in the new folder"


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_stops_a_sweep_and_keeps_finished_runs(tmp_path: Path, sample_archive: Path,
                                                      cache_dir: Path, signum: int,
                                                      code: int) -> None:
    """Ctrl-C, and SIGTERM (what kill, timeout and Slurm send), alike."""
    path = write_sweep(tmp_path / "three.yaml", {
        "base": "baseline", "set": tiny_sets(sample_archive, cache_dir),
        "axes": {"train.epochs": [1, 60, 1]}})
    out = tmp_path / "out"
    first, second, third = (out / name for name in
                            ("001-epochs=1", "002-epochs=60", "003-epochs=1"))
    process = subprocess.Popen([sys.executable, "-m", "cnnlab.cli", "sweep", str(path),
                                "--out", str(out)], env=user_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        # wait until run 1 finished and run 2 is training (its backup holds an epoch)
        while not (second / "backup" / "training_metadata.json").exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "run 2 never started training"
            time.sleep(0.05)
        assert (first / "metrics.json").exists() and process.poll() is None
        finished = (first / "metrics.json").stat().st_mtime_ns
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == code, (stdout, stderr)
    one_line_error(stderr, "sweep interrupted; finished runs are kept in", f"--out {out}")
    assert (first / "metrics.json").stat().st_mtime_ns == finished
    assert json.loads((first / "metrics.json").read_text())["status"] == "finished"
    status = json.loads((second / "status.json").read_text())
    assert status["status"] == "interrupted" and not (second / "metrics.json").exists()
    assert not third.exists()
    rows = read_results(out / "results.csv")
    assert rows[0]["status"] == "finished" and rows[2]["status"] == "pending"
    assert rows[1]["status"] not in ("finished", "failed")
