"""How much the test pool's own image noise weighs in a study's verdicts (a measurement).

Every repeat of ``cnnlab reproduce`` draws its 2,000 test images from the same pool (the
10,000 of CIFAR-10's test set), so a verdict on "arm A beats arm B" generalises to new
images only up to that pool: the pool's mean of each image's expected difference
(over seeds) differs from the population's by sqrt(var / pool). This script evaluates
trained runs of a study folder on the whole pool and estimates that variance, without
the runs' own noise around each image's expected value, nor their shifts of every image
alike (a two-way analysis of variance without replication):

- for two arms paired by repeat (default: the depth claim's 2 and 3 blocks), the pool's
  standard error of the mean accuracy difference, beside the seed standard error the
  paired test uses;
- for the best model's runs, each class's per-image variance of the chance of being
  recognised, beside the binomial bound p (1 - p) the class claims count.

Usage: python benchmarks/pool_noise.py STUDY_FOLDER [--arms A B] [--best FOLDER]
(FOLDER: a best-model sweep folder with many runs, default STUDY/best-model).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from cnnlab.config.files import load_config
from cnnlab.data import dataset
from cnnlab.reproduce.verdicts import image_variance
from cnnlab.runs import layout, load, storage

DEPTH = ("002-filters=8_16", "003-filters=8_16_32")


def pool_images(run_dir: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The whole test pool of a run's data, standardized, its labels and class names."""
    cfg = load_config(run_dir / layout.CONFIG_FILE).data
    raw, _, _ = dataset.read_cached(dataset.locate(cfg, log=lambda _: None).path, cfg,
                                    log=lambda _: None)
    return dataset.standardize(np.asarray(raw.x_test)), np.asarray(raw.y_test), list(
        raw.class_names)


def correct(run_dir: Path, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Whether the run's kept model gets each pool image right (0/1)."""
    import keras

    model = keras.models.load_model(run_dir / layout.MODEL_FILE, compile=False)
    predicted = np.argmax(model.predict(images, batch_size=1000, verbose=0), axis=1)
    return (predicted == labels).astype(float)


def finished_runs(sweep_dir: Path, arm: str) -> dict[int, Path]:
    return {int(p.name.rsplit("-r", 1)[1]): p for p in sorted(sweep_dir.glob(f"{arm}-r*"))
            if storage.is_finished(p)}


def arms_report(study: Path, arms: tuple[str, str], images, labels) -> list[str]:
    sweep_dir = next(p.parent for p in study.glob(f"*/{arms[0]}-r0"))
    runs = [finished_runs(sweep_dir, arm) for arm in arms]
    repeats = sorted(set(runs[0]) & set(runs[1]))
    a, b = (np.stack([correct(r[i], images, labels) for i in repeats]) for r in runs)
    diff = a - b
    per_repeat = [float(load.read_run(runs[0][i]).metrics["test_accuracy"]
                        - load.read_run(runs[1][i]).metrics["test_accuracy"]) for i in repeats]
    n, pool = len(repeats), diff.shape[1]
    seed_se = float(np.std(per_repeat, ddof=1)) / math.sqrt(n)
    whole_se = float(diff.mean(axis=1).std(ddof=1)) / math.sqrt(n)
    pool_se = math.sqrt(max(0.0, image_variance(diff)) / pool)
    return [f"## {arms[0]} against {arms[1]}, {n} repeats, pool of {pool} images", "",
            f"- mean accuracy difference on the whole pool: {diff.mean():+.4f}; on each "
            f"run's own 2,000 (the study's test): {np.mean(per_repeat):+.4f}",
            f"- seed standard error of the mean difference (the paired test's, each run's "
            f"own test draw): {seed_se:.4f}; on the whole pool: {whole_se:.4f}",
            f"- per-image variance of the expected difference: {image_variance(diff):.4f} "
            f"(the two arms disagree on {np.mean(a != b):.1%} of image-runs)",
            f"- the pool's standard error: {pool_se:.4f}; with it the mean difference's "
            f"standard error would be {math.hypot(seed_se, pool_se):.4f} "
            f"({math.hypot(seed_se, pool_se) / seed_se:.2f} x)", ""]


def classes_report(best_dir: Path, images, labels, names) -> list[str]:
    runs = [p for p in sorted(best_dir.glob("*-r*")) if storage.is_finished(p)]
    hits = np.stack([correct(r, images, labels) for r in runs])
    lines = [f"## Per-class image variance, {len(runs)} runs of {best_dir}", "",
             "| class | recall | image variance | binomial bound p(1-p) | ratio |",
             "|---|---|---|---|---|"]
    for k, name in enumerate(names):
        mine = hits[:, labels == k]
        p = float(mine.mean())
        v = image_variance(mine)
        lines.append(f"| {name} | {p:.3f} | {v:.4f} | {p * (1 - p):.4f} | "
                     f"{v / (p * (1 - p)):.2f} |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--arms", nargs=2, default=DEPTH)
    parser.add_argument("--best", type=Path, default=None)
    args = parser.parse_args()
    first = next(args.study.glob(f"*/{args.arms[0]}-r0"))
    images, labels, names = pool_images(first)
    lines = [f"# The test pool's image noise: {args.study}", ""]
    lines += arms_report(args.study, tuple(args.arms), images, labels)
    lines += classes_report(args.best or args.study / "best-model", images, labels, names)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
