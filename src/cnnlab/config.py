"""Experiment configs: defaults, YAML loading, ``--set`` overrides and validation.

A config is a frozen :class:`Config` with three sections (``data``, ``model``,
``train``) plus ``seed`` and ``name``. Every key has a default, so a YAML file
names only what differs. Validation happens here, before any data or
TensorFlow is touched, and every problem is a one-line :class:`ConfigError`.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cnnlab.errors import ConfigError

BUILTIN_CONFIG_DIR = Path(__file__).parent / "configs"
OPTIMIZERS = ("sgd", "sgd_momentum", "adam", "rmsprop")
DEFAULT_MOMENTUM = {"sgd": 0.0, "sgd_momentum": 0.9}


@dataclass(frozen=True)
class DataConfig:
    source: str = "cifar10"
    path: str | None = None
    train_size: int | None = 5000
    val_size: int = 1000
    test_size: int | None = 2000
    image_size: tuple[int, int] | None = None
    channels: int | None = None
    download: bool = True
    cache: bool = True
    cache_dir: str | None = None


@dataclass(frozen=True)
class ModelConfig:
    filters: tuple[int, ...] = (8,)
    kernel_size: int | tuple[int, ...] = 3
    padding: str | tuple[str, ...] = "same"
    activation: str | tuple[str, ...] = "relu"
    pool_size: int | tuple[int, ...] = 2
    pooling: str = "max"
    dense: tuple[int, ...] = (64,)
    dense_activation: str = "relu"
    conv_dropout: float | None = None
    dense_dropout: float | None = None
    output_dropout: float | None = None
    l2: float = 0.0
    batch_norm: bool = False
    augment: bool = False

    def per_block(self, key: str) -> list[Any]:
        """The value of a per-block key (scalar or list) expanded to one entry per block."""
        value = getattr(self, key)
        if isinstance(value, tuple):
            return list(value)
        return [value] * len(self.filters)


@dataclass(frozen=True)
class TrainConfig:
    optimizer: str = "sgd"
    learning_rate: float = 0.01
    momentum: float | None = None
    batch_size: int = 32
    epochs: int = 20
    early_stopping: int | None = None
    shuffle: bool = True
    deterministic: bool = True
    verbose: int = 2
    steps_per_execution: int | str = "auto"
    onednn: bool | str = "auto"  # oneDNN kernels; auto: on from batch 4 up (cnnlab.runtime)
    threads: int | str = "auto"  # TensorFlow op threads, 0 = all cores; auto: 1 up to batch 8
    distribute: str = "none"  # mirrored: tf.distribute.MirroredStrategy; batch_size is global


@dataclass(frozen=True)
class TrackingConfig:
    tensorboard: bool = True  # RUN_DIR/tensorboard/ event files
    mlflow: bool = False  # needs pip install "cnnlab[mlflow]"
    uri: str | None = None  # else $MLFLOW_TRACKING_URI, else sqlite:///outputs/mlflow.db
    experiment: str | None = None  # else the sweep's name (runs of a sweep) or the config name


@dataclass(frozen=True)
class Config:
    name: str = "run"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists, not tuples), ready for YAML or JSON."""
        return _plain(dataclasses.asdict(self))

    def to_yaml(self) -> str:
        return yaml.dump(self.to_dict(), Dumper=_FlowListDumper, sort_keys=False)


class _FlowListDumper(yaml.SafeDumper):
    """Block-style mappings, lists on one line: ``filters: [8, 16, 32]``."""


_FlowListDumper.add_representer(
    list, lambda dumper, data: dumper.represent_sequence(
        "tag:yaml.org,2002:seq", data, flow_style=True))


# --- validators: each returns the cleaned value or raises ValueError(what is allowed) ---

Check = Callable[[Any], Any]


def _int(minimum: int = 0) -> Check:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise ValueError(f"an integer >= {minimum}")
        return v

    return check


def _float(low: float, high: float | None = None, high_inclusive: bool = False) -> Check:
    allowed = f"a number >= {low}" + (
        f" and {'<=' if high_inclusive else '<'} {high}" if high is not None else ""
    )

    def check(v: Any) -> float:
        if isinstance(v, str):  # PyYAML reads 1e-3 (no dot) as a string
            try:
                v = float(v)
            except ValueError:
                raise ValueError(allowed) from None
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError(allowed)
        v = float(v)
        if v != v or v < low or (high is not None and (v > high if high_inclusive else v >= high)):
            raise ValueError(allowed)
        return v

    return check


def _choice(*options: Any) -> Check:
    def check(v: Any) -> Any:
        if isinstance(v, bool) or v not in options:
            raise ValueError("one of " + ", ".join(map(str, options)))
        return v

    return check


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("true or false")
    return v


