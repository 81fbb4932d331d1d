"""Data: CIFAR-10 cascade, readers, split, standardization, cache and the data record."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.config.schema import DataConfig
from cnnlab.data import dataset as data_mod
from cnnlab.data import readers
from cnnlab.data.dataset import (
    CIFAR10_CLASSES,
    load_dataset,
    locate_cifar10,
    split_indices,
    standardize,
)
from cnnlab.errors import DataError


def cfg(**kwargs: object) -> DataConfig:
    base = {"download": False, "train_size": 300, "val_size": 100, "test_size": 100}
    base.update(kwargs)
    return DataConfig(**base)


@pytest.fixture(scope="module")
def sample_raw(sample_archive: Path, cache_dir: Path) -> readers.RawData:
    raw, fmt, _ = data_mod.read_cached(sample_archive, cfg(cache_dir=str(cache_dir)))
    assert fmt == "image-archive"
    return raw


def test_bundled_sample_is_real_cifar10(sample_raw: readers.RawData) -> None:
    assert sample_raw.class_names == CIFAR10_CLASSES
    assert sample_raw.x_train.shape == (10_000, 32, 32, 3) and sample_raw.x_train.dtype == np.uint8
    assert sample_raw.x_test.shape == (2_000, 32, 32, 3)
    assert np.bincount(sample_raw.y_train).tolist() == [1000] * 10
    assert np.bincount(sample_raw.y_test).tolist() == [200] * 10
    # real photos, not noise or constants: pixel statistics of natural images
    assert 90 < sample_raw.x_train.mean() < 150 and sample_raw.x_train.std() > 40


def test_standardize_per_image_float32_and_constant_image() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 4, 4, 3), dtype=np.uint8)
    images[2] = 77  # constant image
    out = standardize(images, chunk=2)
    assert out.dtype == np.float32
    img = images[0].astype(np.float64)
    np.testing.assert_allclose(out[0], (img - img.mean()) / img.std(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[[0, 1, 3, 4]].mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(out[[0, 1, 3, 4]].std(axis=(1, 2, 3)), 1, atol=1e-4)
    assert np.all(out[2] == 0) and np.isfinite(out).all()


def test_split_sizes_stratified_disjoint_and_seeded(sample_raw: readers.RawData) -> None:
    c = cfg(train_size=1000, val_size=500, test_size=300)
    train, val, test = split_indices(sample_raw.y_train, sample_raw.y_test, c, seed=3)
    assert (len(train), len(val), len(test)) == (1000, 500, 300)
    assert not set(train) & set(val)  # validation drawn from training split, disjoint
    assert np.bincount(sample_raw.y_train[train]).tolist() == [100] * 10
    assert np.bincount(sample_raw.y_train[val]).tolist() == [50] * 10
    assert np.bincount(sample_raw.y_test[test]).tolist() == [30] * 10
    again = split_indices(sample_raw.y_train, sample_raw.y_test, c, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again, strict=True))
    other = split_indices(sample_raw.y_train, sample_raw.y_test, c, seed=4)
    assert not np.array_equal(train, other[0])


def test_no_test_leakage(sample_archive: Path, cache_dir: Path) -> None:
    ds = load_dataset(cfg(path=str(sample_archive), cache_dir=str(cache_dir)), seed=0)
    flat = lambda x: {row.tobytes() for row in x.reshape(len(x), -1)}  # noqa: E731
    assert not flat(ds.x_test) & (flat(ds.x_train) | flat(ds.x_val))
    assert ds.x_train.dtype == np.float32 and ds.input_shape == (32, 32, 3)
    rec = ds.record
    assert rec["sizes"] == {"train": 300, "val": 100, "test": 100}
    assert rec["fingerprint"].startswith("sha256:") and rec["origin"] == "data.path"
    assert rec["class_names"] == list(CIFAR10_CLASSES)


def test_too_large_request_is_an_error_not_a_shrink(sample_archive: Path, cache_dir: Path) -> None:
    too_many = r"data.train_size=9500 \+ data.val_size=1000 exceeds the 10000"
    with pytest.raises(DataError, match=too_many):
        load_dataset(cfg(path=str(sample_archive), cache_dir=str(cache_dir),
                         train_size=9500, val_size=1000), 0)
    with pytest.raises(DataError, match="data.test_size=5000 exceeds the 2000"):
        load_dataset(cfg(path=str(sample_archive), cache_dir=str(cache_dir), test_size=5000), 0)


def test_cascade_falls_back_to_bundled_sample_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_archive: Path, cache_dir: Path
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / data_mod.SAMPLE_NAME).symlink_to(sample_archive)
    monkeypatch.setenv("CNNLAB_DATA_DIR", str(data_dir))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    lines: list[str] = []
    ds = load_dataset(cfg(cache_dir=str(cache_dir)), 0, log=lines.append)
    assert ds.record["is_sample"] is True and ds.record["origin"] == "bundled sample"
    assert len(lines) == 1 and "using the bundled sample" in lines[0]


def test_cascade_prefers_full_copy_in_data_dir_then_keras_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_archive: Path
) -> None:
    data_dir, keras_home = tmp_path / "data", tmp_path / "keras"
    (keras_home / "datasets").mkdir(parents=True)
    data_dir.mkdir()
    (data_dir / data_mod.SAMPLE_NAME).symlink_to(sample_archive)
    monkeypatch.setenv("CNNLAB_DATA_DIR", str(data_dir))
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    cached = keras_home / "datasets" / "cifar-10-batches-py.tar.gz"
    cached.write_bytes(b"x")
    assert locate_cifar10(cfg()).origin == "keras cache"
    (data_dir / "cifar10-jpg.tar.gz").write_bytes(b"x")
    found = locate_cifar10(cfg())
    assert found.origin == "project data/" and found.path.name == "cifar10-jpg.tar.gz"
    explicit = locate_cifar10(cfg(path=str(sample_archive)))
    assert explicit.origin == "data.path" and not explicit.is_sample


def test_nothing_found_names_every_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNNLAB_DATA_DIR", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(DataError) as info:
        locate_cifar10(cfg())
    message = str(info.value)
    assert "not found" in message and str(tmp_path / "empty") in message
    assert str(tmp_path / "keras") in message and "set data.path" in message
    with pytest.raises(DataError, match="does not exist"):
        locate_cifar10(cfg(path=str(tmp_path / "nope.tar.gz")))


def _fake_cifar_python(sample_raw: readers.RawData, path: Path, per_batch: int = 50) -> None:
    """A cifar-10-python.tar.gz in the original layout (batches of dicts), from real images."""
    def batch(x: np.ndarray, y: np.ndarray) -> bytes:
        flat = x.transpose(0, 3, 1, 2).reshape(len(x), -1)
        return pickle.dumps({b"data": flat, b"labels": [int(v) for v in y]}, protocol=4)

    members = {f"cifar-10-batches-py/data_batch_{i + 1}":
               batch(sample_raw.x_train[i * per_batch:(i + 1) * per_batch],
                     sample_raw.y_train[i * per_batch:(i + 1) * per_batch]) for i in range(5)}
    members["cifar-10-batches-py/test_batch"] = batch(sample_raw.x_test[:per_batch],
                                                      sample_raw.y_test[:per_batch])
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps(
        {b"label_names": [n.encode() for n in CIFAR10_CLASSES]}, protocol=4)
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def test_reads_original_pickled_format(sample_raw: readers.RawData, tmp_path: Path) -> None:
    archive = tmp_path / "cifar-10-python.tar.gz"
    _fake_cifar_python(sample_raw, archive)
    raw = readers.read_cifar_python(archive)
    assert raw.x_train.shape == (250, 32, 32, 3) and raw.class_names == CIFAR10_CLASSES
    np.testing.assert_array_equal(raw.x_train[:50], sample_raw.x_train[:50])
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path, filter="data")
    folder = readers.read_cifar_python(tmp_path / "cifar-10-batches-py")
    np.testing.assert_array_equal(folder.x_test, raw.x_test)


class _Marker:
    def __reduce__(self):  # would create a file when unpickled
        return (Path.touch, (Path(MARKER),))


MARKER = ""


def test_pickle_that_runs_code_is_refused(tmp_path: Path) -> None:
    global MARKER
    MARKER = str(tmp_path / "pwned")
    payload = pickle.dumps({b"data": _Marker(), b"labels": []}, protocol=4)
    with pytest.raises(DataError, match="refused or unreadable CIFAR batch"):
        readers.load_cifar_pickle(payload, "evil")
    assert not Path(MARKER).exists()


def test_wrong_batch_shape_is_an_error(tmp_path: Path) -> None:
    payload = pickle.dumps({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}, protocol=4)
    batch = readers.load_cifar_pickle(payload, "b")
    with pytest.raises(DataError, match=r"shape \(4, 100\).*expected \(N, 3072\)"):
        readers._cifar_batch_arrays(batch, "b")


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink"])
def test_unsafe_archive_members_are_refused(tmp_path: Path, kind: str) -> None:
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo({"absolute": "/etc/evil.jpg", "dotdot": "train/../../x.jpg",
                                "symlink": "train/cat/link.jpg"}[kind])
        if kind == "symlink":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(DataError, match="refusing archive member"):
        readers.read_image_tree(archive)


def test_truncated_archive_is_an_error(tmp_path: Path, sample_archive: Path) -> None:
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(sample_archive.read_bytes()[:200_000])
    with pytest.raises(DataError, match="truncated or corrupt archive"):
        readers.read_image_tree(broken)


def make_tree(root: Path, sample_raw: readers.RawData, classes: int = 3, per_class: int = 6,
              mode: str = "L") -> Path:
    for split, x, y in (("train", sample_raw.x_train, sample_raw.y_train),
                        ("test", sample_raw.x_test, sample_raw.y_test)):
        for c in range(classes):
            folder = root / split / CIFAR10_CLASSES[c]
            folder.mkdir(parents=True)
            for i, idx in enumerate(np.flatnonzero(y == c)[:per_class]):
                Image.fromarray(x[idx]).convert(mode).save(folder / f"{i}.png")
    return root


def test_imagefolder_grayscale_shape_and_classes(
    tmp_path: Path, sample_raw: readers.RawData, cache_dir: Path
) -> None:
    root = make_tree(tmp_path / "gray", sample_raw)
    ds = load_dataset(DataConfig(source="imagefolder", path=str(root), train_size=12, val_size=6,
                                 test_size=None, cache_dir=str(cache_dir)), 0)
    assert ds.input_shape == (32, 32, 1) and ds.class_names == ("airplane", "automobile", "bird")
    assert len(ds.y_test) == 18 and ds.record["format"] == "image-folder"
    assert data_mod.input_spec(DataConfig(source="imagefolder", path=str(root))) == ((32, 32, 1), 3)


def test_imagefolder_errors(tmp_path: Path, sample_raw: readers.RawData) -> None:
    root = make_tree(tmp_path / "t", sample_raw, mode="RGB")
    (root / "test" / "bird").rename(root / "test" / "birds")
    with pytest.raises(DataError, match="train and test classes differ \\(bird, birds"):
        readers.read_image_tree(root)
    (root / "test" / "birds").rename(root / "test" / "bird")
    (root / "train" / "bird" / "0.png").write_bytes(b"")
    with pytest.raises(DataError, match="bird/0.png: corrupt or unreadable image"):
        readers.read_image_tree(root)
    (root / "train" / "bird" / "0.png").unlink()
    Image.new("RGB", (40, 40)).save(root / "train" / "bird" / "big.png")
    with pytest.raises(DataError, match="set data.image_size"):
        readers.read_image_tree(root)
    resized = readers.read_image_tree(root, image_size=(16, 16))
    assert resized.x_train.shape[1:] == (16, 16, 3)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no training images found"):
        readers.read_image_tree(empty)


def test_cache_is_reused_and_invalidated(tmp_path: Path, sample_raw: readers.RawData,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_tree(tmp_path / "t", sample_raw, classes=2, per_class=3, mode="RGB")
    c = DataConfig(source="imagefolder", path=str(root), cache_dir=str(tmp_path / "cache"))
    calls: list[int] = []
    original = readers.read_image_tree
    monkeypatch.setattr(readers, "read_image_tree",
                        lambda *a, **k: calls.append(1) or original(*a, **k))
    first, _, fp1 = data_mod.read_cached(root, c)
    second, _, fp2 = data_mod.read_cached(root, c)
    assert len(calls) == 1 and fp1 == fp2
    np.testing.assert_array_equal(first.x_train, second.x_train)
    Image.fromarray(sample_raw.x_train[0]).save(root / "train" / "airplane" / "new.png")
    third, _, fp3 = data_mod.read_cached(root, c)
    assert len(calls) == 2 and fp3 != fp1 and len(third.x_train) == len(first.x_train) + 1


@pytest.mark.slow  # decodes 60,000 JPEGs (45 s); the sample of the same layout: every run
def test_full_shared_copy_reads(full_cifar: Path, cache_dir: Path) -> None:
    ds = load_dataset(cfg(path=str(full_cifar), cache_dir=str(cache_dir), train_size=None,
                          val_size=5000, test_size=None), 0)
    assert ds.record["available"] == {"train": 50_000, "test": 10_000}
    assert len(ds.y_train) == 45_000 and len(ds.y_val) == 5_000 and len(ds.y_test) == 10_000
