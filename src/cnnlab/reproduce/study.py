"""``cnnlab reproduce``: the whole reference study, every section, from one command.

The study (``../shared/reference/lab.md``) is the built-in sweeps -- batch size,
optimizers, depth, grid search, over-fitting remedies -- plus the best model trained
alone, each with ``repeats`` seeds, and what is drawn from them: the standardization
figure, the reference models' layer tables, activation maps, the verdict on each of the
report's claims (:mod:`cnnlab.reproduce.verdicts`), one ``findings.md`` and one ``report.html``
laid out like the report (:mod:`cnnlab.reproduce.page`). Each sweep lives in its own
folder under the study's folder and resumes like any sweep.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cnnlab.data import dataset as data
from cnnlab.errors import RunError
from cnnlab.reproduce import verdicts
from cnnlab.runs import layout, load, storage
from cnnlab.sweep import results
from cnnlab.sweep import runner as sweep_runner
from cnnlab.sweep.spec import Sweep, describe, load_sweep, sweep_from_dict

Log = Callable[[str], None]
STUDY_SWEEPS = ("batch-size", "optimizer", "depth", "grid", "regularization")
BEST_MODEL = {"name": "best-model", "base": "best", "variants": {"best": {}},
              "description": "the report's best model (grid-search winner), trained alone"}
PLAN_FILE = "reproduce.yaml"


@dataclass(frozen=True)
class Study:
    sweeps: tuple[Sweep, ...]
    overrides: tuple[str, ...]
    repeats: int

    def sweep(self, name: str) -> Sweep:
        return next(s for s in self.sweeps if s.name == name)

    def record(self) -> dict[str, Any]:
        return {"repeats": self.repeats, "set": list(self.overrides),
                "sweeps": {s.name: [r.id for r in s.runs] for s in self.sweeps}}


def plan(overrides: Iterable[str] = (), repeats: int = 3) -> Study:
    """Every sweep of the study, validated, with ``--set`` and ``repeats`` applied."""
    overrides = tuple(overrides)
    sweeps = [load_sweep(name, overrides, repeats) for name in STUDY_SWEEPS]
    sweeps.append(sweep_from_dict(BEST_MODEL, "best-model", overrides=overrides,
                                  repeats=repeats))
    return Study(tuple(sweeps), overrides, repeats)


def dry_run(study: Study, log: Log = print) -> None:
    """List every run and estimate the total time from this machine's measured speed."""
    for sweep in study.sweeps:
        log(describe(sweep))
    total = sum(len(s.runs) for s in study.sweeps)
    seconds = estimate_seconds(study, log)
    log(f"\n{total} runs in {len(study.sweeps)} sweeps; estimated time on this machine: "
        f"about {sweep_runner.format_duration(seconds)} (measured step times, plus "
        f"{RUN_OVERHEAD_S:.0f} s per run for evaluation, plots and pages)")


RUN_OVERHEAD_S = 3.0


def estimate_seconds(study: Study, log: Log = print) -> float:
    """Steps of every run times the step time measured here for its batch size (the best
    model, a short timed fit per batch size), plus a fixed cost per run."""
    planned = [r.config for s in study.sweeps for r in s.runs]
    step_s = {b: _measure_step(b) for b in sorted({c.train.batch_size for c in planned})}
    total = 0.0
    for config in planned:
        train = config.data.train_size or 45_000
        steps = math.ceil(train / config.train.batch_size) * config.train.epochs
        total += steps * step_s[config.train.batch_size] * 1.15 + RUN_OVERHEAD_S  # + val
    return total


