"""Building the Keras CNN of a model config, with stable, meaningful layer names.

Layer names: ``augment_flip`` and ``augment_shift`` (with ``model.augment``), then for
conv block i (1-based) ``block{i}_conv``, ``block{i}_bn``, ``block{i}_act`` -- with
several convolutions in the block (VGG style) ``block{i}_conv{j}``, ``block{i}_bn{j}``,
``block{i}_act{j}`` for convolution j -- and ``block{i}_dropout``, ``block{i}_pool``;
then ``flatten`` (or ``global_pool``), ``dense{k}``, ``dense{k}_dropout``, ``output``,
``output_dropout``.
"""

from __future__ import annotations

from typing import Any

from cnnlab.backend.tf import keras
from cnnlab.config.schema import ModelConfig
from cnnlab.errors import ConfigError


def check_fits(cfg: ModelConfig, input_shape: tuple[int, ...]) -> None:
    """ConfigError if a convolution's kernel or a block's pooling window is larger than
    its input."""
    height, width = input_shape[:2]
    blocks = zip(cfg.per_conv("kernel_size"), cfg.per_conv("padding"),
                 cfg.per_block("pool_size"), strict=True)
    for i, (kernels, paddings, pool) in enumerate(blocks, start=1):
        for kernel, padding in zip(kernels, paddings, strict=True):
            if padding == "valid":
                if kernel > min(height, width):
                    raise ConfigError(
                        f"model.kernel_size: block {i} kernel {kernel} is larger than its "
                        f"{height}x{width} input; use a smaller kernel, padding same or fewer "
                        "blocks")
                height, width = height - kernel + 1, width - kernel + 1
        if pool:
            if pool > min(height, width):
                raise ConfigError(
                    f"model.pool_size: block {i} pool {pool} is larger than its "
                    f"{height}x{width} input; use fewer blocks or a smaller pool_size"
                )
            height, width = height // pool, width // pool


def _regularizer(cfg: ModelConfig) -> Any:
    if cfg.l1 > 0:
        return keras.regularizers.L1L2(l1=cfg.l1, l2=cfg.l2)
    return keras.regularizers.L2(cfg.l2) if cfg.l2 > 0 else None


def _conv_block(cfg: ModelConfig, i: int) -> list[Any]:
    """The layers of conv block ``i`` (1-based): its convolutions, then dropout and pooling
    (in that order unless ``dropout_after_pool``)."""
    filters = cfg.convs()[i - 1]
    convs = zip(filters, cfg.per_conv("kernel_size")[i - 1], cfg.per_conv("padding")[i - 1],
                cfg.per_conv("activation")[i - 1], strict=True)
    layers: list[Any] = []
    for j, (width, kernel, padding, activation) in enumerate(convs, start=1):
        suffix = str(j) if len(filters) > 1 else ""
        layers.append(keras.layers.Conv2D(
            width, kernel, padding=padding, activation=None if cfg.batch_norm else activation,
            kernel_regularizer=_regularizer(cfg), name=f"block{i}_conv{suffix}"))
        if cfg.batch_norm:
            layers.append(keras.layers.BatchNormalization(name=f"block{i}_bn{suffix}"))
            layers.append(keras.layers.Activation(activation, name=f"block{i}_act{suffix}"))
    after_convs: list[Any] = []
    if cfg.conv_dropout is not None:
        after_convs.append(keras.layers.Dropout(cfg.conv_dropout, name=f"block{i}_dropout"))
    pool = cfg.per_block("pool_size")[i - 1]
    if pool:
        pool_layer = {"max": keras.layers.MaxPooling2D,
                      "average": keras.layers.AveragePooling2D}[cfg.pooling]
        after_convs.append(pool_layer(pool, name=f"block{i}_pool"))
    return layers + (after_convs[::-1] if cfg.dropout_after_pool else after_convs)


def build_model(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int,
                name: str = "cnn") -> keras.Model:
    """The CNN described by ``cfg`` for inputs of ``input_shape`` (H, W, C)."""
    check_fits(cfg, input_shape)
    layers: list[Any] = [keras.Input(shape=tuple(input_shape), name="image")]
    if cfg.augment:  # random flips and shifts; Keras runs these layers only in training
        layers.append(keras.layers.RandomFlip("horizontal", name="augment_flip"))
        layers.append(keras.layers.RandomTranslation(0.1, 0.1, name="augment_shift"))
    for i in range(1, len(cfg.filters) + 1):
        layers += _conv_block(cfg, i)
    layers.append(keras.layers.GlobalAveragePooling2D(name="global_pool") if cfg.global_pool
                  else keras.layers.Flatten(name="flatten"))
    for k, width in enumerate(cfg.dense, start=1):
        layers.append(keras.layers.Dense(width, activation=cfg.dense_activation,
                                         kernel_regularizer=_regularizer(cfg), name=f"dense{k}"))
        if cfg.dense_dropout is not None:
            layers.append(keras.layers.Dropout(cfg.dense_dropout, name=f"dense{k}_dropout"))
    # float32 probabilities also under mixed precision (train.mixed_precision)
    layers.append(keras.layers.Dense(num_classes, activation="softmax", dtype="float32",
                                     kernel_regularizer=_regularizer(cfg), name="output"))
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
