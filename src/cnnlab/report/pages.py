"""``report.html`` for a run folder or a sweep folder: one self-contained page.

Images are embedded as base64 ``data:`` URIs and the style sheet is inline, so
the page needs no network and can be mailed or archived on its own. Every text
taken from the folder is HTML-escaped.

- A run folder (``metrics.json``): metrics, curves, confusion matrix, the
  per-epoch history and timing table, the config, the data record, the
  environment, the layer table and, once drawn, the PNGs in ``activations/``.
- A sweep folder (``results.csv`` and run subfolders holding ``metrics.json``):
  the findings and the per-arm summary first (``findings.md``, ``summary.csv``), the
  results table (whatever columns it has), every PNG in the folder, and a link to each
  run's own report (built if missing).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from cnnlab.errors import RunError
from cnnlab.runs import layout, load, storage

REPORT_NAME = layout.REPORT_FILE
# Each known figure's caption and size on the page, by how much it tells: large (the
# page's width), medium, small (a flat learning-rate line needs little room).
FIGURES = {
    layout.CURVES_FILE: ("Learning curves: loss and accuracy by epoch", "large"),
    layout.CONFUSION_FILE: ("Confusion matrix of the test set", "medium"),
    layout.LEARNING_RATE_FILE: ("Learning rate by epoch", "small"),
    layout.ACCURACY_FILE: ("Best validation and test accuracy by run or arm", "large"),
    layout.TIMING_FILE: ("Time per step and per epoch by batch size, beside the report's",
                         "large"),
    layout.SEARCH_HISTORY_FILE: ("Each trial's metric and the best so far", "medium"),
    layout.IMPORTANCE_FILE: ("Which parameter mattered (fANOVA importance)", "medium"),
}
RUN_FIGURES = (layout.CURVES_FILE, layout.CONFUSION_FILE, layout.LEARNING_RATE_FILE)
TABLE_PICTURES = {layout.TIMING_TABLE_PNG_FILE}  # shown as the HTML table of its CSV instead
ACTIVATION_NAME = re.compile(r"(?P<gradcam>gradcam-)?(?P<layer>.+)-(?P<split>test|val)"
                             r"(?P<index>\d+)")
Log = Callable[[str], None]

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; }
.scroll { max-width: 100%; overflow-x: auto; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
th { background: #f2f2f2; } td.text, th.text { text-align: left; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
code { background: #f2f2f2; padding: 0 0.2em; }
figure { margin: 1em 0; display: inline-block; vertical-align: top; margin-right: 1em; }
figure.large { display: block; max-width: 100%; margin-right: 0; }
figure.medium { max-width: 720px; } figure.small { max-width: 420px; }
figcaption { color: #555; font-size: 0.9em; margin-top: 0.3em; }
img { max-width: 100%; height: auto; border: 1px solid #eee; box-sizing: border-box; }
.note { color: #555; font-size: 0.9em; }
"""


# --- html pieces --------------------------------------------------------------------


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"<td>{value:.4g}</td>"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"<td>{value}</td>"
    if isinstance(value, dict):  # key_values flattens these; elsewhere: key: value, ...
        value = ", ".join(f"{k}: {v}" for k, v in value.items())
    elif isinstance(value, list | tuple):
        value = ", ".join(map(str, value))
    return f'<td class="text">{esc("" if value is None else value)}</td>'


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]],
          raw_columns: Sequence[int] = ()) -> str:
    """An HTML table; cells of ``raw_columns`` are already HTML (links)."""
    head = "".join(f'<th class="text">{esc(c)}</th>' for c in columns)
    body = []
    for row in rows:
        cells = [f'<td class="text">{v}</td>' if i in raw_columns else _cell(v)
                 for i, v in enumerate(row)]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><tr>{head}</tr>{"".join(body)}</table></div>'


def key_values(mapping: dict[str, Any]) -> str:
    """A two-column table; nested records flattened to dotted keys (``distribute.class``)."""
    return table(["key", "value"], ([k, v] for k, v in storage.flatten(mapping).items()))


