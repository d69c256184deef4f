"""Reproduce reference settings end to end: check corpora, pre-train + transfer for several seeds,
then one table over subjects and seeds.

    python -m scmm_lightning reproduce --data_root DIR --seeds 0 1 2 --configs experiments/seed_to_deap_valence.yaml
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from .options import StrictArgumentParser

FOLDERS = {"SeedDataModule": "SEED", "SeedIVDataModule": "SEED_IV", "DeapDataModule": "DEAP"}


def required_folders(config: Path) -> list[str]:
    text = config.read_text()
    return [folder for cls, folder in FOLDERS.items() if f"scmm_lightning.datamodules.{cls}" in text]


def fit_args(configs: list[Path], seed: int, run_dir: Path, extra: list[str]) -> list[str]:
    """``fit`` arguments for one seeded run of ``configs`` writing into ``run_dir``."""
    out = ["fit"]
    for config in configs:
        out += ["--config", str(config)]
    return out + [
        "--seed_everything",
        str(seed),
        "--trainer.logger.init_args.save_dir",
        str(run_dir),
        "--trainer.default_root_dir",
        str(run_dir),
        *extra,
    ]


def main(argv: list[str] | None = None) -> int:
    p = StrictArgumentParser(description=__doc__)
    p.add_argument("--data_root", default=os.environ.get("SCMM_DATA_ROOT", ""))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--configs", type=Path, nargs="+", required=True)
    p.add_argument("--out", type=Path, default=Path("runs/reproduce"))
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="further CLI overrides for every run")
    args = p.parse_args(argv)
    if not args.data_root:
        print("error: no data root: pass DATA_ROOT=/path (make) or --data_root, or set SCMM_DATA_ROOT", file=sys.stderr)
        return 2
    root = Path(args.data_root).expanduser()
    missing = sorted({str(root / f) for c in args.configs for f in required_folders(c) if not (root / f).is_dir()})
    if missing:
        print(
            "error: missing corpus directories: " + ", ".join(missing) + "\n"
            "Each corpus must sit in its official layout under the data root (SEED/, SEED_IV/, DEAP/); "
            "see README 'Real corpora'.",
            file=sys.stderr,
        )
        return 2
    from ..evaluation.results import (
        COMPARED,
        OPTIMISTIC_NOTE,
        SEED_SPREAD,
        comparison_pairs,
        comparisons_markdown,
        read_rows,
        results_of_this_run,
        summary_markdown,
    )
    from ..evaluation.statistics import compare_methods

    env = {**os.environ, "SCMM_DATA_ROOT": str(root)}
    report = []
    for config in args.configs:
        name = config.stem
        rows: list[dict] = []
        for seed in args.seeds:
            run_dir = args.out / name / f"seed{seed}"
            cmd = [sys.executable, "-m", "scmm_lightning", *fit_args([config], seed, run_dir, args.extra)]
            print("+ " + " ".join(cmd), flush=True)
            started = time.time()
            code = subprocess.run(cmd, env=env).returncode
            if code:
                print(f"error: {name} seed {seed}: fit exited with status {code}; stopping (nothing summarised)",
                      file=sys.stderr)  # fmt: skip
                return code
            latest = results_of_this_run(run_dir, started)
            rows += read_rows(latest, seed=seed)
        heading = f"## {name} (seeds {', '.join(map(str, args.seeds))}; {SEED_SPREAD})"
        comparisons = compare_methods(rows, comparison_pairs(rows), COMPARED, unit=("subject", "seed"))
        report.append(
            summary_markdown(rows, heading) + "\n\n" + comparisons_markdown(comparisons, "target subject x seed")
        )
    text = "\n\n".join(report) + "\n\n" + OPTIMISTIC_NOTE + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.md").write_text(text)
    print("\n" + text + f"\nwritten: {args.out / 'summary.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
