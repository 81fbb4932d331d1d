"""What a run needs in memory, from its config alone: checked before anything is allocated
or any folder is written, so that a size that cannot fit is one line naming its key, not an
out-of-memory error deep inside TensorFlow."""

from __future__ import annotations

from cnnlab.config.schema import Config, ModelConfig
from cnnlab.errors import ConfigError

BYTES = 4  # float32
LARGEST_BATCH = 2**31 - 1  # TensorFlow counts a batch's rows in 32-bit integers
FIX = {"model": "use fewer or narrower filters (model.filters) or dense units (model.dense)",
       "train.batch_size": "use a smaller train.batch_size",
       "data": "use a smaller data.image_size, or fewer images (data.train_size, "
               "data.val_size, data.test_size)"}


def available_memory() -> int | None:
    """Bytes the kernel says new processes can use without swapping (Linux), else None."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def model_sizes(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int
                ) -> tuple[int, int]:
    """(weights, activation values per image) of the CNN :func:`build_model` makes."""
    height, width, channels = input_shape
    weights = values = 0
    blocks = zip(cfg.convs(), cfg.per_conv("kernel_size"), cfg.per_conv("padding"),
                 cfg.per_block("pool_size"), strict=True)
    for filters, kernels, paddings, pool in blocks:
        for out, kernel, padding in zip(filters, kernels, paddings, strict=True):
            if padding == "valid":
                height, width = max(1, height - kernel + 1), max(1, width - kernel + 1)
            weights += kernel * kernel * channels * out + out + (4 * out if cfg.batch_norm else 0)
            channels = out
            values += height * width * channels * (3 if cfg.batch_norm else 1)
        if pool:
            height, width = max(1, height // pool), max(1, width // pool)
            values += height * width * channels
    features = channels if cfg.global_pool else height * width * channels
    for units in [*cfg.dense, num_classes]:
        weights += features * units + units
        values += units
        features = units
    return weights, values


def _images(config: Config) -> tuple[int, int]:
    """(training images, all images) the run holds; unset sizes as CIFAR-10's splits (an
    image folder's: at least one image)."""
    data = config.data
    cifar = data.source == "cifar10"
    train = data.train_size or (50_000 - data.val_size if cifar else 1)
    return train, train + data.val_size + (data.test_size or (10_000 if cifar else 1))


def needs(config: Config, input_shape: tuple[int, ...], num_classes: int) -> dict[str, int]:
    """Bytes a run needs, by what sets them: the model (weights, gradients, two optimizer
    slots), a batch's activations (kept for the backward pass) and the images (float32,
    and a copy while Keras reads them)."""
    weights, values = model_sizes(config.model, input_shape, num_classes)
    train, images = _images(config)
    pixels = input_shape[0] * input_shape[1] * input_shape[2]
    batch = min(config.train.batch_size, train)
    return {"model": 4 * weights * BYTES, "train.batch_size": 2 * batch * values * BYTES,
            "data": 2 * images * pixels * BYTES}


def check(config: Config, input_shape: tuple[int, ...], num_classes: int) -> None:
    """ConfigError naming the key when this run cannot fit in the available memory."""
    if config.train.batch_size > LARGEST_BATCH:
        raise ConfigError(f"train.batch_size: got {config.train.batch_size}; expected at most "
                          f"{LARGEST_BATCH} (a batch larger than the training set is the "
                          "whole training set)")
    need, free = needs(config, input_shape, num_classes), available_memory()
    total = sum(need.values())
    if free is None or total <= free:
        return
    data_key = "data.image_size" if config.data.image_size else "data.train_size"
    if need["data"] > free:
        _refuse(data_key, "data", need, free)
    per_image = need["train.batch_size"] // min(config.train.batch_size, _images(config)[0])
    if need["model"] + need["data"] + per_image > free:
        _refuse("model.filters", "model", need, free)
    fits = (free - need["model"] - need["data"]) // per_image
    _refuse("train.batch_size", "train.batch_size", need, free, f" (train.batch_size {fits} "
            "would fit)")


def check_model(cfg: ModelConfig, input_shape: tuple[int, ...], num_classes: int) -> None:
    """ConfigError when the model's weights alone cannot be held in memory."""
    weights, _ = model_sizes(cfg, input_shape, num_classes)
    free = available_memory()
    if free is not None and weights * BYTES > free:
        _refuse("model.filters", "model", {"model": weights * BYTES}, free)


def _refuse(key: str, part: str, need: dict[str, int], free: int, hint: str = "") -> None:
    raise ConfigError(f"{key}: this run needs more than {_gb(sum(need.values()))} of memory "
                      f"({_gb(need[part])} for {_what(part)}); {_gb(free)} is available; "
                      f"{FIX[part]}{hint}")


def _what(part: str) -> str:
    return {"model": "the model's weights and optimizer state",
            "train.batch_size": "one batch's activations", "data": "the images"}[part]


def _gb(size: int) -> str:
    return f"{size / 2**30:,.1f} GB"