def image(path: Path, caption: str, size: str = "medium") -> str:
    """An embedded PNG with its caption; ``size``: large, medium or small on the page.
    ``data-file`` names the file the picture came from."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure class="{size}"><img src="data:image/png;base64,{data}" '
            f'alt="{esc(caption)}" data-file="{esc(path.name)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def caption(path: Path) -> tuple[str, str]:
    """A figure's caption and size: the known ones from :data:`FIGURES`, activation maps
    by layer and image, any other from its name in words."""
    if path.name in FIGURES:
        return FIGURES[path.name]
    found = ACTIVATION_NAME.fullmatch(path.stem)
    if path.parent.name == layout.ACTIVATIONS_DIR and found:
        what = "Grad-CAM on" if found["gradcam"] else "Activations of"
        split = "test" if found["split"] == "test" else "validation"
        return f"{what} {found['layer']}, {split} image {int(found['index'])}", "large"
    words = path.stem.replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:], "medium"


def inline_markdown(text: str) -> str:
    """One line of Markdown as HTML: escaped, with its bold and code marks rendered."""
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", esc(text))
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def page(title: str, sections: Sequence[tuple[str, str]], subtitle: str = "") -> str:
    body = "".join(f"<h2>{esc(name)}</h2>\n{content}\n" for name, content in sections if content)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n<body>"
        f"<h1>{esc(title)}</h1><p class=\"note\">{esc(subtitle)}</p>\n{body}</body></html>\n"
    )


def _pre(path: Path) -> str:
    return f"<pre>{esc(path.read_text(encoding='utf-8'))}</pre>" if path.exists() else ""


def _images(paths: Iterable[Path]) -> str:
    return "".join(image(p, *caption(p)) for p in paths if p.name not in TABLE_PICTURES)


# --- run page -----------------------------------------------------------------------


def _metrics_table(metrics: dict[str, Any]) -> str:
    skip = {"data", "environment", "confusion_matrix", "timing_note", "per_class",
            "most_confused", "phases"}
    shown = {k: v for k, v in metrics.items() if k not in skip}
    note = metrics.get("timing_note")
    return key_values(shown) + (f'<p class="note">{esc(note)}</p>' if note else "")


def per_class_table(metrics: dict[str, Any]) -> str:
    classes = metrics.get("per_class") or {}
    if not classes:
        return ""
    head = table(["class", "precision", "recall", "F1", "support"],
                 ([name, v["precision"], v["recall"], v["f1"], v["support"]]
                  for name, v in classes.items()))
    pairs = metrics.get("most_confused") or []
    confused = table(["true class", "predicted as", "images"],
                     ([p["true"], p["predicted"], p["count"]] for p in pairs))
    return head + "<p class=\"note\">Most confused pairs (largest off-diagonal cells of " \
        "the confusion matrix):</p>" + confused


def _history_table(history: list[dict[str, Any]]) -> str:
    if not history:
        return ""
    columns = list(history[0])
    return table(columns, ([row.get(c) for c in columns] for row in history))


def run_page(run: load.Run) -> str:
    root = run.path
    figures = _images([*(root / n for n in RUN_FIGURES if (root / n).exists()),
                       *sorted(p for p in root.glob("*.png") if p.name not in RUN_FIGURES)])
    maps = _images(sorted((root / layout.ACTIVATIONS_DIR).glob("*.png")))
    if not maps:
        maps = ('<p class="note">None drawn yet: <code>cnnlab plot-activations '
                f"{esc(root)}</code> draws them and rebuilds this page.</p>")
    return page(f"cnnlab run: {run.name}", [
        ("Metrics", _metrics_table(run.metrics)),
        ("Figures", figures),
        ("Per class on the test set", per_class_table(run.metrics)),
        ("History and timing per epoch", _history_table(run.history)),
        ("Time per phase of the run (s)", key_values(run.metrics.get("phases", {}))),
        ("Activation maps", maps),
        ("Config", _pre(root / layout.CONFIG_FILE)),
        ("Data", key_values(run.metrics.get("data", {}))),
        ("Model", _pre(root / layout.SUMMARY_FILE)),
        ("Environment", key_values(run.metrics.get("environment", {}))),
    ], subtitle=f"{root.resolve()} -- status {run.status}")


# --- sweep page ---------------------------------------------------------------------


def sweep_runs(folder: Path) -> list[Path]:
    """Run subfolders of a sweep folder (those holding metrics.json), sorted."""
    return sorted(p.parent for p in folder.glob(f"*/{layout.METRICS_FILE}"))


def _link(folder: Path, value: Any, run_dirs: dict[Path, Path]) -> str | None:
    """A link to a run's report if ``value`` names one of the sweep's run folders."""
    text = str(value).strip()
    if not text:
        return None
    for candidate in (Path(text), folder / text):
        try:
            resolved = candidate.resolve()
        except (OSError, RuntimeError):
            continue
        if resolved in run_dirs:
            href = f"{run_dirs[resolved].name}/{REPORT_NAME}"
            return f'<a href="{esc(href)}">{esc(text)}</a>'
    return None


def _sweep_file(path: Path) -> str:
    """A file the sweep writes from its run folders; RunError naming it when damaged."""
    try:
        return path.read_bytes().decode("utf-8")
    except (ValueError, IsADirectoryError, NotADirectoryError, FileNotFoundError) as exc:
        what = "missing" if isinstance(exc, FileNotFoundError) else (
            f"damaged ({type(exc).__name__})")
        raise RunError(f"{path}: {what}; run the same sweep command with this --out again: "
                       "it rewrites the file from the run folders") from None


def _csv_rows(path: Path) -> list[list[str]]:
    try:
        return list(csv.reader(io.StringIO(_sweep_file(path), newline="")))
    except csv.Error as exc:
        raise RunError(f"{path}: damaged ({exc}); run the same sweep command with this --out "
                       "again: it rewrites the file from the run folders") from None


def _markdown_list(path: Path) -> str:
    """The bullet lines of a findings.md as HTML paragraphs (bold and code marks kept)."""
    if not path.exists():
        return ""
    items = []
    for line in _sweep_file(path).splitlines():
        if line.startswith("## "):
            items.append(f"<h3>{esc(line[3:])}</h3>")
        elif line.startswith("- "):
            items.append(f"<p>{inline_markdown(line[2:])}</p>")
    return "".join(items)


def csv_table(path: Path) -> str:
    if not path.exists():
        return ""
    rows = _csv_rows(path)
    cells = ([storage.parse_cell(v) for v in row] for row in rows[1:])
    return table(rows[0], cells) if rows else ""


def _results_table(folder: Path, run_dirs: dict[Path, Path]) -> str:
    rows = _csv_rows(folder / layout.RESULTS_FILE)
    if not rows:
        return '<p class="note">results.csv is empty.</p>'
    columns, body = rows[0], []
    for row in rows[1:]:
        cells: list[Any] = []
        for value in row:
            cells.append(_link(folder, value, run_dirs) or esc(value))
        body.append(cells)
    return table(columns, body, raw_columns=range(max(len(columns), *map(len, rows))))


def sweep_page(folder: Path, log: Log) -> str:
    run_list = sweep_runs(folder)
    links = []
    for run_dir in run_list:
        if not (run_dir / REPORT_NAME).exists() and not run_dir.is_symlink():  # stays inside
            try_write_report(run_dir, log)
        target = f"{run_dir.name}/{REPORT_NAME}"
        links.append(f'<li><a href="{esc(target)}">{esc(run_dir.name)}</a></li>')
    run_dirs = {p.resolve(): p for p in run_list}
    plots = _images(sorted(folder.glob("*.png")))
    return page(f"cnnlab sweep: {folder.resolve().name}", [
        ("Findings", _markdown_list(folder / layout.FINDINGS_FILE)),
        ("Summary by arm (mean over repeats, 95 % interval)",
         csv_table(folder / layout.SUMMARY_CSV_FILE)),
        ("Time per step and per epoch beside the report's Table 1",
         csv_table(folder / layout.TIMING_TABLE_CSV_FILE)),
        ("Results", _results_table(folder, run_dirs)),
        ("Comparison plots", plots or '<p class="note">No plots in this folder.</p>'),
        ("Runs", f"<ul>{''.join(links)}</ul>"),
    ], subtitle=f"{folder.resolve()} -- {len(run_list)} runs")


# --- entry points -------------------------------------------------------------------


def write_report(path: str | Path, log: Log = print) -> Path:
    """Write ``report.html`` into a run folder or a sweep folder; returns its path."""
    folder = Path(path)
    if not folder.is_dir():
        raise RunError(f"{folder}: no such folder; give a run folder or a sweep folder")
    if storage.is_sweep_folder(folder):
        text = sweep_page(folder, log)
    else:
        if (folder / layout.RESULTS_FILE).exists() and not storage.is_finished(folder):
            raise RunError(f"{folder}: a sweep folder with no finished runs yet "
                           "(no <run>/metrics.json); run the sweep first")
        text = run_page(load.read_run(folder))
    target = folder / REPORT_NAME
    storage.write_atomic(target, text)
    return target


def write_run_page(run: load.Run) -> Path:
    """``report.html`` of a run from its record in memory (before metrics.json is
    written, which marks the run finished)."""
    target = run.path / REPORT_NAME
    storage.write_atomic(target, run_page(run))
    return target


def try_write_report(run_dir: str | Path, log: Log = print) -> Path | None:
    """:func:`write_report`, but a failure is one logged line, never an exception."""
    try:
        return write_report(run_dir, log)
    except Exception as exc:  # noqa: BLE001 - the run itself is finished and kept
        log(f"report.html not written for {run_dir}: {type(exc).__name__}: {exc}")
        return None
