"""End to end: ``cnnlab sweep batch-size`` (per --jobs value) vs its nine runs in plain Keras.

All variants train the report's baseline at batch sizes 1..256 on the same CIFAR-10 slice
for the same epochs. The plain script is the report's loop: build, compile, ``model.fit``
with validation data and a ModelCheckpoint, then ``evaluate``, for each batch size, in one
process. Each variant runs in a fresh process, timed end to end (wall clock); the order of
the variants rotates between repeats and the fastest time of each counts.

Sizes: small = 2,000 / 500 / 1,000 training / validation / test images, 4 epochs;
report = 5,000 / 1,000 / 2,000, 20 epochs. Writes benchmarks/results/sweep-<date>.md and .csv.

    python benchmarks/bench_sweep.py                            # both sizes, --jobs 1 and auto
    python benchmarks/bench_sweep.py --sizes small --jobs auto --repeats 2
    python benchmarks/bench_sweep.py --sizes small --images 200 --epochs 1 --jobs 1  # smoke
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
KERAS = "keras"


@dataclass(frozen=True)
class Size:
    name: str
    train: int
    val: int
    test: int
    epochs: int
    goal: float  # the speed-up goal against the plain loop

    def describe(self) -> str:
        return (f"{self.name} = {self.train} / {self.val} / {self.test} training / validation "
                f"/ test images, {self.epochs} epoch{'s' if self.epochs != 1 else ''}")


PRESETS = {"small": Size("small", 2000, 500, 1000, 4, 2.5),
           "report": Size("report", 5000, 1000, 2000, 20, 4.0)}


def label(jobs: str | None) -> str:
    return KERAS if jobs is None else f"cnnlab --jobs {jobs}"


def data_overrides(size: Size, args: argparse.Namespace) -> dict[str, object]:
    """The config keys every variant shares: the same slice of the same data."""
    overrides: dict[str, object] = {
        "data.train_size": size.train, "data.val_size": size.val,
        "data.test_size": size.test, "data.download": False, "data.cache_dir": args.cache_dir}
    if args.data:
        overrides["data.path"] = str(args.data)
    return overrides


def plain_keras(args: argparse.Namespace) -> None:
    """The nine runs the way the report writes them (one process, a loop)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    from cnnlab.config.files import load_config
    from cnnlab.data.dataset import load_dataset

    size = Size("plain", args.train_size, args.val_size, args.test_size, args.epochs, 1.0)
    cfg = load_config("baseline", data_overrides(size, args))
    data = load_dataset(cfg.data, cfg.seed, log=lambda _: None)
    one_hot = np.eye(10, dtype="float32")
    with tempfile.TemporaryDirectory() as tmp:
        for batch in BATCH_SIZES:
            start = time.perf_counter()
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
            print(json.dumps({"batch": batch, "seconds": time.perf_counter() - start}),
                  flush=True)


def plain_command(size: Size, args: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--plain",
           "--train-size", str(size.train), "--val-size", str(size.val),
           "--test-size", str(size.test), "--epochs", str(size.epochs),
           "--cache-dir", args.cache_dir]
    return cmd + (["--data", str(args.data)] if args.data else [])


def cnnlab_command(size: Size, jobs: str, sweep_dir: Path,
                   args: argparse.Namespace) -> list[str]:
    settings = {**data_overrides(size, args), "train.epochs": size.epochs}
    cmd = ["cnnlab", "sweep", "batch-size", "--out", str(sweep_dir), "--jobs", jobs]
    for key, value in settings.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        cmd += ["--set", f"{key}={text}"]
    return cmd


