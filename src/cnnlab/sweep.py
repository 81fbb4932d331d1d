"""Sweeps: many runs of one base config, expanded from a YAML sweep file, run resumably.

A sweep file (see the README, "Sweeps")::

    name: batch-size                    # optional; default: the file name
    description: one line               # optional
    base: baseline                      # a config path, a built-in name, or an inline mapping
    set: {data.train_size: 5000}        # optional overrides for every run
    axes:                               # runs the Cartesian product of the values
      train.batch_size: [1, 2, 4]
    variants:                           # named sets of overrides
      adam: {train.optimizer: adam, train.momentum: null}
    select_by: best_val_accuracy        # how the winner is chosen

With both ``axes`` and ``variants``, every variant is crossed with every axis
combination. Everything is validated (each expanded run's config included)
before any training starts. ``run_sweep`` trains each run into
``<sweep folder>/<id>/`` (a full run folder); rerunning it on the same folder
keeps the finished runs (those with ``metrics.json``) and redoes the rest.
"""

from __future__ import annotations

import difflib
import fcntl
import itertools
import os
import re
import shutil
import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from cnnlab import child_run, runs, runtime, sweep_results
from cnnlab.config import (
    SCHEMA,
    SECTIONS,
    Config,
    closest_key,
    config_from_dict,
    merge,
    overrides_to_dict,
    parse_override,
    read_yaml,
    resolve_config_path,
)
from cnnlab.errors import CnnlabError, ConfigError, RunError, one_line
from cnnlab.sweep_results import format_value

BUILTIN_SWEEP_DIR = Path(__file__).parent / "sweeps"
LOCK_NAME = ".lock"  # flock-ed for a sweep's lifetime; the OS drops it when the process dies
SWEEP_KEYS = ("name", "description", "base", "set", "axes", "variants", "select_by")

Log = Callable[[str], None]


class SweepInterrupted(Exception):
    """Ctrl-C during a sweep; finished runs are kept and the sweep can be resumed."""

    def __init__(self, sweep_dir: Path):
        super().__init__(f"sweep interrupted; finished runs are kept in {sweep_dir}; "
                         f"run the same command with --out {sweep_dir} to resume")
        self.run_dir = sweep_dir


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: its number, folder name, variant, overrides and resolved config."""

    index: int
    id: str
    variant: str | None
    overrides: dict[str, Any]
    config: Config


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

    @property
    def varying(self) -> list[str]:
        """The dotted keys that the sweep varies: variant keys first, then the axes."""
        keys = [k for overrides in self.variants.values() for k in overrides] + list(self.axes)
        return list(dict.fromkeys(keys))

    def record(self) -> dict[str, Any]:
        """The resolved sweep, as written to ``sweep.yaml`` in the sweep folder."""
        return {
            "name": self.name, "description": self.description, "origin": self.origin,
            "base": self.base, "set": self.set, "axes": self.axes, "variants": self.variants,
            "select_by": self.select_by,
            "runs": [{"id": r.id, "variant": r.variant, "overrides": r.overrides}
                     for r in self.runs],
        }


# --- reading and validating a sweep file ---

def builtin_sweeps() -> list[str]:
    return sorted(p.stem for p in BUILTIN_SWEEP_DIR.glob("*.yaml"))


def resolve_sweep_path(name_or_path: str | Path) -> Path:
    """A sweep file path as given, or a built-in sweep by name (``batch-size``, ``grid``...)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; give a sweep YAML file or a built-in sweep name")
    builtin = BUILTIN_SWEEP_DIR / f"{path.stem if path.suffix else path.name}.yaml"
    if path.parent == Path(".") and builtin.exists():
        return builtin
    raise ConfigError(f"{path}: no such sweep file; give a YAML path or a built-in sweep name "
                      f"({', '.join(builtin_sweeps())})")


def load_sweep(name_or_path: str | Path, overrides: Iterable[str] = ()) -> Sweep:
    """Read, validate and expand a sweep file; ``overrides`` (``--set``) apply to every run."""
    path = resolve_sweep_path(name_or_path)
    raw = read_yaml(path)
    return sweep_from_dict(raw, str(name_or_path), base_dir=path.parent,
                           overrides=overrides, default_name=path.stem)


