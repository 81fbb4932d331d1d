"""The ``cnnlab`` command: a thin click shell over the Python API.

Known problems (:class:`cnnlab.CnnlabError`) become one line on stderr and exit
code 2; TensorFlow is imported only by the commands that need it, after the
config has been validated.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import re
import signal
import sys
from collections.abc import Callable
from typing import Any

import click

from cnnlab import __version__
from cnnlab.config.files import load_config, reference
from cnnlab.errors import CnnlabError, ConfigError, DataError, Interrupted
from cnnlab.reproduce.sweeps import MAX_REPEATS as STUDY_MAX_REPEATS
from cnnlab.runs.layout import REPORT_FILE, Status
from cnnlab.sweep.repeats import MAX_REPEATS, MIN_REPEATS

SET_HELP = "Override a config key, value read as YAML (repeatable): --set train.epochs=5"


def _fail(message: str, code: int = 2) -> None:
    """One line on stderr, whatever the message holds (a key with a line break, say)."""
    one_line = re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]",
                      lambda m: m.group().encode("unicode_escape").decode("ascii"), message)
    click.echo(f"cnnlab: error: {one_line}", err=True)
    sys.exit(code)


def _loading_tensorflow() -> None:
    """A line before TensorFlow's import, seconds of silence otherwise; only where stderr
    is a terminal, so that piped output and one-line errors stay as they are."""
    if "tensorflow" not in sys.modules and sys.stderr.isatty():
        click.echo("cnnlab: loading TensorFlow...", err=True)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)  # what kill, Slurm, timeout send
_received: list[int] = []


def _stop(signum: int, frame: Any) -> None:
    """SIGTERM and SIGHUP stop a command as Ctrl-C does; a second one ends it at once."""
    _received.append(signum)
    signal.signal(signum, signal.SIG_DFL)
    raise KeyboardInterrupt


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn known errors into one line + exit 2; Ctrl-C, SIGTERM and SIGHUP into an
    interrupted command (everything finished kept) and exit 128 + the signal's number."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for signum in STOP_SIGNALS:
            signal.signal(signum, _stop)
        try:
            return command(*args, **kwargs)
        except CnnlabError as exc:
            _fail(str(exc))
        except (Interrupted, KeyboardInterrupt) as exc:
            code = 128 + (_received[-1] if _received else signal.SIGINT)
            _fail(str(exc) if isinstance(exc, Interrupted) else Status.INTERRUPTED.value, code)
        except BrokenPipeError:  # the reader went away (cnnlab config best | head -1)
            _quiet_exit()
        except OSError as exc:  # a full disk, a read-only or forbidden folder, ...
            _fail(_os_error(exc), 1)

    return wrapper


OS_FIXES = {
    errno.ENOSPC: "free space on that disk", errno.EDQUOT: "free space within your quota",
    errno.EROFS: "the disk is mounted read-only: choose a folder on a writable disk",
    errno.EACCES: "fix its permissions or choose another folder",
    errno.EPERM: "fix its permissions or choose another folder",
    errno.ELOOP: "a symbolic link is in the way: remove the link",
    errno.EIO: "the disk or the file is damaged: check the disk or replace the file",
    errno.ENAMETOOLONG: "use a shorter path",
}


def _os_error(exc: OSError) -> str:
    """One line for an OS error: where, what, the fix for that cause, and ``--resume`` only
    when an interrupted run folder holds the path."""
    from cnnlab.runs.storage import resumable_run

    where = f"{exc.filename}: " if exc.filename else ""
    what = exc.strerror or str(exc) or type(exc).__name__
    fix = OS_FIXES.get(exc.errno) if exc.errno is not None else None
    line = f"{where}{what}" + (f"; {fix}" if fix else f" ({type(exc).__name__})")
    run = resumable_run(exc.filename) if isinstance(exc.filename, str) else None
    if run is not None:
        return f"{line}; then resume the run: cnnlab train CONFIG --out {run} --resume"
    return f"{line}; then run the same command again"


def _quiet_exit() -> None:
    """End without a word (as Unix tools do when their reader is gone), exit 128 + SIGPIPE;
    stdout points at /dev/null so that Python's last flush cannot fail again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass  # not a real file descriptor (tests)
    sys.exit(128 + signal.SIGPIPE)


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
@click.option("--resume", is_flag=True,
              help="Continue the interrupted run in --out from its last completed epoch.")
