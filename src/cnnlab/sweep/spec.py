"""Sweep files: reading, validating and expanding one into its plan of runs (no TensorFlow).

A sweep file (see docs/sweeps.md)::

    name: batch-size                    # optional; default: the file name
    description: one line               # optional
    base: baseline                      # a config path, a built-in name, or an inline mapping
    set: {data.train_size: 5000}        # optional overrides for every run
    axes:                               # runs the Cartesian product of the values
      train.batch_size: [1, 2, 4]
    variants:                           # named sets of overrides
      adam: {train.optimizer: adam, train.momentum: null}
    select_by: best_val_accuracy        # how the winner is chosen
    repeats: 3                          # optional: each arm trained with seeds s, s+1, s+2
    margin: 0.01                        # optional: accuracy difference counted as equivalent
    vary_split: false                   # optional: repeats draw their own split too

An *arm* is one variant x axis combination; with ``repeats: N`` repeat ``i`` trains it
with ``seed = base seed + i`` while ``data.split_seed`` stays the base seed, so every
repeat and every arm sees the same train/validation/test split -- unless ``vary_split``,
where repeat ``i`` also draws its split with ``split seed + i``, so that intervals include
the variance of the data sampling.

With both ``axes`` and ``variants``, every variant is crossed with every axis
combination. Everything is validated (each expanded run's config included) before any
training starts.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.config.checks import shown
from cnnlab.config.files import (
    check_key,
    check_name,
    overrides_to_dict,
    parse_override,
    read_yaml,
    resolve_config_path,
    resolve_path,
)
from cnnlab.config.schema import SCHEMA, SECTIONS, Config, config_from_dict, format_value, merge
from cnnlab.errors import ConfigError
from cnnlab.runs.layout import SELECTABLE
from cnnlab.sweep.search.spec import (
    Dimension,
    Search,
    as_axes,
    check_known,
    search_from_dict,
    space_from_dict,
)
from cnnlab.sweep.sequential import Design
from cnnlab.sweep.stats import MARGIN

BUILTIN_SWEEP_DIR = Path(__file__).parent / "builtin"
SWEEP_KEYS = ("name", "description", "base", "set", "axes", "variants", "select_by", "repeats",
              "search", "space", "margin", "vary_split")
# How the winner is chosen: the metric and whether higher ("max") or lower is better.


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: its number, folder name, variant, overrides and resolved config;
    its arm (the id shared by its repeats) and repeat number."""

    index: int
    id: str
    variant: str | None
    overrides: dict[str, Any]
    config: Config
    arm: str = ""
    repeat: int = 0
    trial: TrialRef | None = None  # a search's trial: where its pruner is asked


@dataclass(frozen=True)
class TrialRef:
    """Where a trial of a search lives, so that the process training it can report each
    epoch's value to the study and ask its pruner (:mod:`cnnlab.sweep.search.pruning`)."""

    storage: str
    study: str
    number: int
    epoch_value: str  # the history column reported, e.g. val_accuracy
    pruner: str = "median"  # the study's pruner, built the same way where the trial trains
    trials: int = 1
    epochs: int = 1


@dataclass(frozen=True)
class Sweep:
    name: str
    origin: str
    description: str
    base: dict[str, Any]
    set: dict[str, Any]
    axes: dict[str, list[Any]]
    variants: dict[str, dict[str, Any]]
    select_by: str
    runs: tuple[SweepRun, ...]
    repeats: int = 1  # with adaptive seeds: the most a run may get
    adaptive: Design | None = None  # repeats: auto (cnnlab.sweep.sequential)
    search: Search | None = None
    space: dict[str, Dimension] = field(default_factory=dict)
    common: dict[str, Any] = field(default_factory=dict)  # base + set: each trial's start
    margin: float = MARGIN  # equivalence margin of the comparisons (docs/statistics.md)
    vary_split: bool = False  # repeats draw their own train/validation/test split too

    @property
    def arms(self) -> list[str]:
        """The arm ids in plan order."""
        return list(dict.fromkeys(r.arm for r in self.runs))

    @property
    def varying(self) -> list[str]:
        """The dotted keys that the sweep varies: variant keys first, then the axes."""
        keys = [k for overrides in self.variants.values() for k in overrides] + list(self.axes)
        return list(dict.fromkeys(keys + list(self.space)))

    @property
    def params(self) -> list[str]:
        """The results table's parameter columns: ``variant`` (if any), then the varied keys."""
        return (["variant"] if self.variants else []) + self.varying

    def record(self) -> dict[str, Any]:
        """The resolved sweep, as written to ``sweep.yaml`` in the sweep folder."""
        return {
            "name": self.name, "description": self.description, "origin": self.origin,
            "base": self.base, "set": self.set, "axes": self.axes, "variants": self.variants,
            "select_by": self.select_by, "repeats": self.repeats, "margin": self.margin,
            "vary_split": self.vary_split,
            **({"repeats": "auto", "min_repeats": self.adaptive.min_repeats,
                "max_repeats": self.adaptive.max_repeats} if self.adaptive else {}),
            **({"search": self.search.record(),
                "space": {k: d.record() for k, d in self.space.items()}} if self.search else {}),
            "runs": [{"id": r.id, "variant": r.variant, "overrides": r.overrides,
                      "arm": r.arm, "repeat": r.repeat} for r in self.runs],
        }


