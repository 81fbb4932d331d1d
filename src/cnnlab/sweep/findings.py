"""``findings.md``: what a sweep's numbers support, in short sentences that carry them.

Built from the per-arm summary (:mod:`cnnlab.sweep.stats`) and the per-run results rows;
nothing is said that the numbers do not support: with one repeat per arm no difference
is judged, and a difference is "worse" only when Holm-corrected p < 0.05.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from cnnlab.runs.layout import METRICS, ranked_status
from cnnlab.sweep.sequential import MARGIN
from cnnlab.sweep.stats import ALPHA


def label(arm: str) -> str:
    """An arm id without its number: ``003-adam`` -> ``adam``."""
    head, _, rest = arm.partition("-")
    return rest if head.isdigit() and rest else arm


def _interval(row: dict[str, Any], metric: str) -> str:
    low, high, n = row[f"{metric}_ci_low"], row[f"{metric}_ci_high"], row["n"]
    if low is None:
        return f"n = {n}"
    return f"95 % CI {low:.3f}–{high:.3f}, n = {n}"


def comparison(summary: Sequence[dict[str, Any]], select_by: str) -> list[str]:
    """The winner and how each other arm stands against it."""
    ranked = sorted((r for r in summary if r["rank"] is not None), key=lambda r: r["rank"])
    if not ranked:
        return ["No run finished, so nothing can be compared."]
    best, key, name = ranked[0], f"{select_by}_mean", METRICS[select_by].meaning
    lines = [f"**{label(best['arm'])}** is best by mean {name}: {best[key]:.3f} "
             f"({_interval(best, select_by)})."]
    if best["n"] < 2:
        return lines + ["Each arm was trained once (n = 1), so no difference between arms "
                        "can be judged: run the sweep with `--repeats 3` or more."]
    for row in ranked[1:]:
        diff = row[key] - best[key]
        p = row["p_vs_best"]
        if p is None:
            verdict = "cannot be compared with it (fewer than 2 paired repeats)"
        elif p >= ALPHA:
            verdict = f"is not distinguishable from it ({diff:+.3f}, p = {p:.2g})"
        else:
            verdict = f"is worse ({diff:+.3f}, p = {p:.2g})"
        lines.append(f"{label(row['arm'])} ({row[key]:.3f}, {_interval(row, select_by)}) "
                     f"{verdict}.")
    lines.append("p: paired t-test against the best arm by repeat (same seed, same split), "
                 "Holm-corrected across arms.")
    return lines


def overfitting(rows: Sequence[dict[str, Any]], arms: Sequence[str]) -> list[str]:
    """The over-fitting onset epoch of each arm: mean and range over its runs."""
    lines = []
    for arm in arms:
        runs = [r for r in rows if r["arm"] == arm and ranked_status(r["status"])]
        epochs = [int(r["overfit_epoch"]) for r in runs if r.get("overfit_epoch") not in ("",
                                                                                        None)]
        if not runs:
            continue
        if not epochs:
            lines.append(f"{label(arm)}: no over-fitting seen in its {len(runs)} run(s).")
            continue
        mean = sum(epochs) / len(epochs)
        spread = f", range {min(epochs)}–{max(epochs)}" if min(epochs) < max(epochs) else ""
        lines.append(f"{label(arm)}: over-fitting starts at epoch {mean:.1f} on average"
                     f"{spread} ({len(epochs)} of {len(runs)} runs).")
    return lines


def batch_timing(summary: Sequence[dict[str, Any]]) -> list[str]:
    """How step and epoch time change with the batch size (a batch-size sweep)."""
    timed = sorted((r for r in summary if _number(r.get("train.batch_size"))
                    and r["ms_per_step_mean"] is not None), key=lambda r: r["train.batch_size"])
    if len(timed) < 2:
        return []
    first, last = timed[0], timed[-1]
    fastest = min(timed, key=lambda r: r["s_per_epoch_mean"])
    return [f"From batch {first['train.batch_size']} to {last['train.batch_size']}, a step "
            f"takes {first['ms_per_step_mean']:.2f} → {last['ms_per_step_mean']:.2f} ms and an "
            f"epoch {first['s_per_epoch_mean']:.2f} → {last['s_per_epoch_mean']:.2f} s; the "
            f"shortest epoch is at batch {fastest['train.batch_size']} "
            f"({fastest['s_per_epoch_mean']:.2f} s)."]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def adaptive(summary: Sequence[dict[str, Any]], max_repeats: int) -> list[str]:
    """How many seeds each arm's decision took under adaptive seeds, and the runs saved
    against every arm at the maximum."""
    lines = []
    for row in summary:
        seeds, outcome, stopped = row["seeds"], row["outcome"], row["stopped"]
        if stopped == "decided":
            what = f"decided **{outcome}** after {seeds} seeds"
        elif stopped == "max_repeats":
            what = f"still {outcome} at the maximum of {seeds} seeds"
        else:
            what = f"still open after {seeds} seeds: the budget ran out"
        lines.append(f"{label(row['arm'])}: {what}.")
    used, full = sum(r["seeds"] for r in summary), max_repeats * len(summary)
    lines.append(f"Adaptive seeding trained {used} runs where every arm at the maximum "
                 f"({max_repeats} seeds) would take {full}: {full - used} runs saved.")
    lines.append("Decisions: after every round each open arm against the best by mean, "
                 f"Welch's t-test (worse) and TOST (equivalent within ±{MARGIN:g}), each at the "
                 "round's share of 5 % (Pocock-type alpha spending, split over the arms); see "
                 "docs/statistics.md.")
    return lines


def findings(title: str, summary: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]],
             arms: Sequence[str], select_by: str, max_repeats: int | None = None) -> str:
    """The whole ``findings.md``; ``max_repeats``: the sweep had adaptive seeds."""
    sections = [("Which arm is best", comparison(summary, select_by)),
                ("Seeds per decision", adaptive(summary, max_repeats) if max_repeats else []),
                ("Over-fitting", overfitting(rows, arms)),
                ("Time by batch size", batch_timing(summary))]
    text = [f"# Findings: {title}", ""]
    for heading, lines in sections:
        if lines:
            text += [f"## {heading}", "", *[f"- {line}" for line in lines], ""]
    return "\n".join(text)
