"""Verdicts on the reference report's claims, from a reproduced study's runs (pure).

Each verdict is *holds*, *does not hold* or *not distinguishable*, decided by a test
fixed in advance on the metric it names (test accuracy for accuracy claims: validation
only chose epochs and winners), at the level ``alpha`` (5 %; a study that looks twice,
after its minimum seeds and at the end, tests at 2.5 % each time, so that the two looks
together keep 5 %), and carries its evidence as text. A
claim holds only when the test shows it; it does not hold only when the test shows the
opposite; anything else is not distinguishable. Calibration: docs/statistics.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from cnnlab.runs.layout import Outcome, ranked_status
from cnnlab.sweep.stats import (
    ALPHA,
    POWER,
    TESTED,
    arm_repeats,
    arm_values,
    compare,
    describe,
    holm,
    is_number,
    p_greater,
    p_greater_paired,
    paired_differences,
    seeds_to_decide,
)
from cnnlab.training.analysis import DETECTION_RATE, FALSE_ALARM_RATE, PATIENCE

HOLDS, FAILS, UNCLEAR = "holds", "does not hold", "not distinguishable"
RISE_MARGIN = 0.05  # validation-loss rise counted as "the same over-fitting"
Rows = Sequence[dict[str, Any]]


@dataclass(frozen=True)
class Verdict:
    section: str
    claim: str
    verdict: str
    evidence: str
    metric: str = "test accuracy"  # what the test was run on
    seeds: str = ""  # the seeds the claim's arms took
    # seeds per arm that would decide it with 80 % power if its effect and spread stay as
    # seen (stats.seeds_to_decide); inf: none would (runs too short, image noise); None:
    # the test gives no estimate
    seeds_needed: float | None = None
    # the arms more seeds would serve while it is open: those of the comparisons its test
    # has not decided (None: every arm of its sweep)
    arms: tuple[str, ...] | None = None
    # more seeds could decide it at all: with unlimited seeds its test would find the
    # effect seen at least half the time (not: runs too short, an effect within the noise
    # more seeds do not average out)
    decidable: bool = True


def mean_ci(row: dict[str, Any], metric: str) -> str:
    """``0.458 [0.440, 0.477]``: a summary row's mean and 95 % interval (if any)."""
    low, high = row[f"{metric}_ci_low"], row[f"{metric}_ci_high"]
    if row[f"{metric}_mean"] is None:
        return "no finished run"
    interval = "" if low is None else f" [{low:.3f}, {high:.3f}]"
    return f"{row[f'{metric}_mean']:.3f}{interval}"


def _shown(values: Sequence[float]) -> str:
    d = describe(values)
    if d["mean"] is None:
        return "no run"
    interval = "" if d["ci_low"] is None else f" [{d['ci_low']:.3f}, {d['ci_high']:.3f}]"
    return f"{d['mean']:.3f}{interval} (n = {len(values)})"


def _arms(rows: Rows, key: Callable[[dict[str, Any]], Any], metric: str, classes: int
          ) -> dict[Any, list[float]]:
    """Each arm's values of ``metric`` keyed by ``key(row)`` of its runs, in key order."""
    values = arm_values(rows, metric, classes)
    keyed = {key(r): values[r["arm"]] for r in rows if values.get(r["arm"])}
    return dict(sorted(keyed.items()))


