"""Adaptive seeds: which arms of a sweep are decided and which get one more seed (pure).

A group-sequential race. Every arm starts with ``min_repeats`` seeds; after each round
(a *look*) every open arm is compared with the current best arm (by mean):

- ``worse``: Welch's t-test says it differs from the best (two-sided);
- ``equivalent``: TOST (two one-sided Welch tests) puts the difference within
  ``±margin``;
- else it stays open (``inconclusive``) and gets one more seed, up to ``max_repeats``.

The best arm stays open while any other arm is open; once none is, it is ``better``
when every other arm is worse, else ``equivalent``. A decided arm gets no more seeds.

The level of each test keeps the family-wise error at ``alpha`` however many looks are
taken: look ``k`` gets the increment of a Lan-DeMets Pocock-type spending function,
``alpha(t) = alpha * ln(1 + (e - 1) t)`` at information fraction ``t = n_k / n_max``,
times one factor per design calibrated on simulated null races
(:func:`calibrated_factor`): Bonferroni over looks and arms would ignore that the looks
share their seeds (conservative with few arms) and miss that the best arm is chosen
from the same data (over ``alpha`` with many). Pocock's shape spends 42 % of alpha at
3 of 10 seeds, where the clear cases should stop; O'Brien-Fleming's would spend 0.07 %
there, so that a t-test on 4 degrees of freedom could almost never stop an arm at the
minimum.

Everything here is a function of the arms' values: :func:`replay` recomputes every
look from the values of the runs that ended, so a resumed sweep takes the same
decisions. Each comparison is :func:`cnnlab.sweep.stats.compare` (Welch, then TOST) at
the level spent at that look.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from cnnlab.runs.layout import Outcome
from cnnlab.sweep import repeats
from cnnlab.sweep.stats import MARGIN, SEED, compare, smallest_p_against_best

WORSE, EQUIVALENT, BETTER, INCONCLUSIVE = (
    Outcome.WORSE, Outcome.EQUIVALENT, Outcome.BETTER, Outcome.INCONCLUSIVE)
# why an arm stopped: decided, at the maximum, the budget, or given the minimum only
DECIDED, MAX_REPEATS, BUDGET, MINIMUM = "decided", "max_repeats", "budget", "minimum"
RACES = 20_000  # simulated null races that calibrate each design's levels, for each of
SPREADS = (1.0, 0.5, 0.25, 0.1, 0.03)  # every other arm's spread against the rest's


@dataclass(frozen=True)
class Design:
    """The sequential design: seeds per arm from ``min_repeats`` to ``max_repeats``.
    ``race`` off: no look decides an arm; after the minimum every arm is given the
    maximum at once (its runs serve a test made elsewhere, at the end: a claim of
    ``cnnlab reproduce``), and the budget alone may stop it sooner. ``arms``: the only
    arms given seeds past the minimum (None: every arm); the others stop at the minimum
    (the arms a claim's test still needs, in ``cnnlab reproduce``'s second pass)."""

    min_repeats: int = repeats.MIN_REPEATS
    max_repeats: int = repeats.MAX_REPEATS
    alpha: float = 0.05
    margin: float = MARGIN
    race: bool = True
    arms: frozenset[str] | None = None

    @property
    def looks(self) -> int:
        return self.max_repeats - self.min_repeats + 1

    def spent(self, look: int) -> float:
        """Alpha spent up to and including look ``look`` (0: after the minimum seeds)."""
        if look < 0:
            return 0.0
        t = min(1.0, (self.min_repeats + look) / self.max_repeats)
        return self.alpha * math.log(1 + (math.e - 1) * t)

    def increment(self, look: int) -> float:
        """Alpha spent at look ``look`` alone."""
        return self.spent(look) - self.spent(look - 1)

    def level(self, look: int, arms: int) -> float:
        """The level of each comparison at ``look`` among ``arms`` arms: the look's
        increment of alpha times this design's factor (:func:`calibrated_factor`)."""
        return self.increment(look) * calibrated_factor(arms, self.min_repeats,
                                                        self.max_repeats, self.alpha)


@functools.lru_cache(maxsize=64)
def calibrated_factor(arms: int, min_repeats: int, max_repeats: int, alpha: float) -> float:
    """The largest factor on every look's increment of alpha that keeps the family-wise
    error of "worse" at ``alpha`` in :data:`RACES` simulated races of ``arms`` arms of
    equal means, for each ratio of spreads in :data:`SPREADS` (Welch's test is
    conservative with equal spreads and few seeds, not with unequal ones: the least
    favourable ratio sets the factor). Every arm stays open until a first false "worse":
    equivalence stops would only take comparisons away. The factor accounts for what
    Bonferroni over looks and arms ignores or misses: successive looks share their
    seeds, and the best arm is chosen from the same data."""
    if arms < 2:
        return 1.0
    design = Design(min_repeats, max_repeats, alpha)
    increments = np.array([design.increment(k) for k in range(design.looks)])
    # the quantile two Monte Carlo standard errors under alpha: the error at the factor
    # found stays under alpha whatever the simulation's own noise (97.5 % one-sided)
    share = alpha - 2 * math.sqrt(alpha * (1 - alpha) / RACES)
    factors = []
    for spread in SPREADS:
        smallest = _null_smallest_p(arms, min_repeats, max_repeats, spread)  # races x looks
        first = np.min(smallest / increments, axis=1)  # the factor each race first rejects at
        factors.append(float(np.quantile(first, share, method="lower")))
    return min(factors)


