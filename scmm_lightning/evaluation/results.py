"""Per-subject result rows -> CSV, Markdown, PNG and a console table (files written atomically)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..corpora.cache import current_umask

METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "auroc")
LABELS = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced acc.",
    "macro_f1": "macro-F1",
    "auroc": "AUROC",
    "val_balanced_accuracy": "val. balanced acc.",
    "probe_balanced_accuracy": "probe balanced acc.",
}
COLUMNS = (
    "method",
    "subject",
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "auroc",
    "probe_accuracy",
    "probe_balanced_accuracy",
    "best_epoch",
    "best_step",
    "folds",
    "val_balanced_accuracy",
    "val_acc",
    "optimistic_best_test_acc",
    "balanced_selection_gap",
    "random_choice_gap",
    "n_finetune",
    "n_val",
    "n_test",
    "train_accuracy",
    "test_classes",
)


SUMMARY_KEYS = (*METRICS, "probe_balanced_accuracy", "val_balanced_accuracy", "optimistic_best_test_acc")
COMPARED = ("accuracy", "balanced_accuracy")
OPTIMISTIC_NOTE = (
    "*Optimistic: the best test accuracy over fine-tuning epochs (the authors' protocol, model selection on "
    "test data); for comparison with published numbers only."
)


def rows_from(results: dict[str, dict[int, dict]]) -> list[dict]:
    """Flatten ``{method: {subject: metrics}}`` into rows (one per method and target subject)."""
    rows = []
    for method, per_subject in results.items():
        for subject, m in sorted(per_subject.items()):
            rows.append({c: (method if c == "method" else subject if c == "subject" else m.get(c)) for c in COLUMNS})
    return rows


def read_rows(path: str | Path, **extra: object) -> list[dict]:
    """Rows of a ``transfer_results.csv`` with numbers parsed (empty cells None), plus ``extra``
    fields (e.g. ``seed``) on every row."""
    rows = []
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            row: dict = {}
            for k, v in r.items():
                if k in ("method", "test_classes"):
                    row[k] = v
                elif v in ("", None):
                    row[k] = None
                else:
                    row[k] = float(v) if any(ch in v for ch in ".en") else int(v)
            rows.append({**row, **extra})
    return rows


def _mean(values: list) -> float:
    vals = np.array([v for v in values if v is not None and not math.isnan(v)], float)
    return float(vals.mean()) if len(vals) else math.nan


SEED_SPREAD = "mean +/- std over seeds of each seed's mean over target subjects"
"""What every multi-seed table's "mean +/- std" is (the std is between seeds, not over subject x seed rows)."""


def summary(rows: list[dict]) -> dict[str, dict[str, tuple[float, float]]]:
    """Mean and standard deviation (ddof 0) of each metric per method. Rows of one run: over target
    subjects. Rows carrying a ``seed`` (several runs): over seeds of each seed's mean over target
    subjects. NaN and missing values are left out."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        sel = [r for r in rows if r["method"] == method]
        out[method] = {}
        for key in SUMMARY_KEYS:
            if any("seed" in r for r in sel):
                seeds = sorted({r["seed"] for r in sel})
                vals = np.array([_mean([r.get(key) for r in sel if r["seed"] == e]) for e in seeds], float)
                vals = vals[~np.isnan(vals)]
            else:
                vals = np.array([r[key] for r in sel if r.get(key) is not None and not math.isnan(r[key])], float)
            out[method][key] = (float(vals.mean()), float(vals.std())) if len(vals) else (math.nan, math.nan)
    return out


def summary_markdown(rows: list[dict], heading: str, keys: tuple[str, ...] = SUMMARY_KEYS) -> str:
    """One Markdown table: a line per method, mean +/- std of each of ``keys`` and the row count."""
    label = {**LABELS, "optimistic_best_test_acc": "optimistic best-test accuracy*"}
    lines = [
        heading,
        "",
        "| method | " + " | ".join(label[k] for k in keys) + " | rows |",
        "|---|" + "---|" * (len(keys) + 1),
    ]
    for method, s in summary(rows).items():
        n = sum(r["method"] == method for r in rows)
        lines.append(f"| {method} | " + " | ".join(f"{s[k][0]:.4f} +/- {s[k][1]:.4f}" for k in keys) + f" | {n} |")
    return "\n".join(lines)


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4f}"
    return "" if v is None else str(v)


def comparison_pairs(rows: list[dict], reference: str = "pretrained") -> list[tuple[str, str]]:
    """``reference`` against each control present (random_init, raw_features)."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    return [(reference, m) for m in ("random_init", "raw_features") if m in methods and reference in methods]


def comparisons_markdown(comparisons: list[dict], unit: str) -> str:
    lines = [
        f"## Paired comparisons (per {unit}: mean difference a - b, 95% bootstrap CI, Wilcoxon signed-rank p)",
        "",
        "| a | b | metric | n | mean difference | 95% CI | p |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        lines.append(
            f"| {c['a']} | {c['b']} | {c['metric']} | {c['n']} | {c['mean_difference']:+.4f} | "
            f"[{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] | {c['p_value']:.4g} |"
        )
    return "\n".join(lines)


