"""Issue 6: bad input gets one clear line and exit 2, untrusted files run no code, and
nothing finished is lost -- each case on real files built here, mostly through the CLI."""

from __future__ import annotations

import fcntl
import io
import json
import os
import pickle
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from helpers import one_line_error
from PIL import Image

from cnnlab.cli import main
from cnnlab.config.files import load_config
from cnnlab.runs import layout, storage
from cnnlab.sweep.run import load_sweep

REPO = Path(__file__).resolve().parents[1]


def cnnlab(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """The command in a fresh process, as a user runs it: no TF_/CNNLAB_ variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "CNNLAB_"))}
    return subprocess.run([sys.executable, "-m", "cnnlab.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def subprocess_error(*args: str, fragments: tuple[str, ...] = (), cwd: Path = REPO) -> str:
    result = cnnlab(*args, cwd=cwd)
    assert result.returncode == 2, (result.returncode, result.stderr)
    return one_line_error(result.stderr, *fragments)


def cli_error(args: list[str], *fragments: str) -> str:
    """In-process (TensorFlow already loaded by the session): exit 2, one stderr line."""
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    return one_line_error(result.stderr, *fragments)


# --- configs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["model.conv_dropout=1.0"],
         "model.conv_dropout: got 1.0; expected a number >= 0.0 and < 1"),
        (["model.output_dropout=1.5"], "model.output_dropout: got 1.5"),
        (["model.filters=[]"], "model.filters: got []; expected a non-empty list"),
        (["train.batch_size=0"], "train.batch_size: got 0; expected an integer >= 1"),
        (["train.epochs=three"], "train.epochs: got 'three'"),
        (["train.epochs"], "--set 'train.epochs': expected KEY=VALUE, e.g. --set train.epochs=5"),
    ],
)
def test_config_values_out_of_range_through_cli(overrides: list[str], fragment: str) -> None:
    sets = [a for o in overrides for a in ("--set", o)]
    subprocess_error("train", "baseline", *sets, fragments=(fragment,))


def test_config_file_problems_through_cli(tmp_path: Path) -> None:
    cases = {
        "list.yaml": ("- 1\n- 2\n", "expected a mapping of keys"),
        "unknown.yaml": ("model:\n  filter: [8]\n", "unknown key 'model.filter'; did you mean"),
        "type.yaml": ("train:\n  learning_rate: fast\n", "train.learning_rate: got 'fast'"),
    }
    for name, (text, fragment) in cases.items():
        (tmp_path / name).write_text(text)
        subprocess_error("train", str(tmp_path / name), "--out", str(tmp_path / "out"),
                         fragments=(fragment,))
    assert not (tmp_path / "out").exists()


def test_kernel_larger_than_input_after_pooling(tmp_path: Path) -> None:
    cli_error(["train", "baseline", "--out", str(tmp_path / "out"),
               "--set", "model.filters=[8, 8, 8]", "--set", "model.kernel_size=[3, 3, 9]",
               "--set", "model.padding=valid", "--set", "data.path=/nonexistent"],
              "model.kernel_size: block 3 kernel 9 is larger than its 6x6 input")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("sweep", "fragment"),
    [
        ({"base": "baseline", "axes": {"train.batch_size": []}},
         "axes: train.batch_size is empty; give at least one value"),
        ({"base": "baseline", "axes": {"train.batch_sise": [8, 16]}},
         "unknown key 'train.batch_sise'; did you mean 'train.batch_size'?"),
        ({"base": "baseline", "variants": {"a": {"model.dropout": 0.2}}},
         "variants: a: unknown key 'model.dropout'"),
    ],
)
def test_bad_sweep_axis_through_cli(tmp_path: Path, sweep: dict, fragment: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(sweep))
    subprocess_error("sweep", str(path), "--out", str(tmp_path / "out"), fragments=(fragment,))
    assert not (tmp_path / "out").exists()


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    payload = f"!!python/object/apply:os.system ['touch {marker}']\n"
    (tmp_path / "evil.yaml").write_text(f"name: evil\nseed: {payload}")
    (tmp_path / "evil-sweep.yaml").write_text(
        f"base: baseline\naxes:\n  seed: [{payload.strip()}]\n")
    subprocess_error("config", str(tmp_path / "evil.yaml"),
                     fragments=("evil.yaml line 2", "python/object/apply:os.system"))
    subprocess_error("sweep", str(tmp_path / "evil-sweep.yaml"), "--dry-run",
                     fragments=("evil-sweep.yaml line 3",))
    assert not marker.exists()
    yaml.unsafe_load(payload)  # the same text does run code when loaded unsafely
    assert marker.exists()


# --- data ---------------------------------------------------------------------------


def png(shape: tuple[int, ...] = (8, 8, 3), seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def image_tree(root: Path, classes=("cat", "dog"), test_classes=None, per_class: int = 3) -> Path:
    for split, names in (("train", classes), ("test", test_classes or classes)):
        for c, name in enumerate(names):
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                (root / split / name / f"{i}.png").write_bytes(png(seed=c * 10 + i))
    return root


def add(tar: tarfile.TarFile, name: str, payload: bytes = b"", **attrs: object) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    for key, value in attrs.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(payload) if payload else None)


def cifar_python(path: Path, width: int = 3072, first_batch: bytes | None = None) -> Path:
    """cifar-10-python.tar.gz in the original layout (pickled dicts), small batches."""
    def batch(seed: int) -> bytes:
        data = np.random.default_rng(seed).integers(0, 256, (20, width), dtype=np.uint8)
        return pickle.dumps({b"data": data, b"labels": [i % 10 for i in range(20)]}, protocol=4)

    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for i in range(1, 6):
            payload = first_batch if (i == 1 and first_batch is not None) else batch(i)
            add(tar, f"cifar-10-batches-py/data_batch_{i}", payload)
        add(tar, "cifar-10-batches-py/test_batch", batch(9))
    return path


class RunsCode:
    """Unpickling this creates a marker file (os.system), as a malicious batch would."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def train_data_error(tmp_path: Path, cache_dir: Path, data: list[str], *fragments: str) -> str:
    out = tmp_path / "out"
    sets = [a for s in [*data, f"data.cache_dir={cache_dir}", "data.download=false",
                        "data.train_size=4", "data.val_size=2", "data.test_size=2"]
            for a in ("--set", s)]
    line = cli_error(["train", "baseline", "--out", str(out), *sets], *fragments)
    assert not out.exists(), "a run folder was made for data that cannot be read"
    return line


def imagefolder(path: Path) -> list[str]:
    return ["data.source=imagefolder", f"data.path={path}"]


def test_folder_with_no_images(tmp_path: Path, cache_dir: Path) -> None:
    empty = tmp_path / "photos"
    (empty / "train" / "cat").mkdir(parents=True)
    (empty / "train" / "cat" / "notes.txt").write_text("not an image")
    train_data_error(tmp_path, cache_dir, imagefolder(empty), "no training images found")


def test_image_folder_test_classes_differ(tmp_path: Path, cache_dir: Path) -> None:
    root = image_tree(tmp_path / "tree", classes=("cat", "dog"), test_classes=("cat", "fox"))
    train_data_error(tmp_path, cache_dir, imagefolder(root),
                     "train and test classes differ (dog, fox in only one)")


@pytest.mark.parametrize("kind", ["garbage", "truncated"])
def test_corrupt_or_truncated_archive(tmp_path: Path, cache_dir: Path, kind: str) -> None:
    good = tmp_path / "good.tar.gz"
    with tarfile.open(good, "w:gz") as tar:
        for split in ("train", "test"):
            for i in range(40):
                add(tar, f"{split}/cat/{i}.png", png((16, 16, 3), seed=i))
    archive = tmp_path / "photos.tar.gz"
    archive.write_bytes(b"this is not a tar archive at all" if kind == "garbage"
                        else good.read_bytes()[: good.stat().st_size // 2])
    train_data_error(tmp_path, cache_dir, imagefolder(archive),
                     "photos.tar.gz: truncated or corrupt archive", "download or copy it again")


@pytest.mark.parametrize("kind", ["corrupt", "zero-byte"])
def test_corrupt_image_fails_naming_the_file(tmp_path: Path, cache_dir: Path, kind: str) -> None:
    """Choice (README, Failure behaviour): a bad image fails the run, naming the file."""
    root = image_tree(tmp_path / "tree")
    bad = root / "test" / "dog" / "1.png"
    bad.write_bytes(png()[:40] if kind == "corrupt" else b"")
    line = train_data_error(tmp_path, cache_dir, imagefolder(root),
                            "test/dog/1.png: corrupt or unreadable image", "remove or replace")
    assert ("empty file" in line) == (kind == "zero-byte")


def test_cifar_batch_with_wrong_shape(tmp_path: Path, cache_dir: Path) -> None:
    archive = cifar_python(tmp_path / "c" / "cifar-10-python.tar.gz", width=1000)
    train_data_error(tmp_path, cache_dir, [f"data.path={archive}"],
                     "data_batch_1: CIFAR batch has data of shape (20, 1000)",
                     "expected (N, 3072)")


def test_requested_sizes_larger_than_the_data(tmp_path: Path, cache_dir: Path) -> None:
    archive = cifar_python(tmp_path / "c" / "cifar-10-python.tar.gz")
    out = tmp_path / "out"
    cli_error(["train", "baseline", "--out", str(out), "--set", f"data.path={archive}",
               "--set", f"data.cache_dir={cache_dir}", "--set", "data.train_size=95",
               "--set", "data.val_size=10"],
              "data.train_size=95 + data.val_size=10 exceeds the 100 training images")
    cli_error(["train", "baseline", "--out", str(out), "--set", f"data.path={archive}",
               "--set", f"data.cache_dir={cache_dir}", "--set", "data.train_size=50",
               "--set", "data.val_size=10", "--set", "data.test_size=21"],
              "data.test_size=21 exceeds the 20 test images")
    assert not out.exists()


def test_pickle_that_would_run_code_is_refused_by_the_loader(tmp_path: Path,
                                                              cache_dir: Path) -> None:
    live = tmp_path / "proof"
    pickle.loads(pickle.dumps(RunsCode(live)))  # the payload is live: plain pickle runs it
    assert live.exists()
    marker = tmp_path / "marker"
    evil = pickle.dumps({b"data": RunsCode(marker), b"labels": [0]}, protocol=4)
    archive = cifar_python(tmp_path / "c" / "cifar-10-python.tar.gz", first_batch=evil)
    train_data_error(tmp_path, cache_dir, [f"data.path={archive}"],
                     "data_batch_1: refused or unreadable CIFAR batch",
                     "global 'posix.system' is not allowed")
    assert not marker.exists()


UNSAFE_MEMBERS = {
    "absolute": {"name": "/tmp/cnnlab-evil.png", "payload": b"x"},
    "dotdot": {"name": "train/cat/../../../evil.png", "payload": b"x"},
    "symlink-outside": {"name": "train/cat/link.png", "type": tarfile.SYMTYPE,
                        "linkname": "../../../../etc/passwd"},
    "hardlink-outside": {"name": "train/cat/hard.png", "type": tarfile.LNKTYPE,
                         "linkname": "../outside.png"},
    "char-device": {"name": "train/cat/dev.png", "type": tarfile.CHRTYPE,
                    "devmajor": 1, "devminor": 3},
    "block-device": {"name": "train/cat/disk.png", "type": tarfile.BLKTYPE,
                     "devmajor": 8, "devminor": 0},
    "fifo": {"name": "train/cat/pipe.png", "type": tarfile.FIFOTYPE},
}


@pytest.mark.parametrize("kind", sorted(UNSAFE_MEMBERS))
def test_unsafe_archive_members_are_refused(tmp_path: Path, cache_dir: Path, kind: str) -> None:
    spec = dict(UNSAFE_MEMBERS[kind])
    name, payload = spec.pop("name"), spec.pop("payload", b"")
    archive = tmp_path / "photos.tar"
    with tarfile.open(archive, "w") as tar:
        add(tar, "train/cat/0.png", png())
        add(tar, name, payload, **spec)
        add(tar, "test/cat/0.png", png())
    before = sorted(tmp_path.rglob("*"))
    train_data_error(tmp_path, cache_dir, imagefolder(archive),
                     "refusing archive member", "use a trusted copy of the dataset")
    assert sorted(tmp_path.rglob("*")) == before  # nothing extracted anywhere
    assert not Path("/tmp/cnnlab-evil.png").exists()


def test_bad_data_error_has_no_tensorflow_noise(tmp_path: Path) -> None:
    """Through a real shell-like process: TensorFlow is imported, but stays silent."""
    root = image_tree(tmp_path / "tree")
    (root / "train" / "cat" / "0.png").write_bytes(b"")
    subprocess_error("train", "baseline", "--set", "data.source=imagefolder",
                     "--set", f"data.path={root}", "--set", f"data.cache_dir={tmp_path}",
                     "--out", str(tmp_path / "out"),
                     fragments=("train/cat/0.png: corrupt or unreadable image (empty file)",))
    assert not (tmp_path / "out").exists()


# --- runs -----------------------------------------------------------------------------


REFUSE_IN_THIS_PROCESS = """
import json, sys
from cnnlab.cli import main
codes = []
for args in json.loads(sys.argv[1]):
    try:
        main(args, standalone_mode=False)
        codes.append(0)
    except SystemExit as exc:
        codes.append(exc.code)
print(json.dumps({"codes": codes, "tensorflow": "tensorflow" in sys.modules}))
"""


@pytest.mark.parametrize("command", ["evaluate", "plot-activations"])
def test_commands_on_a_folder_that_is_not_a_finished_run(tmp_path: Path, command: str) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    interrupted = tmp_path / "interrupted"
    storage.write_atomic(interrupted / "config.yaml", load_config("baseline").to_yaml())
    storage.write_csv(interrupted / "history.csv", [{"epoch": 1}], layout.HISTORY_COLUMNS)
    damaged = tmp_path / "damaged"
    storage.write_atomic(damaged / "config.yaml", load_config("baseline").to_yaml())
    (damaged / "metrics.json").write_text('{"status": "fini')  # half a file
    cases = [(empty, f"{empty}: not a finished run"),
             (interrupted, f"{interrupted}: not a finished run"),
             (damaged, f"{damaged}: damaged run record"),
             (tmp_path / "missing", "no such run folder")]
    # every refusal in one fresh process, as the CLI runs them; then ask that process
    # whether TensorFlow was imported
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "CNNLAB_"))}
    args = json.dumps([[command, str(folder)] for folder, _ in cases])
    result = subprocess.run([sys.executable, "-c", REFUSE_IN_THIS_PROCESS, args], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {"codes": [2] * len(cases), "tensorflow": False}, outcome
    lines = result.stderr.strip().splitlines()
    assert len(lines) == len(cases), result.stderr  # one line per refusal, nothing else
    for line, (_, fragment) in zip(lines, cases, strict=True):
        one_line_error(line, fragment)
    assert sorted(p.name for p in interrupted.iterdir()) == ["config.yaml", "history.csv"]


def test_train_out_folder_that_is_not_empty(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    cli_error(["train", "baseline", "--out", str(out)],
              f"--out {out}: already exists and is not empty")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert (out / "notes.txt").read_text() == "mine"


def test_train_into_an_interrupted_run_names_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    storage.write_atomic(out / "config.yaml", load_config("baseline", []).to_yaml())
    storage.write_json(out / "status.json", {"status": "running"})  # killed: never marked
    cli_error(["train", "baseline", "--out", str(out)],
              f"--out {out}: holds an interrupted run", "--resume")
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "status.json"]


def test_resume_with_a_different_config_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    recorded = load_config("baseline", ["train.epochs=3"]).to_yaml()
    storage.write_atomic(out / "config.yaml", recorded)
    storage.write_json(out / "status.json", {"status": "interrupted"})
    cli_error(["train", "baseline", "--out", str(out), "--resume", "--set", "train.epochs=5",
               "--set", "model.l2=0.01"],
              "holds a run of a different config (model.l2, train.epochs differ)")
    assert (out / "config.yaml").read_text() == recorded
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "status.json"]


