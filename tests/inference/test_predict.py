"""Using a trained model, through the command line: ``predict`` on the user's own image
files, ``export`` to a SavedModel or TFLite file that standardizes inside, and the bare
commands that take the most recent finished run under ``outputs/``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import one_line_error, user_env
from PIL import Image

from cnnlab.cli import main
from cnnlab.config.schema import config_from_dict
from cnnlab.data.dataset import read_cached, split_indices, standardize
from cnnlab.runs import load
from cnnlab.training.model import build_model

NO_RUN = ("no finished run under outputs/", "cnnlab train best")


def invoke(*args: str) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def fresh_process(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``cnnlab ARGS`` in a new process; prints whether TensorFlow got imported."""
    code = ("import sys; from click.testing import CliRunner; from cnnlab.cli import main; "
            f"r = CliRunner().invoke(main, {args!r}); sys.stderr.write(r.stderr); "
            "print('tensorflow' in sys.modules); sys.exit(r.exit_code)")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=user_env(),
                          capture_output=True, text=True, timeout=120)


def train_tiny(out: Path, sample_archive: Path, cache_dir: Path, **extra: object) -> Path:
    """A tiny baseline run trained through the CLI on real CIFAR-10 images."""
    sets = {"data.path": sample_archive, "data.cache_dir": cache_dir, "data.download": "false",
            "data.train_size": 300, "data.val_size": 100, "data.test_size": 100,
            "train.epochs": 2, "train.verbose": 0, **extra}
    result = invoke("train", "baseline", "--out", out,
                    *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, sample_archive: Path,
            cache_dir: Path) -> Path:
    return train_tiny(tmp_path_factory.mktemp("predict") / "run", sample_archive, cache_dir)


@pytest.fixture(scope="module")
def test_split(trained: Path) -> dict[str, object]:
    """The run's test split as raw pixels (from the recorded data and the run's split),
    its labels and class names, and the Keras model's probabilities on the standardized
    split that training and ``evaluate`` use."""
    run = load.read_run(trained)
    cfg = config_from_dict(run.config, "config.yaml")
    raw, _, _ = read_cached(Path(run.metrics["data"]["location"]), cfg.data)
    _, _, test_idx = split_indices(raw.y_train, raw.y_test, cfg.data, cfg.seed)
    data = load.load_run_data(run, log=lambda _: None)
    pixels = raw.x_test[test_idx]
    np.testing.assert_array_equal(standardize(pixels), data.x_test)  # the very same images
    model = load.load_run_model(run)
    return {"pixels": pixels, "labels": raw.y_test[test_idx], "classes": data.class_names,
            "model": model, "probabilities": model.predict(data.x_test, verbose=0)}


def write_pngs(folder: Path, pixels: np.ndarray, labels: np.ndarray,
               classes: tuple[str, ...]) -> list[Path]:
    """Test images as PNG files in class subfolders; returns the paths in image order."""
    paths = []
    for i, (image, label) in enumerate(zip(pixels, labels, strict=True)):
        path = folder / classes[label] / f"{i:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths


def predicted(output: str, classes: tuple[str, ...]) -> dict[str, np.ndarray]:
    """``predict --json`` output as {path: probability of every class, in class order}."""
    table = {}
    for item in json.loads(output):
        by_class = {p["class"]: p["probability"] for p in item["predictions"]}
        table[item["path"]] = np.array([by_class[c] for c in classes])
    return table


# --- predict --------------------------------------------------------------------------


