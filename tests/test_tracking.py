"""Tracking: TensorBoard event files of a run and a sweep's HParams; MLflow, read back
through MLflow's own client from a real local SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnnlab.sweep import run_sweep, sweep_from_dict
from cnnlab.tf import tf


def events(folder: Path) -> list:
    return [e for f in sorted(folder.glob("events.out.tfevents.*"))
            for e in tf.compat.v1.train.summary_iterator(str(f))]


def scalar_tags(folder: Path) -> dict[str, list[int]]:
    """tag -> steps of the scalars in a folder's event files."""
    found: dict[str, list[int]] = {}
    for event in events(folder):
        for value in event.summary.value:
            found.setdefault(value.tag, []).append(event.step)
    return found


def test_sweep_runs_write_tensorboard_epochs_and_hparams(
        tmp_path: Path, sample_archive: Path, cache_dir: Path) -> None:
    from tensorboard.plugins.hparams import metadata

    sweep = sweep_from_dict({
        "name": "tb", "base": {"model": {"filters": [8]}},
        "set": {"data.path": str(sample_archive), "data.cache_dir": str(cache_dir),
                "data.download": False, "data.train_size": 200, "data.val_size": 100,
                "data.test_size": 100, "train.epochs": 2, "train.verbose": 0},
        "axes": {"train.batch_size": [32, 64]},
    })
    sweep_dir = run_sweep(sweep, tmp_path / "sweep", log=lambda line: None)
    for run in sweep.runs:
        board = sweep_dir / run.id / "tensorboard"
        assert scalar_tags(board / "train")["epoch_loss"] == [0, 1]
        assert scalar_tags(board / "validation")["epoch_accuracy"] == [0, 1]
        session = sweep_dir / "hparams" / run.id
        starts = [v for e in events(session) for v in e.summary.value
                  if v.tag == metadata.SESSION_START_INFO_TAG]
        assert len(starts) == 1
        info = metadata.parse_session_start_info_plugin_data(starts[0].metadata.plugin_data.content)
        assert info.hparams["train.batch_size"].number_value == run.config.train.batch_size
        assert info.group_name == f"tb/{run.id}"
        metrics = json.loads((sweep_dir / run.id / "metrics.json").read_text())
        final = {v.tag: tf.make_ndarray(v.tensor) for e in events(session)
                 for v in e.summary.value if v.tag == "best_val_accuracy"}
        assert final["best_val_accuracy"] == pytest.approx(metrics["best_val_accuracy"])


def test_mlflow_logs_params_epochs_timing_and_artifacts(tiny_config, tmp_path: Path) -> None:
    mlflow = pytest.importorskip("mlflow")
    from cnnlab.training import train

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = tiny_config(**{"train.epochs": 2, "tracking.mlflow": True, "tracking.uri": uri,
                            "tracking.experiment": "cnnlab-test"})
    run = train(config, tmp_path / "run", log=lambda line: None)
    record = json.loads((run.path / "mlflow.json").read_text())
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    logged = client.get_run(record["run_id"])
    assert logged.info.status == "FINISHED"
    assert client.get_experiment(logged.info.experiment_id).name == "cnnlab-test"
    assert logged.data.params["train.epochs"] == "2"
    assert logged.data.params["model.filters"] == json.dumps(list(config.model.filters))
    assert len(client.get_metric_history(record["run_id"], "val_accuracy")) == 2
    assert len(client.get_metric_history(record["run_id"], "loss")) == 2
    assert logged.data.metrics["ms_per_step"] == pytest.approx(run.metrics["ms_per_step"])
    assert logged.data.metrics["test_accuracy"] == pytest.approx(run.metrics["test_accuracy"])
    artifacts = {a.path for a in client.list_artifacts(record["run_id"])}
    assert {"model.keras", "config.yaml", "metrics.json", "history.csv", "plots"} <= artifacts
    plots = {a.path for a in client.list_artifacts(record["run_id"], "plots")}
    assert "plots/curves.png" in plots
    assert (tmp_path / "mlartifacts" / "cnnlab-test").is_dir()  # beside the store
