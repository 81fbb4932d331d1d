"""Training one config into a run folder, and re-evaluating a finished run.

``train(config)`` reads top to bottom: data -> model -> fit with the timing,
checkpoint and early-stopping callbacks -> test evaluation of the best
checkpoint -> run folder (history, metrics, plots). ``evaluate_run(run_dir)``
reloads the best model and recomputes the test metrics.
"""

from __future__ import annotations

import errno
import json
import math
import os
import platform
import socket
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab import __version__
from cnnlab.backend import runtime
from cnnlab.backend.tf import IMPORT_SECONDS, keras, tf
from cnnlab.config.schema import Config, TrainConfig
from cnnlab.data.dataset import Dataset, input_spec, load_dataset
from cnnlab.errors import RunError, TrainingInterrupted
from cnnlab.runs import layout, load, storage
from cnnlab.runs.layout import Status
from cnnlab.training import (
    analysis,
    arithmetic,
    distribute,
    epoch_randomness,
    graph_batches,
    optimization,
    sizes,
    tracking,
)
from cnnlab.training.model import build_model, check_fits, format_layer_table, trainable_params
from cnnlab.training.timing import CallbackTime, EpochTimer, Phases, TimeLeft
from cnnlab.training.warm_models import WarmModels

Log = Callable[[str], None]
StopCheck = Callable[[int, dict[str, float]], bool]
# Draws a finished run's figures and page from its record, timing each as a phase of
# ``phases``; given by whoever runs the training (training never draws).
Draw = Callable[[load.Run, Phases], None]
_unclaimed_import = [IMPORT_SECONDS]  # TensorFlow's import: a phase of the process's first run


def steps_per_execution(cfg: TrainConfig, train_examples: int) -> int:
    """Optimizer steps per call into the compiled graph. ``auto``: a whole epoch per call.

    Keras converts the logs to Python numbers after every call, a sync that costs
    more than the step itself at small batches; one call per epoch removes it. The
    learning is unchanged (same batches, same order, same number of steps), and the
    timer stays honest because it only reads the clock at epoch and validation starts.
    """
    steps = layout.steps_per_epoch(train_examples, cfg.batch_size)
    if cfg.steps_per_execution == "auto":
        return steps
    return min(int(cfg.steps_per_execution), steps)


