"""Tracking: TensorBoard event files of a run and a sweep's HParams; MLflow, read back
through MLflow's own client from a real local SQLite store."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import one_line_error, tiny_args, user_env

from cnnlab.backend.tf import tf
from cnnlab.cli import main
from cnnlab.sweep.run import run_sweep, sweep_from_dict

REPO = Path(__file__).resolve().parents[2]


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
        "variants": {  # Adam has no momentum: its session leaves the key out
            "sgd": {"train.optimizer": "sgd_momentum", "train.momentum": 0.9,
                    "train.batch_size": 32},
            "adam": {"train.optimizer": "adam", "train.momentum": None, "train.batch_size": 64}},
    })
    sweep_dir = run_sweep(sweep, tmp_path / "sweep", log=lambda line: None)
    for run in sweep.runs:
        board = sweep_dir / run.id / "tensorboard"
        assert scalar_tags(board / "train")["epoch_loss"] == [1, 2]  # as history.csv
        assert scalar_tags(board / "validation")["epoch_accuracy"] == [1, 2]
        session = sweep_dir / "hparams" / run.id
        starts = [v for e in events(session) for v in e.summary.value
                  if v.tag == metadata.SESSION_START_INFO_TAG]
        assert len(starts) == 1
        info = metadata.parse_session_start_info_plugin_data(starts[0].metadata.plugin_data.content)
        assert info.hparams["train.batch_size"].number_value == run.config.train.batch_size
        if run.config.train.momentum is None:  # left out, not the text "None"
            assert "train.momentum" not in info.hparams
        else:
            assert info.hparams["train.momentum"].number_value == run.config.train.momentum
        assert info.group_name == f"tb/{run.id}"
        metrics = json.loads((sweep_dir / run.id / "metrics.json").read_text())
        final = {v.tag: tf.make_ndarray(v.tensor) for e in events(session)
                 for v in e.summary.value if v.tag == "best_val_accuracy"}
        assert final["best_val_accuracy"] == pytest.approx(metrics["best_val_accuracy"])


WRITE_WITHOUT_TF = """
import sys
from pathlib import Path
import cnnlab.sweep.hparams, cnnlab.sweep.run
from tensorboard.plugins.hparams.summary_v2 import hparams_pb
from tensorboard.plugins.scalar.summary_v2 import scalar_pb
cnnlab.sweep.hparams._write_events(Path(sys.argv[1]), [
    (0, hparams_pb({"train.batch_size": 32}, trial_id="s/001")),
    (3, scalar_pb("test_loss", 1.5))])