def timed(cmd: list[str]) -> tuple[float, str]:
    """Wall seconds of ``cmd`` and its standard output."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    elapsed = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"failed (exit {proc.returncode}): {shlex.join(cmd)}\n"
                 f"{(proc.stderr or proc.stdout)[-3000:]}")
    return elapsed, proc.stdout


def keep_dir(args: argparse.Namespace, size: Size, jobs: str) -> Path:
    return args.keep / f"{size.name}-jobs-{jobs}"


def run_variant(jobs: str | None, size: Size, first: bool,
                args: argparse.Namespace) -> tuple[float, list[str], str]:
    """Wall seconds, the command and its output."""
    if jobs is None:
        cmd = plain_command(size, args)
        seconds, output = timed(cmd)
        return seconds, cmd, output
    with tempfile.TemporaryDirectory() as tmp:
        kept = first and args.keep is not None
        sweep_dir = keep_dir(args, size, jobs) if kept else Path(tmp) / "sweep"
        cmd = cnnlab_command(size, jobs, sweep_dir, args)
        seconds, output = timed(cmd)
        return seconds, cmd, output


def measure(sizes: list[Size], args: argparse.Namespace) -> tuple[dict, dict, dict]:
    """Wall seconds per (size, variant label), every repeat; each first command; and the
    plain loop's seconds per batch size (first repeat) per size."""
    variants: list[str | None] = [None, *args.jobs]
    times: dict[tuple[str, str], list[float]] = {}
    commands: dict[tuple[str, str], str] = {}
    plain_runs: dict[str, dict[int, float]] = {}
    for size in sizes:
        for repeat in range(args.repeats):
            shift = repeat % len(variants)
            for jobs in variants[shift:] + variants[:shift]:
                seconds, cmd, output = run_variant(jobs, size, repeat == 0, args)
                if jobs is None and repeat == 0:
                    plain_runs[size.name] = plain_seconds(output)
                key = (size.name, label(jobs))
                times.setdefault(key, []).append(seconds)
                commands.setdefault(key, shlex.join(cmd))
                print(f"{size.name} {label(jobs)}: {seconds:.1f} s", flush=True)
    return times, commands, plain_runs


def plain_seconds(output: str) -> dict[int, float]:
    """The plain loop's seconds per batch size, from the JSON lines it prints."""
    found = {}
    for line in output.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            found[int(record["batch"])] = float(record["seconds"])
    return found


def result_rows(sizes: list[Size], times: dict) -> list[dict]:
    rows = []
    for size in sizes:
        keras_best = min(times[(size.name, KERAS)])
        for (name, variant), seconds in times.items():
            if name != size.name:
                continue
            rows.append({"size": name, "train_size": size.train, "val_size": size.val,
                         "test_size": size.test, "epochs": size.epochs, "variant": variant,
                         "best_s": round(min(seconds), 1),
                         "repeats_s": " ".join(f"{s:.1f}" for s in seconds),
                         "speedup_vs_keras": round(keras_best / min(seconds), 2)})
    return rows


def phase_sums(sweep_dir: Path) -> tuple[int, dict[str, float]]:
    """Seconds per phase summed over the sweep's runs (metrics.json ``phases``), if any."""
    runs, sums = 0, {}
    for path in sorted(sweep_dir.glob("*/metrics.json")):
        try:
            phases = json.loads(path.read_text(encoding="utf-8")).get("phases")
        except (OSError, ValueError, AttributeError):
            continue
        if not isinstance(phases, dict):
            continue
        runs += 1
        for phase, seconds in phases.items():
            if isinstance(seconds, int | float):
                sums[phase] = sums.get(phase, 0.0) + seconds
    return runs, sums


def phase_lines(sizes: list[Size], args: argparse.Namespace) -> list[str]:
    if args.keep is None:
        return []
    found = {}
    for size in sizes:
        for jobs in args.jobs:
            runs, sums = phase_sums(keep_dir(args, size, jobs))
            if sums:
                found[(size.name, label(jobs), runs)] = sums
    if not found:
        return []
    phases = list(dict.fromkeys(p for sums in found.values() for p in sums))
    lines = ["", f"Phase seconds summed over each kept sweep's runs ({args.keep}, first "
             "repeat):", "", "| size | variant | runs | " + " | ".join(phases) + " |",
             "|" + "---|" * (3 + len(phases))]
    for (name, variant, runs), sums in found.items():
        cells = " | ".join(f"{sums[p]:.1f}" if p in sums else "" for p in phases)
        lines.append(f"| {name} | {variant} | {runs} | {cells} |")
    return lines


