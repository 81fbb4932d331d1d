"""The run vocabulary: run-folder files, run statuses, atomic writes, reading a run back.

A finished run folder holds ``config.yaml`` (resolved config), ``history.csv``
(one row per epoch), ``metrics.json`` (results, data record, versions; written
last, so its presence marks the run as finished), ``model.keras`` (best
checkpoint), ``summary.txt`` (layer table), ``curves.png``,
``confusion_matrix.png`` and ``report.html``; while training, ``status.json`` and
``backup/`` (for ``--resume``). A sweep folder holds ``sweep.yaml``, ``results.csv``
and one run folder per run.
"""

from __future__ import annotations

import csv
import enum
import io
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cnnlab.config import Config, config_from_dict
from cnnlab.data import Dataset, reload_recorded
from cnnlab.errors import RunError

# Files of a run folder
CONFIG_FILE = "config.yaml"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"  # written last: its presence marks a finished run
MODEL_FILE = "model.keras"
SUMMARY_FILE = "summary.txt"
STATUS_FILE = "status.json"  # while training, and after an interruption
ERROR_FILE = "error.json"  # a run of a sweep that failed
EVALUATION_FILE = "evaluation.json"
REPORT_FILE = "report.html"
CURVES_FILE = "curves.png"
CONFUSION_FILE = "confusion_matrix.png"
LEARNING_RATE_FILE = "learning_rate.png"
MLFLOW_FILE = "mlflow.json"
BACKUP_DIR = "backup"
TENSORBOARD_DIR = "tensorboard"
ACTIVATIONS_DIR = "activations"
# Files of a sweep folder
SWEEP_FILE = "sweep.yaml"
RESULTS_FILE = "results.csv"
SUMMARY_CSV_FILE = "summary.csv"
FINDINGS_FILE = "findings.md"
BEST_CONFIG_FILE = "best_config.yaml"
FAILURES_FILE = "failures.json"
LOCK_FILE = ".lock"
HPARAMS_DIR = "hparams"

HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy",
                   "epoch_s", "train_s", "val_s", "ms_per_step", "learning_rate"]


class Status(enum.StrEnum):
    """How a run stands: the ``status`` of ``metrics.json``, ``status.json`` or a results row."""

    PENDING = "pending"
    RUNNING = "running"
    INTERRUPTED = "interrupted"
    FAILED = "failed"
    FINISHED = "finished"
    EARLY_STOPPED = "early_stopped"
    DIVERGED = "diverged"
    PRUNED = "pruned"  # a search's trial stopped by its pruner

    @property
    def finished(self) -> bool:
        """Training ended and metrics.json was written."""
        return self in (Status.FINISHED, Status.EARLY_STOPPED, Status.DIVERGED, Status.PRUNED)

    @property
    def ranked(self) -> bool:
        """Comparable with other runs (a diverged run is not)."""
        return self in (Status.FINISHED, Status.EARLY_STOPPED)


def is_finished(run_dir: str | Path) -> bool:
    return (Path(run_dir) / METRICS_FILE).exists()


