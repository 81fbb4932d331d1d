"""Results of many runs: one row per run, ranking, the console tables, summary.csv,
the winner's config, and the rows of ``cnnlab compare``.

Rows are computed from run folders alone (``metrics.json``, ``config.yaml``,
``history.csv``), so a sweep's results can be rebuilt at any time; drawing is left to
:mod:`cnnlab.sweep.figures`.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.config.schema import config_from_dict, format_value
from cnnlab.errors import RunError
from cnnlab.runs import layout, load, storage
from cnnlab.runs.layout import Status, ranked_status
from cnnlab.sweep import stats
from cnnlab.sweep.spec import Sweep

METRIC_COLUMNS = [*layout.RESULT_METRICS, "status"]
NODE_COLUMN = "node"  # the machine (and Ray node) that trained the run


@dataclass(frozen=True)
class Curves:
    """What the overlay plots need of one run."""

    label: str
    history: list[dict[str, Any]]
    overfit_epoch: int | None
    status: str


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
    metrics = storage.read_metrics(run_dir)
    if metrics is not None:
        row = {key: metrics.get(key) for key in METRIC_COLUMNS}
        for key, value in row.items():
            if isinstance(value, float):
                row[key] = round(value, 3 if key in ("ms_per_step", "s_per_epoch") else 6)
        row[NODE_COLUMN] = (metrics.get("environment") or {}).get("node")
        return {k: ("" if v is None else v) for k, v in row.items()}
    status = Status.FAILED if (run_dir / layout.ERROR_FILE).exists() else Status.PENDING
    return {**{key: "" for key in METRIC_COLUMNS}, "status": status, NODE_COLUMN: ""}


def rank_rows(rows: list[dict[str, Any]], select_by: str = "best_val_accuracy") -> None:
    """Set ``rank`` (1 = best by ``select_by``) on finished rows; the others get none."""
    sign = -1 if layout.METRICS[select_by].higher_is_better else 1
    ranked = [r for r in rows if ranked_status(r["status"])
              and isinstance(r.get(select_by), int | float) and math.isfinite(r[select_by])]
    ranked.sort(key=lambda r: sign * r[select_by])
    for row in rows:
        row["rank"] = ""
    for position, row in enumerate(ranked, start=1):
        row["rank"] = position


def best_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ranked rows by rank, then the others (diverged, failed, pending) in run order."""
    return sorted(rows, key=lambda r: (r["rank"] == "", r["rank"] if r["rank"] != "" else 0))


def columns(param_columns: list[str], arms: bool = False) -> list[str]:
    """The results.csv columns; a sweep's rows also name their arm and repeat."""
    return ["run", *(["arm", "repeat"] if arms else []), *param_columns, *METRIC_COLUMNS,
            "rank", "run_dir", NODE_COLUMN]


def format_table(rows: list[dict[str, Any]], param_columns: list[str]) -> str:
    """Rows as an aligned text table, best first."""
    shown = [("rank", "rank"), ("run", "run"), *[(c, c.rsplit(".", 1)[-1]) for c in param_columns],
             ("best_val_accuracy", "best val acc"), ("best_epoch", "epoch"),
             ("test_accuracy", "test acc"), ("overfit_epoch", "overfit"),
             ("ms_per_step", "ms/step"), ("s_per_epoch", "s/epoch"),
             ("trainable_params", "params"), ("status", "status")]
    body = [[format_number(row.get(key)) if key in METRIC_COLUMNS else _param_text(row.get(key))
             for key, _ in shown] for row in best_first(rows)]
    header = [title for _, title in shown]
    widths = [max(len(c) for c in col) for col in zip(header, *body, strict=True)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
             for line in [header, ["-" * w for w in widths], *body]]
    return "\n".join(lines)


def _param_text(value: Any) -> str:
    """A parameter cell of the console table: a search's sampled floats to 4 digits
    (results.csv keeps them exact)."""
    return format(value, ".4g") if isinstance(value, float) else str(value)


def format_number(value: Any) -> str:
    """A table cell: floats to 4 decimals (1 from 10 up), the rest as text."""
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def read_curves(run_dir: Path, label: str, row: dict[str, Any]) -> Curves | None:
    history_file = run_dir / layout.HISTORY_FILE
    if row["status"] in (Status.PENDING, Status.FAILED) or not history_file.exists():
        return None
    try:
        history = storage.read_csv(history_file)
    except (ValueError, TypeError, csv.Error, OSError):  # damaged: the run kept, no curves
        return None
    if not history or not all(isinstance(r.get(key), int | float) for r in history
                              for key in layout.HISTORY_COLUMNS[:5]):
        return None
    overfit = row.get("overfit_epoch")
    return Curves(label, history, overfit if overfit != "" else None, str(row["status"]))


