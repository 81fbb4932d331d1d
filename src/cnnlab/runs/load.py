"""Reading a finished run back: its record, its best model and the data it used."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cnnlab.config.schema import config_from_dict
from cnnlab.data.dataset import Dataset, reload_recorded
from cnnlab.errors import RunError
from cnnlab.runs.layout import CONFIG_FILE, HISTORY_FILE, METRICS_FILE, MODEL_FILE
from cnnlab.runs.storage import read_csv


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
    from cnnlab.backend.tf import keras

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