def test_predict_on_png_files_agrees_with_the_model_and_evaluate(
        trained: Path, test_split: dict, tmp_path: Path) -> None:
    pixels, labels, classes = test_split["pixels"], test_split["labels"], test_split["classes"]
    paths = write_pngs(tmp_path / "pngs", pixels, labels, classes)
    (tmp_path / "pngs" / "notes.txt").write_text("not an image; skipped in a folder")
    started = time.perf_counter()
    result = invoke("predict", trained, tmp_path / "pngs", "--json", "--top", "10")
    seconds = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    table = predicted(result.stdout, classes)
    assert list(table) == sorted(str(p) for p in paths)  # recursive, sorted, images only
    mine = np.stack([table[str(p)] for p in paths])
    reference = test_split["probabilities"]
    np.testing.assert_allclose(mine, reference, atol=1e-5)
    assert (mine.argmax(axis=1) == reference.argmax(axis=1)).all()
    evaluation = invoke("evaluate", trained)
    assert evaluation.exit_code == 0, evaluation.output
    recorded = json.loads((trained / "evaluation.json").read_text())
    matrix = np.zeros((len(classes), len(classes)), dtype=int)
    np.add.at(matrix, (labels, mine.argmax(axis=1)), 1)
    assert matrix.tolist() == recorded["confusion_matrix"]
    assert np.mean(mine.argmax(axis=1) == labels) == pytest.approx(recorded["test_accuracy"])
    assert seconds < 60, f"predict took {seconds:.1f} s for {len(paths)} images"


def test_predict_prints_top_k_lines_and_json(trained: Path, test_split: dict,
                                             tmp_path: Path) -> None:
    pixels, labels, classes = test_split["pixels"], test_split["labels"], test_split["classes"]
    first, second = write_pngs(tmp_path, pixels[:2], labels[:2], classes)
    text = invoke("predict", trained, first, second, "--top", "2")
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert [line.split(": ")[0] for line in lines] == [str(first), str(second)]
    entry = r"([a-z]+) \((0\.\d{3}|1\.000)\)"
    for line, reference in zip(lines, test_split["probabilities"][:2], strict=True):
        found = re.fullmatch(rf".+: {entry}, {entry}", line)
        assert found, line
        order = np.argsort(-reference)[:2]
        assert [found[1], found[3]] == [classes[i] for i in order]
        assert [float(found[2]), float(found[4])] == pytest.approx(reference[order], abs=6e-4)
    # each image once, in its first place: a file given again, or inside a given folder
    again = invoke("predict", trained, second, str(tmp_path), first)
    assert [line.split(": ")[0] for line in again.stdout.splitlines()] == [str(second), str(first)]
    as_json = invoke("predict", trained, first, "--json")
    items = json.loads(as_json.stdout)
    assert [len(i["predictions"]) for i in items] == [3]  # default --top 3
    probabilities = [p["probability"] for p in items[0]["predictions"]]
    assert probabilities == sorted(probabilities, reverse=True)
    every = json.loads(invoke("predict", trained, first, "--json", "--top", "50").stdout)
    assert sorted(p["class"] for p in every[0]["predictions"]) == sorted(classes)
    assert sum(p["probability"] for p in every[0]["predictions"]) == pytest.approx(1, abs=1e-4)


