"""Experiment configs: the schema (each key once) and validation.

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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from cnnlab.config.checks import (
    MAX_SEED,
    Check,
    auto_or,
    flag,
    identifier,
    list_of,
    number,
    one_of,
    optional,
    per_conv,
    plain,
    scalar_or_list,
    setting,
    shown,
    text,
    whole,
)
from cnnlab.errors import ConfigError

OPTIMIZERS = ("sgd", "sgd_momentum", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "step", "cosine", "plateau")
ACTIVATIONS = ("relu", "elu", "gelu", "selu", "tanh", "sigmoid", "swish", "leaky_relu",
               "linear")
DEFAULT_MOMENTUM = {"sgd": 0.0, "sgd_momentum": 0.9}
DEFAULT_WEIGHT_DECAY = {"adamw": 0.004}  # Keras' AdamW default


@dataclass(frozen=True)
class DataConfig:
    source: str = setting("cifar10", one_of("cifar10", "imagefolder"),
                          "cifar10 (found by the data cascade) or imagefolder")
    path: str | None = setting(
        None, optional(text),
        "cifar10: cifar-10-python.tar.gz, cifar-10-batches-py/ or a JPEG class-folder copy; "
        "imagefolder: a folder or tar archive with train/<class>/ and test/<class>/")
    train_size: int | None = setting(
        5000, optional(whole(1)),
        "training images drawn from the training split (null: all left after validation)")
    val_size: int = setting(1000, whole(1), "validation images drawn from the training split "
                            "(stratified, seeded)")
    test_size: int | None = setting(
        2000, optional(whole(1)),
        "test images drawn from the test split (stratified, seeded; null: all)")
    image_size: tuple[int, int] | None = setting(
        None, optional(list_of(whole(1), 2, "[height, width], two positive integers")),
        "imagefolder: resize every image to [height, width]; null requires one size")
    channels: int | None = setting(
        None, optional(one_of(1, 3, 4)),
        "imagefolder: 1, 3 or 4; null takes the first image's")
    split_seed: int | None = setting(
        None, optional(whole(0, MAX_SEED)),
        "seeds the train/validation/test draw; null: the config's seed (sweep repeats fix it "
        "so every repeat sees the same split, unless the sweep's vary_split is on)")
    download: bool = setting(True, flag, "cifar10: try Keras' download when no local copy "
                             "is found")
    cache: bool = setting(True, flag, "cache decoded arrays, keyed by the source's content "
                          "fingerprint")
    cache_dir: str | None = setting(None, optional(text),
                                    "cache folder; null: $CNNLAB_CACHE_DIR or ~/.cache/cnnlab")
    max_pixels: int | None = setting(
        89_478_485, optional(whole(1)),
        "largest image (width x height) any reader decodes; bigger ones (decompression bombs) "
        "are refused from their header, before decoding (null: no limit)")


_PER_BLOCK = "or one per block"
_PER_CONV = "one per block, or per block a list with one per convolution"


@dataclass(frozen=True)
class ModelConfig:
    filters: tuple[int | tuple[int, ...], ...] = setting(
        (8,), list_of(scalar_or_list(whole(1), ""), 1,
                    "a non-empty list with, per conv block, a positive integer or a list of "
                    "them (one per convolution)"),
        "filters of each conv block; one block per entry; a list entry makes a VGG-style "
        "block of several convolutions, e.g. [[32, 32], [64, 64]]")
    kernel_size: int | tuple[Any, ...] = setting(
        3, per_conv(whole(1), f"a positive integer, {_PER_CONV}"), "conv kernel size")
    padding: str | tuple[Any, ...] = setting(
        "same", per_conv(one_of("same", "valid"), f"same or valid, {_PER_CONV}"),
        "conv padding")
    activation: str | tuple[Any, ...] = setting(
        "relu", per_conv(one_of(*ACTIVATIONS),
                          "one of " + ", ".join(ACTIVATIONS) + f"; {_PER_CONV}"),
        "conv activation")
    pool_size: int | tuple[int, ...] = setting(
        2, scalar_or_list(whole(0), f"an integer >= 0 {_PER_BLOCK}"),
        "pooling window after each block (0: no pooling)")
    pooling: str = setting("max", one_of("max", "average"), "pooling kind")
    dense: tuple[int, ...] = setting(
        (64,), list_of(whole(1), 0, "a list of positive integers (hidden dense widths)"),
        "widths of the hidden dense layers ([]: none)")
    dense_activation: str = setting("relu", one_of(*ACTIVATIONS),
                                    "activation of the hidden dense layers")
    conv_dropout: float | None = setting(None, optional(number(0.0, 1.0)),
                                         "dropout rate after each conv block (null: no layer)")
    dropout_after_pool: bool = setting(False, flag, "a block's dropout after its pooling "
                                       "(as Keras' CIFAR-10 example) instead of before")
    dense_dropout: float | None = setting(None, optional(number(0.0, 1.0)),
                                          "dropout rate after each hidden dense layer")
    output_dropout: float | None = setting(
        None, optional(number(0.0, 1.0)),
        "dropout after the softmax output (only to reproduce the report's baseline layout)")
    l2: float = setting(0.0, number(0.0), "L2 factor on every conv and dense kernel")
    l1: float = setting(0.0, number(0.0), "L1 factor on every conv and dense kernel (with "
                        "l2: both)")
    global_pool: bool = setting(False, flag, "global average pooling instead of Flatten "
                                "before the dense layers")
    batch_norm: bool = setting(False, flag, "conv -> BatchNormalization -> activation in "
                               "every block")
    augment: bool = setting(False, flag, "random horizontal flips and shifts (<= 10 %) after "
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
    optimizer: str = setting("sgd", one_of(*OPTIMIZERS), "the optimizer")
    learning_rate: float = setting(0.01, number(0.0), "learning rate (the peak, with a "
                                   "schedule)")
    momentum: float | None = setting(
        None, optional(number(0.0, 1.0)),
        "SGD momentum; null: 0.0 for sgd, 0.9 for sgd_momentum; refused for the others")
    nesterov: bool = setting(False, flag, "Nesterov momentum (sgd_momentum, or sgd with "
                             "momentum > 0)")
    weight_decay: float | None = setting(
        None, optional(number(0.0)),
        "decoupled weight decay; null: 0.004 for adamw, none for the others")
    schedule: str = setting("constant", one_of(*SCHEDULES),
                            "learning-rate schedule over epochs (see docs/training.md)")
    warmup_epochs: int = setting(0, whole(0), "linear warm-up to learning_rate over the "
                                 "first epochs (any schedule)")
    schedule_every: int = setting(10, whole(1), "step: epochs between two decays")
    schedule_factor: float = setting(0.1, number(0.0, 1.0),
                                     "step, plateau: the factor of each decay")
    min_learning_rate: float = setting(0.0, number(0.0), "cosine, plateau: the floor")
    schedule_patience: int = setting(3, whole(1), "plateau: epochs without a lower "
                                     "validation loss before a decay")
    label_smoothing: float = setting(0.0, number(0.0, 1.0), "label smoothing of the "
                                     "training loss")
    mixed_precision: bool | str = setting(
        "auto", auto_or(flag),
        "float16 compute with float32 weights; auto: on with a GPU, off on a CPU (slower "
        "there)")
    batch_size: int = setting(32, whole(1), "batch size")
    epochs: int = setting(20, whole(1), "epochs")
    early_stopping: int | None = setting(
        None, optional(whole(1)),
        "patience in epochs on validation loss (null: off); the checkpoint stays the best "
        "by validation accuracy")
    shuffle: bool = setting(True, flag, "shuffle the training set before every epoch: "
                            "each epoch's order drawn from the seed and the epoch (resumable)")
    deterministic: bool = setting(True, flag, "TensorFlow op determinism (bit-identical "
                                  "reruns)")
    verbose: int = setting(2, one_of(0, 1, 2), "Keras progress: 0 silent, 1 progress bar, "
                           "2 one line per epoch")
    steps_per_execution: int | str = setting(
        "auto", auto_or(whole(1)),
        "optimizer steps per call into the compiled graph; auto: a whole epoch per call (its "
        "batches, and the validation's, then sliced inside the graph: same results, faster on a "
        "CPU)")
    onednn: bool | str = setting(
        "auto", auto_or(flag),
        "TensorFlow's oneDNN CPU kernels; auto: $TF_ENABLE_ONEDNN_OPTS if set, else on from "
        "batch 4 up")
    threads: int | str = setting(
        "auto", auto_or(whole(0)),
        "TensorFlow op threads, 0 = all cores; auto: $TF_NUM_INTRAOP_THREADS if set, else 1 "
        "up to batch 8")
    distribute: str = setting(
        "none", one_of("none", "mirrored"),
        "mirrored: tf.distribute.MirroredStrategy over the visible devices; batch_size is "
        "the global batch")


@dataclass(frozen=True)
class TrackingConfig:
    tensorboard: bool = setting(True, flag, "write RUN_DIR/tensorboard/ event files")
    mlflow: bool = setting(False, flag, 'log to MLflow (pip install "cnnlab[mlflow]")')
    uri: str | None = setting(None, optional(text), "MLflow tracking URI; null: "
                              "$MLFLOW_TRACKING_URI, else sqlite:///outputs/mlflow.db")
    experiment: str | None = setting(None, optional(text),
                                     "MLflow experiment; null: the sweep's or config's name")


SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig,
            "tracking": TrackingConfig}


@dataclass(frozen=True)
class Config:
    name: str = setting("run", identifier, "run name (default: the config file's name), used in "
                        "the run folder's name and plot titles")
    seed: int = setting(0, whole(0, MAX_SEED), "seeds weights, shuffling, augmentation and (unless "
                        "data.split_seed is set) the train/validation/test draw")
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists, not tuples), ready for YAML or JSON."""
        return plain(dataclasses.asdict(self))

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
    text = yaml.safe_dump(plain(value), default_flow_style=True, width=10**6)
    return text.strip().removesuffix("...").strip()


