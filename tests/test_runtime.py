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


@pytest.mark.parametrize(("setting", "batch", "user_env", "expected"), [
    ("auto", 1, None, False), ("auto", 2, None, False), ("auto", 4, None, True),
    ("auto", 256, None, True), ("auto", 256, "0", False), ("auto", 1, "1", True),
    (True, 1, "0", True), (False, 64, "1", False),
])
def test_auto_turns_onednn_on_from_batch_4_unless_the_user_chose(
        tiny_config, monkeypatch, setting, batch, user_env, expected) -> None:
    monkeypatch.setattr(runtime, "_USER_ENV", user_env)
    cfg = tiny_config("baseline", **{"train.onednn": setting, "train.batch_size": batch})
    assert runtime.wants_onednn(cfg.train) is expected


def test_a_process_that_already_imported_tensorflow_keeps_its_setting_and_says_so(
        tiny_config, tmp_path: Path) -> None:
    from cnnlab.training import train

    active = runtime.onednn_active()
    assert runtime.select_onednn(not active) is False  # TensorFlow is imported: too late
    lines: list[str] = []
    run = train(tiny_config("baseline", **{"train.onednn": not active, "train.epochs": 1}),
                tmp_path / "run", log=lines.append)
    assert run.metrics["environment"]["onednn"] is active
    assert any(line.startswith(f"note: train.onednn asks for oneDNN "
                               f"{'off' if active else 'on'}") for line in lines)


def test_cli_train_picks_onednn_from_the_batch_size(sample_archive: Path, cache_dir: Path,
                                                   tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in (runtime.ENV, "CNNLAB_ONEDNN_SELECTED")}
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
    assert metrics["environment"]["onednn"] is False
    assert "onednn: auto" in (tmp_path / "run" / "config.yaml").read_text(encoding="utf-8")


def test_sweep_trains_runs_wanting_the_other_setting_in_a_child_process(
        sample_archive: Path, cache_dir: Path, tmp_path: Path) -> None:
    sweep = sweep_from_dict({
        "name": "onednn", "base": "baseline",
        "set": {"data.path": str(sample_archive), "data.cache_dir": str(cache_dir),
                "data.train_size": 100, "data.val_size": 50, "data.test_size": 50,
                "data.download": False, "train.epochs": 1, "train.verbose": 0},
        "axes": {"train.batch_size": [2, 16]},
    })
    lines: list[str] = []
    out = run_sweep(sweep, tmp_path / "sweep", log=lines.append)
    for run_id, expected in (("001-batch_size=2", False), ("002-batch_size=16", True)):
        metrics = json.loads((out / run_id / "metrics.json").read_text(encoding="utf-8"))
        assert metrics["environment"]["onednn"] is expected, run_id
        assert metrics["status"] == "finished"
    # this test process imported TensorFlow long ago, so exactly one run needed a child
    assert sum("trained in a child process" in line for line in lines) == 1
    assert not any("note: train.onednn" in line for line in lines)


def test_child_run_reports_errors_as_training_in_this_process_would(
        tiny_config, tmp_path: Path) -> None:
    from cnnlab.training import train

    too_big = tiny_config("baseline", **{"data.train_size": 100_000})
    with pytest.raises(DataError) as here:
        train(too_big, tmp_path / "here", log=lambda _: None)
    with pytest.raises(DataError) as there:
        child_run.train_in_child(too_big, tmp_path / "there", not runtime.onednn_active(),
                                 log=lambda _: None)
    assert str(there.value) == str(here.value)


def test_runs_recorded_before_train_onednn_existed_still_resume(tiny_config) -> None:
    from cnnlab.runs import config_differences

    new = tiny_config("baseline").to_dict()
    old = json.loads(json.dumps(new))
    del old["train"]["onednn"]  # a config.yaml written by an earlier cnnlab
    assert config_differences(old, new) == []
    forced = tiny_config("baseline", **{"train.onednn": False}).to_dict()
    assert config_differences(old, forced) == ["train.onednn"]
