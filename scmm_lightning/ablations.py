"""Every pre-training method and ablation on one setting, same seeds, one comparison table.

    python -m scmm_lightning.ablations [--setting experiments/ablations_synthetic.yaml] [--seeds 0 1 2]
        [--methods scmm hard_contrastive ...] [--data_root DIR] [--out runs/ablations]

A method is a config under experiments/methods/ combined with the setting's config; each run's
``transfer_results.csv`` contributes its ``pretrained`` rows (the method's own encoder). The table
has one row per method: target accuracy and macro-F1, mean +/- std over target subjects x seeds
(Markdown, CSV, bar chart PNG).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from pathlib import Path

import numpy as np

from .reproduce import fit_args, required_folders

METHODS_DIR = Path("experiments/methods")
DEFAULT_METHODS = [
    "scmm",
    "hard_contrastive",
    "masked_reconstruction",
    "no_pretraining",
    "scmm_hard_weights",
    "scmm_no_aggregator",
    "scmm_equal_weights",
    "scmm_mask_random",
    "scmm_mask_channel",
    "scmm_mask_parallel",
]


def collect(csv_path: Path, method: str) -> list[dict]:
    rows = [r for r in csv.DictReader(csv_path.open()) if r["method"] == "pretrained"]
    return [{**r, "method": method} for r in rows]


def comparison(rows: list[dict], methods: list[str]) -> list[dict]:
    out = []
    for m in methods:
        sel = [r for r in rows if r["method"] == m]
        acc = np.array([float(r["accuracy"]) for r in sel])
        f1 = np.array([float(r["macro_f1"]) for r in sel])
        seeds = len({r["seed"] for r in sel})
        out.append(
            {
                "method": m,
                "accuracy_mean": acc.mean(),
                "accuracy_std": acc.std(),
                "macro_f1_mean": f1.mean(),
                "macro_f1_std": f1.std(),
                "seeds": seeds,
                "rows": len(sel),
            }
        )
    return out


def write(out: Path, table: list[dict], title: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(table[0]))
    w.writeheader()
    w.writerows(table)
    (out / "ablation_results.csv").write_text(buf.getvalue())
    lines = [
        f"# {title}",
        "",
        "Target accuracy and macro-F1 (epoch chosen on validation trials), mean +/- std over",
        "target subjects x seeds.",
        "",
        "| method | accuracy | macro-F1 | seeds | rows |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {t['method']} | {t['accuracy_mean']:.4f} +/- {t['accuracy_std']:.4f} | "
        f"{t['macro_f1_mean']:.4f} +/- {t['macro_f1_std']:.4f} | {t['seeds']} | {t['rows']} |"
        for t in table
    ]
    (out / "ablation_results.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(table)), 4))
    xs = np.arange(len(table))
    ax.bar(
        xs - 0.2, [t["accuracy_mean"] for t in table], 0.4, yerr=[t["accuracy_std"] for t in table], label="accuracy"
    )
    ax.bar(
        xs + 0.2, [t["macro_f1_mean"] for t in table], 0.4, yerr=[t["macro_f1_std"] for t in table], label="macro-F1"
    )
    ax.set_xticks(xs, [t["method"] for t in table], rotation=35, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "ablation_results.png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setting", type=Path, default=Path("experiments/ablations_synthetic.yaml"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=DEFAULT_METHODS)
    p.add_argument("--data_root", default=os.environ.get("SCMM_DATA_ROOT", ""))
    p.add_argument("--out", type=Path, default=Path("runs/ablations"))
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="further CLI overrides for every run")
    args = p.parse_args(argv)
    folders = required_folders(args.setting)
    if folders:
        root = Path(args.data_root).expanduser() if args.data_root else None
        missing = [str(root / f) if root else f for f in folders if root is None or not (root / f).is_dir()]
        if missing:
            print(
                f"error: {args.setting} needs corpora: missing {', '.join(missing)}; pass DATA_ROOT=/path",
                file=sys.stderr,
            )
            return 2
        os.environ["SCMM_DATA_ROOT"] = str(root)
    unknown = [m for m in args.methods if not (METHODS_DIR / f"{m}.yaml").is_file()]
    if unknown:
        print(f"error: no method config for {unknown} under {METHODS_DIR}", file=sys.stderr)
        return 2
    from .cli import main as cli_main

    out = args.out / args.setting.stem
    rows: list[dict] = []
    for method in args.methods:
        for seed in args.seeds:
            run_dir = out / method / f"seed{seed}"
            print(f"+ {method} seed {seed}", flush=True)
            configs = [args.setting, METHODS_DIR / f"{method}.yaml"]
            cli_main(fit_args(configs, seed, run_dir, ["--trainer.enable_progress_bar", "false", *args.extra]))
            latest = max(run_dir.rglob("transfer_results.csv"), key=lambda q: q.stat().st_mtime)
            rows += [{**r, "seed": seed} for r in collect(latest, method)]
    table = comparison(rows, args.methods)
    write(out, table, f"{args.setting.stem}: methods and ablations")
    print((out / "ablation_results.md").read_text())
    print(f"written: {out / 'ablation_results.md'}, .csv, .png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
