"""Per-subject result rows -> CSV, Markdown, PNG and a console table (files written atomically)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "auroc")
LABELS = {"accuracy": "accuracy", "balanced_accuracy": "balanced acc.", "macro_f1": "macro-F1", "auroc": "AUROC"}
COLUMNS = (
    "method",
    "subject",
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "auroc",
    "best_epoch",
    "val_acc",
    "optimistic_best_test_acc",
    "n_finetune",
    "n_val",
    "n_test",
)


def rows_from(results: dict[str, dict[int, dict]]) -> list[dict]:
    """Flatten ``{method: {subject: metrics}}`` into rows (one per method and target subject)."""
    rows = []
    for method, per_subject in results.items():
        for subject, m in sorted(per_subject.items()):
            rows.append({c: (method if c == "method" else subject if c == "subject" else m.get(c)) for c in COLUMNS})
    return rows


def summary(rows: list[dict]) -> dict[str, dict[str, tuple[float, float]]]:
    """Mean and standard deviation (over subjects, ddof 0) of each metric per method."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        sel = [r for r in rows if r["method"] == method]
        out[method] = {}
        for key in (*METRICS, "optimistic_best_test_acc"):
            vals = np.array([r[key] for r in sel if r.get(key) is not None and not math.isnan(r[key])], float)
            out[method][key] = (float(vals.mean()), float(vals.std())) if len(vals) else (math.nan, math.nan)
    return out


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4f}"
    return "" if v is None else str(v)


def markdown(rows: list[dict], title: str) -> str:
    lines = [f"# {title}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_fmt(r[c]) for c in COLUMNS) + " |" for r in rows]
    lines += [
        "",
        "## Mean +/- std over target subjects",
        "",
        "| method | " + " | ".join(LABELS[k] for k in METRICS) + " | optimistic best-test accuracy* |",
        "|---|" + "---|" * (len(METRICS) + 1),
    ]
    for method, s in summary(rows).items():
        cells = [f"{s[k][0]:.4f} +/- {s[k][1]:.4f}" for k in (*METRICS, "optimistic_best_test_acc")]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Accuracy, balanced accuracy, macro-F1 and AUROC are on test trials at the epoch chosen on validation",
        "trials carved from each subject's fine-tuning trials. *Optimistic: the best test accuracy over fine-tuning epochs",
        "(the authors' protocol, model selection on test data); for comparison with published numbers only.",
    ]
    return "\n".join(lines) + "\n"


def console_table(rows: list[dict], title: str) -> str:
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
    head = f"{'method':<{width}}" + "".join(f"{LABELS[k]:>20}" for k in METRICS) + f"{'optimistic*':>20}"
    lines += ["", "mean +/- std over subjects:", head, "-" * len(head)]
    for method, v in s.items():
        lines.append(
            f"{method:<{width}}"
            + "".join(f"{v[k][0]:>11.4f} +/-{v[k][1]:.3f}" for k in (*METRICS, "optimistic_best_test_acc"))
        )
    lines.append("* best test accuracy over fine-tuning epochs (selection on test data): comparison only")
    return "\n".join(lines)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def write_results(
    out_dir: str | Path,
    rows: list[dict],
    confusion: torch.Tensor | None,
    class_names: list[str],
    title: str,
    stem: str = "transfer_results",
) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    for r in rows:
        writer.writerow({c: _fmt(r[c]) for c in COLUMNS})
    paths = {
        "csv": out / f"{stem}.csv",
        "md": out / f"{stem}.md",
        "png": out / f"{stem}.png",
        "json": out / f"{stem}_summary.json",
    }
    _atomic_write(paths["csv"], buf.getvalue().encode())
    _atomic_write(paths["md"], markdown(rows, title).encode())
    _atomic_write(paths["png"], figure_png(rows, confusion, class_names, title))
    _atomic_write(paths["json"], json.dumps(summary(rows), indent=2).encode())
    return paths