@reports_errors
def train(config: str, overrides: tuple[str, ...], out: str | None, resume: bool) -> None:
    """Train CONFIG (a YAML file or a built-in name) and write a run folder.

    Example: cnnlab train configs/best.yaml --set data.train_size=5000 --out outputs/best
    """
    cfg = load_config(config, overrides)
    from cnnlab.runs import storage
    from cnnlab.training import arithmetic

    if resume:  # refuse a wrong output folder before TensorFlow is loaded
        storage.check_resumable(out, cfg.to_dict())
        arithmetic.check_resumable(out)
    elif out is not None:
        storage.check_out_dir(out)
    _loading_tensorflow()
    import cnnlab

    run = cnnlab.train(cfg, out, log=click.echo, resume=resume)  # CPU settings, then TF
    page = run.path / REPORT_FILE
    if page.exists():
        click.echo(f"report: {page}")


@main.command()
@click.argument("config")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@reports_errors
def summary(config: str, overrides: tuple[str, ...]) -> None:
    """Print the model's layer table and trainable parameters, without loading data.

    Example: cnnlab summary configs/baseline.yaml
    """
    cfg = load_config(config, overrides)
    from cnnlab.data.dataset import input_spec

    input_shape, num_classes = input_spec(cfg.data)
    from cnnlab.training.sizes import check_model

    check_model(cfg.model, input_shape, num_classes)  # before Keras allocates its weights
    _loading_tensorflow()
    from cnnlab.training.model import build_model, format_layer_table

    model = build_model(cfg.model, input_shape, num_classes, name=cfg.name)
    click.echo(f"{cfg.name}: input {'x'.join(map(str, input_shape))}, {num_classes} classes")
    click.echo(format_layer_table(model))


@main.command("config")
@click.argument("config", required=False)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--keys", is_flag=True,
              help="Print every config key (default, allowed values, meaning) instead.")
@reports_errors
def show_config(config: str | None, overrides: tuple[str, ...], keys: bool) -> None:
    """Print the fully resolved config (defaults + file + overrides) as YAML.

    Example: cnnlab config configs/best.yaml --set train.batch_size=64
    """
    if keys:
        click.echo(reference(), nl=False)
    elif config is None:
        raise click.UsageError("give a CONFIG (a YAML file or a built-in name), or --keys")
    else:
        click.echo(load_config(config, overrides).to_yaml(), nl=False)


def _run_or_latest(run_dir: str | None) -> str:
    """RUN_DIR as given, else the most recent finished run under outputs/ (said on stderr)."""
    if run_dir is not None:
        return run_dir
    from cnnlab.runs.load import latest_run

    latest = latest_run()
    click.echo(f"using the most recent finished run: {latest}", err=True)
    return str(latest)


class JobsType(click.ParamType):
    """``--jobs``: a positive number of runs, or ``auto``."""

    name = "N|auto"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> int | str:
        text = str(value).strip().lower()
        if text == "auto":
            return "auto"
        if text.isdigit() and int(text) >= 1:
            return int(text)
        self.fail(f"{value!r}: give a number of runs (1, 2, ...) or auto", param, ctx)


JOBS = JobsType()


class RepeatsType(click.ParamType):
    """``--repeats``: a positive number of seeds per arm, or ``auto``."""

    name = "N|auto"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> int | str:
        text = str(value).strip().lower()
        if text == "auto":
            return "auto"
        if text.lstrip("-").isdigit():  # a number out of range: the sweep's one-line error
            return int(text)
        self.fail(f"{value!r}: give a number of seeds per arm (1, 2, ...) or auto", param, ctx)


