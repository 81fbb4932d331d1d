"""A search's faults (issue 27), through the CLI: a lost, emptied or damaged study.db is
rebuilt from the trial folders (no finished trial trained again), and a continued search
(more --trials, a resume after a kill) never draws values already tried."""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import pytest
import yaml
from click.testing import CliRunner
from helpers import one_line_error, tiny_sets

from cnnlab.cli import main
from cnnlab.runs import layout, storage
from cnnlab.sweep.search import trials as search
from cnnlab.sweep.spec import load_sweep

LR = {"train.learning_rate": {"low": 1.0e-4, "high": 1.0e-1, "log": True}}


def search_file(folder: Path, sample_archive: Path, cache_dir: Path, strategy: str = "random",
                trials: int = 2, space: dict | None = None) -> Path:
    path = folder / f"{strategy}.yaml"
    path.write_text(yaml.safe_dump({
        "name": "fs", "base": "baseline",
        "search": {"strategy": strategy, "trials": trials, "metric": "best_val_accuracy",
                   "direction": "maximize", "pruner": "none", "seed": 0},
        "space": space or LR,
        "set": {**tiny_sets(sample_archive, cache_dir, epochs=1), "data.train_size": 200,
                "model.filters": [4], "model.dense": [8], "tracking.tensorboard": False}}))
    return path


def sweep(spec: Path, out: Path, *more: str):
    return CliRunner().invoke(main, ["sweep", str(spec), "--out", str(out), *more])


def trial_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir() and p.name[:3].isdigit())


def learning_rates(out: Path) -> list[float]:
    return [yaml.safe_load((p / layout.CONFIG_FILE).read_text())["train"]["learning_rate"]
            for p in trial_dirs(out)]


def records(out: Path) -> dict[str, bytes]:
    return {p.name: (p / layout.METRICS_FILE).read_bytes() for p in trial_dirs(out)}


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory, sample_archive: Path,
             cache_dir: Path) -> tuple[Path, Path]:
    """(search file, a finished random search of 2 trials); read-only."""
    root = tmp_path_factory.mktemp("search-faults")
    spec = search_file(root, sample_archive, cache_dir)
    result = sweep(spec, root / "done")
    assert result.exit_code == 0, result.output
    assert len(trial_dirs(root / "done")) == 2
    return spec, root / "done"


@pytest.fixture
def copy(searched: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    spec, done = searched
    shutil.copytree(done, tmp_path / "s")
    return spec, tmp_path / "s"


def test_continuing_a_search_draws_new_values(copy: tuple[Path, Path]) -> None:
    spec, out = copy
    before = learning_rates(out)
    result = sweep(spec, out, "--trials", "3")
    assert result.exit_code == 0, result.output
    after = learning_rates(out)
    assert after[:2] == before and len(after) == 3
    assert after[2] not in before  # the sampler did not start over from its seed


@pytest.mark.parametrize("damage", ["deleted", "empty", "cut in half", "garbage"])
def test_a_lost_or_damaged_study_is_rebuilt_and_no_trial_is_trained_again(
        copy: tuple[Path, Path], damage: str) -> None:
    spec, out = copy
    kept, before = records(out), learning_rates(out)
    db = out / search.STUDY_FILE
    if damage == "deleted":
        db.unlink()
    elif damage == "empty":
        db.write_bytes(b"")
    elif damage == "cut in half":
        db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])
    else:
        db.write_bytes(b"\x00garbage" * 100)
    result = sweep(spec, out, "--trials", "3")
    assert result.exit_code == 0, result.output
    assert "rebuilt from 2 finished trial folders" in result.output
    assert "cleared the unfinished folder" not in result.output
    assert {k: v for k, v in records(out).items() if k in kept} == kept  # not retrained
    after = learning_rates(out)
    assert after[:2] == before and len(after) == 3 and after[2] not in before
    if damage in ("cut in half", "garbage"):  # kept beside, for whoever wants to look
        assert len(list(out.glob("study.db.damaged-*"))) == 1
    study = optuna.load_study(study_name="fs", storage=f"sqlite:///{db}")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert [t.user_attrs["run"] for t in study.trials] == [p.name for p in trial_dirs(out)]


def test_a_lost_study_with_an_unreadable_trial_stops_in_one_line(
        copy: tuple[Path, Path]) -> None:
    spec, out = copy
    (out / search.STUDY_FILE).unlink()
    first = trial_dirs(out)[0]
    (first / layout.CONFIG_FILE).write_bytes(b"\xff\xfe not yaml")
    kept = records(out)
    result = sweep(spec, out, "--trials", "3")
    assert result.exit_code == 2
    one_line_error(result.stderr, f"{out / search.STUDY_FILE}: lost or damaged",
                   first.name, "put back the study.db")
    assert records(out) == kept and len(trial_dirs(out)) == 2


def test_a_tpe_search_resumed_after_a_kill_draws_no_repeat(
        tmp_path: Path, sample_archive: Path, cache_dir: Path) -> None:
    spec = search_file(tmp_path, sample_archive, cache_dir, strategy="tpe", trials=1)
    out = tmp_path / "s"
    assert sweep(spec, out).exit_code == 0
    # a second sweep process asks trial 2, starts it, and is killed (kill -9) mid-trial
    cut = search.Trials(load_sweep(str(spec), (), None, 3), out, print).next_run()
    (out / cut.id).mkdir()
    (out / cut.id / layout.HISTORY_FILE).write_text("epoch\n1\n")
    result = sweep(spec, out, "--trials", "3")
    assert result.exit_code == 0, result.output
    assert "was cut off by the end of the last sweep process" in result.output
    rates = learning_rates(out)
    assert len(rates) == 3 and all(storage.is_finished(p) for p in trial_dirs(out))
    assert rates[1] == cut.overrides["train.learning_rate"]  # the cut trial, asked again
    assert len(set(rates)) == 3  # the third is not the first again


def test_a_spent_space_ends_the_search_instead_of_repeating(
        tmp_path: Path, sample_archive: Path, cache_dir: Path) -> None:
    spec = search_file(tmp_path, sample_archive, cache_dir, trials=4,
                       space={"train.batch_size": {"choices": [16, 32]}})
    out = tmp_path / "s"
    result = sweep(spec, out)
    assert result.exit_code == 0, result.output
    assert "every configuration of the space was tried (2 trials)" in result.output
    sizes = sorted(yaml.safe_load((p / layout.CONFIG_FILE).read_text())["train"]["batch_size"]
                   for p in trial_dirs(out))
    assert sizes == [16, 32]


def test_a_sampled_size_that_cannot_fit_is_an_invalid_sample(
        tmp_path: Path, sample_archive: Path, cache_dir: Path) -> None:
    spec = search_file(tmp_path, sample_archive, cache_dir, trials=3,
                       space={"model.filters": {"choices": [[4], [1000000]]}})
    out = tmp_path / "s"
    result = sweep(spec, out)
    assert result.exit_code == 0, result.output
    assert "invalid sample, recorded as failed (model.filters: this run needs more than" \
        in result.output
    finished = [p for p in trial_dirs(out) if storage.is_finished(p)]
    assert len(finished) == 1  # the model that fits trained; the other never allocated
