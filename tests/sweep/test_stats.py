"""Seed repeats and their statistics (issue 14): the numbers against hand computations,
repeats that differ on the same split, summary.csv, findings.md, per-class analysis."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from cnnlab.cli import main
from cnnlab.runs import load
from cnnlab.sweep import stats
from cnnlab.sweep.findings import findings


def t3_cdf(t: float) -> float:
    """Student's t CDF with 3 degrees of freedom, in closed form."""
    x = t / math.sqrt(3)
    return 0.5 + (x / (1 + x * x) + math.atan(x)) / math.pi


def test_describe_by_hand() -> None:
    d = stats.describe([0.50, 0.52, 0.49, 0.51])
    mean = 0.505
    std = math.sqrt((0.005**2 + 0.015**2 + 0.015**2 + 0.005**2) / 3)
    t975 = 3.182446305284263  # t quantile 0.975, 3 degrees of freedom
    assert t3_cdf(t975) == pytest.approx(0.975, abs=1e-9)
    assert d["mean"] == pytest.approx(mean)
    assert d["std"] == pytest.approx(std)
    assert d["ci_low"] == pytest.approx(mean - t975 * std / 2)
    assert d["ci_high"] == pytest.approx(mean + t975 * std / 2)
    assert stats.describe([0.5]) == {"mean": 0.5, "std": None, "ci_low": None,
                                     "ci_high": None}


def test_paired_t_test_by_hand() -> None:
    a = {0: 0.50, 1: 0.52, 2: 0.49, 3: 0.51}
    b = {0: 0.47, 1: 0.50, 2: 0.48, 3: 0.47, 4: 0.99}  # repeat 4 has no partner: left out
    diffs = [0.03, 0.02, 0.01, 0.04]
    sd = math.sqrt(sum((d - 0.025) ** 2 for d in diffs) / 3)
    t = 0.025 / (sd / 2)
    assert stats.paired_p(a, b) == pytest.approx(2 * (1 - t3_cdf(t)), rel=1e-9)
    assert stats.paired_p({0: 0.5}, {0: 0.4}) is None  # one pair: nothing to test
    assert stats.paired_p({0: 0.5, 1: 0.6}, {0: 0.5, 1: 0.6}) == 1.0


def test_holm_by_hand() -> None:
    # sorted 0.01, 0.03, 0.04 times 3, 2, 1 = 0.03, 0.06, 0.04 -> kept increasing: 0.06
    assert stats.holm([0.04, 0.01, None, 0.03]) == pytest.approx([0.06, 0.03, None, 0.06])
    assert stats.holm([0.6, 0.7]) == [1.0, 1.0]


def rows_of(values: dict[str, list[float]]) -> list[dict]:
    return [{"arm": arm, "repeat": i, "status": "finished", "best_val_accuracy": v,
             "test_accuracy": v - 0.01, "final_val_loss": 1 - v, "ms_per_step": 2.0 + i,
             "s_per_epoch": 0.5, "overfit_epoch": 3 + i}
            for arm, vs in values.items() for i, v in enumerate(vs)]


def test_summary_ranks_arms_tests_them_against_the_best_and_writes_findings() -> None:
    rows = rows_of({"001-sgd": [0.40, 0.41, 0.39], "002-adam": [0.50, 0.52, 0.51],
                    "003-momentum": [0.49, 0.53, 0.50]})
    summary = stats.summarize(rows, ["001-sgd", "002-adam", "003-momentum"], [],
                              "best_val_accuracy")
    by_arm = {r["arm"]: r for r in summary}
    assert [by_arm[a]["rank"] for a in ("002-adam", "003-momentum", "001-sgd")] == [1, 2, 3]
    assert by_arm["002-adam"]["p_vs_best"] is None and by_arm["002-adam"]["n"] == 3
    raw = [stats.paired_p({i: v for i, v in enumerate(values)}, {0: .50, 1: .52, 2: .51})
           for values in ([0.49, 0.53, 0.50], [0.40, 0.41, 0.39])]
    assert [by_arm["003-momentum"]["p_vs_best"], by_arm["001-sgd"]["p_vs_best"]] == \
        pytest.approx(stats.holm(raw))
    assert by_arm["003-momentum"]["tied_with_best"] is True
    assert by_arm["001-sgd"]["tied_with_best"] is False
    text = findings("sweep t", summary, rows, ["001-sgd", "002-adam", "003-momentum"],
                    "best_val_accuracy")
    assert "**adam** is best by mean best validation accuracy: 0.510 (95 % CI" in text
    assert "momentum (0.507" in text and "is not distinguishable from it (-0.003" in text
    assert "sgd (0.400" in text and "is worse (-0.110" in text
    assert "sgd: over-fitting starts at epoch 4.0 on average, range 3–5 (3 of 3 runs)" in text


