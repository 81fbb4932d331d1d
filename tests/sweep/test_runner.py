"""The sweep runner's failure policy and resume, without training: a small executor that
"trains" a run by writing its metrics.json, or fails on the attempts it is told to."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from cnnlab.errors import DataError, SweepInterrupted, TrainingInterrupted
from cnnlab.runs import layout, storage
from cnnlab.sweep import runner
from cnnlab.sweep.spec import Sweep, SweepRun, sweep_from_dict

IDS = ["001-batch_size=16", "002-batch_size=32", "003-batch_size=64"]


def small_sweep() -> Sweep:
    return sweep_from_dict({"name": "tiny", "base": "baseline",
                            "axes": {"train.batch_size": [16, 32, 64]}})


def accuracy(run: SweepRun) -> float:
    """What the scripted training reaches: the larger the batch, the better."""
    return run.config.train.batch_size / 100


class Scripted:
    """An executor that writes a finished run's metrics.json, or raises the error given
    for (run id, attempt); up to ``slots`` runs at once, in threads."""

    name = "scripted"

    def __init__(self, errors: dict[tuple[str, int], BaseException] | None = None,
                 slots: int = 1, together: threading.Barrier | None = None):
        self.errors, self.slots, self.together = errors or {}, slots, together
        self.calls: list[str] = []
        self.prepared: list[tuple[str, list[str]]] = []
        self.pool = ThreadPoolExecutor(slots)

    def fits(self, run: SweepRun, busy: Sequence[SweepRun]) -> bool:
        return len(busy) < self.slots

    def prepare(self, run: SweepRun, busy: Sequence[SweepRun]) -> None:
        self.prepared.append((run.id, [b.id for b in busy]))

    def submit(self, run: SweepRun, run_dir: Path, log: runner.Log) -> Future[None]:
        self.calls.append(run.id)
        return self.pool.submit(self._train, run, run_dir, log, self.calls.count(run.id))

    def _train(self, run: SweepRun, run_dir: Path, log: runner.Log, attempt: int) -> None:
        if self.together:
            self.together.wait()  # broken (an error) unless that many runs train at once
        run_dir.mkdir(parents=True)
        (run_dir / layout.HISTORY_FILE).write_text("epoch,loss\n1,2.0\n", encoding="utf-8")
        log(f"epoch 1 of {run.id}")
        error = self.errors.get((run.id, attempt))
        if error:
            raise error
        storage.write_json(run_dir / layout.METRICS_FILE, {
            "status": "finished", "best_val_accuracy": accuracy(run), "best_epoch": 1,
            "test_accuracy": accuracy(run) - 0.01, "final_val_loss": 1 - accuracy(run),
            "final_train_loss": 0.5, "trainable_params": 100})

    def close(self, cancel: bool = False) -> None:
        self.pool.shutdown(wait=True)


def sweep_once(sweep_dir: Path, executor: Scripted, sweep: Sweep | None = None) -> list[str]:
    """Run the sweep into ``sweep_dir``; its log lines."""
    lines: list[str] = []
    try:
        runner.run(sweep or small_sweep(), sweep_dir, executor, lines.append)
    finally:
        executor.close()
    return lines


def results(sweep_dir: Path) -> dict[str, tuple[str, object]]:
    """results.csv as {run: (status, rank)}."""
    return {r["run"]: (r["status"], r["rank"])
            for r in storage.read_csv(sweep_dir / layout.RESULTS_FILE)}


def failures(sweep_dir: Path) -> list[dict[str, object]]:
    return json.loads((sweep_dir / layout.FAILURES_FILE).read_text(encoding="utf-8"))


def test_every_run_trains_once_and_results_rank_them(tmp_path: Path) -> None:
    executor = Scripted()
    lines = sweep_once(tmp_path, executor)
    assert executor.calls == IDS
    assert results(tmp_path) == {IDS[0]: ("finished", 3), IDS[1]: ("finished", 2),
                                 IDS[2]: ("finished", 1)}
    assert not (tmp_path / layout.FAILURES_FILE).exists()
    assert lines[0] == (f"[1/3] {IDS[0]}: train.batch_size=16 -- started; 0 done, 1 running, "
                        "2 waiting, time left known after the first run")
    assert f"    epoch 1 of {IDS[0]}" in lines  # one run at a time: its lines are shown
    assert f"[1/3] {IDS[0]}: finished, best val accuracy 0.1600, test accuracy 0.1500" in (
        line.rsplit(" (", 1)[0] for line in lines)
    assert any(line.startswith(f"[2/3] {IDS[1]}: train.batch_size=32 -- started; 1 done, "
                               "1 running, 1 waiting, about ") for line in lines)
    # the next run waits while one trains, and the executor may get ready for it
    assert executor.prepared[0] == (IDS[1], [IDS[0]])


def test_a_run_that_fails_once_is_retried_and_finishes(tmp_path: Path) -> None:
    executor = Scripted({(IDS[0], 1): RuntimeError("worker lost\nsecond line")})
    lines = sweep_once(tmp_path, executor)
    assert Counter(executor.calls) == {IDS[0]: 2, IDS[1]: 1, IDS[2]: 1}
    assert results(tmp_path) == {IDS[0]: ("finished", 3), IDS[1]: ("finished", 2),
                                 IDS[2]: ("finished", 1)}
    [record] = failures(tmp_path)
    assert {k: record[k] for k in ("run", "attempt", "error", "backend")} == {
        "run": IDS[0], "attempt": 1, "error": "RuntimeError: worker lost",
        "backend": "scripted"}
    assert not (tmp_path / IDS[0] / layout.ERROR_FILE).exists()  # cleared for the retry
    assert f"[1/3] {IDS[0]}: failed (RuntimeError: worker lost); retrying once" in lines


def test_a_run_that_fails_twice_is_recorded_failed_and_the_sweep_goes_on(
        tmp_path: Path) -> None:
    boom = RuntimeError("out of luck")
    executor = Scripted({(IDS[1], 1): boom, (IDS[1], 2): boom})
    lines = sweep_once(tmp_path, executor)
    assert Counter(executor.calls) == {IDS[0]: 1, IDS[1]: 2, IDS[2]: 1}
    assert results(tmp_path) == {IDS[0]: ("finished", 2), IDS[1]: ("failed", ""),
                                 IDS[2]: ("finished", 1)}
    assert [(r["run"], r["attempt"]) for r in failures(tmp_path)] == [(IDS[1], 1), (IDS[1], 2)]
    error = json.loads((tmp_path / IDS[1] / layout.ERROR_FILE).read_text(encoding="utf-8"))
    assert (error["status"], error["attempt"], error["error"]) == (
        "failed", 2, "RuntimeError: out of luck")
    assert (f"[2/3] {IDS[1]}: failed again (RuntimeError: out of luck); the sweep goes on, "
            "rerun it to retry this run") in lines

    # a second run() (a resume) keeps the finished runs and redoes the failed one
    again = Scripted()
    lines = sweep_once(tmp_path, again)
    assert again.calls == [IDS[1]]
    assert f"[1/3] {IDS[0]}: finished earlier, kept" in lines
    assert f"[2/3] {IDS[1]}: cleared the unfinished folder of an earlier attempt" in lines
    assert results(tmp_path) == {IDS[0]: ("finished", 3), IDS[1]: ("finished", 2),
                                 IDS[2]: ("finished", 1)}
    assert len(failures(tmp_path)) == 2  # the record of what went wrong is kept
    assert not (tmp_path / IDS[1] / layout.ERROR_FILE).exists()


def test_a_user_error_stops_the_sweep_and_keeps_what_finished(tmp_path: Path) -> None:
    executor = Scripted({(IDS[1], 1): DataError("data.path: no such file; fix the path")})
    with pytest.raises(DataError, match="^data.path: no such file; fix the path$"):
        sweep_once(tmp_path, executor)
    assert executor.calls == IDS[:2]  # not retried, and nothing after it started
    assert results(tmp_path) == {IDS[0]: ("finished", 1), IDS[1]: ("pending", ""),
                                 IDS[2]: ("pending", "")}
    assert not (tmp_path / layout.FAILURES_FILE).exists()  # not a failure of the run


class InterruptedAtSubmit(Scripted):
    """Ctrl-C while a run is handed over (an executor training in this process)."""

    def submit(self, run: SweepRun, run_dir: Path, log: runner.Log) -> Future[None]:
        if run.id == IDS[2]:
            self.calls.append(run.id)
            raise KeyboardInterrupt
        return super().submit(run, run_dir, log)


@pytest.mark.parametrize("executor", [
    Scripted({(IDS[2], 1): KeyboardInterrupt()}),
    Scripted({(IDS[2], 1): TrainingInterrupted(IDS[2])}),
    InterruptedAtSubmit(),
], ids=["ctrl-c in the run", "training interrupted", "ctrl-c at submit"])
def test_ctrl_c_becomes_sweep_interrupted_and_keeps_what_finished(
        tmp_path: Path, executor: Scripted) -> None:
    with pytest.raises(SweepInterrupted) as stopped:
        sweep_once(tmp_path, executor)
    assert str(stopped.value) == (
        f"sweep interrupted; finished runs are kept in {tmp_path}; run the same command "
        f"with --out {tmp_path} to resume")
    assert executor.calls == IDS  # not retried
    assert results(tmp_path) == {IDS[0]: ("finished", 2), IDS[1]: ("finished", 1),
                                 IDS[2]: ("pending", "")}
    assert [r.id for r in runner.pending(small_sweep(), tmp_path)] == [IDS[2]]
    assert not (tmp_path / layout.FAILURES_FILE).exists()


def test_finished_folders_are_kept_and_an_unfinished_one_is_cleared(tmp_path: Path) -> None:
    kept = tmp_path / IDS[1]
    kept.mkdir()
    storage.write_json(kept / layout.METRICS_FILE, {"status": "finished",
                                                    "best_val_accuracy": 0.99})
    partial = tmp_path / IDS[0]
    partial.mkdir()
    (partial / layout.STATUS_FILE).write_text('{"status": "interrupted"}', encoding="utf-8")
    (partial / "stray.txt").write_text("left by a killed run", encoding="utf-8")
    executor = Scripted()
    lines = sweep_once(tmp_path, executor)
    assert executor.calls == [IDS[0], IDS[2]]
    assert f"[2/3] {IDS[1]}: finished earlier, kept" in lines
    assert f"[1/3] {IDS[0]}: cleared the unfinished folder of an earlier attempt" in lines
    assert sorted(p.name for p in partial.iterdir()) == [layout.HISTORY_FILE,
                                                          layout.METRICS_FILE]
    assert json.loads((kept / layout.METRICS_FILE).read_text(encoding="utf-8")) == {
        "status": "finished", "best_val_accuracy": 0.99}
    assert results(tmp_path) == {IDS[0]: ("finished", 3), IDS[1]: ("finished", 1),
                                 IDS[2]: ("finished", 2)}


def test_runs_side_by_side_fill_the_slots_and_keep_their_lines_quiet(tmp_path: Path) -> None:
    # both slots must be busy at once, or the barrier breaks and every run fails
    executor = Scripted(slots=2, together=threading.Barrier(2, timeout=20))
    sweep = sweep_from_dict({"base": "baseline", "axes": {"train.batch_size": [16, 32]}})
    lines = sweep_once(tmp_path, executor, sweep)
    assert results(tmp_path) == {IDS[0]: ("finished", 2), IDS[1]: ("finished", 1)}
    assert not any(line.startswith("    ") for line in lines)
    assert not (tmp_path / layout.FAILURES_FILE).exists()


class WithConfig(Scripted):
    """Also writes the run's config.yaml, which adaptive seeds read back."""

    def _train(self, run: SweepRun, run_dir: Path, log: runner.Log, attempt: int) -> None:
        super()._train(run, run_dir, log, attempt)
        storage.write_atomic(run_dir / layout.CONFIG_FILE, run.config.to_yaml())


