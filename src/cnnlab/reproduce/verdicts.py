"""Verdicts on the reference report's claims, from a reproduced study's numbers (pure).

Each verdict is *holds*, *does not hold* or *not distinguishable*, decided from the
per-arm summaries (means, 95 % intervals, paired tests against the best arm: see
:mod:`cnnlab.sweep.stats`) or from counts over the repeats, and carries the evidence as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cnnlab.runs.layout import ranked_status

HOLDS, FAILS, UNCLEAR = "holds", "does not hold", "not distinguishable"


@dataclass(frozen=True)
class Verdict:
    section: str
    claim: str
    verdict: str
    evidence: str
    seeds: str = ""  # the seeds the claim's arms took


def _best(summary: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return next(r for r in summary if r["rank"] == 1)


def mean_ci(row: dict[str, Any], metric: str) -> str:
    """``0.458 [0.440, 0.477]``: a summary row's mean and 95 % interval (if any)."""
    low, high = row[f"{metric}_ci_low"], row[f"{metric}_ci_high"]
    interval = "" if low is None else f" [{low:.3f}, {high:.3f}]"
    return f"{row[f'{metric}_mean']:.3f}{interval}"


def rises_then_falls(summary: Sequence[dict[str, Any]]) -> Verdict:
    """Validation accuracy first rises, then falls, as the batch grows."""
    arms = sorted((r for r in summary if r["rank"] is not None),
                  key=lambda r: r["train.batch_size"])
    best, ends = _best(summary), (arms[0], arms[-1])
    evidence = (f"best mean validation accuracy at batch {best['train.batch_size']} "
                f"({mean_ci(best, 'best_val_accuracy')}); batch {ends[0]['train.batch_size']}: "
                f"{mean_ci(ends[0], 'best_val_accuracy')}, batch {ends[1]['train.batch_size']}: "
                f"{mean_ci(ends[1], 'best_val_accuracy')}")
    interior = best not in ends
    worse_ends = all(e["tied_with_best"] is False for e in ends if e is not best)
    if interior and worse_ends:
        verdict = HOLDS
    elif not interior and worse_ends:
        verdict = FAILS
    else:
        verdict = UNCLEAR
    return Verdict("3", "Validation accuracy first rises, then falls as the batch grows",
                   verdict, evidence)


def _separated(low_row: dict[str, Any], high_row: dict[str, Any], metric: str) -> bool | None:
    """True if ``high_row``'s interval lies above ``low_row``'s, False if below, None if
    they overlap (or are missing)."""
    a_low, a_high = low_row[f"{metric}_ci_low"], low_row[f"{metric}_ci_high"]
    b_low, b_high = high_row[f"{metric}_ci_low"], high_row[f"{metric}_ci_high"]
    if None in (a_low, a_high, b_low, b_high):
        return None
    if b_low > a_high:
        return True
    return False if b_high < a_low else None


def step_and_epoch_time(summary: Sequence[dict[str, Any]]) -> Verdict:
    """Step time grows with the batch, epoch time falls."""
    arms = sorted((r for r in summary if r["ms_per_step_mean"] is not None),
                  key=lambda r: r["train.batch_size"])
    small, large = arms[0], arms[-1]
    step_up = _separated(small, large, "ms_per_step")
    epoch_down = _separated(large, small, "s_per_epoch")
    verdict = (HOLDS if step_up and epoch_down else
               FAILS if step_up is False or epoch_down is False else UNCLEAR)
    evidence = (f"batch {small['train.batch_size']} → {large['train.batch_size']}: "
                f"{mean_ci(small, 'ms_per_step')} → {mean_ci(large, 'ms_per_step')} ms/step, "
                f"{mean_ci(small, 's_per_epoch')} → {mean_ci(large, 's_per_epoch')} s/epoch")
    return Verdict("3", "Step time grows with the batch size, epoch time falls", verdict,
                   evidence)


def arm_is_best(summary: Sequence[dict[str, Any]], arm_matches: Any, section: str,
                claim: str) -> Verdict:
    """``claim`` says the arm that ``arm_matches(row)`` picks is the best."""
    best = _best(summary)
    claimed = next((r for r in summary if arm_matches(r)), None)
    if claimed is None or claimed["rank"] is None:
        return Verdict(section, claim, UNCLEAR, "the claimed arm did not finish")
    others = [r for r in summary if r is not best and r["rank"] is not None]
    evidence = (f"claimed {claimed['arm']}: {mean_ci(claimed, 'best_val_accuracy')}; best "
                f"{best['arm']}: {mean_ci(best, 'best_val_accuracy')}")
    if claimed is best:
        verdict = HOLDS if all(r["tied_with_best"] is False for r in others) else UNCLEAR
    else:
        verdict = FAILS if claimed["tied_with_best"] is False else UNCLEAR
    return Verdict(section, claim, verdict, evidence)


def _onsets(rows: Sequence[dict[str, Any]], arm_name: str) -> tuple[int, int]:
    """(runs of the arm that over-fit, its finished runs)."""
    arm_rows = [r for r in rows if r["arm"].split("-", 1)[-1] == arm_name
                and ranked_status(r["status"])]
    return sum(r.get("overfit_epoch") not in ("", None) for r in arm_rows), len(arm_rows)


def overfitting_seen(rows: Sequence[dict[str, Any]], arm_name: str, expected: bool,
                     section: str, claim: str, reference: str | None = None) -> Verdict:
    """``claim``: the arm over-fits (``expected``) or does not, in most of its runs. A
    remedy (``reference``: the arm without it) can only be judged where that arm over-fits."""
    seen, count = _onsets(rows, arm_name)
    evidence = f"{arm_name}: over-fitting onset in {seen} of {count} runs"
    if not count:
        return Verdict(section, claim, UNCLEAR, f"no finished run of {arm_name}")
    if reference is not None:
        base_seen, base_count = _onsets(rows, reference)
        evidence += f"; {reference}: in {base_seen} of {base_count}"
        if base_seen * 2 <= base_count:
            return Verdict(section, claim, UNCLEAR, evidence + " (without the remedy the "
                           "model does not over-fit here, so the remedy cannot be judged)")
    verdict = HOLDS if (seen * 2 > count) == expected else FAILS
    return Verdict(section, claim, verdict, evidence)


def class_recalls(per_class_runs: Sequence[dict[str, dict[str, Any]]]) -> dict[str, float]:
    """Mean recall of each class over runs (each a metrics.json ``per_class``)."""
    names = list(per_class_runs[0])
    return {n: sum(r[n]["recall"] for r in per_class_runs) / len(per_class_runs)
            for n in names}


def best_recognised(recalls: dict[str, float], claimed: str) -> Verdict:
    order = sorted(recalls, key=lambda n: -recalls[n])
    verdict = HOLDS if order[0] == claimed else FAILS
    return Verdict("6", f"{claimed.capitalize()}s are recognised best", verdict,
                   "mean recall: " + ", ".join(f"{n} {recalls[n]:.2f}" for n in order[:3]))


def most_confused(recalls: dict[str, float], claimed: Sequence[str]) -> Verdict:
    lowest = sorted(recalls, key=lambda n: recalls[n])[:len(claimed)]
    verdict = HOLDS if set(lowest) == set(claimed) else FAILS
    return Verdict("6", f"{', '.join(claimed)} are the most confused classes", verdict,
                   "lowest mean recall: " + ", ".join(f"{n} {recalls[n]:.2f}" for n in lowest))
