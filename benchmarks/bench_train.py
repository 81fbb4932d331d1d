"""Training speed: cnnlab vs a plain Keras ``model.fit`` script vs a plain PyTorch loop.

All three train the report's baseline model (132,010 parameters, SGD lr 0.01) on the
same standardized CIFAR-10 slice, for the same number of optimizer steps, one fresh
process per measurement, alternating the order of the frameworks. Per epoch the
training time (epoch start to validation start) is divided by the number of steps;
the first epoch (graph tracing, warm-up) is excluded and the median of the others is
reported. Peak resident memory is read from each process.

    python benchmarks/bench_train.py                       # batch 1..256, 5,000 images
    python benchmarks/bench_train.py --batch-sizes 1,32,256 --epochs 3 --repeats 2

Writes benchmarks/results/train-<date>.csv, .md and .png. PyTorch is optional
(``pip install torch``); without it the PyTorch column is skipped with a note.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FRAMEWORKS = ("cnnlab", "keras", "torch")
# Forward FLOPs of the baseline per image (multiply-adds x 2): conv 32*32*8*27*2,
# dense 2048*64*2 + 64*10*2; a training step costs about 3x the forward pass.
BASELINE_TRAIN_FLOP_PER_IMAGE = 3 * (32 * 32 * 8 * 27 * 2 + 2048 * 64 * 2 + 64 * 10 * 2)


def baseline_config(args: argparse.Namespace, **extra: object):
    """The report's baseline on the benchmark's slice of the bundled/located CIFAR-10."""
    from cnnlab.config.files import load_config

    return load_config("baseline", {
        "data.train_size": args.images, "data.val_size": 1000, "data.test_size": 1000,
        "data.download": False, "data.cache_dir": args.cache_dir,
        "train.batch_size": args.batch, "train.epochs": args.epochs, "train.verbose": 0,
        **extra})


def load_arrays(args: argparse.Namespace):
    """The standardized CIFAR-10 slice every framework trains on."""
    from cnnlab.data.dataset import load_dataset

    cfg = baseline_config(args)
    return load_dataset(cfg.data, cfg.seed, log=lambda _: None)


def worker_cnnlab(args: argparse.Namespace) -> dict:
    from cnnlab import train

    cfg = baseline_config(args, **dict(parse_set(s) for s in args.set))
    with tempfile.TemporaryDirectory() as tmp:  # cnnlab.train: CPU settings chosen as the CLI does
        run = train(cfg, Path(tmp) / "run", log=lambda _: None)
    return {"ms_per_epoch_step": [r["ms_per_step"] for r in run.history]}


def worker_keras(args: argparse.Namespace) -> dict:
    """The report's way: Sequential, SGD, categorical cross-entropy on one-hot labels,
    model.fit with validation data and a TimeHistory-style callback."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    data = load_arrays(args)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.Dropout(0.0), keras.layers.MaxPooling2D(2), keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"), keras.layers.Dropout(0.0),
        keras.layers.Dense(10, activation="softmax"), keras.layers.Dropout(0.0),
    ])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.0),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    steps = math.ceil(len(data.y_train) / args.batch)
    times: list[float] = []

    class TimeHistory(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start, self.val = time.perf_counter(), None

        def on_test_begin(self, logs=None):
            self.val = self.val or time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(1000 * ((self.val or time.perf_counter()) - self.start) / steps)

    one_hot = np.eye(10, dtype="float32")
    model.fit(data.x_train, one_hot[data.y_train], batch_size=args.batch, epochs=args.epochs,
              validation_data=(data.x_val, one_hot[data.y_val]), verbose=0,
              callbacks=[TimeHistory()])
    return {"ms_per_epoch_step": times}


def worker_torch(args: argparse.Namespace) -> dict:
    """A plain PyTorch CPU loop: the same layers, SGD, cross-entropy, shuffled batches."""
    import numpy as np
    import torch
    from torch import nn

    data = load_arrays(args)
    torch.manual_seed(0)
    x = torch.from_numpy(np.ascontiguousarray(data.x_train.transpose(0, 3, 1, 2)))
    y = torch.from_numpy(data.y_train)
    x_val = torch.from_numpy(np.ascontiguousarray(data.x_val.transpose(0, 3, 1, 2)))
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(2048, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    steps = math.ceil(len(y) / args.batch)
    times = []
    for _ in range(args.epochs):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(y))
        for i in range(steps):
            idx = order[i * args.batch:(i + 1) * args.batch]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
        times.append(1000 * (time.perf_counter() - start) / steps)
        model.eval()
        with torch.no_grad():
            model(x_val)
    return {"ms_per_epoch_step": times}


def worker_matmul_peak(_: argparse.Namespace) -> dict:
    """TensorFlow float32 matmul GFLOP/s (2048x2048), best of 10."""
    from cnnlab.backend.tf import tf

    a = tf.random.normal((2048, 2048))
    tf.linalg.matmul(a, a).numpy()
    best = math.inf
    for _ in range(10):
        start = time.perf_counter()
        tf.linalg.matmul(a, a).numpy()
        best = min(best, time.perf_counter() - start)
    return {"gflops": 2 * 2048**3 / best / 1e9}


def run_worker(kind: str, args: argparse.Namespace, batch: int = 0) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--batch", str(batch),
           "--images", str(args.images), "--epochs", str(args.epochs),
           "--cache-dir", args.cache_dir] + [f"--set={s}" for s in args.set]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"{kind} batch {batch} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def parse_set(text: str) -> tuple[str, object]:
    from cnnlab.config.files import parse_override

    return parse_override(text)


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def provenance() -> dict:
    from cnnlab.training.loop import environment

    env = environment()
    info = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpu": env["cpu"],
            "cores": env["cpu_count"], "python": env["python"],
            "tensorflow": env["tensorflow"], "numpy": env["numpy"]}
    if torch_available():
        import torch

        info["torch"] = torch.__version__
    return info


