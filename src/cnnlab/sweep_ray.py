"""The Ray backend of ``cnnlab sweep``: each unfinished run is one Ray task.

``run_on_ray(sweep, sweep_dir, log, options)`` is called by :func:`cnnlab.sweep.run_sweep`
after the sweep folder is prepared; the driver keeps the local backend's layout
(``<sweep>/<id>/`` run folders, ``results.csv``, plots), skips finished runs (resume),
and retries a run that fails on a worker once (an exception in training, or a worker
process that died). A plain ``ray.remote`` task per run is used, not Ray Tune: a run is
one ``training.train`` call that writes its own folder, so Tune's trial machinery
(checkpoints, reporting, its own result folders) would add nothing but a second layout.

Data reaches the workers through the decode cache (``data.cache_dir`` or
``$CNNLAB_CACHE_DIR``): the driver decodes each distinct data set once before any
task starts, and every worker reads the cached arrays. On a cluster, the data path,
the cache folder and the sweep folder must be on storage every node sees at the same
path (see the README, "Scaling out").

Ray is optional (``pip install "cnnlab[ray]"``); it is imported only here, on use.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnlab import runs, runtime, sweep_results
from cnnlab.errors import CnnlabError, one_line

if TYPE_CHECKING:
    from cnnlab.sweep import Sweep, SweepRun

Log = Callable[[str], None]
ATTEMPTS = 2  # a run that fails on a worker is retried once
# Environment passed on to the workers (they may run on other machines).
FORWARDED_ENV = ("CNNLAB_CACHE_DIR", "KERAS_HOME", "MLFLOW_TRACKING_URI",
                 "CNNLAB_INJECT_FAILURE", "TF_CPP_MIN_LOG_LEVEL")
# Testing aid: a worker training run <id> raises once when CNNLAB_INJECT_FAILURE=<id>.
INJECT_ENV = "CNNLAB_INJECT_FAILURE"


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None   # None: start Ray here; "auto": join a running cluster
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    num_cpus: int | None = None  # CPUs of a locally started Ray (default: all)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise CnnlabError('--backend ray needs Ray: pip install "cnnlab[ray]"') from None
    return ray


def run_on_ray(sweep: Sweep, sweep_dir: Path, log: Log, options: RayOptions) -> None:
    """Train the unfinished runs of ``sweep`` as Ray tasks; results.csv after each run."""
    ray = import_ray()
    pending = [r for r in sweep.runs if not (sweep_dir / r.id / "metrics.json").exists()]
    for run in sweep.runs:
        if run not in pending:
            log(f"[{run.index}/{len(sweep.runs)}] {run.id}: finished earlier, kept")
    if not pending:
        return
    _warm_cache(pending, log)
    started = _init(ray, options, log)
    try:
        _submit_and_wait(ray, sweep, sweep_dir, pending, log, options)
    finally:
        if started:
            ray.shutdown()


def _warm_cache(pending: list[SweepRun], log: Log) -> None:
    """Decode each distinct data set once on the driver, so workers only read the cache."""
    from cnnlab import data

    seen = set()
    for run in pending:
        cfg = run.config.data
        if cfg.cache and cfg not in seen:
            seen.add(cfg)
            located = data.locate(cfg, log)
            data.read_cached(located.path, cfg, log)


def forwarded_env() -> dict[str, str]:
    return {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}


def _init(ray: Any, options: RayOptions, log: Log) -> bool:
    """Connect to (or start) Ray; True when this call started it and must shut it down."""
    if ray.is_initialized():
        return False
    env = forwarded_env()
    runtime_env = {"env_vars": env} if env else None
    if options.address:
        ray.init(address=options.address, runtime_env=runtime_env, logging_level="WARNING")
        log(f"ray: joined the cluster at {options.address}")
    else:
        ray.init(num_cpus=options.num_cpus, runtime_env=runtime_env, include_dashboard=False,
                 logging_level="WARNING")
        log(f"ray: started locally with {int(ray.cluster_resources().get('CPU', 0))} CPUs")
    return True


def _submit_and_wait(ray: Any, sweep: Sweep, sweep_dir: Path, pending: list[SweepRun],
                     log: Log, options: RayOptions) -> None:
    task = ray.remote(num_cpus=options.cpus_per_run, num_gpus=options.gpus_per_run,
                      max_retries=0)(train_task)  # retries are counted here, not by Ray
    cwd = os.getcwd()
    total = len(sweep.runs)
    attempts: dict[str, int] = {}
    in_flight: dict[Any, SweepRun] = {}

    def submit(run: SweepRun) -> None:
        run_dir = sweep_dir / run.id
        if run_dir.exists():
            shutil.rmtree(run_dir)  # a partial folder of an earlier attempt
        attempts[run.id] = attempts.get(run.id, 0) + 1
        # oneDNN and threads are fixed when a worker imports TensorFlow: Ray keeps
        # separate workers per environment
        env = {**forwarded_env(), **runtime.environment(runtime.wanted(run.config.train))}
        in_flight[task.options(runtime_env={"env_vars": env}).remote(
            run.config, str(run_dir.resolve()), run.id, cwd, options.cpus_per_run)] = run

    for run in pending:
        submit(run)
    log(f"ray: {len(pending)} runs submitted ({options.cpus_per_run:g} CPU, "
        f"{options.gpus_per_run:g} GPU each)")
    start = time.monotonic()
    try:
        while in_flight:
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            run = in_flight.pop(ready[0])
            prefix = f"[{run.index}/{total}] {run.id}"
            try:
                summary = ray.get(ready[0])
                log(f"{prefix}: {summary} ({time.monotonic() - start:.0f}s into the sweep)")
            except Exception as exc:  # RayTaskError (training raised) or a dead worker
                message = _message(exc)
                failed = attempts[run.id] >= ATTEMPTS
                _record_failure(sweep_dir, run.id, attempts[run.id], message)
                runs.write_json(sweep_dir / run.id / "error.json", {
                    "status": "failed", "error": message, "attempt": attempts[run.id],
                    "backend": "ray"})
                if failed:
                    log(f"{prefix}: failed again ({message}); the sweep goes on, "
                        "rerun it to retry this run")
                else:
                    log(f"{prefix}: failed on a worker ({message}); retrying once")
                    submit(run)
                    continue
            sweep_results.write_sweep_results(sweep, sweep_dir)
    except KeyboardInterrupt:
        for ref in in_flight:
            ray.cancel(ref, force=True)
        from cnnlab.sweep import SweepInterrupted

        raise SweepInterrupted(sweep_dir) from None


def _record_failure(sweep_dir: Path, run_id: str, attempt: int, message: str) -> None:
    """Every failed attempt, kept in ``<sweep>/failures.json`` (a retry clears the run folder)."""
    path = sweep_dir / "failures.json"
    found = json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
    found.append({"run": run_id, "attempt": attempt, "error": message, "backend": "ray",
                  "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
    runs.write_json(path, found)


def _message(exc: Exception) -> str:
    cause = getattr(exc, "cause", None) or exc  # RayTaskError wraps the worker's exception
    text = str(cause).strip()
    if type(cause).__name__.startswith("RayTaskError"):
        text = text.splitlines()[-1] if text else ""
        return f"{type(cause).__name__}: {text}"
    return one_line(cause)


def train_task(config: Any, run_dir: str, run_id: str, cwd: str, cpus: float) -> str:
    """Runs on a worker: train one run into ``run_dir``; returns its summary line."""
    if os.path.isdir(cwd):
        os.chdir(cwd)  # relative data paths and outputs/ resolve as on the driver
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, int(cpus))))
    _maybe_inject_failure(run_id, Path(run_dir))
    from cnnlab import training

    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        print(f"    {run_id}: {line}", flush=True)  # shown on the driver by Ray

    result = training.train(config, run_dir, log=log)
    return training.summary_line(result.metrics, Path(run_dir))


def _maybe_inject_failure(run_id: str, run_dir: Path) -> None:
    """Testing aid: fail the first attempt of run ``$CNNLAB_INJECT_FAILURE``."""
    if os.environ.get(INJECT_ENV) != run_id:
        return
    marker = run_dir.parent / f".injected-failure-{run_id}"
    if not marker.exists():
        marker.touch()
        raise RuntimeError(f"injected failure for {run_id} (first attempt)")
