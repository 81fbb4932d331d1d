"""``cnnlab compare``: the results table and overlay plots of finished runs chosen by hand."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from cnnlab.runs import layout, storage
from cnnlab.sweep import figures as sweep_plots
from cnnlab.sweep import results
from cnnlab.sweep.run import Extra

Log = Callable[[str], None]


def compare(paths: Iterable[str | Path], out: str | Path | None = None, log: Log = print,
            outputs_root: str | Path = "outputs", extra: Extra | None = None) -> Path:
    """Overlay the curves of finished runs (run folders, or every run of sweep folders);
    write results.csv and plots (and ``extra``'s, as for a sweep) into a new folder,
    returned."""
    rows, params = results.compare_rows(paths)
    out_dir = storage.new_run_dir(out, "compare", outputs_root)
    storage.write_csv(out_dir / layout.RESULTS_FILE, rows, results.columns(params))
    log(results.format_table(rows, params))
    title = f"comparison of {len(rows)} runs"
    written = sweep_plots.draw_all(out_dir, title, rows, params,
                                   results.all_curves(rows, out_dir))
    if extra is not None:
        written += extra(out_dir, title, rows, params, None)
    log(f"results: {out_dir / layout.RESULTS_FILE}; plots: {', '.join(p.name for p in written)}")
    return out_dir
