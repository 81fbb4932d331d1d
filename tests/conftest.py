"""Shared fixtures: real CIFAR-10 images (the bundled sample, or the shared full copy)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnlab.config import Config, load_config

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "cifar10-sample.tar.gz"
SHARED_CIFAR = REPO.parent / "shared" / "datasets" / "cifar10-jpg.tar.gz"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One decode cache for the whole test session, so each archive is decoded once."""
    return tmp_path_factory.mktemp("cnnlab-cache")


@pytest.fixture(scope="session")
def sample_archive() -> Path:
    assert SAMPLE.exists(), "data/cifar10-sample.tar.gz is missing; run scripts/make_sample.py"
    return SAMPLE


@pytest.fixture(scope="session")
def full_cifar() -> Path:
    """The shared full JPEG copy of CIFAR-10 (skips where ../shared is absent)."""
    if not SHARED_CIFAR.exists():
        pytest.skip(f"{SHARED_CIFAR} not present")
    return SHARED_CIFAR


@pytest.fixture
def tiny_config(cache_dir: Path, sample_archive: Path):
    """Factory: a fast config on a small slice of real CIFAR-10 images.

    tiny_config("best", **{"train.epochs": 1}) -> Config
    """

    def make(base: str | None = "baseline", **overrides: object) -> Config:
        values = {
            "data.path": str(sample_archive), "data.train_size": 300, "data.val_size": 100,
            "data.test_size": 100, "data.cache_dir": str(cache_dir), "data.download": False,
            "train.epochs": 2, "train.verbose": 0,
        }
        values.update(overrides)
        return load_config(base, values)

    return make
