"""The ``search:`` and ``space:`` of a sweep file, validated (no Optuna, no TensorFlow).

::

    search:
      strategy: tpe               # grid (the space's choices, as axes) | random | tpe
      trials: 30
      metric: best_val_accuracy   # a select_by metric
      direction: maximize         # default: the metric's own (maximize accuracy)
      pruner: median              # none | median | hyperband
      seed: 0
    space:
      train.learning_rate: {low: 1.0e-4, high: 1.0e-1, log: true}   # float
      train.batch_size: {choices: [16, 32, 64, 128]}                # categorical
      model.dense_dropout: {low: 0.0, high: 0.5, step: 0.1}         # float on a grid
      model.conv_layers_per_block: {low: 1, high: 3}                # int (integer bounds)

:mod:`cnnlab.sweep.search.trials` runs it on Optuna.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from cnnlab.config.checks import shown
from cnnlab.errors import ConfigError
from cnnlab.runs.layout import METRICS, SELECTABLE

STRATEGIES = ("grid", "random", "tpe")
PRUNERS = ("none", "median", "hyperband")
SEARCH_KEYS = ("strategy", "trials", "metric", "direction", "pruner", "seed")
DIMENSION_KEYS = ("low", "high", "log", "step", "choices")
# The per-epoch value a pruner sees for each metric a search may optimize.
EPOCH_VALUE = {"best_val_accuracy": "val_accuracy", "final_val_loss": "val_loss"}
DIRECTIONS = {"maximize": "max", "minimize": "min"}


@dataclass(frozen=True)
class Dimension:
    """One key of the space: ``choices``, or a float/int range ``low``..``high``."""

    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] | None = None

    @property
    def kind(self) -> str:
        if self.choices is not None:
            return "categorical"
        return "int" if isinstance(self.low, int) and isinstance(self.high, int) else "float"

    def describe(self) -> str:
        if self.choices is not None:
            return f"one of {list(self.choices)}"
        extra = (", log scale" if self.log else "") + (f", step {self.step}" if self.step else "")
        return f"{self.kind} {self.low} .. {self.high}{extra}"

    def record(self) -> dict[str, Any]:
        found = {k: v for k, v in asdict(self).items() if v not in (None, False)}
        return {**found, "choices": list(self.choices)} if self.choices is not None else found


@dataclass(frozen=True)
class Search:
    strategy: str
    trials: int
    metric: str
    direction: str
    pruner: str
    seed: int

    def record(self) -> dict[str, Any]:
        return asdict(self)


def search_from_dict(raw: Any, trials: int | None, origin: str) -> Search:
    """The ``search:`` mapping, validated; ``trials`` (``--trials``) replaces its own."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{origin}: search: got {shown(raw)}; expected a mapping, e.g. "
                          "{strategy: tpe, trials: 20}")
    check_known(raw, SEARCH_KEYS, f"{origin}: search")
    strategy = _choice(raw.get("strategy", "tpe"), STRATEGIES, f"{origin}: search: strategy")
    metric = _choice(raw.get("metric", "best_val_accuracy"), SELECTABLE,
                     f"{origin}: search: metric")
    higher = METRICS[metric].higher_is_better
    own = "maximize" if higher else "minimize"
    direction = _choice(raw.get("direction", own), tuple(DIRECTIONS),
                        f"{origin}: search: direction")
    if DIRECTIONS[direction] != METRICS[metric].direction:
        raise ConfigError(f"{origin}: search: direction {direction} for {metric}, which is "
                          f"better {'higher' if higher else 'lower'}; use {own}")
    count = raw.get("trials", 20) if trials is None else trials
    where = "--trials" if trials is not None else f"{origin}: search: trials"
    return Search(strategy, _whole(count, where, 1), metric, direction,
                  _choice(raw.get("pruner", "median"), PRUNERS, f"{origin}: search: pruner"),
                  _whole(raw.get("seed", 0), f"{origin}: search: seed", 0))


