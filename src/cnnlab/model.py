"""Building the Keras CNN of a model config, with stable, meaningful layer names.

Layer names: ``augment_flip`` and ``augment_shift`` (with ``model.augment``),
``block{i}_conv``, ``block{i}_bn``, ``block{i}_act``,
``block{i}_dropout``, ``block{i}_pool`` for conv block i (1-based), then
``flatten``, ``dense{k}``, ``dense{k}_dropout``, ``output``, ``output_dropout``.
"""

from __future__ import annotations

from typing import Any

from cnnlab.config import ModelConfig
from cnnlab.errors import ConfigError
from cnnlab.tf import keras


def check_fits(cfg: ModelConfig, input_shape: tuple[int, ...]) -> None:
    """ConfigError if a block's kernel or pooling window is larger than its input."""
    height, width = input_shape[:2]
    blocks = zip(cfg.per_block("kernel_size"), cfg.per_block("padding"),
                 cfg.per_block("pool_size"), strict=True)
    for i, (kernel, padding, pool) in enumerate(blocks, start=1):
        if padding == "valid":
            if kernel > min(height, width):
                raise ConfigError(
                    f"model.kernel_size: block {i} kernel {kernel} is larger than its "
                    f"{height}x{width} input; use a smaller kernel, padding same or fewer blocks"
                )
            height, width = height - kernel + 1, width - kernel + 1
        if pool:
            if pool > min(height, width):
                raise ConfigError(
                    f"model.pool_size: block {i} pool {pool} is larger than its "
                    f"{height}x{width} input; use fewer blocks or a smaller pool_size"
                )
            height, width = height // pool, width // pool


def build_model(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int,
                name: str = "cnn") -> keras.Model:
    """The CNN described by ``cfg`` for inputs of ``input_shape`` (H, W, C)."""
    check_fits(cfg, input_shape)
    regularizer = (lambda: keras.regularizers.L2(cfg.l2)) if cfg.l2 > 0 else (lambda: None)
    pool_layer = {"max": keras.layers.MaxPooling2D,
                  "average": keras.layers.AveragePooling2D}[cfg.pooling]
    layers: list[Any] = [keras.Input(shape=tuple(input_shape), name="image")]
    if cfg.augment:  # random flips and shifts; Keras runs these layers only in training
        layers.append(keras.layers.RandomFlip("horizontal", name="augment_flip"))
        layers.append(keras.layers.RandomTranslation(0.1, 0.1, name="augment_shift"))
    blocks = zip(cfg.filters, cfg.per_block("kernel_size"), cfg.per_block("padding"),
                 cfg.per_block("activation"), cfg.per_block("pool_size"), strict=True)
    for i, (filters, kernel, padding, activation, pool) in enumerate(blocks, start=1):
        layers.append(keras.layers.Conv2D(
            filters, kernel, padding=padding, activation=None if cfg.batch_norm else activation,
            kernel_regularizer=regularizer(), name=f"block{i}_conv"))
        if cfg.batch_norm:
            layers.append(keras.layers.BatchNormalization(name=f"block{i}_bn"))
            layers.append(keras.layers.Activation(activation, name=f"block{i}_act"))
        if cfg.conv_dropout is not None:
            layers.append(keras.layers.Dropout(cfg.conv_dropout, name=f"block{i}_dropout"))
        if pool:
            layers.append(pool_layer(pool, name=f"block{i}_pool"))
    layers.append(keras.layers.Flatten(name="flatten"))
    for k, width in enumerate(cfg.dense, start=1):
        layers.append(keras.layers.Dense(width, activation=cfg.dense_activation,
                                         kernel_regularizer=regularizer(), name=f"dense{k}"))
        if cfg.dense_dropout is not None:
            layers.append(keras.layers.Dropout(cfg.dense_dropout, name=f"dense{k}_dropout"))
    layers.append(keras.layers.Dense(num_classes, activation="softmax",
                                     kernel_regularizer=regularizer(), name="output"))
    if cfg.output_dropout is not None:
        layers.append(keras.layers.Dropout(cfg.output_dropout, name="output_dropout"))
    return keras.Sequential(layers, name=name)


def trainable_params(model: keras.Model) -> int:
    return int(sum(int(w.numpy().size) for w in model.trainable_weights))


def layer_table(model: keras.Model) -> list[dict[str, Any]]:
    """One row per layer: name, type, output shape (without batch) and parameter count."""
    return [
        {"name": layer.name, "type": type(layer).__name__,
         "output_shape": list(layer.output.shape[1:]), "params": int(layer.count_params())}
        for layer in model.layers
    ]


def format_layer_table(model: keras.Model) -> str:
    """The layer table as aligned text, with the trainable parameter count."""
    rows = [(r["name"], r["type"], "x".join(map(str, r["output_shape"])), f"{r['params']:,}")
            for r in layer_table(model)]
    header = ("layer", "type", "output shape", "params")
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    line = "  ".join(f"{{:<{w}}}" for w in widths[:3]) + f"  {{:>{widths[3]}}}"
    out = [line.format(*header), line.format(*("-" * w for w in widths))]
    out += [line.format(*row) for row in rows]
    total = sum(r["params"] for r in layer_table(model))
    out.append(f"Trainable params: {trainable_params(model):,}   Total params: {total:,}")
    return "\n".join(out)
