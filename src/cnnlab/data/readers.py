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
import os
import pickle
import struct
import tarfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from cnnlab.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")
CIFAR_TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "F"}
MODES = {1: "L", 3: "RGB", 4: "RGBA"}  # channel count -> the PIL mode images are read as
DEFAULT_MAX_PIXELS = 89_478_485  # data.max_pixels' default: Pillow's own MAX_IMAGE_PIXELS


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
            digest.update(os.fsencode(file.relative_to(path).as_posix()) + b"\0")  # any bytes
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
        return MODES[channels]
    if first_mode in _GRAY_MODES or first_mode.startswith("I;16"):
        return "L"
    return "RGBA" if first_mode == "RGBA" else "RGB"


def _reason(exc: BaseException, empty: bool) -> str:
    from PIL import UnidentifiedImageError

    if empty:
        return "empty file"
    if isinstance(exc, UnidentifiedImageError):
        return "not a recognised image format"
    return " ".join(str(exc).split())[:150] or type(exc).__name__


def check_pixels(img: Any, origin: str, max_pixels: int | None,
                 setting: str = "data.max_pixels") -> None:
    """DataError if an opened image's header size is over ``max_pixels`` (None: no limit)."""
    width, height = img.size
    if max_pixels is not None and width * height > max_pixels:
        raise DataError(
            f"{origin}: image is {width}x{height} = {width * height:,} pixels, over the limit "
            f"of {max_pixels:,} ({setting}; a decompression bomb?); if the image is genuine, "
            f"raise {setting} (null: no limit)")