def write_sweep(path: Path, axes: dict) -> Path:
    path.write_text(yaml.safe_dump({"base": "baseline", "axes": axes}))
    return path


def test_sweep_out_holding_something_else_is_refused(tmp_path: Path) -> None:
    first = write_sweep(tmp_path / "a.yaml", {"train.batch_size": [8, 16]})
    other = write_sweep(tmp_path / "b.yaml", {"train.batch_size": [32]})
    out = tmp_path / "out"
    storage.write_atomic(out / "sweep.yaml", yaml.safe_dump(load_sweep(first).record()))
    subprocess_error("sweep", str(other), "--out", str(out),
                     fragments=(f"--out {out}: holds a different sweep",))
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("mine")
    subprocess_error("sweep", str(first), "--out", str(plain),
                     fragments=(f"--out {plain}: not empty and not a sweep folder",))
    assert [p.name for p in plain.iterdir()] == ["notes.txt"]  # not even a lock file
    assert sorted(p.name for p in out.iterdir()) == [".lock", "sweep.yaml"]


# --- nothing finished is lost ------------------------------------------------------------


PADDING = "x" * 63 + "\n"
PADDING_LINES = 600_000  # ~38 MB: writing and fsync-ing it takes long enough to kill inside
WRITER = f"""
import os, sys
from pathlib import Path
from cnnlab.runs.storage import write_atomic
target = Path(sys.argv[1])
new = target.read_text(encoding="utf-8") + {PADDING!r} * {PADDING_LINES}
os.write(1, b"writing\\n")
write_atomic(target, new)
os.write(1, b"written\\n")
"""


