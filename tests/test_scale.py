"""Multi-process fit, mixed precision and checkpoint/resume."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scmm_lightning.cli import main
from scmm_lightning.tasks import SCMMPretraining

ROOT = Path(__file__).resolve().parents[1]


def step_losses(log_root: Path) -> dict[int, float]:
    out = {}
    for metrics in log_root.rglob("metrics.csv"):
        for row in csv.DictReader(metrics.open()):
            if row.get("train/loss_step"):
                out[int(row["step"])] = float(row["train/loss_step"])
    return out


@pytest.mark.ddp
@pytest.mark.slow  # the default suite runs the 2-process fit of experiments/synthetic.yaml below
def test_two_process_fit_runs_to_the_end(tiny_config: Path, tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "scmm_lightning",
            "fit",
            "--config",
            str(tiny_config),
            "--trainer.strategy",
            "ddp",
            "--trainer.devices",
            "2",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
        ],
        check=True,
        cwd=ROOT,
        timeout=300,
        capture_output=True,
    )
    losses = step_losses(tmp_path)
    # 216 windows / 2 ranks / batch 32 -> 3 steps per epoch, 2 epochs
    assert sorted(losses) == [0, 1, 2, 3, 4, 5]
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert list(tmp_path.rglob("last.ckpt"))


def test_bf16_autocast_loss_is_finite_and_close_to_float32() -> None:
    torch.manual_seed(0)
    module = SCMMPretraining(num_channels=62, num_bands=5)
    x = torch.rand(64, 62, 5)
    full = module.compute_losses(x, torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = module.compute_losses(x, torch.Generator().manual_seed(0))
        # the numerically sensitive parts stay float32 under autocast
        from scmm_lightning.model import similarity_matrix

        z = module.projector(module.encoder(x))
        assert z.dtype == torch.bfloat16 and similarity_matrix(z, z).dtype == torch.float32
    for k in ("loss", "contrastive", "reconstruction"):
        assert torch.isfinite(half[k])
        assert half[k].item() == pytest.approx(full[k].item(), rel=0.03), k


def test_bf16_mixed_fit_through_the_cli(tiny_config: Path, tmp_path: Path) -> None:
    main(
        [
            "fit",
            "--config",
            str(tiny_config),
            "--trainer.precision",
            "bf16-mixed",
            "--trainer.max_epochs",
            "1",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
        ]
    )
    losses = step_losses(tmp_path)
    assert len(losses) == 6 and all(v == v and abs(v) < 1e6 for v in losses.values())


def test_resume_continues_with_identical_losses(tiny_config: Path, tmp_path: Path) -> None:
    """4 uninterrupted epochs vs 2 epochs (stopped by max_steps), then resumed from last.ckpt."""
    common = ["fit", "--config", str(tiny_config), "--trainer.max_epochs", "4"]
    main([*common, "--trainer.logger.init_args.save_dir", str(tmp_path / "full")])
    main([*common, "--trainer.max_steps", "12", "--trainer.logger.init_args.save_dir", str(tmp_path / "stopped")])
    (ckpt,) = list((tmp_path / "stopped").rglob("last.ckpt"))
    main([*common, "--ckpt_path", str(ckpt), "--trainer.logger.init_args.save_dir", str(tmp_path / "resumed")])
    full = step_losses(tmp_path / "full")
    resumed = step_losses(tmp_path / "resumed")
    assert sorted(full) == list(range(24))
    assert sorted(resumed) == list(range(12, 24))
    for step in range(12, 24):
        assert resumed[step] == full[step], step  # exact in float32 on the CPU
    # learned loss weights were restored too
    a = torch.load(next((tmp_path / "full").rglob("last.ckpt")), weights_only=False)["state_dict"]
    b = torch.load(next((tmp_path / "resumed").rglob("last.ckpt")), weights_only=False)["state_dict"]
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.ddp
def test_two_process_fit_with_the_evaluation_callbacks_writes_its_results(tmp_path: Path) -> None:
    """The shipped demo config (probe + transfer callbacks) under 2 gloo processes runs to the end:
    every rank takes part in the evaluation's collectives and rank 0 writes the result files once,
    with a row per (method, subject) of the quick protocol."""
    out = subprocess.run(
        [
            sys.executable, "-m", "scmm_lightning", "fit", "--config", str(ROOT / "experiments/synthetic.yaml"),
            "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
            "--trainer.fast_dev_run", "true", "--trainer.enable_progress_bar", "false",
            "--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path),
        ],
        cwd=ROOT, timeout=300, capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    (csv_path,) = list(tmp_path.rglob("transfer_results.csv"))
    rows = list(csv.DictReader(csv_path.open()))
    assert sorted((r["method"], r["subject"]) for r in rows) == [
        (m, s) for m in ("pretrained", "random_init", "raw_features") for s in ("1", "2")
    ]
    assert out.stdout.count("evaluation wall time") == 1  # printed by rank 0 only


@pytest.mark.ddp
@pytest.mark.slow
@pytest.mark.parametrize(
    "config", sorted(p.name for p in (ROOT / "experiments").glob("*.yaml") if p.name != "synthetic.yaml")
)
def test_every_shipped_config_runs_to_the_end_in_two_processes(config: str, tmp_path: Path, corpora_env: Path) -> None:
    """Every reference config (fixture corpora) under 2 gloo processes with fast_dev_run: the
    evaluation callbacks' collectives are met on both ranks and the results are written once."""
    extra = ["--data.init_args.source.init_args.batch_size", "16"]
    out = subprocess.run(
        [
            sys.executable, "-m", "scmm_lightning", "fit", "--config", str(ROOT / "experiments" / config),
            "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
            "--trainer.fast_dev_run", "true", "--trainer.enable_progress_bar", "false",
            "--trainer.default_root_dir", str(tmp_path), *extra,
        ],
        cwd=ROOT, timeout=600, capture_output=True, text=True, env={**os.environ},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(list(tmp_path.rglob("transfer_results.csv"))) == 1
