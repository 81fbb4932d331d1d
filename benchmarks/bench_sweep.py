"""End to end: ``cnnlab sweep batch-size`` vs the same nine runs as a plain Keras script.

Both train the report's baseline at batch sizes 1..256 for the same epochs on the same
CIFAR-10 slice (5,000 training images by default). The plain script is the report's
loop: build, compile, ``model.fit`` with validation data and a ModelCheckpoint, for
each batch size, in one process. Wall time of each side, alternating which goes first.

    python benchmarks/bench_sweep.py                      # 20 epochs, 5,000 images
    python benchmarks/bench_sweep.py --epochs 3 --images 2000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def plain_keras(args: argparse.Namespace) -> None:
    """The nine runs the way the report writes them (one process, a loop)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    from cnnlab.config import load_config
    from cnnlab.data import load_dataset

    cfg = load_config("baseline", {"data.train_size": args.images, "data.download": False,
                                   "data.cache_dir": args.cache_dir})
    data = load_dataset(cfg.data, cfg.seed, log=lambda _: None)
    one_hot = np.eye(10, dtype="float32")
    with tempfile.TemporaryDirectory() as tmp:
        for batch in BATCH_SIZES:
            keras.utils.set_random_seed(0)
            model = keras.Sequential([
                keras.Input((32, 32, 3)),
                keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
                keras.layers.Dropout(0.0), keras.layers.MaxPooling2D(2),
                keras.layers.Flatten(), keras.layers.Dense(64, activation="relu"),
                keras.layers.Dropout(0.0), keras.layers.Dense(10, activation="softmax"),
                keras.layers.Dropout(0.0)])
            model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01),
                          loss="categorical_crossentropy", metrics=["accuracy"])
            checkpoint = keras.callbacks.ModelCheckpoint(
                f"{tmp}/best-{batch}.keras", monitor="val_accuracy", mode="max",
                save_best_only=True)
            model.fit(data.x_train, one_hot[data.y_train], batch_size=batch,
                      epochs=args.epochs, validation_data=(data.x_val, one_hot[data.y_val]),
                      verbose=0, callbacks=[checkpoint])
            model.evaluate(data.x_test, one_hot[data.y_test], verbose=0)


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "cnnlab-bench"))
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep cnnlab's sweep folder here (its timing_table.md, results.csv)")
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        plain_keras(args)
        return
    plain_cmd = [sys.executable, __file__, "--plain", "--images", str(args.images),
                 "--epochs", str(args.epochs), "--cache-dir", args.cache_dir]
    results: dict[str, list[float]] = {"cnnlab": [], "keras": []}
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            sweep_dir = args.keep if args.keep and repeat == 0 else Path(tmp) / "sweep"
            cnnlab_cmd = ["cnnlab", "sweep", "batch-size", "--out", str(sweep_dir),
                          "--set", f"data.train_size={args.images}",
                          "--set", f"train.epochs={args.epochs}", "--set", "data.download=false",
                          "--set", f"data.cache_dir={args.cache_dir}"]
            order = [("cnnlab", cnnlab_cmd), ("keras", plain_cmd)]
            for name, cmd in order if repeat % 2 == 0 else order[::-1]:
                results[name].append(timed(cmd))
                print(f"{name}: {results[name][-1]:.1f} s", flush=True)
    summary = {k: round(min(v), 1) for k, v in results.items()}
    summary["speedup"] = round(summary["keras"] / summary["cnnlab"], 2)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
