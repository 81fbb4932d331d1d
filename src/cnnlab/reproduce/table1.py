"""The reference report's Table 1 (time per step and per epoch by batch size) beside this
machine's figures: a table in CSV, Markdown and PNG, and ``timing.png``. Written for any
sweep or comparison whose runs vary ``train.batch_size``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import yaml

from cnnlab.report.figures import plt, save_figure
from cnnlab.runs import layout, storage
from cnnlab.runs.layout import Status, ranked_status
from cnnlab.sweep.stats import is_number

REFERENCE_FILE = Path(__file__).parent / "reference.yaml"  # the report's own numbers
TIMING_COLUMNS = ["batch_size", "ms_per_step", "s_per_epoch", "report_ms_per_step",
                  "report_s_per_epoch", "variant", "run"]
TABLE_FILES = (layout.TIMING_TABLE_CSV_FILE, layout.TIMING_TABLE_MD_FILE, layout.TIMING_FILE,
               layout.TIMING_TABLE_PNG_FILE)


def reference_numbers() -> dict[str, Any]:
    """The reference report's own figures (``reference.yaml``)."""
    return yaml.safe_load(REFERENCE_FILE.read_text(encoding="utf-8"))


def report_table1() -> dict[int, tuple[float, float]]:
    """The reference report's Table 1: batch size -> (ms per step, s per epoch)."""
    table = reference_numbers()["table1"]
    return {int(batch): (values[0], values[1]) for batch, values in table.items()}


def timing_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Batch size, ms/step and s/epoch per run (with the report's Table 1 beside), by batch."""
    reference = report_table1()
    table = []
    for row in rows:
        batch = row.get("train.batch_size")
        if (not is_number(batch) or not is_number(row.get("ms_per_step"))
                or not ranked_status(row.get("status"))):
            continue  # a diverged run stopped early: its timing is not comparable
        report = reference.get(int(batch), ("", ""))
        table.append({"batch_size": int(batch), "ms_per_step": round(row["ms_per_step"], 2),
                      "s_per_epoch": round(row["s_per_epoch"], 2),
                      "report_ms_per_step": report[0], "report_s_per_epoch": report[1],
                      "variant": row.get("variant") or "", "run": row["run"]})
    return sorted(table, key=lambda r: (r["variant"], r["batch_size"]))


def timing_markdown(table: Sequence[dict[str, Any]]) -> str:
    """Table 1 as Markdown: this machine's figures next to the report's."""
    variants = any(r["variant"] for r in table)
    head = (["variant"] if variants else []) + [
        "batch", "ms / step", "s / epoch", "report ms / step", "report s / epoch"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table:
        cells = ([r["variant"]] if variants else []) + [
            r["batch_size"], f"{r['ms_per_step']:.2f}", f"{r['s_per_epoch']:.2f}",
            r["report_ms_per_step"], r["report_s_per_epoch"]]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    note = ("\nms / step and s / epoch: median over epochs 2..N of the training time "
            "(validation excluded). Report figures: its own machine (Table 1).\n")
    return "\n".join(lines) + "\n" + note


def summary_timing_rows(summary: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The timing table of a sweep with repeats: per arm, mean times and the half-width of
    their 95 % intervals (0 where n < 2)."""
    reference = report_table1()
    table = []
    for row in summary:
        batch = row.get("train.batch_size")
        if not is_number(batch) or row["ms_per_step_mean"] is None:
            continue
        report = reference.get(int(batch), ("", ""))
        half = {k: (row[f"{k}_ci_high"] - row[f"{k}_mean"]) if row[f"{k}_ci_high"] is not None
                else 0.0 for k in ("ms_per_step", "s_per_epoch")}
        table.append({"batch_size": int(batch),
                      "ms_per_step": round(row["ms_per_step_mean"], 2),
                      "s_per_epoch": round(row["s_per_epoch_mean"], 2),
                      "ms_per_step_err": half["ms_per_step"],
                      "s_per_epoch_err": half["s_per_epoch"],
                      "report_ms_per_step": report[0], "report_s_per_epoch": report[1],
                      "variant": row.get("variant") or "", "run": row["arm"]})
    return sorted(table, key=lambda r: (r["variant"], r["batch_size"]))


def plot_timing(table: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    """ms/step and s/epoch against batch size (log-2 axis), with the report's figures."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    reference = report_table1()
    groups = list(dict.fromkeys(r["variant"] for r in table))
    for ax, key, name in ((axes[0], "ms_per_step", "time per step (ms)"),
                          (axes[1], "s_per_epoch", "time per epoch (s)")):
        for group in groups:
            rows = [r for r in table if r["variant"] == group]
            ax.errorbar([r["batch_size"] for r in rows], [r[key] for r in rows],
                        yerr=[r.get(f"{key}_err", 0.0) for r in rows], fmt="o-", capsize=3,
                        label=f"this machine{f' ({group})' if group else ''}")
        report = [(b, v[0 if key == "ms_per_step" else 1]) for b, v in reference.items()]
        ax.plot(*zip(*report, strict=True), "s--", color="grey", alpha=0.7,
                label="report (Table 1)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({r["batch_size"] for r in table} | set(reference)))
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel("batch size (log 2 scale)")
        ax.set_ylabel(name)
        ax.set_title(f"{name.capitalize()} by batch size")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{title}: training time (validation excluded)")
    fig.tight_layout()
    save_figure(fig, path)


def plot_timing_table(table: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    """Table 1 drawn as a figure: this machine's timings next to the report's."""
    head = ["batch", "ms / step", "s / epoch", "report ms / step", "report s / epoch"]
    variants = any(r["variant"] for r in table)
    if variants:
        head = ["variant", *head]
    cells = [([r["variant"]] if variants else []) + [
        r["batch_size"], f"{r['ms_per_step']:.2f}", f"{r['s_per_epoch']:.2f}",
        r["report_ms_per_step"], r["report_s_per_epoch"]] for r in table]
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.32 * len(cells)))
    ax.axis("off")
    drawn = ax.table(cellText=[[str(c) for c in row] for row in cells], colLabels=head,
                     loc="center", cellLoc="center")
    drawn.scale(1, 1.3)
    for (row, _), cell in drawn.get_celld().items():
        if row == 0:
            cell.set_text_props(weight="bold")
            cell.set_facecolor("#e8e8e8")
    ax.set_title(f"{title}: Table 1, time per step and per epoch by batch size", fontsize=10)
    save_figure(fig, path)


def write_table1(out_dir: Path, title: str, rows: Sequence[dict[str, Any]], params: list[str],
                 summary: Sequence[dict[str, Any]] | None = None) -> list[Path]:
    """The timing table and figure when the runs vary the batch size (two sizes or more);
    with a per-arm ``summary``, one point per arm with its 95 % interval. The files written."""
    done = [r for r in rows if r["status"] not in (Status.PENDING, Status.FAILED)]
    table = [] if "train.batch_size" not in params else (
        summary_timing_rows(summary) if summary else timing_rows(done))
    if len({r["batch_size"] for r in table}) < 2:
        return []
    storage.write_csv(out_dir / TABLE_FILES[0], table, TIMING_COLUMNS)
    storage.write_atomic(out_dir / TABLE_FILES[1], timing_markdown(table))
    plot_timing(table, out_dir / TABLE_FILES[2], title)
    plot_timing_table(table, out_dir / TABLE_FILES[3], title)
    return [out_dir / name for name in TABLE_FILES]
