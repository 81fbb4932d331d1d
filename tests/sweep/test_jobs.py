"""``cnnlab sweep --jobs``: several runs at once in worker processes, with the results of
one at a time; a sweep killed with SIGKILL mid-way resumes without losing or repeating a
run; every run records the time of each of its phases."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import one_line_error, user_env

# Four one-thread runs in two settings groups (batch 2: oneDNN off; batch 4: on).
AXES = {"train.batch_size": [2, 4], "seed": [0, 1]}
METRICS = ("run", "arm", "repeat", "train.batch_size", "seed", "status", "best_val_accuracy",
           "best_epoch", "test_accuracy", "final_train_loss", "final_val_loss",
           "overfit_epoch")
PHASES = {"tensorflow_import", "data", "build", "first_epoch", "later_epochs", "checkpoints",
          "tracking", "fit_other", "test_evaluation", "plots", "report"}


def write_sweep(folder: Path, sample_archive: Path, cache_dir: Path, epochs: int = 2,
                train_size: int = 300) -> Path:
    path = folder / "jobs.yaml"
    path.write_text(yaml.safe_dump({
        "name": "jobs", "base": "baseline", "axes": AXES,
        "set": {"data.path": str(sample_archive), "data.cache_dir": str(cache_dir),
                "data.download": False, "data.train_size": train_size, "data.val_size": 100,
                "data.test_size": 100, "train.epochs": epochs, "train.verbose": 0}}))
    return path


# The CLI in one process, reporting at the end whether that process imported TensorFlow.
IN_PROCESS = """
import sys
from cnnlab.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    print("tensorflow imported here:", "tensorflow" in sys.modules)
"""


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory, sample_archive: Path,
         cache_dir: Path) -> dict[str, tuple[Path, str]]:
    """The same sweep with --jobs 1 and --jobs 2: (sweep folder, console output)."""
    root = tmp_path_factory.mktemp("jobs")
    sweep = write_sweep(root, sample_archive, cache_dir)
    done = {}
    for jobs in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", IN_PROCESS, "sweep", str(sweep), "--out",
                              f"jobs{jobs}", "--jobs", jobs], cwd=root, env=user_env(),
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stdout + out.stderr
        done[jobs] = root / f"jobs{jobs}", out.stdout
    return done


def rows(sweep_dir: Path) -> list[dict[str, str]]:
    with (sweep_dir / "results.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_two_jobs_give_the_results_of_one(both: dict[str, tuple[Path, str]]) -> None:
    one, two = rows(both["1"][0]), rows(both["2"][0])
    assert [r["run"] for r in one] == [r["run"] for r in two] and len(one) == 4
    for a, b in zip(one, two, strict=True):
        assert {k: a[k] for k in METRICS} == {k: b[k] for k in METRICS}, a["run"]
        assert a["status"] == "finished"
        history = [runs_history(both[jobs][0] / a["run"]) for jobs in ("1", "2")]
        assert history[0] == history[1]  # every epoch's losses, bit for bit


def runs_history(run_dir: Path) -> list[tuple[str, ...]]:
    with (run_dir / "history.csv").open(newline="", encoding="utf-8") as handle:
        return [(r["loss"], r["accuracy"], r["val_loss"], r["val_accuracy"])
                for r in csv.DictReader(handle)]


def test_two_jobs_run_side_by_side_in_workers(both: dict[str, tuple[Path, str]]) -> None:
    sweep_dir, output = both["2"]
    assert "--jobs 2: up to 2 runs at once, each in a worker process" in output
    # the sweep process itself trains nothing, so it never imports TensorFlow
    assert "tensorflow imported here: False" in output
    assert "Epoch 1/2" not in output and "run folder:" not in output  # one line per run
    starts = [line for line in output.splitlines() if line.startswith("[") and " -- " in line]
    ends = [line for line in output.splitlines() if ": finished, best val accuracy" in line]
    assert len(starts) == len(ends) == 4
    # the second run started before the first ended: two at once
    lines = output.splitlines()
    assert lines.index(starts[1]) < lines.index(ends[0])
    assert "tensorflow imported here: True" in both["1"][1]


def test_every_run_records_its_phases(both: dict[str, tuple[Path, str]]) -> None:
    for jobs in ("1", "2"):
        imports = []
        for row in rows(both[jobs][0]):
            metrics = json.loads((both[jobs][0] / row["run"] / "metrics.json").read_text())
            phases = metrics["phases"]
            assert set(phases) == PHASES, row["run"]
            assert all(v >= 0 for v in phases.values())
            assert phases["first_epoch"] > 0 and phases["later_epochs"] > 0
            assert phases["first_epoch"] == pytest.approx(
                float(runs_history_times(both[jobs][0] / row["run"])[0]), abs=1e-3)
            imports.append(phases["tensorflow_import"])
        if jobs == "1":  # this process trains one settings group, a worker the other:
            # each imports TensorFlow once, for its first run; its second run pays nothing
            assert sorted(v > 0 for v in imports) == [False, False, True, True], imports


def runs_history_times(run_dir: Path) -> list[str]:
    with (run_dir / "history.csv").open(newline="", encoding="utf-8") as handle:
        return [r["epoch_s"] for r in csv.DictReader(handle)]


def test_sigkill_during_two_jobs_then_resume_loses_and_repeats_nothing(
        tmp_path: Path, sample_archive: Path, cache_dir: Path) -> None:
    sweep = write_sweep(tmp_path, sample_archive, cache_dir, epochs=4, train_size=600)
    out = tmp_path / "sweep"
    process = subprocess.Popen([sys.executable, "-m", "cnnlab", "sweep", str(sweep), "--out",
                                str(out), "--jobs", "2"], cwd=tmp_path, env=user_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list(out.glob("*/metrics.json")) and time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    time.sleep(1.5)  # the workers notice their sweep is gone within a second and stop
    finished = {p.parent.name: (p.stat().st_mtime_ns, p.read_bytes())
                for p in out.glob("*/metrics.json")}
    assert 1 <= len(finished) < 4, sorted(finished)

    again = subprocess.run([sys.executable, "-m", "cnnlab", "sweep", str(sweep), "--out",
                            str(out), "--jobs", "2"], cwd=tmp_path, env=user_env(),
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resuming: {len(finished)} finished earlier, kept" in again.stdout
    for run, mark in finished.items():
        path = out / run / "metrics.json"
        assert (path.stat().st_mtime_ns, path.read_bytes()) == mark, f"{run} was redone"
    ids = [r["id"] for r in yaml.safe_load((out / "sweep.yaml").read_text())["runs"]]
    assert [r["run"] for r in rows(out)] == ids and len(ids) == 4  # each run once
    for run in ids:
        assert rows(out)[ids.index(run)]["status"] == "finished"
        epochs = [e for e in runs_history_times(out / run)]
        assert len(epochs) == 4, (run, epochs)  # each epoch once
    run_dirs = sorted(p.name for p in out.iterdir() if p.is_dir() and p.name[:3].isdigit())
    assert run_dirs == sorted(ids)


def many_runs(folder: Path) -> str:
    """A sweep of 400 runs on the whole of CIFAR-10: --jobs is capped at 400 (the runs to
    train), which no machine's memory holds at once."""
    path = folder / "many.yaml"
    path.write_text(yaml.safe_dump({"base": "baseline", "axes": {"seed": list(range(400))}}))
    return str(path)


