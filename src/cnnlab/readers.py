"""Reading image datasets from disk without executing or extracting anything unsafe.

Two formats: CIFAR-10's pickled batches (``cifar-10-python.tar.gz`` or its
extracted ``cifar-10-batches-py/`` folder) and image trees
(``train/<class>/*``, ``test/<class>/*`` of PNG/JPEG files, as a folder or a
tar archive). Archives are read member by member in memory; members that
would land outside the archive's root (absolute paths, ``..``, links, device
files) are refused, so nothing is ever written outside a target folder.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from cnnlab.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")
CIFAR_TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


@dataclass(frozen=True)
class RawData:
    """Decoded images (uint8, NHWC) with integer labels, before any split."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def fingerprint(path: Path) -> str:
    """sha256 of a file, or of every file's relative path and bytes under a folder."""
    digest = hashlib.sha256()
    if path.is_file():
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    else:
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
            digest.update(file.read_bytes())
    return "sha256:" + digest.hexdigest()


# --- archives --------------------------------------------------------------------


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts:
        raise DataError(
            f"{archive}: refusing archive member '{member.name}' (path leaves the archive root); "
            "use a trusted copy of the dataset"
        )
    if member.issym() or member.islnk() or member.isdev() or member.isfifo():
        raise DataError(
            f"{archive}: refusing archive member '{member.name}' (link or device file); "
            "use a trusted copy of the dataset"
        )


