"""``cnnlab compare``: the results table and overlay plots of finished runs chosen by hand."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from cnnlab.runs import layout, storage
from cnnlab.sweep import figures as sweep_plots
from cnnlab.sweep import results

Log = Callable[[str], None]


def compare(paths: Iterable[str | Path], out: str | Path | None = None, log: Log = print,
            outputs_root: str | Path = "outputs") -> Path:
    """Overlay the curves of finished runs (run folders, or every run of sweep folders);
    write results.csv and plots into a new folder, returned."""
    rows, params = results.compare_rows(paths)
    out_dir = storage.new_run_dir(out, "compare", outputs_root)
    storage.write_csv(out_dir / layout.RESULTS_FILE, rows, results.columns(params))
    log(results.format_table(rows, params))
    written = sweep_plots.draw_all(out_dir, f"comparison of {len(rows)} runs", rows, params,
                                   results.all_curves(rows, out_dir))
    log(f"results: {out_dir / layout.RESULTS_FILE}; plots: {', '.join(p.name for p in written)}")
    return out_dir