def sweep_from_dict(raw: Any, origin: str = "sweep", base_dir: Path = Path("."),
                    overrides: Iterable[str] | Mapping[str, Any] = (),
                    default_name: str = "sweep") -> Sweep:
    """Validate a sweep (the YAML as a dict) and expand it into its runs."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{origin}: expected a mapping with base and axes and/or variants, "
                          f"got {type(raw).__name__}")
    for key in raw:
        if key not in SWEEP_KEYS:
            match = difflib.get_close_matches(str(key), SWEEP_KEYS, n=1, cutoff=0.5)
            hint = (f"did you mean '{match[0]}'?" if match
                    else "valid keys: " + ", ".join(SWEEP_KEYS))
            raise ConfigError(f"{origin}: unknown sweep key '{key}'; {hint}")
    name = _sweep_name(raw.get("name", default_name), origin)
    base = _base(raw.get("base"), origin, base_dir)
    sweep_set = _dotted(raw.get("set"), f"{origin}: set")
    cli = overrides.items() if isinstance(overrides, Mapping) else map(parse_override, overrides)
    cli_set = {key: value for key, value in cli}
    for key in cli_set:
        _check_key(key, "--set")
    axes = _axes(raw.get("axes"), origin)
    variants = _variants(raw.get("variants"), origin)
    if not axes and not variants:
        raise ConfigError(f"{origin}: nothing to sweep; add 'axes:' (key: [values]) and/or "
                          "'variants:' (name: {key: value})")
    varied = set(axes) | {k for v in variants.values() for k in v}
    for key in cli_set:
        if key in varied:
            raise ConfigError(f"--set {key}: the sweep varies this key; remove the --set or "
                              "edit the sweep's axes/variants")
    select_by = raw.get("select_by", "best_val_accuracy")
    if select_by not in sweep_results.SELECT_BY:
        raise ConfigError(f"{origin}: select_by: got {select_by!r}; expected one of "
                          + ", ".join(sweep_results.SELECT_BY))
    common = merge(base, overrides_to_dict({**sweep_set, **cli_set}))
    expanded = tuple(_expand(common, axes, variants, origin))
    return Sweep(name=name, origin=origin, description=str(raw.get("description") or ""),
                 base=base, set={**sweep_set, **cli_set}, axes=axes, variants=variants,
                 select_by=select_by, runs=expanded)


def _sweep_name(value: Any, origin: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value):
        raise ConfigError(f"{origin}: name: got {value!r}; expected a name of letters, digits, "
                          "'-', '_' or '.'")
    return value


def _base(value: Any, origin: str, base_dir: Path) -> dict[str, Any]:
    """The base config as a raw dict (from a path, a built-in name or inline), validated."""
    if value is None:
        raw: Any = {}
        where = f"{origin}: base"
    elif isinstance(value, Mapping):
        raw, where = dict(value), f"{origin}: base"
    elif isinstance(value, str):
        local = base_dir / value
        path = local if not Path(value).is_absolute() and local.is_file() else \
            resolve_config_path(value)
        raw, where = read_yaml(path), str(path)
        if raw is None:
            raw = {}
    else:
        raise ConfigError(f"{origin}: base: got {value!r}; expected a config path, a built-in "
                          "config name or an inline mapping of config keys")
    config_from_dict(raw, where)  # one-line error naming the base if it is invalid
    return dict(raw)


def _check_key(key: Any, where: str) -> str:
    if not isinstance(key, str):
        raise ConfigError(f"{where}: key {key!r} is not a dotted config key like train.epochs")
    if key == "name":
        raise ConfigError(f"{where}: 'name' cannot be swept; the sweep names its runs itself")
    section, _, leaf = key.rpartition(".")
    if key in SCHEMA[""] or (section in SECTIONS and leaf in SCHEMA[section]):
        return key
    raise ConfigError(f"{where}: unknown key '{key}'; {closest_key(key)}")


def _dotted(value: Any, where: str) -> dict[str, Any]:
    """A mapping of overrides as ``{dotted key: value}`` (nested section mappings flattened)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: got {value!r}; expected a mapping of key: value, "
                          "e.g. {train.optimizer: adam}")
    flat: dict[str, Any] = {}
    for key, item in value.items():
        if key in SECTIONS and isinstance(item, Mapping):
            flat.update({f"{key}.{k}": v for k, v in item.items()})
        else:
            flat[key] = item
    for key in flat:
        _check_key(key, where)
    return flat


