"""Where data comes from, with real files: the four CIFAR-10 layouts of the project's data/
folder ($CNNLAB_DATA_DIR), the Keras cache, and an image folder read with data.channels,
data.image_size and data.cache: false from a config file -- each trained through the CLI."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from helpers import sample_members, write_tar

from cnnlab.cli import main
from cnnlab.data import readers
from cnnlab.data.dataset import CIFAR10_CLASSES
from cnnlab.runs import storage

TRAIN_PER_CLASS, TEST_PER_CLASS = 20, 10  # 200 training and 100 test images, real ones
LEARNING = ("loss", "accuracy", "val_loss", "val_accuracy")


def pickled_batches(raw: readers.RawData) -> dict[str, bytes]:
    """CIFAR-10's original python format: 5 training batches, a test batch and the meta."""
    def batch(x: np.ndarray, y: np.ndarray) -> bytes:
        flat = x.transpose(0, 3, 1, 2).reshape(len(x), -1)  # rows of R, then G, then B
        return pickle.dumps({b"data": flat, b"labels": [int(v) for v in y]}, protocol=4)

    per = len(raw.y_train) // 5
    files = {f"data_batch_{i + 1}": batch(raw.x_train[i * per:(i + 1) * per],
                                          raw.y_train[i * per:(i + 1) * per]) for i in range(5)}
    files["test_batch"] = batch(raw.x_test, raw.y_test)
    files["batches.meta"] = pickle.dumps(
        {b"label_names": [n.encode() for n in CIFAR10_CLASSES]}, protocol=4)
    return files


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory, sample_archive: Path) -> dict[str, Path]:
    """The same 300 real sample images in each CIFAR-10 layout the cascade recognises, each
    alone in a data folder: {layout name: its data folder}."""
    root = tmp_path_factory.mktemp("layouts")
    members = sample_members(sample_archive, TRAIN_PER_CLASS, TEST_PER_CLASS)
    folder = root / "cifar10-jpg" / "data"
    for name, payload in members:
        (folder / "cifar10-jpg" / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / "cifar10-jpg" / name).write_bytes(payload)
    write_tar(root / "cifar10-jpg.tar.gz" / "data" / "cifar10-jpg.tar.gz", members)
    # the pickled layouts hold exactly the decoded pixels of those JPEGs, in the same order
    raw = readers.read_image_tree(folder / "cifar10-jpg")
    batches = pickled_batches(raw)
    extracted = root / "cifar-10-batches-py" / "data" / "cifar-10-batches-py"
    extracted.mkdir(parents=True)
    for name, payload in batches.items():
        (extracted / name).write_bytes(payload)
    write_tar(root / "cifar-10-python.tar.gz" / "data" / "cifar-10-python.tar.gz",
              [(f"cifar-10-batches-py/{name}", payload) for name, payload in batches.items()])
    return {name: root / name / "data" for name in
            ("cifar-10-python.tar.gz", "cifar-10-batches-py", "cifar10-jpg.tar.gz", "cifar10-jpg")}


