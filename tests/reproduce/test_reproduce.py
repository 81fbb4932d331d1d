"""``cnnlab reproduce`` end to end on tiny real data (every section, with fewer arms), its
page in headless Chromium, its verdict rules, and its refusals."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import one_line_error

from cnnlab.cli import main
from cnnlab.config.schema import config_from_dict
from cnnlab.data import dataset
from cnnlab.reproduce import pool as test_pool
from cnnlab.reproduce import study as study_plan
from cnnlab.reproduce import sweeps, verdicts
from cnnlab.runs import load, storage
from cnnlab.sweep import capacity, estimate
from cnnlab.sweep import seeds as adaptive_seeds
from cnnlab.sweep.runner import format_duration
from cnnlab.sweep.spec import Sweep, builtin_sweeps, minimum_runs

TINY = ["--set", "data.train_size=100", "--set", "data.val_size=50", "--set",
        "data.test_size=50", "--set", "train.epochs=2", "--set", "train.verbose=0",
        "--set", "data.download=false", "--set", "tracking.tensorboard=false"]
SWEEPS = ("batch-size", "optimizer", "depth", "grid", "regularization", "best-model")
# The arms every claim needs (the claimed arm and one other, both ends and one inner batch
# size, the remedies against none): 13 of the study's 35, for time.
ARMS = {"batch-size": ("001-batch_size=1", "006-batch_size=32", "009-batch_size=256"),
        "optimizer": ("003-adam",), "depth": ("001-filters=8", "003-filters=8_16_32"),
        "grid": ("001-filters=8_16-dense=32-learning_rate=0.0003",
                 "011-filters=8_16_32-dense=64-learning_rate=0.001"),
        "regularization": ("001-none", "002-l2", "003-dropout", "004-batch_norm"),
        "best-model": ("001-best",)}


def small_study(sample_archive: Path, cache_dir: Path, most: int = 2) -> study_plan.Study:
    """The study at the defaults' design (adaptive seeds, here held at 2 per arm: the
    minimum pass, then the pass for open claims, which finds every arm at its maximum;
    ``most``: another maximum), on tiny data, with the arms of :data:`ARMS`."""
    overrides = [v for v in TINY if v != "--set"] + [f"data.path={sample_archive}",
                                                     f"data.cache_dir={cache_dir}"]
    full = study_plan.plan(overrides, "auto", (2, most), budget_s=1800)
    return dataclasses.replace(full, sweeps=tuple(
        dataclasses.replace(s, runs=tuple(r for r in s.runs if r.arm in ARMS[s.name]))
        for s in full.sweeps))


@pytest.fixture(scope="module")
def study(tmp_path_factory, sample_archive: Path, cache_dir: Path) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("reproduce") / "study"
    lines: list[str] = []
    study_plan.run(small_study(sample_archive, cache_dir), out, log=lines.append)
    return out, "\n".join(lines)


def test_reproduce_runs_every_section_and_judges_every_claim(
        study, sample_archive: Path, cache_dir: Path) -> None:
    out, output = study
    for name in SWEEPS:
        summary = storage.read_csv(out / name / "summary.csv")
        assert summary and all(row["n"] == 2 for row in summary), name
    assert len(storage.read_csv(out / "batch-size" / "results.csv")) == 6  # 3 arms x 2
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
    plan = small_study(sample_archive, cache_dir)
    # the budget counts the study's own steps (figures, looks) beside its sweeps' seeds
    own = adaptive_seeds.spent(out)
    assert 0 < own < study_plan.spent(plan, out)
    assert output.endswith(f"reproduce: {format_duration(study_plan.spent(plan, out))} spent "
                           "in all, budget 30m00s")
    # every sweep's minimum first, then the sweeps of the open claims, in study order
    named = dict((v.claim, name) for name, v in study_plan.claims(plan, out))
    assert named["Three conv blocks do best"] == "depth"
    assert named["Horses are recognised best"] == "best-model"
    funded, spare = study_plan.first_look(plan, out)
    still = list(funded)
    unclear = {named[line.split(": ", 1)[1].split(" -- ")[0]] for line in claims
               if f"**{verdicts.UNCLEAR}**" in line}
    # only open claims that the maximum (here 2) would decide, by the power analysis of
    # the minimum seeds, get more: runs of 2 epochs cannot show over-fitting (section 7)
    judged = study_plan.claims(plan, out)  # the minimum is the maximum here
    fundable = {name for name, v in judged if v.verdict == verdicts.UNCLEAR
                and (v.seeds_needed is None or v.seeds_needed <= 2)}
    assert "regularization" in unclear - set(still) and set(still) == fundable
    depth = next(line for line in claims if "Three conv blocks" in line)
    assert "**not distinguishable**" not in depth or "; open: " in depth
    for name, v in judged:  # a second pass's arms stop at the seeds it was given
        line = next(line for line in claims if v.claim in line)
        assert ("at the 2 seeds of its second pass" in line) == (
            name in {*still, *spare} and "max_repeats" in {
                r["stopped"] for r in storage.read_csv(out / name / "summary.csv")})
    assert "=== reproduce 6/6, the minimum seeds: sweep best-model ===" in output
    assert f"claims still not distinguishable in {len(still)} sweeps" in output
    assert output.count("=== reproduce more seeds") == len(still)
    best_run = sorted((out / "best-model").glob("*/metrics.json"))[0].parent
    assert study_plan.facts(out, best_run)["split"] == {
        "data": f"data.path: {sample_archive.resolve()}", "train": 100, "val": 50, "test": 50}
    drawn = sorted(p.name for p in (best_run / "activations").glob("*.png"))
    assert [n.split("-")[0] for n in drawn] == ["block1_conv"] * 3 + ["block2_conv"] * 3 \
        + ["block3_conv"] * 3


def test_reproduce_page_in_the_browser(study, browser) -> None:
    out, _ = study
    browser.get((out / "report.html").resolve().as_uri())
    headings = [h.text for h in browser.find_elements("tag name", "h2")]
    claims = browser.find_element("tag name", "table").text
    assert "tested on" in claims
    assert "per-class recall (the whole test pool, 2,000 images)" in claims
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


def test_class_claims_test_every_run_on_the_whole_pool(study) -> None:
    """Each best-model run's kept model predicts the whole test pool (the sample's 2,000
    images), which holds the run's own 50 test images: on those, its predictions give the
    confusion matrix the run recorded when it trained."""
    out, _ = study
    run_dirs = sorted(p.parent for p in (out / "best-model").glob("*/metrics.json"))
    whole = test_pool.predict(run_dirs)
    assert whole is not None and whole.predicted.shape == (len(run_dirs), 2000)
    for run_dir, predicted in zip(run_dirs, whole.predicted, strict=True):
        run = load.read_run(run_dir)
        cfg = config_from_dict(run.config).data
        raw, _, _ = dataset.read_cached(Path(run.metrics["data"]["location"]), cfg)
        _, _, own = dataset.split_indices(raw.y_train, raw.y_test, cfg, cfg.split_seed)
        matrix = np.zeros((10, 10), dtype=int)
        np.add.at(matrix, (whole.labels[own], predicted[own]), 1)
        assert matrix.tolist() == run.metrics["confusion_matrix"]
    spread = verdicts.image_variances(whole.predicted, whole.labels, 10)
    assert np.all((spread >= 0) & (spread <= 0.25))


@pytest.mark.parametrize("damage", ["deleted", "garbage"])
def test_class_claims_without_a_loadable_model_use_each_runs_own_test_set(
        study, sample_archive: Path, cache_dir: Path, tmp_path: Path, damage: str) -> None:
    """A best-model run whose kept model is gone or damaged: the class claims fall back to
    each run's recorded confusion matrix, and say so, instead of failing the study."""
    out = tmp_path / "study"
    shutil.copytree(study[0], out)
    model = sorted((out / "best-model").glob("*/model.keras"))[0]
    model.unlink() if damage == "deleted" else model.write_bytes(b"not a model")
    judged = [v for name, v in study_plan.claims(small_study(sample_archive, cache_dir), out)
              if name == "best-model"]
    assert [v.metric for v in judged] == ["per-class recall (test set)"] * 2