@pytest.mark.parametrize(("args", "fragments"), [
    (["--jobs", "100000"], ("--jobs 100000: 400 runs at once need about", "GB of memory",
                            "is available; use --jobs")),
    (["--jobs", "2", "--backend", "ray"], ("--jobs is for --backend local",)),
    (["--jobs", "0"], ("Invalid value for '--jobs': '0': give a number of runs (1, 2, ...) "
                       "or auto",)),
    (["--jobs", "two"], ("Invalid value for '--jobs': 'two': give a number of runs",)),
])
def test_jobs_that_cannot_be_used_are_refused_before_any_work(
        tmp_path: Path, args: list[str], fragments: tuple[str, ...]) -> None:
    out = subprocess.run([sys.executable, "-m", "cnnlab", "sweep", many_runs(tmp_path),
                          "--out", str(tmp_path / "s"), *args], cwd=tmp_path, env=user_env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    if args[1].isalpha() or args[1] == "0":  # click's usage error, as for every option
        assert "Traceback" not in out.stderr and fragments[0] in out.stderr
    else:
        one_line_error(out.stderr, *fragments)
    assert not (tmp_path / "s").exists()  # refused before any folder


def test_cnnlab_jobs_sets_the_default(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "cnnlab", "sweep", many_runs(tmp_path),
                          "--out", str(tmp_path / "s")], cwd=tmp_path,
                         env={**user_env(), "CNNLAB_JOBS": "100000"},
                         capture_output=True, text=True, timeout=120)
    one_line_error(out.stderr, "--jobs 100000: 400 runs at once need about")  # not the default 1


