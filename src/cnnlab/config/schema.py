"""Experiment configs: the schema, YAML loading, ``--set`` overrides and validation.

A config is a frozen :class:`Config` with sections (``data``, ``model``, ``train``,
``tracking``) plus ``seed`` and ``name``. Each key is defined once, as a dataclass field
made by :func:`setting` (default, check, one-line meaning); the checks, the "did you
mean" list, ``cnnlab config --keys`` and ``docs/config.md`` are all derived from those
fields. Validation happens here, before any data or TensorFlow is touched, and every
problem is a one-line :class:`ConfigError`.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
import reprlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cnnlab.errors import ConfigError

BUILTIN_CONFIG_DIR = Path(__file__).parent / "builtin"
OPTIMIZERS = ("sgd", "sgd_momentum", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "step", "cosine", "plateau")
ACTIVATIONS = ("relu", "elu", "gelu", "selu", "tanh", "sigmoid", "swish", "leaky_relu",
               "linear")
DEFAULT_MOMENTUM = {"sgd": 0.0, "sgd_momentum": 0.9}
DEFAULT_WEIGHT_DECAY = {"adamw": 0.004}  # Keras' AdamW default


# --- checks: each returns the cleaned value or raises ValueError; .allowed says what passes ---

Check = Callable[[Any], Any]


def _allowing(allowed: str) -> Callable[[Check], Check]:
    """Attach the text of what a check allows (shown in errors and the key reference)."""
    def attach(check: Check) -> Check:
        check.allowed = allowed  # type: ignore[attr-defined]
        return check

    return attach


def _int(minimum: int = 0, maximum: int | None = None) -> Check:
    allowed = f"an integer >= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")

    @_allowing(allowed)
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum or (
                maximum is not None and v > maximum):
            raise ValueError(allowed)
        return v

    return check


MAX_SEED = 2**32 - 1  # numpy and scikit-learn take seeds up to this


def _float(low: float, high: float | None = None, high_inclusive: bool = False) -> Check:
    allowed = f"a number >= {low}" + (
        f" and {'<=' if high_inclusive else '<'} {high}" if high is not None else "")

    @_allowing(allowed)
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
    @_allowing("one of " + ", ".join(map(str, options)))
    def check(v: Any) -> Any:
        if isinstance(v, bool) or v not in options:
            raise ValueError(check.allowed)
        return v

    return check


@_allowing("true or false")
def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("true or false")
    return v


@_allowing("a name of letters, digits, '_', '.' or '-' (no spaces or '/')")
def _name(v: Any) -> str:
    # Keras rejects model names outside [A-Za-z0-9.][A-Za-z0-9_.\\/>-]* (a ValueError at build time)
    if not isinstance(v, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", v):
        raise ValueError(_name.allowed)
    return v


@_allowing("a non-empty string")
def _str(v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise ValueError("a non-empty string")
    return v


def _auto_or(inner: Check) -> Check:
    @_allowing(f"auto or {inner.allowed}")
    def check(v: Any) -> Any:
        if v == "auto":
            return v
        try:
            return inner(v)
        except ValueError:
            raise ValueError(check.allowed) from None

    return check


def _optional(inner: Check) -> Check:
    @_allowing(f"{inner.allowed}, or null")
    def check(v: Any) -> Any:
        return None if v is None else inner(v)

    return check


def _list(inner: Check, min_len: int, allowed: str) -> Check:
    @_allowing(allowed)
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

    @_allowing(allowed)
    def check(v: Any) -> Any:
        if isinstance(v, list | tuple):
            return listed(v)
        try:
            return inner(v)
        except ValueError:
            raise ValueError(allowed) from None

    return check


def _per_conv(inner: Check, allowed: str) -> Check:
    """One value for all blocks, one per block, or per block one list with a value per
    convolution of that block (lengths are checked against model.filters later)."""
    entry = _scalar_or_list(inner, allowed)

    @_allowing(allowed)
    def check(v: Any) -> Any:
        if isinstance(v, list | tuple):
            if not v:
                raise ValueError(allowed)
            return tuple(entry(x) for x in v)
        try:
            return inner(v)
        except ValueError:
            raise ValueError(allowed) from None

    return check


_SHOWN = reprlib.Repr()
_SHOWN.maxstring, _SHOWN.maxother, _SHOWN.maxlevel = 60, 60, 3


def shown(value: Any) -> str:
    """A value as an error message shows it: its repr, shortened (bounded work even for a
    YAML alias bomb)."""
    return _SHOWN.repr(value)


def setting(default: Any, check: Check, meaning: str) -> Any:
    """A config key: its default, its check and what it means, defined in one place."""
    return field(default=default, metadata={"check": check, "meaning": meaning})


# --- the schema ---


@dataclass(frozen=True)
class DataConfig:
    source: str = setting("cifar10", _choice("cifar10", "imagefolder"),
                          "cifar10 (found by the data cascade) or imagefolder")
    path: str | None = setting(
        None, _optional(_str),
        "cifar10: cifar-10-python.tar.gz, cifar-10-batches-py/ or a JPEG class-folder copy; "
        "imagefolder: a folder or tar archive with train/<class>/ and test/<class>/")
    train_size: int | None = setting(
        5000, _optional(_int(1)),
        "training images drawn from the training split (null: all left after validation)")
    val_size: int = setting(1000, _int(1), "validation images drawn from the training split "
                            "(stratified, seeded)")
    test_size: int | None = setting(
        2000, _optional(_int(1)),
        "test images drawn from the test split (stratified, seeded; null: all)")
    image_size: tuple[int, int] | None = setting(
        None, _optional(_list(_int(1), 2, "[height, width], two positive integers")),
        "imagefolder: resize every image to [height, width]; null requires one size")
    channels: int | None = setting(
        None, _optional(_choice(1, 3, 4)),
        "imagefolder: 1, 3 or 4; null takes the first image's")
    split_seed: int | None = setting(
        None, _optional(_int(0, MAX_SEED)),
        "seeds the train/validation/test draw; null: the config's seed (sweep repeats fix it "
        "so every repeat sees the same split)")
    download: bool = setting(True, _bool, "cifar10: try Keras' download when no local copy "
                             "is found")
    cache: bool = setting(True, _bool, "cache decoded arrays, keyed by the source's content "
                          "fingerprint")
    cache_dir: str | None = setting(None, _optional(_str),
                                    "cache folder; null: $CNNLAB_CACHE_DIR or ~/.cache/cnnlab")
    max_pixels: int | None = setting(
        89_478_485, _optional(_int(1)),
        "largest image (width x height) any reader decodes; bigger ones (decompression bombs) "
        "are refused from their header, before decoding (null: no limit)")


_PER_BLOCK = "or one per block"
_PER_CONV = "one per block, or per block a list with one per convolution"


@dataclass(frozen=True)
class ModelConfig:
    filters: tuple[int | tuple[int, ...], ...] = setting(
        (8,), _list(_scalar_or_list(_int(1), ""), 1,
                    "a non-empty list with, per conv block, a positive integer or a list of "
                    "them (one per convolution)"),
        "filters of each conv block; one block per entry; a list entry makes a VGG-style "
        "block of several convolutions, e.g. [[32, 32], [64, 64]]")
    kernel_size: int | tuple[Any, ...] = setting(
        3, _per_conv(_int(1), f"a positive integer, {_PER_CONV}"), "conv kernel size")
    padding: str | tuple[Any, ...] = setting(
        "same", _per_conv(_choice("same", "valid"), f"same or valid, {_PER_CONV}"),
        "conv padding")
    activation: str | tuple[Any, ...] = setting(
        "relu", _per_conv(_choice(*ACTIVATIONS),
                          "one of " + ", ".join(ACTIVATIONS) + f"; {_PER_CONV}"),
        "conv activation")
    pool_size: int | tuple[int, ...] = setting(
        2, _scalar_or_list(_int(0), f"an integer >= 0 {_PER_BLOCK}"),
        "pooling window after each block (0: no pooling)")
    pooling: str = setting("max", _choice("max", "average"), "pooling kind")
    dense: tuple[int, ...] = setting(
        (64,), _list(_int(1), 0, "a list of positive integers (hidden dense widths)"),
        "widths of the hidden dense layers ([]: none)")
    dense_activation: str = setting("relu", _choice(*ACTIVATIONS),
                                    "activation of the hidden dense layers")
    conv_dropout: float | None = setting(None, _optional(_float(0.0, 1.0)),
                                         "dropout rate after each conv block (null: no layer)")
    dropout_after_pool: bool = setting(False, _bool, "a block's dropout after its pooling "
                                       "(as Keras' CIFAR-10 example) instead of before")
    dense_dropout: float | None = setting(None, _optional(_float(0.0, 1.0)),
                                          "dropout rate after each hidden dense layer")
    output_dropout: float | None = setting(
        None, _optional(_float(0.0, 1.0)),
        "dropout after the softmax output (only to reproduce the report's baseline layout)")
    l2: float = setting(0.0, _float(0.0), "L2 factor on every conv and dense kernel")
    l1: float = setting(0.0, _float(0.0), "L1 factor on every conv and dense kernel (with "
                        "l2: both)")
    global_pool: bool = setting(False, _bool, "global average pooling instead of Flatten "
                                "before the dense layers")
    batch_norm: bool = setting(False, _bool, "conv -> BatchNormalization -> activation in "
                               "every block")
    augment: bool = setting(False, _bool, "random horizontal flips and shifts (<= 10 %) after "
                            "the input, in training only")

    def per_block(self, key: str) -> list[Any]:
        """The value of a per-block key (scalar or list) expanded to one entry per block."""
        value = getattr(self, key)
        if isinstance(value, tuple):
            return list(value)
        return [value] * len(self.filters)

    def convs(self) -> list[tuple[int, ...]]:
        """The filters of each convolution, one tuple per block."""
        return [f if isinstance(f, tuple) else (f,) for f in self.filters]

    def per_conv(self, key: str) -> list[list[Any]]:
        """A per-conv key expanded to one list per block with a value per convolution."""
        return [list(v) if isinstance(v, tuple) else [v] * len(block)
                for v, block in zip(self.per_block(key), self.convs(), strict=True)]


@dataclass(frozen=True)
class TrainConfig:
    optimizer: str = setting("sgd", _choice(*OPTIMIZERS), "the optimizer")
    learning_rate: float = setting(0.01, _float(0.0), "learning rate (the peak, with a "
                                   "schedule)")
    momentum: float | None = setting(
        None, _optional(_float(0.0, 1.0)),
        "SGD momentum; null: 0.0 for sgd, 0.9 for sgd_momentum; refused for the others")
    nesterov: bool = setting(False, _bool, "Nesterov momentum (sgd_momentum, or sgd with "
                             "momentum > 0)")
    weight_decay: float | None = setting(
        None, _optional(_float(0.0)),
        "decoupled weight decay; null: 0.004 for adamw, none for the others")
    schedule: str = setting("constant", _choice(*SCHEDULES),
                            "learning-rate schedule over epochs (see docs/training.md)")
    warmup_epochs: int = setting(0, _int(0), "linear warm-up to learning_rate over the "
                                 "first epochs (any schedule)")
    schedule_every: int = setting(10, _int(1), "step: epochs between two decays")
    schedule_factor: float = setting(0.1, _float(0.0, 1.0),
                                     "step, plateau: the factor of each decay")
    min_learning_rate: float = setting(0.0, _float(0.0), "cosine, plateau: the floor")
    schedule_patience: int = setting(3, _int(1), "plateau: epochs without a lower "
                                     "validation loss before a decay")
    label_smoothing: float = setting(0.0, _float(0.0, 1.0), "label smoothing of the "
                                     "training loss")
    mixed_precision: bool | str = setting(
        "auto", _auto_or(_bool),
        "float16 compute with float32 weights; auto: on with a GPU, off on a CPU (slower "
        "there)")
    batch_size: int = setting(32, _int(1), "batch size")
    epochs: int = setting(20, _int(1), "epochs")
    early_stopping: int | None = setting(
        None, _optional(_int(1)),
        "patience in epochs on validation loss (null: off); the checkpoint stays the best "
        "by validation accuracy")
    shuffle: bool = setting(True, _bool, "shuffle the training set: one order drawn from "
                            "the seed, the same every epoch (as Keras' fit does under a seed)")
    deterministic: bool = setting(True, _bool, "TensorFlow op determinism (bit-identical "
                                  "reruns)")
    verbose: int = setting(2, _choice(0, 1, 2), "Keras progress: 0 silent, 1 progress bar, "
                           "2 one line per epoch")
    steps_per_execution: int | str = setting(
        "auto", _auto_or(_int(1)),
        "optimizer steps per call into the compiled graph; auto: a whole epoch per call (its "
        "batches, and the validation's, then sliced inside the graph: same results, faster on a "
        "CPU)")
    onednn: bool | str = setting(
        "auto", _auto_or(_bool),
        "TensorFlow's oneDNN CPU kernels; auto: $TF_ENABLE_ONEDNN_OPTS if set, else on from "
        "batch 4 up")
    threads: int | str = setting(
        "auto", _auto_or(_int(0)),
        "TensorFlow op threads, 0 = all cores; auto: $TF_NUM_INTRAOP_THREADS if set, else 1 "
        "up to batch 8")
    distribute: str = setting(
        "none", _choice("none", "mirrored"),
        "mirrored: tf.distribute.MirroredStrategy over the visible devices; batch_size is "
        "the global batch")


@dataclass(frozen=True)
class TrackingConfig:
    tensorboard: bool = setting(True, _bool, "write RUN_DIR/tensorboard/ event files")
    mlflow: bool = setting(False, _bool, 'log to MLflow (pip install "cnnlab[mlflow]")')
    uri: str | None = setting(None, _optional(_str), "MLflow tracking URI; null: "
                              "$MLFLOW_TRACKING_URI, else sqlite:///outputs/mlflow.db")
    experiment: str | None = setting(None, _optional(_str),
                                     "MLflow experiment; null: the sweep's or config's name")


SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig,
            "tracking": TrackingConfig}


@dataclass(frozen=True)
class Config:
    name: str = setting("run", _name, "run name (default: the config file's name), used in "
                        "the run folder's name and plot titles")
    seed: int = setting(0, _int(0, MAX_SEED), "seeds weights, shuffling, augmentation and (unless "
                        "data.split_seed is set) the train/validation/test draw")
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists, not tuples), ready for YAML or JSON."""
        return _plain(dataclasses.asdict(self))

    def to_yaml(self) -> str:
        return yaml.dump(self.to_dict(), Dumper=_FlowListDumper, sort_keys=False)


