"""``cnnlab sweep --repeats auto`` on real images through the CLI: a far arm stops at the
minimum seeds while a close pair gets more; the budget stops a round; a sweep killed
with SIGKILL mid-round resumes with the same decisions and redoes no finished run; an arm
without a race (``cnnlab reproduce``'s best model) is given its maximum, within the budget."""

from __future__ import annotations

import csv
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from helpers import one_line_error, user_env

from cnnlab.cli import main
from cnnlab.errors import ConfigError
from cnnlab.sweep import estimate
from cnnlab.sweep.run import run_sweep
from cnnlab.sweep.runner import format_duration
from cnnlab.sweep.seeds import MINIMUM_ONLY, runs_that_fit
from cnnlab.sweep.sequential import Design
from cnnlab.sweep.spec import sweep_from_dict


def write_sweep(folder: Path, sample_archive: Path, cache_dir: Path) -> Path:
    """Three arms of the best model: learning rate 0.003 and 0.0031 (a close pair) and
    1e-6 (far: it barely learns in 2 epochs)."""
    path = folder / "adaptive.yaml"
    path.write_text(yaml.safe_dump({
        "name": "adaptive", "base": "best", "select_by": "final_val_loss",
        "variants": {"good": {"train.learning_rate": 0.003},
                     "close": {"train.learning_rate": 0.0031},
                     "far": {"train.learning_rate": 1e-6}},
        "set": {"data.path": str(sample_archive), "data.cache_dir": str(cache_dir),
                "data.download": False, "data.train_size": 600, "data.val_size": 300,
                "data.test_size": 100, "train.epochs": 2, "train.verbose": 0}}))
    return path


def cnnlab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cnnlab", "sweep", *args], cwd=cwd,
                          env=user_env(), capture_output=True, text=True, timeout=900)


def summary(sweep_dir: Path) -> dict[str, dict[str, str]]:
    with (sweep_dir / "summary.csv").open(newline="", encoding="utf-8") as handle:
        return {row["variant"]: row for row in csv.DictReader(handle)}


def finished(sweep_dir: Path) -> dict[str, tuple[int, bytes]]:
    return {p.parent.name: (p.stat().st_mtime_ns, p.read_bytes())
            for p in sweep_dir.glob("*/metrics.json")}


