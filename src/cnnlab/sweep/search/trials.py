"""Searches: trials asked one at a time from an Optuna study, trained like any sweep run.

:class:`Trials` is the sweep runner's source of runs for a sweep with ``search:``
(strategy ``random`` or ``tpe``; ``grid`` is a plain sweep). The study lives in
``<sweep>/study.db`` (Optuna's SQLite storage): each trial is asked, sampled from the
space, validated as a config and handed to the runner as a run ``NNN-<params>``; its
outcome is told back (finished: the metric; pruned; failed). A trial's epochs are
reported to the study by the process that trains it (:mod:`cnnlab.sweep.search.pruning`).

Resume: trials told earlier are kept; a trial that was running when the sweep process
died is told failed (marked ``interrupted``, not counted) and its values are asked
again; the search goes on until ``trials`` trials are counted.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import optuna
import yaml

from cnnlab.config.schema import Config, config_from_dict, merge
from cnnlab.data.dataset import input_spec
from cnnlab.errors import ConfigError, DataError
from cnnlab.runs import layout, load, storage
from cnnlab.runs.layout import Status
from cnnlab.sweep.search import pruning
from cnnlab.sweep.search.spec import EPOCH_VALUE, Dimension, Search
from cnnlab.sweep.spec import Sweep, SweepRun, TrialRef, trial_name, trial_run
from cnnlab.training import sizes

Log = Callable[[str], None]
STUDY_FILE = "study.db"
RUN_ATTR, REASON_ATTR = "run", "failed_reason"  # trial user attributes
INTERRUPTED = Status.INTERRUPTED.value  # the reason of a trial cut off by a dead sweep
DUPLICATE = "values tried already"  # the reason of a repeated draw, asked again
ASK_LIMIT = 50  # repeated draws in a row before the space counts as spent
SCALARS = (type(None), bool, int, float, str)


def open_study(sweep: Sweep, sweep_dir: Path) -> optuna.Study:
    """The sweep's study in ``<sweep>/study.db``, created or loaded."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = sweep.search
    study = optuna.create_study(
        study_name=sweep.name, storage=storage_url(sweep_dir), load_if_exists=True,
        direction=search.direction, sampler=_sampler(search, 0),
        pruner=pruning.make_pruner(search.pruner, search.trials, epochs(sweep)))
    asked = len(study.get_trials(deepcopy=False))
    if asked:  # a continued search: the sampler does not start over from its seed
        study.sampler = _sampler(search, asked)
    return study


def epochs(sweep: Sweep) -> int:
    """The epochs every trial trains for (unless pruned or stopped early)."""
    return config_from_dict(sweep.common, sweep.origin).train.epochs


def storage_url(sweep_dir: Path) -> str:
    return f"sqlite:///{(sweep_dir / STUDY_FILE).resolve()}"