def rises_then_falls(rows: Rows, classes: int = 10, alpha: float = ALPHA) -> Verdict:
    """Test accuracy first rises, then falls as the batch grows: some inner batch size
    beats both ends (one-sided Welch, Bonferroni over the inner sizes); it does not hold
    when an end beats every inner size (Bonferroni over the two ends)."""
    arms = _arms(rows, _batch, TESTED, classes)
    claim = "Accuracy first rises, then falls as the batch grows"
    if len(arms) < 3:
        return Verdict("3", claim, UNCLEAR, "fewer than 3 batch sizes finished")
    sizes = list(arms)
    first, last, inner = sizes[0], sizes[-1], sizes[1:-1]
    peak = max(inner, key=lambda b: float(np.mean(arms[b])))
    evidence = (f"batch {first}: {_shown(arms[first])}; highest inner, batch {peak}: "
                f"{_shown(arms[peak])}; batch {last}: {_shown(arms[last])}")
    level = alpha / len(inner)
    if any(_beats(arms[b], arms[first], level) and _beats(arms[b], arms[last], level)
           for b in inner):
        return Verdict("3", claim, HOLDS, evidence + " (an inner size beats both ends)")
    if any(all(_beats(arms[end], arms[b], alpha / 2) for b in inner) for end in (first, last)):
        return Verdict("3", claim, FAILS, evidence + " (an end beats every inner size)")
    rises = max(_seeds_to_beat(arms[peak], arms[end], level) for end in (first, last))
    falls = min(max(_seeds_to_beat(arms[end], arms[b], alpha / 2) for b in inner)
                for end in (first, last))
    served = (first, peak, last) if rises <= falls else sizes  # the cheaper route's arms
    return Verdict("3", claim, UNCLEAR, evidence, seeds_needed=min(rises, falls),
                   arms=_batch_arms(rows, served))


def _batch(row: dict[str, Any]) -> int:
    return int(row["train.batch_size"])


def _batch_arms(rows: Rows, sizes: Sequence[int]) -> tuple[str, ...]:
    """The sweep's arms of batch sizes ``sizes``."""
    names = {_batch(r): r["arm"] for r in rows}
    return tuple(names[b] for b in sizes)


def _seeds_to_beat(a: Sequence[float], b: Sequence[float], level: float) -> float:
    """Seeds per arm at which :func:`_beats` would show ``a`` above ``b`` with 80 %
    power, if their means and spreads stay as seen (inf with fewer than 2 values)."""
    if len(a) < 2 or len(b) < 2:
        return math.inf
    spread = math.sqrt(float(np.var(a, ddof=1) + np.var(b, ddof=1)))
    return seeds_to_decide(float(np.mean(a) - np.mean(b)), spread, level)


def _beats(a: Sequence[float], b: Sequence[float], level: float) -> bool:
    """``a``'s mean above ``b``'s: one-sided Welch at ``level``."""
    return len(a) >= 2 and len(b) >= 2 and p_greater(a, b) < level


def step_and_epoch_time(rows: Rows, classes: int = 10, alpha: float = ALPHA) -> Verdict:
    """Step time grows with the batch, epoch time falls (smallest against largest batch,
    Welch's two-sided test on each; diverged runs left out)."""
    step = _arms(rows, _batch, "ms_per_step", classes)
    epoch = _arms(rows, _batch, "s_per_epoch", classes)
    claim = "Step time grows with the batch size, epoch time falls"
    if len(step) < 2:
        return Verdict("3", claim, UNCLEAR, "fewer than 2 batch sizes finished",
                       "ms/step, s/epoch")
    small, large = min(step), max(step)
    grows = compare(step[large], step[small], higher_is_better=True, margin=0, alpha=alpha)
    falls = compare(epoch[large], epoch[small], higher_is_better=False, margin=0, alpha=alpha)
    verdict = (HOLDS if grows == falls == Outcome.BETTER else
               FAILS if Outcome.WORSE in (grows, falls) else UNCLEAR)
    evidence = (f"batch {small} → {large}: {_shown(step[small])} → {_shown(step[large])} "
                f"ms/step, {_shown(epoch[small])} → {_shown(epoch[large])} s/epoch")
    return Verdict("3", claim, verdict, evidence, "ms/step, s/epoch",
                   arms=_batch_arms(rows, (small, large)))


