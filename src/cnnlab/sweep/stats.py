"""Statistics over a sweep's repeats: one summary row per arm (pure functions, scipy.stats).

For each metric of :data:`SUMMARY_METRICS`: the mean, the sample standard deviation
(ddof=1) and the 95 % Student-t interval of the mean. The best arm is the best by mean of
the ``select_by`` metric; every other arm is compared with it by a paired t-test on that
metric, pairing runs by repeat index (repeat ``i`` of every arm has the same seed and the
same split, so pairing removes the seed's share of the spread), and the p-values are
Holm-corrected across the arms. ``tied_with_best`` is true when the corrected p is at
least 0.05. With one repeat the spread, the interval and the test are left empty: no
difference can be judged from one run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from cnnlab.runs.layout import METRICS, SUMMARY_METRICS, ranked_status

ALPHA = 0.05


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


def paired_p(a: dict[int, float], b: dict[int, float]) -> float | None:
    """Two-sided paired t-test of two arms' values by repeat index; None under 2 pairs."""
    common = sorted(set(a) & set(b))
    if len(common) < 2:
        return None
    diffs = np.array([a[i] - b[i] for i in common])
    if np.all(diffs == diffs[0]):  # no spread: equal arms, or a difference without noise
        return 1.0 if diffs[0] == 0 else 0.0
    return float(scipy_stats.ttest_rel([a[i] for i in common], [b[i] for i in common]).pvalue)


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of the p-values (None stays None)."""
    present = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (len(present) - rank) * p))
        adjusted[i] = running
    return adjusted


def _by_arm(rows: Sequence[dict[str, Any]], metric: str) -> dict[str, dict[int, float]]:
    """Each arm's finished values of ``metric`` by repeat (diverged and failed runs out)."""
    found: dict[str, dict[int, float]] = {}
    for row in rows:
        value = row.get(metric)
        if ranked_status(row.get("status")) and isinstance(
                value, int | float) and math.isfinite(value):
            found.setdefault(row["arm"], {})[int(row["repeat"])] = float(value)
    return found


def summarize(rows: Sequence[dict[str, Any]], arms: Sequence[str], params: Sequence[str],
              select_by: str) -> list[dict[str, Any]]:
    """One row per arm, in ``arms`` order, with ``rank`` by mean of ``select_by``."""
    summary = []
    for arm in arms:
        first = next(r for r in rows if r["arm"] == arm)
        row: dict[str, Any] = {"arm": arm, **{p: first.get(p, "") for p in params}}
        row["n"] = len(_by_arm(rows, select_by).get(arm, {}))
        for metric in SUMMARY_METRICS:
            values = list(_by_arm(rows, metric).get(arm, {}).values())
            row.update({f"{metric}_{k}": v for k, v in describe(values).items()})
        summary.append(row)
    _compare_with_best(summary, rows, select_by)
    return summary


def _compare_with_best(summary: list[dict[str, Any]], rows: Sequence[dict[str, Any]],
                       select_by: str) -> None:
    key = f"{select_by}_mean"
    sign = 1 if METRICS[select_by].higher_is_better else -1
    ranked = sorted((r for r in summary if r[key] is not None), key=lambda r: -sign * r[key])
    for row in summary:
        row.update(rank=None, p_vs_best=None, tied_with_best=None)
    for position, row in enumerate(ranked, start=1):
        row["rank"] = position
    if not ranked:
        return
    values = _by_arm(rows, select_by)
    best = ranked[0]["arm"]
    others = ranked[1:]
    raw = [paired_p(values.get(r["arm"], {}), values.get(best, {})) for r in others]
    for row, p in zip(others, holm(raw), strict=True):
        row["p_vs_best"] = p
        row["tied_with_best"] = None if p is None else p >= ALPHA


def summary_columns(params: Sequence[str]) -> list[str]:
    stats = [f"{m}_{k}" for m in SUMMARY_METRICS for k in ("mean", "std", "ci_low", "ci_high")]
    return ["arm", *params, "n", *stats, "p_vs_best", "tied_with_best", "rank"]


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