def _mode_variants(image: np.ndarray, folder: Path) -> dict[str, tuple[Path, np.ndarray]]:
    """One test image saved in other modes and sizes: {name: (file, the RGB pixels it
    should become for a 32x32 RGB run)}."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = Image.fromarray(image)
    gray = np.asarray(rgb.convert("L"))
    alpha = np.random.default_rng(0).integers(0, 256, image.shape[:2], dtype=np.uint8)
    palette = rgb.quantize(64)
    Image.fromarray(gray).save(folder / "gray.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(folder / "gray16.png")
    Image.fromarray(np.dstack([image, alpha])).save(folder / "rgba.png")
    palette.save(folder / "palette.png")
    rgb.resize((80, 56), Image.Resampling.BICUBIC).save(folder / "large.jpg", quality=95)
    with Image.open(folder / "large.jpg") as jpeg:
        resized = np.asarray(jpeg.convert("RGB").resize((32, 32), Image.Resampling.BILINEAR))
    gray_rgb = np.repeat(gray[..., None], 3, axis=2)
    return {"gray": (folder / "gray.png", gray_rgb), "gray16": (folder / "gray16.png", gray_rgb),
            "rgba": (folder / "rgba.png", image),
            "palette": (folder / "palette.png", np.asarray(palette.convert("RGB"))),
            "large": (folder / "large.jpg", resized)}


def test_predict_converts_grayscale_16bit_rgba_palette_and_other_sizes(
        trained: Path, test_split: dict, tmp_path: Path) -> None:
    variants = _mode_variants(test_split["pixels"][3], tmp_path / "modes")
    with Image.open(variants["gray16"][0]) as img:
        assert img.mode.startswith("I")  # a real 16-bit grayscale PNG
    with Image.open(variants["palette"][0]) as img:
        assert img.mode == "P"
    result = invoke("predict", trained, *[path for path, _ in variants.values()],
                    "--json", "--top", "10")
    assert result.exit_code == 0, result.output
    table = predicted(result.stdout, test_split["classes"])
    expected = np.stack([pixels for _, pixels in variants.values()])
    reference = test_split["model"].predict(standardize(expected), verbose=0)
    for (name, (path, _)), probabilities in zip(variants.items(), reference, strict=True):
        np.testing.assert_allclose(table[str(path)], probabilities, atol=1e-5, err_msg=name)
    # 16-bit is scaled to 8 bits, not clipped to white
    np.testing.assert_allclose(table[str(variants["gray16"][0])],
                               table[str(variants["gray"][0])], atol=1e-6)


def test_predict_refuses_bad_files_in_one_line(trained: Path, test_split: dict,
                                               tmp_path: Path) -> None:
    good = write_pngs(tmp_path / "good", test_split["pixels"][:1], test_split["labels"][:1],
                      test_split["classes"])[0]
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "folder" / "deep" / "notes.png"
    text.parent.mkdir(parents=True)
    text.write_text("this is not a picture")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    cases = [(truncated, "not a readable image"), (tmp_path / "folder", "not a recognised image"),
             (empty, "empty file")]
    for bad, reason in cases:  # said in one line; the good image is still predicted
        result = invoke("predict", trained, good, bad)
        assert result.exit_code == 2, (bad, result.output)
        name = str(text) if bad.name == "folder" else str(bad)
        one_line_error(result.stderr, name, reason)
        assert result.stdout.startswith(f"{good}: ") and len(result.stdout.splitlines()) == 1
    missing = invoke("predict", trained, good, tmp_path / "missing.png")  # a wrong name: at once
    assert missing.exit_code == 2 and missing.stdout == ""
    one_line_error(missing.stderr, str(tmp_path / "missing.png"), "no such file or folder")
    (tmp_path / "no-images").mkdir()
    one_line_error(invoke("predict", trained, tmp_path / "no-images").stderr, "no image files")
    one_line_error(invoke("predict", trained).stderr, "no image file or folder given")
    one_line_error(invoke("predict", good, trained).stderr, "is a run folder", "give it first")
    checked = fresh_process(["predict", str(trained), str(truncated)], tmp_path)
    assert checked.returncode == 2 and checked.stdout.strip() == "False", checked  # fast, no TF
    one_line_error(checked.stderr, str(truncated))


def test_predict_over_a_folder_reports_each_bad_file_and_predicts_the_rest(
        trained: Path, test_split: dict, tmp_path: Path) -> None:
    paths = write_pngs(tmp_path / "photos", test_split["pixels"][:3], test_split["labels"][:3],
                       test_split["classes"])
    bad = [tmp_path / "photos" / "a-broken.png", tmp_path / "photos" / "z" / "empty.jpg"]
    bad[0].write_bytes(paths[0].read_bytes()[:40])
    bad[1].parent.mkdir()
    bad[1].write_bytes(b"")
    result = invoke("predict", trained, tmp_path / "photos", "--json", "--top", "10")
    assert result.exit_code == 2, result.output  # at the end, once the rest is printed
    table = predicted(result.stdout, test_split["classes"])
    assert sorted(table) == sorted(str(p) for p in paths)
    np.testing.assert_allclose(np.stack([table[str(p)] for p in paths]),
                               test_split["probabilities"][:3], atol=1e-5)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in result.stderr
    for line, path in zip(lines, bad, strict=True):  # each unreadable file, by name
        assert line.startswith(f"cnnlab: error: {path}: "), line


# --- export ---------------------------------------------------------------------------


def _run_exported(path: Path, fmt: str, images: np.ndarray) -> np.ndarray:
    """Class probabilities from an exported file, through TensorFlow's own loaders."""
    from cnnlab.backend.tf import tf

    if fmt == "savedmodel":
        loaded = tf.saved_model.load(str(path))
        by_method = loaded.serve(tf.constant(images)).numpy()
        by_signature = loaded.signatures["serving_default"](images=tf.constant(images))
        np.testing.assert_array_equal(by_method, by_signature["output_0"].numpy())
        return by_method
    with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated" (in favour of LiteRT)
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(model_path=str(path))
    inputs, outputs = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inputs["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inputs["index"], images)
    interpreter.invoke()
    return interpreter.get_tensor(outputs["index"])


@pytest.mark.parametrize("fmt", ["savedmodel", "tflite"])
def test_export_round_trips_on_raw_test_images(fmt: str, trained: Path, test_split: dict,
                                               tmp_path: Path) -> None:
    out = tmp_path / ("model" if fmt == "savedmodel" else "model.tflite")
    result = invoke("export", trained, "--format", fmt, "--out", out)
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "model.json").read_text())
    assert info["class_names"] == list(test_split["classes"])
    assert info["input_shape"] == [32, 32, 3] and info["format"] == fmt
    pixels = test_split["pixels"]
    flat = np.full((1, *pixels.shape[1:]), 128, dtype=np.uint8)  # std 0: standardizes to 0
    images = np.concatenate([pixels, flat]).astype(np.float32)
    reference = np.concatenate([test_split["probabilities"],
                                test_split["model"].predict(standardize(flat), verbose=0)])
    exported = _run_exported(out, fmt, images)
    assert exported.shape == reference.shape and exported.dtype == np.float32
    np.testing.assert_allclose(exported, reference, atol=1e-4)
    assert (exported.argmax(axis=1) == reference.argmax(axis=1)).all()
    again = invoke("export", trained, "--format", fmt, "--out", out)
    assert again.exit_code == 2
    one_line_error(again.stderr, str(out), "already exists", "never overwritten")


