"""Results of many runs: one row per run, ranking, the console table, and ``cnnlab compare``.

Rows are computed from run folders alone (``metrics.json``, ``config.yaml``,
``history.csv``), so a sweep's results can be rebuilt at any time; drawing is
left to :mod:`cnnlab.sweep_plots`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from cnnlab import runs
from cnnlab.errors import RunError

if TYPE_CHECKING:
    from cnnlab.sweep import Sweep

Log = Callable[[str], None]

# How the winner is chosen: the metric and whether higher ("max") or lower is better.
SELECT_BY = {"best_val_accuracy": "max", "final_val_loss": "min"}
METRIC_COLUMNS = ["best_val_accuracy", "best_epoch", "test_accuracy", "final_train_loss",
                  "final_val_loss", "overfit_epoch", "ms_per_step", "s_per_epoch",
                  "trainable_params", "status"]
RANKED_STATUSES = ("finished", "early_stopped")


@dataclass(frozen=True)
class Curves:
    """What the overlay plots need of one run."""

    label: str
    history: list[dict[str, Any]]
    overfit_epoch: int | None
    status: str


def format_value(value: Any) -> str:
    """A value as YAML flow text: ``[8, 16]``, ``true``, ``null``, ``0.001``."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6)
    return text.strip().removesuffix("...").strip()


def _cell(value: Any) -> Any:
    """A config value as a results cell: numbers and strings as they are, the rest as YAML."""
    if value is None:
        return ""
    if isinstance(value, bool) or isinstance(value, list | tuple | dict):
        return format_value(value)
    return value


def dotted_get(config: dict[str, Any], key: str) -> Any:
    value: Any = config
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def metrics_row(run_dir: Path) -> dict[str, Any]:
    """The metric columns of one run folder; status ``pending`` or ``failed`` if unfinished."""
    metrics_file = run_dir / "metrics.json"
    if metrics_file.exists():
        metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
        row = {key: metrics.get(key) for key in METRIC_COLUMNS}
        for key, value in row.items():
            if isinstance(value, float):
                row[key] = round(value, 3 if key in ("ms_per_step", "s_per_epoch") else 6)
        return {k: ("" if v is None else v) for k, v in row.items()}
    status = "failed" if (run_dir / "error.json").exists() else "pending"
    return {**{key: "" for key in METRIC_COLUMNS}, "status": status}


def rank_rows(rows: list[dict[str, Any]], select_by: str = "best_val_accuracy") -> None:
    """Set ``rank`` (1 = best by ``select_by``) on finished rows; the others get none."""
    sign = -1 if SELECT_BY[select_by] == "max" else 1
    ranked = [r for r in rows if r["status"] in RANKED_STATUSES
              and isinstance(r.get(select_by), int | float) and math.isfinite(r[select_by])]
    ranked.sort(key=lambda r: sign * r[select_by])
    for row in rows:
        row["rank"] = ""
    for position, row in enumerate(ranked, start=1):
        row["rank"] = position


def best_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ranked rows by rank, then the others (diverged, failed, pending) in run order."""
    return sorted(rows, key=lambda r: (r["rank"] == "", r["rank"] if r["rank"] != "" else 0))


def columns(param_columns: list[str]) -> list[str]:
    return ["run", *param_columns, *METRIC_COLUMNS, "rank", "run_dir"]


def format_table(rows: list[dict[str, Any]], param_columns: list[str]) -> str:
    """Rows as an aligned text table, best first."""
    shown = [("rank", "rank"), ("run", "run"), *[(c, c.rsplit(".", 1)[-1]) for c in param_columns],
             ("best_val_accuracy", "best val acc"), ("best_epoch", "epoch"),
             ("test_accuracy", "test acc"), ("overfit_epoch", "overfit"),
             ("ms_per_step", "ms/step"), ("s_per_epoch", "s/epoch"),
             ("trainable_params", "params"), ("status", "status")]
    body = [[_text(row.get(key)) if key in METRIC_COLUMNS else str(row.get(key))
             for key, _ in shown] for row in best_first(rows)]
    header = [title for _, title in shown]
    widths = [max(len(c) for c in col) for col in zip(header, *body, strict=True)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
             for line in [header, ["-" * w for w in widths], *body]]
    return "\n".join(lines)


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def read_curves(run_dir: Path, label: str, row: dict[str, Any]) -> Curves | None:
    history_file = run_dir / "history.csv"
    if row["status"] in ("pending", "failed") or not history_file.exists():
        return None
    overfit = row.get("overfit_epoch")
    return Curves(label, runs.read_csv(history_file), overfit if overfit != "" else None,
                  str(row["status"]))


# --- sweeps ---

def sweep_rows(sweep: Sweep, sweep_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per run of the sweep (finished or not), ranked, and the parameter columns."""
    params = (["variant"] if sweep.variants else []) + sweep.varying
    rows = []
    for run in sweep.runs:
        config = run.config.to_dict()
        row: dict[str, Any] = {"run": run.id}
        if sweep.variants:
            row["variant"] = run.variant
        row.update({key: _cell(dotted_get(config, key)) for key in sweep.varying})
        row.update(metrics_row(sweep_dir / run.id))
        row["run_dir"] = run.id
        rows.append(row)
    rank_rows(rows, sweep.select_by)
    return rows, params


