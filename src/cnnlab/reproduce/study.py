"""``cnnlab reproduce``: the whole reference study, every section, from one command.

The study (``../shared/reference/lab.md``) is the built-in sweeps -- batch size,
optimizers, depth, grid search, over-fitting remedies -- plus the best model trained
alone, each with ``repeats`` seeds, and what is drawn from them: the standardization
figure, the reference models' layer tables, activation maps, the verdict on each of the
report's claims (:mod:`cnnlab.reproduce.verdicts`), one ``findings.md`` and one ``report.html``
laid out like the report (:mod:`cnnlab.reproduce.page`). Each sweep lives in its own
folder under the study's folder and resumes like any sweep.

By default every sweep has adaptive seeds (``repeats: auto``, :mod:`cnnlab.sweep.seeds`):
first every sweep gets its minimum seeds (3 per arm: the 3-seed study, judged whatever
comes next); then the claims still "not distinguishable" get, at once, the seeds a power
analysis of the minimum seeds says would decide them (none where that is more than
:data:`MAX_REPEATS`), for the arms of the comparisons their tests have not decided (the
claims' own tests, not a race, choose the arms), within what is left of the budget
(which counts the study's own steps too, :func:`spent`), shared out among the sweeps by
their open claims; last, the budget left gives the maximum to the open claims more seeds
could still decide at all, cheapest first, each if all its runs fit.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cnnlab.data import dataset as data
from cnnlab.errors import RunError
from cnnlab.reproduce import pool as test_pool
from cnnlab.reproduce import table1, verdicts
from cnnlab.reproduce.sweeps import (
    BATCH_SIZE,
    BEST,
    DEPTH,
    GRID,
    MAX_REPEATS,
    REGULARIZATION,
    STUDY_SWEEPS,
    TIMED_SWEEP,
)
from cnnlab.runs import layout, load, storage
from cnnlab.sweep import results, sequential
from cnnlab.sweep import runner as sweep_runner
from cnnlab.sweep import seeds as adaptive_seeds
from cnnlab.sweep.executors import LocalOptions
from cnnlab.sweep.spec import Sweep, describe, load_sweep, minimum_runs, sweep_from_dict

Log = Callable[[str], None]
BEST_MODEL = {"name": BEST, "base": "best", "variants": {"best": {}},
              "description": "the report's best model (grid-search winner), trained alone"}
PLAN_FILE = "reproduce.yaml"
# The other sweeps' runs train on one thread each (before --set): --jobs auto then trains
# one per core, faster in all than all-cores runs side by side (benchmarks/README.md),
# and their numbers do not depend on the machine's core count.
UNTIMED_SET = ("train.threads=1",)
DEFAULT_BUDGET = "30m"  # the 15 min the throughput work aims at for 3 seeds, and as much again


@dataclass(frozen=True)
class Study:
    sweeps: tuple[Sweep, ...]
    overrides: tuple[str, ...]
    repeats: int | str  # a number, or auto
    budget_s: float | None = None  # with auto: for the whole study
    vary_split: bool = True

    def sweep(self, name: str) -> Sweep:
        return next(s for s in self.sweeps if s.name == name)

    @property
    def margin(self) -> float:
        return self.sweeps[0].margin

    @property
    def two_passes(self) -> bool:
        """Every sweep's minimum seeds first, then more for the open claims (adaptive
        seeds with a budget)."""
        return self.budget_s is not None

    @property
    def looks(self) -> int:
        """How often the claims are judged: after the minimum seeds (which decides the
        sweeps that get more) and at the end when the study runs in two passes."""
        return 2 if self.two_passes else 1

    @property
    def alpha(self) -> float:
        """Each look's level: the looks together keep the 5 % (Bonferroni)."""
        return verdicts.ALPHA / self.looks

    def level_text(self) -> str:
        if self.looks == 1:
            return f"each claim tested at {self.alpha * 100:g} %"
        return (f"each claim tested at {self.alpha * 100:g} % after the minimum seeds and "
                f"again at the end, {verdicts.ALPHA * 100:g} % in all")

    def record(self) -> dict[str, Any]:
        design = self.sweeps[0].adaptive
        return {"repeats": self.repeats, **({"min_repeats": design.min_repeats,
                                             "max_repeats": design.max_repeats} if design else {}),
                "set": list(self.overrides), "vary_split": self.vary_split,
                "sweeps": {s.name: [r.id for r in s.runs] for s in self.sweeps}}

    def second_pass(self, name: str, wanted: Wanted) -> Sweep:
        """Sweep ``name``'s second pass: ``wanted.seeds`` seeds for each arm its open
        claims still need, at once (their tests, not a race, judge them at the end)."""
        sweep = self.sweep(name)
        return dataclasses.replace(sweep, adaptive=dataclasses.replace(
            sweep.adaptive, max_repeats=wanted.seeds, race=False, arms=wanted.arms))

    def budget_of(self, sweep: str, root: Path, among: dict[str, int]) -> float | None:
        """The budget of sweep ``sweep``'s extra seeds: the time it spent so far, and its
        share of what is left of the study's budget (the time every sweep spent, read from
        ``root``), shared by open claims among ``among`` (each sweep still to get extra
        seeds, ``sweep`` first, with its open claims): time one does not use goes to the
        later ones. The study's own steps count too (:func:`spent`)."""
        if self.budget_s is None:
            return None
        left = self.budget_s - spent(self, root)
        return adaptive_seeds.spent(root / sweep) + max(0.0, left) * among[sweep] / sum(
            among.values())


