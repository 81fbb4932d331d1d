"""Soak: a small real sweep SIGKILLed at random moments, restarted each time, then run to
the end; every run must be finished exactly once and results.csv complete.

Slow (minutes), so excluded from the default run. Run it with

    python -m pytest -m slow tests/test_soak.py

``CNNLAB_SOAK_KILLS`` sets the number of kills (default 8), ``CNNLAB_SOAK_SEED`` the
random seed (default: time-based, printed), ``CNNLAB_SOAK_MAX_DELAY`` the longest wait in
seconds between the first progress line of a restarted sweep and its kill (default 12).
"""

from __future__ import annotations

import csv
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

EPOCHS = 2
BATCH_SIZES = (32, 64)
SEEDS = (0, 1)


def _start(sweep: Path, out: Path) -> tuple[subprocess.Popen, threading.Event, list[str]]:
    """Start the sweep; the event is set at its first progress line ('[k/N] ...'), which
    comes after TensorFlow is imported, so that kills land in training and writing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "CNNLAB_"))}
    process = subprocess.Popen([sys.executable, "-m", "cnnlab.cli", "sweep", str(sweep),
                                "--out", str(out)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    progress, lines = threading.Event(), []

    def read() -> None:
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("["):
                progress.set()
        progress.set()  # ended

    threading.Thread(target=read, daemon=True).start()
    return process, progress, lines


def _finished_marks(out: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of every run's metrics.json: once written it must never change."""
    return {p.parent.name: (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in out.glob("*/metrics.json")}


@pytest.mark.slow
def test_sweep_survives_random_sigkills(tmp_path: Path, sample_archive: Path,
                                        cache_dir: Path) -> None:
    kills = int(os.environ.get("CNNLAB_SOAK_KILLS", "8"))
    seed = int(os.environ.get("CNNLAB_SOAK_SEED", str(int(time.time()))))
    max_delay = float(os.environ.get("CNNLAB_SOAK_MAX_DELAY", "12"))
    rng = random.Random(seed)
    print(f"soak: {kills} kills, seed {seed}, delays up to {max_delay}s after start-up")
    sweep = tmp_path / "soak.yaml"
    sweep.write_text(yaml.safe_dump({
        "base": "baseline",
        "set": {"data.path": str(sample_archive), "data.cache_dir": str(cache_dir),
                "data.download": False, "data.train_size": 300, "data.val_size": 100,
                "data.test_size": 100, "train.epochs": EPOCHS, "train.verbose": 0},
        "axes": {"train.batch_size": list(BATCH_SIZES), "seed": list(SEEDS)},
    }))
    out = tmp_path / "out"
    marks: dict[str, tuple[int, int]] = {}
    killed = completed_early = 0
    while killed < kills:
        process, progress, lines = _start(sweep, out)
        progress.wait(timeout=300)
        time.sleep(rng.uniform(0, max_delay))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed += 1
        else:
            completed_early += 1
            assert process.returncode == 0, "\n".join(lines)
        process.wait()
        now = _finished_marks(out)
        changed = {run for run, mark in marks.items() if now.get(run) != mark}
        assert not changed, f"finished runs rewritten or lost after a kill: {changed}"
        marks = now
        print(f"kill {killed}: {len(marks)} runs finished so far")
        if completed_early > kills:
            pytest.fail("the sweep keeps finishing before the kill; lower CNNLAB_SOAK_MAX_DELAY")
        if completed_early and len(marks) == len(BATCH_SIZES) * len(SEEDS):
            # restart from scratch in a new folder so that the kills keep hitting work
            marks, out = {}, tmp_path / f"out{killed}-{completed_early}"

    final = subprocess.run([sys.executable, "-m", "cnnlab.cli", "sweep", str(sweep),
                            "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert final.returncode == 0, final.stdout + final.stderr
    assert all(_finished_marks(out).get(run) == mark for run, mark in marks.items()), \
        "a run finished before the last restart was redone"

    ids = [r["id"] for r in yaml.safe_load((out / "sweep.yaml").read_text())["runs"]]
    assert len(ids) == len(BATCH_SIZES) * len(SEEDS)
    with (out / "results.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["run"] for r in rows] == ids  # one row per run, none repeated
    for row in rows:
        assert row["status"] == "finished"
        assert 0.0 <= float(row["best_val_accuracy"]) <= 1.0
        assert 0.0 <= float(row["test_accuracy"]) <= 1.0 and float(row["ms_per_step"]) > 0
    run_dirs = sorted(p.name for p in out.iterdir() if p.is_dir() and re.match(r"\d{3}-", p.name))
    assert run_dirs == sorted(ids), "stray or missing run folders"
    for run in ids:
        with (out / run / "history.csv").open(newline="", encoding="utf-8") as fh:
            epochs = [int(r["epoch"]) for r in csv.DictReader(fh)]
        assert epochs == list(range(1, EPOCHS + 1)), (run, epochs)  # each epoch once
        assert not (out / run / "error.json").exists() and not (out / run / "backup").exists()
    leftovers = [str(p.relative_to(out)) for p in out.rglob(".*.tmp*")]
    assert not leftovers, f"temporary files left behind: {leftovers}"
    print(f"soak: {killed} kills ({completed_early} restarts found the sweep finished), "
          f"{len(ids)} runs finished once each, results.csv complete")
