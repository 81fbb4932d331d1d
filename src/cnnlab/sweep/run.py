"""``cnnlab sweep``: plan a sweep, run it, then draw and write what its results show.

Three parts, data flowing one way: :mod:`cnnlab.sweep.spec` reads and expands the sweep
file into runs; :mod:`cnnlab.sweep.runner` trains the pending ones through an executor
(:mod:`cnnlab.sweep.executors`, :mod:`cnnlab.sweep.ray`) and rewrites ``results.csv`` after
each; this module then writes what hangs off the results table and run folders: the
console table, ``best_config.yaml``, the plots, ``report.html`` and TensorBoard's HParams.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path

from cnnlab.config.schema import Config, config_from_dict
from cnnlab.report import pages as report
from cnnlab.runs import layout, storage
from cnnlab.sweep import executors, findings, hparams, results
from cnnlab.sweep import figures as sweep_plots
from cnnlab.sweep import runner as sweep_runner
from cnnlab.sweep.ray import RayExecutor, RayOptions
from cnnlab.sweep.search import figures as search_plots
from cnnlab.sweep.search import trials as search
from cnnlab.sweep.spec import (
    Sweep,
    SweepRun,
    builtin_sweeps,
    describe,
    load_sweep,
    sweep_from_dict,
)

Log = Callable[[str], None]
BACKENDS = ("local", "ray")

__all__ = ["BACKENDS", "Sweep", "SweepRun", "builtin_sweeps", "describe", "finish",
           "load_sweep", "run_sweep", "sweep_from_dict"]


def run_sweep(sweep: Sweep, out: str | Path | None = None, log: Log = print,
              outputs_root: str | Path = "outputs", backend: str = "local",
              backend_options: RayOptions | None = None, jobs: int | str = 1,
              progress: bool = False) -> Path:
    """Train every run of ``sweep`` not finished yet; write results, plots and the winner.

    Returns the sweep folder. Runs whose folder holds ``metrics.json`` are kept as they
    are; partial folders (a killed or failed run) are cleared and the run is redone.
    ``jobs`` (local backend): runs trained at once, a number or ``auto``
    (:func:`cnnlab.sweep.executors.jobs_for`). ``progress``: a bar of the overall
    progress under the lines (for a terminal; the lines carry the counts anyway).
    """
    asks = sweep.search is not None and not sweep.runs  # a search: trials asked one by one
    configs = [config_from_dict(sweep.common, sweep.origin)] if asks else [
        r.config for r in sweep.runs]
    at_once, cores = executors.jobs_for(jobs, configs) if backend == "local" else (1, None)
    with sweep_runner.sweep_folder(sweep, out, outputs_root) as sweep_dir:
        source = (search.Trials(sweep, sweep_dir, log) if asks
                  else sweep_runner.Plan(sweep, sweep_dir))
        done = sum(storage.is_finished(sweep_dir / r.id) for r in source.sweep.runs)
        log(f"sweep {sweep.name}: {source.total} {'trials' if asks else 'runs'} -> "
            f"{sweep_dir}" + (f" (resuming: {done} finished earlier, kept)" if done else ""))
        if jobs != 1:
            log(executors.describe_jobs(jobs, at_once, cores, configs))
        executor = _executor(source, backend, backend_options, at_once, cores, log,
                             configs[0] if asks else None)
        try:
            sweep_runner.run(sweep, sweep_dir, executor, log, source, bar=progress)
        except BaseException:
            executor.close(cancel=True)
            raise
        executor.close()
        finish(source.sweep, sweep_dir, log)
        if asks:
            write_search_figures(source, sweep_dir, log)
    return sweep_dir


def _executor(source: sweep_runner.Source, backend: str, options: RayOptions | None,
              at_once: int, cores: int | None, log: Log, unplanned: Config | None
              ) -> sweep_runner.Executor:
    todo = list(source.queue) if isinstance(source, sweep_runner.Plan) else []
    if backend == "ray":
        return RayExecutor(todo, options or RayOptions(), log,
                           configs=[unplanned] if unplanned else None)
    return executors.local(todo, at_once, cores, log=log, unplanned=unplanned)


def write_search_figures(trials: search.Trials, sweep_dir: Path, log: Log = print) -> None:
    """history.png and importance.png of a search, the epochs pruning saved, and the
    sweep page again with them."""
    spec = trials.base.search
    points = search.history_points(trials.study)
    title = f"sweep {trials.base.name}"
    search_plots.plot_history(points, spec.metric, spec.direction == "maximize",
                              sweep_dir / "history.png", title)
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


def finish(sweep: Sweep, sweep_dir: Path, log: Log = print) -> None:
    """From the run folders: results.csv, summary.csv, findings.md, the console table,
    best_config.yaml, the plots, report.html and the HParams of every finished run."""
    rows = results.write_sweep_results(sweep, sweep_dir)
    summary = results.write_summary(sweep, sweep_dir, rows)
    storage.write_atomic(sweep_dir / layout.FINDINGS_FILE, findings.findings(
        f"sweep {sweep.name}", summary, rows, sweep.arms, sweep.select_by,
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
    written = sweep_plots.draw_all(sweep_dir, f"sweep {sweep.name}", rows, sweep.params,
                                   results.all_curves(rows, sweep_dir),
                                   summary if sweep.repeats > 1 else None)
    log(f"results: {sweep_dir / layout.RESULTS_FILE}, {layout.SUMMARY_CSV_FILE}, "
        f"{layout.FINDINGS_FILE}; plots: {', '.join(p.name for p in written)}")
    report.try_write_report(sweep_dir, log)
    hparams.write_sweep_hparams(sweep_dir, sweep.name, rows, sweep.params, log)
