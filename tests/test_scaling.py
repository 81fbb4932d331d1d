"""Scaling out: the Ray sweep backend against the local one, a retried worker failure,
and train.distribute: mirrored on the CPU's single device."""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from cnnlab.cli import main

pytest.importorskip("ray")


def tiny_sweep(path: Path, sample_archive: Path, cache_dir: Path) -> Path:
    sweep = {
        "name": "scale", "base": {"model": {"filters": [8]}, "train": {"optimizer": "sgd"}},
        "set": {"data.path": str(sample_archive), "data.cache_dir": str(cache_dir),
                "data.download": False, "data.train_size": 200, "data.val_size": 100,
                "data.test_size": 100, "train.epochs": 1, "train.verbose": 0},
        "axes": {"train.learning_rate": [0.01, 0.05]},
    }
    path.write_text(yaml.safe_dump(sweep), encoding="utf-8")
    return path


def rows(sweep_dir: Path) -> dict[str, dict[str, str]]:
    with open(sweep_dir / "results.csv", encoding="utf-8") as fh:
        return {r["run"]: r for r in csv.DictReader(fh)}


def sweep_cli(*args: str) -> tuple[float, str]:
    start = time.monotonic()
    result = CliRunner().invoke(main, ["sweep", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return time.monotonic() - start, result.output


def test_ray_backend_gives_the_local_rows_and_retries_a_failed_run(
        tmp_path: Path, sample_archive: Path, cache_dir: Path, monkeypatch) -> None:
    sweep_file = tiny_sweep(tmp_path / "scale.yaml", sample_archive, cache_dir)
    local_s, _ = sweep_cli(str(sweep_file), "--out", str(tmp_path / "local"))
    # The worker training run 002 raises on its first attempt; the driver retries it once.
    monkeypatch.setenv("CNNLAB_INJECT_FAILURE", "002-learning_rate=0.05")
    ray_s, output = sweep_cli(str(sweep_file), "--out", str(tmp_path / "ray"),
                              "--backend", "ray", "--cpus-per-run", "1")
    print(f"\nsame sweep (2 runs x 1 epoch): local {local_s:.1f}s, ray {ray_s:.1f}s")
    assert "failed on a worker (RuntimeError: injected failure" in output
    assert "retrying once" in output
    failures = json.loads((tmp_path / "ray" / "failures.json").read_text())
    assert [(f["run"], f["attempt"]) for f in failures] == [("002-learning_rate=0.05", 1)]

    local, remote = rows(tmp_path / "local"), rows(tmp_path / "ray")
    assert list(local) == list(remote) == ["001-learning_rate=0.01", "002-learning_rate=0.05"]
    timing = {"ms_per_step", "s_per_epoch"}  # the only columns that may differ
    for run_id in local:
        assert remote[run_id]["status"] == local[run_id]["status"] == "finished"
        assert ({k: v for k, v in remote[run_id].items() if k not in timing}
                == {k: v for k, v in local[run_id].items() if k not in timing})
    def layout(folder: Path) -> set[str]:
        return {p.name for p in folder.iterdir() if not p.name.startswith(".")}

    assert layout(tmp_path / "ray") - {"failures.json"} == layout(tmp_path / "local")

    # Resumable like local: every run finished, so nothing is submitted again.
    _, again = sweep_cli(str(sweep_file), "--out", str(tmp_path / "ray"), "--backend", "ray")
    assert again.count(": finished earlier, kept") == 2 and "submitted" not in again


def test_ray_backend_without_ray_names_the_extra(tmp_path: Path, sample_archive: Path,
                                                 cache_dir: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    sweep_file = tiny_sweep(tmp_path / "scale.yaml", sample_archive, cache_dir)
    result = CliRunner().invoke(main, ["sweep", str(sweep_file), "--backend", "ray",
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert 'pip install "cnnlab[ray]"' in result.output
    assert not (tmp_path / "out").exists()


def test_mirrored_strategy_on_one_cpu_device(tiny_config, tmp_path: Path) -> None:
    from cnnlab.training import train

    config = tiny_config(**{"train.epochs": 1, "train.distribute": "mirrored"})
    run = train(config, tmp_path / "run", log=lambda line: None)
    assert run.metrics["status"] == "finished"
    record = run.metrics["distribute"]
    assert record["strategy"] == "mirrored" and record["class"] == "MirroredStrategy"
    assert record["replicas"] == 1 and len(record["devices"]) == 1
    assert "CPU" in record["devices"][0]