# --- sweeps ---

def sweep_rows(sweep: Sweep, sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per run of the sweep (finished or not), ranked; columns: :func:`columns`
    of ``sweep.params``."""
    rows = []
    for run in sweep.runs:
        config = run.config.to_dict()
        row: dict[str, Any] = {"run": run.id, "arm": run.arm, "repeat": run.repeat}
        if sweep.variants:
            row["variant"] = run.variant
        # a search's invalid sample keeps its values in overrides (its config is the base)
        row.update({key: _cell(run.overrides[key] if sweep.search and key in run.overrides
                               else dotted_get(config, key)) for key in sweep.varying})
        row.update(metrics_row(sweep_dir / run.id))
        row["run_dir"] = run.id
        rows.append(row)
    rank_rows(rows, sweep.select_by)
    return rows


def write_sweep_results(sweep: Sweep, sweep_dir: Path) -> list[dict[str, Any]]:
    """Rewrite ``results.csv`` from the run folders; returns its rows."""
    rows = sweep_rows(sweep, sweep_dir)
    storage.write_csv(sweep_dir / layout.RESULTS_FILE, rows, columns(sweep.params, arms=True))
    return rows


def write_summary(sweep: Sweep, sweep_dir: Path, rows: Sequence[dict[str, Any]],
                  extra: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """``summary.csv``: one row per arm, statistics over its repeats (:mod:`cnnlab.sweep.stats`);
    ``extra``: more columns by arm, after ``n`` (adaptive seeds: seeds, outcome, stopped)."""
    summary = stats.summarize(rows, sweep.arms, sweep.params, sweep.select_by, sweep.margin,
                              class_count(sweep_dir))
    columns = stats.summary_columns(sweep.params)
    if extra:
        for row in summary:
            row.update(extra.get(row["arm"], {}))
        added = list(next(iter(extra.values())))
        at = columns.index("n") + 1
        columns = columns[:at] + added + columns[at:]
    storage.write_csv(sweep_dir / layout.SUMMARY_CSV_FILE, [_csv_row(r) for r in summary],
                      columns)
    return summary


def class_count(sweep_dir: Path, default: int = 10) -> int:
    """The number of classes, from a finished run's data record (chance accuracy is 1 over
    it); ``default`` where no run recorded one."""
    for path in sorted(sweep_dir.glob(f"*/{layout.METRICS_FILE}")):
        names = json.loads(path.read_text(encoding="utf-8")).get("data", {}).get("class_names")
        if names:
            return len(names)
    return default


def _csv_row(row: dict[str, Any]) -> dict[str, Any]:
    def cell(value: Any) -> Any:
        if isinstance(value, bool):
            return str(value).lower()
        return round(value, 6) if isinstance(value, float) else value

    return {k: cell(v) for k, v in row.items()}


def best_arm(summary: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    return next((r for r in summary if r["rank"] == 1), None)


def write_best_config(sweep: Sweep, sweep_dir: Path, best: dict[str, Any]) -> Path:
    """The best arm's config (its first repeat's), renamed ``<sweep>-best``, ready for
    ``cnnlab train``."""
    run = next(r for r in sweep.runs if r.arm == best["arm"])
    config = {**run.config.to_dict(), "name": f"{sweep.name}-best"}
    path = sweep_dir / layout.BEST_CONFIG_FILE
    mean = best[f"{sweep.select_by}_mean"]
    diverged = (f"; every arm had a diverged run, this one {best['diverged']} of {best['n']}"
                if best["diverged"] else "")
    header = (f"# Winner of sweep '{sweep.name}': arm {best['arm']}, {sweep.select_by} "
              f"{'mean ' if best['n'] > 1 else ''}{mean:.6g} (n = {best['n']}{diverged})."
              "\n# Overrides: "
              + (", ".join(f"{k}={format_value(v)}" for k, v in run.overrides.items()) or "none")
              + f"\n# Train it: cnnlab train {path}\n")
    storage.write_atomic(path, header + config_from_dict(config, str(path)).to_yaml())
    return path


def format_summary_table(summary: Sequence[dict[str, Any]], params: Sequence[str],
                         select_by: str) -> str:
    """The arms as an aligned text table, best first: mean and 95 % interval of
    ``select_by``, test accuracy, the test against the best and its outcome (the words of
    summary.csv's ``vs_best``)."""
    head = ["rank", "arm", *[p.rsplit(".", 1)[-1] for p in params], "n", "diverged",
            f"{select_by} mean", "95% CI", "test acc", "p vs best", "P(beats best)", "vs best"]
    body = []
    for row in sorted(summary, key=lambda r: (r["rank"] is None, r["rank"] or 0)):
        low, high = row[f"{select_by}_ci_low"], row[f"{select_by}_ci_high"]
        chance = "" if row["p_better"] is None else (
            f"{row['p_better']:.2f} ({row['p_better_low']:.2f}-{row['p_better_high']:.2f})")
        body.append([str(row["rank"] or ""), row["arm"], *[str(row[p]) for p in params],
                     str(row["n"]), str(row["diverged"]),
                     format_number(row[f"{select_by}_mean"] or ""),
                     "" if low is None else f"{low:.4f}-{high:.4f}",
                     format_number(row["test_accuracy_mean"] or ""),
                     "" if row["p_vs_best"] is None else f"{row['p_vs_best']:.3g}",
                     chance, row["vs_best"] or ""])
    widths = [max(len(c) for c in col) for col in zip(head, *body, strict=True)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
             for line in [head, ["-" * w for w in widths], *body]]
    return "\n".join(lines)


def all_curves(rows: Sequence[dict[str, Any]], folder: Path) -> list[Curves]:
    """The curves of every row's run that has a history; ``run_dir`` is relative to
    ``folder`` (a sweep) or absolute (a comparison)."""
    found = [read_curves(folder / r["run_dir"], r["run"], r) for r in rows]
    return [c for c in found if c]


def arm_curves(curves: Sequence[Curves], rows: Sequence[dict[str, Any]]) -> list[Curves]:
    """One mean curve per arm (the runs' histories averaged per epoch, with 95 % interval
    bounds as ``<key>_low`` / ``<key>_high``), labelled by the arm."""
    arm_of = {r["run"]: r["arm"] for r in rows}
    grouped: dict[str, list[Curves]] = {}
    for curve in curves:
        grouped.setdefault(arm_of[curve.label], []).append(curve)
    found = []
    for arm, members in grouped.items():
        history: list[dict[str, Any]] = []
        for key in ("accuracy", "val_accuracy", "loss", "val_loss"):
            mean, low, high = stats.band([[float(r[key]) for r in c.history] for c in members])
            for epoch, values in enumerate(zip(mean, low, high, strict=True)):
                if len(history) <= epoch:
                    history.append({"epoch": epoch + 1})
                history[epoch].update({key: values[0], f"{key}_low": values[1],
                                       f"{key}_high": values[2]})
        found.append(Curves(f"{arm} (n={len(members)})", history, None, Status.FINISHED))
    return found


# --- cnnlab compare ---

def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Finished run folders among ``paths``: a run folder itself, or the runs inside a folder."""
    found: list[Path] = []
    for path in map(Path, paths):
        if storage.is_finished(path):
            found.append(path)
        elif path.is_dir():
            inside = sorted(p.parent for p in path.glob(f"*/{layout.METRICS_FILE}")
                            if storage.is_finished(p.parent))
            if not inside:
                raise RunError(f"{path}: holds no finished run (no metrics.json in it or its "
                               "sub-folders); give run folders or sweep folders")
            found.extend(inside)
        else:
            raise RunError(f"{path}: no such folder; give run folders or sweep folders")
    return list(dict.fromkeys(found))


def differing_keys(configs: list[dict[str, Any]]) -> list[str]:
    """Dotted config keys whose values differ between runs (``name`` left out)."""
    flats = [storage.flatten(c) for c in configs]
    keys = list(dict.fromkeys(k for f in flats for k in f))
    return [k for k in keys if k != "name" and len({repr(f.get(k)) for f in flats}) > 1]


def _labels(paths: list[Path]) -> list[str]:
    names = [p.name for p in paths]
    return [p.name if names.count(p.name) == 1 else f"{p.parent.name}/{p.name}" for p in paths]


def compare_rows(paths: Iterable[str | Path]) -> tuple[list[dict[str, Any]], list[str]]:
    """Ranked rows of finished runs chosen by hand, and the config keys that differ."""
    run_dirs = find_runs(paths)
    finished = [load.read_run(p) for p in run_dirs]
    params = differing_keys([r.config for r in finished])
    rows = []
    for run, label in zip(finished, _labels(run_dirs), strict=True):
        row: dict[str, Any] = {"run": label}
        row.update({key: _cell(dotted_get(run.config, key)) for key in params})
        row.update(metrics_row(run.path))
        row["run_dir"] = str(run.path.resolve())
        rows.append(row)
    rank_rows(rows)
    return rows, params
