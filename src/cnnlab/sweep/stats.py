"""Statistics over a sweep's repeats: one summary row per arm (pure functions, scipy.stats).

For each metric of :data:`SUMMARY_METRICS`: the mean, the sample standard deviation
(ddof=1) and the 95 % Student-t interval of the mean, over the arm's runs; a diverged run
counts at the metric's worst sensible value (:func:`worst_value`), not as missing. The
best arm is the best by mean of ``select_by`` among the arms with no diverged run (among
all arms if each has one). Every other arm is compared with it on test accuracy (the
validation numbers chose the best): Welch's one-sided t-test for "worse", its p-values
adjusted step-down for the selection of the best by simulation (:func:`worse_than_best`),
TOST for "equivalent" within ``margin``; else "inconclusive" (:class:`Outcome`).
``p_better`` estimates the probability that the arm beats the best in a new run, with a
bootstrap interval. With one repeat the spread, the interval and the tests stay empty.
Calibration: docs/statistics.md.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats as scipy_stats
from scipy.optimize import brentq

from cnnlab.runs.layout import METRICS, SUMMARY_METRICS, Outcome, Status, ranked_status

ALPHA = 0.05
MARGIN = 0.01  # equivalence margin: one point of accuracy
POWER = 0.8
TESTED = "test_accuracy"  # what claims are tested on; validation only selects
SEED = 0  # of every resampling and simulation, so the same numbers give the same answer
BOOTSTRAP = 2000
SIMULATIONS = 10_000
MOST_SEEDS = 1000  # seeds_to_decide looks no further: more is "never" in practice


def describe(values: Sequence[float]) -> dict[str, float | None]:
    """Mean, sample std and 95 % t interval of the mean (None where n < 2)."""
    n = len(values)
    if n == 0:
        return {"mean": None, "std": None, "ci_low": None, "ci_high": None}
    mean = float(np.mean(values))
    if n < 2:
        return {"mean": mean, "std": None, "ci_low": None, "ci_high": None}
    std = float(np.std(values, ddof=1))
    half = float(scipy_stats.t.ppf(1 - ALPHA / 2, n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half}


def welch(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """Mean of ``a`` minus mean of ``b``, its standard error and Welch's degrees of
    freedom (each sample needs 2 values)."""
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if se else 1.0
    return float(np.mean(a) - np.mean(b)), se, float(df)


def p_greater(a: Sequence[float], b: Sequence[float]) -> float:
    """One-sided Welch p-value that ``a``'s mean exceeds ``b``'s."""
    diff, se, df = welch(a, b)
    if se == 0:
        return 0.0 if diff > 0 else 1.0
    return float(scipy_stats.t.sf(diff / se, df))


def paired_differences(a: Mapping[int, float], b: Mapping[int, float]) -> np.ndarray:
    """``a`` minus ``b`` repeat by repeat, over the repeats both have, in repeat order."""
    return np.array([a[k] - b[k] for k in sorted(a.keys() & b.keys())])


def p_greater_paired(a: Mapping[int, float], b: Mapping[int, float]) -> float | None:
    """One-sided paired t-test p-value that ``a`` exceeds ``b``, over the repeats both
    have (a repeat's seed and split are the same in every arm); None under 2 pairs."""
    diff = paired_differences(a, b)
    if len(diff) < 2:
        return None
    se = float(np.std(diff, ddof=1)) / math.sqrt(len(diff))
    if se == 0:
        return 0.0 if diff.mean() > 0 else 1.0
    return float(scipy_stats.t.sf(diff.mean() / se, len(diff) - 1))


def compare(a: Sequence[float], b: Sequence[float], *, higher_is_better: bool,
            margin: float, alpha: float = ALPHA) -> str:
    """``a`` against ``b``: better or worse (Welch's two-sided t-test at ``alpha``), else
    equivalent (TOST: the difference shown inside +-``margin`` at ``alpha``), else
    inconclusive. Fewer than 2 values on either side: inconclusive."""
    if len(a) < 2 or len(b) < 2:
        return Outcome.INCONCLUSIVE
    diff, se, df = welch(a, b)
    diff = diff if higher_is_better else -diff
    if se == 0:
        return (Outcome.BETTER if diff > 0 else Outcome.WORSE if diff < 0
                else Outcome.EQUIVALENT if margin > 0 else Outcome.INCONCLUSIVE)
    if 2 * scipy_stats.t.sf(abs(diff) / se, df) < alpha:
        return Outcome.BETTER if diff > 0 else Outcome.WORSE
    if max(scipy_stats.t.sf((diff + margin) / se, df),
           scipy_stats.t.sf((margin - diff) / se, df)) < alpha:
        return Outcome.EQUIVALENT
    return Outcome.INCONCLUSIVE


def p_better(a: Sequence[float], b: Sequence[float], higher_is_better: bool
             ) -> tuple[float, float, float]:
    """The probability that a new run of ``a`` beats one of ``b`` (ties count half),
    over every pair of their values, with a 95 % bootstrap interval (both resampled,
    :data:`BOOTSTRAP` times, fixed seed). Both need at least one value."""
    sign = 1.0 if higher_is_better else -1.0
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)

    def beats(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        d = sign * (xs[..., :, None] - ys[..., None, :])
        return (d > 0).mean(axis=(-2, -1)) + 0.5 * (d == 0).mean(axis=(-2, -1))

    rng = np.random.default_rng(SEED)
    resampled = beats(x[rng.integers(0, len(x), (BOOTSTRAP, len(x)))],
                      y[rng.integers(0, len(y), (BOOTSTRAP, len(y)))])
    low, high = np.percentile(resampled, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
    return float(beats(x, y)), float(low), float(high)


@functools.lru_cache(maxsize=64)
def _null_min_p(sizes: tuple[int, ...]) -> np.ndarray:
    """Sorted smallest one-sided Welch p of "worse than the best by mean" over arms of
    these sizes, in :data:`SIMULATIONS` simulated sweeps where every arm is equal."""
    rng = np.random.default_rng(SEED)
    means = np.empty((SIMULATIONS, len(sizes)))
    errors = np.empty_like(means)
    for j, n in enumerate(sizes):
        draws = rng.normal(size=(SIMULATIONS, n))
        means[:, j], errors[:, j] = draws.mean(axis=1), draws.var(axis=1, ddof=1) / n
    return np.sort(smallest_p_against_best(means, errors, np.array(sizes, dtype=float)))


def smallest_p_against_best(means: np.ndarray, errors: np.ndarray, sizes: np.ndarray
                            ) -> np.ndarray:
    """Each simulated sweep's smallest one-sided Welch p of "worse than the best by mean"
    (``means``, squared standard ``errors``: sweeps x arms; ``sizes``: each arm's values)."""
    best = np.argmax(means, axis=1)[:, None]
    mb, eb = (np.take_along_axis(a, best, axis=1) for a in (means, errors))
    nb = sizes[best]
    se = np.sqrt(eb + errors)
    df = se**4 / (eb**2 / (nb - 1) + errors**2 / (sizes - 1))
    p = scipy_stats.t.sf((mb - means) / se, df)
    np.put_along_axis(p, best, 1.0, axis=1)
    return p.min(axis=1)


def worse_than_best(best: Sequence[float], others: Sequence[Sequence[float]],
                    higher_is_better: bool) -> list[float | None]:
    """Adjusted p-values of "this arm is worse than ``best``", ``best`` having been chosen
    as the best by mean: each raw one-sided Welch p is read against the smallest such p
    in simulated sweeps of equal arms that choose their best the same way, step-down
    over the arms still in (Holm's scheme with the selection accounted for); None for an
    arm with fewer than 2 values. Keeps the family-wise error of the "worse" calls at
    the nominal level when no arm differs."""
    sign = 1.0 if higher_is_better else -1.0
    adjusted: list[float | None] = [None] * len(others)
    if len(best) < 2:
        return adjusted
    raw = sorted((p_greater(sign * np.asarray(best), sign * np.asarray(o)), i)
                 for i, o in enumerate(others) if len(o) >= 2)
    running = 0.0
    for rank, (p, i) in enumerate(raw):
        sizes = tuple(sorted([len(best), *(len(others[j]) for _, j in raw[rank:])]))
        null = _null_min_p(sizes)
        running = max(running, float(np.searchsorted(null, p, side="right")) / len(null))
        adjusted[i] = running
    return adjusted


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of the p-values (None stays None)."""
    present = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (len(present) - rank) * p))
        adjusted[i] = running
    return adjusted


def detectable_difference(std: float, n: int, alpha: float = ALPHA,
                          power: float = POWER) -> float | None:
    """The smallest true difference between two arms of ``n`` runs each, spread ``std``,
    that Welch's two-sided test at ``alpha`` finds with probability ``power``
    (noncentral t, equal spreads); None under 2 runs or without spread."""
    if n < 2 or not std > 0:
        return None
    df, se = 2 * n - 2, std * math.sqrt(2 / n)
    critical = scipy_stats.t.ppf(1 - alpha / 2, df)

    def shortfall(delta: float) -> float:  # the far tail (a wrong-way call) is negligible
        return float(scipy_stats.nct.sf(critical, df, delta / se)) - power

    return float(brentq(shortfall, 0.0, 30 * se))


def seeds_to_decide(difference: float, spread: float, level: float, fixed: float = 0.0,
                    power: float = POWER) -> float:
    """The fewest seeds at which a one-sided t-test at ``level`` finds a true mean
    difference ``difference`` (> 0) with probability ``power``, when the variance of the
    estimate is ``spread**2 / n + fixed`` (``fixed``: noise more seeds do not average
    out, such as a shared test pool's); ``inf`` when no number up to :data:`MOST_SEEDS`
    does, or the difference is not positive. The power analysis from a pilot of Colas
    et al. (2018): the t quantiles on n - 1 degrees of freedom (conservative for Welch)."""
    if not difference > 0:
        return math.inf
    n, needed = _t_sums(level, power)
    with np.errstate(divide="ignore"):
        reached = difference / np.sqrt(spread**2 / n + fixed) >= needed
    return float(n[np.argmax(reached)]) if reached.any() else math.inf


@functools.lru_cache(maxsize=64)
def _t_sums(level: float, power: float) -> tuple[np.ndarray, np.ndarray]:
    """Seeds 2..:data:`MOST_SEEDS`, and the sum of the t quantiles of ``level`` and
    ``power`` on their degrees of freedom."""
    n = np.arange(2, MOST_SEEDS + 1)
    return n, scipy_stats.t.ppf(1 - level, n - 1) + scipy_stats.t.ppf(power, n - 1)


def worst_value(metric: str, rows: Sequence[dict[str, Any]], classes: int) -> float | None:
    """What a diverged run counts as: chance accuracy (1 / ``classes``) for an accuracy,
    for a loss the larger of a uniform guess's (ln ``classes``) and the worst finite one
    among ``rows``; None (left out) for the rest, e.g. timings."""
    if metric.endswith("accuracy"):
        return 1 / classes
    if metric.endswith("loss"):
        seen = [r[metric] for r in rows if is_number(r.get(metric))]
        return max([math.log(classes), *seen])
    return None


def is_number(value: Any) -> bool:
    """A real, finite number (not a bool, NaN or an infinity)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def arm_values(rows: Sequence[dict[str, Any]], metric: str, classes: int
               ) -> dict[str, list[float]]:
    """Each arm's values of ``metric`` over its finished runs, a diverged run at
    :func:`worst_value` (failed and pending runs out)."""
    return {arm: list(runs.values()) for arm, runs in arm_repeats(rows, metric, classes).items()}


def arm_repeats(rows: Sequence[dict[str, Any]], metric: str, classes: int
                ) -> dict[str, dict[int, float]]:
    """:func:`arm_values` by repeat (a row without one: its place in its arm)."""
    worst = worst_value(metric, rows, classes)
    found: dict[str, dict[int, float]] = {}
    for row in rows:
        runs = found.setdefault(row["arm"], {})
        repeat = int(row["repeat"]) if is_number(row.get("repeat")) else len(runs)
        if row.get("status") == Status.DIVERGED and worst is not None:
            runs[repeat] = worst
        elif ranked_status(row.get("status")) and is_number(row.get(metric)):
            runs[repeat] = float(row[metric])
    return {arm: runs for arm, runs in found.items() if runs}


def summarize(rows: Sequence[dict[str, Any]], arms: Sequence[str], params: Sequence[str],
              select_by: str, margin: float = MARGIN, classes: int = 10
              ) -> list[dict[str, Any]]:
    """One row per arm, in ``arms`` order, with ``rank`` (1 = best) and ``vs_best``."""
    summary = []
    for arm in arms:
        first = next(r for r in rows if r["arm"] == arm)
        row: dict[str, Any] = {"arm": arm, **{p: first.get(p, "") for p in params}}
        row["n"] = len(arm_values(rows, select_by, classes).get(arm, []))
        row["diverged"] = sum(r["arm"] == arm and r.get("status") == Status.DIVERGED
                              for r in rows)
        for metric in SUMMARY_METRICS:
            values = arm_values(rows, metric, classes).get(arm, [])
            row.update({f"{metric}_{k}": v for k, v in describe(values).items()})
        summary.append(row)
    _rank(summary, select_by)
    tested = tested_metric(rows, select_by)
    _compare_with_best(summary, arm_values(rows, tested, classes), margin,
                       METRICS[tested].higher_is_better)
    return summary


def tested_metric(rows: Sequence[dict[str, Any]], select_by: str) -> str:
    """:data:`TESTED` where any run has it (a test set), else ``select_by``."""
    return TESTED if any(is_number(r.get(TESTED)) for r in rows) else select_by


def _rank(summary: list[dict[str, Any]], select_by: str) -> None:
    """``rank`` by mean of ``select_by``, arms with a diverged run after all others."""
    key, sign = f"{select_by}_mean", 1 if METRICS[select_by].higher_is_better else -1
    ranked = sorted((r for r in summary if r[key] is not None),
                    key=lambda r: (r["diverged"] > 0, -sign * r[key]))
    for row in summary:
        row["rank"] = None
    for position, row in enumerate(ranked, start=1):
        row["rank"] = position


def _compare_with_best(summary: list[dict[str, Any]], values: dict[str, list[float]],
                       margin: float, higher: bool) -> None:
    for row in summary:
        row.update(p_vs_best=None, vs_best=None, p_better=None, p_better_low=None,
                   p_better_high=None)
    best = next((r for r in summary if r["rank"] == 1), None)
    if best is None:
        return
    best["vs_best"] = Outcome.BEST
    others = [r for r in summary if r is not best and values.get(r["arm"])]
    mine = values.get(best["arm"], [])
    adjusted = worse_than_best(mine, [values[r["arm"]] for r in others], higher)
    for row, p in zip(others, adjusted, strict=True):
        own = values[row["arm"]]
        row["p_vs_best"] = p
        row["vs_best"] = (Outcome.DIVERGED if row["diverged"] else
                          Outcome.WORSE if p is not None and p < ALPHA else
                          Outcome.EQUIVALENT if compare(own, mine, higher_is_better=higher,
                                                        margin=margin) == Outcome.EQUIVALENT
                          else Outcome.INCONCLUSIVE)
        if len(mine) >= 2 and len(own) >= 2:  # one run says nothing of a new one
            chance = p_better(own, mine, higher_is_better=higher)
            row.update(zip(("p_better", "p_better_low", "p_better_high"), chance,
                           strict=True))


def summary_columns(params: Sequence[str]) -> list[str]:
    stats = [f"{m}_{k}" for m in SUMMARY_METRICS for k in ("mean", "std", "ci_low", "ci_high")]
    return ["arm", *params, "n", "diverged", *stats, "p_vs_best", "vs_best", "p_better",
            "p_better_low", "p_better_high", "rank"]


def band(curves: Sequence[Sequence[float]]) -> tuple[list[float], list[float], list[float]]:
    """Per epoch over several runs' curves (of any lengths): mean and 95 % t interval
    (the mean itself where fewer than 2 runs reached that epoch)."""
    means, lows, highs = [], [], []
    for epoch in range(max((len(c) for c in curves), default=0)):
        values = [c[epoch] for c in curves if len(c) > epoch and math.isfinite(c[epoch])]
        d = describe(values)
        mean = d["mean"] if d["mean"] is not None else float("nan")
        means.append(mean)
        lows.append(d["ci_low"] if d["ci_low"] is not None else mean)
        highs.append(d["ci_high"] if d["ci_high"] is not None else mean)
    return means, lows, highs
