"""``cnnlab sweep``: plan a sweep, run it, then draw and write what its results show.

Three parts, data flowing one way: :mod:`cnnlab.sweep.spec` reads and expands the sweep
file into runs; :mod:`cnnlab.sweep.runner` trains the pending ones through an executor
(:mod:`cnnlab.sweep.executors`, :mod:`cnnlab.sweep.ray`) and rewrites ``results.csv`` after
each; this module then writes what hangs off the results table and run folders: the
console table, ``best_config.yaml``, the plots, ``report.html`` and TensorBoard's HParams.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cnnlab.config.schema import Config, config_from_dict
from cnnlab.data import dataset as data
from cnnlab.errors import DataError
from cnnlab.report import pages as report
from cnnlab.runs import layout, storage
from cnnlab.sweep import capacity, executors, findings, hparams, results, seeds, sequential
from cnnlab.sweep import figures as sweep_plots
from cnnlab.sweep import runner as sweep_runner
from cnnlab.sweep.executors import LocalOptions
from cnnlab.sweep.ray import RayExecutor, RayOptions
from cnnlab.sweep.search import figures as search_plots
from cnnlab.sweep.search import recovery
from cnnlab.sweep.search import trials as search
from cnnlab.sweep.spec import (
    Sweep,
    SweepRun,
    builtin_sweeps,
    describe,
    load_sweep,
    sweep_from_dict,
)
from cnnlab.training import sizes

Log = Callable[[str], None]
LOCAL = LocalOptions()  # one run at a time on this machine
Extra = Callable[[Path, str, Sequence[dict[str, Any]], list[str],
                  Sequence[dict[str, Any]] | None], list[Path]]

__all__ = ["Sweep", "SweepRun", "builtin_sweeps", "describe", "finish",
           "load_sweep", "run_sweep", "sweep_from_dict"]


def run_sweep(sweep: Sweep, out: str | Path | None = None, log: Log = print,
              outputs_root: str | Path = "outputs",
              backend: LocalOptions | RayOptions = LOCAL,
              extra: Extra | None = None, budget_s: float | None = None,
              progress: bool = False) -> Path:
    """Train every run of ``sweep`` not finished yet; write results, plots and the winner.

    Returns the sweep folder. Runs whose folder holds ``metrics.json`` are kept as they
    are; partial folders (a killed or failed run) are cleared and the run is redone.
    ``backend``: where runs train, with that backend's options (local: ``jobs``, a number
    or ``auto``, :func:`cnnlab.sweep.capacity.plan`; Ray: its cluster and resources).
    ``extra(sweep_dir, title, rows, params, summary)`` writes more outputs from the results
    (the reference study's timing table) and returns their paths. ``budget_s``: with
    adaptive seeds, no round starts that would take the sweep past it
    (:mod:`cnnlab.sweep.seeds`). ``progress``: a bar of the overall progress under the
    lines (for a terminal; the lines carry the counts anyway).
    """
    asks = sweep.search is not None and not sweep.runs  # a search: trials asked one by one
    configs = [config_from_dict(sweep.common, sweep.origin)] if asks else [
        r.config for r in sweep.runs]
    _check_sizes(configs)
    local = isinstance(backend, LocalOptions)
    fit = capacity.plan(backend.jobs, configs, _runs_to_train(sweep, out),
                        backend.timed) if local else None
    with sweep_runner.sweep_folder(sweep, out, outputs_root) as sweep_dir:
        if asks:
            recovery.checked_study(sweep, sweep_dir, log)
        source = _source(sweep, sweep_dir, log, budget_s, fit.at_once if fit else 1)
        done = sum(storage.is_finished(sweep_dir / r.id) for r in source.sweep.runs)
        log(f"sweep {sweep.name}: {source.total} {'trials' if asks else 'runs'} -> "
            f"{sweep_dir}" + (f" (resuming: {done} finished earlier, kept)" if done else ""))
        if fit is not None and backend.jobs != 1:
            log(fit.reason)
        todo = [] if asks else sweep_runner.pending(sweep, sweep_dir)
        executor = _executor(todo, backend, fit, log, configs[0] if asks else None)
        try:
            sweep_runner.run(sweep, sweep_dir, executor, log, source, bar=progress)
        except BaseException:
            executor.close(cancel=True)
            raise
        executor.close()
        finish(source.sweep, sweep_dir, log, extra, _final(source))
        if asks:
            write_search_figures(source, sweep_dir, log)
    return sweep_dir


def _check_sizes(configs: list[Config]) -> None:
    """Every run fits in memory (one at a time), checked before the sweep folder is made."""
    for config in configs:
        try:
            input_shape, num_classes = data.input_spec(config.data)
        except DataError:
            continue  # data that cannot be read is left to its runs (recorded as failed)
        sizes.check(config, input_shape, num_classes)


def _runs_to_train(sweep: Sweep, out: str | Path | None) -> int:
    """The runs not finished yet in ``out`` (a search: its trials in all)."""
    if sweep.search is not None and not sweep.runs:
        return sweep.search.trials
    if out is None or not Path(out).is_dir():
        return len(sweep.runs)
    return len(sweep_runner.pending(sweep, Path(out)))


def _source(sweep: Sweep, sweep_dir: Path, log: Log, budget_s: float | None, slots: int
            ) -> sweep_runner.Source:
    """Where the runs come from: a search's trials, adaptive seeds, or the fixed plan."""
    if sweep.search is not None and not sweep.runs:
        return search.Trials(sweep, sweep_dir, log)
    if sweep.adaptive:
        return seeds.Seeds(sweep, sweep_dir, log, budget_s, slots)
    return sweep_runner.Plan(sweep, sweep_dir)


def _final(source: sweep_runner.Source) -> sequential.State | None:
    """How the race of adaptive seeds ended."""
    return source.state if isinstance(source, seeds.Seeds) else None


def _executor(todo: list[SweepRun], backend: LocalOptions | RayOptions,
              fit: capacity.Capacity | None, log: Log, unplanned: Config | None
              ) -> sweep_runner.Executor:
    """``todo``: the runs that may come (all of them, with adaptive seeds)."""
    if isinstance(backend, RayOptions):
        return RayExecutor(todo, backend, log, configs=[unplanned] if unplanned else None)
    assert fit is not None
    return executors.local(todo, fit.at_once, fit.cores, log=log, unplanned=unplanned,
                           all_cores_at_once=fit.all_cores_at_once)


def _race_columns(race: sequential.State | None) -> dict[str, dict[str, object]] | None:
    """summary.csv's columns of adaptive seeds, by arm."""
    if race is None:
        return None
    return {name: {"seeds": arm.seeds, "outcome": arm.outcome, "stopped": arm.stopped or ""}
            for name, arm in race.arms.items()}


def write_search_figures(trials: search.Trials, sweep_dir: Path, log: Log = print) -> None:
    """history.png and importance.png of a search, the epochs pruning saved, and the
    sweep page again with them."""
    spec = trials.base.search
    points = search.history_points(trials.study)
    title = f"sweep {trials.base.name}"
    search_plots.plot_history(points, spec.metric, spec.direction == "maximize",
                              sweep_dir / layout.SEARCH_HISTORY_FILE, title)
    found, why_not = search.importances(trials.study, spec.seed)
    figure = sweep_dir / layout.IMPORTANCE_FILE
    if found:
        complete = sum(state == "complete" for _, _, state in points)
        search_plots.plot_importance(found, "fANOVA", complete, figure, title)
    else:
        figure.unlink(missing_ok=True)  # drawn before a resume: no longer what the study says
        log(f"{figure.name} not drawn: {why_not}")
        written = sweep_dir / layout.FINDINGS_FILE  # said on the page too
        storage.write_atomic(written, written.read_text(encoding="utf-8") + (
            f"## Which parameter mattered\n\n- `{figure.name}` is not drawn: {why_not}.\n"))
    log(search.pruning_summary(trials, sweep_dir))
    report.try_write_report(sweep_dir, log)


def finish(sweep: Sweep, sweep_dir: Path, log: Log = print, extra: Extra | None = None,
           race: sequential.State | None = None) -> None:
    """From the run folders: results.csv, summary.csv, findings.md, the console table,
    best_config.yaml, the plots (and ``extra``'s), report.html and the HParams of every
    finished run. ``race``: how adaptive seeds ended (default: replayed from the runs on
    disk)."""
    if sweep.adaptive and race is None:
        race = seeds.progress(sweep, sweep_dir)
    rows = results.write_sweep_results(sweep, sweep_dir)
    summary = results.write_summary(sweep, sweep_dir, rows, _race_columns(race))
    storage.write_atomic(sweep_dir / layout.FINDINGS_FILE, findings.findings(
        f"sweep {sweep.name}", summary, rows, sweep.arms, sweep.select_by, sweep.margin,
        sweep.vary_split, sweep.adaptive,
        sampled=bool(sweep.search and sweep.search.strategy != "grid")))
    log(f"\nsweep {sweep.name}: results (best first by {sweep.select_by}):")
    log(results.format_table(rows, sweep.params) if sweep.repeats == 1 else
        results.format_summary_table(summary, sweep.params, sweep.select_by))
    best = results.best_arm(summary)
    if best:
        path = results.write_best_config(sweep, sweep_dir, best)
        log(f"best: {best['arm']} ({sweep.select_by} "
            f"{results.format_number(best[f'{sweep.select_by}_mean'])}) -> {path} "
            f"(train it with: cnnlab train {shlex.quote(str(path))})")
    per_arm = summary if sweep.repeats > 1 else None
    title = f"sweep {sweep.name}"
    written = sweep_plots.draw_all(sweep_dir, title, rows, sweep.params,
                                   results.all_curves(rows, sweep_dir), per_arm)
    if extra is not None:
        written += extra(sweep_dir, title, rows, list(sweep.params), per_arm)
    log(f"results: {sweep_dir / layout.RESULTS_FILE}, {layout.SUMMARY_CSV_FILE}, "
        f"{layout.FINDINGS_FILE}; plots: {', '.join(p.name for p in written)}")
    report.try_write_report(sweep_dir, log)
    hparams.write_sweep_hparams(sweep_dir, sweep.name, rows, sweep.params, log)
