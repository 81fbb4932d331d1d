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
from scipy import stats as scipy_stats

from cnnlab.cli import main
from cnnlab.errors import ConfigError
from cnnlab.runs import load
from cnnlab.runs.layout import Outcome
from cnnlab.sweep import stats
from cnnlab.sweep.findings import adaptive, findings
from cnnlab.sweep.sequential import Design
from cnnlab.sweep.spec import sweep_from_dict


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


def test_welch_by_hand_and_scipy() -> None:
    a, b = [0.50, 0.52, 0.49, 0.51], [0.47, 0.50, 0.48]
    va, vb = np.var(a, ddof=1) / 4, np.var(b, ddof=1) / 3
    diff, se, df = stats.welch(a, b)
    assert diff == pytest.approx(np.mean(a) - np.mean(b))
    assert se == pytest.approx(math.sqrt(va + vb))
    assert df == pytest.approx((va + vb) ** 2 / (va**2 / 3 + vb**2 / 2))
    scipy_p = scipy_stats.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue
    assert stats.p_greater(a, b) == pytest.approx(scipy_p)


def test_compare_outcomes() -> None:
    up = dict(higher_is_better=True, margin=0.01)
    assert stats.compare([.60, .61, .62], [.50, .51, .52], **up) == Outcome.BETTER
    assert stats.compare([.50, .51, .52], [.60, .61, .62], **up) == Outcome.WORSE
    assert stats.compare([.50, .51, .52], [.60, .61, .62], higher_is_better=False,
                         margin=0.01) == Outcome.BETTER  # a loss: lower is better
    same = [.500, .501, .502, .500, .501, .502]
    assert stats.compare(same, [v + .0005 for v in same], **up) == Outcome.EQUIVALENT
    assert stats.compare([.40, .60, .50], [.45, .55, .52], **up) == Outcome.INCONCLUSIVE
    assert stats.compare([.5], [.4, .3], **up) == Outcome.INCONCLUSIVE  # one run: nothing


def test_holm_by_hand() -> None:
    # sorted 0.01, 0.03, 0.04 times 3, 2, 1 = 0.03, 0.06, 0.04 -> kept increasing: 0.06
    assert stats.holm([0.04, 0.01, None, 0.03]) == pytest.approx([0.06, 0.03, None, 0.06])
    assert stats.holm([0.6, 0.7]) == [1.0, 1.0]


def test_p_better_by_hand() -> None:
    p, low, high = stats.p_better([3, 5], [4, 4], higher_is_better=True)
    assert p == 0.5  # 5 beats both 4s, 3 loses to both
    assert 0 <= low <= p <= high <= 1
    assert stats.p_better([3, 5], [4, 4], higher_is_better=False)[0] == 0.5
    assert stats.p_better([1, 1], [1], True)[:1] == (0.5,)  # ties count half
    assert stats.p_better([.9, .8], [.1, .2], True) == (1.0, 1.0, 1.0)
    assert stats.p_better([.6, .7, .5], [.55, .65, .4], True) == \
        stats.p_better([.6, .7, .5], [.55, .65, .4], True)  # fixed seed: same interval


# --- calibration by simulation: thousands of synthetic sweeps, no training ---

def outcomes(rng: np.random.Generator, shift: float, n: int, draws: int,
             margin: float = 0.01, spread: float = 0.01) -> dict[str, float]:
    """Rates of compare()'s outcomes for a against b, a's true mean ``shift`` above b's."""
    counts: dict[str, int] = {}
    for _ in range(draws):
        a, b = rng.normal(shift, spread, n), rng.normal(0, spread, n)
        found = stats.compare(a, b, higher_is_better=True, margin=margin)
        counts[found] = counts.get(found, 0) + 1
    return {k: v / draws for k, v in counts.items()}