@dataclass(frozen=True)
class RunCost:
    """One run of a kept sweep, from its metrics.json phases (seconds)."""
    batch: int
    threads: int  # TensorFlow op threads; 0: all cores
    cores: int
    run_s: float  # every phase but the TensorFlow import
    training_s: float  # first epoch (graph tracing included) and the later epochs
    steady_s: float  # every epoch at the later epochs' speed: the training's least time
    import_s: float

    @property
    def other_s(self) -> float:
        return self.run_s - self.training_s


def run_costs(sweep_dir: Path) -> list[RunCost]:
    costs = []
    for path in sorted(sweep_dir.glob("*/metrics.json")):
        metrics = json.loads(path.read_text(encoding="utf-8"))
        phases, cpu = metrics["phases"], metrics["environment"]
        config = yaml.safe_load((path.parent / "config.yaml").read_text(encoding="utf-8"))
        epochs = int(metrics["epochs_run"])
        training = phases["first_epoch"] + phases["later_epochs"]
        steady = (phases["later_epochs"] * epochs / (epochs - 1) if epochs > 1
                  else phases["first_epoch"])
        costs.append(RunCost(
            int(config["train"]["batch_size"]), int(cpu["tensorflow_cpu"]["threads"]),
            int(cpu["cpu_count"]), sum(phases.values()) - phases["tensorflow_import"],
            training, steady, phases["tensorflow_import"]))
    return costs


def floor_seconds(costs: list[RunCost]) -> float:
    """The least wall time of --jobs auto if nothing cost time but one TensorFlow import
    and the epochs at steady speed: one-thread runs packed onto the cores, longest
    first; the all-cores runs one after another."""
    lanes = [0.0] * costs[0].cores
    for cost in sorted((c for c in costs if c.threads == 1), key=lambda c: -c.steady_s):
        lanes[lanes.index(min(lanes))] += cost.steady_s
    alone = sum(c.steady_s for c in costs if c.threads != 1)
    imports = [c.import_s for c in costs if c.import_s > 0]
    return min(imports, default=0.0) + max(lanes) + alone


def cost_lines(size: Size, costs: list[RunCost], plain: dict[int, float],
               keras_s: float) -> list[str]:
    """Per run: the plain loop's seconds against cnnlab --jobs 1's; then the floor."""
    lines = ["", f"{size.name}: each run, plain Keras against cnnlab --jobs 1 (seconds; "
             "cnnlab without the TensorFlow import):", "",
             "| batch | threads | plain Keras | cnnlab | training | other | other / training |",
             "|---|---|---|---|---|---|---|"]
    for c in costs:
        keras_run = f"{plain[c.batch]:.1f}" if c.batch in plain else ""
        lines.append(f"| {c.batch} | {c.threads or 'all'} | {keras_run} | {c.run_s:.1f} | "
                     f"{c.training_s:.1f} | {c.other_s:.1f} | "
                     f"{c.other_s / c.training_s:.0%} |")
    floor = floor_seconds(costs)
    return lines + ["", f"{size.name}: the floor of --jobs auto (one TensorFlow import, every "
                    f"epoch at steady speed, nothing else; one-thread runs packed on "
                    f"{costs[0].cores} cores, all-cores runs alone): {floor:.1f} s, "
                    f"{keras_s / floor:.2f}x the plain loop's {keras_s:.1f} s "
                    f"(goal {size.goal}x)."]


def floor_lines(sizes: list[Size], args: argparse.Namespace, times: dict,
                plain_runs: dict[str, dict[int, float]]) -> list[str]:
    if args.keep is None or "1" not in args.jobs:
        return []
    lines = []
    for size in sizes:
        costs = run_costs(keep_dir(args, size, "1"))
        if costs:
            keras_s = min(times[(size.name, KERAS)])
            lines += cost_lines(size, costs, plain_runs.get(size.name, {}), keras_s)
    return lines


def provenance() -> dict:
    from cnnlab.training.loop import environment

    return environment()


def table_lines(rows: list[dict]) -> list[str]:
    lines = ["| size | variant | wall s (best) | wall s (all repeats) | vs keras |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['size']} | {r['variant']} | {r['best_s']} | {r['repeats_s']} "
                     f"| {r['speedup_vs_keras']:.2f}x |")
    return lines


