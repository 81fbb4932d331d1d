"""``findings.md``: what a sweep's numbers support, in short sentences that carry them.

Built from the per-arm summary (:mod:`cnnlab.sweep.stats`) and the per-run results rows;
nothing is said that the numbers do not support: with one repeat per arm no difference
is judged, and a difference is "worse" only when Holm-corrected p < 0.05.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from cnnlab.sweep.stats import ALPHA

METRIC_NAMES = {"best_val_accuracy": "best validation accuracy",
                "final_val_loss": "final validation loss"}


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


def comparison(summary: Sequence[dict[str, Any]], select_by: str,
               sampled: bool = False) -> list[str]:
    """The winner and how each other arm stands against it. ``sampled``: the arms are a
    search's trials (TPE, random), which take no --repeats."""
    ranked = sorted((r for r in summary if r["rank"] is not None), key=lambda r: r["rank"])
    if not ranked:
        return ["No run finished, so nothing can be compared."]
    best, key, name = ranked[0], f"{select_by}_mean", METRIC_NAMES[select_by]
    lines = [f"**{label(best['arm'])}** is best by mean {name}: {best[key]:.3f} "
             f"({_interval(best, select_by)})."]
    if best["n"] < 2:
        return lines + [SAMPLED_ONCE if sampled else TRAINED_ONCE]
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
        runs = [r for r in rows if r["arm"] == arm and r["status"] in ("finished",
                                                                        "early_stopped")]
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


def findings(title: str, summary: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]],
             arms: Sequence[str], select_by: str, sampled: bool = False) -> str:
    """The whole ``findings.md`` (``sampled``: of a TPE or random search)."""
    sections = [("Which arm is best", comparison(summary, select_by, sampled)),
                ("Over-fitting", overfitting(rows, arms)),
                ("Time by batch size", batch_timing(summary))]
    text = [f"# Findings: {title}", ""]
    for heading, lines in sections:
        if lines:
            text += [f"## {heading}", "", *[f"- {line}" for line in lines], ""]
    return "\n".join(text)