def train_without_data_path(out: Path, cache_dir: Path, data_dir: Path,
                            keras_home: Path) -> dict:
    """`cnnlab train` with no data.path, as a user with data in the project's data/ folder."""
    result = CliRunner(env={"CNNLAB_DATA_DIR": str(data_dir), "KERAS_HOME": str(keras_home)}
                       ).invoke(main, [
        "train", "baseline", "--out", str(out), "--set", f"data.cache_dir={cache_dir}",
        "--set", "data.download=false", "--set", "data.train_size=100",
        "--set", "data.val_size=50", "--set", "data.test_size=50", "--set", "train.epochs=1",
        "--set", "train.verbose=0"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "bundled sample" not in result.output
    return json.loads((out / "metrics.json").read_text())


def learning(run_dir: Path) -> list[tuple[float, ...]]:
    return [tuple(row[k] for k in LEARNING) for row in storage.read_csv(run_dir / "history.csv")]


def test_every_data_folder_layout_trains_on_the_same_images(
        layouts: dict[str, Path], tmp_path: Path, cache_dir: Path) -> None:
    formats = {"cifar-10-python.tar.gz": "cifar-python", "cifar-10-batches-py": "cifar-python",
               "cifar10-jpg.tar.gz": "image-archive", "cifar10-jpg": "image-folder"}
    empty_keras = tmp_path / "keras"
    histories = {}
    for layout, data_dir in layouts.items():
        out = tmp_path / layout
        record = train_without_data_path(out, cache_dir, data_dir, empty_keras)["data"]
        assert record["origin"] == "project data/", layout
        assert record["location"] == str((data_dir / layout).resolve())
        assert record["format"] == formats[layout] and record["is_sample"] is False
        assert record["available"] == {"train": 200, "test": 100}
        assert record["class_names"] == list(CIFAR10_CLASSES)
        histories[layout] = learning(out)
    # the same pixels in four layouts: the same split and the same training, bit for bit
    first = histories["cifar10-jpg"]
    assert all(history == first for history in histories.values()), histories


def test_keras_cache_is_used_when_the_data_folder_has_none(
        layouts: dict[str, Path], tmp_path: Path, cache_dir: Path) -> None:
    keras_home = tmp_path / "keras"
    cached = keras_home / "datasets" / "cifar-10-batches-py"
    cached.mkdir(parents=True)
    for batch in (layouts["cifar-10-batches-py"] / "cifar-10-batches-py").iterdir():
        (cached / batch.name).write_bytes(batch.read_bytes())
    empty = tmp_path / "data"
    empty.mkdir()
    metrics = train_without_data_path(tmp_path / "run", cache_dir, empty, keras_home)
    record = metrics["data"]
    assert record["origin"] == "keras cache" and record["location"] == str(cached.resolve())
    assert record["format"] == "cifar-python" and record["is_sample"] is False
    # with data.download false and nothing in the Keras cache either: one line naming both
    result = CliRunner(env={"CNNLAB_DATA_DIR": str(empty), "KERAS_HOME": str(tmp_path / "no")}
                       ).invoke(main, ["train", "baseline", "--set", "data.download=false",
                                       "--out", str(tmp_path / "nothing")])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert "cifar10: not found" in line and str(empty) in line and str(tmp_path / "no") in line
    assert not (tmp_path / "nothing").exists()


def test_image_folder_channels_size_and_no_cache_from_a_config_file(
        tmp_path: Path, sample_archive: Path) -> None:
    tree = tmp_path / "photos"
    for name, payload in sample_members(sample_archive, 30, 12):
        split, cls, leaf = name.split("/")
        if cls in ("cat", "ship", "truck"):  # three classes of real colour JPEGs, 32x32
            (tree / split / cls).mkdir(parents=True, exist_ok=True)
            (tree / split / cls / leaf).write_bytes(payload)
    unused_cache = tmp_path / "cache"
    config = tmp_path / "gray.yaml"
    config.write_text(yaml.safe_dump({
        "name": "gray-small",
        "data": {"source": "imagefolder", "path": str(tree), "image_size": [24, 20],
                 "channels": 1, "cache": False, "cache_dir": str(unused_cache),
                 "train_size": 60, "val_size": 30, "test_size": 36},
        "model": {"filters": [4, 8], "dense": [16]},
        "train": {"epochs": 1, "verbose": 0},
    }))
    summary = CliRunner().invoke(main, ["summary", str(config)])
    assert summary.exit_code == 0, summary.output
    assert "gray-small: input 24x20x1, 3 classes" in summary.output
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", str(config), "--out", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["input_shape"] == [24, 20, 1]  # resized, one channel
    assert metrics["data"]["class_names"] == ["cat", "ship", "truck"]
    assert metrics["data"]["format"] == "image-folder"
    assert np.array(metrics["confusion_matrix"]).shape == (3, 3)
    import keras  # after cnnlab imported TensorFlow its own way (cnnlab.backend.tf)

    model = keras.saving.load_model(out / "model.keras")
    assert tuple(model.input_shape) == (None, 24, 20, 1)
    recorded = yaml.safe_load((out / "config.yaml").read_text())["data"]
    assert (recorded["channels"], recorded["image_size"], recorded["cache"]) == (1, [24, 20],
                                                                                  False)
    # evaluate decodes and resizes the folder again, the same way: the same accuracy
    evaluated = CliRunner().invoke(main, ["evaluate", str(out)])
    assert evaluated.exit_code == 0, evaluated.output
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["confusion_matrix"] == metrics["confusion_matrix"]
    assert not unused_cache.exists()  # data.cache false: nothing cached, ever