def arm_is_best(rows: Rows, arm_matches: Callable[[dict[str, Any]], bool], section: str,
                claim: str, classes: int = 10, alpha: float = ALPHA) -> Verdict:
    """``claim``: the arm ``arm_matches`` picks is the best. It holds when that arm beats
    every other (one-sided paired t-test each, all needed); it does not hold when some arm
    beats it (Holm over the others). Paired by repeat: a repeat's seed and split are the
    same in every arm, and the split moves every arm's accuracy alike."""
    claimed = next((r["arm"] for r in rows if arm_matches(r)), None)
    runs = arm_repeats(rows, TESTED, classes)
    if claimed is None or len(runs.get(claimed, {})) < 2:
        return Verdict(section, claim, UNCLEAR, "the claimed arm has fewer than 2 runs")
    mine = runs[claimed]
    below = {a: p_greater_paired(mine, r) for a, r in runs.items() if a != claimed}
    others = {a: runs[a] for a, p in below.items() if p is not None}  # 2 pairs or more
    rival = max(others, key=lambda a: float(np.mean(list(others[a].values()))), default=None)
    beaten = [a for a in others if below[a] < alpha]
    above = holm([p_greater_paired(r, mine) for r in others.values()])
    evidence = (f"claimed {claimed}: {_shown(list(mine.values()))}; beats {len(beaten)} of "
                f"{len(others)} other arms, paired by repeat" + (
                    f"; highest other, {rival}: {_shown(list(others[rival].values()))}"
                    if rival else ""))
    if others and len(beaten) == len(others):
        return Verdict(section, claim, HOLDS, evidence)
    if any(p is not None and p < alpha for p in above):
        return Verdict(section, claim, FAILS, evidence + " (an arm is better)")
    holds = max((_paired_seeds(mine, r, alpha) for r in others.values()), default=math.inf)
    fails = {a: _paired_seeds(r, mine, alpha / len(others)) for a, r in others.items()}
    if min(fails.values(), default=math.inf) < holds:  # the cheaper route: an arm above
        return Verdict(section, claim, UNCLEAR, evidence, seeds_needed=min(fails.values()),
                       arms=(claimed, *(a for a, n in fails.items() if n < math.inf)))
    return Verdict(section, claim, UNCLEAR, evidence, seeds_needed=holds,
                   arms=(claimed, *(a for a in dict.fromkeys(r["arm"] for r in rows)
                                    if a != claimed and a not in beaten)))


def _paired_seeds(a: dict[int, float], b: dict[int, float], level: float) -> float:
    """Seeds per arm at which the paired one-sided test at ``level`` would show ``a``
    above ``b`` with 80 % power, if their mean difference and its spread stay as seen."""
    diff = paired_differences(a, b)
    return seeds_to_decide(float(diff.mean()), float(diff.std(ddof=1)), level)


def _finished(rows: Rows, arm_name: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["arm"].split("-", 1)[-1] == arm_name
            and ranked_status(r["status"])]


def overfits(rows: Rows, arm_name: str, epochs: int | None = None, alpha: float = ALPHA
             ) -> tuple[bool | None, str]:
    """Whether the arm over-fits, from how many of its runs the onset detector fires in:
    True if more than its false-alarm rate explains (binomial test), False if fewer than
    its detection rate explains, None if neither (no run, or runs of ``epochs`` too
    short for the detector to fire)."""
    runs = _finished(rows, arm_name)
    fired = sum(r.get("overfit_epoch") not in ("", None) for r in runs)
    evidence = f"{arm_name}: over-fitting onset in {fired} of {len(runs)} runs"
    if _too_short(epochs):
        return None, evidence + f" (runs of {epochs} epochs are too short to tell)"
    if not runs:
        return None, evidence
    if scipy_stats.binom.sf(fired - 1, len(runs), FALSE_ALARM_RATE) < alpha:
        return True, evidence
    if scipy_stats.binom.cdf(fired, len(runs), DETECTION_RATE) < alpha:
        return False, evidence
    return None, evidence


def overfitting_seen(rows: Rows, arm_name: str, expected: bool, section: str, claim: str,
                     epochs: int | None = None, alpha: float = ALPHA) -> Verdict:
    """``claim``: the arm over-fits (``expected``) or does not (:func:`overfits`)."""
    found, evidence = overfits(rows, arm_name, epochs, alpha)
    verdict = UNCLEAR if found is None else HOLDS if found == expected else FAILS
    return Verdict(section, claim, verdict, evidence, "over-fitting onset per run",
                   seeds_needed=_never_if_short(epochs), arms=_named(rows, arm_name),
                   decidable=not _too_short(epochs))


def _named(rows: Rows, *arm_names: str) -> tuple[str, ...]:
    """The sweep's arms (``002-l2``) of ``arm_names`` (``l2``)."""
    return tuple(dict.fromkeys(r["arm"] for r in rows
                               if r["arm"].split("-", 1)[-1] in arm_names))


def _too_short(epochs: int | None) -> bool:
    """Runs of ``epochs`` cannot show an over-fitting onset, however many."""
    return epochs is not None and epochs <= PATIENCE


