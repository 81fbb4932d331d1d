"""Soak: a small real sweep SIGKILLed at random moments, restarted each time, then run to
the end; every run must be finished exactly once and results.csv complete.

Both versions are marked slow (the default run's kill-and-resume tests are in test_jobs,
test_sweep and test_adaptive): 3 kills, and the long one:

    python -m pytest -m slow tests/sweep/test_soak.py

``CNNLAB_SOAK_KILLS`` sets its number of kills (default 8), ``CNNLAB_SOAK_SEED`` the
random seed (default: time-based, printed), ``CNNLAB_SOAK_MAX_DELAY`` its longest wait in
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


class Sweep:
    """`cnnlab sweep` in a child process, its output read by a thread: ``progress`` is set
    at its first progress line ('[k/N] ...'), which comes after TensorFlow is imported and
    after the sweep folder was prepared (its leftover temporary files deleted)."""

    def __init__(self, sweep: Path, out: Path):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "CNNLAB_"))}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cnnlab.cli", "sweep", str(sweep), "--out", str(out)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.progress, self.ended, self.lines = threading.Event(), threading.Event(), []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("["):
                self.progress.set()
        self.ended.set()

    def wait_for_progress(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not self.progress.wait(0.05):
            assert not self.ended.is_set(), "the sweep ended without progress:\n" + self.output
            assert time.monotonic() < deadline, "no progress line in time:\n" + self.output
        self.seen = time.monotonic()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


def _temporaries(out: Path) -> set[Path]:
    """Temporary files of atomic writes in the sweep folder and its run folders."""
    return {p for folder in (out, *(d for d in out.iterdir() if d.is_dir()))
            for p in folder.glob(".*.tmp*") if p.is_file()} if out.exists() else set()


def _plant_leftovers(out: Path, kill: int) -> set[Path]:
    """What a kill inside an atomic write leaves: a half-written temporary file beside the
    file it was to replace (named as write_atomic names them)."""
    planted = {out / f".results.csv.soak{kill}.tmp"}
    planted |= {run / f".history.csv.soak{kill}.tmp" for run in out.iterdir()
                if run.is_dir() and re.match(r"\d{3}-", run.name)}
    for path in planted:
        path.write_text("run,best_val_accu")
    return planted


def _finished_marks(out: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of every run's metrics.json: once written it must never change."""
    return {p.parent.name: (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in out.glob("*/metrics.json")}


@pytest.mark.parametrize(("kills", "max_delay"), [
    # the default run's SIGKILL-and-resume cases are test_jobs', test_sweep's and
    # test_adaptive's; this soak is long, so it runs with -m slow
    pytest.param(3, 6.0, marks=pytest.mark.slow, id="3-kills"),
    pytest.param(int(os.environ.get("CNNLAB_SOAK_KILLS", "8")),
                 float(os.environ.get("CNNLAB_SOAK_MAX_DELAY", "12")),
                 marks=pytest.mark.slow, id="long"),
])
def test_sweep_survives_random_sigkills(tmp_path: Path, sample_archive: Path, cache_dir: Path,
                                        kills: int, max_delay: float) -> None:
    seed = int(os.environ.get("CNNLAB_SOAK_SEED", str(int(time.time()))))
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
    left: set[Path] = set()  # temporary files a kill left, real or planted
    killed = completed_early = cleaned = 0
    while killed < kills:
        running = Sweep(sweep, out)
        running.wait_for_progress()
        gone = {p for p in left if not p.exists()}
        assert gone == left, f"leftovers not deleted by the restart: {sorted(left - gone)}"
        cleaned += len(gone)
        delay = rng.uniform(0, max_delay)
        time.sleep(delay)
        if running.process.poll() is None:
            running.process.send_signal(signal.SIGKILL)
        running.process.wait()
        if running.process.returncode == -signal.SIGKILL:  # the kill landed, mid-sweep
            killed += 1
            assert time.monotonic() - running.seen >= delay
        else:
            completed_early += 1
            assert running.process.returncode == 0, running.output
        now = _finished_marks(out)
        changed = {run for run, mark in marks.items() if now.get(run) != mark}
        assert not changed, f"finished runs rewritten or lost after a kill: {changed}"
        marks = now
        left = _temporaries(out) | _plant_leftovers(out, killed + completed_early)
        print(f"kill {killed} ({delay:.1f}s after start-up): {len(marks)} runs finished so "
              f"far, {len(left)} temporary files left")
        if completed_early > kills:
            pytest.fail("the sweep keeps finishing before the kill; lower CNNLAB_SOAK_MAX_DELAY")
        if completed_early and len(marks) == len(BATCH_SIZES) * len(SEEDS):
            # restart from scratch in a new folder so that the kills keep hitting work
            marks, out, left = {}, tmp_path / f"out{killed}-{completed_early}", set()

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
    assert not any(p.exists() for p in left), "leftovers not deleted by the last restart"
    cleaned += len(left)
    leftovers = [str(p.relative_to(out)) for p in out.rglob(".*.tmp*")]
    assert not leftovers, f"temporary files left behind: {leftovers}"
    print(f"soak: {killed} kills ({completed_early} restarts found the sweep finished), "
          f"{cleaned} leftover temporary files deleted by restarts, "
          f"{len(ids)} runs finished once each, results.csv complete")
