"""Scaling out: the Ray sweep backend against the local one, a retried worker failure,
and train.distribute: mirrored on the CPU's single device."""

from __future__ import annotations

import csv
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from helpers import one_line_error

from cnnlab.cli import main


@pytest.fixture
def ray_installed() -> None:
    pytest.importorskip("ray", reason='Ray not installed: pip install -e ".[test]"')


def tiny_sweep(path: Path, sample_archive: Path, cache_dir: Path, **extra: object) -> Path:
    sweep = {
        "name": "scale", "base": {"model": {"filters": [8]}, "train": {"optimizer": "sgd"}},
        "set": {"data.path": str(sample_archive), "data.cache_dir": str(cache_dir),
                "data.download": False, "data.train_size": 200, "data.val_size": 100,
                "data.test_size": 100, "train.epochs": 1, "train.verbose": 0},
        "axes": {"train.learning_rate": [0.01, 0.05]},
        **extra,
    }
    path.write_text(yaml.safe_dump(sweep), encoding="utf-8")
    return path


def ray_sweep_training(sweep_file: Path, folder: Path, *extra: str) -> subprocess.Popen:
    """``cnnlab sweep --backend ray`` (and ``extra``) into ``folder/sweep``, returned once
    its first run is training (its history.csv exists)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cnnlab", "sweep", str(sweep_file), "--out", "sweep",
         "--backend", "ray", *extra], cwd=folder, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    history = folder / "sweep" / "001-learning_rate=0.01" / "history.csv"
    deadline = time.monotonic() + 240
    while not history.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    assert history.exists(), "no task started training in time"
    return process


def rows(sweep_dir: Path) -> dict[str, dict[str, str]]:
    with open(sweep_dir / "results.csv", encoding="utf-8") as fh:
        return {r["run"]: r for r in csv.DictReader(fh)}


def sweep_cli(*args: str) -> tuple[float, str]:
    start = time.monotonic()
    result = CliRunner().invoke(main, ["sweep", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return time.monotonic() - start, result.output


def test_ray_backend_gives_the_local_rows_and_the_same_failure_policy(
        tmp_path: Path, sample_archive: Path, cache_dir: Path, ray_installed) -> None:
    # Run "broken" fails through its config: its cache folder is a file (an OSError, not
    # a user error), on every attempt, with either backend.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x", encoding="utf-8")
    sweep_file = tiny_sweep(tmp_path / "scale.yaml", sample_archive, cache_dir,
                            axes={"train.learning_rate": [0.01]},
                            variants={"ok": {}, "broken": {"data.cache_dir": str(blocker)}})
    local_s, local_out = sweep_cli(str(sweep_file), "--out", str(tmp_path / "local"))
    ray_s, ray_out = sweep_cli(str(sweep_file), "--out", str(tmp_path / "ray"),
                               "--backend", "ray", "--cpus-per-run", "1")
    print(f"\nsame sweep (2 runs x 1 epoch): local {local_s:.1f}s, ray {ray_s:.1f}s")
    broken = "001-broken-learning_rate=0.01"  # variants in name order (safe_dump)
    for backend, output in (("local", local_out), ("ray", ray_out)):
        assert f"{broken}: failed (" in output and "retrying once" in output, output
        assert f"{broken}: failed again (" in output, output
        failures = json.loads((tmp_path / backend / "failures.json").read_text())
        assert [(f["run"], f["attempt"], f["backend"]) for f in failures] == [
            (broken, 1, backend), (broken, 2, backend)]
        assert "Error" in failures[0]["error"]  # e.g. NotADirectoryError: ...
        assert (tmp_path / backend / broken / "error.json").exists()

    local, remote = rows(tmp_path / "local"), rows(tmp_path / "ray")
    assert list(local) == list(remote) == [broken, "002-ok-learning_rate=0.01"]
    assert local[broken]["status"] == remote[broken]["status"] == "failed"
    timing = {"ms_per_step", "s_per_epoch", "node"}  # the only columns that may differ
    ok = "002-ok-learning_rate=0.01"
    assert remote[ok]["status"] == local[ok]["status"] == "finished"
    assert local[ok]["node"] == socket.gethostname()
    assert remote[ok]["node"].startswith(f"{socket.gethostname()} (ray node ")  # which node
    assert ({k: v for k, v in remote[ok].items() if k not in timing}
            == {k: v for k, v in local[ok].items() if k not in timing})

    def layout(folder: Path) -> set[str]:
        return {p.name for p in folder.iterdir() if not p.name.startswith(".")}

    assert layout(tmp_path / "ray") == layout(tmp_path / "local")

    # Resumed after the cause is gone, here by the local backend (a folder is the same
    # whichever backend wrote it; a second Ray cluster start would cost 20 s): the failed
    # run is trained, the finished one kept.
    blocker.unlink()
    kept = (tmp_path / "ray" / ok / "metrics.json").stat().st_mtime_ns
    _, again = sweep_cli(str(sweep_file), "--out", str(tmp_path / "ray"))
    assert again.count(": finished earlier, kept") == 1
    assert rows(tmp_path / "ray")[broken]["status"] == "finished"
    assert (tmp_path / "ray" / ok / "metrics.json").stat().st_mtime_ns == kept


def test_ctrl_c_cancels_ray_tasks_and_the_sweep_resumes(
        tmp_path: Path, sample_archive: Path, cache_dir: Path, ray_installed) -> None:
    sweep_file = tiny_sweep(tmp_path / "scale.yaml", sample_archive, cache_dir,
                            set={"data.path": str(sample_archive), "data.cache_dir": str(cache_dir),
                                 "data.download": False, "data.train_size": 2000,
                                 "data.val_size": 100, "data.test_size": 100,
                                 "train.epochs": 30, "train.verbose": 0,
                                 "train.batch_size": 8})
    process = ray_sweep_training(sweep_file, tmp_path)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)  # cancelled: not 30 epochs later
    assert process.returncode == 130, stdout + stderr
    assert "sweep interrupted; finished runs are kept" in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "sweep" / "001-learning_rate=0.01" / "metrics.json").exists()
    leftover = subprocess.run(["pgrep", "-f", "ray::train_task"], capture_output=True)
    assert leftover.returncode == 1, leftover.stdout  # no task still running


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
    from cnnlab.training.loop import train

    config = tiny_config(**{"train.epochs": 1, "train.distribute": "mirrored"})
    run = train(config, tmp_path / "run", log=lambda line: None)
    assert run.metrics["status"] == "finished"
    record = run.metrics["distribute"]
    assert record["strategy"] == "mirrored" and record["class"] == "MirroredStrategy"
    assert record["replicas"] == 1 and len(record["devices"]) == 1
    assert "CPU" in record["devices"][0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_cluster_is_one_line_within_seconds(tmp_path: Path, sample_archive: Path,
                                                           cache_dir: Path, ray_installed) -> None:
    sweep_file = tiny_sweep(tmp_path / "scale.yaml", sample_archive, cache_dir)
    start = time.monotonic()
    result = CliRunner().invoke(main, ["sweep", str(sweep_file), "--backend", "ray", "--address",
                                       f"127.0.0.1:{free_port()}", "--out", str(tmp_path / "o")])
    assert time.monotonic() - start < 15
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no Ray cluster reachable there" in lines[0], result.stderr
    assert "ray start --head (it prints the address" in lines[0] and "--port" not in lines[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("option", [["--address", "auto"], ["--cpus-per-run", "2"],
                                    ["--gpus-per-run", "1"]])
def test_ray_options_without_the_ray_backend_are_refused(tmp_path: Path, sample_archive: Path,
                                                         cache_dir: Path, option) -> None:
    sweep_file = tiny_sweep(tmp_path / "scale.yaml", sample_archive, cache_dir)
    result = CliRunner().invoke(main, ["sweep", str(sweep_file), *option,
                                       "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    one_line_error(result.stderr, f"{option[0]}: only used with --backend ray",
                   "add --backend ray")
    assert not (tmp_path / "o").exists()


def test_a_worker_of_a_joined_cluster_killed_mid_run_is_recorded_and_retried(
        tmp_path: Path, sample_archive: Path, cache_dir: Path, ray_installed) -> None:
    # one cluster start for both: joining with --address, and a worker's death
    port = free_port()
    started = subprocess.run(
        ["ray", "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
         "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"],
        capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr
    try:
        sweep_file = tiny_sweep(tmp_path / "scale.yaml", sample_archive, cache_dir,
                                axes={"train.learning_rate": [0.01]},
                                set={"data.path": str(sample_archive),
                                     "data.cache_dir": str(cache_dir), "data.download": False,
                                     "data.train_size": 1000, "data.val_size": 100,
                                     "data.test_size": 100, "train.epochs": 6,
                                     "train.verbose": 0, "train.batch_size": 8})
        process = ray_sweep_training(sweep_file, tmp_path, "--address", f"127.0.0.1:{port}")
        workers = subprocess.run(["pgrep", "-f", "ray::train_task"], capture_output=True,
                                 text=True).stdout.split()
        assert len(workers) == 1
        subprocess.run(["kill", "-9", workers[0]], check=True)
        stdout, stderr = process.communicate(timeout=300)
    finally:
        subprocess.run(["ray", "stop", "--force"], capture_output=True, timeout=120)
    assert process.returncode == 0, stdout + stderr
    assert f"ray: joined the cluster at 127.0.0.1:{port}" in stdout
    assert "failed (" in stdout and "retrying once" in stdout, stdout
    failures = json.loads((tmp_path / "sweep" / "failures.json").read_text())
    assert [(f["run"], f["attempt"]) for f in failures] == [("001-learning_rate=0.01", 1)]
    row = rows(tmp_path / "sweep")["001-learning_rate=0.01"]
    assert row["status"] == "finished"
    assert row["node"].startswith(f"{socket.gethostname()} (ray node "), row["node"]
