"""report.html for a run and a sweep folder, checked in real headless Chromium."""

from __future__ import annotations

import csv
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from cnnlab.cli import main
from cnnlab.config.files import load_config
from cnnlab.report import pages as report
from cnnlab.report.figures import plt
from cnnlab.runs import storage


@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory, cache_dir, sample_archive) -> Path:
    """Two tiny runs in subfolders, a results.csv and a comparison PNG; the second run is
    trained with report building broken, to check that the run is kept anyway."""
    from cnnlab.report.run_report import drawer
    from cnnlab.training.loop import train

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
                mp.setattr(report, "write_run_page", _broken)
            run = train(cfg, root / name, log=logged.append, draw=drawer(logged.append))
        rows.append({"run": name, "learning_rate": lr, "status": run.status,
                     "best_val_accuracy": run.metrics["best_val_accuracy"],
                     "note": "<b>not bold</b> & co"})
        if name == "lr-0.1":
            assert run.status == "finished" and not (root / name / "report.html").exists()
            assert any(line.startswith("report.html not written for") for line in logged)
        else:  # the page written at the end of training shows this run's figures
            written = parse_page((root / name / "report.html").read_text())
            assert written.title == "cnnlab run: baseline"
            assert float(written.value("Metrics", "best_val_accuracy")) == pytest.approx(
                run.metrics["best_val_accuracy"], rel=1e-3)
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


def _broken(*args, **kwargs):
    raise OSError("disk full (simulated)")


def test_run_report_content(sweep_folder):
    run = sweep_folder / "lr-0.01"
    page = report.write_report(run).read_text()
    for text in ("Metrics", "best_val_accuracy", "Learning curves", "Confusion matrix",
                 "ms_per_step", "train_s", "fingerprint", "learning_rate: 0.01",
                 "Trainable params", "cnnlab plot-activations"):
        assert text in page, text
    shown = parse_page(page)  # every figure of the run folder; no activation maps yet
    assert shown.files == ["curves.png", "confusion_matrix.png", "learning_rate.png"] == sorted(
        (p.name for p in run.glob("*.png")), key=shown.files.index)
    assert shown.images == ["Learning curves: loss and accuracy by epoch",
                            "Confusion matrix of the test set", "Learning rate by epoch"]
    assert _external_references(page) == []


def test_sweep_report_content(sweep_folder):
    result = CliRunner().invoke(main, ["report", str(sweep_folder)])
    assert result.exit_code == 0, result.output
    page = (sweep_folder / "report.html").read_text()
    assert "&lt;b&gt;not bold&lt;/b&gt; &amp; co" in page and "<b>not bold" not in page
    assert '<a href="lr-0.1/report.html">lr-0.1</a>' in page  # results cell links to the run
    built = parse_page((sweep_folder / "lr-0.1" / "report.html").read_text())  # built when missing
    recorded = json.loads((sweep_folder / "lr-0.1" / "metrics.json").read_text())
    assert built.title == "cnnlab run: baseline"
    assert built.value("Metrics", "status") == "finished"
    assert float(built.value("Metrics", "test_accuracy")) == pytest.approx(
        recorded["test_accuracy"], rel=1e-3)
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


class Page(HTMLParser):
    """A report page read back: its title and every table, by the section (h2) it is in."""

    def __init__(self) -> None:
        super().__init__()
        self.title = ""
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []  # their captions (alt)
        self.files: list[str] = []  # the PNG files they came from
        self._section, self._tag, self._row, self._cell = "", "", None, None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self._tag = tag
        if tag == "table":
            self.tables.setdefault(self._section, [])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag == "img":
            self.images.append(dict(attrs)["alt"])
            self.files.append(dict(attrs)["data-file"])
        if tag == "h2":
            self._section = ""

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._section].append(self._row)
            self._row = None
        self._tag = ""

    def handle_data(self, data: str) -> None:
        if self._tag == "title":
            self.title += data
        elif self._tag == "h2":
            self._section += data
        elif self._cell is not None:
            self._cell += data

    def value(self, section: str, key: str) -> str:
        """The value cell of a key/value table row."""
        rows = {row[0]: row[1] for row in self.tables[section][1:]}
        return rows[key]


def parse_page(text: str) -> Page:
    page = Page()
    page.feed(text)
    return page


