"""A search trial's pruning, in the process that trains it: each epoch's value goes to
the study (``trial.report``) and the study's pruner says whether to stop.

The study lives in SQLite (``<sweep>/study.db``), so a worker process or a Ray task on
the same machine reaches the same trial as the sweep process that asked it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from cnnlab.sweep.spec import TrialRef


def stop_check(ref: TrialRef) -> Callable[[int, dict[str, float]], bool]:
    """``check(epoch, logs)``: report the epoch's value; True when the pruner stops it."""
    import optuna  # only where a search's trial trains

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # a loaded study has Optuna's default pruner: give it the search's
    study = optuna.load_study(study_name=ref.study, storage=ref.storage,
                              pruner=make_pruner(ref.pruner, ref.trials, ref.epochs))
    trial = optuna.trial.Trial(study, trial_id(study, ref.number))

    def check(epoch: int, logs: dict[str, float]) -> bool:
        value = float(logs.get(ref.epoch_value, math.nan))
        if not math.isfinite(value):
            return False  # a diverged epoch: TerminateOnNaN stops the run itself
        trial.report(value, epoch)
        return trial.should_prune()

    return check


def make_pruner(name: str, trials: int, epochs: int) -> Any:
    """The pruner a search names: ``median`` compares from the second epoch on, once a
    fifth of the trials (1..5) have finished; ``hyperband`` over 1..``epochs`` epochs."""
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=min(5, max(1, trials // 5)),
                                           n_warmup_steps=2)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(1, epochs))
    return optuna.pruners.NopPruner()


def trial_id(study: object, number: int) -> int:
    """The storage's id of trial ``number``, which ``optuna.trial.Trial`` needs (Optuna
    gives it to no public attribute)."""
    return study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
