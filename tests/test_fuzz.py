"""A fuzzer on every input (issue 17): property-based tests with Hypothesis.

Inputs: config YAML files (known and unknown keys, any YAML value, random text and bytes
as a file), ``--set KEY=VALUE`` strings, sweep files, small generated image folders
and tar archives used as ``data.path`` with ``data.source: imagefolder``, and (issue 27)
finished run and sweep folders with one file damaged (cut short, garbage, wrong types,
not UTF-8, a symbolic link out of the folder, a folder in its place, deleted), given to
``report``, ``evaluate``, ``compare`` and a resumed ``sweep``: besides the property
below, the untouched run of a damaged sweep keeps its record, and what the links point
to is never changed.

The property, for every input: the command either works (exit 0) or ends with exit code 2
and exactly one line on stderr, ``cnnlab: error: ...``; never a traceback, another exit
code, a hang, or a file written outside ``--out`` (each example runs in a fresh working
folder with ``HOME`` inside it, and the folder's files are compared before and after).

The commands run in-process through click's CliRunner. The default run is bounded (the
``ci`` profile: no example database, no deadline, a bounded ``max_examples`` per test);
every property also has a twin marked ``slow`` with about ten times the examples
(``python -m pytest -m slow tests/test_fuzz.py``). ``--hypothesis-show-statistics``
prints how many examples each property ran and how many exited 0 and 2. Hand-picked
hostile inputs (``*_hostile``) run every time, beside the random ones.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import tarfile
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from helpers import tiny_sets
from hypothesis import HealthCheck, currently_in_test_context, event, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from cnnlab.cli import main
from cnnlab.config.schema import ALL_KEYS, FIELDS, SECTIONS
from cnnlab.runs import layout, storage
from cnnlab.sweep.spec import SWEEP_KEYS

settings.register_profile(
    "ci", max_examples=50, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.large_base_example])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

HANG_S = 60  # one in-process command longer than this is a hang
# What the libraries write into $HOME the first time the process imports them (Keras'
# settings file, Matplotlib's font cache): not cnnlab's writes, so not counted.
LIBRARY_FILES = ("home/.keras/keras.json", "home/.cache/matplotlib/", "home/.config/matplotlib/")


# --- running a command and checking the property ----------------------------------------


class Hang(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise Hang(f"command still running after {HANG_S} s")


def tree(folder: Path) -> dict[str, int]:
    """Every file under folder (relative path -> size)."""
    return {p.relative_to(folder).as_posix(): p.lstat().st_size
            for p in folder.rglob("*") if p.is_file() or p.is_symlink()}


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    """A fresh working folder (also $HOME) for one example, removed after."""
    with tempfile.TemporaryDirectory(prefix="cnnlab-fuzz-") as name:
        folder = Path(name).resolve()
        (folder / "home").mkdir()
        with contextlib.chdir(folder):
            yield folder


def run_cli(args: list[str], folder: Path, out: Path | None = None) -> Any:
    """Run ``cnnlab ARGS`` in-process in ``folder`` and check the property:
    exit 0, or exit 2 with exactly one 'cnnlab: error: ' line on stderr; no traceback, no
    hang, and no file added, removed or changed in ``folder`` outside ``out``."""
    before = tree(folder)
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGALRM)}
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HANG_S)
    try:
        result = CliRunner().invoke(main, args, env={"HOME": str(folder / "home")})
    finally:
        signal.alarm(0)
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    shown = f"cnnlab {' '.join(map(repr, args))}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        lines = traceback.format_exception(*result.exc_info)
        raise AssertionError(f"{shown}: exit {result.exit_code}, traceback; last line: "
                             f"{lines[-1].strip()}\n{''.join(lines)}")
    assert result.exit_code in (0, 2), (
        f"{shown}: exit {result.exit_code}\nstderr: {result.stderr}")
    assert "Traceback" not in result.stderr, f"{shown}: {result.stderr}"
    if result.exit_code == 2:
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("cnnlab: error: "), (
            f"{shown}: exit 2 but stderr is not one 'cnnlab: error: ' line: {result.stderr!r}")
    if currently_in_test_context():  # counted in --hypothesis-show-statistics
        event(f"exit {result.exit_code}")
    after = tree(folder)
    outside = out.relative_to(folder).as_posix() + "/" if out else None
    changed = sorted(k for k in set(before) | set(after)
                     if before.get(k) != after.get(k)
                     and not (outside and k.startswith(outside))
                     and not k.startswith(LIBRARY_FILES))
    assert not changed, f"{shown}: files written outside --out: {changed}"
    return result


# --- strategies ------------------------------------------------------------------------

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | TEXT
           | st.sampled_from(["auto", "null", "~", "1e-3", ".inf", "-.nan", "0x10", "yes",
                              "2026-11-27", "", " ", "\n", "a\nb"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(TEXT, inner, max_size=3), max_leaves=10)
# values a config key plausibly takes: small, of the right kind, often valid
PLAUSIBLE = st.sampled_from([
    None, True, False, 0, 1, 2, 3, -1, 0.0, 0.5, 1.0, 1e-3, "auto", "adam", "adamw", "sgd",
    "sgd_momentum", "rmsprop", "same", "valid", "relu", "gelu", "imagefolder", "cifar10",
    "max", "average", "cosine", "step", "plateau", "mirrored", "none", [8], [4, 8],
    [[4, 4]], [[4, 4], 8], [], [8, 8], [3, 5], ["same", "valid"], "x", "run-1"])
SMALL_VALUES = PLAUSIBLE | st.recursive(
    st.none() | st.booleans() | st.integers(-3, 40) | st.floats(-2, 2) | TEXT,
    lambda inner: st.lists(inner, max_size=3), max_leaves=6)
DOTTED = st.sampled_from([k for k in ALL_KEYS if k != "name"]) | TEXT


# a value of the right kind for some keys, so that many sweeps get through to expansion
VALUE_FOR = {
    "train.batch_size": st.integers(0, 64), "train.learning_rate": st.floats(0, 1),
    "model.filters": st.lists(st.integers(1, 8), min_size=1, max_size=3),
    "train.optimizer": st.sampled_from(["sgd", "sgd_momentum", "adam", "adamw", "rmsprop"]),
    "model.dense": st.lists(st.integers(1, 8), max_size=2), "seed": st.integers(0, 5),
    "train.epochs": st.integers(1, 3), "model.kernel_size": st.integers(1, 5),
    "train.momentum": st.none() | st.floats(0, 0.99), "data.split_seed": st.integers(0, 3),
    "data.train_size": st.integers(1, 100), "model.l2": st.floats(0, 0.1),
    "model.batch_norm": st.booleans(), "train.schedule": st.sampled_from(["constant", "step"]),
}
KINDLY_KEYED = st.lists(st.sampled_from(sorted(VALUE_FOR)), unique=True, max_size=2)


def kindly(lists: bool) -> st.SearchStrategy[dict[str, Any]]:
    """{key: value} (or {key: [values]}) with values of the key's kind."""
    return KINDLY_KEYED.flatmap(lambda keys: st.fixed_dictionaries(
        {k: st.lists(VALUE_FOR[k], min_size=1, max_size=3) if lists else VALUE_FOR[k]
         for k in keys}))



