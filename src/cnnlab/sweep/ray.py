"""The Ray executor of ``cnnlab sweep --backend ray``: each run is one Ray task.

The sweep runner (:mod:`cnnlab.sweep.runner`) keeps the local layout, resume and the
failure policy; this module only starts (or joins) Ray and trains a run as a task. A
plain ``ray.remote`` task per run is used, not Ray Tune: a run is one ``training.train``
call that writes its own folder, so Tune's trial machinery (checkpoints, reporting, its
own result folders) would add nothing but a second layout.

Data reaches the workers through the decode cache (``data.cache_dir`` or
``$CNNLAB_CACHE_DIR``): each distinct data set is decoded once on the driver before the
first task starts, and every worker reads the cached arrays. On a cluster, the data path,
the cache folder and the sweep folder must be on storage every node sees at the same path
(see docs/scaling.md).

Ray is optional (``pip install "cnnlab[ray]"``); it is imported only here, on use.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.backend import runtime
from cnnlab.config.schema import Config
from cnnlab.data.dataset import NOTICE_PREFIX
from cnnlab.errors import CnnlabError, ConfigError
from cnnlab.sweep import executors
from cnnlab.sweep.spec import SweepRun

Log = Callable[[str], None]
# Environment passed on to the workers (they may run on other machines).
FORWARDED_ENV = ("CNNLAB_CACHE_DIR", "KERAS_HOME", "MLFLOW_TRACKING_URI", "TF_CPP_MIN_LOG_LEVEL")


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None   # None: start Ray here; "auto": join a running cluster
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    num_cpus: int | None = None  # CPUs of a locally started Ray (default: all)


def ray_options(address: str | None, cpus_per_run: float | None = None,
                gpus_per_run: float | None = None, jobs_given: bool = False) -> RayOptions:
    """The Ray backend's options, checked before any folder is made: Ray importable, the
    cluster at ``address`` reachable, no ``--jobs`` (Ray decides how many run at once)."""
    if jobs_given:
        raise ConfigError("--jobs is for --backend local; Ray trains as many runs at "
                          "once as its CPUs allow (see --cpus-per-run)")
    import_ray(address)
    if address and address != "auto":
        check_reachable(address)
    return RayOptions(address, 1.0 if cpus_per_run is None else cpus_per_run,
                      0.0 if gpus_per_run is None else gpus_per_run)


def import_ray(address: str | None = None) -> Any:
    """Ray, imported; joining a cluster (``address``) that ``ray start`` made, whose token is
    here, turns on token authentication first (Ray reads the mode once, at its start)."""
    if address and "RAY_AUTH_MODE" not in os.environ and (
            os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
            or (Path.home() / ".ray" / "auth_token").exists()):
        os.environ["RAY_AUTH_MODE"] = "token"
    try:
        import ray
    except ImportError:
        raise CnnlabError('--backend ray needs Ray: pip install "cnnlab[ray]"') from None
    return ray


class RayExecutor:
    """Submits every run as a Ray task at once; Ray schedules them on its CPUs/GPUs."""

    name = "ray"

    def __init__(self, planned: Sequence[SweepRun], options: RayOptions, log: Log,
                 configs: Sequence[Config] | None = None):
        """``configs``: the data of runs not known yet (a search's trials), which then go
        as many at once as this machine's CPUs allow at ``cpus_per_run`` each."""
        self.ray = import_ray(options.address)
        self.planned, self.options, self.log = planned, options, log
        self.configs = [r.config for r in planned] if configs is None else list(configs)
        self.slots = max(1, len(planned) if configs is None
                         else int((os.cpu_count() or 1) / options.cpus_per_run))
        self.started: bool | None = None  # None: not yet; True: this executor started Ray
        self.in_flight: dict[Any, Future[None]] = {}
        self.task: Any = None

    def fits(self, run: SweepRun, busy: Sequence[SweepRun]) -> bool:
        return len(busy) < self.slots

    def prepare(self, run: SweepRun, busy: Sequence[SweepRun]) -> None:
        pass  # Ray starts its workers itself

    def submit(self, run: SweepRun, run_dir: Path, log: Log) -> Future[None]:
        if self.started is None:
            self._start()
        # oneDNN and threads are fixed when a worker imports TensorFlow: Ray keeps
        # separate workers per environment
        env = {**forwarded_env(), **runtime.environment(runtime.wanted(run.config.train))}
        ref = self.task.options(runtime_env={"env_vars": env}).remote(
            run, str(run_dir.resolve()), os.getcwd(), self.options.cpus_per_run)
        future: Future[None] = Future()
        self.in_flight[ref] = future
        ref.future().add_done_callback(lambda done: self._settle(ref, done))
        return future

    def _settle(self, ref: Any, done: Future[Any]) -> None:
        future = self.in_flight.pop(ref)
        error = done.exception()
        if error is None:
            future.set_result(None)
        else:  # RayTaskError wraps the worker's exception (and is an instance of its class)
            future.set_exception(_unwrap(error))

    def _start(self) -> None:
        executors.warm_cache(self.configs, self.log)
        self.started = _init(self.ray, self.options, self.log)
        self.task = self.ray.remote(num_cpus=self.options.cpus_per_run,
                                    num_gpus=self.options.gpus_per_run,
                                    max_retries=0)(train_task)  # the runner retries
        self.log(f"ray: {len(self.planned) or 'the'} runs to train "
                 f"({self.options.cpus_per_run:g} CPU, "
                 f"{self.options.gpus_per_run:g} GPU each)")

    def close(self, cancel: bool = False) -> None:
        if cancel:
            for ref in list(self.in_flight):
                self.ray.cancel(ref, force=True)
        if self.started:
            self.ray.shutdown()


def _unwrap(error: BaseException) -> BaseException:
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        return cause
    if type(error).__name__.startswith("RayTaskError"):
        text = str(error).strip().splitlines()
        return RuntimeError(text[-1] if text else type(error).__name__)
    return error


def forwarded_env() -> dict[str, str]:
    return {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}


def _init(ray: Any, options: RayOptions, log: Log) -> bool:
    """Connect to (or start) Ray; True when this call started it and must shut it down."""
    if ray.is_initialized():
        return False
    env = forwarded_env()
    runtime_env = {"env_vars": env} if env else None
    if options.address:
        _join(ray, options.address, runtime_env)
        log(f"ray: joined the cluster at {options.address}")
    else:
        ray.init(num_cpus=options.num_cpus, runtime_env=runtime_env, include_dashboard=False,
                 logging_level="WARNING")
        log(f"ray: started locally with {int(ray.cluster_resources().get('CPU', 0))} CPUs")
    return True


def _join(ray: Any, address: str, runtime_env: dict[str, Any] | None) -> None:
    """``ray.init(address=...)`` with a one-line error for an unreachable cluster (within
    seconds, not Ray's long retries) and the cluster's token where ``ray start`` made one."""
    if address != "auto":
        check_reachable(address)
    try:
        ray.init(address=address, runtime_env=runtime_env, logging_level="WARNING")
    except (ConnectionError, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[-1][:160] if str(exc).strip() else ""
        raise CnnlabError(f"--address {address}: cannot join the Ray cluster ({reason}); "
                          "check the address, and that the cluster's auth token is available "
                          "(RAY_AUTH_TOKEN or ~/.ray/auth_token)") from None


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """CnnlabError unless something listens at ``HOST:PORT``."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise CnnlabError(f"--address {address}: expected HOST:PORT (e.g. 127.0.0.1:6379) "
                          "or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise CnnlabError(f"--address {address}: no Ray cluster reachable there "
                          f"({exc.strerror or exc}); start one with: ray start --head (it "
                          "prints the address to give), or give a running cluster's "
                          "address") from None


def train_task(run: SweepRun, run_dir: str, cwd: str, cpus: float) -> None:
    """Runs on a worker: train one run into ``run_dir``."""
    if os.path.isdir(cwd):
        os.chdir(cwd)  # relative data paths and outputs/ resolve as on the driver
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, int(cpus))))
    executors.train_run(run, Path(run_dir), lambda line: None if line.startswith(
        NOTICE_PREFIX) else print(f"    {run.id}: {line}", flush=True))  # Ray shows it; the
    # driver said where the data came from (warm_cache)