def _never_if_short(epochs: int | None) -> float | None:
    """The seeds a section-7 claim needs: none would do with runs too short, else no
    estimate (its binomial test has none)."""
    return math.inf if _too_short(epochs) else None


def remedy(rows: Rows, arm_name: str, reference: str, section: str, claim: str,
           epochs: int | None = None, alpha: float = ALPHA) -> Verdict:
    """``claim``: the arm prevents over-fitting. Judged only where ``reference`` (the arm
    without the remedy) over-fits; holds when the arm's validation-loss rise is smaller
    (Welch) and the arm itself is not shown to over-fit; does not hold when its rise is
    not smaller (larger, or the same within :data:`RISE_MARGIN`: TOST) or it over-fits."""
    metric = "overfit_rise (validation-loss rise after its lowest)"
    base, base_text = overfits(rows, reference, epochs, alpha)
    own, own_text = overfits(rows, arm_name, epochs, alpha)
    rise = {name: [float(r["overfit_rise"]) for r in _finished(rows, name)
                   if is_number(r.get("overfit_rise"))] for name in (arm_name, reference)}
    evidence = (f"rise {arm_name}: {_shown(rise[arm_name])}, {reference}: "
                f"{_shown(rise[reference])}; {own_text}; {base_text}")
    if not base:
        return Verdict(section, claim, UNCLEAR, evidence + f" ({reference} is not shown to "
                       "over-fit here, so a remedy cannot be judged)", metric,
                       seeds_needed=_never_if_short(epochs),
                       arms=_named(rows, arm_name, reference), decidable=not _too_short(epochs))
    outcome = compare(rise[arm_name], rise[reference], higher_is_better=False,
                      margin=RISE_MARGIN, alpha=alpha)
    if outcome == Outcome.BETTER and own is not True:
        verdict = HOLDS
    elif outcome in (Outcome.WORSE, Outcome.EQUIVALENT) or own is True:
        verdict = FAILS
    else:
        verdict = UNCLEAR
    return Verdict(section, claim, verdict, f"{evidence}; rise: {outcome}", metric,
                   arms=_named(rows, arm_name, reference))


@dataclass(frozen=True)
class Recalls:
    """Each run's recall of each class (runs x classes), each class's test images in
    the pool the runs drew their test sets from, and each class's variance over those
    images of the chance of being recognised (None: the binomial bound p (1 - p), every
    image always or never recognised)."""

    runs: np.ndarray
    images: np.ndarray
    spread: np.ndarray | None = None

    @property
    def mean(self) -> np.ndarray:
        return self.runs.mean(axis=0)

    def noise(self, weights: np.ndarray) -> tuple[float, float]:
        """The variance of one run's ``runs @ weights`` (a class, or a difference of
        two) from run to run, and the pool's image noise in its mean (once for all runs:
        more seeds do not average it out)."""
        combined = self.runs @ weights
        per_run = float(combined.var(ddof=1)) if len(combined) > 1 else 0.0
        p = np.clip(self.mean, 0.0, 1.0)
        spread = p * (1 - p) if self.spread is None else self.spread
        return per_run, float(np.sum(weights ** 2 * spread / self.images))

    def variance(self, weights: np.ndarray) -> tuple[float, float]:
        """The variance of the mean of ``runs @ weights``: seed noise from the runs'
        spread plus the pool's image noise (:meth:`noise`), and its degrees of freedom:
        the runs' own, n - 1. (Satterthwaite's, which count the image noise as known,
        are liberal with few runs: a small spread of 3 runs is then taken as precise.
        Measured at 3 runs: 1.2 times the level at 5 %, 4.9 times at 0.28 %, the
        Bonferroni level of the horse claim; with n - 1 never above it.)"""
        per_run, images = self.noise(weights)
        count = len(self.runs)
        freedom = count - 1 if per_run > 0 and count > 1 else math.inf
        return per_run / count + images, freedom

    def interval(self, weight: np.ndarray) -> tuple[float, float]:
        """The 95 % interval of the mean share ``runs @ weight`` (one class), within 0-1."""
        total, freedom = self.variance(weight)
        half = float(scipy_stats.t.ppf(0.975, freedom)) * math.sqrt(total)
        centre = float(self.mean @ weight)
        return max(0.0, centre - half), min(1.0, centre + half)