def section_keys(section: str) -> st.SearchStrategy[Any]:
    return st.sampled_from(sorted(FIELDS[section])) | TEXT | st.integers(-2, 2) | st.none()


def config_mappings(values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict]:
    """A config as a nested mapping of known and unknown keys."""
    def section(name: str) -> st.SearchStrategy[Any]:
        return (st.dictionaries(section_keys(name), values, max_size=4)
                | st.dictionaries(section_keys(name), values, max_size=4)
                | values)

    entries = st.one_of(
        *[st.tuples(st.just(s), section(s)) for s in SECTIONS],
        st.tuples(st.sampled_from(["name", "seed"]), values),
        st.tuples(TEXT | st.integers() | st.none() | st.booleans(), values))
    return st.lists(entries, max_size=6).map(dict)


def dump(value: Any) -> bytes:
    return yaml.safe_dump(value, allow_unicode=True, sort_keys=False).encode("utf-8")


CONFIG_FILES = st.one_of(
    config_mappings(PLAUSIBLE | VALUES).map(dump),
    config_mappings(PLAUSIBLE).map(dump),
    VALUES.map(dump),
    st.text().map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=64))

# --- (1) config files -----------------------------------------------------------------


def check_config_file(document: bytes) -> None:
    with workdir() as folder:
        (folder / "c.yaml").write_bytes(document)
        run_cli(["config", "c.yaml"], folder)