def iter_archive_files(archive: Path) -> Iterator[tuple[str, bytes]]:
    """Yield (member name, bytes) for every regular file in a tar archive, refusing unsafe ones."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                _check_member(member, archive)
                if member.isfile():
                    fh = tar.extractfile(member)
                    yield member.name, fh.read() if fh else b""
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        reason = str(exc).strip() or type(exc).__name__
        if "\n" in reason:  # tarfile lists every compression it tried, one per line
            reason = "not a tar archive, plain or gz/bz2/xz-compressed"
        raise DataError(
            f"{archive}: truncated or corrupt archive ({reason[:200]}); download or copy it again"
        ) from None


def iter_folder_files(folder: Path) -> Iterator[tuple[str, bytes]]:
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        yield file.relative_to(folder).as_posix(), file.read_bytes()


def iter_files(path: Path) -> Iterator[tuple[str, bytes]]:
    return iter_archive_files(path) if is_archive(path) else iter_folder_files(path)


# --- CIFAR-10 pickled batches -------------------------------------------------------


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and nothing else, as Keras' own CIFAR loader does."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle API
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed")


def load_cifar_pickle(data: bytes, origin: str) -> dict:
    """Unpickle one CIFAR batch allowing only numpy array reconstruction."""
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:  # any failure means the file is not a clean CIFAR batch
        raise DataError(
            f"{origin}: refused or unreadable CIFAR batch ({exc}); "
            "use the original cifar-10-python.tar.gz"
        ) from None
    if not isinstance(obj, dict):
        raise DataError(f"{origin}: not a CIFAR batch (a {type(obj).__name__}); "
                        "use the original cifar-10-python.tar.gz")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _cifar_batch_arrays(batch: dict, origin: str) -> tuple[np.ndarray, np.ndarray]:
    data = np.asarray(batch.get("data"))
    labels = np.asarray(batch.get("labels", batch.get("fine_labels", [])), dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0]:
        raise DataError(
            f"{origin}: CIFAR batch has data of shape {data.shape} and {labels.shape[0]} labels; "
            "expected (N, 3072) with N labels; use the original cifar-10-python.tar.gz"
        )
    images = data.astype(np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def read_cifar_python(path: Path) -> RawData:
    """Read ``cifar-10-python.tar.gz`` or an extracted ``cifar-10-batches-py/`` folder."""
    batches: dict[str, bytes] = {}
    for name, data in iter_files(path):
        leaf = PurePosixPath(name).name
        if leaf in (*CIFAR_TRAIN_BATCHES, "test_batch", "batches.meta"):
            batches[leaf] = data
    missing = [n for n in (*CIFAR_TRAIN_BATCHES, "test_batch") if n not in batches]
    if missing:
        raise DataError(f"{path}: CIFAR-10 batches missing ({', '.join(missing)}); "
                        "use the complete cifar-10-python.tar.gz")
    train = [_cifar_batch_arrays(load_cifar_pickle(batches[n], f"{path}:{n}"), f"{path}:{n}")
             for n in CIFAR_TRAIN_BATCHES]
    x_test, y_test = _cifar_batch_arrays(
        load_cifar_pickle(batches["test_batch"], f"{path}:test_batch"), f"{path}:test_batch"
    )
    names: tuple[str, ...] = tuple(str(i) for i in range(10))
    if "batches.meta" in batches:
        meta = load_cifar_pickle(batches["batches.meta"], f"{path}:batches.meta")
        raw_names = meta.get("label_names", [])
        names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in raw_names) or names
    return RawData(
        x_train=np.concatenate([x for x, _ in train]),
        y_train=np.concatenate([y for _, y in train]),
        x_test=x_test,
        y_test=y_test,
        class_names=names,
    )


def looks_like_cifar_python(path: Path) -> bool:
    if path.is_dir():
        return (path / "data_batch_1").exists() or (path / "cifar-10-batches-py").is_dir()
    return "cifar-10-python" in path.name or "batches-py" in path.name


# --- image trees -------------------------------------------------------------------


def _split_tree_path(name: str) -> tuple[str, str] | None:
    """('train'|'test', class) for '<any prefix>/train/<class>/<file>.<image ext>'."""
    parts = PurePosixPath(name).parts
    if len(parts) < 3 or PurePosixPath(name).suffix.lower() not in IMAGE_SUFFIXES:
        return None
    split, cls = parts[-3], parts[-2]
    if split not in ("train", "test") or cls.startswith("."):
        return None
    return split, cls


def _choose_mode(first_mode: str, channels: int | None) -> str:
    if channels is not None:
        return {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    if first_mode in _GRAY_MODES:
        return "L"
    return "RGBA" if first_mode == "RGBA" else "RGB"


class _ImageDecoder:
    """Decodes image bytes to uint8 HWC arrays of one size and channel count."""

    def __init__(self, image_size: tuple[int, int] | None, channels: int | None):
        self.image_size = image_size
        self.channels = channels
        self.mode: str | None = None
        self.size: tuple[int, int] | None = None  # PIL (width, height)

    def __call__(self, data: bytes, origin: str) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                if self.mode is None:
                    self.mode = _choose_mode(img.mode, self.channels)
                    self.size = (
                        (self.image_size[1], self.image_size[0]) if self.image_size else img.size
                    )
                img = img.convert(self.mode)
                if img.size != self.size:
                    if self.image_size is None:
                        raise DataError(
                            f"{origin}: image is {img.size[0]}x{img.size[1]} but earlier images "
                            f"are {self.size[0]}x{self.size[1]}; set data.image_size=[H, W] "
                            "to resize them all"
                        )
                    img = img.resize(self.size, Image.Resampling.BILINEAR)
                array = np.asarray(img, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            reason = ("empty file" if not data else "not a recognised image format"
                      if isinstance(exc, UnidentifiedImageError) else " ".join(str(exc).split()))
            raise DataError(
                f"{origin}: corrupt or unreadable image ({reason}); remove or replace the file"
            ) from None
        return array[..., None] if array.ndim == 2 else array


def read_image_tree(
    path: Path, image_size: tuple[int, int] | None = None, channels: int | None = None
) -> RawData:
    """Read ``train/<class>/*`` and ``test/<class>/*`` images from a folder or tar archive.

    Class names are the folder names, sorted (CIFAR-10's label order is alphabetical).
    A corrupt or empty image file is an error naming the file, not a silent skip.
    """
    decode = _ImageDecoder(image_size, channels)
    found: dict[str, list[tuple[str, np.ndarray]]] = {"train": [], "test": []}
    for name, data in iter_files(path):
        where = _split_tree_path(name)
        if where is not None:
            found[where[0]].append((where[1], decode(data, f"{path}:{name}")))
    if not found["train"]:
        raise DataError(
            f"{path}: no training images found; expected train/<class>/*.png|jpg and "
            "test/<class>/*.png|jpg"
        )
    if not found["test"]:
        raise DataError(f"{path}: no test images found; expected test/<class>/*.png|jpg "
                        "beside train/")
    train_classes = sorted({c for c, _ in found["train"]})
    test_classes = sorted({c for c, _ in found["test"]})
    if train_classes != test_classes:
        only = set(train_classes) ^ set(test_classes)
        raise DataError(
            f"{path}: train and test classes differ ({', '.join(sorted(only))} in only one); "
            "give both splits the same class folders"
        )
    index = {c: i for i, c in enumerate(train_classes)}

    def stack(items: list[tuple[str, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        return (np.stack([a for _, a in items]),
                np.array([index[c] for c, _ in items], dtype=np.int64))

    x_train, y_train = stack(found["train"])
    x_test, y_test = stack(found["test"])
    return RawData(x_train, y_train, x_test, y_test, tuple(train_classes))


def peek_image_tree(path: Path, channels: int | None, image_size: tuple[int, int] | None
                    ) -> tuple[tuple[int, int, int], int]:
    """Input shape and class count of an image tree, decoding a single image."""
    decode = _ImageDecoder(image_size, channels)
    classes: set[str] = set()
    shape = None
    for name, data in iter_files(path):
        where = _split_tree_path(name)
        if where and where[0] == "train":
            classes.add(where[1])
            if shape is None:
                shape = decode(data, f"{path}:{name}").shape
    if shape is None:
        raise DataError(f"{path}: no training images found; expected train/<class>/*.png|jpg")
    return tuple(shape), len(classes)