def header_lines(started: str, sizes: list[Size], commands: dict,
                 args: argparse.Namespace) -> list[str]:
    env = provenance()
    lines = [f"# cnnlab sweep batch-size vs plain Keras, {started}", "",
             f"- CPU: {env['cpu']}, {env['cpu_count']} cores",
             f"- Python {env['python']}, TensorFlow {env['tensorflow']}, Keras "
             f"{env['keras']}, NumPy {env['numpy']}, cnnlab {env['cnnlab']}",
             *(f"- {size.describe()}" for size in sizes),
             f"- {args.repeats} repeat(s), variant order rotating; best time counts; "
             "wall clock of a fresh process per variant",
             f"- data: {args.data or 'cnnlab lookup'}, downloads off, cache {args.cache_dir}",
             "", "Commands:", ""]
    lines += [f"- {name} {variant}: `{cmd}`" for (name, variant), cmd in commands.items()]
    return lines + [""]


def speedups(rows: list[dict]) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    for r in rows:
        if r["variant"] != KERAS:
            found.setdefault(r["size"], {})[r["variant"]] = r["speedup_vs_keras"]
    return found


def write_outputs(rows: list[dict], lines: list[str], stem: Path) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{stem}.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    Path(f"{stem}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def name_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names or any(n not in PRESETS for n in names):
        raise argparse.ArgumentTypeError(f"give names from {', '.join(PRESETS)}")
    return names


def jobs_list(text: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values or any(v != "auto" and not (v.isdigit() and int(v) > 0) for v in values):
        raise argparse.ArgumentTypeError("give positive integers or auto, e.g. 1,auto")
    return list(dict.fromkeys(values))


def chosen_sizes(args: argparse.Namespace) -> list[Size]:
    sizes = []
    for preset in (PRESETS[n] for n in args.sizes):
        size = preset
        if args.images:
            scale = args.images / preset.train
            size = replace(size, train=args.images, val=max(1, round(preset.val * scale)),
                           test=max(1, round(preset.test * scale)))
        if args.epochs:
            size = replace(size, epochs=args.epochs)
        sizes.append(size)
    return sizes


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=name_list, default=list(PRESETS),
                        help="comma-separated: small, report (default: both)")
    parser.add_argument("--jobs", type=jobs_list, default=["1", "auto"],
                        help="cnnlab sweep --jobs values, one variant each (default: 1,auto)")
    parser.add_argument("--repeats", type=lambda n: max(1, int(n)), default=1)
    parser.add_argument("--data", type=lambda p: Path(p).resolve(), default=None,
                        help="data.path for every variant (default: cnnlab's own lookup)")
    parser.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "cnnlab-bench"))
    parser.add_argument("--images", type=int, default=None,
                        help="training images instead of the sizes' (validation and test "
                             "scaled in proportion)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs instead of the sizes'")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep cnnlab's sweep folders of the first repeat here, one per "
                             "size and --jobs value (DIR/small-jobs-auto/)")
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--train-size", "--val-size", "--test-size"):
        parser.add_argument(hidden, type=int, help=argparse.SUPPRESS)
    return parser.parse_args()


def check_keep(sizes: list[Size], args: argparse.Namespace) -> None:
    """A kept folder must start empty: cnnlab would resume a sweep found there."""
    for size in sizes:
        for jobs in args.jobs:
            folder = keep_dir(args, size, jobs)
            if folder.exists() and any(folder.iterdir()):
                sys.exit(f"{folder}: not empty; give --keep a new folder")


def main() -> None:
    args = parse_args()
    if args.plain:
        plain_keras(args)
        return
    sizes = chosen_sizes(args)
    if args.keep:
        check_keep(sizes, args)
    started = time.localtime()
    times, commands, plain_runs = measure(sizes, args)
    rows = result_rows(sizes, times)
    table = table_lines(rows)
    lines = (header_lines(time.strftime("%Y-%m-%d %H:%M", started), sizes, commands, args)
             + table + phase_lines(sizes, args) + floor_lines(sizes, args, times, plain_runs))
    stem = args.out / f"sweep-{time.strftime('%Y%m%d-%H%M', started)}"
    write_outputs(rows, lines, stem)
    print("\n".join(table))
    print(f"wrote {stem}.md, {stem}.csv")
    print(json.dumps({"speedup_vs_keras": speedups(rows)}))


if __name__ == "__main__":
    main()