def builtin_sweeps() -> list[str]:
    return sorted(p.stem for p in BUILTIN_SWEEP_DIR.glob("*.yaml"))


def resolve_sweep_path(name_or_path: str | Path) -> Path:
    """A sweep file path as given, or a built-in sweep by name (``batch-size``, ``grid``...)."""
    return resolve_path(name_or_path, BUILTIN_SWEEP_DIR, "sweep")


def load_sweep(name_or_path: str | Path, overrides: Iterable[str] = (),
               repeats: int | str | None = None, trials: int | None = None,
               margin: float | None = None, vary_split: bool | None = None,
               seeds: tuple[int | None, int | None] = (None, None)) -> Sweep:
    """Read, validate and expand a sweep file; ``overrides`` (``--set``) apply to every run,
    ``repeats`` (``--repeats``, a number or ``auto``), ``trials`` (``--trials``), ``margin``
    (``--margin``) and ``vary_split`` (``--vary-split``) replace the file's; ``seeds``:
    ``--min-repeats`` and ``--max-repeats`` of ``auto``."""
    path = resolve_sweep_path(name_or_path)
    raw = read_yaml(path)
    return sweep_from_dict(raw, str(name_or_path), base_dir=path.parent,
                           overrides=overrides, default_name=path.stem, repeats=repeats,
                           trials=trials, margin=margin, vary_split=vary_split, seeds=seeds)


def sweep_from_dict(raw: Any, origin: str = "sweep", base_dir: Path = Path("."),
                    overrides: Iterable[str] | Mapping[str, Any] = (),
                    default_name: str = "sweep", repeats: int | str | None = None,
                    trials: int | None = None, margin: float | None = None,
                    vary_split: bool | None = None,
                    seeds: tuple[int | None, int | None] = (None, None)) -> Sweep:
    """Validate a sweep (the YAML as a dict) and expand it into its runs (a search by
    ``random`` or ``tpe`` has none yet: :mod:`cnnlab.sweep.search.trials` asks them one by one)."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{origin}: expected a mapping with base and axes and/or variants, "
                          f"got {type(raw).__name__}")
    check_known(raw, SWEEP_KEYS, origin, noun="sweep key")
    base = _base(raw.get("base"), origin, base_dir)
    sweep_set = _dotted(raw.get("set"), f"{origin}: set")
    cli = overrides.items() if isinstance(overrides, Mapping) else map(parse_override, overrides)
    cli_set = {_swept_key(key, "--set"): value for key, value in cli}
    search, space = _search(raw, trials, origin)
    axes = as_axes(space, origin) if search and search.strategy == "grid" else _axes(
        raw.get("axes"), origin)
    variants = _variants(raw.get("variants"), origin)
    if not axes and not variants and not search:
        raise ConfigError(f"{origin}: nothing to sweep; add 'axes:' (key: [values]) and/or "
                          "'variants:' (name: {key: value})")
    varied = set(axes) | {k for v in variants.values() for k in v} | set(space)
    for key in cli_set:
        if key in varied:
            raise ConfigError(f"--set {key}: the sweep varies this key; remove the --set or "
                              "edit the sweep's axes/variants")
    select_by = search.metric if search else raw.get("select_by", "best_val_accuracy")
    if select_by not in SELECTABLE:
        raise ConfigError(f"{origin}: select_by: got {shown(select_by)}; expected one of "
                          + ", ".join(SELECTABLE))
    common = merge(base, overrides_to_dict({**sweep_set, **cli_set}))
    count, adaptive = _repeats(raw.get("repeats", 1) if repeats is None else repeats,
                               origin if repeats is None else "--repeats", seeds)
    asks = search is not None and search.strategy != "grid"
    if asks and count > 1:
        raise ConfigError(f"{'--repeats' if repeats else origin}: repeats "
                          f"{'auto' if adaptive else count} with "
                          f"strategy {search.strategy}: each trial is one seed, and the "
                          "sampler learns from every trial; repeat the winner instead "
                          "(cnnlab sweep on best_config.yaml's values), or use strategy grid")
    margin, vary_split = _statistics(raw, margin, vary_split, origin)
    return Sweep(name=check_name(raw.get("name", default_name), f"{origin}: name"),
                 origin=origin, description=str(raw.get("description") or ""),
                 base=base, set={**sweep_set, **cli_set}, axes=axes, variants=variants,
                 select_by=select_by, repeats=count, adaptive=adaptive, search=search,
                 space=space, common=common, margin=margin, vary_split=vary_split,
                 runs=() if asks else tuple(_expand(common, axes, variants, origin, count,
                                                    vary_split)))


def _statistics(raw: Mapping[str, Any], margin: float | None, vary_split: bool | None,
                origin: str) -> tuple[float, bool]:
    """The equivalence margin and whether repeats vary the split: the option given, else
    the file's, else the defaults (:data:`MARGIN`, False)."""
    where = origin if margin is None else "--margin"
    value = raw.get("margin", MARGIN) if margin is None else margin
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ConfigError(f"{where}: margin: got {shown(value)}; expected a number >= 0 and "
                          "< 1, the accuracy difference counted as equivalent (0.01: 1 point)")
    split = raw.get("vary_split", False) if vary_split is None else vary_split
    if not isinstance(split, bool):
        raise ConfigError(f"{origin}: vary_split: got {shown(split)}; expected true or false")
    return float(value), split