def spent(study: Study, root: Path) -> float:
    """Seconds the study in ``root`` spent so far, over every command: its sweeps' seeds,
    and its own steps around them (figures, looks), kept in ``root``'s seeds file."""
    return adaptive_seeds.spent(root) + _sweeps_spent(study, root)


def _sweeps_spent(study: Study, root: Path) -> float:
    return sum(adaptive_seeds.spent(root / s.name) for s in study.sweeps)


class _OwnTime:
    """The study's time outside its sweeps' seeds, saved to ``root``'s seeds file at each
    step so that the budget counts it across commands (a command killed in a sweep loses
    its own time since the last step, not the sweep's)."""

    def __init__(self, study: Study, root: Path):
        self.study, self.root = study, root
        self.before, self.sweeps_before = adaptive_seeds.spent(root), _sweeps_spent(study, root)
        self.started = time.monotonic()

    def save(self) -> None:
        sweeps = _sweeps_spent(self.study, self.root) - self.sweeps_before
        own = max(0.0, time.monotonic() - self.started - sweeps)
        storage.write_json(self.root / adaptive_seeds.SEEDS_FILE,
                           {"spent_s": round(self.before + own, 1)})


def plan(overrides: Iterable[str] = (), repeats: int | str = "auto",
         seeds: tuple[int | None, int | None] = (None, None),
         budget_s: float | None = None, margin: float | None = None,
         vary_split: bool = True) -> Study:
    """Every sweep of the study, validated, with ``--set``, ``repeats`` and ``margin``
    applied; ``seeds`` and ``budget_s``: the minimum and maximum (default
    :data:`MAX_REPEATS`) and the budget of ``auto``; ``vary_split``: each repeat draws its
    own split (the default here)."""
    overrides = tuple(overrides)
    untimed = (*UNTIMED_SET, *overrides)
    if repeats == "auto" and seeds[1] is None:
        seeds = (seeds[0], MAX_REPEATS)
    sweeps = [load_sweep(name, overrides if name == TIMED_SWEEP else untimed, repeats,
                         margin=margin, vary_split=vary_split, seeds=seeds)
              for name in STUDY_SWEEPS]
    sweeps.append(_without_race(sweep_from_dict(BEST_MODEL, BEST, overrides=untimed,
                                                repeats=repeats, margin=margin,
                                                vary_split=vary_split, seeds=seeds)))
    return Study(tuple(sweeps), overrides, repeats,
                 budget_s if sweeps[0].adaptive else None, vary_split)


def _without_race(sweep: Sweep) -> Sweep:
    """The best model's sweep: with adaptive seeds, its single arm has no race (its runs
    serve the class claims, tested at the end): the first pass gives it the minimum, the
    second, where its claims could be decided, the maximum."""
    if sweep.adaptive is None:
        return sweep
    return dataclasses.replace(sweep, adaptive=dataclasses.replace(sweep.adaptive, race=False))


