"""--dry-run time estimates: the runs laid out as --jobs trains them, speeds measured in
each run's own CPU settings."""

from __future__ import annotations

import math

import pytest

from cnnlab.config.files import load_config
from cnnlab.sweep import capacity, estimate


def config(batch: int, threads: int, epochs: int = 2):
    return load_config("baseline", {"train.batch_size": batch, "train.threads": threads,
                                    "train.onednn": batch >= 4, "train.epochs": epochs,
                                    "data.train_size": 1000})


def test_one_thread_runs_share_the_cores_and_all_core_runs_go_in_pairs() -> None:
    runs = [config(4, 1), config(4, 1), config(100, 0)]
    speeds = {estimate.speed_key(runs[0]): (0.002, 0.5, 3.0),
              estimate.speed_key(runs[2]): (0.03, 1.0, 4.0)}
    one = 250 * 2 * 0.002 + 0.5 + 3.0  # 250 steps, 2 epochs, tracing, the rest
    alone = 10 * 2 * 0.03 + 1.0 + 4.0
    fits = {n: capacity.Capacity(n, None, "") for n in (1, 2)}
    assert estimate.laid_out(runs, speeds, 7.0, fits[1]) == pytest.approx(
        7.0 + 2 * one + alone)
    paired = alone * estimate.PAIR_SLOWDOWN / 2
    assert estimate.laid_out(runs, speeds, 7.0, fits[2]) == pytest.approx(7.0 + one + paired)
    timed = capacity.Capacity(2, 2, "", all_cores_at_once=1)  # all-cores runs alone
    assert estimate.laid_out(runs, speeds, 7.0, timed) == pytest.approx(7.0 + one + alone)


def test_each_batch_size_is_measured_in_a_worker_with_its_runs_settings(tiny_config) -> None:
    runs = [tiny_config("baseline", **{"train.batch_size": 2}),  # oneDNN off, one thread
            tiny_config("baseline", **{"train.batch_size": 2, "seed": 1}),
            tiny_config("baseline", **{"train.batch_size": 64, "train.threads": 0})]
    speeds, starts_s = estimate.measured(runs)
    assert sorted(speeds) == sorted({estimate.speed_key(c) for c in runs})
    assert sorted(batch for batch, _, _ in speeds) == [2, 64]
    for step_s, tracing_s, overhead_s in speeds.values():
        assert 0 < step_s < 10 and math.isfinite(tracing_s) and tracing_s >= 0
        assert overhead_s > 0
    assert starts_s > 0  # two workers started: one per settings group


def test_sweep_dry_run_estimates_only_when_asked(sample_archive, cache_dir) -> None:
    from click.testing import CliRunner

    from cnnlab.cli import main

    args = ["sweep", "optimizer", "--dry-run", "--set", "train.epochs=1",
            "--set", "data.train_size=200", "--set", "data.val_size=100",
            "--set", f"data.path={sample_archive}", "--set", f"data.cache_dir={cache_dir}"]
    listed = CliRunner().invoke(main, args)
    assert listed.exit_code == 0 and "estimated time" not in listed.output
    estimated = CliRunner().invoke(main, [*args, "--estimate", "--jobs", "auto"])
    assert estimated.exit_code == 0, estimated.output
    assert "estimated time on this machine with --jobs auto: about " in estimated.output


def test_runs_differing_in_model_or_optimizer_are_measured_apart() -> None:
    base = config(32, 0)
    deeper = load_config("baseline", {"train.batch_size": 32, "model.filters": [8, 16]})
    adam = load_config("baseline", {"train.batch_size": 32, "train.optimizer": "adam",
                                    "train.momentum": None})
    reseeded = load_config("baseline", {"train.batch_size": 32, "seed": 7,
                                        "train.learning_rate": 0.1})
    keys = {estimate.speed_key(c) for c in (base, deeper, adam)}
    assert len(keys) == 3
    assert estimate.speed_key(reseeded) == estimate.speed_key(
        load_config("baseline", {"train.batch_size": 32}))
