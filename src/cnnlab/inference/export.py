"""A finished run's model as one self-contained file for use outside cnnlab.

``export_run(run_dir, "savedmodel" | "tflite")`` writes a TensorFlow SavedModel
folder or a TFLite file whose one signature takes raw pixels (float32, 0-255,
shape ``(N, H, W, C)`` of the run's input) and returns class probabilities: the
per-image standardization of :func:`cnnlab.data.dataset.standardize` (mean and standard
deviation over each image, a standard deviation of 0 counting as 1) runs inside.
Beside it, ``<name>.json`` records the class names, the input shape and how to call it.
The exported model computes in float32, also for a run trained with mixed precision
(TFLite's built-in ops take no float16). Nothing is ever overwritten; TensorFlow is
imported only after the paths are checked.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab import __version__
from cnnlab.errors import RunError
from cnnlab.runs import load, storage

FORMATS = ("savedmodel", "tflite")
EXPORT_DIR = "export"
DEFAULT_NAMES = {"savedmodel": "savedmodel", "tflite": "model.tflite"}
ENDPOINT = "serve"  # also "serving_default", the name TF Serving and TFLite use
COLOURS = {1: "grayscale", 3: "RGB", 4: "RGBA"}
Log = Callable[[str], None]


@dataclass(frozen=True)
class Exported:
    """What ``export_run`` wrote."""

    path: Path
    info_path: Path
    format: str
    size_bytes: int


def target_paths(run_dir: Path, fmt: str, out: str | Path | None) -> tuple[Path, Path]:
    """(model path, info JSON path beside it); RunError if either exists already."""
    if fmt not in FORMATS:
        raise RunError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    path = Path(out) if out is not None else storage.check_no_link(
        run_dir / EXPORT_DIR) / DEFAULT_NAMES[fmt]
    info = path.with_name(f"{path.stem if path.suffix else path.name}.json")
    for target in (path, info):
        if target.exists() or target.is_symlink():
            raise RunError(f"{target}: already exists and is never overwritten; give another "
                           "--out or delete it")
    existing = next(p for p in path.absolute().parents if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise RunError(f"{path}: cannot write there ({existing} is not a writable folder); "
                       "choose another --out")
    return path, info


def info_record(run: load.Run, fmt: str, path: Path) -> dict[str, Any]:
    """The JSON written beside the exported model."""
    input_shape, class_names = load.recorded_input(run)
    return {
        "format": fmt,
        "model": path.name,
        "signature": {"name": "serving_default", "input": "images", "output": "output_0",
                      **({"method": f"{ENDPOINT}(images)"} if fmt == "savedmodel" else {})},
        "input": {"shape": [None, *input_shape], "dtype": "float32",
                  "pixels": f"raw {COLOURS.get(input_shape[2], 'pixel')} values 0-255"},
        "output": {"shape": [None, len(class_names)], "dtype": "float32",
                   "values": "class probabilities, in class_names order"},
        "compute_dtype": "float32",
        "preprocessing": "inside the model: per image (img - img.mean()) / img.std() over "
                         "all pixels and channels, a std of 0 counting as 1",
        "class_names": list(class_names),
        "input_shape": list(input_shape),
        "run": str(run.path.resolve()),
        "test_accuracy": run.metrics.get("test_accuracy"),
        "cnnlab_version": __version__,
    }


def standardize_graph(images: Any) -> Any:
    """:func:`cnnlab.data.dataset.standardize` as TensorFlow ops on a float32 (N, H, W, C) batch."""
    from cnnlab.backend.tf import tf

    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    std = tf.sqrt(tf.reduce_mean(tf.square(images - mean), axis=[1, 2, 3], keepdims=True))
    return (images - mean) / tf.where(std > 0, std, tf.ones_like(std))


def float32_model(model: Any) -> Any:
    """The model itself if it computes in float32, else a float32 copy with its weights
    (a mixed-precision model keeps float32 weights and computes in float16)."""
    from cnnlab.backend.tf import keras

    if all(layer.dtype_policy.compute_dtype == "float32" for layer in model.layers):
        return model

    def as_float32(layer: Any) -> Any:
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    copy = keras.models.clone_model(model, clone_function=as_float32)
    copy.set_weights(model.get_weights())
    return copy


def write_savedmodel(model: Any, input_shape: tuple[int, ...], path: Path) -> None:
    """The model behind the standardization, as a SavedModel with one ``serve`` endpoint."""
    from cnnlab.backend.tf import keras, tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=ENDPOINT,
        fn=lambda images: tf.cast(model(standardize_graph(images), training=False), tf.float32),
        input_signature=[tf.TensorSpec((None, *input_shape), tf.float32, name="images")],
    )
    archive.write_out(str(path), verbose=False)


def tflite_bytes(savedmodel: Path) -> bytes:
    """A SavedModel's serving signature converted to TFLite (built-in ops only)."""
    from cnnlab.backend.tf import quiet_stderr, tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(savedmodel))
    try:
        with quiet_stderr():
            return converter.convert()
    except Exception as exc:  # the converter raises its own ConverterError and others
        text = str(exc)
        lines = [line for line in text.splitlines() if line.startswith("TF Select ops:")]
        reason = " ".join((lines[0] if lines else text).split())[:200]
        raise RunError(f"TFLite conversion failed ({reason}); export --format savedmodel "
                       "instead") from None


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _write(model: Any, input_shape: tuple[int, ...], fmt: str, path: Path) -> None:
    """Write into a temporary sibling, then rename: an interrupted export leaves nothing."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    except OSError as exc:
        raise RunError(f"{path}: cannot write there ({exc.strerror or exc}); choose another "
                       "--out") from None
    try:
        write_savedmodel(model, input_shape, work / "savedmodel")
        if fmt == "savedmodel":
            os.rename(work / "savedmodel", path)
        else:
            (work / "model.tflite").write_bytes(tflite_bytes(work / "savedmodel"))
            os.rename(work / "model.tflite", path)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def export_run(run_dir: str | Path, fmt: str = "savedmodel", out: str | Path | None = None,
               log: Log = print, trust_model: bool = False) -> Exported:
    """Export a finished run's best model (see the module docstring); returns what was
    written. Default ``out``: ``RUN_DIR/export/savedmodel`` or ``RUN_DIR/export/model.tflite``."""
    run = load.read_run(run_dir)
    path, info_path = target_paths(run.path, fmt, out)
    input_shape, _ = load.recorded_input(run)
    model = load.load_run_model(run, trust_code=trust_model)  # TensorFlow loads here
    if tuple(model.input_shape[1:]) != input_shape:
        raise RunError(f"{run.path}: model.keras takes {model.input_shape[1:]} but the run "
                       f"recorded {input_shape}; train the run again")
    exportable = float32_model(model)
    if exportable is not model:
        log("the run computes in mixed precision; the export computes in float32")
    _write(exportable, input_shape, fmt, path)
    storage.write_json(info_path, info_record(run, fmt, path))
    exported = Exported(path, info_path, fmt, _size(path))
    log(f"{fmt}: {path} ({exported.size_bytes / 1024:,.0f} KiB), info: {info_path}")
    return exported
