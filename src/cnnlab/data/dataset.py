"""Datasets: where CIFAR-10 comes from, image folders, the split, standardization, cache.

``load_dataset(data_cfg, seed)`` returns a :class:`Dataset` of numpy arrays
with class names and a ``record`` saying exactly which data was used.

CIFAR-10 is looked for, in this order: ``data.path``; the project's ``data/``
folder (full copies); the Keras cache; a download through Keras; and last the
small real sample shipped in ``data/cifar10-sample.tar.gz`` -- announced in one
line and recorded, never silently.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.config.schema import DataConfig
from cnnlab.data import readers
from cnnlab.data.readers import RawData
from cnnlab.errors import DataError

CACHE_VERSION = 2  # 2: 16-bit images scaled, not clipped; EXIF orientation applied
SAMPLE_NAME = "cifar10-sample.tar.gz"
NOTICE_PREFIX = "cifar10: "  # where the data came from: said once per sweep, not per run
CIFAR10_SHAPE = (32, 32, 3)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
# Full copies of CIFAR-10 recognised inside a data folder, in order of preference.
FULL_COPY_NAMES = ("cifar-10-python.tar.gz", "cifar-10-batches-py",
                   "cifar10-jpg.tar.gz", "cifar10-jpg")
KERAS_CACHE_NAMES = ("cifar-10-batches-py-target_archive", "cifar-10-batches-py.tar.gz",
                     "cifar-10-batches-py-target/cifar-10-batches-py", "cifar-10-batches-py")

Log = Callable[[str], None]


@dataclass(frozen=True)
class Dataset:
    """Standardized float32 splits, integer labels, class names and the data record."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class Located:
    path: Path
    origin: str  # "data.path", "project data/", "keras cache", "keras download", "bundled sample"
    is_sample: bool = False


# --- standardization and split -------------------------------------------------------