EXAMPLES_CONFIG = [
    b"\xff\xfe\x00 not utf-8",                       # invalid UTF-8
    b'"a\\nb": 1\n',                                # a key with a newline
    b"model: {filters: &a [*a]}\n",                 # a recursive alias
    b"? [1, 2]\n: 3\n",                             # an unhashable key
    b"train: !!python/object:os.system {}\n",       # an unsafe tag
    b"seed: 2026-11-27\nname: !!binary aGVsbG8=\n",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
]


@pytest.mark.parametrize("document", EXAMPLES_CONFIG)
def test_config_file_hostile(document: bytes) -> None:
    check_config_file(document)


def billion_laughs(levels: int) -> bytes:
    """``seed:`` as nested YAML aliases: a few hundred bytes that stand for 10**levels items."""
    value = "&a0 [" + ", ".join(["lol"] * 10) + "]"
    for i in range(1, levels):
        value = f"&a{i} [" + ", ".join([value] + [f"*a{i - 1}"] * 9) + "]"
    return f"seed: {value}\n".encode()


def test_config_file_billion_laughs(tmp_path: Path) -> None:
    """A YAML alias bomb (10**8 items in 1 kB): refused in one line, in bounded memory and
    time. Run in a child process limited to 1 GiB of address space, so that a failure
    cannot take the machine's memory."""
    import resource
    import subprocess
    import sys

    (tmp_path / "c.yaml").write_bytes(billion_laughs(8))

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))

    done = subprocess.run([sys.executable, "-m", "cnnlab", "config", "c.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=HANG_S, preexec_fn=limit)
    last = (done.stderr.strip().splitlines() or [""])[-1]
    assert done.returncode == 2 and "Traceback" not in done.stderr, (
        f"exit {done.returncode}, last line: {last[:300]}")
    assert len(done.stderr.splitlines()) == 1 and last.startswith("cnnlab: error: "), last[:300]


test_config_file = settings(max_examples=120)(given(CONFIG_FILES)(check_config_file))
test_config_file_slow = pytest.mark.slow(settings(max_examples=2000)(
    given(CONFIG_FILES)(check_config_file)))


# --- (1b) config files through `cnnlab summary` (builds the Keras model) ----------------

SUMMARY_DATA = st.fixed_dictionaries({}, optional={
    "source": st.sampled_from(["cifar10", "imagefolder", "other"]),
    "path": st.sampled_from([None, "missing", "c.yaml", "", "missing.tar.gz"]),
    "image_size": st.sampled_from([None, [8, 8], [0, 4], [4], "x"]),
    "channels": st.sampled_from([None, 1, 3, 4, 2])})
MODEL_VALUES = (PLAUSIBLE | st.integers(0, 6)
                | st.lists(st.integers(1, 6) | st.lists(st.integers(1, 6), min_size=1,
                                                         max_size=2), min_size=1, max_size=5))
SUMMARY_MODEL = st.builds(
    lambda filters, more: {"filters": filters, **more},
    st.lists(st.integers(1, 6) | st.lists(st.integers(1, 6), min_size=1, max_size=2),
             min_size=1, max_size=6),
    st.dictionaries(st.sampled_from(sorted(set(FIELDS["model"]) - {"filters"})), MODEL_VALUES,
                    max_size=3))
SUMMARY_FILES = st.builds(
    lambda top, model, data: dump({**top, "model": model, **({"data": data} if data else {})}),
    st.fixed_dictionaries({}, optional={"name": st.sampled_from(["s", "run-1", "a b"]),
                                        "seed": st.integers(-1, 3)}),
    SUMMARY_MODEL, st.just({}) | st.just({}) | SUMMARY_DATA)


def check_summary(document: bytes) -> None:
    with workdir() as folder:
        (folder / "c.yaml").write_bytes(document)
        run_cli(["summary", "c.yaml"], folder)


EXAMPLES_SUMMARY = [
    b"model: {filters: [4, 4, 4, 4, 4, 4, 4]}\n",   # pools the image down to nothing
    b"model: {filters: [4], kernel_size: 40}\n",
    b"model: {filters: [4], pool_size: [0], kernel_size: 33, padding: valid}\n",
    b"model: {filters: [[4, 4]], kernel_size: [[3, 5]], activation: [[relu, gelu]]}\n",
]

@pytest.mark.parametrize("document", EXAMPLES_SUMMARY)
def test_summary_hostile(document: bytes) -> None:
    check_summary(document)


test_summary = settings(max_examples=80)(given(SUMMARY_FILES)(check_summary))
test_summary_slow = pytest.mark.slow(settings(max_examples=300)(
    given(SUMMARY_FILES)(check_summary)))


# --- (2) --set KEY=VALUE ----------------------------------------------------------------


def _set_text(key: str, sep: str, value: str) -> str:
    return f"{key}{sep}{value}"


SET_VALUES = (SMALL_VALUES | VALUES).map(
    lambda v: yaml.safe_dump(v, default_flow_style=True, width=10**6).strip()
    .removesuffix("...").strip()) | TEXT
KIND_SETS = st.sampled_from(sorted(VALUE_FOR)).flatmap(lambda key: VALUE_FOR[key].map(
    lambda v: f"{key}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...')}"))
SETS = (KIND_SETS | st.builds(_set_text, st.sampled_from(ALL_KEYS) | TEXT,
                              st.sampled_from(["=", "=", "", "==", " = "]), SET_VALUES) | TEXT)


def check_set(overrides: list[str]) -> None:
    with workdir() as folder:
        args = ["config", "best"]
        for text in overrides:
            args += ["--set", text]
        run_cli(args, folder)


EXAMPLES_SET = [["a\nb=1"], ["train.epochs=[1"], ["=5"], ["data.path=\x00"],
                ["model.filters=&a [*a]"], ["train.epochs=!!python/name:os.system"],
                ["seed=99999999999999999999999"], ["data=3"], ["model={}"],
                ["model=null", "model.batch_norm=false"], ["train=5", "train.epochs=1"]]


@pytest.mark.parametrize("overrides", EXAMPLES_SET)
def test_set_hostile(overrides: list[str]) -> None:
    check_set(overrides)


test_set = settings(max_examples=150)(given(st.lists(SETS, min_size=1, max_size=3))(check_set))
test_set_slow = pytest.mark.slow(settings(max_examples=2000)(
    given(st.lists(SETS, min_size=1, max_size=3))(check_set)))


# --- (3) sweep files ------------------------------------------------------------------

KIND_SWEEPS = st.fixed_dictionaries({"axes": kindly(lists=True)}, optional={
    "base": st.sampled_from([None, "best", "baseline", "b.yaml"]),
    "set": kindly(lists=False),
    "variants": st.dictionaries(st.sampled_from(["a", "b", "adam"]), kindly(lists=False),
                                min_size=1, max_size=2),
    "repeats": st.integers(1, 3),
    "select_by": st.sampled_from(["best_val_accuracy", "final_val_loss"]),
    "name": st.sampled_from(["fz", "x"]), "description": TEXT,
}).map(dump)
OVERRIDES = st.dictionaries(DOTTED, SMALL_VALUES, max_size=3) | st.dictionaries(
    st.sampled_from(list(SECTIONS)), st.dictionaries(TEXT, SMALL_VALUES, max_size=2),
    max_size=2)
SWEEP_FIELDS = {
    "name": st.sampled_from(["fz", "my-sweep", "", "a b", "x/y"]) | SCALARS,
    "description": SCALARS,
    "base": (st.sampled_from([None, "best", "baseline", "b.yaml", "bad.yaml", "missing.yaml",
                              "configs", "/nonexistent.yaml"])
             | config_mappings(PLAUSIBLE) | SCALARS),
    "set": OVERRIDES | SCALARS,
    "axes": st.dictionaries(DOTTED, st.lists(SMALL_VALUES, max_size=3) | SCALARS, max_size=2)
    | SCALARS,
    "variants": st.dictionaries(st.sampled_from(["a", "b", "adam", "x y", ""]) | TEXT,
                                OVERRIDES | SCALARS, max_size=2) | SCALARS,
    "select_by": st.sampled_from(["best_val_accuracy", "final_val_loss", "accuracy"])
    | SCALARS,
    "repeats": st.integers(-2, 4) | st.booleans() | st.none() | st.floats() | TEXT,
    "margin": st.floats() | st.integers(-1, 2) | st.booleans() | SCALARS,
    "vary_split": st.booleans() | SCALARS,
    "search": st.fixed_dictionaries({}, optional={
        "strategy": st.sampled_from(["grid", "random", "tpe", "bayes"]) | SCALARS,
        "trials": st.integers(-1, 3) | SCALARS, "metric": st.sampled_from(
            ["best_val_accuracy", "final_val_loss", "loss"]) | SCALARS,
        "direction": st.sampled_from(["maximize", "minimize", "up"]) | SCALARS,
        "pruner": st.sampled_from(["none", "median", "hyperband", "asha"]) | SCALARS,
        "seed": st.integers(-1, 3) | SCALARS, "trails": SCALARS}) | SCALARS,
    "space": st.dictionaries(DOTTED, st.fixed_dictionaries({}, optional={
        "low": st.integers(-1, 3) | st.floats() | SCALARS,
        "high": st.integers(-1, 3) | st.floats() | SCALARS,
        "log": st.booleans() | SCALARS, "step": st.integers(-1, 2) | st.floats() | SCALARS,
        "choices": st.lists(SMALL_VALUES, max_size=3) | SCALARS}) | SCALARS, max_size=2)
    | SCALARS,
}
SWEEPS = (KIND_SWEEPS | KIND_SWEEPS | st.binary(max_size=32)
          | st.fixed_dictionaries({}, optional={
              **SWEEP_FIELDS, "unknown": SCALARS, "axis": SCALARS}).map(dump))
SWEEP_SETS = st.lists(KIND_SETS | st.builds(_set_text, st.sampled_from(ALL_KEYS) | TEXT,
                                            st.just("="), SET_VALUES), max_size=1)
assert set(SWEEP_FIELDS) == set(SWEEP_KEYS)


def check_sweep(document: bytes, overrides: list[str]) -> None:
    with workdir() as folder:
        (folder / "s.yaml").write_bytes(document)
        (folder / "b.yaml").write_text("train: {epochs: 1}\nmodel: {filters: [4]}\n")
        (folder / "bad.yaml").write_text("train: {epochs: 0}\n")
        (folder / "configs").mkdir()
        args = ["sweep", "s.yaml", "--dry-run"]
        for text in overrides:
            args += ["--set", text]
        run_cli(args, folder)


EXAMPLES_SWEEP = [
    (b"axes: {train.epochs: [1, 2]}\nrepeats: 2\n", []),
    (b"axes: {train.epochs: [1, 2]}\nrepeats: 2\nmargin: .nan\nvary_split: true\n", []),
    (b"axes: {train.epochs: [1, 2]}\n", ["train.epochs=3"]),
    (b"variants: {\"a\\nb\": {}}\n", []),
    (b'axes: {"x\\ny": [1]}\n', []),
    (b"base: {train: {epochs: 0}}\nvariants: {a: {}}\n", []),
    (b"axes: {model.filters: [[8], [8, 16]]}\nbase: best\n", []),
    (b"\xff\xfe", []),
    (b"axes: {train.epochs: [1]}\nset: {seed: null}\n", []),
    (b"variants: {a: {}}\n", ["seed=null"]),
    (b"variants: {a: {}}\n", ["seed=auto"]),
    (b"variants: {a: {}}\nset: {seed: [1]}\n", []),
    (b"search: {strategy: tpe, trials: 3}\nspace: {train.learning_rate: {low: .nan, "
     b"high: 1.0}}\n", []),
    (b"search: {strategy: random}\nspace: {train.epochs: {low: 1, high: .inf}}\n", []),
    (b"search: {strategy: grid}\nspace: {train.batch_size: {choices: [8, 16]}}\n", []),
    (b"search: {}\nspace: {model.filters: {choices: [[8], []]}}\n", []),
    (b"search: {trials: 2}\nspace: {train.epochs: {low: 1, high: 3, step: 0.5}}\n", []),
]


@pytest.mark.parametrize(("document", "overrides"), EXAMPLES_SWEEP)
def test_sweep_hostile(document: bytes, overrides: list[str]) -> None:
    check_sweep(document, overrides)


test_sweep = settings(max_examples=120)(given(SWEEPS, SWEEP_SETS)(check_sweep))
test_sweep_slow = pytest.mark.slow(settings(max_examples=1500)(
    given(SWEEPS, SWEEP_SETS)(check_sweep)))


# --- (4) image folders and archives as data.path --------------------------------------

MODES = ["L", "RGB", "RGBA", "P", "LA", "I;16", "CMYK", "1", "I", "F"]
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".bmp": "BMP", ".gif": "GIF", ".webp": "WEBP"}


def encode(size: tuple[int, int], mode: str, suffix: str, seed: int) -> bytes:
    """An image of ``size`` (width, height) in ``mode``, saved as ``suffix`` (falling back
    to the mode the format can hold when it cannot save ``mode``)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")
    img = img.convert(mode) if mode not in ("I;16", "I", "F") else img.convert("L").convert(mode)
    buffer = io.BytesIO()
    try:
        img.save(buffer, FORMATS[suffix])
    except (OSError, KeyError, ValueError):
        buffer = io.BytesIO()
        img.convert("RGB").save(buffer, FORMATS[suffix])
    return buffer.getvalue()


SIZES = st.sampled_from([(8, 8), (6, 8), (1, 1), (9, 7), (16, 16)])
MUTATIONS = st.one_of(
    st.tuples(st.just("size"), SIZES),
    st.tuples(st.just("mode"), st.sampled_from(MODES)),
    st.tuples(st.just("format"), st.sampled_from(sorted(FORMATS))),
    st.tuples(st.just("bytes"), st.binary(max_size=40)),
    st.tuples(st.just("truncate"), st.integers(0, 60)),
    st.tuples(st.just("flip"), st.integers(0, 200)),
    st.tuples(st.just("name"), st.sampled_from(["a b.png", "x.txt", ".hidden.png", "ü.png",
                                                "new\nline.png", "noext"])),
    st.tuples(st.just("drop"), st.none()),
)
IMAGE_TREES = st.fixed_dictionaries({
    "size": SIZES, "mode": st.sampled_from(MODES), "suffix": st.sampled_from(sorted(FORMATS)),
    "classes": st.sampled_from([["a", "b"], ["a"], ["cat", "dog", "frog"]]),
    "container": st.sampled_from(["folder", "tar", "tar.gz", "tar-prefixed"]),
    "mutations": st.lists(st.tuples(st.integers(0, 100), MUTATIONS), max_size=3),
    "image_size": st.sampled_from([None, None, [8, 8], [2, 3]]),
    "channels": st.sampled_from([None, None, 1, 3, 4]),
})


def tree_files(spec: dict[str, Any]) -> dict[str, bytes]:
    """train/<class>/NN<suffix> (12 per class) and test/<class>/NN<suffix> (5 per class)."""
    names = [f"{split}/{cls}/{i:02d}" for cls in spec["classes"]
             for split, count in (("train", 12), ("test", 5)) for i in range(count)]
    mutated = {number % len(names): m for number, m in spec["mutations"]}
    files: dict[str, bytes] = {}
    for i, name in enumerate(names):
        size, mode, suffix = spec["size"], spec["mode"], spec["suffix"]
        kind, arg = mutated.get(i, (None, None))
        size = arg if kind == "size" else size
        mode = arg if kind == "mode" else mode
        suffix = arg if kind == "format" else suffix
        payload = encode(size, mode, suffix, i)
        if kind == "bytes":
            payload = arg
        elif kind == "truncate":
            payload = payload[:arg]
        elif kind == "flip":
            payload = bytearray(payload)
            payload[arg % len(payload)] ^= 0xFF
            payload = bytes(payload)
        path = f"{name}{suffix}"
        if kind == "name":
            path = name.rsplit("/", 1)[0] + "/" + arg
        if kind != "drop":
            files[path] = payload
    return files


def write_tree(folder: Path, spec: dict[str, Any]) -> Path:
    files = tree_files(spec)
    container = spec["container"]
    if container == "folder":
        root = folder / "images"
        for name, payload in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(payload)
        return root
    path = folder / ("images.tar" if container == "tar" else "images.tar.gz")
    prefix = "cifar/" if container == "tar-prefixed" else ""
    with tarfile.open(path, "w" if container == "tar" else "w:gz") as tar:
        for name, payload in sorted(files.items()):
            info = tarfile.TarInfo(prefix + name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def check_image_tree(spec: dict[str, Any], more: dict[str, Any] | None = None) -> None:
    with workdir() as folder:
        data = write_tree(folder, spec)
        config = {
            "data": {"source": "imagefolder", "path": str(data), "train_size": 10 if len(
                spec["classes"]) == 1 else 20, "val_size": 2 if len(spec["classes"]) == 1
                else 4, "test_size": 5, "cache": False, "image_size": spec["image_size"],
                "channels": spec["channels"]},
            "model": {"filters": [2], "dense": [4], "pool_size": 0},
            "train": {"epochs": 1, "verbose": 0, "batch_size": 8},
            "tracking": {"tensorboard": False},
        }
        for section, values in (more or {}).items():
            config[section] = ({**config.get(section, {}), **values}
                               if isinstance(values, dict) else values)
        (folder / "c.yaml").write_bytes(dump(config))
        run_cli(["train", "c.yaml", "--out", "out"], folder, out=folder / "out")


EXAMPLE_TREE = {"size": (8, 8), "mode": "RGB", "suffix": ".png", "classes": ["a", "b"],
                "container": "tar.gz", "mutations": [], "image_size": None, "channels": None}

@pytest.mark.parametrize("more", [
    {"seed": 2**40}, {"data": {"split_seed": 2**40}}, {"train": {"batch_size": 10**6}},
    {"data": {"image_size": [1, 1]}, "model": {"kernel_size": 5, "padding": "valid"}},
    {"data": {"train_size": 10**6}}, {"data": {"test_size": 11}},
], ids=["huge-seed", "huge-split-seed", "huge-batch", "kernel-over-image", "too-many",
        "test-size"])
def test_train_hostile(more: dict[str, Any]) -> None:
    check_image_tree(EXAMPLE_TREE, more)


def check_random_image_tree(spec: dict[str, Any]) -> None:
    check_image_tree(spec)


test_image_tree = settings(max_examples=10)(
    example(EXAMPLE_TREE)(given(IMAGE_TREES)(check_random_image_tree)))
test_image_tree_slow = pytest.mark.slow(settings(max_examples=80)(
    given(IMAGE_TREES)(check_random_image_tree)))


# --- (5) damaged run and sweep folders (issue 27) -------------------------------------

RUN_FILES = [layout.METRICS_FILE, layout.CONFIG_FILE, layout.HISTORY_FILE, layout.STATUS_FILE,
             layout.MODEL_FILE]
SWEEP_FILES = [layout.SWEEP_FILE, layout.RESULTS_FILE, layout.LOCK_FILE,
               *(f"001-a/{name}" for name in RUN_FILES), "001-a"]
NOT_UTF8 = st.binary(min_size=1, max_size=8).map(lambda b: b"\xff\xfe" + b)
DAMAGES = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("garbage"), st.binary(max_size=64)),
    st.tuples(st.just("wrong types"), VALUES),
    st.tuples(st.just("not utf-8"), NOT_UTF8),
    st.tuples(st.just("symlink"), st.sampled_from(["file", "folder", "dangling"])),
    st.tuples(st.just("folder"), st.none()),
    st.tuples(st.just("delete"), st.none()),
)


def damage(path: Path, kind: str, arg: Any, outside: Path) -> None:
    """Damage ``path`` (a file or a run folder) as ``kind`` says."""
    payload = path.read_bytes() if path.is_file() else b""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    if kind == "truncate":
        path.write_bytes(payload[:int(len(payload) * arg)])
    elif kind in ("garbage", "not utf-8"):
        path.write_bytes(arg if kind == "garbage" else payload[:20] + arg + payload[20:])
    elif kind == "wrong types":
        path.write_bytes(json.dumps(arg).encode() if path.suffix == ".json" else dump(arg))
    elif kind == "symlink":
        path.symlink_to({"file": outside / "file.txt", "folder": outside,
                         "dangling": outside / "missing"}[arg])
    elif kind == "folder":
        (path / "x").mkdir(parents=True)


def outside_folder(folder: Path) -> Path:
    """A folder of the user's beside the damaged one, which nothing may touch."""
    outside = folder / "outside"
    outside.mkdir()
    (outside / "file.txt").write_text("mine")
    (outside / ".notes.tmp").write_text("mine too")
    (outside / layout.METRICS_FILE).write_text("{}")
    return outside


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, sample_archive: Path,
                 cache_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("fuzz-run") / "run"
    args = [a for key, value in {**tiny_sets(sample_archive, cache_dir, epochs=1),
                                 "model.filters": "[4]", "model.dense": "[8]"}.items()
            for a in ("--set", f"{key}={str(value).lower() if isinstance(value, bool) else value}")]
    result = CliRunner().invoke(main, ["train", "baseline", *args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory: pytest.TempPathFactory, sample_archive: Path,
                   cache_dir: Path) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("fuzz-sweep")
    spec = root / "s.yaml"
    spec.write_bytes(dump({"name": "fz", "base": "baseline", "set": {
        **tiny_sets(sample_archive, cache_dir, epochs=1), "model.filters": [4],
        "model.dense": [8], "tracking.tensorboard": False},
        "variants": {"a": {}, "b": {"train.learning_rate": 0.05}}}))
    result = CliRunner().invoke(main, ["sweep", str(spec), "--out", str(root / "done")])
    assert result.exit_code == 0, result.output
    return spec, root / "done"


def check_damaged_run(run: Path, name: str, kind: str, arg: Any, command: str) -> None:
    with workdir() as folder:
        outside = outside_folder(folder)
        work = folder / "w"
        shutil.copytree(run, work / "run")
        damage(work / "run" / name, kind, arg, outside)
        args = {"report": ["report", "w/run"], "evaluate": ["evaluate", "w/run"],
                "compare": ["compare", "w/run", "--out", "w/cmp"]}[command]
        run_cli(args, folder, out=work)


@settings(max_examples=12)
@given(st.sampled_from(RUN_FILES), DAMAGES, st.sampled_from(["report", "evaluate", "compare"]))
def test_damaged_run_folder(finished_run: Path, name: str, how: tuple[str, Any],
                            command: str) -> None:
    check_damaged_run(finished_run, name, *how, command)


def check_damaged_sweep(spec: Path, done: Path, name: str, kind: str, arg: Any,
                        command: str) -> None:
    with workdir() as folder:
        outside = outside_folder(folder)
        shutil.copytree(done, folder / "s")
        kept = (folder / "s" / "002-b" / layout.METRICS_FILE).read_bytes()
        damage(folder / "s" / name, kind, arg, outside)
        args = (["report", "s"] if command == "report" else
                ["sweep", str(spec), "--out", "s"])
        result = run_cli(args, folder, out=folder / "s")
        assert (folder / "s" / "002-b" / layout.METRICS_FILE).read_bytes() == kept
        if command == "resume" and result.exit_code == 0:  # the sweep could finish
            assert all(storage.is_finished(folder / "s" / run) for run in ("001-a", "002-b"))


@settings(max_examples=15)
@given(st.sampled_from(SWEEP_FILES), DAMAGES)
@example(layout.RESULTS_FILE, ("symlink", "dangling"))  # found: exit 1, "run it again"
def test_damaged_sweep_folder_report(finished_sweep: tuple[Path, Path], name: str,
                                     how: tuple[str, Any]) -> None:
    check_damaged_sweep(*finished_sweep, name, *how, "report")


@settings(max_examples=4)  # a damaged run is trained again: seconds each
@given(st.sampled_from(SWEEP_FILES), DAMAGES)
@example(layout.RESULTS_FILE, ("folder", None))  # found: exit 1 naming a temporary file
def test_damaged_sweep_folder_resume(finished_sweep: tuple[Path, Path], name: str,
                                     how: tuple[str, Any]) -> None:
    check_damaged_sweep(*finished_sweep, name, *how, "resume")