def test_resume_keeps_every_finished_run(study, sample_archive: Path, cache_dir: Path) -> None:
    out, _ = study
    kept = (out / "depth" / "001-filters=8-r0" / "metrics.json").stat().st_mtime_ns
    lines: list[str] = []
    study_plan.run(small_study(sample_archive, cache_dir), out, log=lines.append)
    kept_lines = [ln for ln in lines
                  if ln.startswith("[") and ln.endswith(": finished earlier, kept")]
    # (a sweep of an open claim is listed again in the second pass)
    assert len(set(kept_lines)) == sum(len(storage.read_csv(out / name / "results.csv"))
                                       for name in SWEEPS) == 26
    assert not any("-- started" in line or "cleared the unfinished folder" in line
                   for line in lines)
    assert (out / "depth" / "001-filters=8-r0" / "metrics.json").stat().st_mtime_ns == kept
    args = [*TINY, "--set", f"data.path={sample_archive}", "--set",
            f"data.cache_dir={cache_dir}"]
    other = CliRunner().invoke(main, ["reproduce", "--repeats", "3", *args, "--out", str(out)])
    assert other.exit_code == 2
    one_line_error(other.stderr, "holds a study with other --repeats",
                   "repeats: 'auto' there, 3 here")


def test_the_first_look_ignores_the_extra_seeds(study, sample_archive: Path, cache_dir: Path,
                                               tmp_path: Path) -> None:
    """Which claims get more seeds is judged on the minimum seeds' runs alone, so a
    study resumed in its second pass picks the same sweeps: more seeds with the claimed
    depth arm far ahead of the rest would decide "three conv blocks do best" if counted."""
    out = tmp_path / "study"
    shutil.copytree(study[0], out)
    plan = small_study(sample_archive, cache_dir)
    wider = dataclasses.replace(plan, sweeps=tuple(
        dataclasses.replace(s, adaptive=dataclasses.replace(s.adaptive, max_repeats=10))
        for s in plan.sweeps))
    before = study_plan.first_look(wider, out)[0]
    depth = wider.second_pass("depth", before["depth"])  # its claim's arms, no race
    assert "003-filters=8_16_32" in before["depth"].arms
    assert (depth.adaptive.race, depth.adaptive.arms, depth.adaptive.max_repeats) == (
        False, before["depth"].arms, before["depth"].seeds)
    state = adaptive_seeds.progress(depth, out / "depth")
    assert {a for a, arm in state.arms.items() if arm.seeds > 2} == before["depth"].arms
    results = out / "depth" / "results.csv"
    rows = storage.read_csv(results)
    for arm in ARMS["depth"]:  # seeds 3-10 of every arm, the claimed one far ahead
        first = next(r for r in rows if r["arm"] == arm)
        rows += [{**first, "run": f"{arm}-r{repeat}", "repeat": repeat, "test_accuracy":
                  0.99 if arm == "003-filters=8_16_32" else first["test_accuracy"]}
                 for repeat in range(2, 10)]
    storage.write_csv(results, rows, list(rows[0]))
    judged = dict((v.claim, v.verdict) for _, v in study_plan.claims(wider, out))
    assert judged["Three conv blocks do best"] == verdicts.HOLDS  # every run counted
    assert study_plan.first_look(wider, out)[0] == before and "depth" in before


