"""``cnnlab reproduce``: its ``--dry-run`` estimate against the wall time it then takes.

Runs, in fresh processes one after the other, ``cnnlab reproduce --dry-run`` (its
estimate, and the time the estimate itself took) and then ``cnnlab reproduce`` with the
same options into a new folder, timed end to end. Writes
benchmarks/results/reproduce-<date>.md: the estimate, the wall time, their ratio (the
issue's goal: within 25 %), and the seconds per phase summed over every run of the
study (metrics.json ``phases``), so that a before/after pair shows where time went.

    python benchmarks/bench_reproduce.py                             # defaults, --jobs auto
    python benchmarks/bench_reproduce.py --data ../shared/datasets/cifar10-jpg.tar.gz
    python benchmarks/bench_reproduce.py --repeats 1 --set train.epochs=1 \\
        --set data.train_size=200 --set data.val_size=100 --set data.test_size=100  # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ESTIMATE = re.compile(r"estimated time on this machine.*?: about (?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


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


def estimate_seconds(output: str) -> float:
    """The dry run's estimate (``about 1h02m``, ``12m05s``, ``45s``) in seconds."""
    found = ESTIMATE.search(output)
    if not found:
        sys.exit(f"no estimate in the dry run's output:\n{output[-2000:]}")
    hours, minutes, seconds = (int(g or 0) for g in found.groups())
    return 3600 * hours + 60 * minutes + seconds


def phase_sums(study: Path) -> tuple[int, dict[str, float]]:
    """Seconds per phase summed over every run of the study."""
    runs, sums = 0, {}
    for path in sorted(study.glob("*/*/metrics.json")):
        phases = json.loads(path.read_text(encoding="utf-8")).get("phases") or {}
        runs += 1
        for phase, seconds in phases.items():
            sums[phase] = sums.get(phase, 0.0) + float(seconds)
    return runs, sums


def report_lines(commands: list[list[str]], dry_s: float, estimate_s: float, wall_s: float,
                 study: Path) -> list[str]:
    from cnnlab.training.loop import environment

    env = environment()
    runs, sums = phase_sums(study)
    ratio = estimate_s / wall_s
    lines = [f"# cnnlab reproduce: estimate against wall time, {time.strftime('%Y-%m-%d %H:%M')}",
             "", f"- CPU: {env['cpu']}, {env['cpu_count']} cores; Python {env['python']}, "
             f"TensorFlow {env['tensorflow']}, Keras {env['keras']}, cnnlab {env['cnnlab']}",
             *(f"- `{shlex.join(c)}`" for c in commands), "",
             "| | seconds |", "|---|---|",
             f"| `--dry-run` estimate | {estimate_s:.0f} |",
             f"| the dry run itself (measuring) | {dry_s:.1f} |",
             f"| `cnnlab reproduce` wall | {wall_s:.1f} |",
             f"| estimate / wall | {ratio:.2f} ({'within' if abs(ratio - 1) <= .25 else 'outside'} "
             "the goal's 25 %) |", "",
             f"Seconds per phase, summed over the study's {runs} runs:", "",
             "| phase | seconds |", "|---|---|"]
    return lines + [f"| {phase} | {seconds:.1f} |" for phase, seconds in sums.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", default="auto")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--data", help="data.path for every run (default: cnnlab's lookup)")
    parser.add_argument("--keep", type=Path, help="the study folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    sets = [*args.sets, "data.download=false", *([f"data.path={args.data}"] if args.data else [])]
    options = ["--repeats", str(args.repeats), "--jobs", str(args.jobs),
               *(a for s in sets for a in ("--set", s))]
    with tempfile.TemporaryDirectory() as scratch:
        study = args.keep or Path(scratch) / "study"
        dry = [sys.executable, "-m", "cnnlab.cli", "reproduce", "--dry-run", *options]
        real = [sys.executable, "-m", "cnnlab.cli", "reproduce", *options, "--out", str(study)]
        dry_s, output = timed(dry)
        wall_s, _ = timed(real)
        lines = report_lines([dry, real], dry_s, estimate_seconds(output), wall_s, study)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"reproduce-{time.strftime('%Y%m%d-%H%M')}.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
