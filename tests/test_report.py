"""report.html for a run and a sweep folder, checked in real headless Chromium."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cnnlab import report
from cnnlab.cli import main
from cnnlab.config import load_config
from cnnlab.plots import plt

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory, cache_dir, sample_archive) -> Path:
    """Two tiny runs in subfolders, a results.csv and a comparison PNG; the second run is
    trained with report building broken, to check that the run is kept anyway."""
    from cnnlab.training import train

    root = tmp_path_factory.mktemp("sweep")
    values = {"data.path": str(sample_archive), "data.cache_dir": str(cache_dir),
              "data.train_size": 200, "data.val_size": 60, "data.test_size": 60,
              "data.download": False, "train.epochs": 1, "train.verbose": 0}
    rows = []
    for name, lr in (("lr-0.01", 0.01), ("lr-0.1", 0.1)):
        cfg = load_config("baseline", {**values, "train.learning_rate": lr})
        logged: list[str] = []
        with pytest.MonkeyPatch.context() as mp:
            if name == "lr-0.1":
                mp.setattr(report, "write_report", _broken)
            run = train(cfg, root / name, log=logged.append)
        rows.append({"run": name, "learning_rate": lr, "status": run.status,
                     "best_val_accuracy": run.metrics["best_val_accuracy"],
                     "note": "<b>not bold</b> & co"})
        if name == "lr-0.1":
            assert run.status == "finished" and not (root / name / "report.html").exists()
            assert logged[-1].startswith("report.html not written for")
        else:
            assert (root / name / "report.html").exists()
    with (root / "results.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar([r["run"] for r in rows], [r["best_val_accuracy"] for r in rows])
    ax.set_title("best val accuracy")
    fig.savefig(root / "comparison.png")
    plt.close(fig)
    return root


def _broken(path, log=print):
    raise OSError("disk full (simulated)")


def test_run_report_content(sweep_folder):
    run = sweep_folder / "lr-0.01"
    page = report.write_report(run).read_text()
    for text in ("Metrics", "best_val_accuracy", "Learning curves", "Confusion matrix",
                 "ms_per_step", "train_s", "fingerprint", "learning_rate: 0.01",
                 "Trainable params", "cnnlab plot-activations"):
        assert text in page, text
    assert page.count("<img ") == 2  # curves + confusion matrix; no activation maps yet
    assert _external_references(page) == []


def test_sweep_report_content(sweep_folder):
    result = CliRunner().invoke(main, ["report", str(sweep_folder)])
    assert result.exit_code == 0, result.output
    page = (sweep_folder / "report.html").read_text()
    assert "&lt;b&gt;not bold&lt;/b&gt; &amp; co" in page and "<b>not bold" not in page
    assert '<a href="lr-0.1/report.html">lr-0.1</a>' in page  # results cell links to the run
    assert (sweep_folder / "lr-0.1" / "report.html").exists()  # built when missing
    assert "learning_rate" in page and "comparison.png" in page
    assert page.count("<img ") == 1
    assert _external_references(page) == []


def test_report_errors(tmp_path):
    result = CliRunner().invoke(main, ["report", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "no such folder" in result.stderr
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "not a finished run" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _external_references(page: str) -> list[str]:
    refs = re.findall(r'(?:src|href)="([^"]*)"', page)
    return [r for r in refs if not (r.startswith("data:image/png;base64,")
                                    or re.fullmatch(r"[\w.-]+/report\.html", r))]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("headless Chromium not installed (apt-get install chromium chromium-driver)")
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


IMAGES_DRAWN = """
return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight]);
"""


def _check_in_browser(driver, page: Path) -> list:
    driver.get(page.resolve().as_uri())
    assert driver.execute_script("return document.readyState") == "complete"
    images = driver.execute_script(IMAGES_DRAWN)
    assert images and all(done and w > 0 and h > 0 for _, done, w, h in images), images
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
    return images


def test_run_page_in_browser(browser, sweep_folder):
    run = sweep_folder / "lr-0.01"
    result = CliRunner().invoke(main, ["plot-activations", str(run), "--image", "1"])
    assert result.exit_code == 0, result.output
    images = _check_in_browser(browser, run / "report.html")
    assert [alt for alt, *_ in images] == ["Learning curves", "Confusion matrix",
                                           "activations/block1_conv-test0001.png"]


def test_sweep_page_in_browser(browser, sweep_folder):
    page = report.write_report(sweep_folder)
    images = _check_in_browser(browser, page)
    assert [alt for alt, *_ in images] == ["comparison.png"]
    browser.find_element("link text", "lr-0.1").click()
    assert browser.title == "cnnlab run: baseline"
    _check_in_browser(browser, sweep_folder / "lr-0.1" / "report.html")
