"""A search's ``study.db`` lost, emptied or damaged: the study rebuilt from the trial folders.

The finished trials are the truth on disk: each trial folder ``NNN-...`` with a finished
``metrics.json`` holds the sampled values (its ``config.yaml``), the outcome and every
epoch's value (``history.csv``). A damaged ``study.db`` is moved aside (kept, never
deleted), a new one is made and every finished trial is added back to it, so that the
search continues where it was and never trains a finished trial again. When a finished
trial cannot be read back, the search stops with one line naming ``study.db``.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
import yaml

from cnnlab.errors import RunError
from cnnlab.runs import layout, storage
from cnnlab.runs.layout import Status
from cnnlab.sweep.search import trials
from cnnlab.sweep.search.spec import EPOCH_VALUE, Dimension
from cnnlab.sweep.spec import Sweep

Log = Callable[[str], None]
TRIAL_FOLDER = re.compile(r"^(\d{3,})-")


def checked_study(sweep: Sweep, sweep_dir: Path, log: Log) -> None:
    """Make sure ``<sweep>/study.db`` is readable and holds every finished trial folder."""
    study_file = sweep_dir / trials.STUDY_FILE
    try:
        study = trials.open_study(sweep, sweep_dir)
        known = {t.user_attrs.get(trials.RUN_ATTR) for t in study.get_trials(deepcopy=False)}
    except sqlalchemy.exc.DatabaseError as exc:  # cut short, garbage: kept beside, unread
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = study_file.with_name(f"{trials.STUDY_FILE}.damaged-{stamp}")
        study_file.rename(aside)
        log(f"{study_file}: damaged ({str(exc.orig).splitlines()[0]}); moved to {aside.name}, "
            "the study is rebuilt from the trial folders")
        study = trials.open_study(sweep, sweep_dir)
        known = set()
    folders = [p for p in _trial_folders(sweep_dir) if p.name not in known]
    if not folders:
        return
    if known - {None}:  # the study holds trials, yet not these: not ours to guess
        raise RunError(f"{study_file}: does not hold the finished trials {folders[0].name}"
                       f"{'...' if len(folders) > 1 else ''}; put back the study.db of this "
                       "search, or move those folders out of --out")
    for folder in folders:
        study.add_trial(_frozen_trial(folder, sweep, study_file))
    log(f"{study_file}: rebuilt from {len(folders)} finished trial folder"
        f"{'s' if len(folders) > 1 else ''} (their config.yaml, metrics.json, history.csv); "
        "none is trained again")


def _trial_folders(sweep_dir: Path) -> list[Path]:
    """The finished trial folders ``NNN-...`` (real folders, not links), by number."""
    found = [p for p in sweep_dir.iterdir() if TRIAL_FOLDER.match(p.name)
             and p.is_dir() and not p.is_symlink() and storage.is_finished(p)]
    return sorted(found, key=lambda p: int(TRIAL_FOLDER.match(p.name).group(1)))


def _frozen_trial(folder: Path, sweep: Sweep, study_file: Path) -> optuna.trial.FrozenTrial:
    """The study's record of one finished trial folder; RunError if it cannot be read."""
    search = sweep.search
    metrics = storage.read_metrics(folder) or {}
    try:
        config = yaml.safe_load((folder / layout.CONFIG_FILE).read_bytes().decode("utf-8"))
        flat = storage.flatten(config if isinstance(config, dict) else {})
        params = {key: _label(dim, flat[key]) for key, dim in sweep.space.items()}
        distributions = {key: _distribution(dim) for key, dim in sweep.space.items()}
        status = Status(metrics["status"])
        value = metrics.get(search.metric)
        complete = status.ranked or status == Status.FINISHED
        finite = isinstance(value, int | float) and math.isfinite(value)
        state = (optuna.trial.TrialState.PRUNED if status == Status.PRUNED else
                 optuna.trial.TrialState.COMPLETE if complete and finite else
                 optuna.trial.TrialState.FAIL)
        attrs = {trials.RUN_ATTR: folder.name}
        if state == optuna.trial.TrialState.FAIL:
            attrs[trials.REASON_ATTR] = f"run {status}"
        return optuna.trial.create_trial(
            state=state, value=float(value) if state.name == "COMPLETE" else None,
            params=params, distributions=distributions, user_attrs=attrs,
            intermediate_values=_epoch_values(folder, EPOCH_VALUE[search.metric]))
    except (OSError, KeyError, ValueError, TypeError, yaml.YAMLError) as exc:
        raise RunError(f"{study_file}: lost or damaged, and the finished trial {folder.name} "
                       f"cannot be read back ({type(exc).__name__}: {str(exc)[:100]}); put "
                       "back the study.db of this search, or move that folder out of --out"
                       ) from None


def _label(dim: Dimension, value: Any) -> Any:
    """A config value as the study stores it (lists as YAML text, as the space does)."""
    if dim.choices is None or isinstance(value, trials.SCALARS):
        return value
    return yaml.safe_dump(value, default_flow_style=True).strip()


def _distribution(dim: Dimension) -> optuna.distributions.BaseDistribution:
    if dim.choices is not None:
        return optuna.distributions.CategoricalDistribution(trials.labels(dim))
    if dim.kind == "int":
        return optuna.distributions.IntDistribution(int(dim.low), int(dim.high), log=dim.log,
                                                    step=int(dim.step or 1))
    return optuna.distributions.FloatDistribution(float(dim.low), float(dim.high),
                                                  log=dim.log, step=dim.step)


def _epoch_values(folder: Path, column: str) -> dict[int, float]:
    """{epoch: the value reported to the pruner} from history.csv (none if it is gone)."""
    history = folder / layout.HISTORY_FILE
    if not history.exists():
        return {}
    rows = storage.read_csv(history)
    return {int(r["epoch"]): float(r[column]) for r in rows
            if isinstance(r.get(column), int | float) and math.isfinite(r[column])}
