"""``cnnlab sweep``: plan a sweep, run it, then draw and write what its results show.

Three parts, data flowing one way: :mod:`cnnlab.sweep_spec` reads and expands the sweep
file into runs; :mod:`cnnlab.sweep_runner` trains the pending ones through an executor
(:mod:`cnnlab.executors`, :mod:`cnnlab.ray_executor`) and rewrites ``results.csv`` after
each; this module then writes what hangs off the results table and run folders: the
console table, ``best_config.yaml``, the plots, ``report.html`` and TensorBoard's HParams.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cnnlab import executors, findings, report, results, runs, sweep_plots, sweep_runner
from cnnlab.ray_executor import RayExecutor, RayOptions
from cnnlab.sweep_spec import (
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
              backend_options: RayOptions | None = None) -> Path:
    """Train every run of ``sweep`` not finished yet; write results, plots and the winner.

    Returns the sweep folder. Runs whose folder holds ``metrics.json`` are kept as they
    are; partial folders (a killed or failed run) are cleared and the run is redone.
    """
    with sweep_runner.sweep_folder(sweep, out, outputs_root) as sweep_dir:
        todo = sweep_runner.pending(sweep, sweep_dir)
        done = len(sweep.runs) - len(todo)
        log(f"sweep {sweep.name}: {len(sweep.runs)} runs -> {sweep_dir}"
            + (f" (resuming: {done} finished earlier, kept)" if done else ""))
        executor = (RayExecutor(todo, backend_options or RayOptions(), log)
                    if backend == "ray" else executors.local(todo))
        try:
            sweep_runner.run(sweep, sweep_dir, executor, log)
        except BaseException:
            executor.close(cancel=True)
            raise
        executor.close()
        finish(sweep, sweep_dir, log)
    return sweep_dir


def finish(sweep: Sweep, sweep_dir: Path, log: Log = print) -> None:
    """From the run folders: results.csv, summary.csv, findings.md, the console table,
    best_config.yaml, the plots, report.html and the HParams of every finished run."""
    rows = results.write_sweep_results(sweep, sweep_dir)
    summary = results.write_summary(sweep, sweep_dir, rows)
    runs.write_atomic(sweep_dir / runs.FINDINGS_FILE, findings.findings(
        f"sweep {sweep.name}", summary, rows, sweep.arms, sweep.select_by))
    log(f"\nsweep {sweep.name}: results (best first by {sweep.select_by}):")
    log(results.format_table(rows, sweep.params) if sweep.repeats == 1 else
        results.format_summary_table(summary, sweep.params, sweep.select_by))
    best = results.best_arm(summary)
    if best:
        path = results.write_best_config(sweep, sweep_dir, best)
        log(f"best: {best['arm']} ({sweep.select_by} "
            f"{results.format_number(best[f'{sweep.select_by}_mean'])}) -> {path} "
            f"(train it with: cnnlab train {path})")
    written = sweep_plots.draw_all(sweep_dir, f"sweep {sweep.name}", rows, sweep.params,
                                   results.all_curves(rows, sweep_dir),
                                   summary if sweep.repeats > 1 else None)
    log(f"results: {sweep_dir / runs.RESULTS_FILE}, {runs.SUMMARY_CSV_FILE}, "
        f"{runs.FINDINGS_FILE}; plots: {', '.join(p.name for p in written)}")
    report.try_write_report(sweep_dir, log)
    from cnnlab import tracking  # imports TensorFlow: only after the runs chose CPU settings

    tracking.write_sweep_hparams(sweep_dir, sweep.name, rows, sweep.params, log)
