"""Sizes that cannot fit (issue 27): refused from the config, before anything is allocated
or any folder is written, in one line naming the key; the estimate counts the weights
exactly as Keras builds them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import one_line_error, tiny_args
from PIL import Image

from cnnlab.cli import main
from cnnlab.config.files import load_config
from cnnlab.training.model import build_model
from cnnlab.training.sizes import model_sizes


@pytest.mark.parametrize("overrides", [
    {}, {"model.filters": [[8, 8], 16], "model.batch_norm": True},
    {"model.filters": [4, 8], "model.padding": "valid", "model.kernel_size": [5, 3]},
    {"model.global_pool": True, "model.dense": [], "model.filters": [4, 8],
     "model.pool_size": [0, 2]},
])
def test_the_weights_are_counted_as_keras_builds_them(overrides: dict) -> None:
    cfg = load_config("baseline", overrides).model
    for shape in ((32, 32, 3), (20, 24, 1)):
        weights, _ = model_sizes(cfg, shape, 7)
        assert weights == build_model(cfg, shape, 7).count_params()


def image_folder(root: Path) -> Path:
    for split, count in (("train", 6), ("test", 2)):
        for label in ("a", "b"):
            (root / split / label).mkdir(parents=True)
            for i in range(count):
                pixels = np.random.default_rng(i).integers(0, 256, (8, 8, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / label / f"{i}.png")
    return root


@pytest.mark.parametrize(("sets", "key"), [
    (["model.filters=[1000000]"], "model.filters: this run needs more than"),
    (["train.batch_size=100000000000000000000"],
     "train.batch_size: got 100000000000000000000; expected at most 2147483647"),
    (["data.source=imagefolder", "data.path=IMAGES", "data.train_size=8",
      "data.val_size=2", "data.test_size=4", "data.image_size=[60000, 60000]"],
     "data.image_size: this run needs more than"),
], ids=["filters", "batch", "image-size"])
def test_a_size_that_cannot_fit_is_refused_before_any_folder(
        tmp_path: Path, sample_archive: Path, cache_dir: Path, sets: list[str],
        key: str) -> None:
    images = image_folder(tmp_path / "images")
    args = tiny_args(sample_archive, cache_dir, epochs=1)
    args += [a for s in sets for a in ("--set", s.replace("IMAGES", str(images)))]
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["train", "baseline", *args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    one_line_error(result.stderr, key)
    assert not out.exists()
    again = CliRunner().invoke(main, ["train", "baseline", *args[:-2], "--out", str(out)])
    assert again.exit_code == 0, again.output  # the same --out is free for a fixed run


def test_summary_of_a_model_that_cannot_fit(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["summary", "baseline", "--set",
                                       "model.filters=[1000000]"])
    assert result.exit_code == 2, result.output
    one_line_error(result.stderr, "model.filters: this run needs more than",
                   "GB is available; use fewer or narrower filters")


def test_a_sweep_whose_run_cannot_fit_makes_no_folder(tmp_path: Path, sample_archive: Path,
                                                      cache_dir: Path) -> None:
    spec = tmp_path / "big.yaml"
    spec.write_text(f"base: baseline\nset: {{data.path: {sample_archive}, data.cache_dir: "
                    f"{cache_dir}, data.download: false}}\n"
                    "axes: {model.filters: [[4], [1000000]]}\n")
    result = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    one_line_error(result.stderr, "model.filters: this run needs more than")
    assert not (tmp_path / "out").exists()
