"""Shared fixtures: real CIFAR-10 images (the bundled sample, or the shared full copy).

Skips: outside CI a skipped test says what to install; with the environment variable
``CI`` set (``.ci/run`` sets it) every skip is turned into a failure carrying the skip
reason, so that a missing browser, extra or data set cannot pass CI silently.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
from pathlib import Path

import pytest
import yaml
from helpers import sample_members, tiny_sets, write_tar

from cnnlab.config.files import load_config
from cnnlab.config.schema import Config

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "cifar10-sample.tar.gz"
SHARED_CIFAR = REPO.parent / "shared" / "datasets" / "cifar10-jpg.tar.gz"
INSTALL_HINT = 'install the test extras: pip install -e ".[test]"'


# A background job of a non-interactive shell (how some CI runners start the suite)
# inherits SIGINT ignored, and so would every process the tests start: the Ctrl-C tests
# would then see their SIGINT ignored. Handled here, the children get the default.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


# --- skips: a clear reason outside CI, a failure in CI --------------------------------


def _skip_reason(longrepr: object) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _with_hint(reason: str) -> str:
    """``could not import 'x'`` (pytest.importorskip) also says what to install."""
    if re.search(r"could not import '[\w.]+'", reason) and INSTALL_HINT not in reason:
        return f"{reason}; {INSTALL_HINT}"
    return reason


def _handle_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = _with_hint(_skip_reason(report.longrepr))
    if os.environ.get("CI"):
        report.outcome = "failed"
        report.longrepr = (f"skipped under CI={os.environ['CI']!r}, where every test must "
                           f"run: {reason}")
    elif isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        path, line, _ = report.longrepr
        report.longrepr = (path, line, f"Skipped: {reason}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    _handle_skip(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    report = yield  # a module-level pytest.importorskip skips the whole module here
    _handle_skip(report)
    return report


# --- data ------------------------------------------------------------------------------


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
        pytest.skip(f"the full CIFAR-10 JPEG copy is not at {SHARED_CIFAR}; copy "
                    "cifar10-jpg.tar.gz (50,000 + 10,000 images, train/<class>/*.jpg and "
                    "test/<class>/*.jpg) to ../shared/datasets/ beside the checkout")
    return SHARED_CIFAR


@pytest.fixture(scope="session")
def small_archive(tmp_path_factory: pytest.TempPathFactory, sample_archive: Path) -> Path:
    """A JPEG CIFAR-10 archive like the sample's, of its first 50 training and 20 test
    images per class (real images; decodes in a fraction of a second)."""
    folder = tmp_path_factory.mktemp("small-cifar")
    return write_tar(folder / "cifar10-jpg.tar.gz", sample_members(sample_archive, 50, 20))


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


@pytest.fixture(scope="session")
def cli_sweep(tmp_path_factory: pytest.TempPathFactory, sample_archive: Path,
              cache_dir: Path) -> tuple[Path, str]:
    """A real 2-run ``cnnlab sweep`` from a sweep file, through the CLI, that picks its
    winner by final_val_loss; the second run has tracking.tensorboard false.
    Read-only for the tests that use it: (sweep folder, console output)."""
    from click.testing import CliRunner

    from cnnlab.cli import main

    folder = tmp_path_factory.mktemp("cli-sweep")
    path = folder / "features.yaml"
    path.write_text(yaml.safe_dump({
        "name": "features", "base": "baseline", "select_by": "final_val_loss",
        "set": tiny_sets(sample_archive, cache_dir),
        "variants": {"plain": {},
                     "no_tb": {"tracking.tensorboard": False, "train.learning_rate": 0.05}},
    }, sort_keys=False), encoding="utf-8")
    result = CliRunner().invoke(main, ["sweep", str(path), "--out", str(folder / "out")])
    assert result.exit_code == 0, result.output
    return folder / "out", result.output


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    missing = [f"{tool} (not on PATH)" for tool, found in
               (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)) if not found]
    if missing:
        pytest.skip("the report-page browser tests need headless Chromium and its WebDriver; "
                    f"missing: {', '.join(missing)}; install both with: "
                    "apt-get install chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1280,1600",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER),
                              options=options)
    yield driver
    driver.quit()