def _temporaries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob(".*.tmp*") if p.is_file())


def test_write_atomic_leaves_old_or_new_under_sigkill(
    tmp_path: Path, sample_archive: Path, cache_dir: Path
) -> None:
    """SIGKILL a process inside write_atomic (after it made its temporary file, before the
    rename): the file holds the old content, never part of the new; the temporary file
    the kill leaves is deleted by the next run of the sweep, as the README promises."""
    sweep = tmp_path / "one.yaml"
    sweep.write_text(yaml.safe_dump({
        "base": "baseline", "axes": {"seed": [0]},
        "set": {"data.path": str(sample_archive), "data.cache_dir": str(cache_dir),
                "data.download": False, "data.train_size": 300, "data.val_size": 100,
                "data.test_size": 100, "train.epochs": 1, "train.verbose": 0}}))
    out = tmp_path / "out"
    first = CliRunner().invoke(main, ["sweep", str(sweep), "--out", str(out)])
    assert first.exit_code == 0, first.output
    target = out / "results.csv"  # rewritten atomically by every sweep
    old = target.read_text(encoding="utf-8")
    new = old + PADDING * PADDING_LINES
    assert _temporaries(out) == []
    landed = attempts = 0
    while landed < 3:
        attempts += 1
        assert attempts <= 8, f"only {landed} of {attempts - 1} kills landed inside the write"
        before = set(_temporaries(out))  # left by the earlier kills
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target)],
                                  stdout=subprocess.PIPE)
        try:
            assert writer.stdout.readline() == b"writing\n"  # it is about to call write_atomic
            deadline = time.monotonic() + 30
            while not set(_temporaries(out)) - before:  # write_atomic made its temporary file
                assert writer.poll() is None, "the writer ended before its temporary file was seen"
                assert time.monotonic() < deadline, "no temporary file appeared"
                time.sleep(0.0005)
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
        assert writer.returncode == -signal.SIGKILL
        after = writer.stdout.read()
        content = target.read_text(encoding="utf-8")
        assert content == old or content == new, f"partial file: {len(content)} characters"
        if after == b"" and content == old:  # killed between temporary file and rename
            landed += 1
            assert len(set(_temporaries(out)) - before) == 1  # what the kill left behind
        elif content == new:  # the rename beat the kill: put the old file back, try again
            storage.write_atomic(target, old)
    print(f"{landed} kills inside write_atomic in {attempts} attempts")
    # the next run of the same sweep deletes the leftovers, keeps the finished run
    again = CliRunner().invoke(main, ["sweep", str(sweep), "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert "finished earlier, kept" in again.output
    assert _temporaries(out) == []
    assert target.read_text(encoding="utf-8") == old  # rebuilt from the run folders


def test_second_sweep_on_the_same_folder_is_refused_by_a_lock(
    tmp_path: Path, sample_archive: Path, cache_dir: Path
) -> None:
    sweep = tmp_path / "locked.yaml"
    sweep.write_text(yaml.safe_dump({
        "base": "baseline",
        "set": {"data.path": str(sample_archive), "data.cache_dir": str(cache_dir),
                "data.download": False, "data.train_size": 200, "data.val_size": 100,
                "data.test_size": 100, "train.epochs": 30, "train.verbose": 0},
        "axes": {"train.batch_size": [16, 32]}}))
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "CNNLAB_"))}
    first = subprocess.Popen([sys.executable, "-m", "cnnlab.cli", "sweep", str(sweep),
                              "--out", str(out)], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out / "sweep.yaml").exists():
            assert first.poll() is None and time.monotonic() < deadline, "sweep never started"
            time.sleep(0.05)
        record = (out / "sweep.yaml").stat().st_mtime_ns
        # the second sweep, in a fresh process: refused at once, before TensorFlow is loaded
        second = subprocess.run([sys.executable, "-c", REFUSE_IN_THIS_PROCESS,
                                 json.dumps([["sweep", str(sweep), "--out", str(out)]])],
                                cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert json.loads(second.stdout.strip().splitlines()[-1]) == {
            "codes": [2], "tensorflow": False}, second.stdout + second.stderr
        line = one_line_error(second.stderr, f"--out {out}: another sweep (pid {first.pid})",
                              "holds its lock")
        assert first.poll() is None, "the first sweep ended before the check: " + line
        assert (out / "sweep.yaml").stat().st_mtime_ns == record  # the second wrote nothing
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # a killed sweep leaves no stale lock: the OS released it with the process
    with open(out / ".lock", "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
