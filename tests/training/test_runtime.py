"""oneDNN chosen per run (train.onednn), before TensorFlow's import, and recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnnlab.backend import runtime
from cnnlab.errors import DataError
from cnnlab.sweep import executors
from cnnlab.sweep.run import SweepRun

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("onednn", "threads", "batch", "user_env", "expected"), [
    ("auto", "auto", 1, None, (False, 1)), ("auto", "auto", 2, None, (False, 1)),
    ("auto", "auto", 4, None, (True, 1)), ("auto", "auto", 8, None, (True, 1)),
    ("auto", "auto", 16, None, (True, 0)),
    ("auto", "auto", 32, None, (True, 0)), ("auto", "auto", 256, None, (True, 0)),
    ("auto", "auto", 256, ("0", "2"), (False, 2)), ("auto", "auto", 1, ("1", None), (True, 1)),
    (True, 3, 1, ("0", "2"), (True, 3)), (False, 0, 8, ("1", "1"), (False, 0)),
])
def test_auto_settings_follow_the_batch_size_unless_the_user_chose(
        tiny_config, monkeypatch, onednn, threads, batch, user_env, expected) -> None:
    user_onednn, user_threads = user_env or (None, None)
    monkeypatch.setattr(runtime, "_USER_ONEDNN", user_onednn)
    monkeypatch.setattr(runtime, "_USER_THREADS", user_threads)
    cfg = tiny_config("baseline", **{"train.onednn": onednn, "train.threads": threads,
                                     "train.batch_size": batch})
    assert runtime.wanted(cfg.train) == runtime.Settings(*expected)


def test_a_process_that_already_imported_tensorflow_keeps_its_settings_and_says_so(
        tiny_config, tmp_path: Path) -> None:
    from cnnlab.training.loop import train  # imports TensorFlow, whatever ran before

    active = runtime.active()
    other = runtime.Settings(not active.onednn, active.threads)
    assert runtime.select(other) is False  # TensorFlow is imported: too late
    lines: list[str] = []
    run = train(tiny_config("baseline", **{"train.onednn": other.onednn,
                                           "train.threads": other.threads, "train.epochs": 1}),
                tmp_path / "run", log=lines.append)
    assert run.metrics["environment"]["tensorflow_cpu"] == active._asdict()
    assert any(line.startswith(f"note: train.onednn/train.threads ask for {other.describe()}")
               for line in lines)


def test_cli_train_picks_onednn_from_the_batch_size(sample_archive: Path, cache_dir: Path,
                                                   tmp_path: Path) -> None:
    env = clean_env()
    out = subprocess.run(
        [sys.executable, "-m", "cnnlab", "train", "baseline", "--out", str(tmp_path / "run"),
         "--set", f"data.path={sample_archive}", "--set", f"data.cache_dir={cache_dir}",
         "--set", "data.train_size=100", "--set", "data.val_size=50",
         "--set", "data.test_size=50", "--set", "train.epochs=1",
         "--set", "train.batch_size=2", "--set", "train.verbose=0"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "note: train.onednn" not in out.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["environment"]["tensorflow_cpu"] == {"onednn": False, "threads": 1}
    assert "onednn: auto" in (tmp_path / "run" / "config.yaml").read_text(encoding="utf-8")


def clean_env() -> dict[str, str]:
    """This environment without CPU settings, so a child process chooses its own."""
    return {k: v for k, v in os.environ.items()
            if k not in (runtime.ONEDNN_ENV, *runtime.THREAD_ENVS, "CNNLAB_SETTINGS_SELECTED")}


def test_sweep_trains_runs_wanting_other_settings_in_one_worker_per_setting(
        sample_archive: Path, cache_dir: Path, tmp_path: Path) -> None:
    sweep = {
        "name": "settings", "base": "baseline",
        "set": {"data.path": str(sample_archive), "data.cache_dir": str(cache_dir),
                "data.train_size": 100, "data.val_size": 50, "data.test_size": 50,
                "data.download": False, "train.epochs": 1, "train.verbose": 0},
        "axes": {"train.batch_size": [1, 2, 32]},
    }
    (tmp_path / "settings.yaml").write_text(json.dumps(sweep), encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "cnnlab", "sweep", "settings.yaml", "--out", "sweep"],
        capture_output=True, text=True, env=clean_env(), cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr
    expected = {"001-batch_size=1": {"onednn": False, "threads": 1},
                "002-batch_size=2": {"onednn": False, "threads": 1},
                "003-batch_size=32": {"onednn": True, "threads": 0}}
    for run_id, settings in expected.items():
        metrics = json.loads((tmp_path / "sweep" / run_id / "metrics.json").read_text())
        assert metrics["environment"]["tensorflow_cpu"] == settings, run_id
        assert metrics["status"] == "finished"
    # a new process takes the settings most runs want (batch 1 and 2): batch 32 alone
    # trains in a worker process
    started = [line for line in out.stdout.splitlines() if "started a worker process" in line]
    assert len(started) == 1 and "oneDNN on, all cores" in started[0], out.stdout
    assert "note: train.onednn" not in out.stdout


def test_worker_process_reports_errors_as_training_in_this_process_would(
        tiny_config, tmp_path: Path) -> None:
    from cnnlab.training.loop import train

    too_big = tiny_config("baseline", **{"data.train_size": 100_000})
    with pytest.raises(DataError) as here:
        train(too_big, tmp_path / "here", log=lambda _: None)
    other = {"train.onednn": not runtime.active().onednn, "train.threads": 1}  # TF imported
    planned = [SweepRun(1, "big", None, {}, tiny_config("baseline", **{
                   "data.train_size": 100_000, **other})),
               SweepRun(2, "ok", None, {}, tiny_config("baseline", **{
                   "train.epochs": 1, **other}))]
    lines: list[str] = []
    executor = executors.local(planned)
    assert isinstance(executor, executors.WorkerProcesses)
    try:
        failed = executor.submit(planned[0], tmp_path / "there", lines.append)
        assert isinstance(failed.exception(timeout=300), DataError)
        assert str(failed.exception()) == str(here.value)
        done = executor.submit(planned[1], tmp_path / "ok", lines.append)  # the same worker
        assert done.result(timeout=300) is None
    finally:
        executor.close()
    assert sum("started a worker process" in line for line in lines) == 1
    assert any(line.startswith("run folder:") for line in lines)  # log lines come back
    metrics = json.loads((tmp_path / "ok" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["environment"]["tensorflow_cpu"] == {"onednn": other["train.onednn"],
                                                        "threads": 1}


def test_runs_recorded_before_train_onednn_existed_still_resume(tiny_config) -> None:
    from cnnlab.runs.storage import config_differences

    new = tiny_config("baseline").to_dict()
    old = json.loads(json.dumps(new))
    del old["train"]["onednn"]  # a config.yaml written by an earlier cnnlab
    assert config_differences(old, new) == []
    forced = tiny_config("baseline", **{"train.onednn": False}).to_dict()
    assert config_differences(old, forced) == ["train.onednn"]


def test_a_worker_stops_when_its_sweep_process_is_killed(
        sample_archive: Path, cache_dir: Path, tmp_path: Path) -> None:
    sweep = {"name": "orphan", "base": "baseline", "axes": {"train.batch_size": [32, 1, 2]},
             "set": {"data.path": str(sample_archive), "data.cache_dir": str(cache_dir),
                     "data.train_size": 3000, "data.val_size": 100, "data.test_size": 100,
                     "data.download": False, "train.epochs": 40, "train.verbose": 0}}
    (tmp_path / "orphan.yaml").write_text(json.dumps(sweep), encoding="utf-8")
    process = subprocess.Popen([sys.executable, "-m", "cnnlab", "sweep", "orphan.yaml",
                                "--out", "sweep"], cwd=tmp_path, env=clean_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history = tmp_path / "sweep" / "001-batch_size=32" / "history.csv"  # in the worker
    deadline = time.monotonic() + 180
    while not history.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert history.exists(), "the worker never started training"
    workers = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True,
                             text=True).stdout.split()
    assert workers
    process.kill()
    process.wait()
    deadline = time.monotonic() + 10
    while any(map(running, workers)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(map(running, workers)), "a worker trains on"


def running(pid: str) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