def measure(args: argparse.Namespace) -> tuple[list[dict], dict]:
    frameworks = [f for f in FRAMEWORKS if f != "torch" or torch_available()]
    if "torch" not in frameworks:
        print("note: torch is not installed; the PyTorch column is skipped "
              "(pip install torch)")
    peak = run_worker("matmul", args)["gflops"]
    rows = []
    for batch in args.batch_sizes:
        samples: dict[str, list[float]] = {f: [] for f in frameworks}
        memory: dict[str, float] = {}
        for repeat in range(args.repeats):
            order = frameworks[repeat % len(frameworks):] + frameworks[:repeat % len(frameworks)]
            for kind in order:
                result = run_worker(kind, args, batch)
                samples[kind].extend(result["ms_per_epoch_step"][1:])  # first epoch excluded
                memory[kind] = max(memory.get(kind, 0.0), result["peak_rss_mb"])
        row = {"batch": batch}
        for kind in frameworks:
            ms = statistics.median(samples[kind])
            row[f"{kind}_ms"] = round(ms, 3)
            row[f"{kind}_img_s"] = round(1000 * batch / ms, 1)
            row[f"{kind}_peak_pct"] = round(
                100 * batch * BASELINE_TRAIN_FLOP_PER_IMAGE / (ms / 1000) / (peak * 1e9), 2)
            row[f"{kind}_rss_mb"] = round(memory[kind])
        for kind in frameworks[1:]:
            row[f"speedup_vs_{kind}"] = round(row[f"{kind}_ms"] / row["cnnlab_ms"], 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows, {"matmul_gflops": round(peak, 1), **provenance()}


def write_outputs(rows: list[dict], info: dict, out_dir: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"train-{time.strftime('%Y%m%d-%H%M')}"
    with open(f"{stem}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    kinds = [k for k in FRAMEWORKS if f"{k}_ms" in rows[0]]
    lines = [f"Measured {info['date']} on {info['cpu']} ({info['cores']} cores), Python "
             f"{info['python']}, TensorFlow {info['tensorflow']}"
             + (f", PyTorch {info['torch']}" if "torch" in info else "")
             + f"; TF matmul peak {info['matmul_gflops']} GFLOP/s.", "",
             "| batch | " + " | ".join(f"{k} ms/step" for k in kinds) + " | "
             + " | ".join(f"{k} img/s" for k in kinds) + " | "
             + " | ".join(f"vs {k}" for k in kinds[1:]) + " | "
             + " | ".join(f"{k} % peak" for k in kinds) + " |",
             "|" + "---|" * (1 + 3 * len(kinds) + len(kinds) - 1)]
    for r in rows:
        lines.append(f"| {r['batch']} | " + " | ".join(str(r[f"{k}_ms"]) for k in kinds) + " | "
                     + " | ".join(str(r[f"{k}_img_s"]) for k in kinds) + " | "
                     + " | ".join(f"{r[f'speedup_vs_{k}']}x" for k in kinds[1:]) + " | "
                     + " | ".join(str(r[f"{k}_peak_pct"]) for k in kinds) + " |")
    lines += ["", "Peak resident memory (MB): " + ", ".join(
        f"{k} {max(r[f'{k}_rss_mb'] for r in rows)}" for k in kinds)]
    Path(f"{stem}.md").write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for kind in kinds:
        ax.plot([r["batch"] for r in rows], [r[f"{kind}_ms"] for r in rows], "o-", label=kind)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("ms per optimizer step (median, epoch 1 excluded)")
    ax.set_title(f"Baseline model training speed, {info['cores']}-core CPU")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.savefig(f"{stem}.png", dpi=120, bbox_inches="tight")
    print("\n".join(lines))
    return Path(f"{stem}.md")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default="1,2,4,8,16,32,64,128,256",
                        type=lambda s: [int(v) for v in s.split(",")])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per measurement (>= 2)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "cnnlab-bench"))
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for cnnlab's runs, e.g. train.steps_per_execution=1")
    parser.add_argument("--worker", choices=[*FRAMEWORKS, "matmul"], help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=32, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = globals()[f"worker_{'matmul_peak' if args.worker == 'matmul' else args.worker}"](
            args)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    rows, info = measure(args)
    write_outputs(rows, info, args.out)


if __name__ == "__main__":
    main()