def standardize(images: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Per-image ``(img - img.mean()) / img.std()`` in float32; a constant image becomes 0."""
    out = np.empty(images.shape, dtype=np.float32)
    axes = tuple(range(1, images.ndim))
    for start in range(0, len(images), chunk):
        block = images[start:start + chunk].astype(np.float32)
        mean = block.mean(axis=axes, keepdims=True)
        std = block.std(axis=axes, keepdims=True)
        out[start:start + chunk] = (block - mean) / np.where(std > 0, std, 1.0)
    return out


def _stratified_take(labels: np.ndarray, size: int, seed: int, what: str) -> np.ndarray:
    """Indices of a stratified, seeded sample of ``size`` items (all, shuffled, if size == n)."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    if size >= len(labels):
        return np.random.default_rng(seed).permutation(indices)
    try:
        taken, _ = train_test_split(indices, train_size=size, stratify=labels, random_state=seed)
    except ValueError as exc:
        raise DataError(f"{what}: cannot draw a stratified sample of {size} ({exc}); "
                        "use a size of at least one image per class") from None
    return np.asarray(taken)


def split_indices(
    y_train: np.ndarray, y_test: np.ndarray, cfg: DataConfig, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train / validation indices from the training split, test indices from the test split.

    Validation is drawn first (stratified, seeded), then the training set from the
    rest; the test set is the dataset's own test split, optionally sub-sampled.
    """
    available = len(y_train)
    train_size = cfg.train_size if cfg.train_size is not None else available - cfg.val_size
    if train_size + cfg.val_size > available or train_size < 1:
        raise DataError(
            f"data.train_size={cfg.train_size} + data.val_size={cfg.val_size} exceeds the "
            f"{available} training images available; lower them (or use data.train_size: null "
            "for all the rest)"
        )
    test_size = cfg.test_size if cfg.test_size is not None else len(y_test)
    if test_size > len(y_test):
        raise DataError(
            f"data.test_size={cfg.test_size} exceeds the {len(y_test)} test images available; "
            "lower it or use data.test_size: null for all"
        )
    val_idx = _stratified_take(y_train, cfg.val_size, seed, "data.val_size")
    rest = np.setdiff1d(np.arange(available), val_idx)
    train_idx = rest[_stratified_take(y_train[rest], train_size, seed + 1, "data.train_size")]
    test_idx = np.sort(_stratified_take(y_test, test_size, seed + 2, "data.test_size"))
    return train_idx, val_idx, test_idx


# --- locating CIFAR-10 --------------------------------------------------------------


def project_data_dirs() -> list[Path]:
    """``$CNNLAB_DATA_DIR``, else ``./data`` and the source checkout's ``data/``."""
    if os.environ.get("CNNLAB_DATA_DIR"):
        return [Path(os.environ["CNNLAB_DATA_DIR"])]
    candidates = [Path.cwd() / "data", Path(__file__).resolve().parents[3] / "data"]
    unique: list[Path] = []
    for path in candidates:
        if path.is_dir() and path.resolve() not in [u.resolve() for u in unique]:
            unique.append(path)
    return unique


def keras_cache_dir() -> Path:
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    if not os.access(home if os.path.exists(home) else os.path.dirname(home), os.W_OK):
        home = os.path.join("/tmp", ".keras")
    return Path(home) / "datasets"


def _download_through_keras(log: Log) -> tuple[Path | None, str]:
    """Download CIFAR-10 into the Keras cache; (cache path or None, failure reason)."""
    import contextlib
    import io

    from cnnlab.backend.tf import keras

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # Keras prints its own progress
            keras.datasets.cifar10.load_data()
    except Exception as exc:  # Keras raises a bare Exception when offline
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None, ("no network" if "Name or service" in reason else reason[:100])
    found = next((p for n in KERAS_CACHE_NAMES if (p := keras_cache_dir() / n).exists()), None)
    if found is not None:
        log(f"{NOTICE_PREFIX}downloaded through Keras into {found}")
    return found, "downloaded archive not found in the Keras cache"


def locate_cifar10(cfg: DataConfig, log: Log = print) -> Located:
    """Find CIFAR-10 following the documented cascade; DataError naming every place looked."""
    if cfg.path:
        path = Path(cfg.path).expanduser()
        if not path.exists():
            raise DataError(f"data.path: {path} does not exist; give the path of "
                            "cifar-10-python.tar.gz, cifar-10-batches-py/ or the JPEG copy")
        return Located(path, "data.path")
    looked: list[str] = []
    for folder in project_data_dirs():
        for name in FULL_COPY_NAMES:
            if (folder / name).exists():
                return Located(folder / name, "project data/")
        looked.append(str(folder))
    cache = keras_cache_dir()
    for name in KERAS_CACHE_NAMES:
        if (cache / name).exists():
            return Located(cache / name, "keras cache")
    looked.append(str(cache))
    why = "data.download is false"
    if cfg.download:
        downloaded, why = _download_through_keras(log)
        if downloaded is not None:
            return Located(downloaded, "keras download")
        looked.append(f"Keras download ({why})")
    for folder in project_data_dirs():
        if (folder / SAMPLE_NAME).exists():
            sample = folder / SAMPLE_NAME
            log(f"{NOTICE_PREFIX}full dataset not found locally and not downloaded ({why}); "
                f"using the bundled sample {sample} (1,000 train + 200 test images per class)")
            return Located(sample, "bundled sample", is_sample=True)
        looked.append(str(folder / SAMPLE_NAME))
    raise DataError(
        "cifar10: not found (looked in " + ", ".join(looked) + "); set data.path to "
        "cifar-10-python.tar.gz or a JPEG copy, e.g. --set data.path=cifar10-jpg.tar.gz"
    )


# --- reading with a cache ---------------------------------------------------------


def _cache_root(cfg: DataConfig) -> Path:
    root = cfg.cache_dir or os.environ.get("CNNLAB_CACHE_DIR")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "cnnlab"


def _read(path: Path, source: str, cfg: DataConfig) -> tuple[RawData, str]:
    if source == "cifar10" and readers.looks_like_cifar_python(path):
        inner = path / "cifar-10-batches-py"
        return readers.read_cifar_python(inner if inner.is_dir() else path), "cifar-python"
    fmt = "image-archive" if readers.is_archive(path) else "image-folder"
    size = tuple(cfg.image_size) if cfg.image_size else None
    return readers.read_image_tree(path, size, cfg.channels, cfg.max_pixels), fmt


def read_cached(path: Path, cfg: DataConfig, log: Log = print) -> tuple[RawData, str, str]:
    """Decoded data, its format and fingerprint; decoding is cached by content fingerprint.

    The cache is a folder of ``.npy`` arrays read memory-mapped: processes training at
    the same time share one copy in the page cache, and a run reads only the images its
    split draws."""
    fp = _fingerprint(path)
    options = f"{cfg.source}-{cfg.image_size}-{cfg.channels}-v{CACHE_VERSION}"
    key = hashlib.sha256(f"{fp}|{options}".encode()).hexdigest()[:24]
    cache = _cache_root(cfg) / f"{key}.arrays"
    if cfg.cache and cache.is_dir():
        try:
            return (*_read_arrays(cache), fp)
        except (OSError, ValueError, KeyError):
            log(f"data cache {cache} unreadable; decoding again")
    raw, fmt = _read(path, cfg.source, cfg)
    if cfg.cache:
        _write_arrays(cache, raw, fmt)
    return raw, fmt, fp


_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def _read_arrays(folder: Path) -> tuple[RawData, str]:
    """The cached arrays and their format."""
    # plain ndarray views of the mapped files: they behave (and pickle) as arrays read
    arrays = [np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False).view(
        np.ndarray) for name in _ARRAYS]
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    return RawData(*arrays, tuple(meta["class_names"])), str(meta["format"])


def _write_arrays(folder: Path, raw: RawData, fmt: str) -> None:
    """Write into a temporary folder, then rename it: readers see all of it or none; when
    another process won the race, its copy is kept."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name in _ARRAYS:
        np.save(tmp / f"{name}.npy", getattr(raw, name), allow_pickle=False)
    (tmp / "meta.json").write_text(json.dumps(
        {"class_names": list(raw.class_names), "format": fmt}), encoding="utf-8")
    if folder.is_dir():  # a damaged copy (read failed above) or another process's
        shutil.rmtree(folder, ignore_errors=True)
    try:
        os.rename(tmp, folder)
    except OSError:  # another process renamed its copy in between
        shutil.rmtree(tmp, ignore_errors=True)


_FINGERPRINTS: dict[tuple[str, int, int, int], str] = {}


def _fingerprint(path: Path) -> str:
    """readers.fingerprint, remembered for a file whose size and modification time are
    unchanged (a process training many runs hashes its data file once)."""
    if not path.is_file():
        return readers.fingerprint(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if key not in _FINGERPRINTS:
        _FINGERPRINTS[key] = readers.fingerprint(path)
    return _FINGERPRINTS[key]


def locate(cfg: DataConfig, log: Log = print) -> Located:
    """Where the data of this config comes from (no decoding)."""
    if cfg.source == "cifar10":
        return locate_cifar10(cfg, log)
    if not cfg.path:
        raise DataError("data.path: required for data.source imagefolder; set it to a folder "
                        "(or tar archive) holding train/<class>/ and test/<class>/")
    path = Path(cfg.path).expanduser()
    if not path.exists():
        raise DataError(f"data.path: {path} does not exist; give a folder or archive with "
                        "train/<class>/ and test/<class>/ images")
    return Located(path, "data.path")


def input_spec(cfg: DataConfig) -> tuple[tuple[int, ...], int]:
    """(input shape, class count) without loading the dataset: fixed for CIFAR-10,
    one decoded image for an image folder."""
    if cfg.source == "cifar10":
        if cfg.image_size or cfg.channels:
            raise DataError("data.image_size and data.channels apply to imagefolder only; "
                            "remove them for cifar10")
        return CIFAR10_SHAPE, len(CIFAR10_CLASSES)
    located = locate(cfg)
    size = tuple(cfg.image_size) if cfg.image_size else None
    return readers.peek_image_tree(located.path, cfg.channels, size, cfg.max_pixels)


def load_dataset(cfg: DataConfig, seed: int = 0, log: Log = print) -> Dataset:
    """Locate, decode (cached), split and standardize the data of a config; the split is
    drawn with ``data.split_seed``, else ``seed``."""
    seed = cfg.split_seed if cfg.split_seed is not None else seed
    if cfg.source == "cifar10":
        input_spec(cfg)  # rejects imagefolder-only options before any work
    located = locate(cfg, log)
    raw, fmt, fp = read_cached(located.path, cfg, log)
    if cfg.source == "cifar10" and raw.x_train.shape[1:] != CIFAR10_SHAPE:
        raise DataError(f"{located.path}: images are {raw.x_train.shape[1:]}, not 32x32x3 "
                        "CIFAR-10; use data.source imagefolder for other images")
    if len(raw.class_names) < 2:
        raise DataError(f"{located.path}: holds one class only ({', '.join(raw.class_names)}); "
                        "a classifier needs at least two class folders")
    sample_note = " (bundled sample)" if located.is_sample else ""
    try:
        train_idx, val_idx, test_idx = split_indices(raw.y_train, raw.y_test, cfg, seed)
    except DataError as exc:
        raise DataError(f"{exc}{sample_note}") from None
    record = {
        "source": cfg.source,
        "origin": located.origin,
        "is_sample": located.is_sample,
        "location": str(located.path.resolve()),
        "format": fmt,
        "fingerprint": fp,
        "available": {"train": int(len(raw.y_train)), "test": int(len(raw.y_test))},
        "sizes": {"train": int(len(train_idx)), "val": int(len(val_idx)),
                  "test": int(len(test_idx))},
        "class_names": list(raw.class_names),
        "input_shape": list(raw.x_train.shape[1:]),
        "split_seed": seed,
        "standardization": "per image: (img - img.mean()) / img.std(), float32",
    }
    return Dataset(
        x_train=standardize(raw.x_train[train_idx]), y_train=raw.y_train[train_idx],
        x_val=standardize(raw.x_train[val_idx]), y_val=raw.y_train[val_idx],
        x_test=standardize(raw.x_test[test_idx]), y_test=raw.y_test[test_idx],
        class_names=raw.class_names, record=record,
    )


def reload_recorded(cfg: DataConfig, seed: int, record: dict[str, Any],
                    log: Log = print) -> Dataset:
    """The same data a run used: read from the location its record names, and refused
    (DataError) if the fingerprint no longer matches."""
    data = load_dataset(_at_recorded_location(cfg, record), seed, log)
    _check_fingerprint(data.record["fingerprint"], data.record["location"], record)
    return data


def reload_test_pool(cfg: DataConfig, record: dict[str, Any], most_bytes: int,
                     log: Log = print) -> tuple[np.ndarray, np.ndarray] | None:
    """Every test image a run's splits draw from (standardized) and its label, from the
    data its record names (DataError if the fingerprint no longer matches); None when
    its standardized images would take more than ``most_bytes``."""
    cfg = _at_recorded_location(cfg, record)
    located = locate(cfg, log)
    raw, _, fp = read_cached(located.path, cfg, log)
    _check_fingerprint(fp, str(located.path.resolve()), record)
    if raw.x_test.size * np.dtype(np.float32).itemsize > most_bytes:
        return None
    return standardize(np.asarray(raw.x_test)), np.asarray(raw.y_test)


def _at_recorded_location(cfg: DataConfig, record: dict[str, Any]) -> DataConfig:
    import dataclasses

    if record.get("location") and Path(record["location"]).exists():
        return dataclasses.replace(cfg, path=record["location"])
    return cfg


def _check_fingerprint(found: str, location: str, record: dict[str, Any]) -> None:
    if record.get("fingerprint") and found != record["fingerprint"]:
        raise DataError(f"the data found now ({location}) differs from the data "
                        f"the run used; restore the original at {record.get('location')}")