def _keys_of(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if "check" in f.metadata}


# Derived from the dataclasses: "" holds the top-level keys.
FIELDS: dict[str, dict[str, dataclasses.Field]] = {
    "": _keys_of(Config), **{name: _keys_of(cls) for name, cls in SECTIONS.items()}}
SCHEMA: dict[str, dict[str, Check]] = {
    section: {k: f.metadata["check"] for k, f in keys.items()} for section, keys in FIELDS.items()}
ALL_KEYS = [f"{s}.{k}" if s else k for s, keys in SCHEMA.items() for k in keys] + list(SECTIONS)


class _FlowListDumper(yaml.SafeDumper):
    """Block-style mappings, lists on one line: ``filters: [8, 16, 32]``."""


_FlowListDumper.add_representer(
    list, lambda dumper, data: dumper.represent_sequence(
        "tag:yaml.org,2002:seq", data, flow_style=True))


def format_value(value: Any) -> str:
    """A value as YAML flow text: ``[8, 16]``, ``true``, ``null``, ``0.001``."""
    text = yaml.safe_dump(_plain(value), default_flow_style=True, width=10**6)
    return text.strip().removesuffix("...").strip()


def reference() -> str:
    """Every config key as a Markdown table (``cnnlab config --keys``, ``docs/config.md``)."""
    lines = ["| key | default | allowed | meaning |", "|---|---|---|---|"]
    for section, keys in FIELDS.items():
        for key, spec in keys.items():
            dotted = f"{section}.{key}" if section else key
            cells = [f"`{dotted}`", f"`{format_value(spec.default)}`",
                     spec.metadata["check"].allowed, spec.metadata["meaning"]]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


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
                    f"{origin}: '{key}' must be a mapping of keys, got {shown(value)}; "
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
            raise ConfigError(f"{dotted}: got {shown(value)}; expected {allowed}") from None
    return cleaned