def recalls(matrices: Sequence[Sequence[Sequence[int]]], pool: int | None = None,
            spread: np.ndarray | None = None) -> Recalls:
    """Each run's per-class recall, and each class's share of the ``pool`` of test images
    the runs' test sets were drawn from (None: each run's test set is the whole pool).
    The pool's image noise counts once for all runs: more seeds average out their own
    draws from it, not its noise (the bundled sample's 2,000 test images are every
    split's test set); ``spread``: as in :class:`Recalls`."""
    counts = np.array(matrices, dtype=float)  # runs x true class x predicted class
    support = counts.sum(axis=2)
    rate = np.diagonal(counts, axis1=1, axis2=2) / np.maximum(support, 1)
    return Recalls(rate, np.maximum(support.mean(axis=0) * _pool_scale(counts, pool), 1.0),
                   spread)


def image_variances(predicted: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """Each class's variance over its images of an image's chance of being recognised,
    from every run's predicted class of the same images (runs x images): a two-way
    analysis of variance without replication, so that neither the runs' own noise nor
    their shifts of a whole class count (unbiased); within 0 and the binomial bound
    p (1 - p), which it is with fewer than 2 runs."""
    labels = np.asarray(labels)
    hits = (np.asarray(predicted) == labels[None, :]).astype(float)
    found = np.empty(classes)
    for k in range(classes):
        mine = hits[:, labels == k]
        p = float(mine.mean()) if mine.size else 0.0
        found[k] = p * (1 - p)
        if min(mine.shape) >= 2:
            found[k] = min(found[k], max(0.0, image_variance(mine)))
    return found


def image_variance(values: np.ndarray) -> float:
    """The variance over images of each image's expected value (runs x images, every
    run on the same images, at least 2 of each), without the runs' own noise around it
    nor their shifts of every image alike: a two-way analysis of variance without
    replication (unbiased, so it can come out below 0)."""
    runs, images = values.shape
    by_image, by_run = values.mean(axis=0), values.mean(axis=1)
    residual = values - by_image[None, :] - by_run[:, None] + values.mean()
    noise = float((residual ** 2).sum()) / ((runs - 1) * (images - 1))
    return float(by_image.var(ddof=1)) - noise / runs


def _pool_scale(counts: np.ndarray, pool: int | None) -> float:
    """How many times the runs' mean test set the ``pool`` they drew it from is (their
    draws are stratified: each class's share scales alike)."""
    tested = float(counts.sum(axis=(1, 2)).mean())
    return 1.0 if pool is None or tested <= 0 else max(1.0, pool / tested)


def _recall_text(found: Recalls, names: Sequence[str], order: Sequence[int]) -> str:
    texts = []
    for i in order:
        low, high = found.interval(np.eye(len(names))[i])
        texts.append(f"{names[i]} {found.mean[i]:.2f} [{low:.2f}, {high:.2f}]")
    return ", ".join(texts)


def _difference(found: Recalls, a: int, b: int) -> np.ndarray:
    weights = np.zeros(found.runs.shape[1])
    weights[a], weights[b] = 1.0, -1.0
    return weights


def _above(found: Recalls, a: int, b: int, level: float) -> bool:
    """Class ``a``'s recall above ``b``'s: one-sided t-test of the mean difference (paired
    by run) at ``level``, its variance the runs' spread plus the pool's image noise."""
    weights = _difference(found, a, b)
    total, freedom = found.variance(weights)
    difference = float(found.mean @ weights)
    if total <= 0:
        return difference > 0
    return float(scipy_stats.t.sf(difference / math.sqrt(total), freedom)) < level


def best_recognised(matrices: Sequence[Sequence[Sequence[int]]], names: Sequence[str],
                    claimed: str, alpha: float = ALPHA, pool: int | None = None,
                    spread: np.ndarray | None = None, on: str = "test set") -> Verdict:
    """``claimed`` has the highest recall: holds when above every other class, does not
    hold when another class is above it (Bonferroni over the others); ``pool`` and
    ``spread``: as in :func:`recalls`; ``on``: the images the runs were tested on."""
    found = recalls(matrices, pool, spread)
    me, others = names.index(claimed), [i for i in range(len(names)) if names[i] != claimed]
    order = sorted(range(len(names)), key=lambda i: -found.mean[i])[:3]
    evidence = "mean recall, top 3: " + _recall_text(found, names, order) + (
        "" if me in order else f"; {_recall_text(found, names, [me])}")
    verdict, needed, decidable = _ordered(found, [(me, i) for i in others], alpha)
    return Verdict("6", f"{claimed.capitalize()}s are recognised best", verdict, evidence,
                   f"per-class recall ({on})", seeds_needed=needed, decidable=decidable)


def most_confused(matrices: Sequence[Sequence[Sequence[int]]], names: Sequence[str],
                  claimed: Sequence[str], alpha: float = ALPHA, pool: int | None = None,
                  spread: np.ndarray | None = None, on: str = "test set") -> Verdict:
    """The ``claimed`` classes are confused most (lowest recall: most of their images
    predicted as another class): holds when each is below every other class, does not
    hold when another class is below one of them (Bonferroni over the pairs); the rest:
    as in :func:`best_recognised`."""
    found = recalls(matrices, pool, spread)
    mine = [names.index(c) for c in claimed]
    rest = [i for i in range(len(names)) if i not in mine]
    lowest = sorted(range(len(names)), key=lambda i: found.mean[i])[:len(claimed)]
    evidence = ("lowest mean recall: " + _recall_text(found, names, lowest)
                + f"; most confused pair: {_top_pair(matrices, names, pool)}")
    verdict, needed, decidable = _ordered(found, [(j, i) for i in mine for j in rest], alpha)
    return Verdict("6", f"{', '.join(claimed)} are the most confused classes", verdict,
                   evidence, f"per-class recall ({on})", seeds_needed=needed,
                   decidable=decidable)


def _ordered(found: Recalls, pairs: Sequence[tuple[int, int]], alpha: float
             ) -> tuple[str, float | None, bool]:
    """The verdict on "class ``a``'s recall is above ``b``'s" for every ``(a, b)`` of
    ``pairs``: holds when each is shown, does not hold when one is shown the other way
    round (Bonferroni over the pairs); and, open, the seeds that would decide it (inf
    where the pool's image noise alone keeps it open) and whether any number could."""
    if all(_above(found, a, b, alpha) for a, b in pairs):
        return HOLDS, None, True
    if any(_above(found, b, a, alpha / len(pairs)) for a, b in pairs):
        return FAILS, None, True

    def seeds(power: float) -> float:
        holds = max(_seeds_above(found, a, b, alpha, power) for a, b in pairs)
        return min(holds, *(_seeds_above(found, b, a, alpha / len(pairs), power)
                            for a, b in pairs))

    return UNCLEAR, seeds(POWER), seeds(0.5) < math.inf


def _seeds_above(found: Recalls, a: int, b: int, level: float, power: float) -> float:
    """Seeds at which :func:`_above` would show ``a`` above ``b`` with ``power``, if the
    mean difference and the runs' spread stay as seen."""
    weights = _difference(found, a, b)
    per_run, images = found.noise(weights)
    return seeds_to_decide(float(found.mean @ weights), math.sqrt(per_run), level, images,
                           power)


def _top_pair(matrices: Sequence[Sequence[Sequence[int]]], names: Sequence[str],
              pool: int | None) -> str:
    """The largest share of a class's test images predicted as one other class, mean over
    runs, with its 95 % interval (as a recall's: runs' spread and the pool's images)."""
    counts = np.array(matrices, dtype=float)
    share = counts / np.maximum(counts.sum(axis=2, keepdims=True), 1)
    for i in range(share.shape[1]):
        share[:, i, i] = 0
    true, predicted = np.unravel_index(np.argmax(share.mean(axis=0)), share.shape[1:])
    images = counts[:, true].sum(axis=1).mean() * _pool_scale(counts, pool)
    low, high = Recalls(share[:, true, predicted, None], np.array([images])).interval(
        np.ones(1))
    return (f"{names[true]} taken for {names[predicted]} in "
            f"{share[:, true, predicted].mean():.2f} [{low:.2f}, {high:.2f}] of its images")
