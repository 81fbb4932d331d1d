"""Reading a finished run back: its record, its best model and the data it used."""

from __future__ import annotations

import csv
import json
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cnnlab.config.schema import config_from_dict
from cnnlab.data.dataset import Dataset, reload_recorded, reload_test_pool
from cnnlab.errors import RunError
from cnnlab.runs.layout import (
    CONFIG_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    MODEL_FILE,
    STATUS_FILE,
    Status,
)
from cnnlab.runs.storage import metrics_problem, read_csv


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
        _check_not_training(path)
        raise RunError(f"{path}: not a finished run (no metrics.json or config.yaml); "
                       "train it with 'cnnlab train' first")
    metrics = _record(metrics_file, json.loads)
    problem = metrics_problem(metrics)
    if problem:
        raise RunError(_damaged(metrics_file, problem))
    config = _record(path / CONFIG_FILE, yaml.safe_load)
    history_file = path / HISTORY_FILE
    try:
        history = read_csv(history_file) if history_file.exists() else []
    except (ValueError, TypeError, csv.Error, IsADirectoryError) as exc:  # not UTF-8, cut
        raise RunError(_damaged(history_file, str(exc)[:120])) from None
    return Run(path=path, config=config, metrics=metrics, history=history)


def _record(file: Path, parse: Callable[[str], Any]) -> dict[str, Any]:
    """A run's JSON or YAML record as a mapping; RunError naming the file if damaged."""
    try:
        found = parse(file.read_bytes().decode("utf-8"))
    except (ValueError, yaml.YAMLError, RecursionError, IsADirectoryError) as exc:  # cut short
        why = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise RunError(_damaged(file, why)) from None
    if not isinstance(found, dict):
        raise RunError(_damaged(file, "not a mapping of keys"))
    return found


def _damaged(file: Path, why: str) -> str:
    return (f"{file.parent}: damaged run record ({file.name}: {why}); train the run again, "
            "or put back the file the run wrote")


def _check_not_training(path: Path) -> None:
    """RunError saying so when ``path`` is a run still training (status.json: running)."""
    try:
        status = json.loads((path / STATUS_FILE).read_bytes().decode("utf-8")).get("status")
    except (OSError, ValueError, AttributeError, RecursionError):
        return
    if status == Status.RUNNING:
        raise RunError(f"{path}: still training (status.json: running; no metrics.json "
                       "yet); wait for it to finish. If its process was killed, resume it: "
                       "cnnlab train CONFIG --out RUN_DIR --resume")
    if status == Status.INTERRUPTED:
        raise RunError(f"{path}: interrupted before it finished (status.json: interrupted); "
                       "resume it: cnnlab train CONFIG --out RUN_DIR --resume")


def load_model(path: str | Path, trust_code: bool = False) -> Any:
    """Load a saved Keras model in safe mode: a model carrying code (a Lambda layer)
    is refused unless ``trust_code`` is set."""
    from cnnlab.backend.tf import keras

    path = Path(path)
    if not path.exists():
        raise RunError(f"{path}: no saved model; train the run again")
    try:
        with warnings.catch_warnings():  # cnnlab never trains a loaded model on: its
            # optimizer state (e.g. mixed precision's loss scale) does not matter
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            return keras.saving.load_model(path, safe_mode=not trust_code)
    except (OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:  # cut short, garbage
        raise RunError(f"{path}: damaged ({str(exc).splitlines()[0][:150]}); train the run "
                       "again, or put back the file the run wrote") from None
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


def load_run_test_pool(run: Run, most_bytes: int, log: Callable[[str], None] = print
                       ) -> tuple[np.ndarray, np.ndarray] | None:
    """Every test image a finished run's splits draw from, standardized, and its label
    (None: more than ``most_bytes``); DataError if the data found now differs."""
    config = config_from_dict(run.config, str(run.path / CONFIG_FILE))
    return reload_test_pool(config.data, run.metrics.get("data", {}), most_bytes, log)


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
