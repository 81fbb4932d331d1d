"""``findings.md``: what a sweep's numbers support, in short sentences that carry them.

Built from the per-arm summary (:mod:`cnnlab.sweep.stats`) and the per-run results rows;
nothing is said that the numbers do not support: with one repeat per arm no difference
is judged, and each other arm is worse, equivalent, inconclusive or diverged against the
best by the tests of :mod:`cnnlab.sweep.stats`, with the smallest difference the design
could detect.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from cnnlab.runs.layout import METRICS, Outcome, ranked_status
from cnnlab.sweep.sequential import DECIDED, MAX_REPEATS, MINIMUM, Design
from cnnlab.sweep.stats import (
    ALPHA,
    MARGIN,
    POWER,
    detectable_difference,
    is_number,
    tested_metric,
)

TRAINED_ONCE = ("Each arm was trained once (n = 1), so no difference between arms can be "
                "judged: run the sweep with `--repeats 3` or more.")
SAMPLED_ONCE = ("Each trial was trained once (n = 1), so no difference between trials can be "
                "judged: a search takes no repeats; to judge the best trials, write a sweep "
                "file whose variants are their values and run it with `--repeats 3` or more.")


def label(arm: str) -> str:
    """An arm id without its number: ``003-adam`` -> ``adam``."""
    head, _, rest = arm.partition("-")
    return rest if head.isdigit() and rest else arm


def _interval(row: dict[str, Any], metric: str) -> str:
    low, high, n = row[f"{metric}_ci_low"], row[f"{metric}_ci_high"], row["n"]
    if low is None:
        return f"n = {n}"
    return f"95 % CI {low:.3f}–{high:.3f}, n = {n}"


def comparison(summary: Sequence[dict[str, Any]], select_by: str, tested: str,
               margin: float = MARGIN, sampled: bool = False) -> list[str]:
    """The winner, and how each other arm stands against it (summary.csv's words).
    ``sampled``: the arms are a search's trials (TPE, random), which take no --repeats."""
    ranked = sorted((r for r in summary if r["rank"] is not None), key=lambda r: r["rank"])
    if not ranked:
        return ["No run finished, so nothing can be compared."]
    best, key, name = ranked[0], f"{select_by}_mean", METRICS[select_by].meaning
    lines = [f"**{label(best['arm'])}** is best by mean {name}: {best[key]:.3f} "
             f"({_interval(best, select_by)})."]
    if best["diverged"]:
        lines.append(f"Every arm had a diverged run; this one {best['diverged']} of "
                     f"{best['n']}.")
    if best["n"] < 2:
        return lines + [SAMPLED_ONCE if sampled else TRAINED_ONCE]
    tested_name = METRICS[tested].meaning
    lines.append(f"Against it on {tested_name} ({_interval(best, tested)}):")
    for row in ranked[1:]:
        if row[f"{tested}_mean"] is None or best[f"{tested}_mean"] is None:
            lines.append(f"{label(row['arm'])}: no {tested_name} to compare.")
            continue
        diff = row[f"{tested}_mean"] - best[f"{tested}_mean"]
        detail = [f"{diff:+.3f}"]
        if row["p_vs_best"] is not None:
            detail.append(f"p = {row['p_vs_best']:.2g}")
        if row["p_better"] is not None:
            detail.append(f"P(beats best) {row['p_better']:.2f} [{row['p_better_low']:.2f}, "
                          f"{row['p_better_high']:.2f}]")
        lines.append(f"{label(row['arm'])}: **{row['vs_best'] or Outcome.INCONCLUSIVE}** "
                     f"({row[f'{tested}_mean']:.3f}, {', '.join(detail)}).")
    lines.append(f"{Outcome.WORSE}: Welch's one-sided t-test on {tested_name}, p adjusted "
                 f"step-down for having chosen the best by its mean (simulated), below "
                 f"{ALPHA}; {Outcome.EQUIVALENT}: within ±{margin:g} (TOST); "
                 f"{Outcome.INCONCLUSIVE}: neither shown; {Outcome.DIVERGED}: a run of the "
                 "arm diverged. P(beats best): chance that a new run of the arm beats one "
                 "of the best, 95 % bootstrap interval.")
    return lines


def diverged(summary: Sequence[dict[str, Any]], tested: str) -> list[str]:
    """Each arm with diverged runs, and what they count as."""
    chance = "chance accuracy" if tested.endswith("accuracy") else "the worst loss seen"
    return [f"{label(r['arm'])}: {r['diverged']} of {r['n']} runs diverged (counted at "
            f"{chance} in its statistics; never best while an arm without one exists)."
            for r in summary if r["diverged"]]


def power(summary: Sequence[dict[str, Any]], tested: str) -> list[str]:
    """The smallest difference on ``tested`` the design finds with 80 % power, from the
    arms' own spread (pooled over the arms without a diverged run)."""
    rows = [r for r in summary if r[f"{tested}_std"] is not None and not r["diverged"]]
    if not rows:
        return []
    std = math.sqrt(sum(r[f"{tested}_std"] ** 2 for r in rows) / len(rows))
    n = min(r["n"] for r in rows)
    smallest = detectable_difference(std, n)
    if smallest is None:
        return []
    return [f"With n = {n} runs per arm and a spread of {std:.3f} (pooled std of "
            f"{METRICS[tested].meaning}), the smallest difference between two arms this "
            f"design detects with {POWER * 100:.0f} % power is {smallest:.3f}; smaller true "
            "differences mostly come out inconclusive."]


def variation(repeats: int, vary_split: bool) -> list[str]:
    """What differed between the repeats of an arm."""
    if repeats < 2:
        return []
    split = ("and the train/validation/test split (data sampling)" if vary_split else
             "on one fixed train/validation/test split (data-sampling variance left out)")
    return [f"The {repeats} repeats of each arm varied the initial weights and data order "
            f"(seed) {split}."]


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
    timed = sorted((r for r in summary if is_number(r.get("train.batch_size"))
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


def adaptive(summary: Sequence[dict[str, Any]], design: Design) -> list[str]:
    """How many seeds each arm's decision took under adaptive seeds (``design``), and the
    runs saved against every arm at the maximum."""
    max_repeats, lines = design.max_repeats, []
    for row in summary:
        seeds, outcome, stopped = row["seeds"], row["outcome"], row["stopped"]
        if stopped == DECIDED:
            what = f"decided **{outcome}** after {seeds} seeds"
        elif stopped == MAX_REPEATS:
            what = f"still {outcome} at the maximum of {seeds} seeds"
        elif stopped == MINIMUM:
            what = (f"still open after {seeds} seeds: the minimum only (`cnnlab reproduce` "
                    "gives more only where they could decide an open claim)")
        else:
            what = f"still open after {seeds} seeds: the budget ran out"
        lines.append(f"{label(row['arm'])}: {what}.")
    used, full = sum(r["seeds"] for r in summary), max_repeats * len(summary)
    lines.append(f"Adaptive seeding trained {used} runs where every arm at the maximum "
                 f"({max_repeats} seeds) would take {full}: {full - used} runs saved.")
    lines.append(_decisions(design))
    return lines


def _decisions(design: Design) -> str:
    if not design.race:
        return ("Decisions: none by a race; the seeds went at once to "
                + ("every arm" if design.arms is None else "the arms of the comparisons that "
                   "`cnnlab reproduce`'s open claims still needed")
                + ", and the claims' own tests judge them; see docs/reproduce.md.")
    return ("Decisions: after every round each open arm against the best by mean, Welch's "
            f"t-test (worse) and TOST (equivalent within ±{design.margin:g}), each at the "
            "round's share of 5 % (Pocock-type alpha spending), times a factor calibrated on "
            "simulated races of as many arms; see docs/statistics.md.")


def findings(title: str, summary: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]],
             arms: Sequence[str], select_by: str, margin: float = MARGIN,
             vary_split: bool = False, design: Design | None = None,
             sampled: bool = False) -> str:
    """The whole ``findings.md``; ``design``: the sweep's adaptive seeds, if any;
    ``sampled``: of a TPE or random search."""
    tested = tested_metric(rows, select_by)
    repeats = max((r["n"] for r in summary), default=0)
    sections = [("Which arm is best", comparison(summary, select_by, tested, margin, sampled)),
                ("Seeds per decision",
                 adaptive(summary, design) if design else []),
                ("Diverged runs", diverged(summary, tested)),
                ("What the design can detect", variation(repeats, vary_split)
                 + power(summary, tested)),
                ("Over-fitting", overfitting(rows, arms)),
                ("Time by batch size", batch_timing(summary))]
    text = [f"# Findings: {title}", ""]
    for heading, lines in sections:
        if lines:
            text += [f"## {heading}", "", *[f"- {line}" for line in lines], ""]
    return "\n".join(text)