@contextmanager
def open_image(source: bytes | Path, origin: str, max_pixels: int | None,
               fix: str = "remove or replace the file", setting: str = "data.max_pixels",
               problem: str = "corrupt or unreadable image") -> Iterator[Any]:
    """An image opened from bytes or a file, its header read and its size checked against
    ``max_pixels`` before anything is decoded. Any Pillow failure inside the block (decoding
    included) becomes a one-line DataError naming ``origin``. Pillow's own bomb check is
    off meanwhile (this one replaces it, with a limit the user can raise); warnings too."""
    from PIL import Image, UnidentifiedImageError

    saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with warnings.catch_warnings():  # palette transparency, EXIF notices
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
                check_pixels(img, origin, max_pixels, setting)
                yield img
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError,
            ValueError, EOFError, struct.error) as exc:
        empty = not source if isinstance(source, bytes) else source.stat().st_size == 0
        raise DataError(f"{origin}: {problem} ({_reason(exc, empty)}); {fix}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _eight_bit(img: Any) -> Any:
    """16-bit and 32-bit integer grayscale (``I;16*``, ``I``) scaled by 255/65535 and float
    grayscale (``F``; 0-1 when its maximum is <= 1, else 0-255) to 8-bit ``L``, rounded;
    Pillow's own conversion would clip them at 255. Other modes are returned as they are."""
    from PIL import Image

    if img.mode not in ("I", "F") and not img.mode.startswith("I;16"):
        return img
    values = np.asarray(img, dtype=np.float64)
    if img.mode != "F":
        values = values / 257.0  # 65535 -> 255
    elif values.size and values.max() <= 1.0:
        values = values * 255.0
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")


def convert_image(img: Any, mode: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """The one conversion of an opened image to uint8 (H, W, C) pixels, shared by the
    image-folder reader and ``cnnlab predict``: decode, apply the EXIF orientation, scale
    16-bit/float grayscale to 0-255, convert to ``mode`` (``L``, ``RGB``, ``RGBA``; CMYK,
    YCbCr and HSV go through RGB; LAB fails) and resize to ``size`` (width, height;
    bilinear)."""
    from PIL import Image, ImageOps

    img.load()
    img = _eight_bit(ImageOps.exif_transpose(img))
    if img.mode not in ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "La", "RGBa"):
        img = img.convert("RGB")  # Pillow converts these to RGB only
    img = img.convert(mode)
    if size is not None and img.size != size:
        img = img.resize(size, Image.Resampling.BILINEAR)
    array = np.asarray(img, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


class _ImageDecoder:
    """Decodes image bytes to uint8 HWC arrays of one size and channel count."""

    def __init__(self, image_size: tuple[int, int] | None, channels: int | None,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS):
        self.image_size = image_size
        self.channels = channels
        self.max_pixels = max_pixels
        self.mode: str | None = None
        self.size: tuple[int, int] | None = None  # PIL (width, height)

    def header(self, data: bytes, origin: str) -> None:
        """Read the header only: DataError if unreadable or over the pixel limit."""
        with open_image(data, origin, self.max_pixels):
            pass

    def __call__(self, data: bytes, origin: str) -> np.ndarray:
        with open_image(data, origin, self.max_pixels) as img:
            if self.mode is None:
                self.mode = _choose_mode(img.mode, self.channels)
            resize = (self.image_size[1], self.image_size[0]) if self.image_size else None
            array = convert_image(img, self.mode, resize)
        if self.size is None:
            self.size = (array.shape[1], array.shape[0])
        elif (array.shape[1], array.shape[0]) != self.size:
            raise DataError(
                f"{origin}: image is {array.shape[1]}x{array.shape[0]} but earlier images "
                f"are {self.size[0]}x{self.size[1]}; set data.image_size=[H, W] "
                "to resize them all")
        return array


def _scan_tree(path: Path, decode: _ImageDecoder) -> list[tuple[str, str]]:
    """(split, class) of every image of the tree, in reading order, from the headers only:
    an unreadable header or an image over the pixel limit fails before anything is decoded."""
    found = []
    for name, data in iter_files(path):
        where = _split_tree_path(name)
        if where is not None:
            decode.header(data, f"{path}:{name}")
            found.append(where)
    splits = {s for s, _ in found}
    if "train" not in splits:
        raise DataError(
            f"{path}: no training images found; expected train/<class>/*.png|jpg and "
            "test/<class>/*.png|jpg"
        )
    if "test" not in splits:
        raise DataError(f"{path}: no test images found; expected test/<class>/*.png|jpg "
                        "beside train/")
    return found


def _decode_tree(path: Path, decode: _ImageDecoder, count: dict[str, int]
                 ) -> dict[str, np.ndarray]:
    """Decode the tree's images straight into one preallocated array per split."""
    arrays: dict[str, np.ndarray] = {}
    filled = {"train": 0, "test": 0}
    for name, data in iter_files(path):
        where = _split_tree_path(name)
        if where is None:
            continue
        split = where[0]
        image = decode(data, f"{path}:{name}")
        if split not in arrays:
            arrays[split] = np.empty((count[split], *image.shape), dtype=np.uint8)
        if filled[split] >= count[split]:
            filled[split] += 1  # more images than the headers counted
            break
        arrays[split][filled[split]] = image
        filled[split] += 1
    if filled != count:
        raise DataError(f"{path}: images changed while being read; read it again when "
                        "nothing writes to it")
    return arrays


def read_image_tree(
    path: Path, image_size: tuple[int, int] | None = None, channels: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> RawData:
    """Read ``train/<class>/*`` and ``test/<class>/*`` images from a folder or tar archive.

    Class names are the folder names, sorted (CIFAR-10's label order is alphabetical).
    A corrupt or empty image file is an error naming the file, not a silent skip. Every
    header is read (and its size checked against ``max_pixels``) before any image is
    decoded; images are then decoded one at a time into one array per split.
    """
    decode = _ImageDecoder(image_size, channels, max_pixels)
    found = _scan_tree(path, decode)
    train_classes = sorted({c for s, c in found if s == "train"})
    test_classes = sorted({c for s, c in found if s == "test"})
    if train_classes != test_classes:
        only = set(train_classes) ^ set(test_classes)
        raise DataError(
            f"{path}: train and test classes differ ({', '.join(sorted(only))} in only one); "
            "give both splits the same class folders"
        )
    index = {c: i for i, c in enumerate(train_classes)}
    labels = {split: np.array([index[c] for s, c in found if s == split], dtype=np.int64)
              for split in ("train", "test")}
    arrays = _decode_tree(path, decode, {split: len(y) for split, y in labels.items()})
    return RawData(arrays["train"], labels["train"], arrays["test"], labels["test"],
                   tuple(train_classes))


def peek_image_tree(path: Path, channels: int | None, image_size: tuple[int, int] | None,
                    max_pixels: int | None = DEFAULT_MAX_PIXELS
                    ) -> tuple[tuple[int, int, int], int]:
    """Input shape and class count of an image tree, decoding a single image (at its own
    size: the shape is known without allocating an ``image_size`` that may not fit)."""
    decode = _ImageDecoder(None, channels, max_pixels)
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
    if image_size:
        shape = (*image_size, shape[2])
    return tuple(shape), len(classes)