def closest_key(key: str) -> str:
    """A 'did you mean ...?' hint for an unknown dotted key."""
    match = difflib.get_close_matches(key, ALL_KEYS, n=1, cutoff=0.5)
    if not match:
        leaf = key.rsplit(".", 1)[-1]
        match = [k for k in ALL_KEYS if k.rsplit(".", 1)[-1] == leaf][:1]
    return (f"did you mean '{match[0]}'?" if match
            else "valid sections: data, model, train, tracking")


def check_keys(raw: Mapping[str, Any], origin: str) -> None:
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
                f"model.{key}: got {plain(value)} ({len(value)} entries) but model.filters "
                f"has {len(convs)} blocks; give one value for all blocks or one per block")
        for i, (entry, block) in enumerate(zip(model.per_block(key), convs, strict=True), 1):
            if isinstance(entry, tuple) and len(entry) != len(block):
                raise ConfigError(
                    f"model.{key}: block {i} has {len(entry)} values {plain(entry)} but "
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
    check_keys(raw, origin)
    top = _validate_section("", {k: v for k, v in raw.items() if k not in SECTIONS})
    sections = {
        name: cls(**_validate_section(name, raw.get(name) or {}))
        for name, cls in SECTIONS.items()
    }
    sections["train"] = _cross_checks(sections["model"], sections["train"])
    return Config(**top, **sections)