print("tensorflow" in sys.modules, "keras" in sys.modules)
"""


def test_sweep_hparams_are_written_without_importing_tensorflow(tmp_path: Path) -> None:
    """A sweep's main process trains nothing: importing cnnlab.sweep.run and cnnlab.sweep.hparams
    and writing an HParams event file (in a fresh process) loads neither TensorFlow nor Keras."""
    result = subprocess.run([sys.executable, "-c", WRITE_WITHOUT_TF, str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"], result.stdout + result.stderr
    steps = {v.tag: (e.step, v) for e in events(tmp_path) for v in e.summary.value}
    assert steps["test_loss"][0] == 3
    assert tf.make_ndarray(steps["test_loss"][1].tensor) == pytest.approx(1.5)
    assert "_hparams_/session_start_info" in steps


def test_mlflow_logs_params_epochs_timing_and_artifacts(tiny_config, tmp_path: Path) -> None:
    mlflow = pytest.importorskip("mlflow")
    from cnnlab.report.run_report import drawer
    from cnnlab.training.loop import train

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = tiny_config(**{"train.epochs": 2, "tracking.mlflow": True, "tracking.uri": uri,
                            "tracking.experiment": "cnnlab-test"})
    run = train(config, tmp_path / "run", log=lambda line: None, draw=drawer())
    record = json.loads((run.path / "mlflow.json").read_text())
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    logged = client.get_run(record["run_id"])
    assert logged.info.status == "FINISHED"
    assert client.get_experiment(logged.info.experiment_id).name == "cnnlab-test"
    assert logged.data.params["train.epochs"] == "2"
    assert logged.data.params["model.filters"] == json.dumps(list(config.model.filters))
    assert logged.data.params["train.optimizer"] == config.train.optimizer  # text, not JSON
    found = client.search_runs([logged.info.experiment_id],
                               f"params.train.optimizer = '{config.train.optimizer}'")
    assert [r.info.run_id for r in found] == [record["run_id"]]
    assert len(client.get_metric_history(record["run_id"], "val_accuracy")) == 2
    assert len(client.get_metric_history(record["run_id"], "loss")) == 2
    assert logged.data.metrics["ms_per_step"] == pytest.approx(run.metrics["ms_per_step"])
    assert logged.data.metrics["test_accuracy"] == pytest.approx(run.metrics["test_accuracy"])
    artifacts = {a.path for a in client.list_artifacts(record["run_id"])}
    assert {"model.keras", "config.yaml", "metrics.json", "history.csv", "plots"} <= artifacts
    plots = {a.path for a in client.list_artifacts(record["run_id"], "plots")}
    assert "plots/curves.png" in plots
    # beside the store: the logged files themselves, byte for byte
    stored = tmp_path / "mlartifacts" / "cnnlab-test" / record["run_id"] / "artifacts"
    for name in ("config.yaml", "metrics.json", "history.csv", "model.keras"):
        assert (stored / name).read_bytes() == (run.path / name).read_bytes(), name
    assert (stored / "plots" / "curves.png").read_bytes() == (run.path / "curves.png").read_bytes()


def test_mlflow_resume_continues_the_same_mlflow_run(tmp_path: Path, sample_archive: Path,
                                                     cache_dir: Path) -> None:
    """Ctrl-C a run logging to MLflow, resume it: the same MLflow run gets every epoch."""
    mlflow = pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "run"

    def args(epochs: int) -> list[str]:
        return ["train", "baseline", "--out", str(out),
                *tiny_args(sample_archive, cache_dir, epochs=epochs, **{
                    "tracking.mlflow": True, "tracking.uri": uri,
                    "tracking.experiment": "resumed"})]

    process = subprocess.Popen([sys.executable, "-m", "cnnlab.cli", *args(200)], cwd=REPO,
                               env=user_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        deadline = time.monotonic() + 300
        meta = out / "backup" / "training_metadata.json"
        while not (meta.exists() and json.loads(meta.read_text() or "{}").get("epoch", 0) >= 2):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "two epochs were never backed up"
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    # (MLflow logs its own INFO lines to stderr when it creates the database)
    assert "Traceback" not in stderr, stderr
    assert [line for line in stderr.splitlines() if line.startswith("cnnlab:")] == \
        [stderr.strip().splitlines()[-1]]
    assert stderr.strip().splitlines()[-1].startswith("cnnlab: error: training interrupted")
    record = json.loads((out / "mlflow.json").read_text())
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    assert client.get_run(record["run_id"]).info.status == "RUNNING"  # crashed or interrupted
    done = len(list(csv.DictReader((out / "history.csv").open())))
    assert done >= 2

    total = done + 1  # resume with the same config, made short: the recorded one too
    (out / "config.yaml").write_text(
        (out / "config.yaml").read_text().replace("epochs: 200", f"epochs: {total}"))
    resumed = CliRunner().invoke(main, [*args(total), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((out / "mlflow.json").read_text()) == record  # the same MLflow run
    logged = client.get_run(record["run_id"])
    assert logged.info.status == "FINISHED"
    experiment = client.get_experiment_by_name("resumed")
    assert [r.info.run_id for r in client.search_runs([experiment.experiment_id])] == [
        record["run_id"]]
    history = list(csv.DictReader((out / "history.csv").open()))
    assert [int(r["epoch"]) for r in history] == list(range(1, total + 1))
    for key in ("loss", "val_accuracy"):  # every epoch's value, first run and resume
        points = client.get_metric_history(record["run_id"], key)
        assert {p.step for p in points} == set(range(1, total + 1)), key
        for row in history:
            # (an epoch cut short by the Ctrl-C and redone is logged twice; history.csv
            # holds the redone one)
            values = [p.value for p in points if p.step == int(row["epoch"])]
            assert any(float(row[key]) == pytest.approx(v) for v in values), (key, row, values)
    assert logged.data.metrics["epochs_run"] == total


def test_mlflow_missing_is_a_one_line_error(tmp_path: Path, sample_archive: Path,
                                            cache_dir: Path) -> None:
    """With MLflow not installed (its import blocked in a fresh process), tracking.mlflow
    true is refused in one line naming the extra to install; no run folder is left."""
    out = tmp_path / "run"
    code = ("import sys\nsys.modules['mlflow'] = None  # import mlflow -> ImportError\n"
            "from cnnlab.cli import main\nmain(sys.argv[1:])\n")
    args = ["train", "baseline", "--out", str(out),
            *tiny_args(sample_archive, cache_dir, epochs=1, **{"tracking.mlflow": True})]
    result = subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path, env=user_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    one_line_error(result.stderr, 'pip install "cnnlab[mlflow]"')
    assert not out.exists(), sorted(p.name for p in out.iterdir())


def test_unreachable_mlflow_server_is_one_line_before_training(
        tmp_path: Path, sample_archive: Path, cache_dir: Path) -> None:
    """A tracking server that does not answer (a closed local port) is refused in one
    line within seconds, before any run folder is made."""
    pytest.importorskip("mlflow")
    import socket

    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "baseline", "--out", str(out), *tiny_args(
        sample_archive, cache_dir, epochs=1, **{"tracking.mlflow": True, "tracking.uri": uri})])
    assert result.exit_code == 2, result.output
    one_line_error(result.stderr, f"tracking.uri {uri}: no MLflow server answers there",
                   "tracking.mlflow=false")
    assert not out.exists()


def test_tracking_server_that_fails_leaves_a_resumable_run(
        tmp_path: Path, sample_archive: Path, cache_dir: Path) -> None:
    """A server that answers but refuses MLflow's requests: one line naming --resume, and
    the run folder marked interrupted (not left running)."""
    pytest.importorskip("mlflow")
    import http.server
    import threading

    class Refuses(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.send_response(200 if self.path == "/" else 400)
            self.end_headers()
            self.wfile.write(b"not an MLflow server")

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuses)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    uri = f"http://127.0.0.1:{server.server_address[1]}"
    out = tmp_path / "run"
    try:
        result = CliRunner().invoke(main, ["train", "baseline", "--out", str(out), *tiny_args(
            sample_archive, cache_dir, epochs=1,
            **{"tracking.mlflow": True, "tracking.uri": uri})])
    finally:
        server.shutdown()
    assert result.exit_code == 2, result.output
    one_line_error(result.stderr, f"tracking.uri {uri}: MLflow failed", f"--out {out} --resume")
    assert json.loads((out / "status.json").read_text())["status"] == "interrupted"
