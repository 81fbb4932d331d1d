"""Searches on Optuna (``search:`` + ``space:`` in a sweep file): a real TPE search with
median pruning through the CLI, a search killed with SIGKILL mid-trial and resumed, an
invalid sample recorded as a failed trial, and every validation error of the file."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from helpers import assert_png, one_line_error, user_env

from cnnlab.errors import ConfigError
from cnnlab.sweep.run import run_sweep
from cnnlab.sweep.search import pruning
from cnnlab.sweep.search import trials as search
from cnnlab.sweep.spec import load_sweep, sweep_from_dict, trial_name

EPOCHS = 5
SPACE = {"train.learning_rate": {"low": 1.0e-7, "high": 3.0e-2, "log": True},
         "train.batch_size": {"choices": [16, 32]},
         "model.dense_dropout": {"low": 0.0, "high": 0.4, "step": 0.1},
         "model.filters": {"choices": [[8, 16], [8, 16, 32]]}}


def write_search(folder: Path, sample_archive: Path, cache_dir: Path, trials: int = 6,
                 space: dict | None = None, epochs: int = EPOCHS, train_size: int = 300,
                 strategy: str = "tpe") -> Path:
    path = folder / "lr-search.yaml"
    path.write_text(yaml.safe_dump({
        "name": "lr-search", "base": "best",
        "search": {"strategy": strategy, "trials": trials, "metric": "best_val_accuracy",
                   "direction": "maximize", "pruner": "median", "seed": 0},
        "space": space or SPACE,
        "set": {"data.path": str(sample_archive), "data.cache_dir": str(cache_dir),
                "data.download": False, "data.train_size": train_size, "data.val_size": 100,
                "data.test_size": 100, "train.epochs": epochs, "train.verbose": 0}}))
    return path


def cnnlab(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnnlab", *args], cwd=cwd, env=user_env(),
                          capture_output=True, text=True, timeout=900)


def rows(sweep_dir: Path) -> list[dict[str, str]]:
    with (sweep_dir / "results.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def epochs_run(run_dir: Path) -> int:
    with (run_dir / "history.csv").open(newline="", encoding="utf-8") as handle:
        return len(list(csv.DictReader(handle)))


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory, sample_archive: Path,
             cache_dir: Path) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("search")
    spec = write_search(root, sample_archive, cache_dir)
    out = cnnlab("sweep", str(spec), "--out", "s", cwd=root)
    assert out.returncode == 0, out.stdout + out.stderr
    return root / "s", out.stdout


def test_tpe_search_with_pruning_runs_its_trials(searched: tuple[Path, str]) -> None:
    sweep_dir, output = searched
    found = rows(sweep_dir)
    assert len(found) == 6 and [r["run"][:4] for r in found] == [f"{i:03d}-" for i in
                                                                  range(1, 7)]
    statuses = [r["status"] for r in found]
    assert set(statuses) <= {"finished", "early_stopped", "pruned"} and "finished" in statuses
    pruned = [r for r in found if r["status"] == "pruned"]
    assert pruned, statuses  # the tiny learning rates fall behind the median
    for row in pruned:  # stopped early, its folder and history kept
        run = sweep_dir / row["run"]
        assert 2 <= epochs_run(run) < EPOCHS  # the median rule waits one epoch
        assert json.loads((run / "metrics.json").read_text())["epochs_run"] == epochs_run(run)
        assert row["rank"] == ""  # a pruned trial is not ranked, nor the winner
    for row in found:
        lr = float(row["train.learning_rate"])
        assert 1.0e-7 <= lr <= 3.0e-2
        assert row["train.batch_size"] in ("16", "32")
        dropout = float(row["model.dense_dropout"])
        assert 0.0 <= dropout <= 0.4 and math.isclose(dropout * 10, round(dropout * 10))
        assert row["model.filters"] in ("[8, 16]", "[8, 16, 32]")
        config = yaml.safe_load((sweep_dir / row["run"] / "config.yaml").read_text())
        assert config["train"]["learning_rate"] == pytest.approx(lr)  # the run used it
    saved = sum(EPOCHS - epochs_run(sweep_dir / r["run"]) for r in pruned)
    assert f"pruning saved {saved} of {6 * EPOCHS} epochs" in output


def test_search_study_best_config_and_figures(searched: tuple[Path, str]) -> None:
    sweep_dir, _ = searched
    study = optuna.load_study(study_name="lr-search",
                              storage=f"sqlite:///{sweep_dir / 'study.db'}")
    states = [t.state.name for t in study.trials]
    assert len(states) == 6 and "RUNNING" not in states
    ranked = sorted((r for r in rows(sweep_dir) if r["rank"]), key=lambda r: int(r["rank"]))
    best = yaml.safe_load((sweep_dir / "best_config.yaml").read_text())
    winner = yaml.safe_load((sweep_dir / ranked[0]["run"] / "config.yaml").read_text())
    assert best["train"] == winner["train"] and best["model"] == winner["model"]
    assert study.best_value == pytest.approx(float(ranked[0]["best_val_accuracy"]))
    assert_png(sweep_dir / "history.png")
    assert_png(sweep_dir / "importance.png", min_size=(300, 150))
    page = (sweep_dir / "report.html").read_text(encoding="utf-8")
    assert 'data-file="history.png"' in page and 'data-file="importance.png"' in page


def test_dry_run_prints_the_space_and_trials(tmp_path: Path, sample_archive: Path,
                                             cache_dir: Path) -> None:
    spec = write_search(tmp_path, sample_archive, cache_dir)
    out = cnnlab("sweep", str(spec), "--dry-run", "--trials", "9", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "lr-search" in out.stdout and "9 trials" in out.stdout
    assert "train.learning_rate: float 1e-07 .. 0.03, log scale" in out.stdout
    assert "model.filters: one of [[8, 16], [8, 16, 32]]" in out.stdout
    assert not list(tmp_path.glob("outputs/*"))


def test_sigkill_mid_trial_then_resume_reaches_exactly_the_trials(
        tmp_path: Path, sample_archive: Path, cache_dir: Path) -> None:
    spec = write_search(tmp_path, sample_archive, cache_dir, trials=3, epochs=6,
                        train_size=600, space={"train.learning_rate": {
                            "low": 1.0e-3, "high": 1.0e-2, "log": True}})
    out = tmp_path / "s"
    process = subprocess.Popen([sys.executable, "-m", "cnnlab", "sweep", str(spec), "--out",
                                str(out)], cwd=tmp_path, env=user_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # the second trial has trained an epoch
        assert process.poll() is None, process.stderr.read()
        if len(list(out.glob("*/metrics.json"))) == 1 and list(out.glob("002-*/history.csv")):
            break
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    first = next(out.glob("001-*/metrics.json"))
    mark = (first.stat().st_mtime_ns, first.read_bytes())

    again = cnnlab("sweep", str(spec), "--out", str(out), cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming: 1 finished earlier, kept" in again.stdout
    assert "was cut off by the end of the last sweep process" in again.stdout
    assert (first.stat().st_mtime_ns, first.read_bytes()) == mark  # untouched
    found = rows(out)
    assert len(found) == 3 and all(r["status"] in ("finished", "early_stopped", "pruned")
                                   for r in found), [r["status"] for r in found]
    folders = sorted(p.name for p in out.iterdir() if p.is_dir() and p.name[:3].isdigit())
    assert folders == sorted(r["run"] for r in found)  # no stray partial folder
    study = optuna.load_study(study_name="lr-search", storage=f"sqlite:///{out / 'study.db'}")
    states = [t.state.name for t in study.trials]
    assert len(states) == 4 and states.count("FAIL") == 1  # the cut-off one
    assert set(states) - {"FAIL"} <= {"COMPLETE", "PRUNED"}
    cut = next(t for t in study.trials if t.state.name == "FAIL")
    redone = next(t for t in study.trials if t.number == cut.number + 1)
    assert redone.params == cut.params  # its values were asked again
    more = cnnlab("sweep", str(spec), "--out", str(out), "--trials", "4", cwd=tmp_path)
    assert more.returncode == 0, more.stderr
    assert len(rows(out)) == 4 and (first.stat().st_mtime_ns, first.read_bytes()) == mark


def test_an_invalid_sample_is_a_failed_trial_and_the_search_goes_on(
        tmp_path: Path, sample_archive: Path, cache_dir: Path) -> None:
    # two kernel sizes for the three blocks of best's filters: not a valid config.
    # Through the Python API, in this process (the CLI is tested above).
    spec = write_search(tmp_path, sample_archive, cache_dir, trials=5, epochs=1,
                        strategy="random", space={
                            "model.kernel_size": {"choices": [3, [3, 3]]},
                            "train.learning_rate": {"low": 1.0e-3, "high": 1.0e-2}})
    lines: list[str] = []
    sweep_dir = run_sweep(load_sweep(str(spec)), tmp_path / "s", log=lines.append)
    found = rows(sweep_dir)
    assert len(found) == 5
    failed = [r for r in found if r["status"] == "failed"]
    assert failed and len(failed) < 5, [r["status"] for r in found]
    for row in failed:
        assert row["model.kernel_size"] == "[3, 3]"
        error = json.loads((sweep_dir / row["run"] / "error.json").read_text())
        assert "invalid sample" in error["error"] and "model.kernel_size" in error["error"]
    assert any("invalid sample, recorded as failed" in line for line in lines)
    assert any(f"search: 5 trials ({len(failed)} failed, {5 - len(failed)} finished)" in line
               for line in lines), lines[-3:]
    assert_png(sweep_dir / "history.png")


def test_a_trial_cut_off_by_a_dead_sweep_is_failed_and_asked_again(
        tmp_path: Path, sample_archive: Path, cache_dir: Path) -> None:
    sweep = load_sweep(str(write_search(tmp_path, sample_archive, cache_dir, trials=2)))
    sweep_dir = tmp_path / "s"
    sweep_dir.mkdir()
    study = search.open_study(sweep, sweep_dir)
    trial = study.ask()  # asked by a sweep process that was then killed mid-trial
    params = search.suggest(trial, sweep.space)
    run_id = trial_name(0, params)
    trial.set_user_attr("run", run_id)
    (sweep_dir / run_id).mkdir()
    (sweep_dir / run_id / "history.csv").write_text("epoch\n1\n")
    lines: list[str] = []
    trials = search.Trials(sweep, sweep_dir, lines.append)
    assert "was cut off by the end of the last sweep process" in lines[0]
    assert not (sweep_dir / run_id).exists()  # its partial folder
    assert trials.runs == [] and trials.left() == 2  # not counted
    again = trials.next_run()
    assert again.id == run_id and again.overrides == params  # the same values, asked again
    assert again.trial.pruner == "median" and again.trial.epochs == EPOCHS
    cut = study.trials[0]
    assert cut.state.name == "FAIL" and cut.user_attrs["failed_reason"] == "interrupted"


def test_the_pruners_a_search_can_name() -> None:
    assert isinstance(pruning.make_pruner("median", 20, 10), optuna.pruners.MedianPruner)
    assert isinstance(pruning.make_pruner("hyperband", 20, 10),
                      optuna.pruners.HyperbandPruner)
    assert isinstance(pruning.make_pruner("none", 20, 10), optuna.pruners.NopPruner)


BAD = [
    ({"search": {"strategy": "tpe", "trails": 5}}, "search: unknown key 'trails'; did you "
                                                   "mean 'trials'?"),
    ({"search": {"strategy": "bayes"}}, "search: strategy: got 'bayes'; expected one of "
                                        "grid, random, tpe"),
    ({"search": {"pruner": "medain"}}, "did you mean 'median'?"),
    ({"search": {"trials": 0}}, "search: trials: got 0; expected a whole number >= 1"),
    ({"search": {"metric": "final_val_loss", "direction": "maximize"}},
     "direction maximize for final_val_loss, which is better lower; use minimize"),
    ({"space": None}, "a search needs 'space:'"),
    ({"space": {"train.learning_rate": {"low": 0.1, "high": 0.01}}},
     "space: train.learning_rate: low 0.1 is greater than high 0.01; swap them"),
    ({"space": {"train.learning_rate": {"low": 0.0, "high": 0.1, "log": True}}},
     "log: true needs low > 0"),
    ({"space": {"train.batch_size": {"choices": []}}},
     "space: train.batch_size: choices: got []; expected a non-empty list"),
    ({"space": {"train.learning_rat": {"low": 0.001, "high": 0.1}}},
     "unknown key 'train.learning_rat'; did you mean 'train.learning_rate'?"),
    ({"space": {"train.learning_rate": {"low": 0.001, "hgih": 0.1}}},
     "unknown key 'hgih'; did you mean 'high'?"),
    ({"space": {"train.batch_size": {"choices": [8], "low": 1}}},
     "choices cannot be combined with low"),
    ({"repeats": 3}, "repeats 3 with strategy tpe"),
    ({"axes": {"train.batch_size": [8, 16]}}, "axes: not used with search:"),
]


@pytest.mark.parametrize(("change", "message"), BAD)
def test_search_file_errors(change: dict, message: str) -> None:
    raw = {"base": "best", "search": {"strategy": "tpe", "trials": 4},
           "space": {"train.learning_rate": {"low": 1.0e-4, "high": 0.1, "log": True}}}
    for key, value in change.items():
        if key == "search":
            raw["search"] = {**raw["search"], **value}
        elif value is None:
            raw.pop(key)
        else:
            raw[key] = value
    with pytest.raises(ConfigError) as error:
        sweep_from_dict(raw, "s.yaml")
    assert message in str(error.value)


def test_search_errors_from_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"base": "best", "space": {
        "train.learning_rate": {"low": 1.0e-4, "high": 0.1}}}))
    out = cnnlab("sweep", "s.yaml", cwd=tmp_path)
    assert out.returncode == 2
    one_line_error(out.stderr, "s.yaml: space: needs a 'search:'")
    out = cnnlab("sweep", "optimizer", "--trials", "5", cwd=tmp_path)
    one_line_error(out.stderr, "--trials: optimizer is not a search")
    assert not (tmp_path / "outputs").exists()


def test_builtin_search_and_grid_strategy() -> None:
    builtin = load_sweep("search")
    assert builtin.search.strategy == "tpe" and builtin.search.trials == 20
    assert builtin.search.pruner == "median" and not builtin.runs
    assert list(builtin.space) == ["train.learning_rate", "train.batch_size",
                                   "model.dense_dropout", "model.filters"]
    grid = sweep_from_dict({"base": "best", "search": {"strategy": "grid"}, "space": {
        "train.batch_size": {"choices": [16, 32]}, "train.epochs": {
            "low": 1, "high": 2}}}, "g.yaml")
    assert len(grid.runs) == 4  # the grid of the choices, as axes
    assert [r.overrides for r in grid.runs][:2] == [
        {"train.batch_size": 16, "train.epochs": 1},
        {"train.batch_size": 16, "train.epochs": 2}]
    with pytest.raises(ConfigError, match="strategy grid needs choices"):
        sweep_from_dict({"base": "best", "search": {"strategy": "grid"}, "space": {
            "train.learning_rate": {"low": 0.001, "high": 0.1}}}, "g.yaml")


def test_trials_that_ran_their_last_epoch_are_finished_not_pruned(
        tmp_path: Path, sample_archive: Path, cache_dir: Path) -> None:
    """With 2 epochs the median rule may answer "prune" at the last epoch: such a trial
    trained every epoch, so it is finished and ranked; findings advise no --repeats (the
    search refuses them), and a missing importance.png says why."""
    from click.testing import CliRunner

    from cnnlab.cli import main

    spec = write_search(tmp_path, sample_archive, cache_dir, trials=4, epochs=2,
                        train_size=200)
    result = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    found = rows(tmp_path / "s")
    assert [r["status"] for r in found] == ["finished"] * 4
    assert sorted(int(r["rank"]) for r in found) == [1, 2, 3, 4]
    assert "search: 4 trials (4 finished); pruning saved 0 of 8 epochs" in result.output
    findings = (tmp_path / "s" / "findings.md").read_text(encoding="utf-8")
    assert "a search takes no repeats" in findings and "run the sweep with" not in findings
    refused = CliRunner().invoke(main, ["sweep", str(spec), "--repeats", "3"])
    assert refused.exit_code == 2 and "repeats 3 with strategy tpe" in refused.stderr

    one = CliRunner().invoke(main, ["sweep", str(write_search(
        tmp_path, sample_archive, cache_dir, trials=1, epochs=1, train_size=200)),
        "--out", str(tmp_path / "one")])
    assert one.exit_code == 0, one.output
    reason = "importance.png not drawn: 1 finished trial; it needs at least two"
    assert reason in one.output and not (tmp_path / "one" / "importance.png").exists()
    page = (tmp_path / "one" / "report.html").read_text(encoding="utf-8")
    assert "<code>importance.png</code> is not drawn: 1 finished trial" in page