def test_compare_false_positives_and_power() -> None:
    rng = np.random.default_rng(24)
    null = outcomes(rng, 0.0, 10, 4000)
    wrong = null.get(Outcome.BETTER, 0) + null.get(Outcome.WORSE, 0)
    assert abs(wrong - 0.05) < 0.012  # measured 5.2 %
    small = outcomes(rng, 0.0, 3, 2000)  # Welch's test is conservative at n = 3
    assert small.get(Outcome.BETTER, 0) + small.get(Outcome.WORSE, 0) <= 0.05  # 3.9 %
    # an arm truly 2 points worse (spread 1 point) is never "equivalent" within 1 point
    two_worse = outcomes(rng, -0.02, 3, 2000)
    assert two_worse.get(Outcome.EQUIVALENT, 0) < 0.05  # measured 0.2 % (the old rule: 71 % tied)
    assert two_worse[Outcome.WORSE] > 0.3  # measured 36 %; the rest inconclusive
    # at the margin's edge equivalence is claimed at most 5 % of the time (TOST's level)
    edge = outcomes(rng, 0.01, 10, 3000)
    assert edge.get(Outcome.EQUIVALENT, 0) <= 0.05 + 0.01  # measured 4.1 %
    # truly equal arms, 10 runs each, spread 0.3 points: equivalence shown
    assert outcomes(rng, 0.0, 10, 2000, spread=0.003)[Outcome.EQUIVALENT] > 0.8


def worse_calls(rng: np.random.Generator, arms: int, n: int, draws: int,
                effect: float = 0.0) -> tuple[float, float]:
    """Over simulated sweeps of equal arms (the last one ``effect`` lower): the rate of
    any "worse" call against the arm best by mean, and of the low arm called worse."""
    any_worse = low_found = 0
    for _ in range(draws):
        values = rng.normal(0.5, 0.02, (arms, n))
        values[-1] -= effect
        best = int(np.argmax(values.mean(axis=1)))
        others = [j for j in range(arms) if j != best]
        adjusted = stats.worse_than_best(values[best], [values[j] for j in others], True)
        called = {j for j, p in zip(others, adjusted, strict=True) if p < stats.ALPHA}
        any_worse += bool(called - {arms - 1}) if effect else bool(called)
        low_found += arms - 1 in called
    return any_worse / draws, low_found / draws


@pytest.mark.parametrize(("arms", "n", "draws"), [(4, 3, 4000), (12, 10, 2000)])
def test_worse_calls_keep_the_family_wise_error_under_a_true_null(arms: int, n: int,
                                                                   draws: int) -> None:
    rate, _ = worse_calls(np.random.default_rng(arms), arms, n, draws)
    assert abs(rate - 0.05) < 0.015  # measured 4.9 % (4 x 3) and 5.5 % (12 x 10)


def test_worse_calls_find_a_clearly_worse_arm() -> None:
    # 4 arms of 5 runs, spread 2 points, one arm 4 points lower
    wrong, found = worse_calls(np.random.default_rng(5), 4, 5, 2000, effect=0.04)
    assert found > 0.5 and wrong <= 0.05  # measured: found 70 %, a null arm called 4.4 %


def test_detectable_difference_has_its_power() -> None:
    smallest = stats.detectable_difference(0.01, 5)
    rng = np.random.default_rng(3)
    found = np.mean(scipy_stats.ttest_ind(rng.normal(smallest, .01, (4000, 5)),
                                          rng.normal(0, .01, (4000, 5)), axis=1,
                                          equal_var=False).pvalue < 0.05)
    assert abs(found - 0.8) < 0.03
    assert stats.detectable_difference(0.01, 1) is None


@pytest.mark.parametrize(("difference", "level", "fixed"), [(0.01, 0.025, 0.0),
                                                            (0.01, 0.0083, 0.0),
                                                            (0.02, 0.025, 0.004**2)])
def test_seeds_to_decide_has_its_power(difference: float, level: float, fixed: float) -> None:
    """At the seeds it gives, a one-sided t-test at ``level`` of a true difference finds
    it about 80 % of the time (``fixed``: noise shared by every seed, such as a test
    pool's, added to the estimate's variance); one seed fewer, less often."""
    spread = 0.012
    seeds = int(stats.seeds_to_decide(difference, spread, level, fixed))
    rng = np.random.default_rng(4)

    def power(n: int) -> float:
        draws = rng.normal(difference, spread, (4000, n)) + rng.normal(0, math.sqrt(fixed),
                                                                        (4000, 1))
        error = np.sqrt(draws.var(axis=1, ddof=1) / n + fixed)
        return float(np.mean(scipy_stats.t.sf(draws.mean(axis=1) / error, n - 1) < level))

    assert 3 <= seeds < 60
    assert 0.77 < power(seeds) < 0.9 and power(seeds - 1) < power(seeds)
    assert stats.seeds_to_decide(-difference, spread, level) == math.inf
    # noise that more seeds do not average out can keep any number from deciding
    assert stats.seeds_to_decide(difference, spread, level, fixed=difference**2) == math.inf