def _search(raw: Mapping[str, Any], trials: int | None, origin: str
            ) -> tuple[Search | None, dict[str, Dimension]]:
    """The sweep's search and its space (both validated), or (None, {})."""
    if "search" not in raw:
        if "space" in raw:
            raise ConfigError(f"{origin}: space: needs a 'search:' (strategy, trials, ...) "
                              "to sample it; or use axes: for a grid")
        if trials is not None:
            raise ConfigError(f"--trials: {origin} is not a search (no 'search:'); use "
                              "--trials with a sweep that has search: and space:")
        return None, {}
    for key in ("axes", "variants", "select_by"):
        if key in raw:
            raise ConfigError(f"{origin}: {key}: not used with search:; put the keys to "
                              "vary in space: (and the metric in search: metric)")
    search = search_from_dict(raw["search"], trials, origin)
    space = space_from_dict(raw.get("space"), origin)
    for key in space:
        _swept_key(key, f"{origin}: space")
    return search, space


def minimum_runs(sweep: Sweep) -> list[SweepRun]:
    """The runs a sweep trains at least (with adaptive seeds: the minimum of each arm)."""
    low = sweep.adaptive.min_repeats if sweep.adaptive else sweep.repeats
    return [r for r in sweep.runs if r.repeat < low]


def trial_run(sweep: Sweep, number: int, params: Mapping[str, Any],
              trial: TrialRef | None = None) -> SweepRun:
    """Trial ``number`` (from 0) of a search with the sampled ``params``: run
    ``NNN-<params>``; ConfigError (naming the run) when the sampled config is invalid."""
    run_id = trial_name(number, params)
    raw = merge(sweep.common, overrides_to_dict(dict(params)))
    raw["name"] = run_id.replace("=", "-")
    try:
        config = config_from_dict(raw, sweep.origin)
    except ConfigError as exc:
        raise ConfigError(f"run {run_id}: {exc}") from None
    return SweepRun(number + 1, run_id, None, dict(params), config, run_id, 0, trial)


def trial_name(number: int, params: Mapping[str, Any]) -> str:
    """The folder name of trial ``number`` (from 0): ``NNN-<key>=<value>-...``."""
    short = _short_names(list(params))
    return _safe(f"{number + 1:03d}-" + "-".join(
        f"{short[k]}={_fmt(_rounded(v))}" for k, v in params.items()))


def _rounded(value: Any) -> Any:
    """A sampled float, to 3 significant digits, for a readable folder name."""
    return float(format(value, ".3g")) if isinstance(value, float) else value


