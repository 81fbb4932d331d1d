"""Writing run and sweep folders: atomic files, CSV and JSON, new and resumable
folders, which folder is what, and disk space."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from cnnlab.config.schema import Config
from cnnlab.errors import RunError
from cnnlab.runs.layout import (
    CONFIG_FILE,
    METRICS_FILE,
    RESULTS_FILE,
    STATUS_FILE,
    SWEEP_FILE,
    Status,
)


def read_metrics(run_dir: str | Path) -> dict[str, Any] | None:
    """A run's ``metrics.json`` as a dict with a finished status; None when it is missing,
    cut short, not UTF-8 or not such a record (a run whose record is damaged is unfinished)."""
    try:
        metrics = json.loads((Path(run_dir) / METRICS_FILE).read_bytes().decode("utf-8"))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, ValueError,
            RecursionError):
        return None
    return None if metrics_problem(metrics) else metrics


NUMBER_KEYS = ("epochs_run", "best_val_accuracy", "best_epoch", "overfit_epoch",
               "test_accuracy", "test_loss", "final_train_loss", "final_val_loss",
               "trainable_params", "ms_per_step", "s_per_epoch")
MAPPING_KEYS = ("per_class", "distribute", "mixed_precision", "data", "environment", "phases")
LIST_KEYS = ("confusion_matrix", "most_confused")


def metrics_problem(metrics: Any) -> str | None:
    """What makes ``metrics`` not a finished run's record (None: nothing): the shape of
    every key that is read back."""
    if not isinstance(metrics, dict):
        return "not a mapping of keys"
    if metrics.get("status") not in {s.value for s in Status if s.finished}:
        return f"status {str(metrics.get('status'))[:40]!r} is not a finished run's"
    kinds = [(NUMBER_KEYS, (int, float), "a number"), (MAPPING_KEYS, dict, "a mapping"),
             (LIST_KEYS, list, "a list")]
    for keys, kind, name in kinds:
        for key in keys:
            value = metrics.get(key)
            if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
                return f"{key} is not {name}"
    return None


def is_finished(run_dir: str | Path) -> bool:
    """``metrics.json`` holds a finished run's record (written last, atomically)."""
    return read_metrics(run_dir) is not None


def write_atomic(path: Path, text: str) -> None:
    """Write a text file so that a reader sees the old file or the new one, never half.
    A folder where the file belongs (a damaged folder) is a one-line error: it may hold
    the user's files, so it is not removed."""
    if path.is_dir() and not path.is_symlink():
        raise RunError(f"{path}: a folder where the file {path.name} belongs; move it away "
                       "or delete it, then run the same command again")
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
        return [{k: parse_cell(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def parse_cell(text: str) -> Any:
    """A CSV cell as written by :func:`write_csv`: an int, a float, else the text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def clear_folder(path: Path) -> str | None:
    """Remove a partial run folder, or the folder a sweep rewrites; a symbolic link is
    removed itself and never followed (nothing outside the sweep folder is touched).
    Returns what the link pointed to, or None when ``path`` was not a link."""
    if path.is_symlink():
        target = os.readlink(path)
        path.unlink()
        return target
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():  # a file where the run folder belongs
        path.unlink()
    return None


def resumable_run(path: str | Path) -> Path | None:
    """The interrupted run folder holding ``path`` (it, or a folder up to two levels
    above), if there is one: config.yaml and status.json, no finished metrics.json."""
    path = Path(path)
    for folder in [path, *path.parents][:3]:
        try:
            status = json.loads((folder / STATUS_FILE).read_bytes().decode("utf-8"))
        except (OSError, ValueError):
            continue
        if (isinstance(status, dict) and status.get("status") in (Status.INTERRUPTED,
                                                                  Status.RUNNING)
                and (folder / CONFIG_FILE).exists() and not is_finished(folder)):
            return folder
    return None


def check_no_link(folder: Path) -> Path:
    """``folder`` (inside a run folder) unless it is a symbolic link: what cnnlab writes
    into a run folder stays in it."""
    if folder.is_symlink():
        raise RunError(f"{folder}: a symbolic link (to {os.readlink(folder)}); cnnlab writes "
                       "only inside the run folder: remove the link, or give --out")
    return folder


def check_out_dir(out: str | Path) -> Path:
    """``out`` as a Path; RunError if it already holds anything (runs are never overwritten)."""
    path = Path(out)
    if is_run_folder(path) and not is_finished(path):
        raise RunError(f"--out {path}: holds an interrupted run; continue it with --resume "
                       "(the same CONFIG and --set), or choose a new folder")
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


def is_run_folder(path: str | Path) -> bool:
    """A folder written by ``cnnlab train`` (finished or not): it holds metrics.json,
    config.yaml or status.json."""
    path = Path(path)
    return path.is_dir() and any((path / name).exists()
                                 for name in (METRICS_FILE, CONFIG_FILE, STATUS_FILE))


def is_sweep_folder(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and ((path / SWEEP_FILE).exists() or (path / RESULTS_FILE).exists())


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