def rows_of(values: dict[str, list[float]], diverged: dict[str, int] | None = None
            ) -> list[dict]:
    rows = [{"arm": arm, "repeat": i, "status": "finished", "best_val_accuracy": v,
             "test_accuracy": v - 0.01, "final_val_loss": 1 - v, "ms_per_step": 2.0 + i,
             "s_per_epoch": 0.5, "overfit_epoch": 3 + i}
            for arm, vs in values.items() for i, v in enumerate(vs)]
    for arm, count in (diverged or {}).items():
        rows += [{"arm": arm, "repeat": 10 + i, "status": "diverged", "best_val_accuracy": 0.9,
                  "test_accuracy": 0.9, "final_val_loss": math.nan, "ms_per_step": 1.0,
                  "s_per_epoch": 0.1, "overfit_epoch": ""} for i in range(count)]
    return rows


def test_summary_ranks_arms_tests_them_against_the_best_and_writes_findings() -> None:
    rows = rows_of({"001-sgd": [0.40, 0.41, 0.39], "002-adam": [0.50, 0.52, 0.51],
                    "003-momentum": [0.49, 0.53, 0.50]})
    arms = ["001-sgd", "002-adam", "003-momentum"]
    summary = stats.summarize(rows, arms, [], "best_val_accuracy")
    by_arm = {r["arm"]: r for r in summary}
    assert [by_arm[a]["rank"] for a in ("002-adam", "003-momentum", "001-sgd")] == [1, 2, 3]
    assert by_arm["002-adam"]["p_vs_best"] is None and by_arm["002-adam"]["n"] == 3
    assert [by_arm[a]["vs_best"] for a in ("002-adam", "003-momentum", "001-sgd")] == [
        Outcome.BEST, Outcome.INCONCLUSIVE, Outcome.WORSE]
    assert by_arm["001-sgd"]["p_better"] == 0.0
    assert 0 < by_arm["003-momentum"]["p_better"] < 1
    text = findings("sweep t", summary, rows, arms, "best_val_accuracy")
    assert "**adam** is best by mean best validation accuracy: 0.510 (95 % CI" in text
    assert "Against it on test accuracy (95 % CI" in text
    assert "momentum: **inconclusive** (0.497, -0.003" in text
    assert "sgd: **worse** (0.390, -0.110, p = " in text
    assert "smallest difference between two arms this design detects with 80 % power is" in text
    assert "varied the initial weights and data order (seed) on one fixed" in text
    assert "sgd: over-fitting starts at epoch 4.0 on average, range 3–5 (3 of 3 runs)" in text


def test_a_diverged_run_counts_at_chance_and_its_arm_is_never_best() -> None:
    rows = rows_of({"001-a": [0.50, 0.51, 0.52], "002-b": [0.60, 0.61, 0.62],
                    "003-c": [0.55, 0.56]}, diverged={"002-b": 1, "003-c": 3})
    summary = {r["arm"]: r for r in stats.summarize(rows, ["001-a", "002-b", "003-c"], [],
                                                       "best_val_accuracy", classes=10)}
    a, b, c = summary["001-a"], summary["002-b"], summary["003-c"]
    assert (a["rank"], a["vs_best"], a["diverged"]) == (1, Outcome.BEST, 0)
    assert (b["n"], b["diverged"], b["vs_best"]) == (4, 1, Outcome.DIVERGED)
    assert b["best_val_accuracy_mean"] == pytest.approx((0.60 + 0.61 + 0.62 + 0.1) / 4)
    assert c["test_accuracy_mean"] == pytest.approx((0.54 + 0.55 + 0.3) / 5)
    assert b["ms_per_step_mean"] == pytest.approx(3.0)  # timings of a diverged run left out
    text = findings("s", list(summary.values()), rows, list(summary), "best_val_accuracy")
    assert "b: 1 of 4 runs diverged (counted at chance accuracy" in text
    assert "c: **diverged**" in text
    every = rows_of({"001-a": [0.5]}, diverged={"001-a": 1, "002-b": 2})
    ranked = stats.summarize(every, ["001-a", "002-b"], [], "best_val_accuracy")
    assert [r["vs_best"] for r in ranked] == [Outcome.BEST, Outcome.DIVERGED]