def _repeats(value: Any, where: str, seeds: tuple[int | None, int | None]
             ) -> tuple[int, Design | None]:
    """The repeats (the most with ``auto``) and the adaptive design, if ``auto``."""
    low, high = seeds
    if value == "auto":
        design = Design(3 if low is None else low, 10 if high is None else high)
        if design.min_repeats < 2 or design.max_repeats < design.min_repeats:
            raise ConfigError(f"--min-repeats {design.min_repeats}, --max-repeats "
                              f"{design.max_repeats}: expected 2 <= min <= max (a t-test "
                              "needs 2 seeds per arm)")
        return design.max_repeats, design
    if low is not None or high is not None:
        raise ConfigError("--min-repeats/--max-repeats: only with --repeats auto (or "
                          "repeats: auto in the sweep file)")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: repeats: got {shown(value)}; expected a whole number >= 1 "
                          "(the seeds each arm is trained with) or auto")
    return value, None


def parse_duration(text: str, where: str = "--budget") -> float:
    """Seconds of a duration such as ``30m``, ``1h30m``, ``90s`` or ``2h``."""
    found = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", str(text).strip().lower())
    if not text or not str(text).strip() or not found:
        raise ConfigError(f"{where}: got {shown(text)}; expected a duration such as 30m, "
                          "1h30m, 90s or 2h")
    hours, minutes, seconds = (int(g or 0) for g in found.groups())
    if hours * 3600 + minutes * 60 + seconds == 0:
        raise ConfigError(f"{where}: got {shown(text)}; expected a duration above zero, "
                          "e.g. 30m")
    return float(hours * 3600 + minutes * 60 + seconds)


def _base(value: Any, origin: str, base_dir: Path) -> dict[str, Any]:
    """The base config as a raw dict (from a path, a built-in name or inline), validated."""
    if value is None or isinstance(value, Mapping):
        raw, where = dict(value or {}), f"{origin}: base"
    elif isinstance(value, str):
        local = base_dir / value
        path = local if not Path(value).is_absolute() and local.is_file() else \
            resolve_config_path(value)
        raw, where = read_yaml(path) or {}, str(path)
    else:
        raise ConfigError(f"{origin}: base: got {shown(value)}; expected a config path, a built-in "
                          "config name or an inline mapping of config keys")
    config_from_dict(raw, where)  # one-line error naming the base if it is invalid
    return dict(raw)


def _swept_key(key: Any, where: str) -> str:
    if key == "name":
        raise ConfigError(f"{where}: 'name' cannot be swept; the sweep names its runs itself")
    return check_key(key, where)