IMAGES_DRAWN = """
return Array.from(document.images).map(i => [i.dataset.file, i.complete, i.naturalWidth,
                                             i.naturalHeight]);
"""


def _check_in_browser(driver, page: Path) -> list:
    driver.get(page.resolve().as_uri())
    assert driver.execute_script("return document.readyState") == "complete"
    images = driver.execute_script(IMAGES_DRAWN)
    assert images and all(done and w > 0 and h > 0 for _, done, w, h in images), images
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
    # nothing wider than the 1280 px window: wide tables scroll inside their own box
    assert driver.execute_script("return window.innerWidth") == 1280
    assert driver.execute_script("return document.documentElement.scrollWidth") <= 1280
    text = driver.find_element("tag name", "body").text
    assert "`" not in text and "**" not in text  # Markdown rendered, not shown raw
    return images


def test_run_page_in_browser(browser, sweep_folder):
    run = sweep_folder / "lr-0.01"
    result = CliRunner().invoke(main, ["plot-activations", str(run), "--image", "1"])
    assert result.exit_code == 0, result.output
    images = _check_in_browser(browser, run / "report.html")
    assert [name for name, *_ in images] == ["curves.png", "confusion_matrix.png",
                                             "learning_rate.png", "block1_conv-test0001.png"]
    captions = [c.text for c in browser.find_elements("tag name", "figcaption")]
    assert captions[-1] == "Activations of block1_conv, test image 1"
    assert not any(c.endswith(".png") for c in captions)  # no file name as a caption


def test_sweep_page_in_browser(browser, sweep_folder):
    page = report.write_report(sweep_folder)
    images = _check_in_browser(browser, page)
    assert [name for name, *_ in images] == ["comparison.png"]
    assert browser.find_element("tag name", "figcaption").text == "Comparison"
    browser.find_element("link text", "lr-0.1").click()
    assert browser.title == "cnnlab run: baseline"
    _check_in_browser(browser, sweep_folder / "lr-0.1" / "report.html")


# --- the real artefacts: pages written by `cnnlab train` and `cnnlab sweep` themselves ---


@pytest.fixture(scope="module")
def fresh_run(tmp_path_factory, sample_archive, cache_dir) -> Path:
    """A run trained through the CLI; its report.html is the one written when training
    ended, never rebuilt by these tests."""
    out = tmp_path_factory.mktemp("fresh") / "run"
    result = CliRunner().invoke(main, [
        "train", "best", "--out", str(out), "--set", f"data.path={sample_archive}",
        "--set", f"data.cache_dir={cache_dir}", "--set", "data.train_size=300",
        "--set", "data.val_size=100", "--set", "data.test_size=100",
        "--set", "train.epochs=3", "--set", "train.verbose=0"])
    assert result.exit_code == 0, result.output
    # written by training after the figures, just before metrics.json (which marks the
    # run finished, so it is written last): not rebuilt by a later command
    page = (out / "report.html").stat().st_mtime_ns
    assert (out / "curves.png").stat().st_mtime_ns <= page
    assert page <= (out / "metrics.json").stat().st_mtime_ns
    return out


def _table(driver, section: str) -> list[list[str]]:
    """The cell texts of the first table after the section heading, as the browser shows them."""
    table = driver.find_element("xpath", f"//h2[text()='{section}']/following::table[1]")
    return [[cell.text for cell in row.find_elements("xpath", "./th|./td")]
            for row in table.find_elements("tag name", "tr")]


def _assert_shown(cell: str, value: object, what: str) -> None:
    """A table cell shows the recorded value (floats to the page's 4 significant digits)."""
    if value is None:
        assert cell == "", what
    elif isinstance(value, bool) or isinstance(value, str):
        assert cell == str(value), what
    elif isinstance(value, int):
        assert int(cell) == value, what
    elif isinstance(value, list):  # a list as text, not JSON
        assert cell == ", ".join(map(str, value)), what
    elif isinstance(value, float):
        assert float(cell) == pytest.approx(value, rel=6e-4, abs=1e-12), (what, cell, value)
    else:
        assert json.loads(cell) == value, what