def _axes(value: Any, origin: str) -> dict[str, list[Any]]:
    axes = _dotted(value, f"{origin}: axes")
    for key, values in axes.items():
        if not isinstance(values, list):
            raise ConfigError(f"{origin}: axes: {key}: got {values!r}; expected a list of "
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
            raise ConfigError(f"{origin}: variants: name {name!r}; use letters, digits, "
                              "'-', '_' or '.'")
        variants[name] = _dotted(overrides, f"{origin}: variants: {name}")
    return variants


# --- expansion ---

def _expand(common: dict[str, Any], axes: dict[str, list[Any]],
            variants: dict[str, dict[str, Any]], origin: str) -> Iterable[SweepRun]:
    variant_items: list[tuple[str | None, dict[str, Any]]] = list(variants.items()) or [(None, {})]
    combos = [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]
    short = _short_names(list(axes))
    index = 0
    for variant, variant_overrides in variant_items:
        for combo in combos:
            index += 1
            parts = ([variant] if variant else []) + [f"{short[k]}={_fmt(v)}"
                                                      for k, v in combo.items()]
            run_id = _safe(f"{index:03d}-" + "-".join(parts))
            overrides = {**variant_overrides, **combo}
            raw = merge(common, overrides_to_dict(overrides))
            raw["name"] = run_id.replace("=", "-")  # Keras model names allow no "="
            try:
                config = config_from_dict(raw, origin)
            except ConfigError as exc:
                raise ConfigError(f"{origin}: run {run_id}: {exc}") from None
            yield SweepRun(index, run_id, variant, overrides, config)


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
    lines = [f"sweep {sweep.name} ({sweep.origin}): {len(sweep.runs)} runs"
             + (f" -- {sweep.description}" if sweep.description else "")]
    if sweep.set:
        lines.append(f"every run: {format_overrides(sweep.set)}")
    lines += [f"  {r.id}: {format_overrides(r.overrides)}" for r in sweep.runs]
    return "\n".join(lines)


# --- running ---

def run_sweep(sweep: Sweep, out: str | Path | None = None, log: Log = print,
              outputs_root: str | Path = "outputs", backend: str = "local",
              backend_options: Any = None) -> Path:
    """Train every run of ``sweep`` not finished yet; write results, plots and the winner.

    Returns the sweep folder. Runs whose folder holds ``metrics.json`` are kept as they
    are; partial folders (a killed or failed run) are cleared and the run is redone.
    """
    sweep_dir, lock = _prepare_dir(sweep, out, outputs_root)  # holds <sweep_dir>/.lock
    try:
        runs.write_atomic(sweep_dir / "sweep.yaml",
                          yaml.safe_dump(sweep.record(), sort_keys=False, default_flow_style=None))
        done = sum((sweep_dir / r.id / "metrics.json").exists() for r in sweep.runs)
        log(f"sweep {sweep.name}: {len(sweep.runs)} runs -> {sweep_dir}"
            + (f" (resuming: {done} finished earlier, kept)" if done else ""))
        if backend == "ray":  # unfinished runs as Ray tasks; backend_options: sweep_ray.RayOptions
            from cnnlab.sweep_ray import RayOptions, run_on_ray

            run_on_ray(sweep, sweep_dir, log, backend_options or RayOptions())
        if backend == "local":
            _run_locally(sweep, sweep_dir, log)
        sweep_results.finish_sweep(sweep, sweep_dir, log)
        from cnnlab.tracking import write_sweep_hparams

        write_sweep_hparams(sweep, sweep_dir, log)  # TensorBoard's HParams view of the sweep
    finally:
        lock.close()  # releases the lock
    return sweep_dir


def _run_locally(sweep: Sweep, sweep_dir: Path, log: Log) -> None:
    """Every unfinished run in order: in this process if it wants this process's TensorFlow
    CPU settings (the ones most runs want), else in the child process for its settings."""
    pending = [r for r in sweep.runs if not (sweep_dir / r.id / "metrics.json").exists()]
    runtime.select_for(r.config for r in pending)
    last_of = {runtime.wanted(r.config.train): r.id for r in pending}
    children = child_run.ChildPool()
    durations: list[float] = []
    try:
        for run in sweep.runs:
            settings = runtime.wanted(run.config.train)
            _run_one(sweep, run, sweep_dir, durations, log, settings, children)
            sweep_results.write_sweep_results(sweep, sweep_dir)
            if last_of.get(settings) == run.id:
                children.close(settings)  # no run left for it: free its memory
    finally:
        children.close()


def _run_one(sweep: Sweep, run: SweepRun, sweep_dir: Path, durations: list[float],
             log: Log, settings: runtime.Settings, children: child_run.ChildPool) -> None:
    from cnnlab import training

    run_dir = sweep_dir / run.id
    prefix = f"[{run.index}/{len(sweep.runs)}] {run.id}"
    if (run_dir / "metrics.json").exists():
        log(f"{prefix}: finished earlier, kept")
        return
    if run_dir.exists():
        shutil.rmtree(run_dir)
        log(f"{prefix}: cleared the unfinished folder of an earlier attempt")
    left = sum(not (sweep_dir / r.id / "metrics.json").exists() for r in sweep.runs)
    runs_left = f"{left} run{'s' if left > 1 else ''} left"
    eta = (f"{runs_left}, about {_duration(statistics.mean(durations) * left)}"
           if durations else f"{runs_left}, time estimate after the first one")
    log(f"{prefix}: {format_overrides(run.overrides)} -- {eta}")
    start = time.monotonic()
    try:
        if settings == runtime.active():
            training.train(run.config, run_dir, log=lambda line: log(f"    {line}"))
        else:  # fixed at TensorFlow's import: another process has them
            children.get(settings).train(run.config, run_dir, lambda line: log(f"    {line}"))
    except (training.TrainingInterrupted, KeyboardInterrupt):
        raise SweepInterrupted(sweep_dir) from None
    except CnnlabError:
        raise
    except Exception as exc:  # one broken run (e.g. out of memory) must not end the sweep
        message = str(exc) if isinstance(exc, child_run.ChildRunFailed) else one_line(exc)
        runs.write_json(run_dir / "error.json", {"status": "failed", "error": message})
        log(f"{prefix}: failed ({message}); the sweep goes on, rerun it to retry this run")
    durations.append(time.monotonic() - start)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _prepare_dir(sweep: Sweep, out: str | Path | None, outputs_root: str | Path
                 ) -> tuple[Path, IO[str]]:
    """A new ``<root>/sweep-<name>-<timestamp>``, or ``out`` (new, empty, or this sweep's),
    with its lock held (the open lock file is returned; closing it releases the lock)."""
    if out is None:
        path = runs.new_run_dir(None, f"sweep-{sweep.name}", outputs_root)
        return path, _lock(path)
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise RunError(f"--out {path}: is a file; give a folder")
    if path.is_dir() and any(p.name != LOCK_NAME for p in path.iterdir()):
        _check_is_sweep_folder(path)
    path.mkdir(parents=True, exist_ok=True)
    lock = _lock(path)
    try:
        if (path / "sweep.yaml").exists():
            _check_resumable(sweep, path)
        _remove_temporaries(path)
    except BaseException:
        lock.close()
        raise
    return path, lock


def _remove_temporaries(sweep_dir: Path) -> None:
    """Delete the temporary files of atomic writes cut short by a kill (``.name.*.tmp``,
    ``.curves.tmp.png``, ``.model.tmp.keras``); safe because this sweep holds the lock."""
    for folder in (sweep_dir, *(p for p in sweep_dir.iterdir() if p.is_dir())):
        for file in folder.glob(".*.tmp*"):
            if file.is_file():
                file.unlink(missing_ok=True)


def _lock(sweep_dir: Path) -> IO[str]:
    """Take ``<sweep_dir>/.lock`` (flock, exclusive, non-blocking); RunError if another
    sweep holds it. The OS releases it when the file is closed or the process dies."""
    handle = open(sweep_dir / LOCK_NAME, "a+", encoding="utf-8")  # held open: the lock
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        raise RunError(f"--out {sweep_dir}: another sweep{f' (pid {holder})' if holder else ''} "
                       "is running in this folder and holds its lock; wait for it to end, "
                       "or use a new --out folder") from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def _check_is_sweep_folder(path: Path) -> None:
    if not (path / "sweep.yaml").exists():
        raise RunError(f"--out {path}: not empty and not a sweep folder (no sweep.yaml); "
                       "choose a new folder")


def _check_resumable(sweep: Sweep, path: Path) -> None:
    record = path / "sweep.yaml"
    if not record.exists():
        raise RunError(f"--out {path}: not empty and not a sweep folder (no sweep.yaml); "
                       "choose a new folder")
    try:
        old = yaml.safe_load(record.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        raise RunError(f"{record}: damaged; choose a new --out folder") from None
    old_ids = [r.get("id") for r in old.get("runs", [])]
    if old_ids != [r.id for r in sweep.runs]:
        raise RunError(f"--out {path}: holds a different sweep ({len(old_ids)} runs: "
                       f"{', '.join(map(str, old_ids[:3]))}...); use the same sweep and --set, "
                       "or a new --out folder")
    for run in sweep.runs:
        if (path / run.id / "metrics.json").exists():
            saved = yaml.safe_load((path / run.id / "config.yaml").read_text(encoding="utf-8"))
            changed = runs.config_differences(saved, run.config.to_dict())
            if changed:
                raise RunError(f"--out {path}: run {run.id} was made with a different config "
                               f"({changed[0]}); use the same sweep and --set, or a new --out "
                               "folder")
