"""Helpers shared by the test modules (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def user_env() -> dict[str, str]:
    """The environment a user's shell would give a fresh cnnlab process: none of the
    TF_/CNNLAB_ variables that cnnlab sets for itself."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "CNNLAB_"))}


def one_line_error(stderr: str, *fragments: str) -> str:
    """stderr is exactly one line, 'cnnlab: error: ...', holding every fragment."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnnlab: error: "), stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def assert_png(path: Path, min_size: tuple[int, int] = (300, 200),
               aspect: tuple[float, float] = (0.3, 4.0)) -> np.ndarray:
    """A real PNG picture: decodes, at least ``min_size`` (width, height) pixels, a
    width/height ratio within ``aspect``, and drawn on: many colours, not one flat tone,
    some dark ink (lines, text). Returns its RGB pixels."""
    with Image.open(path) as img:
        assert img.format == "PNG", (path, img.format)
        rgb = np.asarray(img.convert("RGB"))
    height, width = rgb.shape[:2]
    assert width >= min_size[0] and height >= min_size[1], (path, width, height)
    assert aspect[0] <= width / height <= aspect[1], (path, width / height)
    gray = rgb.mean(axis=2)
    assert gray.std() > 8, f"{path}: nearly one flat colour"
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 50, f"{path}: too few colours"
    assert (gray < 100).mean() > 0.002, f"{path}: no dark ink"
    return rgb


def sample_members(sample: Path, train_per_class: int, test_per_class: int
                   ) -> list[tuple[str, bytes]]:
    """(name, JPEG bytes) of the first images of every class of the bundled sample, in
    the archive's own naming (``train/<class>/NNNN.jpg``), sorted by name."""
    wanted = {"train": train_per_class, "test": test_per_class}
    taken: dict[tuple[str, str], int] = {}
    members = []
    with tarfile.open(sample) as tar:
        for member in tar:
            if not member.isfile():
                continue
            split, cls = member.name.split("/")[-3:-1]
            if taken.get((split, cls), 0) >= wanted[split]:
                continue
            taken[(split, cls)] = taken.get((split, cls), 0) + 1
            members.append((member.name, tar.extractfile(member).read()))
    return sorted(members)


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def tiny_sets(data_path: Path, cache_dir: Path, epochs: int = 2) -> dict[str, object]:
    """Tiny data and training settings as sweep ``set:`` entries."""
    return {"data.path": str(data_path), "data.cache_dir": str(cache_dir),
            "data.download": False, "data.train_size": 300, "data.val_size": 100,
            "data.test_size": 100, "train.epochs": epochs, "train.verbose": 0}


def tiny_args(data_path: Path, cache_dir: Path, epochs: int = 2, **more: object) -> list[str]:
    """The same settings as ``--set`` options for ``cnnlab train``."""
    values = {**tiny_sets(data_path, cache_dir, epochs), **more}
    return [a for key, value in values.items()
            for a in ("--set", f"{key}={str(value).lower() if isinstance(value, bool) else value}")]
