"""oneDNN chosen per run (train.onednn), before TensorFlow's import, and recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab import child_run, runtime
from cnnlab.errors import DataError
from cnnlab.sweep import run_sweep, sweep_from_dict

REPO = Path(__file__).resolve().parents[1]


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
    from cnnlab.training import train

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
    env = {k: v for k, v in os.environ.items()
           if k not in (runtime.ONEDNN_ENV, *runtime.THREAD_ENVS, "CNNLAB_SETTINGS_SELECTED")}
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


def test_sweep_trains_runs_wanting_other_settings_in_one_child_per_setting(
        sample_archive: Path, cache_dir: Path, tmp_path: Path) -> None:
    sweep = sweep_from_dict({
        "name": "settings", "base": "baseline",
        "set": {"data.path": str(sample_archive), "data.cache_dir": str(cache_dir),
                "data.train_size": 100, "data.val_size": 50, "data.test_size": 50,
                "data.download": False, "train.epochs": 1, "train.verbose": 0},
        "axes": {"train.batch_size": [1, 2, 32]},
    })
    lines: list[str] = []
    out = run_sweep(sweep, tmp_path / "sweep", log=lines.append)
    expected = {"001-batch_size=1": {"onednn": False, "threads": 1},
                "002-batch_size=2": {"onednn": False, "threads": 1},
                "003-batch_size=32": {"onednn": True, "threads": 0}}
    for run_id, settings in expected.items():
        metrics = json.loads((out / run_id / "metrics.json").read_text(encoding="utf-8"))
        assert metrics["environment"]["tensorflow_cpu"] == settings, run_id
        assert metrics["status"] == "finished"
    # this test process imported TensorFlow long ago (oneDNN on, all cores): batch 1 and 2
    # share one child, batch 32 trains here
    started = [line for line in lines if "started a child process" in line]
    assert len(started) == 1 and "oneDNN off, 1 thread" in started[0]
    assert not any("note: train.onednn" in line for line in lines)


def test_child_run_reports_errors_as_training_in_this_process_would(
        tiny_config, tmp_path: Path) -> None:
    from cnnlab.training import train

    too_big = tiny_config("baseline", **{"data.train_size": 100_000})
    with pytest.raises(DataError) as here:
        train(too_big, tmp_path / "here", log=lambda _: None)
    active = runtime.active()
    child = child_run.ChildTrainer(runtime.Settings(not active.onednn, 1))
    try:
        with pytest.raises(DataError) as there:
            child.train(too_big, tmp_path / "there", log=lambda _: None)
        assert str(there.value) == str(here.value)
        ok = tiny_config("baseline", **{"train.epochs": 1})  # the same child trains on
        child.train(ok, tmp_path / "ok", log=lambda _: None)
    finally:
        child.close()
    metrics = json.loads((tmp_path / "ok" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["environment"]["tensorflow_cpu"] == {"onednn": not active.onednn,
                                                        "threads": 1}


def test_runs_recorded_before_train_onednn_existed_still_resume(tiny_config) -> None:
    from cnnlab.runs import config_differences

    new = tiny_config("baseline").to_dict()
    old = json.loads(json.dumps(new))
    del old["train"]["onednn"]  # a config.yaml written by an earlier cnnlab
    assert config_differences(old, new) == []
    forced = tiny_config("baseline", **{"train.onednn": False}).to_dict()
    assert config_differences(old, forced) == ["train.onednn"]