def _cross_checks(model: ModelConfig, train: TrainConfig) -> TrainConfig:
    _check_per_conv(model)
    return dataclasses.replace(train, momentum=_momentum(train),
                               weight_decay=_weight_decay(train))


def _check_per_conv(model: ModelConfig) -> None:
    convs = model.convs()
    for key in ("kernel_size", "padding", "activation", "pool_size"):  # pool: per block only
        value = getattr(model, key)
        if isinstance(value, tuple) and len(value) != len(convs):
            raise ConfigError(
                f"model.{key}: got {_plain(value)} ({len(value)} entries) but model.filters "
                f"has {len(convs)} blocks; give one value for all blocks or one per block")
        for i, (entry, block) in enumerate(zip(model.per_block(key), convs, strict=True), 1):
            if isinstance(entry, tuple) and len(entry) != len(block):
                raise ConfigError(
                    f"model.{key}: block {i} has {len(entry)} values {_plain(entry)} but "
                    f"{len(block)} convolutions in model.filters; give one per convolution")


def _momentum(train: TrainConfig) -> float | None:
    momentum = train.momentum
    if train.optimizer in DEFAULT_MOMENTUM:
        momentum = DEFAULT_MOMENTUM[train.optimizer] if momentum is None else momentum
        if train.nesterov and momentum == 0:
            raise ConfigError("train.nesterov: true needs momentum; use optimizer "
                              "sgd_momentum or set train.momentum above 0")
        return momentum
    if momentum is not None:
        raise ConfigError(
            f"train.momentum: got {momentum} but optimizer '{train.optimizer}' has no momentum; "
            "remove it or use optimizer sgd_momentum")
    if train.nesterov:
        raise ConfigError(f"train.nesterov: optimizer '{train.optimizer}' has no Nesterov "
                          "momentum; remove it or use optimizer sgd_momentum")
    return None


