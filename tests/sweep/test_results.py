"""Ranking and result rows of many runs, without training: rank_rows, best_first and
metrics_row on hand-made rows and run folders."""

from __future__ import annotations

import json
from pathlib import Path

from cnnlab.runs import layout
from cnnlab.runs.layout import Status
from cnnlab.sweep.results import (
    METRIC_COLUMNS,
    NODE_COLUMN,
    best_first,
    metrics_row,
    rank_rows,
)


def row(run: str, status: str, acc: object = "", loss: object = "") -> dict[str, object]:
    return {"run": run, "status": status, "best_val_accuracy": acc, "final_val_loss": loss}


def ranks(rows: list[dict[str, object]]) -> dict[str, object]:
    return {r["run"]: r["rank"] for r in rows}


# --- rank_rows ---

def test_highest_accuracy_ranks_first_and_ties_keep_run_order() -> None:
    rows = [row("a", "finished", 0.40), row("b", "finished", 0.55),
            row("c", "early_stopped", 0.40), row("d", "finished", 0.61)]
    rank_rows(rows)
    assert ranks(rows) == {"d": 1, "b": 2, "a": 3, "c": 4}


def test_runs_that_cannot_be_compared_get_no_rank() -> None:
    rows = [row("diverged", "diverged", 0.90), row("failed", "failed"),
            row("pending", "pending"), row("pruned", "pruned", 0.95),
            row("interrupted", "interrupted", 0.99), row("odd", "no-such-status", 0.99),
            row("nan", "finished", float("nan")), row("inf", "finished", float("inf")),
            row("blank", "finished", ""), row("text", "finished", "0.5"),
            row("ok", "finished", 0.30)]
    rank_rows(rows)
    assert ranks(rows) == {r["run"]: "" for r in rows} | {"ok": 1}


def test_a_min_direction_metric_ranks_the_lowest_first() -> None:
    rows = [row("a", "finished", 0.9, 1.20), row("b", "finished", 0.1, 0.80),
            row("c", "diverged", 0.5, 0.01), row("d", "finished", 0.5, float("nan")),
            row("e", "finished", 0.5, 0.95)]
    rank_rows(rows, "final_val_loss")
    assert ranks(rows) == {"b": 1, "e": 2, "a": 3, "c": "", "d": ""}


def test_ranking_again_replaces_the_old_ranks() -> None:
    rows = [row("a", "finished", 0.2, 0.5), row("b", "finished", 0.8, 0.9)]
    rank_rows(rows)
    assert ranks(rows) == {"a": 2, "b": 1}
    rows[1]["status"] = "diverged"
    rank_rows(rows, "final_val_loss")
    assert ranks(rows) == {"a": 1, "b": ""}


# --- best_first ---

def test_best_first_puts_ranked_rows_by_rank_then_the_rest_in_run_order() -> None:
    rows = [row("p1", "pending"), row("slow", "finished", 0.3), row("div", "diverged", 0.9),
            row("fast", "finished", 0.7), row("f1", "failed"), row("mid", "finished", 0.5)]
    rank_rows(rows)
    assert [r["run"] for r in best_first(rows)] == ["fast", "mid", "slow", "p1", "div", "f1"]
    assert [r["run"] for r in rows][:2] == ["p1", "slow"]  # the input is left as it was


def test_best_first_with_no_ranked_row_keeps_run_order() -> None:
    rows = [row("x", "failed"), row("y", "pending"), row("z", "diverged", 0.4)]
    rank_rows(rows)
    assert [r["run"] for r in best_first(rows)] == ["x", "y", "z"]


# --- metrics_row ---

def write_metrics(run_dir: Path, **metrics: object) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / layout.METRICS_FILE).write_text(json.dumps(metrics), encoding="utf-8")
    return run_dir


def test_metrics_row_reads_metrics_json_rounded(tmp_path: Path) -> None:
    run_dir = write_metrics(
        tmp_path / "run", status="early_stopped", best_val_accuracy=0.123456789, best_epoch=3,
        test_accuracy=0.5, final_train_loss=1.00000049, final_val_loss=2.25,
        overfit_epoch=None, overfit_rise=0.0123456789, ms_per_step=12.34567,
        s_per_epoch=0.98765, trainable_params=1234, test_loss=9.9, epochs_run=4)
    found = metrics_row(run_dir)
    assert list(found) == [*METRIC_COLUMNS, NODE_COLUMN]  # the results columns, in order
    assert found == {"best_val_accuracy": 0.123457, "best_epoch": 3, "test_accuracy": 0.5,
                     "final_train_loss": 1.0, "final_val_loss": 2.25, "overfit_epoch": "",
                     "overfit_rise": 0.012346, "ms_per_step": 12.346, "s_per_epoch": 0.988,
                     "trainable_params": 1234, "status": "early_stopped", NODE_COLUMN: ""}


def test_metrics_row_leaves_missing_metrics_blank(tmp_path: Path) -> None:
    found = metrics_row(write_metrics(tmp_path / "run", status="diverged",
                                      best_val_accuracy=0.1))
    assert found["status"] == "diverged" and found["best_val_accuracy"] == 0.1
    assert {k for k, v in found.items() if v == ""} == {*METRIC_COLUMNS, NODE_COLUMN} - {
        "status", "best_val_accuracy"}


def test_metrics_row_of_a_failed_run_and_of_an_unstarted_one(tmp_path: Path) -> None:
    failed = tmp_path / "failed"
    failed.mkdir()
    (failed / layout.ERROR_FILE).write_text(json.dumps({"status": "failed", "error": "x"}),
                                            encoding="utf-8")
    empty = tmp_path / "empty"
    empty.mkdir()
    blank = {key: "" for key in [*METRIC_COLUMNS, NODE_COLUMN] if key != "status"}
    assert metrics_row(failed) == {**blank, "status": Status.FAILED}
    assert metrics_row(empty) == {**blank, "status": Status.PENDING}
    assert metrics_row(tmp_path / "never-made") == {**blank, "status": Status.PENDING}


def test_metrics_json_wins_over_an_old_error_json(tmp_path: Path) -> None:
    run_dir = write_metrics(tmp_path / "run", status="finished", best_val_accuracy=0.4)
    (run_dir / layout.ERROR_FILE).write_text("{}", encoding="utf-8")
    assert metrics_row(run_dir)["status"] == "finished"


def test_rows_read_from_run_folders_rank_as_their_metrics_say(tmp_path: Path) -> None:
    """NaN in metrics.json (a diverged loss) reaches the row and keeps it unranked."""
    write_metrics(tmp_path / "a", status="finished", best_val_accuracy=0.3,
                  final_val_loss=float("nan"))
    write_metrics(tmp_path / "b", status="finished", best_val_accuracy=0.2, final_val_loss=1.5)
    write_metrics(tmp_path / "c", status="diverged", best_val_accuracy=0.9,
                  final_val_loss=float("nan"))
    (tmp_path / "d").mkdir()
    rows = [{"run": name, **metrics_row(tmp_path / name)} for name in "abcd"]
    rank_rows(rows, "final_val_loss")
    assert ranks(rows) == {"a": "", "b": 1, "c": "", "d": ""}
    rank_rows(rows)
    assert ranks(rows) == {"a": 1, "b": 2, "c": "", "d": ""}