def test_one_repeat_judges_no_difference() -> None:
    rows = rows_of({"001-a": [0.4], "002-b": [0.5]})
    summary = stats.summarize(rows, ["001-a", "002-b"], [], "best_val_accuracy")
    assert all(r["best_val_accuracy_std"] is None and r["p_vs_best"] is None
               and r["p_better"] is None for r in summary)
    text = findings("s", summary, rows, ["001-a", "002-b"], "best_val_accuracy")
    assert "no difference between arms can be judged" in text
    assert "worse" not in text and "equivalent" not in text


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def repeated_sweep(tmp_path_factory, sample_archive: Path, cache_dir: Path) -> Path:
    folder = tmp_path_factory.mktemp("repeats")
    sweep = {"name": "rep", "base": "best", "margin": 0.02,
             "variants": {"adam": {}, "slow": {"train.learning_rate": 0.0001},
                          "diverge": {"train.learning_rate": 1.0e8}},
             "set": {"data.path": str(sample_archive), "data.cache_dir": str(cache_dir),
                     "data.download": False, "data.train_size": 300, "data.val_size": 100,
                     "data.test_size": 100, "train.epochs": 2, "train.verbose": 0}}
    (folder / "rep.yaml").write_text(yaml.safe_dump(sweep), encoding="utf-8")
    result = CliRunner().invoke(main, ["sweep", str(folder / "rep.yaml"), "--repeats", "3",
                                       "--out", str(folder / "out")])
    assert result.exit_code == 0, result.output
    (folder / "out" / "console.txt").write_text(result.output, encoding="utf-8")
    return folder / "out"


def test_repeats_differ_in_seed_and_share_the_split(repeated_sweep: Path) -> None:
    rows = read_csv(repeated_sweep / "results.csv")
    assert [(r["run"], r["arm"], r["repeat"]) for r in rows] == [
        (f"00{a}-{name}-r{i}", f"00{a}-{name}", str(i))
        for a, name in ((1, "adam"), (2, "diverge"), (3, "slow")) for i in range(3)]
    r0, r1 = (load.read_run(repeated_sweep / f"001-adam-r{i}") for i in (0, 1))
    assert (r0.config["seed"], r1.config["seed"]) == (0, 1)
    assert r0.config["data"]["split_seed"] == r1.config["data"]["split_seed"] == 0
    assert r0.history[0]["loss"] != r1.history[0]["loss"]  # other weights and batches
    d0, d1 = (load.load_run_data(r, log=lambda _: None) for r in (r0, r1))
    assert np.array_equal(d0.x_val, d1.x_val) and np.array_equal(d0.y_train, d1.y_train)
    assert np.array_equal(d0.x_train, d1.x_train) and np.array_equal(d0.x_test, d1.x_test)


def test_vary_split_gives_each_repeat_its_own_split() -> None:
    sweep = sweep_from_dict({"base": "best", "variants": {"a": {}}, "vary_split": True,
                             "set": {"seed": 5}}, repeats=3)
    assert [(r.config.seed, r.config.data.split_seed) for r in sweep.runs] == [
        (5, 5), (6, 6), (7, 7)]
    assert sweep_from_dict({"base": "best", "variants": {"a": {}}}, repeats=2, margin=0.03,
                           vary_split=True).margin == 0.03


