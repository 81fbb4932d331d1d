"""Concurrent users of one machine: two runs decoding the same data into one cache at the
same moment, and report/compare reading a sweep folder while the sweep writes it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import yaml

from cnnlab.runs import load, storage

REPO = Path(__file__).resolve().parents[2]


def cnnlab(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cnnlab", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_runs_decode_the_same_data_into_one_cache_at_once(tmp_path: Path,
                                                              sample_archive: Path) -> None:
    cache = tmp_path / "cache"  # empty: both processes decode the archive
    args = ["--set", f"data.path={sample_archive}", "--set", f"data.cache_dir={cache}",
            "--set", "data.train_size=200", "--set", "data.val_size=100",
            "--set", "data.test_size=100", "--set", "train.epochs=1"]
    first = cnnlab("train", "best", "--out", "a", *args, cwd=tmp_path)
    second = cnnlab("train", "best", "--out", "b", *args, cwd=tmp_path)
    for process in (first, second):
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
    assert [p.suffix for p in cache.iterdir()] == [".arrays"]  # one entry, no temporary left
    a, b = load.read_run(tmp_path / "a"), load.read_run(tmp_path / "b")
    assert a.metrics["data"]["fingerprint"] == b.metrics["data"]["fingerprint"]
    assert a.history[0]["loss"] == b.history[0]["loss"]  # the same data, the same seed


def test_report_and_compare_while_a_sweep_writes_its_folder(tmp_path: Path,
                                                            sample_archive: Path,
                                                            cache_dir: Path) -> None:
    sweep = {"name": "busy", "base": "best", "axes": {"train.learning_rate": [
                 0.001, 0.002, 0.003, 0.004]},
             "set": {"data.path": str(sample_archive), "data.cache_dir": str(cache_dir),
                     "data.download": False, "data.train_size": 200, "data.val_size": 100,
                     "data.test_size": 100, "train.epochs": 2, "train.verbose": 0}}
    (tmp_path / "busy.yaml").write_text(yaml.safe_dump(sweep), encoding="utf-8")
    writer = cnnlab("sweep", "busy.yaml", "--out", "sweep", cwd=tmp_path)
    readers = 0
    while writer.poll() is None:
        if any((tmp_path / "sweep").glob("*/metrics.json")):
            for command in (["report", "sweep"], ["compare", "sweep", "--out", f"c{readers}"]):
                reader = subprocess.run([sys.executable, "-m", "cnnlab", *command],
                                        cwd=tmp_path, capture_output=True, text=True,
                                        timeout=300)
                assert reader.returncode == 0, reader.stderr
                assert "Traceback" not in reader.stderr
            readers += 1
        time.sleep(0.1)
    assert writer.returncode == 0, writer.communicate()[1]
    assert readers >= 1, "the sweep ended before any reader ran"
    assert len(storage.read_csv(tmp_path / "sweep" / "results.csv")) == 4
