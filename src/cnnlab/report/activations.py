"""Drawing activation maps of a finished run (matplotlib, Agg); the numbers come from
:mod:`cnnlab.inference.activations`.

``plot_activations(run_dir, ...)`` writes, per layer and image,
``<layer>-<split><index>.png``: the input image, the summed mask overlaid on it as
a heat map, and every filter's feature map in a grid; with ``method="gradcam"``,
``gradcam-<layer>-<split><index>.png``: input, Grad-CAM heat map and overlay.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from cnnlab.errors import ConfigError
from cnnlab.inference import activations as act
from cnnlab.report.figures import plt, save_figure
from cnnlab.runs import layout, load, storage

METHODS = ("mask", "gradcam")
HEAT_CMAP = "jet"
Log = Callable[[str], None]


def display_image(image: np.ndarray) -> np.ndarray:
    """A standardized (H, W, C) image rescaled to [0, 1] for display; (H, W) if grayscale."""
    low, high = float(image.min()), float(image.max())
    shown = (image - low) / (high - low) if high > low else np.zeros_like(image)
    return shown[..., 0] if shown.shape[-1] == 1 else shown[..., :3]


def _show_image(ax: plt.Axes, image: np.ndarray, title: str) -> None:
    shown = display_image(image)
    ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=1,
              interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def _show_overlay(ax: plt.Axes, image: np.ndarray, heat: np.ndarray, title: str) -> None:
    shown = display_image(image)
    ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=1,
              interpolation="nearest")
    ax.imshow(heat, cmap=HEAT_CMAP, vmin=0, vmax=1, alpha=0.5, interpolation="bilinear")
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def grid_shape(count: int) -> tuple[int, int]:
    """(rows, columns) for ``count`` feature maps: wide rather than tall, powers of two."""
    cols = min(count, 2 ** math.ceil(math.log2(math.sqrt(2 * count))))
    return math.ceil(count / cols), cols


def plot_feature_maps(image: np.ndarray, maps: np.ndarray, mask: np.ndarray, path: Path,
                      title: str, caption: str) -> None:
    """Input image and mask overlay on the left, every filter's map (h, w, C) in a grid."""
    count = maps.shape[-1]
    rows, cols = grid_shape(count)
    cell = 0.95 if cols <= 8 else 0.7
    height = max(4.8, rows * cell + 1.0)
    fig = plt.figure(figsize=(3.0 + cols * cell, height))
    outer = fig.add_gridspec(1, 2, width_ratios=[3.0, cols * cell], wspace=0.08)
    left = outer[0].subgridspec(2, 1, hspace=0.25)
    pad = max(height - 1.0 - rows * cell, 0.0) / 2
    right = outer[1].subgridspec(3, 1, height_ratios=[pad + 0.01, rows * cell, pad + 0.01])
    _show_image(fig.add_subplot(left[0]), image, caption)
    _show_overlay(fig.add_subplot(left[1]), image, mask,
                  "summed mask (ReLU outputs summed\nover filters, normalized)")
    grid = right[1].subgridspec(rows, cols, wspace=0.08, hspace=0.3)
    for k in range(count):
        ax = fig.add_subplot(grid[k // cols, k % cols])
        ax.imshow(maps[..., k], cmap="viridis", interpolation="nearest")
        peak = float(maps[..., k].max())
        ax.set_title(f"{k}" if peak > 0 else f"{k} (zero)", fontsize=7, pad=2)
        ax.axis("off")
    fig.suptitle(title, fontsize=11, y=1.0 + 0.25 / height)
    save_figure(fig, path)


def plot_gradcam(image: np.ndarray, heat: np.ndarray, path: Path, title: str,
                 caption: str) -> None:
    """Input, Grad-CAM heat map and the heat map overlaid on the input."""
    fig, axes = plt.subplots(1, 3, figsize=(8.4, 3.3))
    _show_image(axes[0], image, caption)
    shown = axes[1].imshow(heat, cmap=HEAT_CMAP, vmin=0, vmax=1)
    axes[1].set_title("Grad-CAM heat map", fontsize=9)
    axes[1].axis("off")
    fig.colorbar(shown, ax=axes[1], fraction=0.046, pad=0.04)
    _show_overlay(axes[2], image, heat, "overlay")
    fig.suptitle(title, fontsize=11)
    save_figure(fig, path)


def plot_activations(run_dir: str | Path, layers: Sequence[str] = (),
                     images: Sequence[int] = (), split: str = "test", method: str = "mask",
                     out: str | Path | None = None, log: Log = print) -> list[Path]:
    """Draw a run's activation maps into ``out`` (default ``RUN_DIR/activations``)."""
    if method not in METHODS:
        raise ConfigError(f"--method {method}: choose one of {', '.join(METHODS)}")
    if split not in act.SPLITS:
        raise ConfigError(f"--split {split}: choose one of {', '.join(act.SPLITS)}")
    run = load.read_run(run_dir)
    out_dir = Path(out) if out is not None else storage.check_no_link(
        run.path / layout.ACTIVATIONS_DIR)
    size = act.split_size(run, split)
    if size is not None:
        act.check_images(images, split, size)
    model = load.load_run_model(run)
    chosen_layers = act.check_layers(model, layers)
    x, y, class_names = act.load_split(run, split)
    indices = act.check_images(images, split, len(y)) or act.default_images(y)
    name = run.name
    if method == "gradcam":
        return _draw_gradcam(model, x, y, class_names, indices, chosen_layers if layers else [],
                             out_dir, name, split)
    written = []
    for layer in chosen_layers:
        shown = act.response_layer(model, layer)
        maps = act.feature_maps(model, shown, x[indices])
        masks = act.summed_mask(maps, x.shape[1:3])
        label = layer if shown == layer else f"{layer} (after {shown})"
        for i, index in enumerate(indices):
            path = out_dir / f"{layer}-{split}{index:04d}.png"
            h, w, c = maps.shape[1:]
            plot_feature_maps(x[index], maps[i], masks[i], path,
                              f"{name}: {label} -- {c} feature maps of {h}x{w}",
                              f"{split} image {index}\n(class {class_names[y[index]]})")
            written.append(path)
    return written


def _draw_gradcam(model, x, y, class_names, indices, layers, out_dir, name, split) -> list[Path]:
    written = []
    for layer in layers or [act.conv_layers(model)[-1]]:
        heats, predicted = act.grad_cam(model, x[indices], layer)
        for i, index in enumerate(indices):
            path = out_dir / f"gradcam-{layer}-{split}{index:04d}.png"
            plot_gradcam(x[index], heats[i], path,
                         f"{name}: Grad-CAM on {layer} for predicted class "
                         f"'{class_names[predicted[i]]}'",
                         f"{split} image {index}\n(class {class_names[y[index]]})")
            written.append(path)
    return written