def test_export_default_path_in_the_run_folder_never_overwritten(trained: Path,
                                                                tmp_path: Path) -> None:
    result = invoke("export", trained, "--format", "tflite")
    assert result.exit_code == 0, result.output
    target = trained / "export" / "model.tflite"
    assert str(target) in result.stdout
    assert target.read_bytes()[4:8] == b"TFL3"  # the FlatBuffer identifier of a TFLite model
    before = target.read_bytes()
    checked = fresh_process(["export", str(trained), "--format", "tflite"], tmp_path)
    assert checked.returncode == 2 and checked.stdout.strip() == "False", checked  # no TF
    one_line_error(checked.stderr, str(target), "already exists")
    assert target.read_bytes() == before
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # no leftovers
    (tmp_path / "file.txt").write_text("a file, not a folder")
    blocked = invoke("export", trained, "--out", tmp_path / "file.txt" / "model")
    assert blocked.exit_code == 2
    one_line_error(blocked.stderr, "file.txt", "not a writable folder", "choose another --out")


def test_export_of_a_mixed_precision_run_computes_in_float32(
        test_split: dict, sample_archive: Path, cache_dir: Path, tmp_path: Path) -> None:
    run_dir = train_tiny(tmp_path / "mixed", sample_archive, cache_dir,
                         **{"train.mixed_precision": "true", "train.epochs": 1})
    model = load.load_run_model(load.read_run(run_dir))
    assert model.layers[0].dtype_policy.compute_dtype == "float16"
    result = invoke("export", run_dir, "--format", "tflite")  # TFLite has no float16 kernels
    assert result.exit_code == 0, result.output
    assert "computes in float32" in result.stdout
    images = test_split["pixels"].astype(np.float32)
    exported = _run_exported(run_dir / "export" / "model.tflite", "tflite", images)
    in_float16 = model.predict(standardize(test_split["pixels"]), verbose=0)
    np.testing.assert_allclose(exported, in_float16, atol=2e-3)  # float16 rounding only
    config = config_from_dict(load.read_run(run_dir).config, "config.yaml")
    float32 = build_model(config.model, (32, 32, 3), 10)  # the same network, in float32
    assert float32.layers[0].dtype_policy.compute_dtype == "float32"
    float32.set_weights(model.get_weights())
    reference = float32.predict(standardize(test_split["pixels"]), verbose=0)
    np.testing.assert_allclose(exported, reference, atol=1e-4)
    assert (exported.argmax(axis=1) == reference.argmax(axis=1)).all()


