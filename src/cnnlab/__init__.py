"""cnnlab: run the classic CNN-on-CIFAR-10 study from YAML configs.

Notebook use::

    import cnnlab
    config = cnnlab.load_config("configs/best.yaml", ["train.epochs=5"])
    run = cnnlab.train(config)
    run.metrics["test_accuracy"]

TensorFlow is imported only when training or building a model, so that loading
and validating a config stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from cnnlab.config.files import load_config  # noqa: E402
from cnnlab.config.schema import Config  # noqa: E402
from cnnlab.errors import CnnlabError, ConfigError, DataError, RunError  # noqa: E402

if TYPE_CHECKING:
    from pathlib import Path

    from cnnlab.runs.load import Run


def train(config: Config, out_dir: str | Path | None = None, **kwargs: Any) -> Run:
    """Train a config and write its run folder (see :func:`cnnlab.training.loop.train`).

    Chooses TensorFlow's CPU settings (oneDNN, threads) from the config first
    (:mod:`cnnlab.backend.runtime`) when TensorFlow is not imported yet."""
    from cnnlab.backend import runtime

    runtime.select(runtime.wanted(config.train))
    from cnnlab.report.run_report import drawer
    from cnnlab.training.loop import train as _train

    return _train(config, out_dir, draw=drawer(kwargs.get("log", print)), **kwargs)


def evaluate(run_dir: str | Path, **kwargs: Any) -> dict[str, Any]:
    """Recompute a finished run's test metrics (see :func:`cnnlab.training.loop.evaluate_run`)."""
    from cnnlab.training.loop import evaluate_run

    return evaluate_run(run_dir, **kwargs)


__all__ = ["CnnlabError", "Config", "ConfigError", "DataError", "RunError", "evaluate",
           "load_config", "train", "__version__"]
