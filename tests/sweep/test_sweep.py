"""Sweeps: file parsing and expansion, their errors, dry runs, a real sweep, resume, compare."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from cnnlab.cli import main
from cnnlab.config.files import load_config
from cnnlab.errors import ConfigError
from cnnlab.sweep.run import builtin_sweeps, load_sweep, sweep_from_dict

# results.csv columns after the parameter columns, as the README documents them
METRIC_COLUMNS = ["best_val_accuracy", "best_epoch", "test_accuracy", "final_train_loss",
                  "final_val_loss", "overfit_epoch", "overfit_rise", "ms_per_step",
                  "s_per_epoch", "trainable_params", "status"]

BASE = {"model": {"filters": [8]}, "train": {"optimizer": "sgd", "epochs": 2}}


def tiny_set(sample_archive: Path, cache_dir: Path, epochs: int = 2) -> dict:
    return {"data.path": str(sample_archive), "data.cache_dir": str(cache_dir),
            "data.download": False, "data.train_size": 200, "data.val_size": 100,
            "data.test_size": 100, "train.epochs": epochs, "train.verbose": 0}


def write_sweep(path: Path, sweep: dict) -> Path:
    path.write_text(yaml.safe_dump(sweep, sort_keys=False), encoding="utf-8")
    return path


# --- parsing and expansion ---

def test_variants_times_axes_in_stable_order() -> None:
    sweep = sweep_from_dict({
        "name": "mix", "base": BASE,
        "variants": {"plain": {}, "adam": {"train.optimizer": "adam", "train.momentum": None}},
        "axes": {"train.batch_size": [16, 32], "model.filters": [[8], [8, 16]]},
    })
    ids = [r.id for r in sweep.runs]
    assert ids == [
        "001-plain-batch_size=16-filters=8", "002-plain-batch_size=16-filters=8_16",
        "003-plain-batch_size=32-filters=8", "004-plain-batch_size=32-filters=8_16",
        "005-adam-batch_size=16-filters=8", "006-adam-batch_size=16-filters=8_16",
        "007-adam-batch_size=32-filters=8", "008-adam-batch_size=32-filters=8_16",
    ]
    last = sweep.runs[-1]
    assert last.variant == "adam"
    assert last.overrides == {"train.optimizer": "adam", "train.momentum": None,
                              "train.batch_size": 32, "model.filters": [8, 16]}
    assert (last.config.train.optimizer, last.config.train.batch_size) == ("adam", 32)
    assert last.config.model.filters == (8, 16) and last.config.train.epochs == 2
    assert sweep.runs[0].config.train.momentum == 0.0  # plain sgd keeps its default
    assert sweep.varying == ["train.optimizer", "train.momentum", "train.batch_size",
                             "model.filters"]


def test_set_and_cli_overrides_apply_to_every_run() -> None:
    sweep = sweep_from_dict({"base": BASE, "set": {"data": {"train_size": 300}},
                             "axes": {"train.learning_rate": [0.1, 0.01]}},
                            overrides=["train.epochs=7"])
    assert [r.config.train.learning_rate for r in sweep.runs] == [0.1, 0.01]
    assert {(r.config.data.train_size, r.config.train.epochs) for r in sweep.runs} == {(300, 7)}
    assert [r.id for r in sweep.runs] == ["001-learning_rate=0.1", "002-learning_rate=0.01"]


def test_base_path_is_relative_to_the_sweep_file(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mine.yaml").write_text("train:\n  batch_size: 8\n", encoding="utf-8")
    write_sweep(tmp_path / "sub" / "s.yaml",
                {"base": "mine.yaml", "axes": {"train.epochs": [1, 2]}})
    monkeypatch.chdir(tmp_path)
    sweep = load_sweep("sub/s.yaml")
    assert sweep.name == "s" and {r.config.train.batch_size for r in sweep.runs} == {8}


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        ({"base": BASE, "axes": {"train.batch_size": []}},
         "axes: train.batch_size is empty; give at least one value"),
        ({"base": BASE, "axes": {"train.batch_sise": [1]}},
         "unknown key 'train.batch_sise'; did you mean 'train.batch_size'?"),
        ({"base": BASE, "variants": {"a": {"model.filter": [8]}}},
         "variants: a: unknown key 'model.filter'; did you mean 'model.filters'?"),
        ({"base": BASE, "axes": {"train.batch_size": 32}},
         "axes: train.batch_size: got 32; expected a list of values"),
        ({"base": BASE}, "nothing to sweep; add 'axes:'"),
        ({"base": BASE, "axis": {"train.epochs": [1]}}, "unknown sweep key 'axis'; did you mean"),
        ({"base": BASE, "axes": {"train.batch_size": [32, 0]}},
         "run 002-batch_size=0: train.batch_size: got 0; expected an integer >= 1"),
        ({"base": "baseline", "variants": {"adam": {"train.optimizer": "adam"}}},
         "run 001-adam: train.momentum: got 0.0 but optimizer 'adam' has no momentum"),
        ({"base": "no-such.yaml", "axes": {"train.epochs": [1]}}, "no-such.yaml: no such config"),
        ({"base": {"train": {"epochs": 0}}, "axes": {"seed": [1]}},
         "train.epochs: got 0; expected an integer >= 1"),
        ({"base": BASE, "axes": {"name": ["a"]}}, "'name' cannot be swept"),
        ({"base": BASE, "variants": {}}, "variants: expected a non-empty mapping"),
        ({"base": BASE, "axes": {"seed": [1]}, "select_by": "test_accuracy"},
         "select_by: got 'test_accuracy'; expected one of best_val_accuracy"),
        (["not", "a", "mapping"], "expected a mapping with base"),
    ],
)
def test_invalid_sweeps_get_one_line_errors(sweep: object, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        sweep_from_dict(sweep, origin="s.yaml")
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_set_of_a_swept_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="--set train.batch_size: the sweep varies this key"):
        sweep_from_dict({"base": BASE, "axes": {"train.batch_size": [1, 2]}},
                        overrides=["train.batch_size=4"])


# --- the command line without training ---

@pytest.mark.parametrize("name", ["batch-size", "optimizer", "depth", "regularization", "grid"])
def test_dry_run_of_every_builtin_sweep_from_any_folder(name: str, tmp_path: Path,
                                                        monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["sweep", name, "--dry-run", "--set", "train.epochs=3"])
    assert result.exit_code == 0, result.output
    sweep = load_sweep(name, ["train.epochs=3"])
    assert f"{len(sweep.runs)} runs" in result.output
    for run in sweep.runs:
        assert run.id in result.output
    assert list(tmp_path.iterdir()) == []  # nothing written
    assert name in builtin_sweeps()


def test_builtin_sweeps_cover_the_study() -> None:
    batch = load_sweep("batch-size")
    assert [r.config.train.batch_size for r in batch.runs] == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert [r.config.train.optimizer for r in load_sweep("optimizer").runs] == [
        "sgd", "sgd_momentum", "adam"]
    assert [len(r.config.model.filters) for r in load_sweep("depth").runs] == [1, 2, 3, 4]
    regs = {r.variant: r.config for r in load_sweep("regularization").runs}
    assert set(regs) == {"none", "l2", "dropout", "batch_norm", "early_stopping", "augmentation"}
    assert regs["l2"].model.l2 > 0 and regs["batch_norm"].model.batch_norm
    assert regs["augmentation"].model.augment and regs["early_stopping"].train.early_stopping
    grid = load_sweep("grid").runs  # README: 2 filters x 2 dense x 3 learning rates
    assert len(grid) == 12
    assert {(tuple(r.config.model.filters), tuple(r.config.model.dense),
             r.config.train.learning_rate) for r in grid} == {
        (f, d, lr) for f in ((8, 16), (8, 16, 32)) for d in ((32,), (64,))
        for lr in (0.0003, 0.001, 0.003)}


def test_cli_sweep_errors_are_one_line(tmp_path: Path) -> None:
    path = write_sweep(tmp_path / "bad.yaml", {"base": "baseline", "axes": {"model.l3": [1]}})
    result = CliRunner().invoke(main, ["sweep", str(path), "--dry-run"])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0
    assert "unknown key 'model.l3'" in result.output
    result = CliRunner().invoke(main, ["sweep", "no-such-sweep"])
    assert result.exit_code == 2 and "built-in sweep name (batch-size," in result.output


# --- real sweeps on a CIFAR-10 slice ---

def read_results(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def assert_picture(path: Path) -> None:
    """A real, non-blank PNG of reasonable size."""
    image = np.asarray(Image.open(path).convert("L"), dtype=float)
    assert image.shape[0] > 150 and image.shape[1] > 400
    assert image.std() > 10 and (image < 128).mean() > 0.005


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory: pytest.TempPathFactory, sample_archive: Path,
                   cache_dir: Path) -> tuple[Path, str]:
    """2 variants x 2 batch sizes through the CLI; one variant diverges (lr 1e8)."""
    folder = tmp_path_factory.mktemp("sweep")
    path = write_sweep(folder / "e2e.yaml", {
        "base": "baseline", "set": tiny_set(sample_archive, cache_dir),
        "variants": {"sgd": {}, "diverge": {"train.learning_rate": 1.0e8}},
        "axes": {"train.batch_size": [32, 64]},
    })
    result = CliRunner().invoke(main, ["sweep", str(path), "--out", str(folder / "out")])
    assert result.exit_code == 0, result.output
    return folder / "out", result.output


def test_bundled_sample_notice_once_per_sweep(tmp_path: Path, sample_archive: Path,
                                             cache_dir: Path) -> None:
    """Every run of the sweep falls back on the bundled sample: the console says so once."""
    sets = {k: v for k, v in tiny_set(sample_archive, cache_dir, epochs=1).items()
            if k != "data.path"}
    path = write_sweep(tmp_path / "s.yaml", {"base": BASE, "set": sets,
                                             "axes": {"train.batch_size": [32, 64]}})
    out = tmp_path / "my sweeps" / "out"  # a space: the hints are quoted for the shell
    result = CliRunner(env={"CNNLAB_DATA_DIR": str(sample_archive.parent),
                            "KERAS_HOME": str(tmp_path / "keras")}).invoke(
        main, ["sweep", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.count("using the bundled sample") == 1, result.output
    assert "[2/2] 002-batch_size=64: finished" in result.output
    assert f"(train it with: cnnlab train '{out / 'best_config.yaml'}')" in result.output
    assert f"view with tensorboard --logdir '{out.parent}'" in result.output


def test_sweep_end_to_end(finished_sweep: tuple[Path, str]) -> None:
    out, output = finished_sweep
    rows = read_results(out / "results.csv")
    assert [r["run"] for r in rows] == ["001-sgd-batch_size=32", "002-sgd-batch_size=64",
                                        "003-diverge-batch_size=32", "004-diverge-batch_size=64"]
    assert list(rows[0]) == ["run", "arm", "repeat", "variant", "train.learning_rate",
                             "train.batch_size",
                             *METRIC_COLUMNS, "rank", "run_dir", "node"]
    assert rows[0]["node"] == socket.gethostname()  # which machine trained it
    assert [r["status"] for r in rows] == ["finished", "finished", "diverged", "diverged"]
    assert sorted(r["rank"] for r in rows[:2]) == ["1", "2"] and rows[2]["rank"] == ""
    for row in rows[:2]:
        assert 0.0 <= float(row["best_val_accuracy"]) <= 1.0
        assert 0.0 <= float(row["test_accuracy"]) <= 1.0
        assert float(row["ms_per_step"]) > 0 and float(row["s_per_epoch"]) > 0
        assert row["trainable_params"] == "132010" and row["best_epoch"] in ("1", "2")
        recorded = json.loads((out / row["run_dir"] / "metrics.json").read_text())
        assert float(row["best_val_accuracy"]) == pytest.approx(recorded["best_val_accuracy"])
        assert float(row["test_accuracy"]) == pytest.approx(recorded["test_accuracy"])
    # progress lines, the table best first, the winner
    assert ("[1/4] 001-sgd-batch_size=32: train.batch_size=32 -- started; 0 done, 1 running, "
            "3 waiting, time left known after the first run") in output
    assert "[2/4] 002-sgd-batch_size=64: train.batch_size=64 -- started; 1 done, 1 running, " \
        "2 waiting, about " in output
    assert "[4/4] 004-diverge-batch_size=64: diverged" in output
    assert output.split("[4/4] 004-diverge-batch_size=64: diverged")[1].split("\n")[0].endswith(
        "; 4 done, 0 running, 0 waiting")
    table = output[output.index("results (best first"):]
    winner = next(r for r in rows if r["rank"] == "1")
    assert table.index(winner["run"]) < table.index("003-diverge")
    best = load_config(out / "best_config.yaml")
    assert best.train.batch_size == int(winner["train.batch_size"])
    assert best.name == "e2e-best"
    # plots and the timing table (the sweep varies train.batch_size)
    for name in ("curves.png", "accuracy.png", "timing.png", "timing_table.png"):
        assert_picture(out / name)
    timing = read_results(out / "timing_table.csv")
    assert [(t["variant"], t["batch_size"]) for t in timing] == [("sgd", "32"), ("sgd", "64")]
    assert timing[0]["report_ms_per_step"] == "13.55"
    assert "| sgd | 32 |" in (out / "timing_table.md").read_text(encoding="utf-8")
    record = yaml.safe_load((out / "sweep.yaml").read_text(encoding="utf-8"))
    assert [r["id"] for r in record["runs"]] == [r["run"] for r in rows]


def test_compare_overlays_runs_chosen_by_hand(finished_sweep: tuple[Path, str],
                                              tmp_path: Path) -> None:
    out, _ = finished_sweep
    result = CliRunner().invoke(main, ["compare", str(out / "001-sgd-batch_size=32"),
                                       str(out / "004-diverge-batch_size=64"),
                                       "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 0, result.output
    rows = read_results(tmp_path / "cmp" / "results.csv")
    assert [r["run"] for r in rows] == ["001-sgd-batch_size=32", "004-diverge-batch_size=64"]
    assert "train.batch_size" in rows[0] and "train.learning_rate" in rows[0]
    assert_picture(tmp_path / "cmp" / "curves.png")
    result = CliRunner().invoke(main, ["compare", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "no such folder" in result.output


def test_resume_after_a_kill_keeps_finished_runs(tmp_path: Path, sample_archive: Path,
                                                 cache_dir: Path) -> None:
    path = write_sweep(tmp_path / "resume.yaml", {
        "base": "baseline", "set": tiny_set(sample_archive, cache_dir),
        "axes": {"train.batch_size": [16, 32, 64]}})
    out = tmp_path / "out"
    first, second, third = (out / f"00{i}-batch_size={b}" for i, b in ((1, 16), (2, 32), (3, 64)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNNLAB_")}
    process = subprocess.Popen([sys.executable, "-m", "cnnlab.cli", "sweep", str(path),
                                "--out", str(out)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not (first / "metrics.json").exists():
            assert process.poll() is None and time.monotonic() < deadline, "run 1 never finished"
            time.sleep(0.05)
        while not (second / "config.yaml").exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # let run 2 start, so that a partial folder is left behind
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert not (third / "metrics.json").exists(), "the sweep ended before it was killed"
    kept = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in first.rglob("*") if p.is_file()}

    result = CliRunner().invoke(main, ["sweep", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "[1/3] 001-batch_size=16: finished earlier, kept" in result.output
    assert "[2/3] 002-batch_size=32: cleared the unfinished folder" in result.output
    assert {p: (p.stat().st_mtime_ns, p.read_bytes())
            for p in first.rglob("*") if p.is_file()} == kept
    rows = read_results(out / "results.csv")
    assert [r["status"] for r in rows] == ["finished"] * 3
    for folder in (second, third):  # redone from the start: every epoch once
        assert json.loads((folder / "metrics.json").read_text())["status"] == "finished"
        assert [r["epoch"] for r in read_results(folder / "history.csv")] == ["1", "2"]

    # the same folder with a different sweep is refused, before any training
    other = write_sweep(tmp_path / "other.yaml", {
        "base": "baseline", "set": tiny_set(sample_archive, cache_dir),
        "axes": {"train.batch_size": [8]}})
    result = CliRunner().invoke(main, ["sweep", str(other), "--out", str(out)])
    assert result.exit_code == 2 and "holds a different sweep" in result.output
    result = CliRunner().invoke(main, ["sweep", str(path), "--out", str(out),
                                       "--set", "seed=5"])
    assert result.exit_code == 2 and "was made with a different config (seed)" in result.output

    # a finished run of an older reference arithmetic: not resumed beside new runs
    from cnnlab.training.arithmetic import ARITHMETIC

    metrics = json.loads((first / "metrics.json").read_text())
    assert metrics["arithmetic"] == ARITHMETIC
    del metrics["arithmetic"]  # as every run recorded before the version was
    (first / "metrics.json").write_text(json.dumps(metrics))
    result = CliRunner().invoke(main, ["sweep", str(path), "--out", str(out)])
    assert result.exit_code == 2
    assert (f"run {first.name} was trained with arithmetic 1, this cnnlab uses {ARITHMETIC}"
            in result.output) and "new --out folder" in result.output


def test_augmentation_layers_train_only_and_keep_reference_parameter_counts() -> None:
    from cnnlab.training.model import build_model, trainable_params

    for name, params in (("baseline", 132_010), ("best", 39_514)):
        model = build_model(load_config(name, {"model.augment": True}).model, (32, 32, 3), 10)
        assert [layer.name for layer in model.layers][:2] == ["augment_flip", "augment_shift"]
        assert trainable_params(model) == params
    x = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype("float32")
    assert np.array_equal(np.asarray(model.layers[1](model.layers[0](x, training=False),
                                                     training=False)), x)