def _sampler(search: Search, asked: int) -> optuna.samplers.BaseSampler:
    """The search's sampler, seeded by its seed and the trials ``asked`` so far, so that
    a continued search (more --trials, a resume) draws new values, reproducibly."""
    seed = None if search.seed is None else (search.seed + 100_003 * asked) % 2**32
    if search.strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # random trials first, then the model: a quarter of the budget, 2..10
    startup = min(10, max(2, search.trials // 4))
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)


# --- the space, on a trial ---

def labels(dim: Dimension) -> list[Any]:
    """Optuna's categorical choices must be scalars: lists (model.filters) as YAML text."""
    return [c if isinstance(c, SCALARS) else yaml.safe_dump(c, default_flow_style=True).strip()
            for c in dim.choices]


def suggest(trial: optuna.Trial, space: Mapping[str, Dimension]) -> dict[str, Any]:
    """Sample every key of the space on ``trial``: {config key: config value}."""
    params = {}
    for key, dim in space.items():
        if dim.choices is not None:
            params[key] = trial.suggest_categorical(key, labels(dim))
        elif dim.kind == "int":
            params[key] = trial.suggest_int(key, int(dim.low), int(dim.high),
                                            step=int(dim.step or 1), log=dim.log)
        else:
            params[key] = trial.suggest_float(key, float(dim.low), float(dim.high),
                                              step=dim.step, log=dim.log)
    return values(params, space)


def values(params: Mapping[str, Any], space: Mapping[str, Dimension]) -> dict[str, Any]:
    """A trial's stored params as config values (categorical labels back to choices)."""
    found = {}
    for key, dim in space.items():
        value = params[key]
        found[key] = dim.choices[labels(dim).index(value)] if dim.choices is not None \
            else value
    return found


# --- the runner's source ---

class Trials:
    """Asks trials of the study as the runner has room, and tells it how each ended."""

    def __init__(self, sweep: Sweep, sweep_dir: Path, log: Log):
        self.base, self.sweep_dir, self.log = sweep, sweep_dir, log
        self.study = open_study(sweep, sweep_dir)
        self.total = sweep.search.trials
        self.epoch_value = EPOCH_VALUE[sweep.search.metric]
        self.asked: dict[str, int] = {}  # run id -> trial number, of runs in flight
        self._recover()
        self.runs = self._counted()
        self.sweep = dataclasses.replace(sweep, runs=tuple(self.runs))

    def _recover(self) -> None:
        """Trials left running by a dead sweep process: told now if their run finished,
        else told failed (interrupted) and asked again with the same values."""
        for trial in self.study.get_trials(deepcopy=False,
                                           states=(optuna.trial.TrialState.RUNNING,)):
            run_id = trial.user_attrs.get(RUN_ATTR)
            if run_id and storage.is_finished(self.sweep_dir / run_id):
                self._tell(trial.number, run_id, Status(
                    load.read_run(self.sweep_dir / run_id).metrics["status"]))
                continue
            _set_reason(self.study, trial.number, INTERRUPTED)
            self.study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            if run_id:
                storage.clear_folder(self.sweep_dir / run_id)  # its partial folder
            if trial.params:
                self.study.enqueue_trial(trial.params, skip_if_exists=False)
            self.log(f"trial {trial.number} ({run_id or 'not started'}) was cut off by the "
                     "end of the last sweep process: marked failed, its values asked again")

    def _counted(self) -> list[SweepRun]:
        """The runs of the trials that count: told, and not cut off by a dead process."""
        found = []
        for trial in self.study.get_trials(deepcopy=False):
            run_id = trial.user_attrs.get(RUN_ATTR)
            if (run_id is None or trial.state == optuna.trial.TrialState.RUNNING
                    or trial.user_attrs.get(REASON_ATTR) == INTERRUPTED):
                continue
            params = values(trial.params, self.base.space)
            found.append(self._run(len(found), params, trial.number, run_id)[0])
        return found

    def _run(self, position: int, params: dict[str, Any], number: int, run_id: str
             ) -> tuple[SweepRun, str | None]:
        """The trial's run, and why its sampled config is invalid (None: valid)."""
        search = self.base.search
        ref = TrialRef(storage_url(self.sweep_dir), self.base.name, number, self.epoch_value,
                       search.pruner, search.trials, epochs(self.base))
        try:  # the folder name it was asked with (positions shift when one is cut off)
            run = dataclasses.replace(trial_run(self.base, position, params, ref),
                                      id=run_id, arm=run_id)
            _check_fits(run.config)
            return run, None
        except ConfigError as exc:  # an invalid sample: shown with its values, base config
            config = config_from_dict(merge(self.base.common,
                                            {"name": run_id.replace("=", "-")}))
            return SweepRun(position + 1, run_id, None, params, config, run_id, 0, ref), str(exc)

    def next_run(self) -> SweepRun | None:
        while len(self.runs) < self.total:
            trial = self._ask_untried()
            if trial is None:
                self.log(f"search: every configuration of the space was tried "
                         f"({len(self.runs)} trials); the search ends here")
                self.total = len(self.runs)
                return None
            params = values(trial.params, self.base.space)
            run_id = trial_name(len(self.runs), params)
            trial.set_user_attr(RUN_ATTR, run_id)
            run, invalid = self._run(len(self.runs), params, trial.number, run_id)
            self._add(run)
            if invalid:
                self._invalid(trial, run, invalid)
                continue
            self.asked[run.id] = trial.number
            return run
        return None

    def _ask_untried(self) -> optuna.Trial | None:
        """A new trial whose values no counted trial had (a sampler may draw the same
        values twice); a repeat is told failed (not counted). None: the space seems spent."""
        tried = {_key(t.params) for t in self.study.get_trials(deepcopy=False)
                 if t.user_attrs.get(RUN_ATTR) in {r.id for r in self.runs}}
        for _ in range(ASK_LIMIT):
            trial = self.study.ask()
            suggest(trial, self.base.space)
            if _key(trial.params) not in tried:
                return trial
            trial.set_user_attr(REASON_ATTR, DUPLICATE)
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return None

    def _add(self, run: SweepRun) -> None:
        self.runs.append(run)
        self.sweep = dataclasses.replace(self.sweep, runs=tuple(self.runs))

    def _invalid(self, trial: optuna.Trial, run: SweepRun, reason: str) -> None:
        """A sampled config that is not valid: recorded as a failed trial, with why."""
        trial.set_user_attr(REASON_ATTR, reason)
        self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        storage.write_json(self.sweep_dir / run.id / layout.ERROR_FILE, {
            "status": Status.FAILED, "run": run.id, "error": f"invalid sample: {reason}"})
        self.log(f"[{run.index}/{self.total}] {run.id}: invalid sample, recorded as failed "
                 f"({reason}); the search goes on")

    def settled(self, run: SweepRun, outcome: Status) -> None:
        self._tell(self.asked.pop(run.id), run.id, outcome)

    def _tell(self, number: int, run_id: str, outcome: Status) -> None:
        state = optuna.trial.TrialState
        if outcome == Status.PRUNED:
            self.study.tell(number, state=state.PRUNED)
            return
        value = (load.read_run(self.sweep_dir / run_id).metrics.get(self.base.search.metric)
                 if outcome.finished else None)
        if isinstance(value, int | float) and math.isfinite(value):
            self.study.tell(number, float(value))
        else:
            _set_reason(self.study, number, f"run {outcome}")
            self.study.tell(number, state=state.FAIL)

    def left(self) -> int:
        return self.total - len(self.runs) + len(self.asked)

    def done(self) -> int:
        return len(self.runs) - len(self.asked)


def _check_fits(config: Config) -> None:
    """ConfigError when a sampled config cannot fit in memory (an invalid sample)."""
    try:
        input_shape, num_classes = input_spec(config.data)
    except DataError:
        return  # left to the run, which fails and is recorded
    sizes.check(config, input_shape, num_classes)


def _key(params: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(params.items()))


def _set_reason(study: optuna.Study, number: int, reason: str) -> None:
    """A user attribute on trial ``number`` after the process that asked it is gone."""
    study._storage.set_trial_user_attr(pruning.trial_id(study, number), REASON_ATTR, reason)


# --- what the study shows ---

def history_points(study: optuna.Study) -> list[tuple[int, float | None, str]]:
    """(run number, the metric or the pruned trial's last reported value, state) of every
    counted trial, in order."""
    points = []
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get(REASON_ATTR) == INTERRUPTED or RUN_ATTR not in trial.user_attrs:
            continue
        value = trial.value if trial.value is not None else (
            trial.intermediate_values[trial.last_step] if trial.last_step is not None else None)
        points.append((len(points) + 1, value, trial.state.name.lower()))
    return points


def importances(study: optuna.Study, seed: int) -> tuple[dict[str, float] | None, str]:
    """fANOVA importance of each parameter over the finished trials, or None and why not
    (fewer than two finished trials, or all with the same value)."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 2:
        return None, (f"{len(complete)} finished trial{'' if len(complete) == 1 else 's'}; "
                      "it needs at least two (run more with --trials)")
    if len({t.value for t in complete}) < 2:
        return None, (f"the {len(complete)} finished trials all have the same value, so no "
                      "parameter explains a difference")
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    return dict(optuna.importance.get_param_importances(study, evaluator=evaluator)), ""


def pruning_summary(trials: Trials, sweep_dir: Path) -> str:
    """One line: trials by outcome, and the epochs pruning saved."""
    planned = epochs(trials.base)
    counts: dict[str, int] = {}
    saved = 0
    for run in trials.runs:
        row = load.read_run(sweep_dir / run.id).metrics if storage.is_finished(
            sweep_dir / run.id) else {"status": Status.FAILED}
        counts[row["status"]] = counts.get(row["status"], 0) + 1
        if row["status"] == Status.PRUNED:
            saved += planned - int(row["epochs_run"])
    outcome = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return (f"search: {len(trials.runs)} trials ({outcome}); pruning saved {saved} of "
            f"{planned * len(trials.runs)} epochs; study: {sweep_dir / STUDY_FILE}")