def markdown(rows: list[dict], title: str) -> str:
    lines = [f"# {title}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_fmt(r[c]) for c in COLUMNS) + " |" for r in rows]
    lines += ["", summary_markdown(rows, "## Mean +/- std over target subjects")]
    lines += [
        "",
        "Accuracy, balanced accuracy, macro-F1 and AUROC are on test trials, of the fine-tuned model at its",
        "reported checkpoint (column best_step / best_epoch: the budget's last under finetune.selection fixed, else",
        "the one chosen on validation; under LP-FT's default finetune.ema_decay auto, the moving average of its",
        "weights there); validation columns: cross-validation folds of the fine-tuning trials, or a",
        "hold-out (column folds); probe columns: the same encoder's linear probe on the same trials. "
        + OPTIMISTIC_NOTE,
    ]
    return "\n".join(lines) + "\n"


def console_table(rows: list[dict], title: str, comparisons: list[dict] | None = None) -> str:
    s = summary(rows)
    width = max(len(m) for m in s) + 2
    methods = list(s)
    subjects = sorted({r["subject"] for r in rows})
    acc = {(r["method"], r["subject"]): r["accuracy"] for r in rows}
    lines = [
        title,
        "test accuracy per target subject:",
        f"{'subject':>8}" + "".join(f"{m:>{width + 4}}" for m in methods),
    ]
    lines += [f"{sub:>8}" + "".join(f"{_fmt(acc.get((m, sub))):>{width + 4}}" for m in methods) for sub in subjects]
    shown = (*METRICS, "probe_balanced_accuracy")
    head = f"{'method':<{width}}" + "".join(f"{LABELS[k]:>20}" for k in shown) + f"{'optimistic*':>20}"
    lines += ["", "mean +/- std over subjects:", head, "-" * len(head)]
    for method, v in s.items():
        lines.append(
            f"{method:<{width}}"
            + "".join(f"{v[k][0]:>11.4f} +/-{v[k][1]:.3f}" for k in (*shown, "optimistic_best_test_acc"))
        )
    lines.append("* best test accuracy over fine-tuning epochs (selection on test data): comparison only")
    if comparisons:
        lines += ["", "paired over target subjects (a - b, 95% bootstrap CI, Wilcoxon p):"]
        lines += [
            f"  {c['a']} - {c['b']} {c['metric']}: {c['mean_difference']:+.4f} "
            f"[{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] p={c['p_value']:.4g} (n={c['n']})"
            for c in comparisons
        ]
    return "\n".join(lines)


def manifest_path(csv_path: Path) -> Path:
    """The manifest of the result set a ``<stem>.csv`` belongs to: ``<stem>.manifest.json``."""
    return csv_path.with_name(csv_path.stem + ".manifest.json")


def write_result_set(out: Path, files: dict[str, bytes], stem: str) -> dict[str, Path]:
    """Write several result files as ONE set: the old set's manifest is removed first, each file is
    written atomically, and the manifest (each file's SHA-256) is written last. A run killed between
    two files leaves no manifest, so readers (:func:`check_result_set`) never take the csv of one run
    for the table of another."""
    manifest = out / f"{stem}.manifest.json"
    manifest.unlink(missing_ok=True)
    paths = {}
    for name, data in files.items():
        paths[name] = out / name
        atomic_write(paths[name], data)
    digest = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    atomic_write(manifest, json.dumps({"files": digest}, indent=2).encode())
    return paths


def check_result_set(csv_path: str | Path) -> None:
    """Refuse a results csv whose set is not whole (no manifest: a killed write, or files of several
    runs) or whose files changed since (a hash differs); the error names the folder and the fix."""
    csv_path = Path(csv_path)
    manifest = manifest_path(csv_path)
    if not manifest.is_file():
        raise ValueError(
            f"{csv_path}: its result set has no {manifest.name} (the run that wrote it was killed mid-write, or the "
            "files come from different runs); run the evaluation again"
        )
    listed = json.loads(manifest.read_text())["files"]
    for name, want in listed.items():
        path = csv_path.parent / name
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != want:
            raise ValueError(
                f"{path}: differs from its result set's {manifest.name} (a file of another run, or edited); run the "
                "evaluation again"
            )


def results_of_this_run(run_dir: Path, started: float, stem: str = "transfer_results") -> Path:
    """The ``<stem>.csv`` the run just made under ``run_dir`` wrote (newer than ``started``, its
    set whole): never an older run's table left in the same folder."""
    fresh = [p for p in Path(run_dir).rglob(f"{stem}.csv") if p.stat().st_mtime >= started - 1]
    if not fresh:
        raise SystemExit(f"error: {run_dir}: the run wrote no {stem}.csv (an older one is not used); see its log")
    latest = max(fresh, key=lambda q: q.stat().st_mtime)
    try:
        check_result_set(latest)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    return latest


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place (with the
    permissions any file the user writes gets: mkstemp's 0600 would hide results from the lab)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def png_bytes(fig, dpi: int = 110) -> bytes:  # noqa: ANN001
    """A matplotlib figure as PNG bytes (laid out, then closed)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def figure_png(rows: list[dict], confusion: torch.Tensor | None, class_names: list[str], title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(r["method"] for r in rows))
    subjects = sorted({r["subject"] for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [2.2, 1]})
    width = 0.8 / len(methods)
    for k, method in enumerate(methods):
        acc = {r["subject"]: r["accuracy"] for r in rows if r["method"] == method}
        xs = np.arange(len(subjects)) + k * width
        axes[0].bar(xs, [acc.get(s, np.nan) for s in subjects], width, label=method)
        mean = np.nanmean([acc.get(s, np.nan) for s in subjects])
        axes[0].axhline(mean, linestyle="--", linewidth=1, color=f"C{k}")
    axes[0].set_xticks(np.arange(len(subjects)) + 0.4 - width / 2, [str(s) for s in subjects])
    axes[0].set_xlabel("target subject")
    axes[0].set_ylabel("test accuracy (dashed: mean)")
    axes[0].set_ylim(0, 1)
    axes[0].legend(loc="lower right")
    axes[0].set_title(title)
    if confusion is not None:
        cm = confusion.float()
        cm = cm / cm.sum(1, keepdim=True).clamp_min(1)
        axes[1].imshow(cm.numpy(), vmin=0, vmax=1, cmap="Blues")
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                axes[1].text(
                    j, i, f"{cm[i, j]:.2f}", ha="center", va="center", color="white" if cm[i, j] > 0.5 else "black"
                )
        axes[1].set_xticks(range(len(class_names)), class_names, rotation=30)
        axes[1].set_yticks(range(len(class_names)), class_names)
        axes[1].set_xlabel("predicted")
        axes[1].set_ylabel("true")
        axes[1].set_title(f"confusion ({methods[0]}, all subjects)")
    return png_bytes(fig)


def write_results(
    out_dir: str | Path,
    rows: list[dict],
    confusion: torch.Tensor | None,
    class_names: list[str],
    title: str,
    stem: str = "transfer_results",
    comparisons: list[dict] | None = None,
    wall_seconds: float | None = None,
) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    for r in rows:
        writer.writerow({c: _fmt(r[c]) for c in COLUMNS})
    text = markdown(rows, title)
    if comparisons:
        text += "\n" + comparisons_markdown(comparisons, "target subject") + "\n"
    if wall_seconds is not None:
        text += f"\nEvaluation wall time: {wall_seconds:.1f} s\n"
    payload = {"methods": summary(rows), "comparisons": comparisons or [], "wall_seconds": wall_seconds}
    files = {  # every file rendered before any is written: the set goes to disk as one
        f"{stem}.csv": buf.getvalue().encode(),
        f"{stem}.md": text.encode(),
        f"{stem}.png": figure_png(rows, confusion, class_names, title),
        f"{stem}_summary.json": json.dumps(payload, indent=2).encode(),
    }
    written = write_result_set(out, files, stem)
    return {key: written[name] for key, name in zip(("csv", "md", "png", "json"), files)}


def comparison_png(rows: list[dict], title: str) -> bytes:
    """Bar chart: accuracy and macro-F1 per method, mean +/- std over its rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats = summary(rows)
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(stats)), 4))
    xs = np.arange(len(stats))
    for offset, key, label in ((-0.2, "accuracy", "accuracy"), (0.2, "macro_f1", "macro-F1")):
        ax.bar(
            xs + offset, [s[key][0] for s in stats.values()], 0.4, yerr=[s[key][1] for s in stats.values()], label=label
        )
    ax.set_xticks(xs, list(stats), rotation=35, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.legend()
    return png_bytes(fig)


def write_comparison(
    out_dir: str | Path, rows: list[dict], title: str, stem: str, comparisons: list[dict] | None = None
) -> dict[str, Path]:
    """Several runs' rows (e.g. methods x seeds) -> ``{stem}.md`` (the summary table: mean +/- std
    over seeds of the subject means, and the paired ``comparisons``), ``{stem}.csv`` (every row),
    ``{stem}.png`` (bar chart) and ``{stem}.json`` (summary and comparisons), written atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    for r in rows:
        writer.writerow({c: _fmt(r.get(c)) for c in columns})
    text = summary_markdown(rows, f"# {title} ({SEED_SPREAD})") + "\n\n" + OPTIMISTIC_NOTE + "\n"
    if comparisons:
        text += "\n" + comparisons_markdown(comparisons, "target subject x seed") + "\n"
    files = {
        f"{stem}.md": text.encode(),
        f"{stem}.json": json.dumps({"methods": summary(rows), "comparisons": comparisons or []}, indent=2).encode(),
        f"{stem}.csv": buf.getvalue().encode(),
        f"{stem}.png": comparison_png(rows, title),
    }
    written = write_result_set(out, files, stem)
    return {key: written[name] for key, name in zip(("md", "json", "csv", "png"), files)}