def _weight_decay(train: TrainConfig) -> float | None:
    if train.weight_decay is None:
        return DEFAULT_WEIGHT_DECAY.get(train.optimizer)
    return train.weight_decay


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
            f"--set {key}: cannot read value {shown(value_text)} as YAML ({problem})"
        ) from None
    return key, value


def check_key(key: Any, where: str) -> str:
    """``key`` if it is a dotted config key (``train.epochs``, ``seed``); else ConfigError
    with a "did you mean" hint."""
    if not isinstance(key, str):
        raise ConfigError(f"{where}: key {shown(key)} is not a dotted config key like "
                          "train.epochs")
    section, _, leaf = key.rpartition(".")
    if key in SCHEMA[""] or (section in SECTIONS and leaf in SCHEMA[section]):
        return key
    if key in SECTIONS:
        raise ConfigError(f"{where}: '{key}' is a section; give one of its keys, e.g. "
                          f"{next(k for k in ALL_KEYS if k.startswith(key + '.'))}")
    raise ConfigError(f"{where}: unknown key '{key}'; {closest_key(key)}")


def check_name(value: Any, where: str) -> str:
    """A run, sweep or variant name usable in folder names; ConfigError otherwise."""
    try:
        return _name(value)
    except ValueError as allowed:
        raise ConfigError(f"{where}: got {shown(value)}; expected {allowed}") from None