def test_the_budget_left_goes_to_claims_more_seeds_could_still_decide(
        study, sample_archive: Path, cache_dir: Path, tmp_path: Path) -> None:
    """After the power-analysed second pass, the open claims it gave nothing that more
    seeds could still decide get the maximum, cheapest first, each only if all its runs
    fit in the budget left (judged on the minimum seeds, as the second pass)."""
    out = tmp_path / "study"
    shutil.copytree(study[0], out)
    wider = small_study(sample_archive, cache_dir, most=4)
    funded, spare = study_plan.first_look(wider, out)
    first = study_plan.claims(wider, out, study_plan._minimum_ids(wider))
    assert spare and not set(spare) & set(funded)
    assert set(spare) == {name for name, v in first if name not in funded
                          and v.verdict == verdicts.UNCLEAR and v.decidable}
    sizes = [len(w.arms) if w.arms is not None else 1 for w in spare.values()]
    assert sizes == sorted(sizes) and all(w.seeds == 4 for w in spare.values())
    for budget, trained in ((10_000.0, list(spare)), (study_plan.spent(wider, out), [])):
        given = dataclasses.replace(wider, budget_s=budget)
        calls: list[str] = []
        lines: list[str] = []

        def run_one(sweep: Sweep, _title: str, _budget: float | None, calls=calls) -> None:
            calls.append(sweep.name)

        study_plan._with_the_budget_left(given, out, spare, run_one,
                                         study_plan._OwnTime(given, out), lines.append)
        assert calls == trained, (calls, lines)
        assert len([ln for ln in lines if "no more seeds for the open claims of" in ln]) == (
            len(spare) - len(trained))


