"""W&B: sweep files accepted by the CLI, and an offline run whose metrics land on disk."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cli_helpers import in_process
from wandb_records import history

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = sorted((ROOT / "experiments" / "sweeps").glob("*.yaml"))


def sample(spec: dict):
    """One value a sweep could draw for a parameter spec."""
    if "value" in spec:
        return spec["value"]
    if "values" in spec:
        return spec["values"][len(spec["values"]) // 2]
    lo, hi = spec["min"], spec["max"]
    return (lo * hi) ** 0.5 if "log" in spec.get("distribution", "") else (lo + hi) / 2


def dig(config: dict, dotted: str):
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node


@pytest.mark.parametrize("sweep", SWEEPS, ids=lambda p: p.name)
def test_every_sweep_parameter_is_accepted_by_the_cli(sweep: Path) -> None:
    spec = yaml.safe_load(sweep.read_text())
    command = spec["command"]
    assert command[:4] == ["${env}", "${interpreter}", "-m", "scmm_lightning"] and command[-1] == "${args}"
    # a validation figure the run logs (transfer/<row>/val_<metric>_mean or probe/val_<metric>_mean),
    # not any name containing "val" (valence, interval)
    assert re.fullmatch(r"(transfer/pretrained/|probe/)val_[a-z_]+_mean", spec["metric"]["name"]), spec["metric"]
    fixed = [c for c in command[4:-1]]
    values = {name: sample(p) for name, p in spec["parameters"].items()}
    args = [f"--{name}={value}" for name, value in values.items()]  # what ${args} expands to
    out = in_process([sys.executable, "-m", "scmm_lightning", *fixed, *args, "--print_config"])  # as the agent runs it
    assert out.returncode == 0, out.stderr[-2000:]
    printed = yaml.safe_load(out.stdout)
    for name, value in values.items():
        got = dig(printed, name)
        if name == "trainer.logger":
            got = got["class_path"] if isinstance(got, dict) else got
        assert got == value or (isinstance(value, float) and got == pytest.approx(value)), name


def test_offline_wandb_run_writes_its_metrics(tiny_config: Path, tmp_path: Path) -> None:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(tmp_path)}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "scmm_lightning",
            "fit",
            "--config",
            str(tiny_config),
            "--config",
            "experiments/loggers/wandb.yaml",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
            "--trainer.logger.init_args.project",
            "scmm_test",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (run_file,) = list(tmp_path.rglob("run-*.wandb"))
    logged = history(run_file)
    # the same config with the CSV logger gives the same epoch losses (same seed, CPU)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "scmm_lightning",
            "fit",
            "--config",
            str(tiny_config),
            "--trainer.logger.init_args.save_dir",
            str(tmp_path / "csv"),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (metrics,) = list((tmp_path / "csv").rglob("metrics.csv"))
    csv_losses = [float(r["train/loss_epoch"]) for r in csv.DictReader(metrics.open()) if r.get("train/loss_epoch")]
    assert logged["train/loss_epoch"] == pytest.approx(csv_losses, rel=1e-6)
    assert len(logged["train/loss_step"]) == 12


def test_no_sweep_or_checkpoint_selects_on_a_test_figure() -> None:
    """Model selection reads validation figures only: every sweep metric and every checkpoint
    monitor under experiments/ names a figure with `val` in it."""
    for path in (ROOT / "experiments").rglob("*.yaml"):
        spec = yaml.safe_load(path.read_text()) or {}
        if "metric" in spec:
            assert "val" in spec["metric"]["name"], path
        for cb in (spec.get("trainer") or {}).get("callbacks") or []:
            monitor = (cb.get("init_args") or {}).get("monitor")
            assert monitor is None or "val" in monitor, (path, monitor)
