"""Per step: Keras ``model.fit`` against the same steps fed from tensors in the graph.

Both run the model's own ``train_step`` (loss, loss tracker, metrics, optimizer) on the
report's baseline, the same standardized CIFAR-10 slice, the same batches in the same
order (no shuffling), one call into the graph per epoch, with the CPU settings cnnlab
picks for the batch size; the weights they end with are compared bit for bit. ``fit``
reads each batch from the tf.data iterator of Keras' array adapter; the graph loop
slices it from a tensor. The difference is what that iterator costs per step.

    python benchmarks/bench_fit_loop.py --data ../shared/datasets/cifar10-jpg.tar.gz

Writes benchmarks/results/fit-loop-<date>.md. One fresh process per measurement; the
order of the two alternates; the median of ``--epochs`` epochs after a first one (graph
tracing) counts; ``fit``'s epochs are timed inside one call, by a callback.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
KINDS = ("fit", "tensors")


def setup(args: argparse.Namespace):
    """The data, a freshly built model compiled as cnnlab compiles it, and the steps per
    epoch."""
    from cnnlab.backend import runtime
    from cnnlab.config.files import load_config

    overrides = {"data.train_size": args.images, "data.val_size": 500, "data.test_size": 500,
                 "data.download": False, "data.cache_dir": args.cache_dir,
                 "train.batch_size": args.batch, "train.shuffle": False}
    if args.data:
        overrides["data.path"] = args.data
    cfg = load_config("baseline", overrides)
    runtime.select(runtime.wanted(cfg.train))
    from cnnlab.backend.tf import keras
    from cnnlab.data.dataset import load_dataset
    from cnnlab.training import optimization
    from cnnlab.training.model import build_model

    data = load_dataset(cfg.data, cfg.seed, log=lambda _: None)
    keras.utils.set_random_seed(cfg.seed)
    model = build_model(cfg.model, data.input_shape, data.num_classes, name=cfg.name)
    loss, metric = optimization.loss_and_metric(cfg.train)
    steps = len(data.y_train) // args.batch
    model.compile(optimizer=optimization.make_optimizer(cfg.train), loss=loss,
                  metrics=[metric], steps_per_execution=steps)
    return data, model, steps


def graph_epoch(model, x, y, steps: int, batch: int):
    """One epoch in one tf.function: the model's own ``train_step`` on each batch, the
    batches sliced from tensors held in the graph instead of read from an iterator."""
    import tensorflow as tf

    xs = tf.constant(x.reshape(steps, batch, *x.shape[1:]))
    ys = tf.constant(y.reshape(steps, batch, *y.shape[1:]))

    @tf.function
    def epoch():
        logs = model.train_step((xs[0], ys[0]))
        for i in tf.range(1, steps):
            logs = model.train_step((xs[i], ys[i]))
        return logs
    return epoch


def fit_epochs(model, x, y, args: argparse.Namespace) -> list[float]:
    """Seconds of each epoch after the first, timed inside one ``fit`` as cnnlab calls it."""
    from cnnlab.backend.tf import keras

    class EpochClock(keras.callbacks.Callback):
        seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

    clock = EpochClock()
    model.fit(x, y, batch_size=args.batch, epochs=1 + args.epochs, shuffle=False, verbose=0,
              callbacks=[clock])
    return clock.seconds[1:]


def loop_epochs(model, x, y, steps: int, args: argparse.Namespace) -> list[float]:
    epoch = graph_epoch(model, x, y, steps, args.batch)
    seconds = []
    for _ in range(1 + args.epochs):
        start = time.perf_counter()
        epoch()
        seconds.append(time.perf_counter() - start)
    return seconds[1:]


def worker(args: argparse.Namespace) -> dict:
    data, model, steps = setup(args)
    x, y = data.x_train[:steps * args.batch], data.y_train[:steps * args.batch]
    seconds = (fit_epochs(model, x, y, args) if args.worker == "fit"
               else loop_epochs(model, x, y, steps, args))
    digest = hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()
    return {"ms_per_step": 1000 * statistics.median(seconds) / steps, "weights": digest}


def run_worker(kind: str, batch: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--batch", str(batch),
           "--images", str(args.images), "--epochs", str(args.epochs),
           "--cache-dir", args.cache_dir] + (["--data", args.data] if args.data else [])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if out.returncode:
        sys.exit(f"{kind} batch {batch} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(args: argparse.Namespace) -> list[dict]:
    rows = []
    for i, batch in enumerate(args.batch_sizes):
        found = {}
        for kind in (KINDS if i % 2 == 0 else KINDS[::-1]):
            found[kind] = run_worker(kind, batch, args)
            print(f"batch {batch} {kind}: {found[kind]['ms_per_step']:.3f} ms/step", flush=True)
        fit, loop = found["fit"], found["tensors"]
        rows.append({"batch": batch, "fit": fit["ms_per_step"], "loop": loop["ms_per_step"],
                     "same_weights": fit["weights"] == loop["weights"]})
    return rows


def report(rows: list[dict], args: argparse.Namespace) -> list[str]:
    from cnnlab.training.loop import environment

    env = environment()
    lines = [f"# model.fit against a plain graph loop, {time.strftime('%Y-%m-%d %H:%M')}", "",
             f"- CPU: {env['cpu']}, {env['cpu_count']} cores; TensorFlow {env['tensorflow']}, "
             f"Keras {env['keras']}",
             f"- baseline model, {args.images} training images, no shuffling, median of "
             f"{args.epochs} epochs after one warm-up; CPU settings as cnnlab picks them", "",
             "| batch | fit ms/step | graph loop ms/step | fit / graph loop | same weights |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['batch']} | {r['fit']:.3f} | {r['loop']:.3f} | "
                     f"{r['fit'] / r['loop']:.2f}x | {'yes' if r['same_weights'] else 'NO'} |")
    return lines


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default=[1, 2, 8, 32, 256],
                        type=lambda s: [int(b) for b in s.split(",")])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--data", default=None, help="data.path (default: cnnlab's lookup)")
    parser.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "cnnlab-bench"))
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--worker", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    lines = report(measure(args), args)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"fit-loop-{time.strftime('%Y%m%d-%H%M')}.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