def _name(v: Any) -> str:
    # Keras rejects model names outside [A-Za-z0-9.][A-Za-z0-9_.\\/>-]* (a ValueError at build time)
    if not isinstance(v, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", v):
        raise ValueError("a name of letters, digits, '_', '.' or '-' (no spaces or '/')")
    return v


def _str(v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise ValueError("a non-empty string")
    return v


def _auto_or(inner: Check) -> Check:
    def check(v: Any) -> Any:
        if v == "auto":
            return v
        try:
            return inner(v)
        except ValueError as allowed:
            raise ValueError(f"auto or {allowed}") from None

    return check


def _optional(inner: Check) -> Check:
    def check(v: Any) -> Any:
        return None if v is None else inner(v)

    return check


def _list(inner: Check, min_len: int, allowed: str) -> Check:
    def check(v: Any) -> tuple:
        if not isinstance(v, list | tuple) or len(v) < min_len:
            raise ValueError(allowed)
        try:
            return tuple(inner(x) for x in v)
        except ValueError:
            raise ValueError(allowed) from None

    return check


def _scalar_or_list(inner: Check, allowed: str) -> Check:
    listed = _list(inner, 1, allowed)

    def check(v: Any) -> Any:
        if isinstance(v, list | tuple):
            return listed(v)
        try:
            return inner(v)
        except ValueError:
            raise ValueError(allowed) from None

    return check


_ACTIVATIONS = ("relu", "elu", "gelu", "selu", "tanh", "sigmoid", "swish", "leaky_relu", "linear")

SCHEMA: dict[str, dict[str, Check]] = {
    "": {"name": _name, "seed": _int(0)},
    "data": {
        "source": _choice("cifar10", "imagefolder"),
        "path": _optional(_str),
        "train_size": _optional(_int(1)),
        "val_size": _int(1),
        "test_size": _optional(_int(1)),
        "image_size": _optional(_list(_int(1), 2, "[height, width], two positive integers")),
        "channels": _optional(_choice(1, 3, 4)),
        "download": _bool,
        "cache": _bool,
        "cache_dir": _optional(_str),
    },
    "model": {
        "filters": _list(_int(1), 1, "a non-empty list of positive integers, one per conv block"),
        "kernel_size": _scalar_or_list(_int(1), "a positive integer or one per block"),
        "padding": _scalar_or_list(_choice("same", "valid"), "same or valid, or one per block"),
        "activation": _scalar_or_list(
            _choice(*_ACTIVATIONS), "one of " + ", ".join(_ACTIVATIONS) + ", or one per block"
        ),
        "pool_size": _scalar_or_list(_int(0), "an integer >= 0 (0 = no pooling) or one per block"),
        "pooling": _choice("max", "average"),
        "dense": _list(_int(1), 0, "a list of positive integers (hidden dense widths)"),
        "dense_activation": _choice(*_ACTIVATIONS),
        "conv_dropout": _optional(_float(0.0, 1.0)),
        "dense_dropout": _optional(_float(0.0, 1.0)),
        "output_dropout": _optional(_float(0.0, 1.0)),
        "l2": _float(0.0),
        "batch_norm": _bool,
        "augment": _bool,
    },
    "train": {
        "optimizer": _choice(*OPTIMIZERS),
        "learning_rate": _float(0.0),
        "momentum": _optional(_float(0.0, 1.0)),
        "batch_size": _int(1),
        "epochs": _int(1),
        "early_stopping": _optional(_int(1)),
        "shuffle": _bool,
        "deterministic": _bool,
        "verbose": _choice(0, 1, 2),
        "steps_per_execution": _auto_or(_int(1)),
        "onednn": _auto_or(_bool),
        "threads": _auto_or(_int(0)),
        "distribute": _choice("none", "mirrored"),
    },
    "tracking": {
        "tensorboard": _bool,
        "mlflow": _bool,
        "uri": _optional(_str),
        "experiment": _optional(_str),
    },
}
SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig,
            "tracking": TrackingConfig}
ALL_KEYS = [f"{s}.{k}" if s else k for s, keys in SCHEMA.items() for k in keys] + list(SECTIONS)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def closest_key(key: str) -> str:
    """A 'did you mean ...?' hint for an unknown dotted key."""
    match = difflib.get_close_matches(key, ALL_KEYS, n=1, cutoff=0.5)
    if not match:
        leaf = key.rsplit(".", 1)[-1]
        match = [k for k in ALL_KEYS if k.rsplit(".", 1)[-1] == leaf][:1]
    return (f"did you mean '{match[0]}'?" if match
            else "valid sections: data, model, train, tracking")


def _check_keys(raw: Mapping[str, Any], origin: str) -> None:
    for key, value in raw.items():
        if key in SECTIONS:
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"{origin}: '{key}' must be a mapping of keys, got {value!r}; "
                    f"write e.g. '{key}:' followed by indented 'key: value' lines"
                )
            for sub in value:
                if sub not in SCHEMA[key]:
                    raise ConfigError(
                        f"{origin}: unknown key '{key}.{sub}'; {closest_key(f'{key}.{sub}')}"
                    )
        elif key not in SCHEMA[""]:
            raise ConfigError(f"{origin}: unknown key '{key}'; {closest_key(str(key))}")


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``update`` into a copy of ``base`` (nested dicts merged, the rest replaced)."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _validate_section(section: str, values: Mapping[str, Any]) -> dict[str, Any]:
    cleaned = {}
    for key, value in values.items():
        dotted = f"{section}.{key}" if section else key
        try:
            cleaned[key] = SCHEMA[section][key](value)
        except ValueError as allowed:
            raise ConfigError(f"{dotted}: got {value!r}; expected {allowed}") from None
    return cleaned


