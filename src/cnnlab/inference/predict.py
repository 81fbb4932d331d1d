"""Class probabilities for the user's own image files, preprocessed as in training.

``predict(run_dir, inputs)`` reads image files (PNG, JPEG, ...; folders recursively,
sorted), converts each to the run's channel count (``L``, ``RGB`` or ``RGBA``, as the
image-folder reader does), resizes it to the run's input size (bilinear, like
``data.image_size``), standardizes it per image exactly as the training data was
(:func:`cnnlab.data.dataset.standardize`) and returns one :class:`Prediction` per file.
Every file is decoded before TensorFlow loads, so that a bad file fails fast, by name (or,
asked to, is reported and left out while the others are predicted).

Decoding is the image-folder reader's own (:func:`cnnlab.data.readers.convert_image`): EXIF
orientation applied, 16-bit or float images scaled to 0-255 rather than clipped, and an
image over the run's ``data.max_pixels`` refused from its header, before decoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnlab.data.dataset import standardize
from cnnlab.data.readers import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, MODES, convert_image, open_image
from cnnlab.errors import DataError, RunError
from cnnlab.runs import layout, load, storage

USAGE = "cnnlab predict [RUN_DIR] IMAGE_OR_FOLDER..."


@dataclass(frozen=True)
class Prediction:
    """One image file's class probabilities (in the run's class order)."""

    path: Path
    probabilities: np.ndarray
    class_names: tuple[str, ...]

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most probable classes, most probable first: [(class, probability)]."""
        order = np.argsort(-self.probabilities, kind="stable")[:max(k, 1)]
        return [(self.class_names[i], float(self.probabilities[i])) for i in order]

    @property
    def label(self) -> str:
        return self.top(1)[0][0]


def split_arguments(arguments: Sequence[str]) -> tuple[Path | None, list[Path]]:
    """``[RUN_DIR] IMAGE_OR_FOLDER...``: the first argument is the run folder only when it
    is one (``storage.is_run_folder``); otherwise every argument is an image or a folder."""
    paths = [Path(a) for a in arguments]
    run_dir = paths.pop(0) if paths and storage.is_run_folder(paths[0]) else None
    for path in paths:
        if storage.is_run_folder(path):
            raise RunError(f"{path}: is a run folder, not images; give it first: "
                           f"cnnlab predict {path} IMAGE_OR_FOLDER...")
        if storage.is_sweep_folder(path):
            raise RunError(f"{path}: is a sweep folder; give one of its run folders first: "
                           f"{USAGE}")
    if not paths:
        where = f" after the run folder {run_dir}" if run_dir else ""
        raise DataError(f"no image file or folder given{where}; usage: {USAGE}")
    return run_dir, paths


def image_files(inputs: Sequence[str | Path]) -> list[Path]:
    """The files to predict: each file as given, each folder's image files (by extension,
    recursively, sorted), each file once (a file also inside a given folder, or given
    twice, keeps its first place). DataError for a missing path or a folder without
    images."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.rglob("*")
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DataError(f"{item}: no image files in this folder or below (looked for "
                                f"{', '.join(sorted(IMAGE_SUFFIXES))}); give another folder")
            files.extend(found)
        elif item.is_file():
            files.append(item)
        else:
            raise DataError(f"{item}: no such file or folder; give image files (PNG, JPEG) "
                            "or folders of them")
    first: dict[Path, Path] = {}
    for path in files:
        first.setdefault(path.resolve(), path)
    return list(first.values())


def read_image(path: Path, input_shape: tuple[int, ...],
               max_pixels: int | None = DEFAULT_MAX_PIXELS,
               setting: str = "data.max_pixels") -> np.ndarray:
    """One image file as uint8 (H, W, C) of the run's input shape, converted as the
    image-folder reader converts (:func:`cnnlab.data.readers.convert_image`); DataError naming
    the file if it is not a readable image or is over ``max_pixels`` (checked from its
    header, before decoding)."""
    height, width, channels = input_shape
    with open_image(path, str(path), max_pixels, setting=setting,
                    problem="not a readable image",
                    fix="give a PNG or JPEG file, or remove it from the folder") as img:
        return convert_image(img, MODES[channels], (width, height))


def load_images(files: Sequence[Path], input_shape: tuple[int, ...],
                max_pixels: int | None = DEFAULT_MAX_PIXELS, setting: str = "data.max_pixels",
                failed: list[DataError] | None = None) -> tuple[np.ndarray, list[Path]]:
    """Raw uint8 pixels (N, H, W, C) of the files, converted to the run's input shape, and
    the files they are. A file that is not a readable image raises DataError, or with a
    ``failed`` list is added to it and left out."""
    if input_shape[2] not in MODES:
        raise RunError(f"the run's input has {input_shape[2]} channels; predict reads "
                       "images as 1, 3 or 4 channels only")
    images, read = [], []
    for path in files:
        try:
            images.append(read_image(path, input_shape, max_pixels, setting))
        except DataError as exc:
            if failed is None:
                raise
            failed.append(exc)
            continue
        read.append(path)
    return np.array(images, dtype=np.uint8).reshape(-1, *input_shape), read


def _pixel_limit(run: load.Run) -> int | None:
    """The run's data.max_pixels (the default for runs recorded before the key existed)."""
    data = run.config.get("data") if isinstance(run.config, dict) else None
    if isinstance(data, dict) and "max_pixels" in data:
        value = data["max_pixels"]
        return value if value is None or isinstance(value, int) else DEFAULT_MAX_PIXELS
    return DEFAULT_MAX_PIXELS


def predict(run_dir: str | Path, inputs: Sequence[str | Path], trust_model: bool = False,
            batch_size: int = 256, failed: list[DataError] | None = None) -> list[Prediction]:
    """Class probabilities of a finished run's best model for image files or folders,
    one :class:`Prediction` per file, in input order (folders sorted). ``failed``: the
    files that are not readable images go there (their DataError) and the others are
    predicted; without it, the first one raises."""
    run = load.read_run(run_dir)
    input_shape, class_names = load.recorded_input(run)
    setting = f"data.max_pixels in {run.path / layout.CONFIG_FILE}"
    images, files = load_images(image_files(inputs), input_shape, _pixel_limit(run), setting,
                                failed)  # before TensorFlow
    if not files:
        return []
    model = load.load_run_model(run, trust_code=trust_model)
    if tuple(model.input_shape[1:]) != input_shape:
        raise RunError(f"{run.path}: model.keras takes {model.input_shape[1:]} but the run "
                       f"recorded {input_shape}; train the run again")
    probabilities = np.asarray(
        model.predict(standardize(images), batch_size=batch_size, verbose=0), dtype=np.float32)
    return [Prediction(path, row, class_names)
            for path, row in zip(files, probabilities, strict=True)]