def test_one_repeat_judges_no_difference() -> None:
    rows = rows_of({"001-a": [0.4], "002-b": [0.5]})
    summary = stats.summarize(rows, ["001-a", "002-b"], [], "best_val_accuracy")
    assert all(r["best_val_accuracy_std"] is None and r["p_vs_best"] is None for r in summary)
    text = findings("s", summary, rows, ["001-a", "002-b"], "best_val_accuracy")
    assert "no difference between arms can be judged" in text
    assert "worse" not in text and "distinguishable" not in text


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def repeated_sweep(tmp_path_factory, sample_archive: Path, cache_dir: Path) -> Path:
    folder = tmp_path_factory.mktemp("repeats")
    sweep = {"name": "rep", "base": "best", "variants": {"adam": {}, "slow": {
                 "train.learning_rate": 0.0001}},
             "set": {"data.path": str(sample_archive), "data.cache_dir": str(cache_dir),
                     "data.download": False, "data.train_size": 300, "data.val_size": 100,
                     "data.test_size": 100, "train.epochs": 2, "train.verbose": 0}}
    (folder / "rep.yaml").write_text(yaml.safe_dump(sweep), encoding="utf-8")
    result = CliRunner().invoke(main, ["sweep", str(folder / "rep.yaml"), "--repeats", "3",
                                       "--out", str(folder / "out")])
    assert result.exit_code == 0, result.output
    assert "tied with best" in result.output or "worse" in result.output
    return folder / "out"


def test_repeats_differ_in_seed_and_share_the_split(repeated_sweep: Path) -> None:
    rows = read_csv(repeated_sweep / "results.csv")
    assert [(r["run"], r["arm"], r["repeat"]) for r in rows] == [
        (f"00{a}-{name}-r{i}", f"00{a}-{name}", str(i))
        for a, name in ((1, "adam"), (2, "slow")) for i in range(3)]
    r0, r1 = (load.read_run(repeated_sweep / f"001-adam-r{i}") for i in (0, 1))
    assert (r0.config["seed"], r1.config["seed"]) == (0, 1)
    assert r0.config["data"]["split_seed"] == r1.config["data"]["split_seed"] == 0
    assert r0.history[0]["loss"] != r1.history[0]["loss"]  # other weights and batches
    d0, d1 = (load.load_run_data(r, log=lambda _: None) for r in (r0, r1))
    assert np.array_equal(d0.x_val, d1.x_val) and np.array_equal(d0.y_train, d1.y_train)
    assert np.array_equal(d0.x_train, d1.x_train) and np.array_equal(d0.x_test, d1.x_test)


def test_summary_csv_is_the_statistics_of_results_csv(repeated_sweep: Path) -> None:
    rows = read_csv(repeated_sweep / "results.csv")
    summary = {r["arm"]: r for r in read_csv(repeated_sweep / "summary.csv")}
    for arm, row in summary.items():
        values = [float(r["best_val_accuracy"]) for r in rows if r["arm"] == arm]
        assert row["n"] == "3"
        assert float(row["best_val_accuracy_mean"]) == pytest.approx(np.mean(values), abs=1e-6)
        assert float(row["best_val_accuracy_std"]) == pytest.approx(np.std(values, ddof=1),
                                                                    abs=1e-6)
    best = next(r for r in summary.values() if r["rank"] == "1")
    other = next(r for r in summary.values() if r["rank"] == "2")
    assert best["p_vs_best"] == "" and other["tied_with_best"] in ("true", "false")
    config = yaml.safe_load((repeated_sweep / "best_config.yaml").read_text())
    assert config["train"]["learning_rate"] == (0.001 if best["arm"] == "001-adam" else 0.0001)
    text = (repeated_sweep / "findings.md").read_text(encoding="utf-8")
    label = best["arm"].split("-", 1)[1]
    assert f"**{label}** is best by mean best validation accuracy: " \
           f"{float(best['best_val_accuracy_mean']):.3f}" in text
    page = (repeated_sweep / "report.html").read_text(encoding="utf-8")
    assert page.index("Findings") < page.index("Summary by arm") < page.index("Results")


def test_per_class_analysis_is_recorded_shown_and_rewritten_by_evaluate(
        repeated_sweep: Path) -> None:
    run_dir = repeated_sweep / "001-adam-r0"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    matrix = np.array(metrics["confusion_matrix"])
    names = metrics["data"]["class_names"]
    for i, name in enumerate(names):
        entry = metrics["per_class"][name]
        assert entry["support"] == matrix[i].sum()
        assert entry["recall"] == pytest.approx(matrix[i, i] / matrix[i].sum())
        predicted = matrix[:, i].sum()
        assert entry["precision"] == pytest.approx(matrix[i, i] / predicted if predicted else 0)
    off = sorted((-matrix[i, j], i, j) for i in range(10) for j in range(10)
                  if i != j and matrix[i, j])[:5]
    assert [(p["true"], p["predicted"], p["count"]) for p in metrics["most_confused"]] == [
        (names[i], names[j], -n) for n, i, j in off]
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "Per class on the test set" in page and "Most confused pairs" in page
    del metrics["per_class"], metrics["most_confused"]  # as a run from before the feature
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    result = CliRunner().invoke(main, ["evaluate", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "most confused: " in result.output
    again = json.loads((run_dir / "metrics.json").read_text())
    assert again["most_confused"][0]["count"] == -off[0][0]
    assert sum(v["support"] for v in again["per_class"].values()) == 100


@pytest.mark.parametrize(("args", "fragment"), [
    (["--repeats", "0"], "--repeats: repeats: got 0; expected a whole number >= 1"),
])
def test_bad_repeats_is_one_line(args: list[str], fragment: str) -> None:
    result = CliRunner().invoke(main, ["sweep", "optimizer", "--dry-run", *args])
    assert result.exit_code == 2 and fragment in result.stderr