def test_dry_run_lists_every_run_and_estimates_the_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runs listed and laid out; the speeds are given (measuring them: test_estimate)."""
    speeds = lambda configs: ({estimate.speed_key(c): (0.001, 0.5, 2.0)  # noqa: E731
                               for c in configs}, 3.0)
    monkeypatch.setattr(estimate, "measured", speeds)
    result = CliRunner().invoke(main, ["reproduce", "--dry-run", *TINY])
    assert result.exit_code == 0, result.output
    adaptive = study_plan.plan([v for v in TINY if v != "--set"], budget_s=1800)
    least = [r.config for s in adaptive.sweeps if s.name != "batch-size"
             for r in minimum_runs(s)]
    timed = [r.config for r in minimum_runs(adaptive.sweep("batch-size"))]
    shared, apart = (capacity.plan("auto", timed + least, timed=t) for t in (False, True))
    seconds = (estimate.laid_out(least, *speeds(least), shared)
               + estimate.laid_out(timed, speeds(timed)[0], 0.0, apart))  # all-cores alone
    assert (f"105 runs at least in 6 sweeps; estimated time on this machine with --jobs auto: "
            f"about {format_duration(seconds)} (") in result.output
    assert ("sweep batch-size (batch-size): 180 runs at most (9 arms x 3..20 seeds, adaptive: "
            "27 runs at least") in result.output
    assert ("105 runs at least in 6 sweeps; estimated time on this machine with --jobs auto: "
            "about ") in result.output
    assert ("700 runs at most in 6 sweeps; estimated time on this machine with --jobs auto: "
            "about ") in result.output
    assert ("budget: 30m00s; every sweep's minimum seeds first, then more seeds for the "
            "claims still not distinguishable, as many as a power analysis of the minimum "
            "seeds asks for (none past the maximum), for the arms their tests still need"
            ) in result.output
    help_text = CliRunner().invoke(main, ["reproduce", "--help"]).output
    assert f"(default {study_plan.MAX_REPEATS})" in " ".join(help_text.split())
    assert adaptive.sweeps[0].adaptive.max_repeats == study_plan.MAX_REPEATS
    fixed = study_plan.plan(repeats=3, budget_s=1800)
    assert fixed.budget_s is None and sum(len(s.runs) for s in fixed.sweeps) == 105
    adaptive = study_plan.plan(budget_s=1800)
    first, second = (s.name for s in adaptive.sweeps[:2])
    wanted = {first: 2, second: 1, "grid": 1}
    assert adaptive.budget_of(first, tmp_path, wanted) == pytest.approx(1800 * 2 / 4)
    # what every sweep spent (seeds.json) is taken off; the rest shared by open claims
    # among the sweeps still to get more seeds, on top of the sweep's own time so far
    storage.write_json(tmp_path / first / "seeds.json", {"spent_s": 1200.0})
    assert adaptive.budget_of(second, tmp_path, {second: 1, "grid": 1}) == pytest.approx(
        600 / 2)
    storage.write_json(tmp_path / second / "seeds.json", {"spent_s": 100.0})
    assert adaptive.budget_of(second, tmp_path, {second: 1}) == pytest.approx(100 + 500)
    storage.write_json(tmp_path / "seeds.json", {"spent_s": 60.0})  # the study's own steps
    assert adaptive.budget_of(second, tmp_path, {second: 1}) == pytest.approx(100 + 440)
    storage.write_json(tmp_path / first / "seeds.json", {"spent_s": 2000.0})
    assert adaptive.budget_of(second, tmp_path, {second: 1}) == pytest.approx(100)
    assert not (tmp_path / "outputs").exists()


def test_the_study_names_built_in_sweeps_and_a_folder_of_its_own() -> None:
    assert set(sweeps.STUDY_SWEEPS) <= set(builtin_sweeps())
    assert sweeps.BEST not in builtin_sweeps() and sweeps.TIMED_SWEEP in sweeps.STUDY_SWEEPS


def test_bad_repeats_and_set_are_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["reproduce", "--repeats", "0", "--dry-run"])
    assert result.exit_code == 2
    one_line_error(result.stderr, "--repeats: repeats: got 0")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "file").write_text("x")
    result = CliRunner().invoke(main, ["reproduce", "--out", str(tmp_path / "x"), *TINY])
    assert result.exit_code == 2
    one_line_error(result.stderr, "not a reproduce folder")
    (tmp_path / "x" / "reproduce.yaml").write_bytes(b"repeats: [auto\n\xff")  # damaged
    result = CliRunner().invoke(main, ["reproduce", "--out", str(tmp_path / "x"), *TINY])
    assert result.exit_code == 2
    one_line_error(result.stderr, f"{tmp_path / 'x' / 'reproduce.yaml'}: damaged",
                   "choose a new --out")
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["file", "reproduce.yaml"]
