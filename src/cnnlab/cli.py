"""The ``cnnlab`` command: a thin click shell over the Python API.

Known problems (:class:`cnnlab.CnnlabError`) become one line on stderr and exit
code 2; TensorFlow is imported only by the commands that need it, after the
config has been validated.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from cnnlab import __version__
from cnnlab.config import load_config
from cnnlab.errors import CnnlabError

SET_HELP = "Override a config key, value read as YAML (repeatable): --set train.epochs=5"


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"cnnlab: error: {message}", err=True)
    sys.exit(code)


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn known errors into one line + exit 2, Ctrl-C into exit 130."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except CnnlabError as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except Exception as exc:
            from cnnlab.training import TrainingInterrupted

            if isinstance(exc, TrainingInterrupted):
                _fail(str(exc), 130)
            raise

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cnnlab")
def main() -> None:
    """Run CNN-on-CIFAR-10 experiments from YAML configs.

    Example: cnnlab train configs/best.yaml --set train.epochs=5
    """


@main.command()
@click.argument("config")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Run folder (default outputs/<name>-<timestamp>); never overwritten.")
@reports_errors
def train(config: str, overrides: tuple[str, ...], out: str | None) -> None:
    """Train CONFIG (a YAML file or a built-in name) and write a run folder.

    Example: cnnlab train configs/best.yaml --set data.train_size=5000 --out outputs/best
    """
    cfg = load_config(config, overrides)
    from cnnlab.training import train as run_training

    run_training(cfg, out, log=click.echo)


@main.command()
@click.argument("config")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@reports_errors
def summary(config: str, overrides: tuple[str, ...]) -> None:
    """Print the model's layer table and trainable parameters, without loading data.

    Example: cnnlab summary configs/baseline.yaml
    """
    cfg = load_config(config, overrides)
    from cnnlab.data import input_spec

    input_shape, num_classes = input_spec(cfg.data)
    from cnnlab.model import build_model, format_layer_table

    model = build_model(cfg.model, input_shape, num_classes, name=cfg.name)
    click.echo(f"{cfg.name}: input {'x'.join(map(str, input_shape))}, {num_classes} classes")
    click.echo(format_layer_table(model))


@main.command("config")
@click.argument("config")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@reports_errors
def show_config(config: str, overrides: tuple[str, ...]) -> None:
    """Print the fully resolved config (defaults + file + overrides) as YAML.

    Example: cnnlab config configs/best.yaml --set train.batch_size=64
    """
    click.echo(load_config(config, overrides).to_yaml(), nl=False)


@main.command()
@click.argument("run_dir")
@reports_errors
def evaluate(run_dir: str) -> None:
    """Reload RUN_DIR's best model and recompute its test metrics and confusion matrix.

    Example: cnnlab evaluate outputs/best-20261125-120000
    """
    from cnnlab.training import evaluate_run

    result = evaluate_run(run_dir, log=click.echo)
    recorded = result["recorded_test_accuracy"]
    click.echo(f"test accuracy {result['test_accuracy']:.4f} (recorded "
               f"{'n/a' if recorded is None else f'{recorded:.4f}'}), "
               f"test loss {result['test_loss']:.4f}")
    names = result["class_names"]
    width = max(len(n) for n in names)
    click.echo("confusion matrix (rows: true class, columns: predicted):")
    for name, row in zip(names, result["confusion_matrix"], strict=True):
        click.echo(f"  {name:>{width}} " + " ".join(f"{v:5d}" for v in row))


if __name__ == "__main__":
    main()
