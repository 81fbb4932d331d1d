"""``cnnlab reproduce`` end to end on tiny real data, its page in headless Chromium, its
verdict rules, and its refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import one_line_error

from cnnlab.cli import main
from cnnlab.reproduce import study as study_plan
from cnnlab.reproduce import verdicts
from cnnlab.runs import load, storage

TINY = ["--set", "data.train_size=100", "--set", "data.val_size=50", "--set",
        "data.test_size=50", "--set", "train.epochs=2", "--set", "train.verbose=0",
        "--set", "data.download=false", "--set", "tracking.tensorboard=false"]
SWEEPS = ("batch-size", "optimizer", "depth", "grid", "regularization", "best-model")


@pytest.fixture(scope="module")
def study(tmp_path_factory, sample_archive: Path, cache_dir: Path) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("reproduce") / "study"
    args = [*TINY, "--set", f"data.path={sample_archive}", "--set",
            f"data.cache_dir={cache_dir}"]
    result = CliRunner().invoke(main, ["reproduce", "--repeats", "2", *args, "--out",
                                       str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_reproduce_runs_every_section_and_judges_every_claim(study) -> None:
    out, output = study
    for name in SWEEPS:
        summary = storage.read_csv(out / name / "summary.csv")
        assert summary and all(row["n"] == 2 for row in summary), name
    assert len(storage.read_csv(out / "batch-size" / "results.csv")) == 18  # 9 arms x 2
    findings = (out / "findings.md").read_text(encoding="utf-8")
    section = findings.split("## The report's claims")[1].split("\n## ")[0]
    claims = [line for line in section.splitlines() if line.startswith("- **")]
    assert len(claims) == 10
    assert all(any(f"**{v}**" in line for v in (verdicts.HOLDS, verdicts.FAILS,
                                               verdicts.UNCLEAR)) for line in claims)
    assert all(" -- tested on " in line for line in claims)
    assert sum("tested on test accuracy: " in line for line in claims) == 3
    assert "Repeats varied the seed (initial weights, data order) and the train/validation" \
        in section
    assert "P(beats best)" in findings and "80 % power" in findings
    first, second = (load.read_run(out / "best-model" / f"001-best-r{i}") for i in (0, 1))
    assert first.config["data"]["split_seed"] != second.config["data"]["split_seed"]
    d0, d1 = (load.load_run_data(r, log=lambda _: None) for r in (first, second))
    assert not np.array_equal(d0.x_test, d1.x_test)  # another draw of the split
    assert "## Sweep batch-size" in findings and "## Sweep regularization" in findings
    assert "claims of the report hold; report: " in output
    best_run = sorted((out / "best-model").glob("*/metrics.json"))[0].parent
    drawn = sorted(p.name for p in (best_run / "activations").glob("*.png"))
    assert [n.split("-")[0] for n in drawn] == ["block1_conv"] * 3 + ["block2_conv"] * 3 \
        + ["block3_conv"] * 3


def test_reproduce_page_in_the_browser(study, browser) -> None:
    out, _ = study
    browser.get((out / "report.html").resolve().as_uri())
    headings = [h.text for h in browser.find_elements("tag name", "h2")]
    claims = browser.find_element("tag name", "table").text
    assert "tested on" in claims and "per-class recall (test set)" in claims
    assert headings[0] == "The report's claims"
    assert [h.split(".")[0] for h in headings[1:]] == ["1", "2", "3", "4", "6", "6", "7", "8"]
    body = browser.find_element("tag name", "body").text
    assert "132010" in body and "39514" in body  # ours and the report's, side by side
    # Table 1: the report's numbers beside ours as an HTML table, not only as a picture
    table = browser.find_element(
        "xpath", "//h2[starts-with(text(), '3.')]/following::table[2]")
    rows = [[c.text for c in r.find_elements("xpath", "./th|./td")]
            for r in table.find_elements("tag name", "tr")]
    head = rows[0]
    assert {"batch_size", "ms_per_step", "report_ms_per_step"} <= set(head)
    by_batch = {row[head.index("batch_size")]: row for row in rows[1:]}
    assert by_batch["32"][head.index("report_ms_per_step")] == "13.55"
    assert float(by_batch["32"][head.index("ms_per_step")]) > 0
    assert not any(c.text.endswith(".png") for c in browser.find_elements("tag name",
                                                                          "figcaption"))
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 1280
    assert "`" not in body
    images = browser.find_elements("tag name", "img")
    assert len(images) >= 15
    assert all(browser.execute_script("return arguments[0].naturalWidth", img) > 0
               for img in images)


def test_resume_keeps_every_finished_run(study, sample_archive: Path, cache_dir: Path) -> None:
    out, _ = study
    kept = (out / "depth" / "001-filters=8-r0" / "metrics.json").stat().st_mtime_ns
    args = [*TINY, "--set", f"data.path={sample_archive}", "--set",
            f"data.cache_dir={cache_dir}"]
    result = CliRunner().invoke(main, ["reproduce", "--repeats", "2", *args, "--out",
                                       str(out)])
    assert result.exit_code == 0, result.output
    kept_lines = [ln for ln in result.output.splitlines()
                  if ln.startswith("[") and ln.endswith(": finished earlier, kept")]
    assert len(kept_lines) == sum(len(storage.read_csv(out / name / "results.csv"))
                                  for name in SWEEPS) == 70
    assert "cleared the unfinished folder" not in result.output
    assert (out / "depth" / "001-filters=8-r0" / "metrics.json").stat().st_mtime_ns == kept
    other = CliRunner().invoke(main, ["reproduce", "--repeats", "3", *args, "--out", str(out)])
    assert other.exit_code == 2
    one_line_error(other.stderr, "holds a study with other --repeats")


def test_dry_run_lists_every_run_and_estimates_the_time(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["reproduce", "--dry-run", *TINY])
    assert result.exit_code == 0, result.output
    assert ("sweep batch-size (batch-size): 90 runs at most (9 arms x 3..10 seeds, adaptive: "
            "27 runs at least") in result.output
    assert ("105 runs at least in 6 sweeps; estimated time on this machine with --jobs 1: "
            "about ") in result.output
    assert ("350 runs at most in 6 sweeps; estimated time on this machine with --jobs 1: "
            "about ") in result.output
    assert "budget: 30m00s; no round of extra seeds starts that would pass it" in result.output
    fixed = study_plan.plan(repeats=3, budget_s=1800)
    assert fixed.budget_s is None and sum(len(s.runs) for s in fixed.sweeps) == 105
    adaptive = study_plan.plan(budget_s=1800)
    shares = [adaptive.budget_of(s) for s in adaptive.sweeps]
    assert sum(shares) == pytest.approx(1800) and shares[0] == pytest.approx(1800 * 27 / 105)
    assert not (tmp_path / "outputs").exists()


def test_bad_repeats_and_set_are_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["reproduce", "--repeats", "0", "--dry-run"])
    assert result.exit_code == 2
    one_line_error(result.stderr, "--repeats: repeats: got 0")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "file").write_text("x")
    result = CliRunner().invoke(main, ["reproduce", "--out", str(tmp_path / "x"), *TINY])
    assert result.exit_code == 2
    one_line_error(result.stderr, "not a reproduce folder")
