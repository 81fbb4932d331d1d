"""Activation maps: feature maps, the summed mask, Grad-CAM, plot-activations and its errors."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import assert_png
from PIL import Image

from cnnlab.backend.tf import keras
from cnnlab.cli import main
from cnnlab.config.files import load_config
from cnnlab.config.schema import ModelConfig
from cnnlab.errors import ConfigError, RunError
from cnnlab.inference import activations as act
from cnnlab.report.activations import display_image, plot_activations
from cnnlab.runs import load
from cnnlab.training.model import build_model


def _train(out: Path, base: str, **overrides: object) -> Path:
    from cnnlab.training.loop import train

    cfg = load_config(base, {"data.train_size": 200, "data.val_size": 60, "data.test_size": 60,
                             "data.download": False, "train.epochs": 1, "train.verbose": 0,
                             **overrides})
    return train(cfg, out, log=lambda _: None).path


@pytest.fixture(scope="module")
def reference_runs(tmp_path_factory, cache_dir, sample_archive) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("act-runs")
    data = {"data.path": str(sample_archive), "data.cache_dir": str(cache_dir)}
    return {base: _train(root / base, base, **data) for base in ("baseline", "best")}


@pytest.fixture(scope="module")
def gray_folder(tmp_path_factory, sample_archive) -> Path:
    """A grayscale PNG tree (3 classes) made from real CIFAR-10 images."""
    root = tmp_path_factory.mktemp("gray")
    per_split = {"train": 40, "test": 15}
    with tarfile.open(sample_archive) as tar:
        for member in tar:
            split, cls, name = member.name.split("/")[-3:]
            if cls not in ("cat", "ship", "truck") or not member.isfile():
                continue
            folder = root / split / cls
            if folder.exists() and len(list(folder.iterdir())) >= per_split[split]:
                continue
            folder.mkdir(parents=True, exist_ok=True)
            with Image.open(tar.extractfile(member)) as img:
                img.convert("L").save(folder / f"{Path(name).stem}.png")
    return root


@pytest.mark.parametrize("base, filters", [("baseline", [8]), ("best", [8, 16, 32])])
def test_maps_for_reference_models(reference_runs, base, filters):
    run = load.read_run(reference_runs[base])
    model = load.load_run_model(run)
    images, labels, _ = act.load_split(run, "test")
    layers = act.check_layers(model, [])
    assert layers == [f"block{i}_conv" for i in range(1, len(filters) + 1)]
    chosen = act.default_images(labels)
    assert len({int(labels[i]) for i in chosen}) == len(chosen) == 3
    size = 32
    for layer, count in zip(layers, filters, strict=True):
        maps = act.feature_maps(model, layer, images[chosen])
        assert maps.shape == (3, size, size, count) and (maps >= 0).all()  # post-ReLU
        masks = act.summed_mask(maps, (32, 32))
        assert masks.shape == (3, 32, 32) and masks.min() >= 0 and masks.max() <= 1
        assert np.allclose(masks.max(axis=(1, 2)), 1.0)
        size //= 2
    written = plot_activations(reference_runs[base], layers=[layers[-1]])
    assert [p.name for p in written] == [f"{layers[-1]}-test{i:04d}.png" for i in chosen]
    with Image.open(written[0]) as img:
        assert img.width > 400 and img.height > 300


def test_default_images_are_fixed_and_of_different_classes():
    labels = np.array([4, 4, 1, 4, 7, 1, 2])
    assert act.default_images(labels) == [0, 2, 4]
    assert act.default_images(labels, count=4) == [0, 2, 4, 6]


def test_grayscale_image_folder_run(tmp_path, gray_folder, cache_dir):
    run = _train(tmp_path / "gray", "best", **{
        "data.source": "imagefolder", "data.path": str(gray_folder), "data.cache_dir":
        str(cache_dir), "data.train_size": 90, "data.val_size": 30, "data.test_size": 30})
    images, _, class_names = act.load_split(load.read_run(run), "test")
    assert images.shape[1:] == (32, 32, 1)
    assert class_names == ("cat", "ship", "truck")
    assert display_image(images[0]).shape == (32, 32)
    written = plot_activations(run, layers=["block1_conv", "block2_pool"], images=[0, 29])
    assert {p.name for p in written} == {"block1_conv-test0000.png", "block1_conv-test0029.png",
                                        "block2_pool-test0000.png", "block2_pool-test0029.png"}
    heat = plot_activations(run, method="gradcam", images=[3], out=tmp_path / "cam")
    assert [p.name for p in heat] == ["gradcam-block3_conv-test0003.png"]
    assert_png(heat[0], (600, 200), aspect=(2.0, 4.5))  # input, heat map, overlay in a row


def test_summed_mask_matches_hand_computation():
    maps = np.zeros((1, 2, 2, 2), dtype=np.float32)
    maps[0, ..., 0] = [[1, 0], [2, -1]]
    maps[0, ..., 1] = [[3, 0], [0, 1]]
    # ReLU, sum over channels: [[4, 0], [2, 1]]; divided by the maximum 4.
    small = np.array([[1.0, 0.0], [0.5, 0.25]])
    assert np.allclose(act.summed_mask(maps, (2, 2))[0], small)
    # Bilinear 2 -> 4 with half-pixel centres: output pixels sit at -0.25, 0.25, 0.75, 1.25
    # in input coordinates (edges clamped), so weights are these rows.
    w = np.array([[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    assert np.allclose(act.summed_mask(maps, (4, 4))[0], w @ small @ w.T, atol=1e-6)
    zero = act.summed_mask(np.zeros((2, 3, 3, 4), dtype=np.float32), (6, 6))
    assert zero.shape == (2, 6, 6) and not zero.any() and np.isfinite(zero).all()


def test_feature_maps_of_a_hand_set_layer():
    model = build_model(ModelConfig(filters=(2,), kernel_size=1, pool_size=0, dense=()),
                        (2, 2, 1), 2)
    model.get_layer("block1_conv").set_weights(
        [np.array([1.0, -2.0]).reshape(1, 1, 1, 2), np.zeros(2)])
    image = np.array([[1.0, -1.0], [0.5, 0.0]]).reshape(1, 2, 2, 1)
    maps = act.feature_maps(model, "block1_conv", image)
    assert np.allclose(maps[0, ..., 0], [[1, 0], [0.5, 0]])  # relu(x)
    assert np.allclose(maps[0, ..., 1], [[0, 2], [0, 0]])  # relu(-2x)
    # summed: [[1, 2], [0.5, 0]] / 2
    assert np.allclose(act.summed_mask(maps, (2, 2))[0], [[0.5, 1], [0.25, 0]])


def _patch_model() -> keras.Model:
    """8x8 grayscale; filter 0 = relu(x) (bright), filter 1 = relu(-x) (dark). The class
    is 'right' when the right half is bright: logit(right) = bright response summed over the
    right half, logit(left) = the same over the left half; the dark filter decides nothing."""
    model = build_model(ModelConfig(filters=(2,), kernel_size=1, pool_size=0, dense=()),
                        (8, 8, 1), 2)
    model.get_layer("block1_conv").set_weights(
        [np.array([1.0, -1.0]).reshape(1, 1, 1, 2), np.zeros(2)])
    kernel = np.zeros((8, 8, 2, 2))
    kernel[:, :4, 0, 0] = 1.0  # class 0 "left": bright on the left
    kernel[:, 4:, 0, 1] = 1.0  # class 1 "right": bright on the right
    model.get_layer("output").set_weights([kernel.reshape(128, 2), np.zeros(2)])
    return model


def test_grad_cam_highlights_the_deciding_region():
    model = _patch_model()
    image = np.zeros((1, 8, 8, 1), dtype=np.float32)
    image[0, 2:4, 5:7] = 3.0  # bright patch, right half: decides the class
    image[0, 4:6, 1:3] = -3.0  # dark patch, left half: strong response, but irrelevant
    heat, predicted = act.grad_cam(model, image)
    assert predicted.tolist() == [1]
    peak = np.unravel_index(heat[0].argmax(), heat[0].shape)
    assert peak[1] >= 4 and 2 <= peak[0] < 4
    assert heat[0, :, 4:].sum() > 0 and heat[0, :, :4].max() == 0
    # the summed mask, by contrast, lights up both patches
    mask = act.summed_mask(act.feature_maps(model, "block1_conv", image), (8, 8))
    assert mask[0, 4:6, 1:3].min() == 1.0 and mask[0, 2:4, 5:7].min() == 1.0


def test_unknown_layer_and_bad_image_index(reference_runs):
    model = load.load_run_model(load.read_run(reference_runs["best"]))
    with pytest.raises(ConfigError, match="valid layers: block1_conv, block1_pool, block2"):
        act.check_layers(model, ["block9_conv"])
    with pytest.raises(ConfigError, match=r"has 60 images \(0..59\)"):
        act.check_images([60], "test", 60)
    with pytest.raises(RunError, match="not a finished run"):
        load.read_run(reference_runs["best"].parent)


def _cli_error(args: list[str]) -> str:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    return lines[0]


def test_cli_errors(tmp_path, reference_runs):
    run = str(reference_runs["baseline"])
    assert "no such run folder" in _cli_error(["plot-activations", str(tmp_path / "nope")])
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text("name: x\n")
    assert "not a finished run" in _cli_error(["plot-activations", str(unfinished)])
    line = _cli_error(["plot-activations", run, "--layer", "conv1"])
    assert "--layer conv1" in line
    assert "valid layers: block1_conv, block1_dropout, block1_pool" in line
    line = _cli_error(["plot-activations", run, "--image", "60"])
    assert "--image 60: out of range" in line and "(0..59)" in line
    assert "--image -1" in _cli_error(["plot-activations", run, "--image", "-1"])


def test_cli_draws_and_rebuilds_the_report(tmp_path, reference_runs):
    run = reference_runs["baseline"]
    result = CliRunner().invoke(main, ["plot-activations", str(run), "--image", "5",
                                       "--out", str(tmp_path / "maps")])
    assert result.exit_code == 0, result.output
    drawn = assert_png(tmp_path / "maps" / "block1_conv-test0005.png", (500, 350))
    assert drawn.shape[1] > drawn.shape[0]  # image and mask on the left, 8 maps beside them
    result = CliRunner().invoke(main, ["plot-activations", str(run), "--method", "gradcam",
                                       "--image", "5", "--image", "6"])
    assert result.exit_code == 0, result.output
    page = (run / "report.html").read_text()
    assert 'data-file="gradcam-block1_conv-test0006.png"' in page  # drawn on the page
    for index in (5, 6):
        assert_png(run / "activations" / f"gradcam-block1_conv-test{index:04d}.png", (600, 200),
                   aspect=(2.0, 4.5))