def overrides_to_dict(overrides: Iterable[str] | Mapping[str, Any],
                      where: str = "--set") -> dict[str, Any]:
    """Turn ``["a.b=1", ...]`` (or ``{"a.b": 1}``) into a nested dict; keys are checked."""
    pairs = overrides.items() if isinstance(overrides, Mapping) else map(parse_override, overrides)
    nested: dict[str, Any] = {}
    for key, value in pairs:
        if key not in SECTIONS:  # a whole section is checked as a mapping by load_config
            check_key(key, f"{where} {key}" if where == "--set" else where)
        parts = key.split(".")
        target = nested
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(f"{where} {key}: '{part}' was set to {shown(target)} by an "
                                  f"earlier {where}; set keys of a section, not the section")
        target[parts[-1]] = value
    return nested


def resolve_path(name_or_path: str | Path, builtin_dir: Path, what: str) -> Path:
    """A YAML file path as given, or a built-in one by name (``best``, ``batch-size``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; give a {what} YAML file")
    builtin = builtin_dir / f"{path.stem if path.suffix else path.name}.yaml"
    if path.parent == Path(".") and builtin.exists():
        return builtin
    known = sorted(p.stem for p in builtin_dir.glob("*.yaml"))
    close = difflib.get_close_matches(path.stem, known, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if path.parent == Path(".") and close else ""
    raise ConfigError(f"{path}: no such {what} file; {hint}give a YAML path or a built-in "
                      f"{what} name ({', '.join(known)})")


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A config path as given, or a built-in config by name (``best``, ``baseline``)."""
    return resolve_path(name_or_path, BUILTIN_CONFIG_DIR, "config")


def read_yaml(path: Path) -> Any:
    """Safe-load a YAML file; syntax errors name the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the file as "
                          "UTF-8 YAML") from None
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