def environment() -> dict[str, Any]:
    """Library versions and the machine, recorded with every run's figures."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")),
                       cpu)
    except OSError:
        pass
    return {
        "cnnlab": __version__, "python": sys.version.split()[0], "tensorflow": tf.__version__,
        "keras": keras.__version__, "numpy": np.__version__, "platform": platform.platform(),
        "cpu": cpu, "cpu_count": os.cpu_count(), "tensorflow_cpu": runtime.active()._asdict(),
        "node": node(),
    }


def node() -> str:
    """The machine that ran the run: its host name, and on a Ray worker the Ray node's
    address and id (a sweep on a cluster says which node trained which run)."""
    host = socket.gethostname()
    ray = sys.modules.get("ray")  # imported only where a Ray task runs this
    if ray is None or not ray.is_initialized():
        return host
    node_id = ray.get_runtime_context().get_node_id()
    address = next((n.get("NodeManagerAddress") for n in ray.nodes()
                    if n.get("NodeID") == node_id), None) or ray.util.get_node_ip_address()
    return f"{host} (ray node {address}, {node_id[:12]})"


def _note_settings(config: Config, log: Log) -> None:
    """Say so when this process's CPU settings (fixed at TensorFlow's import) are not the
    ones the config asks for; the run goes on with them and records them."""
    wanted, active = runtime.wanted(config.train), runtime.active()
    if wanted != active:
        log(f"note: train.onednn/train.threads ask for {wanted.describe()}, but TensorFlow "
            f"was imported with {active.describe()} in this process; the run uses that "
            f"(recorded). Train from the CLI, or call cnnlab.train before TensorFlow is "
            f"imported, to get them")


def _seed_everything(config: Config) -> None:
    keras.utils.set_random_seed(int(config.seed))
    if config.train.deterministic:
        tf.config.experimental.enable_op_determinism()


class HistoryRecorder(keras.callbacks.Callback):
    """Appends one row per finished epoch (metrics + the timer's figures) and rewrites
    history.csv atomically, so a crash or Ctrl-C keeps every completed epoch."""

    def __init__(self, path: Path, timer: EpochTimer, rows: list[dict[str, Any]]):
        super().__init__()
        self.path, self.timer, self.rows = path, timer, list(rows)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.rate = optimization.current_rate(self.model)  # after the schedule set it

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        row: dict[str, Any] = {"epoch": epoch + 1}
        row.update({k: float(logs.get(k, float("nan"))) for k in layout.EPOCH_METRICS})
        row.update({k: round(v, 6) for k, v in self.timer.rows[-1].items()})
        row["learning_rate"] = self.rate
        self.rows.append(row)
        storage.write_csv(self.path, self.rows, layout.HISTORY_COLUMNS)


class Pruning(keras.callbacks.Callback):
    """Asks ``stop_check`` after each epoch (after the epoch is saved) and stops training
    when it says so."""

    def __init__(self, stop_check: StopCheck | None):
        super().__init__()
        self.stop_check, self.pruned = stop_check, False

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.stop_check and self.stop_check(epoch + 1, dict(logs or {})):
            self.pruned = True
            self.model.stop_training = True


class DiskGuard(keras.callbacks.Callback):
    """Before the epoch's checkpoint and backup are saved: an OSError (no space left)
    naming the run folder when its disk cannot hold them, instead of a save that fails
    half-way inside h5py. The run stays resumable from the previous epoch."""

    def __init__(self, run_dir: Path):
        super().__init__()
        self.run_dir = run_dir

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        needed = storage.run_bytes(self.model.count_params()) // 2
        free = storage.free_bytes(self.run_dir)
        if free < needed:
            raise OSError(errno.ENOSPC, f"no space left to save epoch {epoch + 1} "
                          f"({free / 2**20:.1f} MB free, about {needed / 2**20:.1f} MB "
                          "needed)", str(self.run_dir))


class BestCheckpoint(keras.callbacks.Callback):
    """Saves the model when validation accuracy improves, atomically (temporary file,
    then rename), so a kill during a save never leaves a half-written model.keras."""

    def __init__(self, path: Path, best: float | None = None):
        super().__init__()
        self.path = path
        self.best = -math.inf if best is None else best
        self.weights: list[np.ndarray] | None = None  # kept: the test needs no reload

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        value = float((logs or {}).get("val_accuracy", float("nan")))
        if math.isfinite(value) and value > self.best:
            self.best = value
            tmp = self.path.with_name(f".{self.path.stem}.tmp.keras")
            self.model.save(tmp)
            os.replace(tmp, self.path)
            self.weights = self.model.get_weights()


def _callbacks(config: Config, run_dir: Path, timer: EpochTimer, recorder: HistoryRecorder,
               checkpoint: BestCheckpoint, phases: Phases, log: Log
               ) -> list[keras.callbacks.Callback]:
    saving, logging = CallbackTime(phases, "checkpoints"), CallbackTime(phases, "tracking")
    callbacks = [
        *optimization.schedule_callbacks(config.train),  # before the recorder reads the rate
        timer, TimeLeft(timer, config.train.epochs, log),
        DiskGuard(run_dir),  # before the writes below
        # TensorBoard; MLflow if enabled. Before the backup: an epoch a Ctrl-C leaves
        # backed up (not redone on --resume) has been logged.
        logging.opening, *tracking.callbacks(config, run_dir), logging.closing,
        saving.opening,
        recorder,
        checkpoint,
        keras.callbacks.TerminateOnNaN(),
        # Saves weights, optimizer state and the epoch after every epoch; resumed by --resume.
        keras.callbacks.BackupAndRestore(run_dir / layout.BACKUP_DIR, double_checkpoint=True),
        saving.closing,
    ]
    if config.train.early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", mode="min", patience=config.train.early_stopping))
    return callbacks


def _resume_point(run_dir: Path) -> list[dict[str, Any]]:
    """History rows of the epochs the backup holds (later rows were not backed up)."""
    meta = run_dir / layout.BACKUP_DIR / "training_metadata.json"  # written by Keras
    done = json.loads(meta.read_text())["epoch"] if meta.exists() else 0
    history = run_dir / layout.HISTORY_FILE
    rows = storage.read_csv(history) if history.exists() and done else []
    return rows[:done]


def _timing_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    steady = rows[1:] or rows
    return {
        "ms_per_step": statistics.median(r["ms_per_step"] for r in steady),
        "s_per_epoch": statistics.median(r["train_s"] for r in steady),
        "s_per_epoch_with_validation": statistics.median(r["epoch_s"] for r in steady),
        "first_epoch_s": rows[0]["epoch_s"] if rows else float("nan"),
        "timing_note": (
            "ms_per_step and s_per_epoch: median over epochs 2..N of training wall time "
            "(epoch start to validation start) -- validation excluded; "
            "s_per_epoch_with_validation includes it; first_epoch_s is epoch 1 in full "
            "(graph tracing included)" + ("" if len(rows) > 1 else "; only one epoch ran, "
                                          "so the figures include tracing")
        ),
    }


def _test_metrics(model: keras.Model, data: Dataset, batch_size: int) -> dict[str, Any]:
    from sklearn.metrics import confusion_matrix

    probabilities = model.predict(data.x_test, batch_size=max(batch_size, 256), verbose=0)
    predicted = probabilities.argmax(axis=1)
    loss = keras.losses.sparse_categorical_crossentropy(data.y_test, probabilities)
    matrix = confusion_matrix(data.y_test, predicted, labels=range(data.num_classes)).tolist()
    return {
        "test_accuracy": float((predicted == data.y_test).mean()),
        "test_loss": float(np.mean(keras.ops.convert_to_numpy(loss))),
        "confusion_matrix": matrix,
        "per_class": analysis.per_class(data.y_test, predicted, data.class_names),
        "most_confused": analysis.most_confused(matrix, data.class_names),
    }


def _status(rows: list[dict[str, Any]], epochs: int) -> Status:
    if any(not math.isfinite(r["loss"]) for r in rows):
        return Status.DIVERGED
    return Status.FINISHED if len(rows) >= epochs else Status.EARLY_STOPPED


def train(config: Config, out_dir: str | Path | None = None, log: Log = print,
          outputs_root: str | Path = "outputs", resume: bool = False,
          stop_check: StopCheck | None = None, draw: Draw | None = None,
          warm: WarmModels | None = None) -> load.Run:
    """Train ``config`` and write its run folder; returns the finished :class:`load.Run`.

    With ``resume=True``, ``out_dir`` must be an interrupted run of the same config: it
    continues from the last completed epoch and ends with ``train.epochs`` history rows.
    ``stop_check(epoch, logs)`` is asked after every epoch (a search's pruner); when it
    says True, training stops there and the run is recorded with status ``pruned``.
    ``draw(run, phases)`` makes the figures and page from the record before metrics.json.
    ``warm``: compiled models kept between runs (:mod:`cnnlab.training.warm_models`).
    """
    if resume:
        storage.check_resumable(out_dir, config.to_dict())
        arithmetic.check_resumable(out_dir)
    elif out_dir is not None:
        storage.check_out_dir(out_dir)
    if config.tracking.mlflow:
        tracking.import_mlflow()  # missing: one line before any data or run folder
        tracking.check_server(config)  # unreachable: the same, in seconds
    input_shape, num_classes = input_spec(config.data)  # without reading the data: fail fast
    check_fits(config.model, input_shape)
    sizes.check(config, input_shape, num_classes)  # before anything is allocated
    phases = Phases(tensorflow_import=_unclaimed_import.pop() if _unclaimed_import else 0.0)
    with phases("data"):
        data = load_dataset(config.data, config.seed, log)
    _note_settings(config, log)
    _seed_everything(config)
    with phases("build"):
        model, loops = prepared_model(config, data, warm)
    storage.check_free_space(Path(out_dir) if out_dir is not None else Path(outputs_root),
                          model.count_params())
    run_dir = Path(out_dir) if resume else storage.new_run_dir(out_dir, config.name, outputs_root)
    done_rows = _resume_point(run_dir) if resume else []
    _start_run_folder(config, run_dir, model, data, done_rows, log)
    checkpoint = BestCheckpoint(run_dir / layout.MODEL_FILE,
                                max((r["val_accuracy"] for r in done_rows), default=None))
    pruner = Pruning(stop_check)
    rows = _fit(config, run_dir, (model, loops), data, done_rows, checkpoint, pruner,
                phases, log)
    metrics = _finish(config, run_dir, model, data, rows, checkpoint, phases)
    if pruner.pruned and len(rows) < config.train.epochs:  # stopped at its last epoch: not
        metrics["status"] = Status.PRUNED                  # pruned, it trained them all
    _write_record(load.Run(run_dir, config.to_dict(), _json_safe(metrics), rows), phases, draw)
    tracking.finish_run(config, run_dir, metrics)  # MLflow: final metrics, artifacts
    if warm is not None and loops is not None:
        warm.keep(config, data, model, loops)
    log(summary_line(metrics, run_dir))
    return load.read_run(run_dir)


def prepared_model(config: Config, data: Dataset, warm: WarmModels | None = None
                   ) -> tuple[keras.Model, graph_batches.Loops | None]:
    """The run's compiled model and, when its batches are sliced in the graph, its loops,
    holding the run's data; a matching model ``warm`` keeps, reset, if there is one."""
    cfg = config.train
    train, validation = _sets(config, data)
    kept = warm.take(config, data) if warm is not None else None
    if kept is not None:
        kept[1].load(train, validation)
        return kept
    model = compiled_model(config, data)
    if not graph_batches.applies(cfg, model.steps_per_execution, len(train[0]),
                                 len(validation[0])):
        return model, None
    return model, graph_batches.loops(model, train, validation, cfg.batch_size)


def _sets(config: Config, data: Dataset) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """The training and validation images with the targets the loss wants."""
    cfg = config.train
    return ((data.x_train, optimization.targets(cfg, data.y_train, data.num_classes)),
            (data.x_val, optimization.targets(cfg, data.y_val, data.num_classes)))


def compiled_model(config: Config, data: Dataset) -> keras.Model:
    loss, metric = optimization.loss_and_metric(config.train)
    # train.distribute: mirrored -> MirroredStrategy; train.mixed_precision -> float16 layers
    with distribute.scope(config.train), optimization.precision(
            optimization.mixed_precision(config.train)):
        model = build_model(config.model, data.input_shape, data.num_classes, name=config.name)
        model.compile(optimizer=optimization.make_optimizer(config.train), loss=loss,
                      metrics=[metric],
                      steps_per_execution=steps_per_execution(config.train, len(data.y_train)))
    return model


def _start_run_folder(config: Config, run_dir: Path, model: keras.Model, data: Dataset,
                      done_rows: list[dict[str, Any]], log: Log) -> None:
    storage.write_atomic(run_dir / layout.CONFIG_FILE, config.to_yaml())
    storage.write_atomic(run_dir / layout.SUMMARY_FILE, format_layer_table(model) + "\n")
    storage.write_json(run_dir / layout.STATUS_FILE, {"status": Status.RUNNING,
                                                      arithmetic.KEY: arithmetic.ARITHMETIC})
    log(f"run folder: {run_dir}"
        + (f" (resuming after epoch {len(done_rows)})" if done_rows else ""))
    log(f"data: {data.record['origin']} {data.record['location']} -- train "
        f"{len(data.y_train)}, val {len(data.y_val)}, test {len(data.y_test)}")


def _fit(config: Config, run_dir: Path, prepared: tuple[keras.Model, graph_batches.Loops | None],
         data: Dataset, done_rows: list[dict[str, Any]], checkpoint: BestCheckpoint,
         pruner: Pruning, phases: Phases, log: Log) -> list[dict[str, Any]]:
    """``model.fit`` with the run's callbacks; the history rows of every epoch run."""
    model, loops = prepared
    timer = EpochTimer(len(data.y_train), config.train.batch_size)
    recorder = HistoryRecorder(run_dir / layout.HISTORY_FILE, timer, done_rows)
    randomness = epoch_randomness.EpochRandomness(
        config.seed, len(data.y_train), config.train.shuffle, loops.order if loops else None)
    try:
        with phases("fit"):
            model.fit(
                **training_inputs(config, model, data, randomness.variable, loops),
                epochs=config.train.epochs, shuffle=False, verbose=config.train.verbose,
                callbacks=[randomness,
                           *_callbacks(config, run_dir, timer, recorder, checkpoint, phases,
                                       log), pruner],
            )
    except (OSError, RunError) as exc:
        _mark_interrupted(run_dir)  # a full disk, a tracking server down: --resume
        if isinstance(exc, OSError):
            exc.filename = exc.filename or str(run_dir)  # the message names where it happened
        raise
    except KeyboardInterrupt:
        _mark_interrupted(run_dir)
        raise TrainingInterrupted(run_dir) from None
    finally:
        graph_batches.remove(model)
    _split_fit_time(phases, [r["epoch_s"] for r in timer.rows])
    return recorder.rows


def training_inputs(config: Config, model: keras.Model, data: Dataset, order: tf.Variable,
                    loops: graph_batches.Loops | None) -> dict[str, Any]:
    """What ``fit`` trains and validates on, in the epoch's ``order``
    (:mod:`cnnlab.training.epoch_randomness`): with ``loops`` (batches sliced in the graph,
    :mod:`cnnlab.training.graph_batches`) the training images' indices, else their
    batches."""
    cfg = config.train
    (x, targets), validation = _sets(config, data)
    feed = {"validation_data": validation, "validation_batch_size": cfg.batch_size}
    if loops is not None:
        indices = graph_batches.install(model, loops)
        return {"x": indices, "y": targets, "batch_size": cfg.batch_size, **feed}
    batches = epoch_randomness.dataset(x, targets, order, cfg.batch_size)
    return {"x": batches, **feed}


def _split_fit_time(phases: Phases, epoch_seconds: list[float]) -> None:
    """``fit``'s wall time as its first epoch (graph tracing included), the later epochs,
    and what is left once the callbacks' own phases are taken out."""
    fit = phases.seconds.pop("fit")
    first, later = epoch_seconds[:1], epoch_seconds[1:]
    phases.add("first_epoch", sum(first))
    phases.add("later_epochs", sum(later))
    callbacks = phases.seconds.get("checkpoints", 0.0) + phases.seconds.get("tracking", 0.0)
    phases.add("fit_other", max(0.0, fit - sum(epoch_seconds) - callbacks))


def _mark_interrupted(run_dir: Path) -> None:
    """status.json says interrupted and history.csv holds exactly the epochs the backup
    holds (the backup of the last epoch may not be written yet)."""
    try:
        kept = _resume_point(run_dir)
        storage.write_csv(run_dir / layout.HISTORY_FILE, kept, layout.HISTORY_COLUMNS)
        storage.write_json(run_dir / layout.STATUS_FILE, {
            "status": Status.INTERRUPTED, "epochs_completed": len(kept),
            arithmetic.KEY: arithmetic.ARITHMETIC,
            "resume_with": "cnnlab train CONFIG --out RUN_DIR --resume (same CONFIG and --set)"})
    except OSError:
        pass  # the disk is full: the backup still says where to resume


def _best_model(model: keras.Model, checkpoint: BestCheckpoint) -> keras.Model | None:
    """The best epoch's model: the weights kept in memory, else (best epoch before a
    resume) the checkpoint file, else None (no epoch had a finite validation accuracy)."""
    if checkpoint.weights is not None:
        model.set_weights(checkpoint.weights)
        return model
    return load.load_model(checkpoint.path) if checkpoint.path.exists() else None


def _finish(config: Config, run_dir: Path, model: keras.Model, data: Dataset,
            rows: list[dict[str, Any]], checkpoint: BestCheckpoint, phases: Phases
            ) -> dict[str, Any]:
    """Evaluate the best checkpoint on the test set; the metrics."""
    status = _status(rows, config.train.epochs)
    best = analysis.best_epoch([r["val_accuracy"] for r in rows])
    test: dict[str, Any] = {"test_accuracy": None, "test_loss": None, "confusion_matrix": None,
                            "per_class": None, "most_confused": None}
    with phases("test_evaluation"):
        best_model = _best_model(model, checkpoint)
        if best_model is not None:
            test = _test_metrics(best_model, data, config.train.batch_size)
    metrics = {
        "status": status,
        arithmetic.KEY: arithmetic.ARITHMETIC,
        "epochs_run": len(rows),
        "best_val_accuracy": rows[best - 1]["val_accuracy"],
        "best_epoch": best,
        "overfit_epoch": analysis.overfitting_onset([r["loss"] for r in rows],
                                                    [r["val_loss"] for r in rows]),
        "overfit_rise": analysis.overfitting_rise([r["val_loss"] for r in rows]),
        **test,
        "final_train_loss": rows[-1]["loss"],
        "final_val_loss": rows[-1]["val_loss"],
        "trainable_params": trainable_params(model),
        "distribute": distribute.record(config.train, model),
        "mixed_precision": {"requested": config.train.mixed_precision,
                            "policy": model.dtype_policy.name},
        **_timing_summary(rows),
        "data": data.record,
        "environment": environment(),
    }
    return metrics


def _write_record(run: load.Run, phases: Phases, draw: Draw | None) -> None:
    """Figures and report.html, then metrics.json (last: it marks the run finished), both
    with the phases. A kill in between leaves a run that is not finished, never a finished
    run whose record is rewritten later."""
    if draw is not None:
        draw(run, phases)
    metrics = {**run.metrics, "phases": phases.record()}
    (run.path / layout.STATUS_FILE).unlink(missing_ok=True)  # metrics.json alone: finished
    storage.write_json(run.path / layout.METRICS_FILE, _json_safe(metrics))


def _json_safe(value: Any) -> Any:
    """NaN and infinity become null so that metrics.json is strict JSON."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def summary_line(metrics: dict[str, Any], run_dir: Path) -> str:
    test = metrics.get("test_accuracy")
    test_text = f"{test:.4f}" if test is not None else "n/a"
    return (
        f"{metrics['status']}: best val_accuracy {metrics['best_val_accuracy']:.4f} "
        f"at epoch {metrics['best_epoch']}, test accuracy {test_text}, "
        f"{metrics['ms_per_step']:.2f} ms/step, {metrics['s_per_epoch']:.2f} s/epoch "
        f"(first epoch {metrics['first_epoch_s']:.2f} s) -> {run_dir}"
    )


def evaluate_run(run_dir: str | Path, log: Log = print, trust_model: bool = False
                 ) -> dict[str, Any]:
    """Reload a run's best model, recompute test metrics and confusion matrix on the same data.

    The data is read from the location the run recorded; a different fingerprint is an
    error, so that the comparison is on the same images. Writes ``evaluation.json`` and
    rewrites the per-class analysis in ``metrics.json`` (runs recorded before it existed
    gain it).
    """
    run = load.read_run(run_dir)
    model = load.load_run_model(run, trust_code=trust_model)
    data = load.load_run_data(run, log)
    result = _test_metrics(model, data, int(run.config["train"]["batch_size"]))
    result["recorded_test_accuracy"] = run.metrics.get("test_accuracy")
    result["class_names"] = list(data.class_names)
    storage.write_json(run.path / layout.EVALUATION_FILE, result)
    storage.write_json(run.path / layout.METRICS_FILE, {
        **run.metrics, "per_class": result["per_class"],
        "most_confused": result["most_confused"]})
    return result
