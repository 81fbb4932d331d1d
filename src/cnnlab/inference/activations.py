"""What a layer responds to: feature maps, the report's summed mask, Grad-CAM (numbers only).

Everything here returns numpy arrays; :mod:`cnnlab.report.activations` draws them.

- :func:`feature_maps`: a layer's output for some images, through
  ``keras.Model(model.inputs, layer.output)``.
- :func:`summed_mask`: the reference report's mask -- the post-ReLU output
  summed over channels, upsampled bilinearly to the input size and divided by
  its maximum (so it lies in [0, 1] and peaks at 1; an all-zero response stays
  all zero). Scaling commutes with the linear upsampling, so this is the
  report's normalize-then-upsample with the peak kept at exactly 1.
- :func:`grad_cam`: Grad-CAM for the predicted class on a convolution layer
  (default the last one), computed from the output layer's logits.
- :func:`load_split`: one split of the data a finished run used.

A convolution layer name stands for its block's post-activation output: with
batch normalization that is ``block{i}_act`` (the conv layer itself is
pre-normalization), without it the conv layer, whose ReLU is built in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from cnnlab.backend.tf import keras, tf
from cnnlab.errors import ConfigError
from cnnlab.runs import load

SPLITS = ("test", "val")
DEFAULT_IMAGE_COUNT = 3


# --- layers ------------------------------------------------------------------------


def conv_layers(model: keras.Model) -> list[str]:
    """Names of the convolution layers, input to output."""
    return [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def map_layers(model: keras.Model) -> list[str]:
    """Names of every layer whose output is a stack of 2-D maps (valid ``--layer`` values)."""
    return [layer.name for layer in model.layers if len(layer.output.shape) == 4]


def check_layers(model: keras.Model, names: Sequence[str]) -> list[str]:
    """``names`` (default: every conv layer), or a ConfigError listing the valid ones."""
    valid = map_layers(model)
    for name in names:
        if name not in valid:
            raise ConfigError(f"--layer {name}: no such layer with 2-D maps in this model; "
                              f"valid layers: {', '.join(valid)}")
    return list(names) or conv_layers(model)


def response_layer(model: keras.Model, name: str) -> str:
    """The layer whose output is shown for ``name``: a conv layer's post-activation output
    (``block{i}_conv{j}`` -> ``block{i}_act{j}`` with batch normalization)."""
    act = re.sub(r"_conv(\d*)$", r"_act\1", name)
    if act != name and any(layer.name == act for layer in model.layers):
        return act
    return name


# --- compute -----------------------------------------------------------------------


def feature_maps(model: keras.Model, layer: str, images: np.ndarray) -> np.ndarray:
    """Output of ``layer`` for ``images`` (N, H, W, C) -> (N, h, w, filters), float32."""
    probe = keras.Model(model.inputs, model.get_layer(layer).output)
    return np.asarray(probe.predict(images, verbose=0), dtype=np.float32)


def upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (N, h, w) maps to (N, H, W) (half-pixel centres, edges clamped)."""
    if maps.shape[1:3] == tuple(size):
        return maps.astype(np.float32)
    resized = tf.image.resize(maps[..., None].astype(np.float32), size, method="bilinear")
    return resized.numpy()[..., 0]


def normalize(maps: np.ndarray) -> np.ndarray:
    """Each (h, w) map divided by its maximum: values in [0, 1]; all-zero stays zero."""
    peak = maps.reshape(len(maps), -1).max(axis=1).reshape(-1, 1, 1)
    return np.where(peak > 0, maps / np.where(peak > 0, peak, 1.0), 0.0).astype(np.float32)


def summed_mask(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The report's mask: ReLU outputs (N, h, w, C) summed over channels, upsampled to
    ``size``, normalized to [0, 1]. Negative values are clipped first, a no-op after a ReLU."""
    summed = np.maximum(maps, 0.0).sum(axis=-1)
    return np.clip(normalize(upsample(summed, size)), 0.0, 1.0)


def _logits(model: keras.Model, x: Any, layer: str) -> tuple[Any, Any]:
    """Forward pass layer by layer: (output of ``layer``, class scores before the softmax)."""
    captured = None
    for item in model.layers:
        if item.name == "output" and isinstance(item, keras.layers.Dense):
            x = keras.ops.matmul(x, item.kernel) + item.bias
            break
        x = item(x, training=False)
        if item.name == layer:
            captured = x
    return captured, x


def grad_cam(model: keras.Model, images: np.ndarray, layer: str | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM heat maps (N, H, W) in [0, 1] for each image's predicted class, and the
    predicted classes. ``layer`` defaults to the last convolution layer's response."""
    layer = response_layer(model, layer or conv_layers(model)[-1])
    heats, predicted = [], []
    for image in images:
        x = tf.convert_to_tensor(image[None].astype(np.float32))
        with tf.GradientTape() as tape:
            tape.watch(x)
            maps, scores = _logits(model, x, layer)
            cls = int(tf.argmax(scores[0]))
            target = scores[0, cls]
        grads = tape.gradient(target, maps)
        weights = tf.reduce_mean(grads, axis=(0, 1, 2))
        heat = tf.nn.relu(tf.reduce_sum(maps[0] * weights, axis=-1)).numpy()
        heats.append(heat)
        predicted.append(cls)
    heat_maps = normalize(upsample(np.stack(heats), images.shape[1:3]))
    return np.clip(heat_maps, 0.0, 1.0), np.array(predicted)


# --- images of a run ---------------------------------------------------------------


def default_images(labels: np.ndarray, count: int = DEFAULT_IMAGE_COUNT) -> list[int]:
    """The first image of each of the first ``count`` classes met, in split order: a
    fixed choice of different classes (the split itself is seeded)."""
    chosen: dict[int, int] = {}
    for index, label in enumerate(labels):
        if int(label) not in chosen:
            chosen[int(label)] = index
        if len(chosen) == count:
            break
    return sorted(chosen.values())


def check_images(indices: Sequence[int], split: str, size: int) -> list[int]:
    for index in indices:
        if not 0 <= index < size:
            raise ConfigError(f"--image {index}: out of range; the {split} split of this run "
                              f"has {size} images (0..{size - 1})")
    return list(indices)


def split_size(run: load.Run, split: str) -> int | None:
    """Images in a split, from the run's data record (None if not recorded)."""
    return run.metrics.get("data", {}).get("sizes", {}).get(split)


def load_split(run: load.Run, split: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(images, labels, class names) of a run's split, from the data location it recorded."""
    if split not in SPLITS:
        raise ConfigError(f"--split {split}: choose one of {', '.join(SPLITS)}")
    data = load.load_run_data(run, log=lambda _: None)
    if split == "test":
        return data.x_test, data.y_test, data.class_names
    return data.x_val, data.y_val, data.class_names
