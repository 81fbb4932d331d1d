"""Tracking: TensorBoard logs for every run, optional MLflow.

Used by :mod:`cnnlab.training.loop` (each run):

- ``callbacks(config, run_dir)``: Keras callbacks appended to training's own --
  TensorBoard (``RUN_DIR/tensorboard/``, epoch scalars only: no graph, no profiling,
  nothing per batch) and, with ``tracking.mlflow: true``, :class:`MlflowLogger`.
- ``finish_run(config, run_dir, metrics)``: after ``metrics.json`` is written, logs the
  final metrics, timing and artifacts (model, plots) to MLflow and closes its run.

A sweep's HParams view is written by :mod:`cnnlab.sweep.hparams`, without TensorFlow.

MLflow is optional (``pip install "cnnlab[mlflow]"``) and imported only when enabled.
Its run is opened through ``MlflowClient`` (no global active run); ``RUN_DIR/mlflow.json``
records where it went (tracking URI, experiment, run id), and a resumed run
(``--resume``) continues the same MLflow run.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cnnlab.backend.tf import keras
from cnnlab.config.schema import Config
from cnnlab.errors import CnnlabError, RunError
from cnnlab.runs import layout, storage

DEFAULT_URI = "sqlite:///outputs/mlflow.db"


def callbacks(config: Config, run_dir: Path) -> list[keras.callbacks.Callback]:
    """The tracking callbacks this config asks for."""
    found: list[keras.callbacks.Callback] = []
    if config.tracking.tensorboard:
        found.append(EpochBoard(
            log_dir=str(Path(run_dir) / layout.TENSORBOARD_DIR), update_freq="epoch",
            profile_batch=0, write_graph=False, histogram_freq=0))
    if config.tracking.mlflow:
        found.append(MlflowLogger(config, Path(run_dir)))
    return found


class EpochBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard with epoch steps counted from 1, as in history.csv and MLflow."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        super().on_epoch_end(epoch + 1, logs)


# --- MLflow ---

def import_mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        raise CnnlabError('tracking.mlflow: true needs MLflow: pip install "cnnlab[mlflow]"'
                          ) from None
    return mlflow


def check_server(config: Config, timeout: float = 3.0) -> None:
    """CnnlabError within ``timeout`` seconds unless the HTTP tracking server answers
    (MLflow itself retries for minutes before giving up)."""
    uri = config.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI") or ""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        urllib.request.urlopen(uri, timeout=timeout).close()
    except urllib.error.HTTPError:
        return  # something answers: the server decides the rest
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        reason = getattr(reason, "strerror", None) or reason
        raise CnnlabError(f"tracking.uri {uri}: no MLflow server answers there ({reason}); "
                          "start it (mlflow server --port PORT), give its address with "
                          "--set tracking.uri=..., or --set tracking.mlflow=false") from None


def tracking_uri(config: Config) -> str:
    """tracking.uri, else $MLFLOW_TRACKING_URI, else a SQLite file under ./outputs/."""
    uri = config.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return uri


def experiment_name(config: Config, run_dir: Path) -> str:
    """tracking.experiment, else the sweep's name for a run inside a sweep folder, else
    the config name."""
    if config.tracking.experiment:
        return config.tracking.experiment
    record = Path(run_dir).parent / layout.SWEEP_FILE
    if record.exists():
        import yaml

        name = (yaml.safe_load(record.read_text(encoding="utf-8")) or {}).get("name")
        if name:
            return f"sweep-{name}"
    return config.name


def flat_params(config: Config) -> dict[str, str]:
    """The config as MLflow params: ``train.batch_size -> "32"``, ``train.optimizer ->
    "adam"`` (a text as it is, so that ``params.train.optimizer = 'adam'`` finds it; other
    values as JSON: ``[8, 16]``, ``true``, ``null``)."""
    params: dict[str, str] = {}
    for key, value in config.to_dict().items():
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for leaf, item in items:
            text = item if isinstance(item, str) else json.dumps(item)
            params[f"{key}.{leaf}" if leaf else key] = text[:6000]
    return params


def _artifact_location(uri: str, experiment: str) -> str | None:
    """Beside a SQLite store: ``<db folder>/mlartifacts/<experiment>`` (MLflow's default
    would be ./mlruns in whatever folder the run was started from)."""
    if not uri.startswith("sqlite:///"):
        return None  # a server decides where artifacts go
    db = Path(uri.removeprefix("sqlite:///"))
    if uri.startswith("sqlite:////"):
        db = Path("/" + uri.removeprefix("sqlite:////"))
    return (db.resolve().parent / "mlartifacts" / experiment).as_uri()


def _client(uri: str) -> Any:
    mlflow = import_mlflow()
    return mlflow.tracking.MlflowClient(tracking_uri=uri)


def _metric(name: str, value: Any, step: int) -> Any:
    from mlflow.entities import Metric

    return Metric(name, float(value), int(time.time() * 1000), step)


class MlflowLogger(keras.callbacks.Callback):
    """Opens (or, on resume, reopens) the MLflow run; logs each epoch's metrics."""

    def __init__(self, config: Config, run_dir: Path):
        super().__init__()
        self.config, self.run_dir = config, run_dir
        self.client: Any = None
        self.run_id: str | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        with self._server():
            self._open()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        metrics = [_metric(k, logs[k], epoch + 1) for k in layout.EPOCH_METRICS
                   if k in logs and math.isfinite(float(logs[k]))]
        if metrics:
            with self._server():
                self.client.log_batch(self.run_id, metrics=metrics)

    @contextlib.contextmanager
    def _server(self) -> Iterator[None]:
        """The tracking server failing mid-run: one line naming --resume (the run is
        marked interrupted), not MLflow's traceback."""
        from mlflow.exceptions import MlflowException

        try:
            yield
        except MlflowException as exc:
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            raise RunError(f"tracking.uri {tracking_uri(self.config)}: MLflow failed ({reason}); "
                           f"fix the server, then continue with: cnnlab train CONFIG --out "
                           f"{self.run_dir} --resume") from None

    def _open(self) -> None:
        uri = tracking_uri(self.config)
        self.client = _client(uri)  # a one-line error if MLflow is missing
        from mlflow.entities import Param

        record_file = self.run_dir / layout.MLFLOW_FILE
        if record_file.exists():  # a resumed run continues its MLflow run
            self.run_id = json.loads(record_file.read_text())["run_id"]
            self.client.update_run(self.run_id, "RUNNING")
            return
        name = experiment_name(self.config, self.run_dir)
        found = self.client.get_experiment_by_name(name)
        experiment_id = found.experiment_id if found else self.client.create_experiment(
            name, artifact_location=_artifact_location(uri, name))
        run = self.client.create_run(experiment_id, run_name=self.config.name,
                                     tags={"cnnlab.run_dir": str(self.run_dir.resolve())})
        self.run_id = run.info.run_id
        params = [Param(k, v) for k, v in flat_params(self.config).items()]
        for start in range(0, len(params), 100):
            self.client.log_batch(self.run_id, params=params[start:start + 100])
        storage.write_json(record_file, {"tracking_uri": uri, "experiment": name,
                                      "experiment_id": experiment_id, "run_id": self.run_id})


def finish_run(config: Config, run_dir: Path, metrics: dict[str, Any]) -> None:
    """Final metrics, timing and artifacts to MLflow; closes the run (no-op without MLflow)."""
    record_file = Path(run_dir) / layout.MLFLOW_FILE
    if not config.tracking.mlflow or not record_file.exists():
        return
    record = json.loads(record_file.read_text())
    client = _client(record["tracking_uri"])
    run_id = record["run_id"]
    step = int(metrics.get("epochs_run") or 0)
    values = [_metric(k, metrics[k], step) for k in layout.FINAL_METRICS + layout.TIMING_METRICS
              if isinstance(metrics.get(k), int | float) and math.isfinite(metrics[k])]
    client.log_batch(run_id, metrics=values)
    client.set_tag(run_id, "cnnlab.status", metrics.get("status", ""))
    for name in (layout.MODEL_FILE, layout.CONFIG_FILE, layout.METRICS_FILE, layout.HISTORY_FILE):
        if (Path(run_dir) / name).exists():
            client.log_artifact(run_id, str(Path(run_dir) / name))
    for plot in sorted(Path(run_dir).glob("*.png")):
        client.log_artifact(run_id, str(plot), artifact_path="plots")
    client.set_terminated(run_id, "FINISHED")
