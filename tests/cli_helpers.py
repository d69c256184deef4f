"""Running the real command line from tests (one helper, shared by every test module)."""

from __future__ import annotations

import csv
from pathlib import Path

from scmm_lightning.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run_fit(config: Path | list[Path], out_dir: Path, *extra: str) -> Path:
    """``python -m scmm_lightning fit --config CONFIG... [extra]`` with logs and checkpoints under ``out_dir``."""
    configs = config if isinstance(config, list) else [config]
    args = ["fit"]
    for c in configs:
        args += ["--config", str(c)]
    main(
        [*args, "--trainer.logger.init_args.save_dir", str(out_dir), "--trainer.default_root_dir", str(out_dir), *extra]
    )
    return out_dir


def epoch_losses(log_root: Path) -> list[float]:
    """``train/loss_epoch`` of every epoch from the run's metrics.csv."""
    (metrics,) = list(log_root.rglob("metrics.csv"))
    rows = list(csv.DictReader(metrics.open()))
    return [float(r["train/loss_epoch"]) for r in rows if r.get("train/loss_epoch")]