REPEATS = RepeatsType()
def seed_options(most: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--min-repeats and --max-repeats (default ``most``)."""
    def add(command: Callable[..., Any]) -> Callable[..., Any]:
        command = click.option(
            "--max-repeats", type=click.IntRange(min=2), default=None, metavar="N",
            help=f"With --repeats auto: seeds an undecided arm gets at most (default {most})."
        )(command)
        return click.option(
            "--min-repeats", type=click.IntRange(min=2), default=None, metavar="N",
            help=f"With --repeats auto: seeds every arm starts with (default {MIN_REPEATS})."
        )(command)
    return add
TRUST_HELP = "Load a model that carries code (Lambda layers); only for trusted files."


@main.command()
@click.argument("run_dir", required=False)
@click.option("--trust-model", is_flag=True, help=TRUST_HELP)
@reports_errors
def evaluate(run_dir: str | None, trust_model: bool) -> None:
    """Reload RUN_DIR's best model and recompute its test metrics and confusion matrix.
    Without RUN_DIR: the most recent finished run under outputs/.

    Example: cnnlab evaluate outputs/best-20261125-120000
    """
    from cnnlab.runs.load import read_run

    run_dir = _run_or_latest(run_dir)
    read_run(run_dir)  # a folder that is not a finished run fails fast, before TensorFlow loads
    _loading_tensorflow()
    from cnnlab.training.loop import evaluate_run

    result = evaluate_run(run_dir, log=click.echo, trust_model=trust_model)
    recorded = result["recorded_test_accuracy"]
    click.echo(f"test accuracy {result['test_accuracy']:.4f} (recorded "
               f"{'n/a' if recorded is None else f'{recorded:.4f}'}), "
               f"test loss {result['test_loss']:.4f}")
    names = result["class_names"]
    width = max(len(n) for n in names)
    click.echo("confusion matrix (rows: true class, columns: predicted):")
    for name, row in zip(names, result["confusion_matrix"], strict=True):
        click.echo(f"  {name:>{width}} " + " ".join(f"{v:5d}" for v in row))
    click.echo("most confused: " + ", ".join(
        f"{p['true']} as {p['predicted']} ({p['count']})" for p in result["most_confused"]))



@main.command("plot-activations")
@click.argument("run_dir", required=False)
@click.option("--layer", "layers", multiple=True, metavar="NAME",
              help="Layer to show (repeatable); default every convolution layer.")
@click.option("--image", "images", multiple=True, type=int, metavar="INDEX",
              help="Image index in the split (repeatable); default a few fixed images "
                   "of different classes.")
@click.option("--split", type=click.Choice(["test", "val"]), default="test", show_default=True)
@click.option("--method", type=click.Choice(["mask", "gradcam"]), default="mask",
              show_default=True,
              help="mask: feature maps + summed mask; gradcam: Grad-CAM on the last conv layer.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output folder (default RUN_DIR/activations).")
@reports_errors
def plot_activations(run_dir: str | None, layers: tuple[str, ...], images: tuple[int, ...],
                     split: str, method: str, out: str | None) -> None:
    """Draw what RUN_DIR's layers respond to, then rebuild its report.html.
    Without RUN_DIR: the most recent finished run under outputs/.

    Example: cnnlab plot-activations outputs/best --layer block1_conv --image 7
    """
    from cnnlab.runs.load import read_run

    run_dir = _run_or_latest(run_dir)
    read_run(run_dir)  # a folder that is not a finished run fails fast, before TensorFlow loads
    _loading_tensorflow()
    from cnnlab.report.activations import plot_activations as draw
    from cnnlab.report.pages import try_write_report

    written = draw(run_dir, layers, images, split, method, out, log=click.echo)
    click.echo(f"{len(written)} figures in {written[0].parent}" if written else "no figures")
    report = try_write_report(run_dir, log=click.echo)
    if report:
        click.echo(f"report: {report}")


@main.command()
@click.argument("folder", required=False)
@reports_errors
def report(folder: str | None) -> None:
    """(Re)build report.html for a run folder or a sweep folder.
    Without FOLDER: the most recent finished run under outputs/.

    Example: cnnlab report outputs/best
    """
    folder = _run_or_latest(folder)
    from cnnlab.report.pages import write_report

    click.echo(f"report: {write_report(folder, log=click.echo)}")


@main.command()
@click.argument("arguments", nargs=-1, metavar="[RUN_DIR] IMAGE_OR_FOLDER...")
@click.option("--top", type=click.IntRange(min=1), default=3, show_default=True,
              help="How many of the most probable classes to show per image.")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON list of {path, predictions: [{class, probability}]}.")
@click.option("--trust-model", is_flag=True, help=TRUST_HELP)
@reports_errors
def predict(arguments: tuple[str, ...], top: int, as_json: bool, trust_model: bool) -> None:
    """Class probabilities of RUN_DIR's best model for your own image files (PNG, JPEG,
    any size or mode; folders are read recursively), preprocessed as in training.
    RUN_DIR is the first argument when it is a run folder; without it, the most recent
    finished run under outputs/.

    Example: cnnlab predict outputs/best cat.jpg photos/ --top 2
    """
    from cnnlab.inference.predict import predict as predict_images
    from cnnlab.inference.predict import split_arguments

    run_dir, images = split_arguments(arguments)
    _loading_tensorflow()
    failed: list[DataError] = []  # unreadable files: each said on stderr, the rest predicted
    predictions = predict_images(_run_or_latest(run_dir), images, trust_model=trust_model,
                                 failed=failed)
    for error in failed[:-1]:
        click.echo(f"cnnlab: error: {error}", err=True)
    if as_json:
        click.echo(json.dumps([
            {"path": str(p.path),
             "predictions": [{"class": c, "probability": v} for c, v in p.top(top)]}
            for p in predictions], indent=2))
    else:
        for p in predictions:
            click.echo(f"{p.path}: " + ", ".join(f"{c} ({v:.3f})" for c, v in p.top(top)))
    if failed:  # the last one ends the command: exit 2 once everything else is printed
        raise failed[-1]


@main.command()
@click.argument("run_dir", required=False)
@click.option("--format", "fmt", type=click.Choice(["savedmodel", "tflite"]),
              default="savedmodel", show_default=True,
              help="savedmodel: a TensorFlow SavedModel folder; tflite: one .tflite file.")
@click.option("--out", type=click.Path(), default=None,
              help="Where to write it (default RUN_DIR/export/savedmodel or "
                   "RUN_DIR/export/model.tflite); never overwritten.")
@click.option("--trust-model", is_flag=True, help=TRUST_HELP)
@reports_errors
def export(run_dir: str | None, fmt: str, out: str | None, trust_model: bool) -> None:
    """Export RUN_DIR's best model as one self-contained file that takes raw pixels
    (float32, 0-255) and standardizes each image inside; a JSON beside it names the
    classes and the input shape. Without RUN_DIR: the most recent finished run under outputs/.

    Example: cnnlab export outputs/best --format tflite
    """
    from cnnlab.inference.export import export_run

    _loading_tensorflow()
    export_run(_run_or_latest(run_dir), fmt, out, log=click.echo, trust_model=trust_model)


@main.command("sweep")
@click.argument("sweep")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config key in every run (repeatable): --set train.epochs=5")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Sweep folder (default outputs/sweep-<name>-<timestamp>); give the same "
                   "folder again to resume an interrupted sweep.")
@click.option("--dry-run", is_flag=True, help="List the runs and their overrides; train nothing.")
@click.option("--estimate", is_flag=True,
              help="With --dry-run: also estimate the wall time with --jobs, from speeds "
                   "measured here in each run's own CPU settings (takes a minute or two).")
@click.option("--repeats", type=REPEATS, default=None, metavar="N|auto",
              help="Train each arm N times (seeds s..s+N-1, the same split); auto: "
                   f"{MIN_REPEATS} seeds each, then one more per round for each arm still "
                   "undecided (see docs/statistics.md); default: the sweep file's repeats, else 1.")
@seed_options(most=MAX_REPEATS)
@click.option("--budget", default=None, metavar="DURATION",
              help="With --repeats auto: start no round of seeds that would take the sweep "
                   "past this time (e.g. 30m, 1h30m); what is open then is reported open.")
@click.option("--trials", type=int, default=None, metavar="N",
              help="A search (search: in the sweep file): trials in all, instead of the "
                   "file's search.trials; the same --out with more trials continues it.")
@click.option("--margin", type=float, default=None, metavar="X",
              help="Equivalence margin: arms within X of the best (accuracy, 0.01 = 1 point) "
                   "can be called equivalent; default: the sweep file's margin, else 0.01.")
@click.option("--vary-split", is_flag=True, default=None,
              help="Repeats also draw their own train/validation/test split, so intervals "
                   "include data-sampling variance (default: the sweep file's vary_split).")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local",
              show_default=True,
              help="local: on this machine (--jobs for several runs at once); ray: each "
                   'run a Ray task (pip install "cnnlab[ray]"; see docs/scaling.md).')
@click.option("--address", default=None, metavar="ADDRESS",
              help="Ray cluster to join (auto: the running one); default: start Ray here.")
@click.option("--cpus-per-run", type=click.FloatRange(min=0.01), default=None,
              help="CPUs Ray reserves for each run (default 1).")
@click.option("--gpus-per-run", type=click.FloatRange(min=0), default=None,
              help="GPUs Ray reserves for each run (default 0).")
@click.option("--jobs", type=JOBS, default="1", envvar="CNNLAB_JOBS", show_default=True,
              metavar="N|auto",
              help="local: runs trained at once, each in a worker process (default from "
                   "$CNNLAB_JOBS); auto packs them onto the cores by the threads each uses "
                   "and the memory available. Results are the same as with 1.")
@reports_errors
def sweep_command(sweep: str, overrides: tuple[str, ...], out: str | None, dry_run: bool,
                  estimate: bool, repeats: int | str | None, min_repeats: int | None,
                  max_repeats: int | None, budget: str | None, trials: int | None,
                  margin: float | None, vary_split: bool | None,
                  backend: str, address: str | None, cpus_per_run: float,
                  gpus_per_run: float, jobs: int | str) -> None:
    """Run SWEEP: a sweep YAML file or a built-in sweep (batch-size, optimizer, depth,
    regularization, grid, search).

    Example: cnnlab sweep batch-size --set train.epochs=5 --out outputs/bs
    """
    from cnnlab.sweep.executors import local_options
    from cnnlab.sweep.spec import describe, load_sweep, parse_duration

    budget_s = None if budget is None else parse_duration(budget)
    spec = load_sweep(sweep, overrides, repeats, trials, margin, vary_split,
                      (min_repeats, max_repeats))
    if budget_s is not None and not spec.adaptive:
        raise ConfigError("--budget: only with --repeats auto (or repeats: auto in the sweep "
                          "file); a fixed number of repeats runs every seed")
    given = _given_on_command_line("jobs", "address", "cpus_per_run", "gpus_per_run")
    local = None if backend == "ray" else local_options(  # Ray's options alone: refused,
        jobs, [g for g in given if g != "--jobs"])         # a dry run too
    if dry_run:
        click.echo(describe(spec))
        if spec.runs and (estimate or spec.adaptive):  # least and most runs, timed here
            from cnnlab.sweep import estimate as estimates
            from cnnlab.sweep.spec import minimum_runs

            click.echo("\n".join(estimates.lines(
                [r.config for r in minimum_runs(spec)], [r.config for r in spec.runs],
                "in this sweep", jobs)))
        return
    from cnnlab.reproduce.table1 import write_table1
    from cnnlab.sweep.ray import ray_options
    from cnnlab.sweep.run import run_sweep

    options = local or ray_options(address, cpus_per_run, gpus_per_run, "--jobs" in given)
    run_sweep(spec, out, log=click.echo, backend=options, extra=write_table1,
              budget_s=budget_s, progress=sys.stdout.isatty())


def _given_on_command_line(*names: str) -> list[str]:
    """Which of these options the user typed (not defaults or environment), as --names."""
    context = click.get_current_context()
    return ["--" + n.replace("_", "-") for n in names
            if context.get_parameter_source(n) == click.core.ParameterSource.COMMANDLINE]


@main.command()
@click.option("--repeats", type=REPEATS, default="auto", show_default=True, metavar="N|auto",
              help="Seeds per arm of every study (s..s+N-1, each with its own split); auto: "
                   f"{MIN_REPEATS} each, then, for the claims still open, the seeds a power "
                   f"analysis of the first {MIN_REPEATS} asks for (none past "
                   f"{STUDY_MAX_REPEATS}), for the arms their tests still need; with the "
                   "budget left, the maximum for open claims more seeds could still decide.")
@seed_options(most=STUDY_MAX_REPEATS)
@click.option("--budget", default=None, metavar="DURATION",
              help="With --repeats auto: no round of extra seeds starts that would take the "
                   "study past this time, shared out among its sweeps (default 30m).")
@click.option("--margin", type=float, default=None, metavar="X",
              help="Equivalence margin of the comparisons (accuracy; default 0.01).")
@click.option("--same-split", is_flag=True,
              help="Keep one train/validation/test split for every repeat (intervals then "
                   "leave out data-sampling variance).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config key in every run (repeatable), e.g. for a quick pass: "
                   "--set train.epochs=5 --set data.train_size=2000")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Study folder (default outputs/reproduce-<timestamp>); give the same "
                   "folder again to resume.")
@click.option("--dry-run", is_flag=True,
              help="List every run and estimate the total time on this machine; train nothing.")
@click.option("--jobs", type=JOBS, default="auto", envvar="CNNLAB_JOBS", show_default=True,
              metavar="N|auto", help="Runs trained at once, as for cnnlab sweep (results are "
                                     "the same for every value).")
@reports_errors
def reproduce(repeats: int | str, min_repeats: int | None, max_repeats: int | None,
              budget: str | None, margin: float | None, same_split: bool,
              overrides: tuple[str, ...], out: str | None, dry_run: bool,
              jobs: int | str) -> None:
    """Run the whole reference study (every section of the report) and write one report
    page with a verdict on each of its claims.

    Example: cnnlab reproduce --repeats 2 --set train.epochs=5 --out outputs/study
    """
    from cnnlab.reproduce import study
    from cnnlab.sweep.spec import parse_duration

    if budget is not None and repeats != "auto":
        raise ConfigError("--budget: only with --repeats auto; a fixed number of repeats "
                          "runs every seed")
    budget_s = parse_duration(budget or study.DEFAULT_BUDGET)
    plan = study.plan(overrides, repeats, (min_repeats, max_repeats), budget_s, margin,
                      vary_split=not same_split)
    if dry_run:
        study.dry_run(plan, log=click.echo, jobs=jobs)
        return
    study.run(plan, out, log=click.echo, jobs=jobs, progress=sys.stdout.isatty())


@main.command()
@click.argument("folders", nargs=-1, required=True)
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output folder (default outputs/compare-<timestamp>); never overwritten.")
@reports_errors
def compare(folders: tuple[str, ...], out: str | None) -> None:
    """Overlay the curves of finished runs: run folders, or every run in sweep folders.

    Example: cnnlab compare outputs/sweep-optimizer-20261125-120000 outputs/best --out outputs/cmp
    """
    from cnnlab.reproduce.table1 import write_table1
    from cnnlab.sweep.compare import compare as compare_runs

    compare_runs(folders, out, log=click.echo, extra=write_table1)


if __name__ == "__main__":
    main()
