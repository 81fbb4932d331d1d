"""The ``report.html`` of ``cnnlab reproduce``, laid out like the reference report.

Section by section: each figure and table of the study, the reference report's own
figure beside ours where it gives one, and the verdict on each of its claims. Pictures
are embedded (:func:`cnnlab.report.pages.image`), so the page stands alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnlab.report.pages import (
    caption,
    csv_table,
    esc,
    image,
    inline_markdown,
    key_values,
    page,
    per_class_table,
    table,
)
from cnnlab.reproduce.sweeps import BATCH_SIZE, BEST, DEPTH, GRID, OPTIMIZER, REGULARIZATION
from cnnlab.reproduce.verdicts import FAILS, HOLDS, UNCLEAR, Verdict
from cnnlab.runs import layout, load, storage

COLOURS = {HOLDS: "#1a7f37", FAILS: "#b42318", UNCLEAR: "#8a6d00"}


def _figures(folder: Path, names: tuple[str, ...], what: str) -> str:
    """The figures of one study folder, each captioned as on a sweep page, with ``what``."""
    shown = []
    for name in names:
        if (folder / name).exists():
            text, size = caption(folder / name)
            shown.append(image(folder / name, f"{text} ({what})", size))
    return "".join(shown)


def _findings(folder: Path) -> str:
    path = folder / layout.FINDINGS_FILE
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    items = [f"<li>{inline_markdown(line[2:])}</li>" for line in lines if line.startswith("- ")]
    return f"<ul>{''.join(items)}</ul>" if items else ""


def _table1(batch: Path) -> str:
    """Table 1 of the report beside ours, as text: the batch-size sweep's timing table."""
    found = csv_table(batch / layout.TIMING_TABLE_CSV_FILE)
    return (f"<p class=\"note\">Table 1: time per step and per epoch by batch size; the "
            f"<code>report_</code> columns are the report's numbers.</p>{found}" if found
            else "")


def _verdicts(judged: list[Verdict], section: str | None = None) -> str:
    shown = [v for v in judged if section is None or v.section == section]
    if not shown:
        return ""
    rows = [[f'<b style="color:{COLOURS[v.verdict]}">{esc(v.verdict)}</b>', esc(v.section),
             esc(v.claim), esc(v.metric), esc(v.evidence), esc(v.seeds)] for v in shown]
    return table(["verdict", "section", "claim of the report", "tested on", "our numbers",
                  "seeds"], rows, raw_columns=(0, 1, 2, 3, 4, 5))


def _sections(root: Path, judged: list[Verdict], facts: dict[str, Any],
              best_run: Path | None) -> list[tuple[str, str]]:
    batch = root / BATCH_SIZE
    return [
        ("The report's claims", _verdicts(judged)),
        ("1. Data: split and standardization",
         image(root / layout.STANDARDIZATION_FILE, "Pixel values before and after per-image "
               "standardization", "large") + key_values(facts["split"])),
        ("2. Reference models: trainable parameters", key_values(facts["params"])),
        ("3. Batch size (Table 1, Figure 2)",
         _verdicts(judged, "3") + _findings(batch) + _table1(batch) + _figures(
             batch, (layout.TIMING_FILE, layout.ACCURACY_FILE, layout.SWEEP_CURVES_FILE),
             f"sweep {BATCH_SIZE}")),
        ("4. Optimizers (Figure 3)", _sweep_section(root / OPTIMIZER)),
        ("6. Depth and grid search (Figures 4-5)",
         _verdicts(judged, "6") + _sweep_section(root / DEPTH)
         + _sweep_section(root / GRID)),
        ("6. The best model (Figures 6-7)",
         key_values(facts["best"]) + _best_model(root / BEST, best_run)),
        ("7. Over-fitting and its remedies (Figures 8-9)",
         _verdicts(judged, "7") + key_values(facts["overfitting"])
         + _sweep_section(root / REGULARIZATION)),
        ("8. Activation maps (Figures 10-11)", _figures_in(best_run, layout.ACTIVATIONS_DIR)),
    ]


def _sweep_section(folder: Path) -> str:
    return _findings(folder) + _figures(folder, (layout.ACCURACY_FILE, layout.SWEEP_CURVES_FILE),
                                        f"sweep {folder.name}")


def _best_model(folder: Path, run_dir: Path | None) -> str:
    if run_dir is None:
        return '<p class="note">The best model has no finished run yet.</p>'
    figures = _figures(run_dir, (layout.CURVES_FILE, layout.CONFUSION_FILE),
                       f"best model, {run_dir.name}")
    return _findings(folder) + figures + per_class_table(load.read_run(run_dir).metrics)


def _figures_in(run_dir: Path | None, sub: str) -> str:
    if run_dir is None:
        return ""
    return "".join(image(p, *caption(p)) for p in sorted((run_dir / sub).glob("*.png")))


def write(study: Any, root: Path, judged: list[Verdict], facts: dict[str, Any],
          best_run: Path | None) -> Path:
    """Write ``<root>/report.html``; returns its path. ``facts``: the study's figures
    with the report's beside them (:func:`cnnlab.reproduce.study.facts`)."""
    text = page("cnnlab reproduce: the reference CNN study",
                _sections(root, judged, facts, best_run),
                subtitle=f"{root.resolve()} -- " + (
                    f"{study.repeats} repeats per arm" if not study.sweeps[0].adaptive else
                    f"adaptive seeds, {study.sweeps[0].adaptive.min_repeats} to "
                    f"{study.sweeps[0].adaptive.max_repeats} per arm")
                + (f"; --set {' '.join(study.overrides)}" if study.overrides else "")
                + f"; {study.level_text()}")
    target = root / layout.REPORT_FILE
    storage.write_atomic(target, text)
    return target