def _dotted(value: Any, where: str) -> dict[str, Any]:
    """A mapping of overrides as ``{dotted key: value}`` (nested section mappings flattened)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: got {shown(value)}; expected a mapping of key: value, "
                          "e.g. {train.optimizer: adam}")
    flat: dict[str, Any] = {}
    for key, item in value.items():
        if key in SECTIONS and isinstance(item, Mapping):
            flat.update({f"{key}.{k}": v for k, v in item.items()})
        else:
            flat[key] = item
    for key in flat:
        _swept_key(key, where)
    return flat


def _axes(value: Any, origin: str) -> dict[str, list[Any]]:
    axes = _dotted(value, f"{origin}: axes")
    for key, values in axes.items():
        if not isinstance(values, list):
            raise ConfigError(f"{origin}: axes: {key}: got {shown(values)}; expected a list of "
                              f"values, e.g. {key}: [a, b]")
        if not values:
            raise ConfigError(f"{origin}: axes: {key} is empty; give at least one value")
    return axes


def _variants(value: Any, origin: str) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(f"{origin}: variants: expected a non-empty mapping of "
                          "name: {key: value, ...}")
    variants = {}
    for name, overrides in value.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ConfigError(f"{origin}: variants: name {shown(name)}; use letters, digits, "
                              "'-', '_' or '.'")
        variants[name] = _dotted(overrides, f"{origin}: variants: {name}")
    return variants


# --- expansion ---

def _expand(common: dict[str, Any], axes: dict[str, list[Any]],
            variants: dict[str, dict[str, Any]], origin: str,
            repeats: int = 1, vary_split: bool = False) -> Iterable[SweepRun]:
    variant_items: list[tuple[str | None, dict[str, Any]]] = list(variants.items()) or [(None, {})]
    combos = [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]
    short = _short_names(list(axes))
    arms = [(variant, {**overrides, **combo}, ([variant] if variant else [])
             + [f"{short[k]}={_fmt(v)}" for k, v in combo.items()])
            for variant, overrides in variant_items for combo in combos]
    if repeats > 1 and any("seed" in overrides for _, overrides, _ in arms):
        # the repeats would overwrite it: every arm the same seeds, silently
        raise ConfigError(f"{origin}: seed is varied by the sweep, but repeats {repeats} set "
                          "each run's seed (base seed + repeat); drop seed from the axes and "
                          "variants (set the base seed with set: or --set), or use repeats 1")
    try:
        base_seed = SCHEMA[""]["seed"](common.get("seed", 0))
    except ValueError as allowed:
        raise ConfigError(f"{origin}: seed: got {shown(common.get('seed'))}; expected "
                          f"{allowed}") from None
    index = 0
    for number, (variant, overrides, parts) in enumerate(arms, start=1):
        arm = _safe(f"{number:03d}-" + "-".join(parts))
        for repeat in range(repeats):
            index += 1
            run_id = arm if repeats == 1 else f"{arm}-r{repeat}"
            raw = merge(common, overrides_to_dict(overrides))
            raw["name"] = run_id.replace("=", "-")  # Keras model names allow no "="
            if repeats > 1:  # other weights and batches; the same split unless vary_split
                raw["seed"] = base_seed + repeat
                data = raw.setdefault("data", {}) or {}
                split = base_seed if data.get("split_seed") is None else data["split_seed"]
                raw["data"] = {**data, "split_seed": split + (repeat if vary_split else 0)}
            try:
                config = config_from_dict(raw, origin)
            except ConfigError as exc:
                raise ConfigError(f"{origin}: run {run_id}: {exc}") from None
            yield SweepRun(index, run_id, variant, overrides, config, arm, repeat)


def _short_names(keys: list[str]) -> dict[str, str]:
    leaves = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: leaf if leaves.count(leaf) == 1 else k for k, leaf in zip(keys, leaves, strict=True)}


def _fmt(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "_".join(_fmt(v) for v in value) or "none"
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "none"
    if isinstance(value, float):
        return format(value, "g")
    return str(value)


def _safe(text: str, limit: int = 100) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]", "_", text)[:limit]


def format_overrides(overrides: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={format_value(v)}" for k, v in overrides.items()) or "(base config)"


def describe(sweep: Sweep) -> str:
    """The dry-run listing: each run's id and overrides."""
    repeats = (f" ({len(sweep.arms)} arms x {sweep.repeats} repeats, seeds "
               f"{sweep.runs[0].config.seed}..{sweep.runs[0].config.seed + sweep.repeats - 1}"
               f"{', each its own split' if sweep.vary_split else ', one split'}; equivalence "
               f"margin {sweep.margin:g})" if sweep.repeats > 1 else "")
    if sweep.adaptive:
        low, high = sweep.adaptive.min_repeats, sweep.adaptive.max_repeats
        repeats = (f" at most ({len(sweep.arms)} arms x {low}..{high} seeds, adaptive: "
                   f"{low * len(sweep.arms)} runs at least"
                   f"{', each its own split' if sweep.vary_split else ', one split'}; "
                   f"equivalence margin {sweep.margin:g})")
    size = (f"{sweep.search.trials} trials" if sweep.search and not sweep.runs
            else f"{len(sweep.runs)} runs")
    lines = [f"sweep {sweep.name} ({sweep.origin}): {size}{repeats}"
             + (f" -- {sweep.description}" if sweep.description else "")]
    if sweep.set:
        lines.append(f"every run: {format_overrides(sweep.set)}")
    if sweep.search:
        lines += _describe_search(sweep.search, sweep.space, len(sweep.runs))
    lines += [f"  {r.id}: {format_overrides(r.overrides)}" for r in sweep.runs]
    return "\n".join(lines)


def _describe_search(search: Search, space: Mapping[str, Dimension], runs: int) -> list[str]:
    count = (f"{runs} runs, every combination of the choices" if search.strategy == "grid"
             else f"{search.trials} trials")
    return [f"search: {search.strategy}, {count}, {search.direction} {search.metric}, "
            f"pruner {search.pruner}, seed {search.seed}", "space:",
            *[f"  {key}: {dim.describe()}" for key, dim in space.items()]]