def write_atomic(path: Path, text: str) -> None:
    """Write a text file so that a reader sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, buffer.getvalue())


def read_csv(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def check_out_dir(out: str | Path) -> Path:
    """``out`` as a Path; RunError if it already holds anything (runs are never overwritten)."""
    path = Path(out)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise RunError(f"--out {path}: already exists and is not empty; "
                       "choose a new folder or delete this one")
    return path


def check_resumable(out: str | Path | None, config: dict[str, Any]) -> Path:
    """The folder of an interrupted run of this same config; RunError otherwise."""
    if out is None:
        raise RunError("--resume needs --out DIR, the folder of the interrupted run")
    path = Path(out)
    if not (path / CONFIG_FILE).exists():
        raise RunError(f"--out {path}: no interrupted run here (no config.yaml); "
                       "drop --resume to start a new run")
    if is_finished(path):
        raise RunError(f"--out {path}: this run already finished; nothing to resume")
    recorded = yaml.safe_load((path / CONFIG_FILE).read_text(encoding="utf-8"))
    changed = config_differences(recorded, config)
    if changed:
        raise RunError(f"--out {path}: holds a run of a different config ({', '.join(changed)} "
                       "differ); resume with the same CONFIG and --set options, or use a new --out")
    return path


def config_differences(old: Any, new: Any) -> list[str]:
    """The dotted keys whose values differ between two config dicts, sorted. A key that
    ``old`` lacks (recorded before the key existed) counts as its default value."""
    flat_old = {**flatten(Config().to_dict()), **flatten(old)}
    flat_new = flatten(new)
    return sorted(k for k in set(flat_old) | set(flat_new) if flat_old.get(k) != flat_new.get(k))


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A nested dict as ``{dotted key: value}``."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def new_run_dir(out: str | Path | None, name: str, root: str | Path = "outputs") -> Path:
    """Create the run folder: ``out`` if given (must not hold files), else
    ``<root>/<name>-<timestamp>`` with a numeric suffix if taken. Never overwrites."""
    if out is not None:
        path = check_out_dir(out)
        path.mkdir(parents=True, exist_ok=True)
        return path
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{name}-{stamp}"
    for suffix in range(1, 1000):
        path = base if suffix == 1 else base.with_name(f"{base.name}-{suffix}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise RunError(f"{base}: too many runs with this name and time; use --out")


@dataclass(frozen=True)
class Run:
    """A finished run, as read back from its folder."""

    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    history: list[dict[str, Any]]

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def status(self) -> str:
        return str(self.metrics.get("status", "unknown"))

    @property
    def name(self) -> str:
        return str(self.config.get("name", self.path.name))


def read_run(path: str | Path) -> Run:
    """Read a finished run folder; RunError if it is missing or not finished."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: no such run folder; give a folder written by 'cnnlab train'")
    metrics_file = path / METRICS_FILE
    if not metrics_file.exists() or not (path / CONFIG_FILE).exists():
        raise RunError(f"{path}: not a finished run (no metrics.json or config.yaml); "
                       "train it with 'cnnlab train' first")
    try:
        metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
        config = yaml.safe_load((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise RunError(f"{path}: damaged run record ({exc}); train the run again") from None
    history_file = path / HISTORY_FILE
    history = read_csv(history_file) if history_file.exists() else []
    return Run(path=path, config=config, metrics=metrics, history=history)


def load_model(path: str | Path, trust_code: bool = False) -> Any:
    """Load a saved Keras model in safe mode: a model carrying code (a Lambda layer)
    is refused unless ``trust_code`` is set."""
    from cnnlab.tf import keras

    path = Path(path)
    if not path.exists():
        raise RunError(f"{path}: no saved model; train the run again")
    try:
        with warnings.catch_warnings():  # cnnlab never trains a loaded model on: its
            # optimizer state (e.g. mixed precision's loss scale) does not matter
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            return keras.saving.load_model(path, safe_mode=not trust_code)
    except ValueError as exc:
        if "safe_mode" in str(exc) or "Lambda" in str(exc):
            raise RunError(f"{path}: the model contains code (a Lambda layer) and is refused "
                           "in safe mode; pass --trust-model only if you trust its source"
                           ) from None
        raise RunError(f"{path}: cannot load the model ({str(exc).splitlines()[0][:150]}); "
                       "train the run again") from None


def load_run_model(run: Run, trust_code: bool = False) -> Any:
    """A finished run's best model (safe mode unless ``trust_code``)."""
    if not run.model_path.exists():
        raise RunError(f"{run.path}: no model.keras (the run diverged before any checkpoint); "
                       "train it again")
    return load_model(run.model_path, trust_code)


def load_run_data(run: Run, log: Callable[[str], None] = print) -> Dataset:
    """The data a finished run used, read from the location it recorded; DataError if the
    data found there now differs (by fingerprint)."""
    config = config_from_dict(run.config, str(run.path / CONFIG_FILE))
    return reload_recorded(config.data, config.seed, run.metrics.get("data", {}), log)


def is_run_folder(path: str | Path) -> bool:
    """A folder written by ``cnnlab train`` (finished or not): it holds metrics.json,
    config.yaml or status.json."""
    path = Path(path)
    return path.is_dir() and any((path / name).exists()
                                 for name in (METRICS_FILE, CONFIG_FILE, STATUS_FILE))


def is_sweep_folder(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and ((path / SWEEP_FILE).exists() or (path / RESULTS_FILE).exists())


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:  # removed between listing and reading
        return None


def latest_run(root: str | Path = "outputs") -> Path:
    """The most recent finished run under ``root``: the folder of the newest ``metrics.json``
    (by modification time) in ``root/*/`` or ``root/*/*/`` (runs of a sweep); RunError
    saying how to make one if there is none."""
    root = Path(root)
    found = [(mtime, str(p.parent), p.parent)
             for pattern in (f"*/{METRICS_FILE}", f"*/*/{METRICS_FILE}")
             for p in root.glob(pattern) if (mtime := _mtime(p)) is not None]
    if not found:
        raise RunError(f"no finished run under {root}/ (no {root}/*/{METRICS_FILE} or "
                       f"{root}/*/*/{METRICS_FILE}); train one with: cnnlab train best, "
                       "or give a run folder")
    return max(found)[2]


def recorded_input(run: Run) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """(input shape (H, W, C), class names) of a finished run, from its data record."""
    data = run.metrics.get("data", {})
    shape, names = data.get("input_shape"), data.get("class_names")
    if not shape or not names or len(shape) != 3:
        raise RunError(f"{run.path}: metrics.json has no data record (input_shape, "
                       "class_names); train the run again with this version of cnnlab")
    return tuple(int(s) for s in shape), tuple(str(n) for n in names)



def free_bytes(folder: Path) -> int:
    """Free space on the disk holding ``folder`` (or its nearest existing parent)."""
    folder = Path(folder).resolve()
    while not folder.exists():
        folder = folder.parent
    return shutil.disk_usage(folder).free


def run_bytes(params: int) -> int:
    """What a run folder needs on disk for a model of ``params`` weights: the best
    checkpoint and its temporary copy, and the double backup, each weights plus optimizer
    state (up to 3x the weights, float32), plus figures, report and logs."""
    return 4 * params * 3 * 4 + 4 * 2**20


def check_free_space(folder: Path, params: int) -> None:
    """RunError before a run starts when its folder's disk clearly cannot hold it."""
    needed, free = run_bytes(params), free_bytes(folder)
    if free < needed:
        raise RunError(f"--out {folder}: only {free / 2**20:.1f} MB free on its disk; a run "
                       f"of this model needs about {needed / 2**20:.1f} MB; free space or "
                       "choose another --out")