# --- the most recent finished run -----------------------------------------------------


def test_bare_commands_use_the_most_recent_finished_run(
        trained: Path, test_split: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> None:
    older = tmp_path / "outputs" / "best-20260101-000000"
    newer = tmp_path / "outputs" / "sweep-x" / "001-lr=0.1"
    unfinished = tmp_path / "outputs" / "best-20260301-000000"
    for folder in (older, newer):
        shutil.copytree(trained, folder, ignore=shutil.ignore_patterns("export", "report.html"))
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text("name: best\n")  # interrupted: no metrics.json
    now = time.time()
    os.utime(older / "metrics.json", (now - 100, now - 100))
    os.utime(newer / "metrics.json", (now - 50, now - 50))
    image = write_pngs(tmp_path / "mine", test_split["pixels"][:1], test_split["labels"][:1],
                       test_split["classes"])[0]
    monkeypatch.chdir(tmp_path)
    said = "using the most recent finished run: outputs/sweep-x/001-lr=0.1"
    report = invoke("report")
    assert report.exit_code == 0 and said in report.stderr, report.output
    assert "report: outputs/sweep-x/001-lr=0.1/report.html" in report.stdout
    assert not (older / "report.html").exists()
    guess = invoke("predict", image.relative_to(tmp_path), "--top", "1")  # no RUN_DIR
    assert guess.exit_code == 0 and said in guess.stderr, guess.output
    top = test_split["classes"][int(test_split["probabilities"][0].argmax())]
    assert guess.stdout.startswith(f"{image.relative_to(tmp_path)}: {top} (")
    drawn = invoke("plot-activations", "--layer", "block1_conv", "--image", "0")
    assert drawn.exit_code == 0 and said in drawn.stderr, drawn.output
    assert "1 figures in outputs/sweep-x/001-lr=0.1/activations" in drawn.stdout
    os.utime(older / "metrics.json", (now, now))  # now the older folder's run is newest
    evaluate = invoke("evaluate")
    assert evaluate.exit_code == 0, evaluate.output
    assert f"using the most recent finished run: {older.relative_to(tmp_path)}" in evaluate.stderr
    recorded = json.loads((older / "metrics.json").read_text())["test_accuracy"]
    assert json.loads((older / "evaluation.json").read_text())["test_accuracy"] == recorded


def test_bare_commands_without_a_finished_run_say_how_to_make_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "outputs" / "interrupted").mkdir(parents=True)
    (tmp_path / "outputs" / "interrupted" / "config.yaml").write_text("name: best\n")
    (tmp_path / "cat.png").write_bytes(b"")
    checked = fresh_process(["plot-activations"], tmp_path)
    assert checked.returncode == 2 and checked.stdout.strip() == "False", checked
    one_line_error(checked.stderr, *NO_RUN)
    monkeypatch.chdir(tmp_path)
    bare = (["evaluate"], ["report"], ["export", "--format", "tflite"], ["predict", "cat.png"])
    for args in bare:
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        one_line_error(result.stderr, *NO_RUN)