def space_from_dict(raw: Any, origin: str) -> dict[str, Dimension]:
    """The ``space:`` mapping (dotted config key: dimension), each dimension validated;
    the keys are checked against the config schema by the caller."""
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"{origin}: a search needs 'space:', a mapping of config key: "
                          "{low, high} or {choices: [...]}, e.g. train.learning_rate: "
                          "{low: 1.0e-4, high: 0.1, log: true}")
    return {key: _dimension(value, f"{origin}: space: {key}") for key, value in raw.items()}


def _dimension(raw: Any, where: str) -> Dimension:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: got {shown(raw)}; expected {{low: .., high: ..}} or "
                          "{choices: [...]}")
    check_known(raw, DIMENSION_KEYS, where)
    if "choices" in raw:
        if set(raw) != {"choices"}:
            raise ConfigError(f"{where}: choices cannot be combined with "
                              f"{', '.join(sorted(set(raw) - {'choices'}))}; give one or the "
                              "other")
        if not isinstance(raw["choices"], list) or not raw["choices"]:
            raise ConfigError(f"{where}: choices: got {shown(raw['choices'])}; expected a "
                              "non-empty list of values")
        return Dimension(choices=tuple(raw["choices"]))
    return _range(raw, where)


def _range(raw: Mapping[str, Any], where: str) -> Dimension:
    if "low" not in raw or "high" not in raw:
        raise ConfigError(f"{where}: give low and high (a range) or choices (a list)")
    low, high = raw["low"], raw["high"]
    for name, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value):
            raise ConfigError(f"{where}: {name}: got {shown(value)}; expected a number")
    if low > high:
        raise ConfigError(f"{where}: low {low} is greater than high {high}; swap them")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log: got {shown(log)}; expected true or false")
    if log and low <= 0:
        raise ConfigError(f"{where}: log: true needs low > 0 (got {low}); raise low or drop "
                          "log")
    step = raw.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int | float)
                             or not math.isfinite(step) or step <= 0):
        raise ConfigError(f"{where}: step: got {shown(step)}; expected a number > 0")
    if step is not None and log:
        raise ConfigError(f"{where}: step and log: true cannot be combined; drop one")
    if isinstance(low, int) and isinstance(high, int) and isinstance(step, float):
        raise ConfigError(f"{where}: integer low/high with step {step}; give an integer step, "
                          "or float bounds (e.g. 1.0)")
    return Dimension(low=low, high=high, log=log, step=step)


def as_axes(space: Mapping[str, Dimension], origin: str) -> dict[str, list[Any]]:
    """``strategy: grid``: each dimension's values as an axis (choices, or an int range)."""
    axes = {}
    for key, dim in space.items():
        if dim.choices is not None:
            axes[key] = list(dim.choices)
        elif dim.kind == "int" and not dim.log:
            axes[key] = list(range(int(dim.low), int(dim.high) + 1, int(dim.step or 1)))
        else:
            raise ConfigError(f"{origin}: space: {key}: strategy grid needs choices (or an "
                              "integer range); give choices: [...], or use random or tpe")
    return axes


def check_known(raw: Mapping[str, Any], keys: tuple[str, ...], where: str,
                noun: str = "key") -> None:
    """ConfigError for the first key of ``raw`` not in ``keys``, with "did you mean"."""
    for key in raw:
        if key not in keys:
            match = difflib.get_close_matches(str(key), keys, n=1, cutoff=0.5)
            hint = f"did you mean '{match[0]}'?" if match else "valid keys: " + ", ".join(keys)
            raise ConfigError(f"{where}: unknown {noun} '{key}'; {hint}")


def _choice(value: Any, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        match = difflib.get_close_matches(str(value), allowed, n=1, cutoff=0.5)
        hint = f"did you mean '{match[0]}'? " if match else ""
        raise ConfigError(f"{where}: got {shown(value)}; {hint}expected one of "
                          + ", ".join(allowed))
    return str(value)


def _whole(value: Any, where: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"{where}: got {shown(value)}; expected a whole number >= {least}")
    return value

