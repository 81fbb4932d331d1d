"""Figures of a run: learning curves and the confusion matrix (matplotlib, Agg; no training)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def save_figure(fig: plt.Figure, path: Path) -> None:
    """Save and close ``fig`` as PNG atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)


def plot_curves(history: Sequence[dict[str, Any]], path: Path, title: str,
                best_epoch: int | None = None, overfit_epoch: int | None = None) -> None:
    """Loss and accuracy per epoch, training vs validation, with the best and
    over-fitting epochs marked."""
    epochs = [int(r["epoch"]) for r in history]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, metric, label in ((axes[0], "loss", "Loss"), (axes[1], "accuracy", "Accuracy")):
        ax.plot(epochs, [r[metric] for r in history], "o-", ms=3, label=f"train {metric}")
        ax.plot(epochs, [r[f"val_{metric}"] for r in history], "s-", ms=3,
                label=f"validation {metric}")
        if best_epoch:
            ax.axvline(best_epoch, color="green", ls="--", lw=1,
                       label=f"best val. accuracy (epoch {best_epoch})")
        if overfit_epoch:
            ax.axvline(overfit_epoch, color="red", ls=":", lw=1.2,
                       label=f"over-fitting starts (epoch {overfit_epoch})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=min(len(epochs), 12)))
    fig.suptitle(title)
    save_figure(fig, path)


def plot_learning_rate(history: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    """The learning rate of every epoch (train.schedule, train.warmup_epochs)."""
    epochs = [int(r["epoch"]) for r in history]
    rates = [float(r.get("learning_rate", "nan") or "nan") for r in history]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(epochs, rates, "o-", ms=3, color="tab:purple")
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.set_title(f"{title}: learning rate by epoch")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=min(len(epochs), 12)))
    save_figure(fig, path)


def plot_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], path: Path,
                          title: str) -> None:
    """Counts per (true, predicted) class, with row-normalized shading and class names."""
    matrix = np.asarray(matrix)
    n = len(class_names)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(5.0, 0.6 * n + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    save_figure(fig, path)


def plot_standardization(raw: np.ndarray, standardized: np.ndarray, path: Path) -> None:
    """Pixel values of some images before and after per-image standardization, and each
    image's mean and standard deviation before and after."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    axes[0].hist(raw.ravel(), bins=64, color="tab:grey")
    axes[0].set_title(f"raw pixels ({len(raw)} images)")
    axes[0].set_xlabel("value (0-255)")
    axes[1].hist(standardized.ravel(), bins=64, color="tab:blue")
    axes[1].set_title("after (img - img.mean()) / img.std()")
    axes[1].set_xlabel("value")
    raw_flat = raw.reshape(len(raw), -1).astype(np.float32)
    after = standardized.reshape(len(standardized), -1)
    axes[2].hist(raw_flat.mean(axis=1), bins=32, alpha=0.7, color="tab:grey",
                 label="per-image mean, raw")
    axes[2].hist(raw_flat.std(axis=1), bins=32, alpha=0.7, color="tab:olive",
                 label="per-image std, raw")
    axes[2].set_title("each image's mean and std before")
    axes[2].set_xlabel("value (0-255)")
    axes[2].legend(fontsize=8, title=(
        f"after: means {after.mean(axis=1).min():.1e}..{after.mean(axis=1).max():.1e},\n"
        f"stds {after.std(axis=1).min():.3f}..{after.std(axis=1).max():.3f}"),
        title_fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle("Section 1: per-image standardization")
    fig.tight_layout()
    save_figure(fig, path)