def dry_run(study: Study, log: Log = print, jobs: int | str = 1) -> None:
    """List every run and estimate the total time with ``--jobs jobs`` from this
    machine's speed, measured in each run's own setting (:mod:`cnnlab.sweep.estimate`)."""
    from cnnlab.sweep import estimate

    for sweep in study.sweeps:
        log(describe(sweep))
    configs = [[r.config for s in study.sweeps for r in runs(s)]
               for runs in (minimum_runs, lambda s: s.runs)]
    timed = [r.config for r in study.sweep(TIMED_SWEEP).runs]
    for line in estimate.lines(*configs, f"in {len(study.sweeps)} sweeps", jobs, timed):
        log(line)
    if study.budget_s is not None:
        log(f"budget: {sweep_runner.format_duration(study.budget_s)}; every sweep's minimum "
            "seeds first, then more seeds for the claims still not distinguishable, as "
            "many as a power analysis of the minimum seeds asks for (none past the "
            "maximum), for the arms their tests still need; then, with the budget left, the "
            "maximum for open claims more seeds could still decide, cheapest first; no run "
            "starting that would pass the budget")


def study_folder(study: Study, out: str | Path | None, outputs_root: str | Path) -> Path:
    """A new ``<root>/reproduce-<timestamp>``, or ``out``: new, or this study's to resume."""
    if out is None:
        return storage.new_run_dir(None, "reproduce", outputs_root)
    path = Path(out)
    record = path / PLAN_FILE
    if path.is_dir() and any(path.iterdir()):
        if not record.exists():
            raise RunError(f"--out {path}: not empty and not a reproduce folder (no "
                           f"{PLAN_FILE}); choose a new folder")
        differs = _differences(_recorded(record), study.record())
        if differs:
            raise RunError(f"--out {path}: holds a study with other --repeats, --min-repeats, "
                           f"--max-repeats, --set or --same-split ({differs}); "
                           "use the same options, or a new --out folder")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _recorded(record: Path) -> dict[str, Any]:
    """A study folder's plan file, or a one-line error naming it."""
    try:
        found = yaml.safe_load(record.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        found = None
    if not isinstance(found, dict):
        raise RunError(f"{record}: damaged (not a study's plan); choose a new --out folder "
                       "(the runs under it stay as they are)")
    return found


def _differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    """What differs between two plans, as text ("" when nothing does)."""
    shown = [f"{key}: {old.get(key)!r} there, {new.get(key)!r} here" for key in new
             if key != "sweeps" and old.get(key) != new.get(key)]
    if not shown and old != new:
        shown = ["the runs of the sweeps"]
    return "; ".join(shown)


def run(study: Study, out: str | Path | None = None, log: Log = print,
        outputs_root: str | Path = "outputs", jobs: int | str = 1,
        progress: bool = False) -> Path:
    """Run (or resume) every sweep of the study, then judge and write the report;
    ``jobs`` and ``progress`` as in :func:`cnnlab.sweep.run.run_sweep` (the batch-size
    sweep's runs are timed: its all-cores runs train alone)."""
    from cnnlab.sweep import run as sweeps

    root = study_folder(study, out, outputs_root)
    storage.write_atomic(root / PLAN_FILE, yaml.safe_dump(study.record(), sort_keys=False))

    def run_one(sweep: Sweep, title: str, budget_s: float | None) -> None:
        log(f"\n=== reproduce {title}: sweep {sweep.name} ===")
        sweeps.run_sweep(sweep, root / sweep.name, log=log,
                         backend=LocalOptions(jobs, timed=sweep.name == TIMED_SWEEP),
                         extra=table1.write_table1, budget_s=budget_s, progress=progress)

    adaptive, own_time = study.two_passes, _OwnTime(study, root)
    for number, sweep in enumerate(study.sweeps, start=1):
        run_one(sweep, f"{number}/{len(study.sweeps)}" + (", the minimum seeds" if adaptive
                                                         else ""),
                adaptive_seeds.MINIMUM_ONLY if adaptive else None)
    if adaptive:
        draw_figures(study, root, log)  # now, inside the budget: they need no more seeds
        funded, spare = first_look(study, root)
        _second_pass(study, root, funded, run_one, own_time, log)
        _with_the_budget_left(study, root, spare, run_one, own_time, log)
    finish(study, root, log)
    if adaptive:
        own_time.save()
        log(f"reproduce: {sweep_runner.format_duration(spent(study, root))} spent in all, "
            f"budget {sweep_runner.format_duration(study.budget_s)}")
    return root


RunOne = Callable[[Sweep, str, "float | None"], None]


def _second_pass(study: Study, root: Path, wanted: dict[str, Wanted], run_one: RunOne,
                 own_time: _OwnTime, log: Log) -> None:
    """More seeds for the claims still open that their power analyses say the maximum
    would decide (``wanted``, :func:`first_look`), within each sweep's share of the
    budget left."""
    log(f"\nreproduce: claims still not distinguishable in {len(wanted)} sweeps"
        + (f" ({', '.join(f'{n}: {w}' for n, w in wanted.items())}): more seeds for "
           "the arms their tests still need" if wanted else ""))
    for number, (name, want) in enumerate(wanted.items()):
        own_time.save()
        rest = {n: w.claims for n, w in list(wanted.items())[number:]}
        run_one(study.second_pass(name, want), f"more seeds {number + 1}/{len(wanted)}",
                study.budget_of(name, root, rest))


def _with_the_budget_left(study: Study, root: Path, spare: dict[str, Wanted],
                          run_one: RunOne, own_time: _OwnTime, log: Log) -> None:
    """The maximum seeds for the open claims more seeds could still decide but not with
    80 % power (``spare``, :func:`first_look`), cheapest first, each only if all its runs
    fit in what is left of the budget (at its sweep's mean run time, one at a time)."""
    for name, want in spare.items():
        own_time.save()
        sweep_dir, sweep = root / name, study.second_pass(name, want)
        todo = [r for r in adaptive_seeds.so_far(sweep, adaptive_seeds.progress(
            sweep, sweep_dir)).runs if not storage.is_finished(sweep_dir / r.id)]
        run_s = adaptive_seeds.run_seconds(sweep_dir, list(sweep.runs)) or 0.0
        left = study.budget_s - spent(study, root)
        if not todo:
            continue
        if len(todo) * run_s > left:
            log(f"\nreproduce: no more seeds for the open claims of {name}: their "
                f"{len(todo)} runs would take about {len(todo) * run_s:.0f} s, "
                f"{max(0.0, left):.0f} s of the budget left")
            continue
        run_one(sweep, f"with the budget left ({want})", adaptive_seeds.spent(sweep_dir) + left)


def finish(study: Study, root: Path, log: Log = print) -> None:
    """Figures, verdicts, findings.md and report.html of a study whose sweeps are done."""
    from cnnlab.reproduce import page as reproduce_report

    best_run = draw_figures(study, root, log)
    judged = judge(study, root)
    storage.write_atomic(root / layout.FINDINGS_FILE, findings_text(study, root, judged))
    page = reproduce_report.write(study, root, judged, facts(root, best_run), best_run)
    held = sum(v.verdict == verdicts.HOLDS for v in judged)
    log(f"\nreproduce: {held} of {len(judged)} claims of the report hold; report: {page}; "
        f"findings: {root / layout.FINDINGS_FILE}")


def draw_figures(study: Study, root: Path, log: Log = print) -> Path | None:
    """The study's own figures, where not drawn yet: standardization, and the activation
    maps of the best model's first finished run (returned)."""
    from cnnlab.report import figures as plots
    from cnnlab.report.activations import plot_activations

    best_run = _first_finished(root / BEST)
    if not (root / layout.STANDARDIZATION_FILE).exists():
        plots.plot_standardization(*_pixel_samples(study), root / layout.STANDARDIZATION_FILE)
    if best_run is not None and not any((best_run / layout.ACTIVATIONS_DIR).glob("*.png")):
        plot_activations(best_run, log=log)
    return best_run


def facts(root: Path, best_run: Path | None) -> dict[str, dict[str, Any]]:
    """The study's own figures, with the report's beside them where it gives one."""
    reference = table1.reference_numbers()
    baseline_run = _first_finished(root / BATCH_SIZE)
    best = next((r for r in _summary(root, BEST)), None)
    onsets = [r.get("overfit_epoch") for r in _rows(root / BEST / layout.RESULTS_FILE)
              if layout.ranked_status(r.get("status"))]
    seen = [int(e) for e in onsets if e not in ("", None)]
    return {
        "split": _data_used(load.read_run(best_run).metrics["data"]) if best_run else {},
        "params": {"baseline, ours": _metric(baseline_run, "trainable_params"),
                   "baseline, report": reference["baseline_params"],
                   "best, ours": _metric(best_run, "trainable_params"),
                   "best, report": reference["best_params"]},
        "best": {} if best is None else {
            "best validation accuracy, mean (95 % CI)": verdicts.mean_ci(best, "best_val_accuracy"),
            "test accuracy, mean (95 % CI)": verdicts.mean_ci(best, "test_accuracy"),
            "runs": best["n"]},
        "overfitting": {"over-fitting starts, report": f"epoch {reference['overfit_epoch']}",
                        "over-fitting starts, ours (best model)": (
                            f"epoch {sum(seen) / len(seen):.1f} on average, in {len(seen)} of "
                            f"{len(onsets)} runs" if seen else f"not seen in {len(onsets)} runs")},
    }


def _data_used(record: dict[str, Any]) -> dict[str, Any]:
    """Which data the runs used (where it was found) and each split's size."""
    return {"data": f"{record.get('origin')}: {record.get('location')}",
            **record.get("sizes", {})}


def _metric(run_dir: Path | None, key: str) -> Any:
    return load.read_run(run_dir).metrics.get(key) if run_dir else None


def _first_finished(sweep_dir: Path) -> Path | None:
    return next((p.parent for p in sorted(sweep_dir.glob(f"*/{layout.METRICS_FILE}"))), None)


def _pixel_samples(study: Study, count: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Raw pixels of some training images, and the same images standardized."""
    cfg = study.sweep(BEST).runs[0].config.data
    raw = data.read_cached(data.locate(cfg, lambda _: None).path, cfg, lambda _: None)[0]
    sample = raw.x_train[:count]
    return sample, data.standardize(sample)


def _rows(path: Path, only: set[str] | None = None) -> list[dict[str, Any]]:
    """The rows of a results file (``only``: of those runs)."""
    rows = storage.read_csv(path) if path.exists() else []
    return rows if only is None else [r for r in rows if r.get("run") in only]


def _summary(root: Path, name: str) -> list[dict[str, Any]]:
    """A sweep's summary.csv with numbers, None for empty cells and booleans restored."""
    cells = {"": None, "true": True, "false": False}
    return [{k: cells.get(v, v) if isinstance(v, str) else v for k, v in row.items()}
            for row in _rows(root / name / layout.SUMMARY_CSV_FILE)]


def judge(study: Study, root: Path) -> list[verdicts.Verdict]:
    """The verdict on each claim of the report that the study's numbers can test, with
    the seeds its sweep's arms took."""
    funded, spare = first_look(study, root) if study.two_passes else ({}, {})
    wanted = {**spare, **funded}
    return [dataclasses.replace(v, seeds=seeds_used(root, name, wanted.get(name))
                                + _needed_text(v)) for name, v in claims(study, root)]


def _needed_text(v: verdicts.Verdict) -> str:
    """What more seeds would do for an open claim, from its power analysis."""
    if v.verdict != verdicts.UNCLEAR or v.seeds_needed is None:
        return ""
    if v.seeds_needed == math.inf and not v.decidable:
        return "; open: no number of seeds would decide it at the effect seen"
    if v.seeds_needed == math.inf:
        return ("; open: no number of seeds would decide it with 80 % power at the effect "
                "seen, many more might")
    return (f"; open: about {v.seeds_needed:.0f} seeds per arm would decide it "
            f"(80 % power at the effect and spread seen)")


@dataclass(frozen=True)
class Wanted:
    """A sweep's open claims that more seeds may decide, the seeds per arm to give it
    (what its claims' power analyses ask for, at most the maximum) and the arms to give
    them to: those of the comparisons the claims' tests have not decided (None: all)."""

    claims: int
    seeds: int
    arms: frozenset[str] | None = frozenset()

    def __str__(self) -> str:
        if self.arms is None:
            return f"{self.seeds} seeds for every arm"
        return f"{self.seeds} seeds for {len(self.arms)} arm{'s' * (len(self.arms) != 1)}"

    def adding(self, seeds: int, arms: Iterable[str] | None) -> Wanted:
        """This and one more open claim, wanting ``seeds`` seeds for ``arms``."""
        both = None if self.arms is None or arms is None else self.arms | set(arms)
        return Wanted(self.claims + 1, max(self.seeds, seeds), both)


def first_look(study: Study, root: Path) -> tuple[dict[str, Wanted], dict[str, Wanted]]:
    """What the claims still not distinguishable after the minimum seeds get (judged on
    those runs alone, so that a resumed study decides the same), by sweep, with the arms
    their tests still need (:attr:`verdicts.Verdict.arms`):

    - in study order, the claims a power analysis of those runs says the maximum would
      decide (:attr:`verdicts.Verdict.seeds_needed`; not: a near-tie, runs too short to
      show over-fitting, class claims bounded by their test images): the seeds it asks
      for;
    - cheapest first (fewest arms), in the other sweeps, the claims more seeds could still
      decide at all (:attr:`verdicts.Verdict.decidable`): the maximum, when the budget
      left allows."""
    design = study.sweeps[0].adaptive
    judged = claims(study, root, _minimum_ids(study))
    found: dict[str, Wanted] = {}
    for name, v in judged:
        needed = design.max_repeats if v.seeds_needed is None else v.seeds_needed
        if v.verdict == verdicts.UNCLEAR and needed <= design.max_repeats:
            seeds = min(design.max_repeats, max(design.min_repeats + 1, math.ceil(needed)))
            found[name] = found.get(name, Wanted(0, 0)).adding(seeds, v.arms)
    spare: dict[str, Wanted] = {}
    for name, v in judged:
        if v.verdict == verdicts.UNCLEAR and v.decidable and name not in found:
            spare[name] = spare.get(name, Wanted(0, 0)).adding(design.max_repeats, v.arms)
    return ({s.name: found[s.name] for s in study.sweeps if s.name in found},
            dict(sorted(spare.items(), key=lambda item: len(
                study.sweep(item[0]).arms if item[1].arms is None else item[1].arms))))


def _minimum_ids(study: Study) -> set[str]:
    """The runs of every sweep's minimum seeds."""
    return {r.id for s in study.sweeps for r in minimum_runs(s)}


def claims(study: Study, root: Path, only: set[str] | None = None
           ) -> list[tuple[str, verdicts.Verdict]]:
    """Each claim's verdict (at the study's :attr:`Study.alpha`), beside the sweep whose
    runs it is tested on; ``only``: the ids of the runs to judge on (default: all)."""
    classes, alpha = results.class_count(root / BEST), study.alpha
    epochs = study.sweep(REGULARIZATION).runs[0].config.train.epochs
    batch, depth, grid, regularization = (
        _rows(root / name / layout.RESULTS_FILE, only)
        for name in (BATCH_SIZE, DEPTH, GRID, REGULARIZATION))
    blocks3 = lambda r: r["model.filters"] == "[8, 16, 32]"  # noqa: E731
    found = [(BATCH_SIZE, verdicts.rises_then_falls(batch, classes, alpha)),
             (BATCH_SIZE, verdicts.step_and_epoch_time(batch, classes, alpha)),
             (DEPTH, verdicts.arm_is_best(depth, blocks3, "6", "Three conv blocks do best",
                                            classes, alpha)),
             (GRID, verdicts.arm_is_best(
                 grid, lambda r: blocks3(r) and r["model.dense"] == "[64]"
                 and float(r["train.learning_rate"]) == 0.001, "6",
                 "The grid search picks the report's best model", classes, alpha))]
    found += [(REGULARIZATION, check)
              for check in _regularization(regularization, epochs, alpha)]
    return found + [(BEST, v) for v in _class_claims(root / BEST, only, alpha)]


def _class_claims(sweep_dir: Path, only: set[str] | None, alpha: float
                  ) -> list[verdicts.Verdict]:
    """Section 6's two claims on the best model's runs: tested on the whole test pool
    (:mod:`cnnlab.reproduce.pool`), else on each run's recorded confusion matrix."""
    run_dirs, matrices, names, pool = _confusions(sweep_dir, only)
    if not matrices:
        return []
    spread, on = None, "test set"
    whole = test_pool.predict(run_dirs)
    if whole is not None:
        matrices, pool, on = whole.matrices(len(names)), None, (
            f"the whole test pool, {len(whole.labels):,} images")
        spread = verdicts.image_variances(whole.predicted, whole.labels, len(names))
    return [verdicts.best_recognised(matrices, names, "horse", alpha, pool, spread, on),
            verdicts.most_confused(matrices, names, ("bird", "cat", "dog"), alpha, pool,
                                   spread, on)]


def _regularization(rows: list[dict[str, Any]], epochs: int, alpha: float
                    ) -> list[verdicts.Verdict]:
    """Section 7's four claims on over-fitting."""
    return [verdicts.overfitting_seen(rows, "none", True, "7",
                                      "The best model over-fits (validation loss rises)", epochs,
                                      alpha),
            verdicts.remedy(rows, "l2", "none", "7",
                            "L2 regularization prevents over-fitting", epochs, alpha),
            verdicts.remedy(rows, "dropout", "none", "7",
                            "Dropout prevents over-fitting", epochs, alpha),
            verdicts.overfitting_seen(rows, "batch_norm", True, "7",
                                      "Batch norm does not fully prevent over-fitting", epochs,
                                      alpha)]


def seeds_used(root: Path, name: str, wanted: Wanted | None = None) -> str:
    """The seeds the arms of sweep ``name`` took: ``3-7 per arm, 31 runs``, and why they
    stopped; ``wanted``: what its second pass was given (arms stopped there are named
    so: ``at the 4 seeds of its second pass``, not ``max_repeats``)."""
    summary = _summary(root, name)
    counts = [int(r.get("seeds") or r["n"]) for r in summary]
    if not counts:
        return ""
    spread = str(counts[0]) if min(counts) == max(counts) else f"{min(counts)}-{max(counts)}"
    given = f"at the {wanted.seeds} seeds of its second pass" if wanted else None
    stopped = sorted({given if given and r["stopped"] == sequential.MAX_REPEATS
                      else r["stopped"] for r in summary if r.get("stopped")})
    return (f"{spread} per arm, {sum(counts)} runs"
            + (f" (stopped: {', '.join(stopped)})" if stopped else ""))


def _confusions(sweep_dir: Path, only: set[str] | None = None
                ) -> tuple[list[Path], list[list[list[int]]], list[str], int | None]:
    """The finished runs (``only``: of those), each one's test-set confusion matrix, the
    class names, and the test images the runs' test sets were drawn from (the fewest)."""
    runs, found, names, pools = [], [], [], []
    for path in sorted(sweep_dir.glob(f"*/{layout.METRICS_FILE}")):
        if only is not None and path.parent.name not in only:
            continue
        metrics = json.loads(path.read_text(encoding="utf-8"))
        if metrics.get("confusion_matrix") and layout.ranked_status(metrics.get("status")):
            runs.append(path.parent)
            found.append(metrics["confusion_matrix"])
            names = metrics["data"]["class_names"]
            pools.append(metrics["data"].get("available", {}).get("test"))
    known = [p for p in pools if isinstance(p, int)]
    return runs, found, names, min(known) if len(known) == len(pools) and known else None


def _repeats_text(study: Study) -> str:
    design = study.sweeps[0].adaptive
    if design is None:
        return f"{study.repeats} repeats"
    return f"adaptive seeds, {design.min_repeats} to {design.max_repeats}"


def findings_text(study: Study, root: Path, judged: list[verdicts.Verdict]) -> str:
    """findings.md of the study: the verdicts, then each sweep's own findings."""
    lines = [f"# Findings: the reference study reproduced ({_repeats_text(study)} per arm"
             + (f"; --set {' '.join(study.overrides)}" if study.overrides else "") + ")", "",
             "## The report's claims", ""]
    lines += [f"- **{v.verdict}** (section {v.section}): {v.claim} -- tested on {v.metric}: "
              f"{v.evidence}" + (f"; seeds: {v.seeds}" if v.seeds else "") + "."
              for v in judged]
    lines += ["", "Repeats varied the seed (initial weights, data order)"
              + (" and the train/validation/test split" if study.vary_split else
                 " on one fixed train/validation/test split (--same-split)")
              + f"; equivalence margin {study.margin:g}; {study.level_text()}. Each "
              "verdict's test and its calibration: docs/statistics.md."]
    for sweep in study.sweeps:
        path = root / sweep.name / layout.FINDINGS_FILE
        if path.exists():
            body = path.read_text(encoding="utf-8").splitlines()[1:]
            lines += ["", f"## Sweep {sweep.name}", *[ln.replace("## ", "### ") for ln in body]]
    return "\n".join(lines) + "\n"