def _measure_step(batch: int) -> float:
    from cnnlab.backend import runtime

    runtime.select_default()
    from cnnlab.backend.tf import keras
    from cnnlab.config.schema import load_config
    from cnnlab.training.model import build_model

    model = build_model(load_config("best").model, (32, 32, 3), 10)
    model.compile("adam", "sparse_categorical_crossentropy", steps_per_execution=64)
    steps = max(8, min(64, 2048 // batch))
    x = np.random.default_rng(0).normal(size=(steps * batch, 32, 32, 3)).astype("float32")
    y = np.zeros(len(x), dtype="int64")
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # traces the graph
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    keras.backend.clear_session()
    return (time.perf_counter() - start) / steps


def study_folder(study: Study, out: str | Path | None, outputs_root: str | Path) -> Path:
    """A new ``<root>/reproduce-<timestamp>``, or ``out``: new, or this study's to resume."""
    if out is None:
        return storage.new_run_dir(None, "reproduce", outputs_root)
    path = Path(out)
    record = path / PLAN_FILE
    if path.is_dir() and any(path.iterdir()):
        if not record.exists():
            raise RunError(f"--out {path}: not empty and not a reproduce folder (no "
                           f"{PLAN_FILE}); choose a new folder")
        if yaml.safe_load(record.read_text(encoding="utf-8")) != study.record():
            raise RunError(f"--out {path}: holds a study with other --repeats or --set; "
                           "use the same options, or a new --out folder")
    path.mkdir(parents=True, exist_ok=True)
    return path


def run(study: Study, out: str | Path | None = None, log: Log = print,
        outputs_root: str | Path = "outputs", jobs: int | str = 1,
        progress: bool = False) -> Path:
    """Run (or resume) every sweep of the study, then judge and write the report;
    ``jobs`` and ``progress`` as in :func:`cnnlab.sweep.run.run_sweep`."""
    from cnnlab.sweep import run as sweeps

    root = study_folder(study, out, outputs_root)
    storage.write_atomic(root / PLAN_FILE, yaml.safe_dump(study.record(), sort_keys=False))
    for number, sweep in enumerate(study.sweeps, start=1):
        log(f"\n=== reproduce {number}/{len(study.sweeps)}: sweep {sweep.name} ===")
        sweeps.run_sweep(sweep, root / sweep.name, log=log, jobs=jobs, progress=progress)
    finish(study, root, log)
    return root


def finish(study: Study, root: Path, log: Log = print) -> None:
    """Figures, verdicts, findings.md and report.html of a study whose sweeps are done."""
    from cnnlab.report import figures as plots
    from cnnlab.report.activations import plot_activations
    from cnnlab.reproduce import page as reproduce_report

    best_run = _first_finished(root / "best-model")
    plots.plot_standardization(*_pixel_samples(study), root / "standardization.png")
    if best_run is not None and not any((best_run / layout.ACTIVATIONS_DIR).glob("*.png")):
        plot_activations(best_run, log=log)
    judged = judge(study, root)
    storage.write_atomic(root / layout.FINDINGS_FILE, findings_text(study, root, judged))
    page = reproduce_report.write(study, root, judged, facts(root, best_run), best_run)
    held = sum(v.verdict == verdicts.HOLDS for v in judged)
    log(f"\nreproduce: {held} of {len(judged)} claims of the report hold; report: {page}; "
        f"findings: {root / layout.FINDINGS_FILE}")


def facts(root: Path, best_run: Path | None) -> dict[str, dict[str, Any]]:
    """The study's own figures, with the report's beside them where it gives one."""
    reference = results.reference_numbers()
    baseline_run = _first_finished(root / "batch-size")
    best = next((r for r in _summary(root, "best-model")), None)
    onsets = [r.get("overfit_epoch") for r in _rows(root / "best-model" / layout.RESULTS_FILE)
              if r.get("status") in ("finished", "early_stopped")]
    seen = [int(e) for e in onsets if e not in ("", None)]
    return {
        "split": load.read_run(best_run).metrics["data"]["sizes"] if best_run else {},
        "params": {"baseline, ours": _metric(baseline_run, "trainable_params"),
                   "baseline, report": reference["baseline_params"],
                   "best, ours": _metric(best_run, "trainable_params"),
                   "best, report": reference["best_params"]},
        "best": {} if best is None else {
            "best validation accuracy, mean (95 % CI)": verdicts.mean_ci(best, "best_val_accuracy"),
            "test accuracy, mean (95 % CI)": verdicts.mean_ci(best, "test_accuracy"),
            "runs": best["n"]},
        "overfitting": {"over-fitting starts, report": f"epoch {reference['overfit_epoch']}",
                        "over-fitting starts, ours (best model)": (
                            f"epoch {sum(seen) / len(seen):.1f} on average, in {len(seen)} of "
                            f"{len(onsets)} runs" if seen else f"not seen in {len(onsets)} runs")},
    }


def _metric(run_dir: Path | None, key: str) -> Any:
    return load.read_run(run_dir).metrics.get(key) if run_dir else None


def _first_finished(sweep_dir: Path) -> Path | None:
    return next((p.parent for p in sorted(sweep_dir.glob(f"*/{layout.METRICS_FILE}"))), None)


def _pixel_samples(study: Study, count: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Raw pixels of some training images, and the same images standardized."""
    cfg = study.sweep("best-model").runs[0].config.data
    raw = data.read_cached(data.locate(cfg, lambda _: None).path, cfg, lambda _: None)[0]
    sample = raw.x_train[:count]
    return sample, data.standardize(sample)


def _rows(path: Path) -> list[dict[str, Any]]:
    return storage.read_csv(path) if path.exists() else []


def _summary(root: Path, name: str) -> list[dict[str, Any]]:
    """A sweep's summary.csv with numbers, None for empty cells and booleans restored."""
    cells = {"": None, "true": True, "false": False}
    return [{k: cells.get(v, v) if isinstance(v, str) else v for k, v in row.items()}
            for row in _rows(root / name / layout.SUMMARY_CSV_FILE)]


def judge(study: Study, root: Path) -> list[verdicts.Verdict]:
    """The verdict on each claim of the report that the study's numbers can test."""
    batch, depth = _summary(root, "batch-size"), _summary(root, "depth")
    grid = _summary(root, "grid")
    regularization = _rows(root / "regularization" / layout.RESULTS_FILE)
    found = [verdicts.rises_then_falls(batch), verdicts.step_and_epoch_time(batch),
             verdicts.arm_is_best(depth, lambda r: r["model.filters"] == "[8, 16, 32]", "6",
                                  "Three conv blocks do best"),
             verdicts.arm_is_best(grid, lambda r: r["model.filters"] == "[8, 16, 32]"
                                  and r["model.dense"] == "[64]"
                                  and float(r["train.learning_rate"]) == 0.001, "6",
                                  "The grid search picks the report's best model"),
             verdicts.overfitting_seen(regularization, "none", True, "7",
                                       "The best model over-fits (validation loss rises)"),
             verdicts.overfitting_seen(regularization, "l2", False, "7",
                                       "L2 regularization prevents over-fitting", "none"),
             verdicts.overfitting_seen(regularization, "dropout", False, "7",
                                       "Dropout prevents over-fitting", "none"),
             verdicts.overfitting_seen(regularization, "batch_norm", True, "7",
                                       "Batch norm does not fully prevent over-fitting",
                                       "none")]
    recalls = _recalls(root / "best-model")
    if recalls:
        found += [verdicts.best_recognised(recalls, "horse"),
                  verdicts.most_confused(recalls, ("bird", "cat", "dog"))]
    return found


def _recalls(sweep_dir: Path) -> dict[str, float]:
    per_class = [json.loads(p.read_text(encoding="utf-8")).get("per_class")
                 for p in sorted(sweep_dir.glob(f"*/{layout.METRICS_FILE}"))]
    per_class = [p for p in per_class if p]
    return verdicts.class_recalls(per_class) if per_class else {}


def findings_text(study: Study, root: Path, judged: list[verdicts.Verdict]) -> str:
    """findings.md of the study: the verdicts, then each sweep's own findings."""
    lines = [f"# Findings: the reference study reproduced ({study.repeats} repeats per arm"
             + (f"; --set {' '.join(study.overrides)}" if study.overrides else "") + ")", "",
             "## The report's claims", ""]
    lines += [f"- **{v.verdict}** (section {v.section}): {v.claim} -- {v.evidence}."
              for v in judged]
    for sweep in study.sweeps:
        path = root / sweep.name / layout.FINDINGS_FILE
        if path.exists():
            body = path.read_text(encoding="utf-8").splitlines()[1:]
            lines += ["", f"## Sweep {sweep.name}", *[ln.replace("## ", "### ") for ln in body]]
    return "\n".join(lines) + "\n"