def test_adaptive_seeds_count_only_the_runs_handed_out(tmp_path: Path) -> None:
    """With repeats: auto the lines count the round's runs, not the most the sweep may take."""
    from cnnlab.sweep.seeds import Seeds

    sweep = sweep_from_dict({"name": "tiny", "base": "baseline",
                             "axes": {"train.batch_size": [16, 64]}}, repeats="auto",
                            seeds=(2, 4))
    lines: list[str] = []
    source = Seeds(sweep, tmp_path, lines.append)
    assert source.total == 8 and source.done() == 0
    executor = WithConfig()
    try:
        runner.run(sweep, tmp_path, executor, lines.append, source=source)
    finally:
        executor.close()
    started = [line for line in lines if "-- started;" in line]
    assert started[0].endswith("started; 0 done, 1 running, 3 waiting, time left known "
                               "after the first run"), started[0]
    assert started[0].startswith("[1/8] ")
    ended = [line for line in lines if ": finished, best val accuracy" in line]
    assert len(ended) == len(executor.calls) == source.done()
    assert ended[-1].split("; ")[-1].startswith(f"{source.done()} done, 0 running, 0 waiting")


def test_a_long_resumed_sweep_says_what_it_kept_in_one_line(tmp_path: Path) -> None:
    sweep = sweep_from_dict({"name": "long", "base": "baseline",
                             "axes": {"train.batch_size": list(range(16, 28))}})
    sweep_once(tmp_path, Scripted(), sweep)
    again = sweep_once(tmp_path, Scripted(), sweep)
    ids = [r.id for r in sweep.runs]
    assert again == [f"12 runs finished earlier, kept: {ids[0]} ... {ids[-1]}"]