@pytest.mark.parametrize(("raw", "fragment"), [
    ({"margin": -1}, "margin: got -1; expected a number >= 0 and < 1"),
    ({"margin": "big"}, "margin: got 'big'; expected a number >= 0"),
    ({"vary_split": "yes"}, "vary_split: got 'yes'; expected true or false"),
])
def test_bad_statistics_keys(raw: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        sweep_from_dict({"base": "best", "variants": {"a": {}}, **raw})


def test_summary_csv_is_the_statistics_of_results_csv(repeated_sweep: Path) -> None:
    rows = read_csv(repeated_sweep / "results.csv")
    summary = {r["arm"]: r for r in read_csv(repeated_sweep / "summary.csv")}
    assert "tied_with_best" not in next(iter(summary.values()))
    for arm in ("001-adam", "003-slow"):
        row = summary[arm]
        values = [float(r["best_val_accuracy"]) for r in rows if r["arm"] == arm]
        assert (row["n"], row["diverged"]) == ("3", "0")
        assert float(row["best_val_accuracy_mean"]) == pytest.approx(np.mean(values), abs=1e-6)
        assert float(row["best_val_accuracy_std"]) == pytest.approx(np.std(values, ddof=1),
                                                                    abs=1e-6)
    diverged = summary["002-diverge"]  # every seed diverged: counted at chance, never best
    assert [r["status"] for r in rows if r["arm"] == "002-diverge"] == ["diverged"] * 3
    assert (diverged["n"], diverged["diverged"], diverged["rank"]) == ("3", "3", "3")
    assert diverged["vs_best"] == "diverged"
    assert float(diverged["test_accuracy_mean"]) == pytest.approx(0.1)
    assert diverged["best_val_accuracy_std"] == "0.0"
    best = next(r for r in summary.values() if r["rank"] == "1")
    other = next(r for r in summary.values() if r["rank"] == "2")
    assert best["vs_best"] == "best" and best["p_vs_best"] == best["p_better"] == ""
    assert other["vs_best"] in ("worse", "equivalent", "inconclusive")
    assert float(other["p_better_low"]) <= float(other["p_better"]) <= \
        float(other["p_better_high"])
    config = yaml.safe_load((repeated_sweep / "best_config.yaml").read_text())
    assert config["train"]["learning_rate"] == (0.001 if best["arm"] == "001-adam" else 0.0001)
    console = (repeated_sweep / "console.txt").read_text(encoding="utf-8")
    line = next(ln for ln in console.splitlines() if ln.startswith("3 ") and "diverge" in ln)
    assert line.split()[-1] == "diverged" and f" {other['vs_best']}" in console
    text = (repeated_sweep / "findings.md").read_text(encoding="utf-8")
    label = best["arm"].split("-", 1)[1]
    assert f"**{label}** is best by mean best validation accuracy: " \
           f"{float(best['best_val_accuracy_mean']):.3f}" in text
    assert "diverge: **diverged**" in text
    assert "diverge: 3 of 3 runs diverged (counted at chance accuracy" in text
    assert "within ±0.02 (TOST)" in text and "with 80 % power is" in text
    page = (repeated_sweep / "report.html").read_text(encoding="utf-8")
    assert page.index("Findings") < page.index("Summary by arm") < page.index("Results")
    assert "vs_best" in page and "p_better_high" in page


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


def test_margin_and_vary_split_options_in_the_plan() -> None:
    result = CliRunner().invoke(main, ["sweep", "optimizer", "--dry-run", "--repeats", "2",
                                       "--margin", "0.02", "--vary-split"])
    assert result.exit_code == 0, result.output
    assert "x 2 repeats, seeds 0..1, each its own split; equivalence margin 0.02)" \
        in result.output


@pytest.mark.parametrize(("args", "fragment"), [
    (["--repeats", "0"], "--repeats: repeats: got 0; expected a whole number >= 1"),
    (["--margin", "2"], "--margin: margin: got 2.0; expected a number >= 0 and < 1"),
])
def test_bad_repeats_is_one_line(args: list[str], fragment: str) -> None:
    result = CliRunner().invoke(main, ["sweep", "optimizer", "--dry-run", *args])
    assert result.exit_code == 2 and fragment in result.stderr


def test_seeds_per_decision_says_why_each_arm_stopped() -> None:
    rows = [{"arm": "001-lr=0.1", "seeds": 3, "outcome": "worse", "stopped": "decided"},
            {"arm": "002-lr=0.01", "seeds": 10, "outcome": "inconclusive",
             "stopped": "max_repeats"},
            {"arm": "003-lr=0.001", "seeds": 5, "outcome": "inconclusive", "stopped": "budget"},
            {"arm": "004-lr=0.0001", "seeds": 3, "outcome": "inconclusive",
             "stopped": "minimum"}]
    lines = adaptive(rows, Design(max_repeats=10))
    assert lines[:4] == [
        "lr=0.1: decided **worse** after 3 seeds.",
        "lr=0.01: still inconclusive at the maximum of 10 seeds.",
        "lr=0.001: still open after 5 seeds: the budget ran out.",
        "lr=0.0001: still open after 3 seeds: the minimum only (`cnnlab reproduce` gives "
        "more only where they could decide an open claim)."]
    assert "trained 21 runs where every arm at the maximum (10 seeds) would take 40: " \
        "19 runs saved" in lines[4]