def write_sweep_results(sweep: Sweep, sweep_dir: Path) -> list[dict[str, Any]]:
    rows, params = sweep_rows(sweep, sweep_dir)
    runs.write_csv(sweep_dir / "results.csv", rows, columns(params))
    return rows


def finish_sweep(sweep: Sweep, sweep_dir: Path, log: Log = print) -> None:
    """Results table, the winner's config (``best_config.yaml``) and the sweep's plots."""
    from cnnlab import sweep_plots

    rows, params = sweep_rows(sweep, sweep_dir)
    runs.write_csv(sweep_dir / "results.csv", rows, columns(params))
    log(f"\nsweep {sweep.name}: results (best first by {sweep.select_by}):")
    log(format_table(rows, params))
    winner = next((r for r in rows if r["rank"] == 1), None)
    if winner:
        write_best_config(sweep, sweep_dir, winner)
        log(f"best: {winner['run']} ({sweep.select_by} {_text(winner[sweep.select_by])}) -> "
            f"{sweep_dir / 'best_config.yaml'} (train it with: cnnlab train "
            f"{sweep_dir / 'best_config.yaml'})")
    curves = [read_curves(sweep_dir / r["run"], r["run"].split("-", 1)[-1], r) for r in rows]
    written = sweep_plots.draw_all(sweep_dir, f"sweep {sweep.name}", rows, params,
                                   [c for c in curves if c])
    log(f"results: {sweep_dir / 'results.csv'}; plots: {', '.join(p.name for p in written)}")
    from cnnlab.report import try_write_report

    try_write_report(sweep_dir, log)


def write_best_config(sweep: Sweep, sweep_dir: Path, winner: dict[str, Any]) -> Path:
    """The winning run's config, renamed ``<sweep>-best``, ready for ``cnnlab train``."""
    run = next(r for r in sweep.runs if r.id == winner["run"])
    config = {**run.config.to_dict(), "name": f"{sweep.name}-best"}
    header = (f"# Winner of sweep '{sweep.name}': run {run.id}, {sweep.select_by} "
              f"{winner[sweep.select_by]}.\n# Overrides: "
              + (", ".join(f"{k}={format_value(v)}" for k, v in run.overrides.items()) or "none")
              + f"\n# Train it: cnnlab train {sweep_dir / 'best_config.yaml'}\n")
    from cnnlab.config import config_from_dict

    path = sweep_dir / "best_config.yaml"
    runs.write_atomic(path, header + config_from_dict(config, str(path)).to_yaml())
    return path


# --- cnnlab compare ---

def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Finished run folders among ``paths``: a run folder itself, or the runs inside a folder."""
    found: list[Path] = []
    for path in map(Path, paths):
        if (path / "metrics.json").exists():
            found.append(path)
        elif path.is_dir():
            inside = sorted(p.parent for p in path.glob("*/metrics.json"))
            if not inside:
                raise RunError(f"{path}: holds no finished run (no metrics.json in it or its "
                               "sub-folders); give run folders or sweep folders")
            found.extend(inside)
        else:
            raise RunError(f"{path}: no such folder; give run folders or sweep folders")
    return list(dict.fromkeys(found))


def differing_keys(configs: list[dict[str, Any]]) -> list[str]:
    """Dotted config keys whose values differ between runs (``name`` left out)."""
    def flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in config.items():
            if isinstance(value, dict):
                out.update(flat(value, f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = value
        return out

    flats = [flat(c) for c in configs]
    keys = list(dict.fromkeys(k for f in flats for k in f))
    return [k for k in keys if k != "name" and len({repr(f.get(k)) for f in flats}) > 1]


def _labels(paths: list[Path]) -> list[str]:
    names = [p.name for p in paths]
    return [p.name if names.count(p.name) == 1 else f"{p.parent.name}/{p.name}" for p in paths]


def compare(paths: Iterable[str | Path], out: str | Path | None = None, log: Log = print,
            outputs_root: str | Path = "outputs") -> Path:
    """Overlay the curves of finished runs chosen by hand; write results.csv and plots."""
    from cnnlab import sweep_plots

    run_dirs = find_runs(paths)
    finished = [runs.read_run(p) for p in run_dirs]
    params = differing_keys([r.config for r in finished])
    rows = []
    for run, label in zip(finished, _labels(run_dirs), strict=True):
        row: dict[str, Any] = {"run": label}
        row.update({key: _cell(dotted_get(run.config, key)) for key in params})
        row.update(metrics_row(run.path))
        row["run_dir"] = str(run.path.resolve())
        rows.append(row)
    rank_rows(rows)
    out_dir = runs.new_run_dir(out, "compare", outputs_root)
    runs.write_csv(out_dir / "results.csv", rows, columns(params))
    log(format_table(rows, params))
    curves = [read_curves(Path(r["run_dir"]), r["run"], r) for r in rows]
    written = sweep_plots.draw_all(out_dir, f"comparison of {len(rows)} runs", rows, params,
                                   [c for c in curves if c])
    log(f"results: {out_dir / 'results.csv'}; plots: {', '.join(p.name for p in written)}")
    return out_dir