def test_a_run_waiting_for_the_cores_gets_its_worker_started_while_one_is_idle(
        tmp_path: Path, tiny_config) -> None:
    """--jobs auto, timed runs: an all-cores run waits while a one-thread run trains. If a
    core is idle meanwhile, its worker starts and imports TensorFlow then; that worker
    trains it."""
    from cnnlab.backend import runtime
    from cnnlab.sweep.executors import WorkerProcesses
    from cnnlab.sweep.spec import SweepRun

    one = SweepRun(1, "one", None, {}, tiny_config("baseline", **{"train.batch_size": 4}))
    alone = SweepRun(2, "alone", None, {}, tiny_config("baseline", **{"train.batch_size": 64}))
    executor = WorkerProcesses([one, alone], jobs=2, cores=2, all_cores_at_once=1)
    try:
        executor.prepare(alone, [one, one])  # no idle core: nothing starts
        assert not executor.pools
        executor.prepare(alone, [one])
        assert list(executor.pools) == [runtime.wanted(alone.config.train)]
        [worker] = executor.pools.values()
        deadline = time.monotonic() + 120
        while not (worker.pids and "tensorflow" in maps(worker.pids[0])):
            assert time.monotonic() < deadline, "the worker never imported TensorFlow"
            time.sleep(0.2)
        executor.submit(alone, tmp_path / "alone", lambda line: None).result(timeout=300)
        assert len(worker.pids) == 1  # the run went to the started worker
    finally:
        executor.close()
    phases = json.loads((tmp_path / "alone" / "metrics.json").read_text())["phases"]
    assert phases["tensorflow_import"] > 0  # its first run claims the import


def maps(pid: int) -> str:
    """The files a process has mapped (its shared libraries among them)."""
    try:
        return Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return ""


def test_the_data_notice_comes_once_however_many_splits_are_warmed(
        tmp_path: Path, sample_archive: Path, cache_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """--jobs N decodes each data set here first: repeats with their own split are
    distinct data sets, but where the data came from is said once."""
    from cnnlab.config.files import load_config
    from cnnlab.sweep.executors import warm_cache

    monkeypatch.setenv("CNNLAB_DATA_DIR", str(sample_archive.parent))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    configs = [load_config("baseline", {"data.cache_dir": str(cache_dir),
                                        "data.download": False, "data.split_seed": seed})
               for seed in (0, 1, 2)]
    lines: list[str] = []
    warm_cache(configs, lines.append)
    assert sum("using the bundled sample" in line for line in lines) == 1, lines


def test_all_cores_runs_go_two_at_a_time_unless_timed(tiny_config) -> None:
    """--jobs auto packs an all-cores run as half the cores; timed runs (the reference
    study's batch sizes) keep an all-cores run alone. Deciding starts no worker."""
    from cnnlab.sweep.executors import WorkerProcesses
    from cnnlab.sweep.spec import SweepRun

    one, wide, other = (SweepRun(i, name, None, {}, tiny_config("baseline", **{
        "train.batch_size": batch})) for i, name, batch in ((1, "one", 4), (2, "wide", 64),
                                                             (3, "other", 128)))
    paired = WorkerProcesses([one, wide, other], jobs=2, cores=2, all_cores_at_once=2)
    alone = WorkerProcesses([one, wide, other], jobs=2, cores=2, all_cores_at_once=1)
    assert paired.fits(other, [wide]) and paired.fits(wide, [one])
    assert not alone.fits(other, [wide]) and not alone.fits(wide, [one])
    assert alone.fits(one, []) and alone.fits(wide, [])
    assert not paired.pools and not alone.pools