def _cross_checks(model: ModelConfig, train: TrainConfig) -> TrainConfig:
    blocks = len(model.filters)
    for key in ("kernel_size", "padding", "activation", "pool_size"):
        value = getattr(model, key)
        if isinstance(value, tuple) and len(value) != blocks:
            raise ConfigError(
                f"model.{key}: got {list(value)} ({len(value)} entries) but model.filters has "
                f"{blocks} blocks; give one value for all blocks or one per block"
            )
    momentum = train.momentum
    if train.optimizer in DEFAULT_MOMENTUM:
        if momentum is None:
            momentum = DEFAULT_MOMENTUM[train.optimizer]
    elif momentum is not None:
        raise ConfigError(
            f"train.momentum: got {momentum} but optimizer '{train.optimizer}' has no momentum; "
            "remove it or use optimizer sgd_momentum"
        )
    return dataclasses.replace(train, momentum=momentum)


def config_from_dict(raw: Mapping[str, Any], origin: str = "config") -> Config:
    """Validate a nested dict (keys as in the YAML file) and return a resolved Config."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{origin}: expected a mapping of keys (data, model, train, ...), "
                          f"got {type(raw).__name__}")
    _check_keys(raw, origin)
    top = _validate_section("", {k: v for k, v in raw.items() if k not in SECTIONS})
    sections = {
        name: cls(**_validate_section(name, raw.get(name) or {}))
        for name, cls in SECTIONS.items()
    }
    sections["train"] = _cross_checks(sections["model"], sections["train"])
    return Config(**top, **sections)


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one ``--set KEY=VALUE``; the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set '{text}': expected KEY=VALUE, e.g. --set train.epochs=5")
    key, _, value_text = text.partition("=")
    key = key.strip()
    if not key:
        raise ConfigError(f"--set '{text}': the key is empty; e.g. --set train.epochs=5")
    try:
        value = yaml.safe_load(value_text) if value_text.strip() else None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            f"--set {key}: cannot read value {value_text!r} as YAML ({problem})"
        ) from None
    return key, value


def overrides_to_dict(overrides: Iterable[str] | Mapping[str, Any]) -> dict[str, Any]:
    """Turn ``["a.b=1", ...]`` (or ``{"a.b": 1}``) into a nested dict."""
    pairs = overrides.items() if isinstance(overrides, Mapping) else map(parse_override, overrides)
    nested: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.split(".")
        if len(parts) > 2 or (len(parts) == 2 and parts[0] not in SECTIONS):
            raise ConfigError(f"--set {key}: unknown key; {closest_key(key)}")
        target = nested
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return nested


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A config path as given, or a built-in config by name (``best``, ``baseline``)."""
    path = Path(name_or_path)
    if path.exists():
        if path.is_dir():
            raise ConfigError(f"{path}: is a folder; give a YAML config file")
        return path
    builtin = BUILTIN_CONFIG_DIR / f"{path.stem if path.suffix else path.name}.yaml"
    if path.parent == Path(".") and builtin.exists():
        return builtin
    names = ", ".join(sorted(p.stem for p in BUILTIN_CONFIG_DIR.glob("*.yaml")))
    raise ConfigError(f"{path}: no such config file; give a YAML path or a built-in name ({names})")


def read_yaml(path: Path) -> Any:
    """Safe-load a YAML file; syntax errors name the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path} line {mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{where}: YAML syntax error: {problem}; fix the file") from None


def load_config(
    path: str | Path | None = None,
    overrides: Iterable[str] | Mapping[str, Any] = (),
) -> Config:
    """Load a YAML config (or only defaults when ``path`` is None) and apply overrides."""
    raw: dict[str, Any] = {}
    origin = "config"
    if path is not None:
        resolved = resolve_config_path(path)
        origin = str(path)
        loaded = read_yaml(resolved)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, Mapping):
            raise ConfigError(
                f"{path}: expected a mapping of keys (data, model, train, ...), "
                f"got a {type(loaded).__name__}"
            )
        raw = dict(loaded)
        raw.setdefault("name", resolved.stem)
    update = overrides_to_dict(overrides)
    _check_keys(update, "--set")
    return config_from_dict(merge(raw, update), origin)
