"""Every pre-training method and ablation on one setting, same seeds, one comparison table.

    python -m scmm_lightning ablations [--setting experiments/ablations_synthetic.yaml] [--seeds 0 1 2]
        [--methods scmm hard_contrastive ...] [--data_root DIR] [--out runs/ablations]

A method is a config under experiments/methods/ combined with the setting's config; each run's
``transfer_results.csv`` contributes its ``pretrained`` rows (the method's own encoder). The table
has one row per method: every target metric, mean +/- std over seeds of the mean over target
subjects, and every method against ``scmm`` paired over (target subject, seed) (mean difference,
95% bootstrap CI, Wilcoxon p) (Markdown, JSON; every row in the CSV; bar chart PNG).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .options import StrictArgumentParser
from .reproduce import fit_args, required_folders

METHODS_DIR = Path("experiments/methods")
DEFAULT_METHODS = ["scmm", *sorted(p.stem for p in METHODS_DIR.glob("*.yaml") if p.stem != "scmm")]
"""Every method config under experiments/methods/, SCMM as published first (the others are compared with it)."""


def main(argv: list[str] | None = None) -> int:
    p = StrictArgumentParser(description=__doc__)
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
    from ..evaluation.results import COMPARED, read_rows, results_of_this_run, write_comparison
    from ..evaluation.statistics import compare_methods
    from . import main as cli_main

    out = args.out / args.setting.stem
    rows: list[dict] = []
    for method in args.methods:
        for seed in args.seeds:
            run_dir = out / method / f"seed{seed}"
            print(f"+ {method} seed {seed}", flush=True)
            configs = [args.setting, METHODS_DIR / f"{method}.yaml"]
            started = time.time()
            cli_main(fit_args(configs, seed, run_dir, ["--trainer.enable_progress_bar", "false", *args.extra]))
            latest = results_of_this_run(run_dir, started)
            rows += [{**r, "method": method} for r in read_rows(latest, seed=seed) if r["method"] == "pretrained"]
    pairs = [(m, "scmm") for m in args.methods if m != "scmm"]
    comparisons = compare_methods(rows, pairs, COMPARED, unit=("subject", "seed"))
    write_comparison(out, rows, f"{args.setting.stem}: methods and ablations", "ablation_results", comparisons)
    print((out / "ablation_results.md").read_text())
    print(f"written: {out / 'ablation_results.md'}, .csv, .png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