def test_dry_run_gives_the_least_and_the_most_runs_and_their_times(
        tmp_path: Path, sample_archive: Path, cache_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The speeds are given here (measuring them: test_estimate)."""
    monkeypatch.setattr(estimate, "measured", lambda configs: (
        {estimate.speed_key(c): (0.001, 0.5, 2.0) for c in configs}, 3.0))
    sweep = write_sweep(tmp_path, sample_archive, cache_dir)
    plan = CliRunner().invoke(main, ["sweep", str(sweep), "--repeats", "auto",
                                     "--max-repeats", "5", "--dry-run"])
    assert plan.exit_code == 0, plan.output
    assert "15 runs at most (3 arms x 3..5 seeds, adaptive: 9 runs at least" in plan.output
    help_text = " ".join(CliRunner().invoke(main, ["sweep", "--help"]).output.split())
    assert f"at most (default {Design().max_repeats})" in help_text
    for runs, line in ((9, "9 runs at least"), (15, "15 runs at most")):
        seconds = 3.0 + runs * (19 * 2 * 0.001 + 0.5 + 2.0)  # 19 steps (600 images, batch
        # 32) x 2 epochs, the tracing and the rest of each run, after the workers' start
        assert (f"{line} in this sweep; estimated time on this machine with --jobs 1: about "
                f"{format_duration(seconds)}") in plan.output
    assert not (tmp_path / "outputs").exists()


def test_far_arm_stops_at_the_minimum_close_pair_gets_more_kill_and_resume(
        tmp_path: Path, sample_archive: Path, cache_dir: Path) -> None:
    sweep, out = write_sweep(tmp_path, sample_archive, cache_dir), tmp_path / "s"
    seeds = ["--repeats", "auto", "--max-repeats", "4"]

    # a budget spent by the minimum seeds: the far arm is decided, the pair stays open
    first = cnnlab(str(sweep), *seeds, "--budget", "1s", "--out", str(out), cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    arms = summary(out)
    assert {v: (a["seeds"], a["outcome"], a["stopped"]) for v, a in arms.items()} == {
        "good": ("3", "inconclusive", "budget"), "close": ("3", "inconclusive", "budget"),
        "far": ("3", "worse", "decided")}
    assert "would pass the budget" in first.stdout
    before = finished(out)
    assert len(before) == 9

    # without the budget it goes on; killed mid-round (a 4th seed training)
    process = subprocess.Popen([sys.executable, "-m", "cnnlab", "sweep", str(sweep), *seeds,
                                "--out", str(out), "--jobs", "2"], cwd=tmp_path,
                               env=user_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list(out.glob("*-r3/history.csv")) and time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    time.sleep(1.5)  # its workers stop within a second
    killed = finished(out)
    assert set(before) <= set(killed)

    again = cnnlab(str(sweep), *seeds, "--out", str(out), "--jobs", "2", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    for run, mark in killed.items():
        assert finished(out)[run] == mark, f"{run} was redone"
    arms = summary(out)
    assert (arms["far"]["seeds"], arms["far"]["outcome"]) == ("3", "worse")
    assert int(arms["good"]["seeds"]) > 3 and int(arms["close"]["seeds"]) > 3
    assert arms["good"]["stopped"] in ("decided", "max_repeats")
    assert not list(out.glob("003-far-r3*"))  # the far arm never got a 4th seed
    with (out / "results.csv").open(newline="", encoding="utf-8") as handle:
        runs = [r["run"] for r in csv.DictReader(handle)]
    assert len(runs) == len(set(runs)) == sum(int(a["seeds"]) for a in arms.values())
    assert sorted(runs) == sorted(finished(out))
    assert len(killed) < len(runs)  # the kill came mid-way: the resumed sweep trained more
    text = (out / "findings.md").read_text(encoding="utf-8")
    assert "far: decided **worse** after 3 seeds." in text
    saved = 12 - len(runs)
    assert f"would take 12: {saved} runs saved" in text

    done = finished(out)
    (out / "seeds.json").write_bytes(b'{"spent_s": "\xff')  # the time record damaged
    damaged = CliRunner().invoke(main, ["sweep", str(sweep), *seeds, "--out", str(out)])
    assert damaged.exit_code == 2
    one_line_error(damaged.stderr, f"{out / 'seeds.json'}: damaged", "delete it to resume")
    assert finished(out) == done


@pytest.mark.parametrize(("args", "fragment"), [
    (["--repeats", "auto", "--budget", "1x"], "--budget: got '1x'; expected a duration such "
                                              "as 30m, 1h30m, 90s or 2h"),
    (["--repeats", "auto", "--budget", "0m"], "--budget: got '0m'; expected a duration above"),
    (["--repeats", "3", "--budget", "1h"], "--budget: only with --repeats auto"),
    (["--repeats", "3", "--max-repeats", "5"], "--min-repeats/--max-repeats: only with "
                                               "--repeats auto"),
    (["--repeats", "auto", "--min-repeats", "6", "--max-repeats", "5"],
     "--min-repeats 6, --max-repeats 5: expected 2 <= min <= max"),
])
def test_seed_options_that_cannot_be_used_are_refused(tmp_path: Path, args: list[str],
                                                      fragment: str) -> None:
    out = cnnlab("optimizer", "--out", str(tmp_path / "s"), *args, cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert fragment in one_line_error(out.stderr)
    assert not (tmp_path / "s").exists()


def test_repeats_auto_in_a_sweep_file_plans_the_most_runs() -> None:
    raw = {"name": "lr", "base": "baseline", "repeats": "auto",
           "axes": {"train.learning_rate": [0.001, 0.01]}}
    sweep = sweep_from_dict(raw, seeds=(2, 4))
    assert sweep.adaptive == Design(min_repeats=2, max_repeats=4) and sweep.repeats == 4
    assert [r.id for r in sweep.runs][:4] == [f"001-learning_rate=0.001-r{i}" for i in range(4)]
    assert [r.config.seed for r in sweep.runs[:4]] == [0, 1, 2, 3]
    assert {r.config.data.split_seed for r in sweep.runs} == {0}
    record = sweep.record()
    assert (record["repeats"], record["min_repeats"], record["max_repeats"]) == ("auto", 2, 4)
    assert sweep_from_dict({**raw, "repeats": 3}).adaptive is None
    search = {"name": "s", "base": "baseline", "repeats": "auto",
              "search": {"strategy": "tpe", "trials": 4},
              "space": {"train.learning_rate": {"low": 1e-4, "high": 1e-1, "log": True}}}
    with pytest.raises(ConfigError, match="repeats auto with strategy tpe"):
        sweep_from_dict(search)


def test_a_round_fits_the_budget_whole_or_not_at_all_and_a_raceless_one_in_part() -> None:
    """A race's round runs whole or not at all (its look needs every run); the seeds of
    an arm without a race (the best model's in ``cnnlab reproduce``) run as far as fit."""
    assert runs_that_fit(4, 100.0, 50.0, 2, race=True) == 4  # two at a time: 2 x 50 s
    assert runs_that_fit(4, 99.0, 50.0, 2, race=True) == 0
    assert runs_that_fit(7, 99.0, 50.0, 2, race=False) == 2  # one turn of two slots fits
    assert runs_that_fit(7, 49.0, 50.0, 2, race=False) == 0
    assert runs_that_fit(3, 1000.0, 50.0, 2, race=False) == 3
    assert runs_that_fit(7, 120.0, 50.0, 0, race=False) == 2  # no slot known: one at a time


def test_an_arm_without_a_race_is_given_the_maximum_then_stopped_by_the_budget(
        tmp_path: Path, sample_archive: Path, cache_dir: Path) -> None:
    """An arm of ``cnnlab reproduce``'s second pass, on real images: a first pass gives
    it its minimum only; after that it is given the rest of its seeds at once (no look
    decides it), unless a budget spent already stops it, reported as such; an arm no
    open claim needs (``far``) keeps its minimum."""
    raw = yaml.safe_load(write_sweep(tmp_path, sample_archive, cache_dir).read_text())
    raw["variants"] = {"good": raw["variants"]["good"], "far": raw["variants"]["far"]}
    raced = sweep_from_dict(raw, repeats="auto", seeds=(2, 4))
    sweep = dataclasses.replace(raced, adaptive=dataclasses.replace(
        raced.adaptive, race=False, arms=frozenset({"001-good"})))
    lines: list[str] = []
    out = run_sweep(sweep, tmp_path / "s", log=lines.append, budget_s=MINIMUM_ONLY)
    assert (summary(out)["good"]["seeds"], summary(out)["good"]["stopped"]) == ("2", "minimum")
    assert "seeds: 2 runs still wanted after the minimum seeds; no more seeds in this pass" \
        in lines
    run_sweep(sweep, out, log=lines.append, budget_s=1.0)  # spent already
    assert (summary(out)["good"]["seeds"], summary(out)["good"]["stopped"]) == ("2", "budget")
    assert any("the rest (2 runs" in line and "would pass the budget" in line for line in lines)
    lines.clear()
    run_sweep(sweep, out, log=lines.append)  # resumed without a budget
    arm, far = summary(out)["good"], summary(out)["far"]
    assert (arm["seeds"], arm["stopped"]) == ("4", "max_repeats")
    assert (far["seeds"], far["stopped"], far["n"]) == ("2", "minimum", "2")
    assert "seeds: 2 more seeds, no race (the runs serve a test made at the end): " \
        "001-good-r2, 001-good-r3" in lines