@functools.lru_cache(maxsize=64)
def _null_smallest_p(arms: int, min_repeats: int, max_repeats: int, spread: float = 1.0
                     ) -> np.ndarray:
    """The smallest two-sided Welch p of an arm against the best by mean at each look,
    in each of :data:`RACES` races of ``arms`` arms of equal means, every other one with
    ``spread`` times the others' spread: races x looks."""
    rng = np.random.default_rng(SEED)
    scale = np.where(np.arange(arms) % 2, spread, 1.0)
    sums = np.zeros((RACES, arms))
    squares = np.zeros((RACES, arms))
    smallest = []
    for n in range(1, max_repeats + 1):
        draws = rng.standard_normal((RACES, arms)) * scale
        sums += draws
        squares += draws**2
        if n < min_repeats:
            continue
        means = sums / n
        errors = (squares - n * means**2) / (n - 1) / n  # squared standard errors
        # two-sided: the best by mean is above every other arm
        smallest.append(2 * smallest_p_against_best(means, errors, np.full(arms, float(n))))
    return np.stack(smallest, axis=1)


@dataclass(frozen=True)
class Arm:
    """How an arm stands: its outcome, the seeds it was given, why it stopped (None:
    open) and after how many seeds it was decided."""

    outcome: str = INCONCLUSIVE
    seeds: int = 0
    stopped: str | None = None


@dataclass(frozen=True)
class State:
    """Every arm after the looks the ended runs allow; ``round`` looks were taken."""

    arms: dict[str, Arm] = field(default_factory=dict)
    round: int = 0

    @property
    def done(self) -> bool:
        return all(arm.stopped for arm in self.arms.values())

    @property
    def wanted(self) -> dict[str, int]:
        """Seeds each arm has now: the runs to have ended before the next look."""
        return {name: arm.seeds for name, arm in self.arms.items()}

    def runs(self) -> int:
        return sum(arm.seeds for arm in self.arms.values())

    def stop_open(self, reason: str, seeds: Mapping[str, int]) -> State:
        """Every open arm stopped for ``reason`` (the budget) with the ``seeds`` it got."""
        return State({name: arm if arm.stopped else Arm(arm.outcome, seeds[name], reason)
                      for name, arm in self.arms.items()}, self.round)


def look(values: Mapping[str, Sequence[float]], state: State, design: Design,
         higher_is_better: bool) -> dict[str, str]:
    """The outcome of each open arm at look ``state.round``, from every arm's values."""
    means = {name: math.fsum(v) / len(v) for name, v in values.items() if len(v)}
    open_arms = [name for name, arm in state.arms.items() if not arm.stopped]
    if not means or not design.race:
        return {name: INCONCLUSIVE for name in open_arms}
    best = max(means, key=lambda name: means[name] if higher_is_better else -means[name])
    level = design.level(state.round, len(state.arms))
    outcomes = {}
    for name in open_arms:
        if name == best:
            continue
        outcomes[name] = WORSE if not len(values[name]) else compare(
            values[name], values[best], higher_is_better=higher_is_better,
            margin=design.margin, alpha=level)
    if best in open_arms:
        others = [o for n, o in outcomes.items()] + [
            arm.outcome for n, arm in state.arms.items() if arm.stopped and n != best]
        outcomes[best] = (INCONCLUSIVE if INCONCLUSIVE in others
                          else BETTER if all(o == WORSE for o in others) else EQUIVALENT)
    return outcomes


def replay(ended: Mapping[str, Mapping[int, float | None]], design: Design,
           higher_is_better: bool) -> State:
    """Every look that the ended runs allow, in order. ``ended[arm][repeat]``: the value
    of each run that ended (None: it ended without one, e.g. diverged)."""
    state = State({name: Arm(seeds=design.min_repeats) for name in ended})
    while not state.done:
        if any(i not in ended[name] for name, arm in state.arms.items() if not arm.stopped
               for i in range(arm.seeds)):
            return state  # this round's runs are not all in yet
        values = {name: [v for i, v in sorted(ended[name].items())
                         if i < arm.seeds and v is not None]
                  for name, arm in state.arms.items()}
        state = _advance(state, look(values, state, design, higher_is_better), design)
    return state


def _advance(state: State, outcomes: Mapping[str, str], design: Design) -> State:
    """The arms after a look: decided ones stop; open ones get a seed, or stop at the
    maximum."""
    arms = {}
    for name, arm in state.arms.items():
        outcome = outcomes.get(name, arm.outcome)
        if arm.stopped:
            arms[name] = arm
        elif outcome != INCONCLUSIVE:
            arms[name] = Arm(outcome, arm.seeds, DECIDED)
        elif design.arms is not None and name not in design.arms:
            arms[name] = Arm(INCONCLUSIVE, arm.seeds, MINIMUM)
        elif arm.seeds >= design.max_repeats:
            arms[name] = Arm(INCONCLUSIVE, arm.seeds, MAX_REPEATS)
        else:
            arms[name] = Arm(INCONCLUSIVE, arm.seeds + 1 if design.race else design.max_repeats)
    return State(arms, state.round + 1)