def test_fresh_run_page_in_browser(browser, fresh_run):
    metrics = json.loads((fresh_run / "metrics.json").read_text())
    with (fresh_run / "history.csv").open(newline="") as fh:
        history = list(csv.reader(fh))
    images = _check_in_browser(browser, fresh_run / "report.html")
    assert browser.title == "cnnlab run: best"
    # the metrics table holds every recorded metric, with the recorded value
    shown = {key: value for key, value in _table(browser, "Metrics")[1:]}
    expected = storage.flatten({  # a record inside (distribute) as its keys, no JSON
        k: v for k, v in metrics.items()
        if k not in ("data", "environment", "confusion_matrix", "timing_note",
                     "per_class", "most_confused", "phases")})  # their own section
    assert set(shown) == set(expected) and "distribute.strategy" in shown
    assert not any(cell.startswith(("{", "[")) for cell in shown.values())
    for key, value in expected.items():
        _assert_shown(shown[key], value, key)
    # the phases of the run, as recorded (all but the page's own, timed after it)
    phases = {key: value for key, value in _table(browser, "Time per phase of the run (s)")[1:]}
    recorded = {k: v for k, v in metrics["phases"].items() if k != "report"}
    assert set(phases) == set(recorded) and metrics["phases"]["report"] >= 0
    for key, value in recorded.items():
        _assert_shown(phases[key], value, key)
    assert metrics["timing_note"] in browser.find_element("tag name", "body").text
    # the history table is history.csv, row for row
    table = _table(browser, "History and timing per epoch")
    assert table[0] == history[0] and len(table) == len(history) == 4
    for page_row, file_row in zip(table[1:], history[1:], strict=True):
        for column, cell, value in zip(history[0], page_row, file_row, strict=True):
            _assert_shown(cell, int(value) if column == "epoch" else float(value), column)
    # the data record and the figures: drawn, at the PNG files' own size
    data = {key: value for key, value in _table(browser, "Data")[1:]}
    assert data["fingerprint"] == metrics["data"]["fingerprint"]
    assert data["location"] == metrics["data"]["location"]
    sizes = {name: (w, h) for name, _, w, h in images}
    assert sorted(sizes) == sorted(p.name for p in fresh_run.glob("*.png"))  # all, only them
    for name, size in sizes.items():
        with Image.open(fresh_run / name) as png:
            assert size == png.size
    # drawn by importance: the learning curves across the page, the flat learning-rate
    # line small
    shown_width = "return document.querySelector('img[data-file=\"' + arguments[0] + '\"]')" \
        ".getBoundingClientRect().width"
    curves = browser.execute_script(shown_width, "curves.png")
    rate = browser.execute_script(shown_width, "learning_rate.png")
    assert curves > 1000 and rate <= 420 and curves > 2 * rate


def test_real_sweep_page_in_browser(browser, cli_sweep):
    out, _ = cli_sweep
    assert (out / "report.html").stat().st_mtime_ns >= (out / "results.csv").stat().st_mtime_ns
    with (out / "results.csv").open(newline="") as fh:
        results = list(csv.reader(fh))
    images = _check_in_browser(browser, out / "report.html")
    assert browser.title == f"cnnlab sweep: {out.name}"
    assert _table(browser, "Results") == results  # every cell as results.csv holds it
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert {"curves.png", "accuracy.png"} <= set(pngs)
    assert [name for name, *_ in images] == pngs
    for name, _, width, height in images:
        with Image.open(out / name) as png:
            assert (width, height) == png.size
    run_ids = [row[0] for row in results[1:]]
    assert run_ids == ["001-plain", "002-no_tb"]
    for run_id in run_ids:  # each results row links to that run's own page, which loads
        browser.get((out / "report.html").resolve().as_uri())
        browser.find_element("link text", run_id).click()
        assert browser.title == f"cnnlab run: {run_id}"
        run_images = _check_in_browser(browser, out / run_id / "report.html")
        assert [name for name, *_ in run_images] == [
            "curves.png", "confusion_matrix.png", "learning_rate.png"]  # every figure
        recorded = json.loads((out / run_id / "metrics.json").read_text())
        shown = {key: value for key, value in _table(browser, "Metrics")[1:]}
        _assert_shown(shown["best_val_accuracy"], recorded["best_val_accuracy"], run_id)
        _assert_shown(shown["test_accuracy"], recorded["test_accuracy"], run_id)
